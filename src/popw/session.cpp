#include "popw/session.hpp"

#include <boost/json.hpp>

#include <unistd.h>

#include <algorithm>

#include "crypto/random.hpp"
#include "popw/audit.hpp"
#include "popw/chacha20.hpp"
#include "popw/matrix.hpp"
#include "popw/memory.hpp"
#include "popw/message.hpp"

namespace kaisar::popw {

namespace json = boost::json;

namespace {

json::object error_reply(std::string message) {
  return json::object{{"type", "error"}, {"message", std::move(message)}};
}

std::string type_of(const json::object& o) {
  const json::value* v = o.if_contains("type");
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

// A check may ask for most of a GPU's memory; until GPU kernels exist the agent fills host
// memory instead, and Linux would rather kill the agent than fail the allocation. More
// than half of this machine's RAM is refused (the check then fails, as it would anyway).
std::uint64_t fill_limit() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return std::uint64_t{1} << 30;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) / 2;
}

std::chrono::microseconds steady_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch());
}

}  // namespace

// --- provider -------------------------------------------------------------------------------

struct ProverSession::State {
  std::optional<Prover> prover;
  std::optional<MemoryProver> memory;
};

ProverSession::ProverSession() : state_(std::make_unique<State>()) {}
ProverSession::~ProverSession() = default;
ProverSession::ProverSession(ProverSession&&) noexcept = default;
ProverSession& ProverSession::operator=(ProverSession&&) noexcept = default;

void ProverSession::reset() {
  state_->prover.reset();
  state_->memory.reset();
}

json::object ProverSession::handle(const json::object& message) {
  const std::string type = type_of(message);
  const json::value value = message;
  if (type == "challenge") {
    auto challenge = challenge_from_json(value);
    if (!challenge) return error_reply(challenge.error().message);
    reset();
    auto prover = Prover::compute(*challenge, best_kernel());
    if (!prover) return error_reply(prover.error().message);
    Commit commit{prover->root(), std::chrono::duration_cast<std::chrono::microseconds>(prover->elapsed())};
    state_->prover.emplace(std::move(*prover));
    return to_json(commit);
  }
  if (type == "audit") {
    if (!state_->prover) return error_reply("no challenge to audit");
    auto request = audit_request_from_json(value);
    if (!request) return error_reply(request.error().message);
    auto answer = state_->prover->answer(*request);
    if (!answer) return error_reply(answer.error().message);
    return to_json(*answer);
  }
  if (type == "memory_fill") {
    auto fill = memory_fill_from_json(value);
    if (!fill) return error_reply(fill.error().message);
    state_->prover.reset();  // the product is no longer needed; its memory goes first
    state_->memory.reset();
    if (fill->bytes > fill_limit()) {
      return error_reply("the memory check asks for " + std::to_string(fill->bytes >> 20) +
                         " MiB; this machine gives at most half of its RAM");
    }
    auto memory = MemoryProver::fill(*fill);
    if (!memory) return error_reply(memory.error().message);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(memory->fill_elapsed()).count();
    state_->memory.emplace(std::move(*memory));
    return json::object{{"type", "memory_ready"}, {"fill_ms", ms}};
  }
  if (type == "memory_query") {
    if (!state_->memory) return error_reply("no memory filled");
    auto query = memory_query_from_json(value);
    if (!query) return error_reply(query.error().message);
    auto answer = state_->memory->answer(*query);
    if (!answer) return error_reply(answer.error().message);
    json::object reply = to_json(*answer);
    state_->memory.reset();  // the check is over: give the memory back
    return reply;
  }
  return error_reply("unknown message type " + type.substr(0, 40));
}

// --- checker --------------------------------------------------------------------------------

struct CheckerSession::State {
  explicit State(CheckParams p) : evidence(std::move(p)) {}
  Evidence evidence;
  ChaChaRng rng = ChaChaRng::from_os();
};

CheckerSession::CheckerSession(CheckParams params) : state_(std::make_unique<State>(std::move(params))) {}
CheckerSession::~CheckerSession() = default;
CheckerSession::CheckerSession(CheckerSession&&) noexcept = default;
CheckerSession& CheckerSession::operator=(CheckerSession&&) noexcept = default;

json::object CheckerSession::start() {
  Challenge challenge{crypto::random_hash(), state_->evidence.params().n};
  json::object message = to_json(challenge);
  (void)state_->evidence.record(true, message, steady_now());
  return message;
}

Result<std::optional<json::object>> CheckerSession::on_answer(const json::object& answer) {
  if (auto r = state_->evidence.record(false, answer, steady_now()); !r) return std::unexpected(r.error());
  const std::string next = state_->evidence.next_step();
  const CheckParams& p = state_->evidence.params();
  json::object message;
  if (next.empty()) return std::optional<json::object>{};
  if (next == "audit") {
    // Drawn only now that the provider is bound to its root.
    message = to_json(AuditRequest{sample_rows(p.n, p.samples, state_->rng)});
  } else if (next == "memory_fill") {
    MemoryFill fill;
    fill.seed = crypto::random_hash();
    fill.bytes = p.memory_bytes;
    fill.cache_bytes = memory_cache_bytes(p.memory_bytes);
    message = to_json(fill);
  } else if (next == "memory_query") {
    MemoryQuery query;
    const std::uint64_t items = p.memory_bytes / kItemBytes;
    for (std::uint32_t i = 0; i < p.memory_walks; ++i) query.starts.push_back(state_->rng.below(items));
    query.steps = p.memory_steps;
    message = to_json(query);
  } else {
    return fail(ErrorCode::kConflict, "the checker expected to send " + next);
  }
  if (auto r = state_->evidence.record(true, message, steady_now()); !r) return std::unexpected(r.error());
  return std::optional<json::object>{std::move(message)};
}

bool CheckerSession::finished() const {
  return state_->evidence.complete() || state_->evidence.provider_refused();
}

Result<Verdict> CheckerSession::verdict() const { return judge(state_->evidence); }

const Evidence& CheckerSession::evidence() const { return state_->evidence; }

}  // namespace kaisar::popw
