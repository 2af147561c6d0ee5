#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/hardware.hpp"
#include "popw/deadline.hpp"

namespace kaisar::popw {

// What one check asks of a provider (docs/checkers.md).
struct CheckParams {
  std::string hardware_class;  // a class of the throughput table, e.g. "RTX 4090" or "cpu"
  std::uint32_t n = 0;         // matrix size
  std::uint32_t samples = 0;   // rows audited
  std::uint64_t memory_bytes = 0;
  std::uint32_t memory_walks = 0;
  std::uint32_t memory_steps = 0;
  // Time granted on top of each phase's expected time for relaying, (de)serialising and
  // scheduling. Small against the expected time in production (check_target 5 s); larger
  // on loaded test machines.
  std::uint32_t allowance_ms = 250;

  friend bool operator==(const CheckParams&, const CheckParams&) = default;
};
boost::json::object to_json(const CheckParams& p);
Result<CheckParams> check_params_from_json(const boost::json::value& v);

struct PlanOptions {
  double target_seconds = 5.0;  // the matrix phase's expected time on the claimed class
  std::uint32_t n = 0;          // fixed size instead (0: from the target)
  std::uint32_t samples = 128;
  std::uint64_t memory_bytes = 0;  // 0: 90 % of the claimed GPU memory, 256 MiB without GPUs
  std::uint32_t memory_walks = 4096;
  std::uint32_t memory_steps = 64;
  std::uint32_t allowance_ms = 250;
};
// The memory phase's cache size for a dataset of `memory_bytes`: 1/64 of it, at least
// 64 KiB, at most 1 GiB (larger than any GPU's L2, so items cannot be cached on chip).
// Fixed by the params, so that a checker cannot make judging its evidence expensive.
std::uint64_t memory_cache_bytes(std::uint64_t memory_bytes);
// The class a CheckParams names: "cpu:CORES" or a GPU class of the table.
Result<HardwareClass> hardware_class_of(std::string_view name);
// The check for a provider's claimed hardware: the class of its first GPU (or "cpu").
CheckParams plan_check(const Hardware& hardware, const PlanOptions& options);

struct Verdict {
  bool audit_ok = false;      // every sampled row is in the committed tree and correct
  bool deadline_ok = false;   // the matrix work fit the claimed class
  bool memory_right = false;  // the sampled memory walks were right (regardless of time)
  bool memory_ok = false;     // ... and in time
  bool passed = false;
  std::uint64_t ops_per_second = 0;
  double commit_seconds = 0;   // as timed, in whole µs: 0 when faster than the clock can tell
  double allowed_seconds = 0;  // the deadline the commit had to meet
  std::string reason;  // why it failed, or "passed"
};

class Evidence;
// Judges a complete (or refused) check. exact: recompute sampled rows instead of the
// fingerprint test (OneNode settling a dispute).
Result<Verdict> judge(const Evidence& evidence, bool exact = false);

// One check's messages (the "message" of "popw" envelopes), in protocol order, each with
// the time it was seen (µs since any monotonic origin; never decreasing):
//   checker: challenge → provider: commit → checker: audit → provider: openings →
//   checker: memory_fill → provider: memory_ready → checker: memory_query → provider: memory_answer
// A provider may answer "error" at any step (the check then fails). OneNode records what it
// relays; the checker records what it sends and receives; both judge the same way.
class Evidence {
 public:
  Evidence() = default;
  explicit Evidence(CheckParams params) : params_(std::move(params)) {}

  // Validates `message` as the next step (its type, its sender, its content against the
  // params and earlier steps) and records it. kInvalidArgument says what is wrong (a time
  // before the previous step's among it); kConflict when it comes out of order.
  Result<void> record(bool from_checker, const boost::json::object& message, std::chrono::microseconds at);
  // The type of the step expected next ("" when complete).
  std::string next_step() const;
  bool complete() const;
  bool provider_refused() const { return refused_; }
  const CheckParams& params() const { return params_; }
  // The challenge's seed and the committed root (0x and lower-case hex, however the
  // messages spelled them; empty before they are known).
  std::string seed_hex() const;
  std::string root_hex() const;
  // Seconds from the challenge to the commit, as recorded; nullopt before the commit.
  std::optional<double> commit_seconds() const;

  boost::json::object to_json() const;
  static Result<Evidence> from_json(const boost::json::value& v);

 private:
  friend Result<Verdict> judge(const Evidence& evidence, bool exact);
  struct Step {
    std::string type;
    boost::json::object message;
    std::chrono::microseconds at{0};
  };
  const Step* find(std::string_view type) const;
  CheckParams params_;
  std::vector<Step> steps_;
  bool refused_ = false;
};



}  // namespace kaisar::popw
