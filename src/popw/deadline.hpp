#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kaisar::popw {

// What a class of hardware must at least deliver in a check (docs/popw.md §5). GPU rates
// are the vendor's dense INT8 tensor peak and memory bandwidth times documented
// achievable-efficiency factors; CPU rates are per-core floors times the core count.
struct HardwareClass {
  std::string name;                // "H100 SXM", "RTX 4090", "cpu"
  double int8_peak_ops_per_s = 0;  // spec sheet, dense (no sparsity)
  double compute_efficiency = 0;   // fraction of the peak a large int8 GEMM sustains
  double memory_bytes_per_s = 0;   // spec sheet bandwidth
  double memory_efficiency = 0;    // fraction of it that random 64-byte reads reach
  double memory_latency_s = 0;     // one dependent random read, an upper estimate

  // Expected int8 operations per second in the compute phase.
  double int8_ops_per_s() const noexcept { return int8_peak_ops_per_s * compute_efficiency; }
  // Expected random 64-byte dataset reads per second in the memory phase (enough walks).
  double lookups_per_s() const noexcept { return memory_bytes_per_s * memory_efficiency / 64.0; }
};

// Relative slack of a verdict: pass iff measured ≥ expected·(1 − kTolerance). It covers an
// honest card's run-to-run and clock variation; classes whose expected rates differ by
// less than this factor cannot be told apart by timing (docs/popw.md §5 lists them).
inline constexpr double kTolerance = 0.15;
// Checks are timed in whole microseconds. Work that takes less than one tick (0 µs
// measured) is as fast as the clock can tell: it passes any deadline, and its rate is
// taken as at least the work over one tick. An answer never fails for being too fast.
inline constexpr double kClockTick = 1e-6;

// All GPU classes of the table.
std::span<const HardwareClass> gpu_classes() noexcept;

// The class of a GPU by the name NVML reports ("NVIDIA GeForce RTX 4090", "NVIDIA H100
// 80GB HBM3", "NVIDIA A100-SXM4-80GB") or by a class name ("RTX 4090", "h100_sxm");
// nullopt for unknown models and for variants the table does not cover (laptop parts).
std::optional<HardwareClass> find_gpu_class(std::string_view name);

// A CPU with `cores` logical cores running the simd kernel under load.
HardwareClass cpu_class(unsigned cores);

struct TimingVerdict {
  bool pass = false;
  double measured = 0;  // rate achieved (ops/s or lookups/s)
  double expected = 0;  // rate the class must reach, before the tolerance
};

// Compute phase: ops = 2·n³; measured = ops / max(elapsed, kClockTick). elapsed is the
// checker's time from sending the challenge to receiving the commit.
TimingVerdict compute_verdict(const HardwareClass& claimed, std::uint32_t n, std::chrono::duration<double> elapsed) noexcept;

// Memory phase: walks·steps dataset reads. Steps of one walk depend on each other, so the
// expected time is at least steps·memory_latency_s however many walks run in parallel.
TimingVerdict memory_verdict(const HardwareClass& claimed, std::uint64_t walks, std::uint32_t steps,
                       std::chrono::duration<double> elapsed) noexcept;

// The n (a valid size) whose expected compute time for `claimed` is closest to target from
// below, clamped to [kMinN, kMaxN].
std::uint32_t choose_n(const HardwareClass& claimed, std::chrono::duration<double> target) noexcept;

}  // namespace kaisar::popw
