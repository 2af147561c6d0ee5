#include "onenode/checks.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "core/json_fields.hpp"
#include "core/protocol.hpp"
#include "crypto/random.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

namespace {

constexpr std::int64_t kDay = 24 * 3600;
constexpr std::size_t kMaxEvidenceBytes = 16 << 20;  // the openings of n = 16384, s = 128: 11 MB

std::string error_message(std::string_view code, std::string_view message) {
  return json::serialize(json::object{{"type", "error"}, {"code", code}, {"message", message}});
}

// What check evidence is timed with: monotonic (a wall clock step must not make a provider
// look slow or fast) and in µs (docs/popw.md §5).
std::chrono::microseconds steady_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch());
}

std::string refused_message(std::string_view check_id, std::string_view message) {
  return json::serialize(json::object{{"type", "refused"}, {"check_id", check_id}, {"message", message}});
}

}  // namespace

std::int64_t checker_ban_until(const std::vector<std::int64_t>& wrong_at, std::int64_t now_s) {
  if (wrong_at.size() > 10) return -1;
  auto within = [&](std::int64_t seconds) {
    return std::count_if(wrong_at.begin(), wrong_at.end(), [&](std::int64_t t) { return t > now_s - seconds; });
  };
  if (within(30 * kDay) >= 5) return now_s + 180 * kDay;
  if (within(7 * kDay) >= 2) return now_s + 30 * kDay;
  return 0;
}

struct CheckService::Session {
  std::string nonce;
  std::string id;  // lower-case node address, once authenticated
  crypto::Address node;
  crypto::Address owner;
  std::weak_ptr<net::WebSocketSession> socket;
};

CheckService::CheckService(store::Database& db, const Clock& clock, EventHub& events, ProviderRegistry& registry,
                           ControlChannel& control, const OneNodeConfig& config, Metrics& metrics)
    : db_(db),
      clock_(clock),
      events_(events),
      registry_(registry),
      control_(control),
      config_(config),
      attested_(metrics.counter("kaisar_attestations_total", "Checkers' attestations accepted.")),
      refused_(metrics.counter("kaisar_attestations_refused_total", "Checkers' attestations refused (forged, altered or late).")),
      rng_(crypto::random_below(UINT64_MAX)) {}

std::int64_t CheckService::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch()).count();
}

Result<void> CheckService::recover() {
  auto r = db_.execute("UPDATE checks SET state = 'expired' WHERE state = 'assigned'", {});
  if (!r) return std::unexpected(r.error());
  return {};
}

void CheckService::set_domain(const popw::AttestationDomain& domain) {
  std::lock_guard lock(mutex_);
  domain_ = domain;
}

std::size_t CheckService::connected() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<net::WebSocketSession> CheckService::socket_of(const std::string& checker) {
  auto it = sessions_.find(checker);
  return it == sessions_.end() ? nullptr : it->second->socket.lock();
}

// --- the checkers' channel ------------------------------------------------------------------

std::optional<net::Response> CheckService::accept(net::Request&, std::shared_ptr<net::WebSocketSession> socket) {
  auto state = std::make_shared<Session>();
  state->nonce = crypto::random_token(16);
  state->socket = socket;
  std::weak_ptr<net::WebSocketSession> weak = socket;
  socket->on_message([this, state, weak](std::string_view text) {
    if (auto s = weak.lock()) on_checker_message(state, s, text);
  });
  socket->on_close([this, state, weak] {
    if (state->id.empty()) return;
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(state->id);
    if (it != sessions_.end() && it->second == state) sessions_.erase(it);
  });
  socket->send(json::serialize(json::object{{"type", "challenge"}, {"v", protocol::kVersion}, {"nonce", state->nonce}}));
  std::lock_guard lock(mutex_);
  pending_.emplace_back(socket, now_ms() + 10000);
  return std::nullopt;
}

void CheckService::on_checker_message(const std::shared_ptr<Session>& state,
                                      const std::shared_ptr<net::WebSocketSession>& socket, std::string_view text) {
  auto reject = [&](std::string_view code, std::string_view message) {
    socket->send(error_message(code, message));
    socket->close(message.substr(0, 100));
  };
  if (text.size() > kMaxEvidenceBytes) return reject("invalid_argument", "message is larger than 16 MiB");
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return reject("invalid_argument", "message is not a JSON object");
  const auto& o = v.get_object();
  const std::string type = string_field(o, "type");

  if (state->id.empty()) {
    if (type != "hello") return reject("unauthenticated", "the first message must be hello");
    if (state->nonce.empty()) return reject("unauthenticated", "the challenge was used");
    auto hello = verify_node_hello(o, state->nonce, protocol::checker_binding_message, "checker binding");
    state->nonce.clear();  // single use
    if (!hello) return reject(error_code_name(hello.error().code), hello.error().message);
    const crypto::Address& node = hello->node;
    const crypto::Address& owner = hello->owner;
    const std::string id = node.to_lower_hex();
    const std::int64_t now_s = now_ms() / 1000;
    // A ban is the owner's: another node key of the same wallet is banned as well.
    auto banned = db_.query("SELECT banned_until FROM checkers WHERE id = ? OR owner = ?", {id, owner.to_lower_hex()});
    if (!banned) return reject("unavailable", "database unavailable");
    std::int64_t until = 0;
    for (const auto& row : *banned) {
      if (row.integer(0) == -1 || until == -1) until = -1;
      else until = std::max(until, row.integer(0));
    }
    {
      if (until == -1 || until > now_s) {
        return reject("permission_denied", until == -1 ? "this checker is banned for good"
                                                       : "this checker is banned until " +
                                                             format_rfc3339(from_unix_seconds(until)));
      }
    }
    auto up = db_.execute(
        "INSERT INTO checkers(id, owner, registered_at, last_seen) VALUES(?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, last_seen = excluded.last_seen",
        {id, owner.to_lower_hex(), now_s, now_s});
    if (!up) return reject("unavailable", "database unavailable");
    state->id = id;
    state->node = node;
    state->owner = owner;
    socket->lift_message_limit();  // evidence is megabytes; before the hello, nothing is
    json::object welcome{{"type", "welcome"}, {"v", protocol::kVersion}, {"checker_id", node.to_checksum()}};
    {
      std::lock_guard lock(mutex_);
      if (domain_) {
        welcome["chain_id"] = domain_->chain_id;
        welcome["verifying_contract"] = domain_->verifying_contract.to_checksum();
      }
      if (auto old = sessions_.find(id); old != sessions_.end()) {
        if (auto s = old->second->socket.lock()) s->close("replaced by a newer session");
      }
      sessions_[id] = state;
    }
    socket->send(json::serialize(welcome));
    spdlog::info("checks: checker {} (wallet {}) connected", node.to_checksum(), owner.to_checksum());
    return;
  }

  if (type == "popw") {
    if (auto r = relay_to_provider(*state, o); !r) {
      socket->send(refused_message(string_field(o, "check_id"), r.error().message));
    }
    return;
  }
  if (type == "attestation") {
    const std::string check_id = string_field(o, "check_id");
    if (auto r = attest(*state, o); !r) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("checks: attestation from {} refused: {}", state->node.to_checksum(), r.error().message);
      socket->send(refused_message(check_id, r.error().message));
    } else {
      attested_.fetch_add(1, std::memory_order_relaxed);
      socket->send(json::serialize(json::object{{"type", "attested"}, {"check_id", check_id}}));
    }
    return;
  }
  if (type == "ping") {
    socket->send(json::serialize(json::object{{"type", "pong"}}));
    return;
  }
  reject("invalid_argument", "unknown message type");
}

// --- relaying a check -----------------------------------------------------------------------

Result<void> CheckService::relay_to_provider(const Session& state, const json::object& o) {
  const std::string check_id = string_field(o, "check_id");
  const json::value* message = o.if_contains("message");
  if (message == nullptr || !message->is_object()) return fail(ErrorCode::kInvalidArgument, "popw.message must be an object");
  std::string provider;
  const auto at = steady_now();  // before any lock: a busy OneNode must not make providers look slow
  {
    std::lock_guard lock(mutex_);
    auto it = open_.find(check_id);
    // Only the assigned checker may speak for a check, and only to its provider.
    if (it == open_.end() || it->second.checker != state.id || it->second.kind != "challenge") {
      return fail(ErrorCode::kNotFound, "no open check " + check_id.substr(0, 80) + " of this checker");
    }
    if (auto r = it->second.evidence.record(true, message->get_object(), at); !r) return r;
    provider = it->second.provider;
  }
  const std::string envelope =
      json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", *message}});
  if (!control_.send_to(provider, envelope)) return fail(ErrorCode::kUnavailable, "the provider is not connected");
  return {};
}

void CheckService::from_provider(const std::string& provider_id, const json::object& o) {
  const std::string check_id = string_field(o, "check_id");
  const json::value* message = o.if_contains("message");
  if (message == nullptr || !message->is_object()) return;
  std::shared_ptr<net::WebSocketSession> socket;
  const auto at = steady_now();
  {
    std::lock_guard lock(mutex_);
    auto it = open_.find(check_id);
    if (it == open_.end() || it->second.provider != provider_id) return;  // a stale or foreign answer
    if (auto r = it->second.evidence.record(false, message->get_object(), at); !r) {
      spdlog::warn("checks: check {}: the provider's answer is refused: {}", check_id, r.error().message);
      json::object refusal{{"type", "error"}, {"message", "OneNode refused the answer: " + r.error().message}};
      (void)it->second.evidence.record(false, refusal, at);
      message = nullptr;
      socket = socket_of(it->second.checker);
      if (socket) {
        socket->send(json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", refusal}}));
      }
      return;
    }
    socket = socket_of(it->second.checker);
  }
  if (socket) socket->send(json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", *message}}));
}

// --- attestations ---------------------------------------------------------------------------

Result<void> CheckService::attest(const Session& state, const json::object& o) {
  const std::string check_id = string_field(o, "check_id");
  const json::value* body = o.if_contains("attestation");
  if (body == nullptr) return fail(ErrorCode::kInvalidArgument, "attestation is missing");
  auto a = popw::attestation_from_json(*body);
  if (!a) return std::unexpected(a.error());
  auto signature = crypto::Signature::parse(string_field(o, "signature"));
  if (!signature) return fail(ErrorCode::kInvalidArgument, "signature: " + signature.error().message);

  std::unique_lock lock(mutex_);
  auto it = open_.find(check_id);
  if (it == open_.end() || it->second.checker != state.id) {
    return fail(ErrorCode::kNotFound, "no open check " + check_id.substr(0, 80) + " of this checker (late or replayed)");
  }
  OpenCheck& check = it->second;
  if (!domain_) return fail(ErrorCode::kUnavailable, "this OneNode has no chain to sign attestations for");
  const popw::AttestationDomain domain = *domain_;
  // The attestation must say what happened: this check, this provider, this checker, the
  // seed and root that went through here.
  const std::string& seed = check.evidence.seed_hex();
  const std::string& root = check.evidence.root_hex();
  if (to_hex(a->check_id) != check.id) return fail(ErrorCode::kInvalidArgument, "attestation.checkId is not this check");
  if (a->checker != state.node) return fail(ErrorCode::kInvalidArgument, "attestation.checker is not this checker");
  if (a->provider.to_lower_hex() != check.provider) return fail(ErrorCode::kInvalidArgument, "attestation.provider is not the checked provider");
  if (a->epoch != check.epoch) return fail(ErrorCode::kInvalidArgument, "attestation.epoch is not the check's epoch");
  if (a->memory_bytes != check.evidence.params().memory_bytes) {
    return fail(ErrorCode::kInvalidArgument, "attestation.memoryBytes is not what the check asked for");
  }
  if (!check.evidence.complete() && !check.evidence.provider_refused()) {
    return fail(ErrorCode::kConflict, "the check is not finished: " + check.evidence.next_step() + " is missing");
  }
  if (!seed.empty() && to_hex(a->seed) != seed) return fail(ErrorCode::kInvalidArgument, "attestation.seed is not the challenge's");
  if (!root.empty() && to_hex(a->root) != root) return fail(ErrorCode::kInvalidArgument, "attestation.root is not the committed root");
  if (!check.evidence.complete() && a->passed) {
    return fail(ErrorCode::kInvalidArgument, "attestation.passed for a check the provider did not finish");
  }
  // The rate cannot be faster than what went through here: OneNode sits between checker
  // and provider, so the checker's own time is longer than OneNode's. Work OneNode saw
  // finish within one clock tick counts as work over one tick (popw::kClockTick).
  const double n = check.evidence.params().n;
  const auto seen_s = check.evidence.commit_seconds();
  const double seen_ops = seen_s ? 2.0 * n * n * n / std::max(*seen_s, popw::kClockTick) : 0.0;
  if (static_cast<double>(a->ops_per_second) > seen_ops * 1.1 + 1.0) {
    return fail(ErrorCode::kInvalidArgument, "attestation.opsPerSecond is faster than the work OneNode relayed");
  }
  if (auto v = popw::verify_attestation(*a, *signature, domain); !v) return v;
  auto digest = popw::attestation_digest(*a, domain);
  if (!digest) return std::unexpected(digest.error());

  OpenCheck done = std::move(check);
  open_.erase(it);
  lock.unlock();
  // OneNode judges the evidence it relayed and timed itself, with its own secret
  // fingerprint vector, before the verdict changes anything (outside the lock: judging
  // costs what the checker's own verification costs).
  auto own = popw::judge(done.evidence);
  if (!own) {
    lock.lock();
    open_.emplace(done.id, std::move(done));
    return std::unexpected(own.error());
  }
  const std::int64_t now = now_ms();
  if (own->passed != a->passed) return contradicted(done, *a, *own, now);
  lock.lock();
  auto stored = db_.transaction([&]() -> Result<void> {
    // The epoch that is open now, read in this transaction: an epoch closing meanwhile has
    // taken its leaves already, so the attestation goes into the next one.
    std::int64_t epoch = current_epoch ? static_cast<std::int64_t>(current_epoch()) : 0;
    auto open_epoch = db_.query("SELECT number FROM epochs WHERE ended_at IS NULL ORDER BY number DESC LIMIT 1", {});
    if (!open_epoch) return std::unexpected(open_epoch.error());
    if (!open_epoch->empty()) epoch = open_epoch->front().integer(0);
    auto ins = db_.execute(
        "INSERT INTO attestations(check_id, epoch, provider, checker, body, signature, digest, passed, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {done.id, epoch, done.provider, done.checker, json::serialize(popw::to_json(*a)),
         signature->to_hex(), to_hex(*digest), std::int64_t{a->passed ? 1 : 0}, now / 1000});
    if (!ins) return std::unexpected(ins.error());
    auto upd = db_.execute("UPDATE checks SET state = 'attested', evidence = ?, passed = ?, verdict = ? WHERE id = ?",
                           {json::serialize(done.evidence.to_json()), std::int64_t{a->passed ? 1 : 0},
                            std::int64_t{own->passed ? 1 : 0}, done.id});
    if (!upd) return std::unexpected(upd.error());
    return {};
  });
  if (!stored) {
    open_.emplace(done.id, std::move(done));
    return stored;
  }
  lock.unlock();
  events_.publish("attestation", json::serialize(json::object{{"check_id", done.id},
                                                              {"provider", a->provider.to_checksum()},
                                                              {"checker", a->checker.to_checksum()},
                                                              {"passed", a->passed},
                                                              {"ops_per_second", a->ops_per_second}}));
  spdlog::info("checks: {} {} provider {} ({} ops/s, memory {})", done.kind == "challenge" ? "check" : "second opinion",
               a->passed ? "passed" : "failed", a->provider.to_checksum(), a->ops_per_second,
               a->memory_passed ? "ok" : "not ok");
  if (done.kind == "challenge") {
    set_verification(done.provider, *a, done.evidence.params(), seen_ops);
    lock.lock();
    schedule_next(done.provider, now);
    lock.unlock();
    second_opinion(done, now);
  }
  return {};
}

// OneNode's own judgement contradicts the checker's: the attestation is refused (it is
// neither stored nor paid), and the provider's standing follows OneNode. The checker's
// verdict is wrong under the ban rules where the answer is clear: it passed work whose
// audit or timing OneNode failed (the audited rows are in the evidence, and OneNode's time
// is the shorter one, so the checker saw the same), or it failed correct work OneNode saw
// finish within half the time allowed. Where judges may honestly differ it costs the
// checker only the attestation: at the edge of the deadline (a checker far away sees the
// work take longer), and on memory walks (each judge samples its own, so a provider that
// gets a few wrong must not be able to get honest checkers banned).
Result<void> CheckService::contradicted(const OpenCheck& done, const popw::Attestation& a, const popw::Verdict& own,
                                        std::int64_t now) {
  const bool clearly_in_time = own.passed && own.commit_seconds * 2 <= own.allowed_seconds;
  const bool clearly_failed = !own.audit_ok || !own.deadline_ok || (own.memory_right && !own.memory_ok);
  const bool wrong = a.passed ? clearly_failed : clearly_in_time;
  (void)db_.execute("UPDATE checks SET state = 'contradicted', evidence = ?, passed = ?, verdict = ?, checker_wrong = ? WHERE id = ?",
                    {json::serialize(done.evidence.to_json()), std::int64_t{a.passed ? 1 : 0},
                     std::int64_t{own.passed ? 1 : 0}, std::int64_t{wrong ? 1 : 0}, done.id});
  spdlog::warn("checks: checker {} said {} for {}; OneNode's own judgement says {} ({}){}", a.checker.to_checksum(),
               a.passed ? "passed" : "failed", done.id, own.passed ? "passed" : "failed", own.reason,
               wrong ? ": a wrong verdict" : "");
  if (wrong) mark_wrong(done.checker, now / 1000);
  if (done.kind == "challenge") {
    popw::Attestation judged = a;
    judged.passed = own.passed;
    judged.memory_passed = own.memory_ok;
    judged.ops_per_second = own.ops_per_second;
    set_verification(done.provider, judged, done.evidence.params(), static_cast<double>(own.ops_per_second),
                     /*settled_by_onenode=*/true);
    std::lock_guard lock(mutex_);
    schedule_next(done.provider, now);
  }
  return fail(ErrorCode::kInvalidArgument, std::string("OneNode's own judgement of the evidence contradicts this attestation (") +
                                               (own.passed ? "passed" : "failed: " + own.reason) + ")" +
                                               (wrong ? "; recorded as a wrong verdict" : ""));
}

void CheckService::set_verification(const std::string& provider, const popw::Attestation& a,
                                    const popw::CheckParams& params, double measured_ops, bool settled_by_onenode) {
  // What offers and rewards use: the attested rate, at most what OneNode saw and what the
  // claimed class can do at its peak.
  double ops = std::min(static_cast<double>(a.ops_per_second), measured_ops);
  if (auto cls = popw::hardware_class_of(params.hardware_class)) ops = std::min(ops, cls->int8_peak_ops_per_s);
  const double tops = ops / 1e12;
  json::object v{{"verified", a.passed},
                 {"class", params.hardware_class},
                 {"ops_per_second", static_cast<std::uint64_t>(ops)},
                 {"tops", std::round(tops * 1000) / 1000},
                 {"memory_bytes", a.memory_bytes},
                 {"memory_passed", a.memory_passed},
                 {"check_id", to_hex(a.check_id)},
                 {"checker", a.checker.to_checksum()},
                 {"checked_at", format_rfc3339(clock_.now())}};
  if (settled_by_onenode) v["settled_by"] = "onenode";
  auto r = db_.execute("UPDATE providers SET verification = ? WHERE id = ?", {json::serialize(v), provider});
  if (!r) spdlog::warn("checks: cannot store {}'s verification: {}", provider, r.error().message);
  if (on_verification) on_verification(provider);
}

void CheckService::set_failed(const std::string& provider, const std::string& check_id, const std::string& why) {
  json::object v{{"verified", false},
                 {"check_id", check_id},
                 {"reason", why},
                 {"checked_at", format_rfc3339(clock_.now())}};
  (void)db_.execute("UPDATE checks SET passed = 0 WHERE id = ?", {check_id});
  auto r = db_.execute("UPDATE providers SET verification = ? WHERE id = ?", {json::serialize(v), provider});
  if (!r) spdlog::warn("checks: cannot store {}'s verification: {}", provider, r.error().message);
  spdlog::info("checks: provider {} failed check {}: {}", provider, check_id, why);
  if (on_verification) on_verification(provider);
}

// Another checker judges the same evidence and signs its own attestation, which OneNode
// judges like the first. It is neither the first checker's wallet nor the provider's.
void CheckService::second_opinion(const OpenCheck& first, std::int64_t now_ms) {
  if (config_.check_redundancy <= 0) return;
  std::unique_lock lock(mutex_);
  if (std::uniform_real_distribution<double>(0, 1)(rng_) >= config_.check_redundancy) return;
  std::vector<std::string> others;
  for (const auto& [id, s] : sessions_) {
    const std::string owner = s->owner.to_lower_hex();
    if (id != first.checker && owner != first.checker_owner && owner != first.provider_owner && !s->socket.expired()) {
      others.push_back(id);
    }
  }
  if (others.empty()) return;
  const std::string checker = others[std::uniform_int_distribution<std::size_t>(0, others.size() - 1)(rng_)];
  auto socket = socket_of(checker);
  auto provider = crypto::Address::parse(first.provider);
  if (!socket || !provider) return;
  OpenCheck second;
  second.id = to_hex(crypto::random_hash());
  second.provider = first.provider;
  second.checker = checker;
  second.kind = "second_opinion";
  second.of_check = first.id;
  second.provider_owner = first.provider_owner;
  second.checker_owner = sessions_.at(checker)->owner.to_lower_hex();
  second.epoch = first.epoch;
  second.evidence = first.evidence;
  second.deadline_ms = now_ms + std::chrono::milliseconds(config_.check_timeout).count();
  auto ins = db_.execute(
      "INSERT INTO checks(id, epoch, provider, checker, kind, of_check, class, params, state, created_at, deadline_at) "
      "VALUES(?, ?, ?, ?, 'second_opinion', ?, ?, ?, 'assigned', ?, ?)",
      {second.id, static_cast<std::int64_t>(second.epoch), second.provider, checker, first.id,
       second.evidence.params().hardware_class, json::serialize(popw::to_json(second.evidence.params())), now_ms / 1000,
       second.deadline_ms / 1000});
  if (!ins) return;
  socket->send(json::serialize(json::object{{"type", "verify"},
                                            {"check_id", second.id},
                                            {"of_check", first.id},
                                            {"provider", provider->to_checksum()},
                                            {"epoch", second.epoch},
                                            {"evidence", second.evidence.to_json()}}));
  open_.emplace(second.id, std::move(second));
}

// Wrong verdicts count against the checker's wallet, across all its node keys.
void CheckService::mark_wrong(const std::string& checker, std::int64_t now_s) {
  auto rows = db_.query(
      "SELECT k.created_at FROM checks k JOIN checkers c ON c.id = k.checker "
      "WHERE c.owner = (SELECT owner FROM checkers WHERE id = ?) AND k.checker_wrong = 1",
      {checker});
  if (!rows) return;
  std::vector<std::int64_t> times;
  for (const auto& r : *rows) times.push_back(r.integer(0));
  const std::int64_t until = checker_ban_until(times, now_s);
  if (until == 0) return;
  auto owner = db_.query("SELECT owner FROM checkers WHERE id = ?", {checker});
  if (!owner || owner->empty()) return;
  const std::string wallet = owner->front().text(0);
  (void)db_.execute("UPDATE checkers SET banned_until = ?, ban_reason = ? WHERE owner = ?",
                    {until, std::to_string(times.size()) + " wrong verdicts", wallet});
  spdlog::warn("checks: checker wallet {} banned ({} wrong verdicts)", wallet, times.size());
  std::lock_guard lock(mutex_);
  for (const auto& [id, s] : sessions_) {
    if (s->owner.to_lower_hex() != wallet) continue;
    if (auto socket = s->socket.lock()) {
      socket->send(error_message("permission_denied", "this checker is banned"));
      socket->close("banned");
    }
  }
}

// --- scheduling -----------------------------------------------------------------------------

void CheckService::schedule_next(const std::string& provider, std::int64_t now_ms) {
  const double mean = static_cast<double>(std::chrono::milliseconds(config_.check_interval).count());
  // Exponential gaps: when the next check comes cannot be predicted from the last one.
  double gap = std::exponential_distribution<double>(1.0 / mean)(rng_);
  gap = std::clamp(gap, mean / 10, mean * 3);
  next_check_ms_[provider] = now_ms + static_cast<std::int64_t>(gap);
}

void CheckService::tick() {
  const std::int64_t now = now_ms();
  std::vector<std::shared_ptr<net::WebSocketSession>> expired_handshakes;
  std::vector<std::pair<std::string, std::string>> silent;  // (provider, check id)
  {
    std::lock_guard lock(mutex_);
    std::erase_if(pending_, [&](const auto& p) {
      auto s = p.first.lock();
      if (!s) return true;
      if (p.second > now) return false;
      expired_handshakes.push_back(std::move(s));
      return true;
    });
    // Checks whose checker never attested expire; a provider that went silent mid-check
    // fails it (not answering must not be a way out of a check it was about to fail).
    for (auto it = open_.begin(); it != open_.end();) {
      if (it->second.deadline_ms > now) {
        ++it;
        continue;
      }
      OpenCheck& c = it->second;
      const std::string next = c.evidence.next_step();
      const bool provider_silent =
          c.kind == "challenge" && (next == "commit" || next == "openings" || next == "memory_ready" || next == "memory_answer");
      (void)db_.execute("UPDATE checks SET state = 'expired', evidence = ? WHERE id = ?",
                        {json::serialize(c.evidence.to_json()), c.id});
      if (provider_silent) silent.emplace_back(c.provider, c.id);
      if (auto socket = socket_of(c.checker)) {
        socket->send(json::serialize(json::object{{"type", "expired"}, {"check_id", c.id}}));
      }
      if (c.kind == "challenge") schedule_next(c.provider, now);
      it = open_.erase(it);
    }
  }
  for (const auto& [provider, id] : silent) set_failed(provider, id, "the provider did not answer " + std::string("in time"));
  for (auto& s : expired_handshakes) {
    std::lock_guard lock(mutex_);
    bool authenticated = false;
    for (const auto& [id, session] : sessions_) authenticated = authenticated || session->socket.lock() == s;
    if (!authenticated) {
      s->send(error_message("unauthenticated", "no hello within the handshake timeout"));
      s->close("handshake timeout");
    }
  }
  // Evidence is kept a week (for audits and disputes), then only the verdicts remain.
  if (now >= next_prune_ms_) {
    next_prune_ms_ = now + 60000;
    (void)db_.execute("UPDATE checks SET evidence = NULL WHERE evidence IS NOT NULL AND created_at < ?",
                      {now / 1000 - 7 * kDay});
  }
  if (config_.checks) assign_due(now);
}

void CheckService::assign_due(std::int64_t now) {
  const auto online = registry_.online_ids();
  std::vector<std::string> due;
  {
    std::lock_guard lock(mutex_);
    std::set<std::string> online_set(online.begin(), online.end());
    std::erase_if(next_check_ms_, [&](const auto& e) { return !online_set.contains(e.first); });
    const auto within = std::chrono::milliseconds(config_.first_check_within).count();
    std::set<std::string> busy;
    for (const auto& [cid, c] : open_) {
      if (c.kind == "challenge") busy.insert(c.provider);
    }
    for (const auto& id : online) {
      auto [it, fresh] = next_check_ms_.try_emplace(id, 0);
      if (fresh) {
        // Newly online: the first check comes at a random time within first_check_within.
        it->second = now + std::uniform_int_distribution<std::int64_t>(std::min<std::int64_t>(2000, within / 2), within)(rng_);
        continue;
      }
      if (it->second > now || busy.contains(id)) continue;
      due.push_back(id);
    }
  }
  for (const auto& id : due) {
    if (auto r = assign(id, now); !r) {
      std::lock_guard lock(mutex_);
      next_check_ms_[id] = now + 5000;  // no checker free: try again shortly
      spdlog::debug("checks: {} not assigned: {}", id, r.error().message);
    }
  }
}

Result<void> CheckService::assign(const std::string& provider, std::int64_t now) {
  auto view = registry_.get(provider);
  if (!view) return std::unexpected(view.error());
  auto hardware = Hardware::from_json(view->at("hardware"));
  if (!hardware) return std::unexpected(hardware.error());
  popw::PlanOptions plan;
  plan.target_seconds = config_.check_target;
  plan.n = config_.check_matrix_n;
  plan.samples = config_.check_samples;
  plan.memory_bytes = config_.check_memory_bytes;
  plan.allowance_ms = config_.check_allowance_ms;
  const popw::CheckParams params = popw::plan_check(*hardware, plan);
  const std::string owner = crypto::Address::parse(view->at("owner").as_string()).value_or(crypto::Address{}).to_lower_hex();

  std::lock_guard lock(mutex_);
  // A checker that is not the provider's own owner and has the fewest open checks.
  std::vector<std::string> candidates;
  std::size_t fewest = SIZE_MAX;
  for (const auto& [id, s] : sessions_) {
    if (s->socket.expired() || s->owner.to_lower_hex() == owner) continue;
    std::size_t load = 0;
    for (const auto& [cid, c] : open_) load += c.checker == id ? 1U : 0U;
    if (load < fewest) {
      fewest = load;
      candidates.clear();
    }
    if (load == fewest) candidates.push_back(id);
  }
  if (candidates.empty()) return fail(ErrorCode::kUnavailable, "no checker connected");
  const std::string checker = candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng_)];
  auto socket = socket_of(checker);
  if (!socket) return fail(ErrorCode::kUnavailable, "the checker went away");
  OpenCheck check;
  check.id = to_hex(crypto::random_hash());
  check.provider = provider;
  check.checker = checker;
  check.kind = "challenge";
  check.provider_owner = owner;
  check.checker_owner = sessions_.at(checker)->owner.to_lower_hex();
  check.epoch = current_epoch ? current_epoch() : 0;
  check.evidence = popw::Evidence(params);
  check.deadline_ms = now + std::chrono::milliseconds(config_.check_timeout).count();
  auto ins = db_.execute(
      "INSERT INTO checks(id, epoch, provider, checker, kind, class, params, state, created_at, deadline_at) "
      "VALUES(?, ?, ?, ?, 'challenge', ?, ?, 'assigned', ?, ?)",
      {check.id, static_cast<std::int64_t>(check.epoch), provider, checker, params.hardware_class,
       json::serialize(popw::to_json(params)), now / 1000, check.deadline_ms / 1000});
  if (!ins) return std::unexpected(ins.error());
  json::object assignment{{"type", "assignment"},
                          {"check_id", check.id},
                          {"provider", view->at("id")},
                          {"epoch", check.epoch},
                          {"params", popw::to_json(params)},
                          {"deadline_s", config_.check_timeout.count()}};
  socket->send(json::serialize(assignment));
  next_check_ms_[provider] = check.deadline_ms;  // rescheduled when it ends
  open_.emplace(check.id, std::move(check));
  return {};
}

// --- views ----------------------------------------------------------------------------------

Result<json::array> CheckService::attestations(const std::string& provider, std::size_t limit) {
  std::string sql = "SELECT check_id, epoch, body, signature, digest, created_at FROM attestations";
  std::vector<store::Value> params;
  if (!provider.empty()) {
    sql += " WHERE provider = ?";
    params.emplace_back(provider);
  }
  sql += " ORDER BY created_at DESC, check_id LIMIT ?";
  params.emplace_back(static_cast<std::int64_t>(limit));
  auto rows = db_.query(sql, params);
  if (!rows) return std::unexpected(rows.error());
  json::array out;
  for (const auto& r : *rows) {
    boost::system::error_code ec;
    json::value body = json::parse(r.text(2), ec);
    out.push_back(json::object{{"check_id", r.text(0)},
                               {"epoch", r.integer(1)},
                               {"attestation", std::move(body)},
                               {"signature", r.text(3)},
                               {"digest", r.text(4)},
                               {"created_at", format_rfc3339(from_unix_seconds(r.integer(5)))}});
  }
  return out;
}

Result<json::array> CheckService::checkers() {
  auto rows = db_.query(
      "SELECT c.id, c.owner, c.registered_at, c.last_seen, c.banned_until, c.ban_reason, "
      "(SELECT COUNT(*) FROM checks k WHERE k.checker = c.id AND k.state IN ('attested', 'contradicted')), "
      "(SELECT COUNT(*) FROM checks k WHERE k.checker = c.id AND k.checker_wrong = 1) "
      "FROM checkers c ORDER BY c.registered_at, c.id",
      {});
  if (!rows) return std::unexpected(rows.error());
  json::array out;
  const std::int64_t now_s = now_ms() / 1000;
  std::lock_guard lock(mutex_);
  for (const auto& r : *rows) {
    auto id = crypto::Address::parse(r.text(0));
    auto owner = crypto::Address::parse(r.text(1));
    const std::int64_t until = r.integer(4);
    const std::int64_t checks = r.integer(6), wrong = r.integer(7);
    json::value banned = nullptr;
    if (until == -1) banned = "forever";
    else if (until > now_s) banned = format_rfc3339(from_unix_seconds(until));
    out.push_back(json::object{
        {"id", id ? id->to_checksum() : r.text(0)},
        {"owner", owner ? owner->to_checksum() : r.text(1)},
        {"online", sessions_.contains(r.text(0))},
        {"registered_at", format_rfc3339(from_unix_seconds(r.integer(2)))},
        {"last_seen", format_rfc3339(from_unix_seconds(r.integer(3)))},
        {"checks", checks},
        {"wrong", wrong},
        {"error_rate", checks > 0 ? static_cast<double>(wrong) / static_cast<double>(checks) : 0.0},
        {"banned_until", std::move(banned)},
        {"ban_reason", r.is_null(5) ? json::value(nullptr) : json::value(r.text(5))}});
  }
  return out;
}

}  // namespace kaisar::onenode
