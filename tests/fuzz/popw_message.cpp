// Proof of Physical Work messages come from the other side of a check (a provider's agent
// or a checker): every parser takes arbitrary bytes without crashing, what a parser accepts
// serialises back to an equal value, and accepted audit answers go through both verifiers
// (against an honest commitment to a fixed n = 64 challenge; the corpus holds its
// openings) without crashing.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "popw/audit.hpp"
#include "popw/message.hpp"

namespace {

using namespace kaisar::popw;

template <class Parse>
void check_round_trip(const boost::json::value& v, Parse parse) {
  auto parsed = parse(v);
  if (!parsed) {
    if (parsed.error().message.empty()) std::abort();
    return;
  }
  auto again = parse(boost::json::value(to_json(*parsed)));
  if (!again || !(*again == *parsed)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Challenge challenge{kaisar::Hash32{1, 2, 3}, 64};
  static const kaisar::Hash32 root = Prover::compute(challenge, Kernel::kNaive, 1)->root();
  static const Auditor auditor = [] {
    ChaChaRng rng(kaisar::Hash32{4, 5, 6});
    return *Auditor::prepare(challenge, rng);
  }();
  auto v = parse_message(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!v) return 0;
  check_round_trip(*v, challenge_from_json);
  check_round_trip(*v, commit_from_json);
  check_round_trip(*v, audit_request_from_json);
  check_round_trip(*v, audit_answer_from_json);
  check_round_trip(*v, memory_fill_from_json);
  check_round_trip(*v, memory_query_from_json);
  check_round_trip(*v, memory_answer_from_json);
  if (auto answer = audit_answer_from_json(*v)) {
    std::vector<std::uint32_t> rows;
    for (const auto& o : answer->openings) rows.push_back(o.row);
    const bool fingerprint = auditor.verify(root, rows, *answer).has_value();
    const bool exact = verify_rows_exact(challenge, root, rows, *answer).has_value();
    if (fingerprint != exact) std::abort();
  }
  return 0;
}
