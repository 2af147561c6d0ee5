#include "popw/deadline.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "core/words.hpp"
#include "popw/matrix.hpp"

namespace kaisar::popw {

namespace {

// Fractions of the spec-sheet figures an honest card sustains in the check (docs/popw.md
// §5): large square int8→int32 GEMMs reach about 70% of dense tensor peak; dependent random
// 64-byte reads with enough walks in flight reach about half of the DRAM bandwidth.
constexpr double kGpuComputeEfficiency = 0.70;
constexpr double kGpuMemoryEfficiency = 0.50;
constexpr double kGpuLatency = 1e-6;  // HBM/GDDR miss ≈ 0.5–0.8 µs, rounded up

constexpr double kTera = 1e12;
constexpr double kGiga = 1e9;

HardwareClass gpu(const char* name, double int8_tops, double memory_gb_per_s) {
  return HardwareClass{name,       int8_tops * kTera,    kGpuComputeEfficiency, memory_gb_per_s * kGiga,
                       kGpuMemoryEfficiency, kGpuLatency};
}

// Dense INT8 tensor TOPS (sparsity off) and memory bandwidth from NVIDIA's data sheets.
const std::vector<HardwareClass>& table() {
  static const std::vector<HardwareClass> classes = {
      gpu("H100 SXM", 1979, 3350),  gpu("H100 PCIe", 1513, 2000), gpu("A100 80GB", 624, 1935),
      gpu("A100 40GB", 624, 1555),  gpu("L40S", 733, 864),        gpu("RTX 4090", 660.6, 1008),
      gpu("RTX 3090", 284, 936),    gpu("A10", 250, 600),         gpu("T4", 130, 320),
  };
  return classes;
}

// How NVML names map to classes: every word of `all`, at least one of `any` (if given),
// none of `none`. The first matching rule wins.
struct NameRule {
  std::string_view class_name;
  std::initializer_list<std::string_view> all;
  std::initializer_list<std::string_view> any;
  std::initializer_list<std::string_view> none;
};

bool contains(const std::vector<std::string>& words, std::string_view w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

bool matches(const NameRule& rule, const std::vector<std::string>& words) {
  for (auto w : rule.all) {
    if (!contains(words, w)) return false;
  }
  if (rule.any.size() > 0 &&
      std::none_of(rule.any.begin(), rule.any.end(), [&](std::string_view w) { return contains(words, w); })) {
    return false;
  }
  return std::none_of(rule.none.begin(), rule.none.end(), [&](std::string_view w) { return contains(words, w); });
}

}  // namespace

std::span<const HardwareClass> gpu_classes() noexcept { return table(); }

std::optional<HardwareClass> find_gpu_class(std::string_view name) {
  static const std::array<NameRule, 9> rules = {{
      {"H100 SXM", {"h100"}, {"sxm", "sxm5", "hbm3"}, {"pcie", "nvl"}},
      {"H100 PCIe", {"h100", "pcie"}, {}, {"nvl"}},
      {"A100 80GB", {"a100", "80gb"}, {}, {}},
      {"A100 40GB", {"a100", "40gb"}, {}, {}},
      {"L40S", {"l40s"}, {}, {}},
      {"RTX 4090", {"rtx", "4090"}, {}, {"laptop", "mobile", "d"}},
      {"RTX 3090", {"rtx", "3090"}, {}, {"laptop", "mobile"}},
      {"A10", {"a10"}, {}, {}},
      {"T4", {"t4"}, {}, {}},
  }};
  const std::vector<std::string> words = lower_words(name);
  for (const auto& rule : rules) {
    if (!matches(rule, words)) continue;
    for (const auto& c : table()) {
      if (c.name == rule.class_name) return c;
    }
  }
  return std::nullopt;
}

HardwareClass cpu_class(unsigned cores) {
  // Per-core floors an honest x86-64 core reaches with the simd kernel while the machine
  // is otherwise busy (docs/popw.md §5): 4·10^9 int8 ops/s, 2·10^6 dependent 64-byte reads/s.
  constexpr double kOpsPerCore = 4e9;
  constexpr double kLookupsPerCore = 2e6;
  const double c = std::max(1U, cores);
  return HardwareClass{"cpu", kOpsPerCore * c, 1.0, kLookupsPerCore * 64.0 * c, 1.0, 1.0 / kLookupsPerCore};
}

TimingVerdict compute_verdict(const HardwareClass& claimed, std::uint32_t n, std::chrono::duration<double> elapsed) noexcept {
  const double ops = 2.0 * std::pow(static_cast<double>(n), 3.0);
  TimingVerdict v;
  v.expected = claimed.int8_ops_per_s();
  v.measured = ops / std::max(elapsed.count(), kClockTick);
  v.pass = elapsed.count() >= 0 && v.measured >= v.expected * (1.0 - kTolerance);
  return v;
}

TimingVerdict memory_verdict(const HardwareClass& claimed, std::uint64_t walks, std::uint32_t steps,
                       std::chrono::duration<double> elapsed) noexcept {
  const double lookups = static_cast<double>(walks) * static_cast<double>(steps);
  const double expected_s =
      std::max(lookups / claimed.lookups_per_s(), static_cast<double>(steps) * claimed.memory_latency_s);
  TimingVerdict v;
  v.expected = expected_s > 0 ? lookups / expected_s : 0.0;
  v.measured = lookups / std::max(elapsed.count(), kClockTick);
  v.pass = elapsed.count() >= 0 && lookups > 0 && v.measured >= v.expected * (1.0 - kTolerance);
  return v;
}

std::uint32_t choose_n(const HardwareClass& claimed, std::chrono::duration<double> target) noexcept {
  const double ops = std::max(0.0, claimed.int8_ops_per_s() * target.count());
  const double n = std::cbrt(ops / 2.0);
  if (!(n >= kMinN)) return kMinN;
  if (n >= kMaxN) return kMaxN;
  return static_cast<std::uint32_t>(n / kStepN) * kStepN;
}

}  // namespace kaisar::popw
