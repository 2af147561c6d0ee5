#include "popw/evidence.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "popw/audit.hpp"
#include "popw/chacha20.hpp"
#include "popw/matrix.hpp"
#include "popw/memory.hpp"
#include "popw/message.hpp"

namespace kaisar::popw {

namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, 8> kSteps = {"challenge", "commit",       "audit",        "openings",
                                                    "memory_fill", "memory_ready", "memory_query", "memory_answer"};

bool from_checker_step(std::size_t index) { return index % 2 == 0; }

Result<std::uint64_t> u64(const json::object& o, std::string_view key, std::uint64_t max) {
  const json::value* v = o.if_contains(key);
  std::uint64_t out = 0;
  if (v != nullptr && v->is_uint64()) out = v->get_uint64();
  else if (v != nullptr && v->is_int64() && v->get_int64() >= 0) out = static_cast<std::uint64_t>(v->get_int64());
  else return fail(ErrorCode::kInvalidArgument, "params." + std::string(key) + " must be a whole number");
  if (out > max) return fail(ErrorCode::kInvalidArgument, "params." + std::string(key) + " is larger than " + std::to_string(max));
  return out;
}

std::string text(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

}  // namespace

json::object to_json(const CheckParams& p) {
  return json::object{{"class", p.hardware_class},   {"n", p.n},
                      {"samples", p.samples},        {"memory_bytes", p.memory_bytes},
                      {"memory_walks", p.memory_walks}, {"memory_steps", p.memory_steps},
                      {"allowance_ms", p.allowance_ms}};
}

Result<CheckParams> check_params_from_json(const json::value& v) {
  if (!v.is_object()) return fail(ErrorCode::kInvalidArgument, "params must be an object");
  const auto& o = v.get_object();
  CheckParams p;
  p.hardware_class = text(o, "class");
  if (p.hardware_class.empty() || p.hardware_class.size() > 64) {
    return fail(ErrorCode::kInvalidArgument, "params.class must be a hardware class name");
  }
  if (auto c = hardware_class_of(p.hardware_class); !c) return std::unexpected(c.error());
  auto n = u64(o, "n", kMaxN);
  if (!n) return std::unexpected(n.error());
  if (auto ok = check_size(static_cast<std::uint32_t>(*n)); !ok) return fail(ErrorCode::kInvalidArgument, "params.n: " + ok.error().message);
  auto samples = u64(o, "samples", std::min<std::uint64_t>(*n, kMaxAuditRows));
  if (!samples) return std::unexpected(samples.error());
  if (*samples == 0) return fail(ErrorCode::kInvalidArgument, "params.samples must be at least 1");
  auto bytes = u64(o, "memory_bytes", kMaxMemoryBytes);
  if (!bytes) return std::unexpected(bytes.error());
  auto walks = u64(o, "memory_walks", kMaxWalks);
  if (!walks) return std::unexpected(walks.error());
  auto steps = u64(o, "memory_steps", kMaxSteps);
  if (!steps) return std::unexpected(steps.error());
  auto allowance = u64(o, "allowance_ms", 600000);
  if (!allowance) return std::unexpected(allowance.error());
  if (*bytes != 0 && (*bytes % kItemBytes != 0 || *bytes < kMinCacheBytes || *walks == 0 || *steps == 0)) {
    return fail(ErrorCode::kInvalidArgument, "params: a memory phase needs memory_bytes (a multiple of 64, at least 64 KiB), memory_walks and memory_steps");
  }
  p.n = static_cast<std::uint32_t>(*n);
  p.samples = static_cast<std::uint32_t>(*samples);
  p.memory_bytes = *bytes;
  p.memory_walks = static_cast<std::uint32_t>(*walks);
  p.memory_steps = static_cast<std::uint32_t>(*steps);
  p.allowance_ms = static_cast<std::uint32_t>(*allowance);
  return p;
}

Result<HardwareClass> hardware_class_of(std::string_view name) {
  if (name.starts_with("cpu:")) {
    unsigned cores = 0;
    const auto digits = name.substr(4);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cores);
    if (ec != std::errc{} || end != digits.data() + digits.size() || cores == 0 || cores > 4096) {
      return fail(ErrorCode::kInvalidArgument, "params.class: cpu:CORES needs 1 to 4096 cores");
    }
    return cpu_class(cores);
  }
  auto gpu = find_gpu_class(name);
  if (!gpu) return fail(ErrorCode::kInvalidArgument, "params.class: no hardware class " + std::string(name.substr(0, 64)));
  return *gpu;
}

CheckParams plan_check(const Hardware& hardware, const PlanOptions& options) {
  CheckParams p;
  std::optional<HardwareClass> cls;
  std::uint64_t memory = options.memory_bytes;
  if (!hardware.gpus.empty()) cls = find_gpu_class(hardware.gpus.front().name);
  if (cls) {
    p.hardware_class = cls->name;
    if (memory == 0) memory = hardware.gpus.front().vram_bytes / 10 * 9;
  } else {
    // CPU-only, or a GPU model the table does not know: checked (and credited) as a CPU.
    p.hardware_class = "cpu:" + std::to_string(std::max<std::uint32_t>(1, hardware.cpu_cores));
    cls = cpu_class(std::max<std::uint32_t>(1, hardware.cpu_cores));
    if (memory == 0) memory = std::uint64_t{256} << 20;
  }
  p.n = options.n != 0 ? options.n : choose_n(*cls, std::chrono::duration<double>(options.target_seconds));
  p.n = std::clamp<std::uint32_t>(p.n / kStepN * kStepN, kMinN, kMaxN);
  p.samples = std::clamp<std::uint32_t>(options.samples, 1, std::min<std::uint32_t>(p.n, kMaxAuditRows));
  p.memory_bytes = std::clamp<std::uint64_t>(memory / kItemBytes * kItemBytes, kMinCacheBytes, kMaxMemoryBytes);
  p.memory_walks = std::clamp<std::uint32_t>(options.memory_walks, 1, kMaxWalks);
  p.memory_steps = std::clamp<std::uint32_t>(options.memory_steps, 1, kMaxSteps);
  p.allowance_ms = options.allowance_ms;
  return p;
}

// --- evidence -------------------------------------------------------------------------------

const Evidence::Step* Evidence::find(std::string_view type) const {
  for (const auto& s : steps_) {
    if (s.type == type) return &s;
  }
  return nullptr;
}

std::string Evidence::next_step() const {
  if (refused_) return "";
  const std::size_t total = params_.memory_bytes == 0 ? 4 : kSteps.size();
  return steps_.size() >= total ? "" : std::string(kSteps[steps_.size()]);
}

bool Evidence::complete() const { return !refused_ && next_step().empty(); }

std::string Evidence::seed_hex() const {
  const Step* s = find("challenge");
  if (s == nullptr) return {};
  auto c = challenge_from_json(s->message);
  return c ? to_hex(c->seed) : std::string{};
}

std::string Evidence::root_hex() const {
  const Step* s = find("commit");
  if (s == nullptr) return {};
  auto c = commit_from_json(s->message);
  return c ? to_hex(c->root) : std::string{};
}

std::optional<double> Evidence::commit_seconds() const {
  const Step* challenge = find("challenge");
  const Step* commit = find("commit");
  if (challenge == nullptr || commit == nullptr) return std::nullopt;
  return std::chrono::duration<double>(commit->at - challenge->at).count();
}

std::uint64_t memory_cache_bytes(std::uint64_t memory_bytes) {
  if (memory_bytes < kMinCacheBytes) return memory_bytes;  // no valid memory phase anyway
  return std::clamp<std::uint64_t>(memory_bytes / 64 / kItemBytes * kItemBytes, kMinCacheBytes,
                                   std::min<std::uint64_t>(kMaxCacheBytes, memory_bytes));
}

Result<void> Evidence::record(bool from_checker, const json::object& message, std::chrono::microseconds at) {
  const std::string expected = next_step();
  if (expected.empty()) return fail(ErrorCode::kConflict, "the check is over");
  // A step timed before the one it answers would make a negative (or huge) duration.
  if (at.count() < 0 || (!steps_.empty() && at < steps_.back().at)) {
    return fail(ErrorCode::kInvalidArgument, "a step's time (at_us) is before the previous step's");
  }
  const std::string type = text(message, "type");
  const std::size_t index = steps_.size();
  if (!from_checker && type == "error") {
    std::string why = text(message, "message").substr(0, 500);
    refused_ = true;
    steps_.push_back({"error", json::object{{"type", "error"}, {"message", why}}, at});
    return {};
  }
  if (from_checker != from_checker_step(index)) {
    return fail(ErrorCode::kConflict, std::string(from_checker ? "the checker" : "the provider") + " spoke out of turn (" +
                                          expected + " is next)");
  }
  if (type != expected) return fail(ErrorCode::kConflict, "expected " + expected + ", got " + type.substr(0, 40));

  const json::value value = message;
  if (type == "challenge") {
    auto c = challenge_from_json(value);
    if (!c) return std::unexpected(c.error());
    if (c->n != params_.n) return fail(ErrorCode::kInvalidArgument, "challenge.n is not the check's n");
  } else if (type == "commit") {
    if (auto c = commit_from_json(value); !c) return std::unexpected(c.error());
  } else if (type == "audit") {
    auto a = audit_request_from_json(value);
    if (!a) return std::unexpected(a.error());
    if (a->rows.size() != params_.samples) return fail(ErrorCode::kInvalidArgument, "audit.rows must hold the check's sample count");
    std::set<std::uint32_t> distinct(a->rows.begin(), a->rows.end());
    if (distinct.size() != a->rows.size() || *distinct.rbegin() >= params_.n) {
      return fail(ErrorCode::kInvalidArgument, "audit.rows must be distinct rows below n");
    }
  } else if (type == "openings") {
    auto a = audit_answer_from_json(value);
    if (!a) return std::unexpected(a.error());
    auto rows = audit_request_from_json(find("audit")->message);
    if (!rows || a->openings.size() != rows->rows.size()) {
      return fail(ErrorCode::kInvalidArgument, "openings must answer every audited row");
    }
    for (std::size_t i = 0; i < a->openings.size(); ++i) {
      if (a->openings[i].row != rows->rows[i] || a->openings[i].values.size() != params_.n) {
        return fail(ErrorCode::kInvalidArgument, "openings[" + std::to_string(i) + "] is not audited row " + std::to_string(rows->rows[i]) + " of n values");
      }
    }
  } else if (type == "memory_fill") {
    auto f = memory_fill_from_json(value);
    if (!f) return std::unexpected(f.error());
    if (auto ok = check_fill(*f); !ok) return ok;
    if (f->bytes != params_.memory_bytes) return fail(ErrorCode::kInvalidArgument, "memory_fill.bytes is not the check's memory size");
    if (f->cache_bytes != memory_cache_bytes(f->bytes)) {
      return fail(ErrorCode::kInvalidArgument, "memory_fill.cache_bytes must be " + std::to_string(memory_cache_bytes(f->bytes)));
    }
  } else if (type == "memory_query") {
    auto q = memory_query_from_json(value);
    if (!q) return std::unexpected(q.error());
    if (auto ok = check_query(*q, params_.memory_bytes / kItemBytes); !ok) return ok;
    if (q->starts.size() != params_.memory_walks || q->steps != params_.memory_steps) {
      return fail(ErrorCode::kInvalidArgument, "memory_query must hold the check's walks and steps");
    }
  } else if (type == "memory_answer") {
    auto a = memory_answer_from_json(value);
    if (!a) return std::unexpected(a.error());
    if (a->digests.size() != params_.memory_walks) return fail(ErrorCode::kInvalidArgument, "memory_answer must answer every walk");
  }
  // memory_ready carries nothing that needs checking.
  steps_.push_back({type, message, at});
  return {};
}

json::object Evidence::to_json() const {
  json::array steps;
  for (const auto& s : steps_) steps.push_back(json::object{{"message", s.message}, {"at_us", s.at.count()}});
  return json::object{{"params", popw::to_json(params_)}, {"steps", std::move(steps)}};
}

Result<Evidence> Evidence::from_json(const json::value& v) {
  if (!v.is_object()) return fail(ErrorCode::kInvalidArgument, "evidence must be an object");
  const json::value* params = v.get_object().if_contains("params");
  const json::value* steps = v.get_object().if_contains("steps");
  if (params == nullptr || steps == nullptr || !steps->is_array() || steps->get_array().size() > kSteps.size()) {
    return fail(ErrorCode::kInvalidArgument, "evidence needs params and at most 8 steps");
  }
  auto p = check_params_from_json(*params);
  if (!p) return std::unexpected(p.error());
  Evidence e(*p);
  // Replayed through record(): stored evidence is validated exactly like live messages.
  for (const auto& s : steps->get_array()) {
    const json::value* message = s.is_object() ? s.get_object().if_contains("message") : nullptr;
    const json::value* at = s.is_object() ? s.get_object().if_contains("at_us") : nullptr;
    if (message == nullptr || !message->is_object() || at == nullptr || !at->is_int64()) {
      return fail(ErrorCode::kInvalidArgument, "evidence.steps[] needs message and at_us");
    }
    const bool from_checker = text(message->get_object(), "type") != "error" && from_checker_step(e.steps_.size());
    if (auto r = e.record(from_checker, message->get_object(), std::chrono::microseconds(at->get_int64())); !r) return std::unexpected(r.error());
  }
  return e;
}

// --- judging --------------------------------------------------------------------------------

Result<Verdict> judge(const Evidence& evidence, bool exact) {
  Verdict v;
  if (evidence.provider_refused()) {
    v.reason = "the provider answered: " + text(evidence.find("error")->message, "message");
    return v;
  }
  if (!evidence.complete()) {
    v.reason = "the provider did not answer " + evidence.next_step();
    return v;
  }
  const CheckParams& p = evidence.params();
  auto cls = hardware_class_of(p.hardware_class);
  if (!cls) return std::unexpected(cls.error());
  const double allowance = p.allowance_ms / 1000.0;

  auto challenge = challenge_from_json(evidence.find("challenge")->message);
  auto commit = commit_from_json(evidence.find("commit")->message);
  auto rows = audit_request_from_json(evidence.find("audit")->message);
  auto answer = audit_answer_from_json(evidence.find("openings")->message);
  if (!challenge || !commit || !rows || !answer) return fail(ErrorCode::kInvalidArgument, "the evidence does not parse");

  // The audit: every sampled row is in the committed tree and is that row of A·B.
  Result<void> audited = exact ? verify_rows_exact(*challenge, commit->root, rows->rows, *answer)
                               : [&]() -> Result<void> {
    auto auditor = Auditor::prepare(*challenge);
    if (!auditor) return std::unexpected(auditor.error());
    return auditor->verify(commit->root, rows->rows, *answer);
  }();
  v.audit_ok = audited.has_value();

  // The deadline: the checker's (or OneNode's) time from challenge to commit, in µs. Work
  // done within one tick of the clock (0 µs) is as fast as the clock can tell: it meets any
  // deadline, and its rate is at least the work over one tick.
  v.commit_seconds = *evidence.commit_seconds();
  const double ops = 2.0 * std::pow(static_cast<double>(p.n), 3.0);
  const double expected_s = ops / cls->int8_ops_per_s();
  v.ops_per_second = static_cast<std::uint64_t>(ops / std::max(v.commit_seconds, kClockTick));
  v.allowed_seconds = expected_s / (1.0 - kTolerance) + allowance;
  v.deadline_ok = v.commit_seconds <= v.allowed_seconds;

  // The memory phase: sampled walks recomputed from the cache, and in time.
  if (p.memory_bytes == 0) {
    v.memory_ok = v.memory_right = true;
  } else {
    auto fill = memory_fill_from_json(evidence.find("memory_fill")->message);
    auto query = memory_query_from_json(evidence.find("memory_query")->message);
    auto digests = memory_answer_from_json(evidence.find("memory_answer")->message);
    if (!fill || !query || !digests) return fail(ErrorCode::kInvalidArgument, "the memory evidence does not parse");
    auto cache = MemoryCache::derive(*fill);
    if (!cache) return std::unexpected(cache.error());
    ChaChaRng rng = ChaChaRng::from_os();
    const std::size_t walks = query->starts.size();
    const std::size_t sampled = std::min<std::size_t>(walks, exact ? 64 : 16);
    bool right = true;
    for (std::size_t k = 0; k < sampled && right; ++k) {
      const std::size_t w = sampled == walks ? k : static_cast<std::size_t>(rng.below(walks));
      const Hash32 d = walk_digest(cache->items(), query->starts[w], query->steps,
                                   [&](std::uint64_t j) { return cache->item(j); });
      right = d == digests->digests[w];
    }
    const double answer_s =
        std::chrono::duration<double>(evidence.find("memory_answer")->at - evidence.find("memory_query")->at).count();
    const auto timing =
        memory_verdict(*cls, walks, query->steps, std::chrono::duration<double>(std::max(0.0, answer_s - allowance)));
    v.memory_right = right;
    v.memory_ok = right && timing.pass;
    if (!right) v.reason = "a memory walk is wrong";
    else if (!timing.pass) v.reason = "the memory walks took " + std::to_string(answer_s) + " s";
  }
  v.passed = v.audit_ok && v.deadline_ok && v.memory_ok;
  if (!v.audit_ok) v.reason = "audit: " + audited.error().message;
  else if (!v.deadline_ok) {
    v.reason = "the work took " + std::to_string(v.commit_seconds) + " s; " + cls->name + " needs at most " +
               std::to_string(expected_s / (1.0 - kTolerance) + allowance) + " s";
  } else if (v.passed) {
    v.reason = "passed";
  }
  return v;
}

}  // namespace kaisar::popw
