// What checkers send OneNode (attestations, and the evidence a second opinion judges) and
// what OneNode stores comes from untrusted peers: parsing, replaying and judging it never
// crashes, and what parses prints back to something that parses to the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json.hpp>

#include "popw/attestation.hpp"
#include "popw/evidence.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kaisar::popw;
  if (size > (1 << 16)) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return 0;
  if (auto a = attestation_from_json(v)) {
    auto again = attestation_from_json(to_json(*a));
    if (!again || !(*again == *a)) std::abort();
  }
  if (auto p = check_params_from_json(v)) {
    auto again = check_params_from_json(to_json(*p));
    if (!again || !(*again == *p)) std::abort();
  }
  if (auto e = Evidence::from_json(v)) {
    // Small checks only: judging is as costly as the check's size.
    if (e->params().n <= 256 && e->params().memory_bytes <= (1 << 20)) (void)judge(*e);
    if (!Evidence::from_json(e->to_json())) std::abort();
  }
  return 0;
}
