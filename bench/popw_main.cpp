// bench/popw: see the script of the same name.
#include <time.h>

#include <boost/json.hpp>
#include <chrono>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "crypto/random.hpp"
#include "popw/audit.hpp"
#include "popw/chacha20.hpp"
#include "popw/matrix.hpp"
#include "popw/memory.hpp"
#include "popw/message.hpp"

namespace json = boost::json;
using namespace kaisar;
using namespace kaisar::popw;

namespace {

// CPU time of the calling thread: the checker's work runs on one thread.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::vector<std::uint32_t> parse_sizes(const std::string& text) {
  std::vector<std::uint32_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(static_cast<std::uint32_t>(std::stoul(item)));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint32_t> sizes = {1024, 2048, 4096};
  std::uint32_t samples = 128;
  unsigned threads = 0;
  std::uint64_t memory_mib = 256;
  bool exact = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--sizes" && has_value) sizes = parse_sizes(argv[++i]);
    else if (a == "--samples" && has_value) samples = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    else if (a == "--threads" && has_value) threads = static_cast<unsigned>(std::stoul(argv[++i]));
    else if (a == "--memory-mib" && has_value) memory_mib = std::stoull(argv[++i]);
    else if (a == "--no-exact") exact = false;
    else {
      std::cerr << "usage: bench/popw [--sizes 1024,2048,4096] [--samples 128] [--threads N] [--memory-mib 256] [--no-exact]\n";
      return 2;
    }
  }
  for (auto n : sizes) {
    if (auto ok = check_size(n); !ok) {
      std::cerr << ok.error().message << "\n";
      return 2;
    }
  }
  const unsigned cores = thread_count(threads);
  const Kernel best = best_kernel();
  json::object out{{"cores", cores},
                   {"samples", samples},
                   {"best_kernel", kernel_name(best)},
                   {"simd_avx2", simd_uses_avx2()},
                   {"blas_available", blas_available()}};

  for (std::uint32_t n : sizes) {
    const std::string key = "n" + std::to_string(n) + "_";
    const Challenge challenge{crypto::random_hash(), n};
    const double ops = 2.0 * static_cast<double>(n) * n * n;

    // The provider: each kernel on all cores; both must commit to the same root.
    std::optional<Prover> kept;
    double best_s = 0;
    for (Kernel k : {Kernel::kSimd, Kernel::kBlas}) {
      std::cerr << "n=" << n << ": provider, " << kernel_name(k) << " kernel…\n";
      auto prover = Prover::compute(challenge, k, cores);
      if (!prover) {
        std::cerr << prover.error().message << "\n";
        return 1;
      }
      const double s = prover->elapsed().count();
      out[key + std::string(kernel_name(k)) + "_s"] = s;
      out[key + std::string(kernel_name(k)) + "_gops"] = ops / s / 1e9;
      std::cerr << "  " << s << " s (" << ops / s / 1e9 << " Gop/s)\n";
      if (kept && kept->root() != prover->root()) {
        std::cerr << "kernels disagree at n=" << n << "\n";
        return 1;
      }
      if (k == best) best_s = s;
      if (!kept) kept.emplace(std::move(*prover));
    }
    out[key + "provider_s"] = best_s;

    // The checker: audit rows drawn after the root, the provider's openings as JSON text;
    // timed from regenerating B to the last Merkle proof, on one thread.
    ChaChaRng rng = ChaChaRng::from_os();
    const AuditRequest request{sample_rows(n, samples, rng)};
    const std::string answer_text = json::serialize(to_json(*kept->answer(request)));
    std::cerr << "n=" << n << ": checker (fingerprint), " << samples << " rows…\n";
    const double cpu0 = thread_cpu_s();
    const auto wall0 = std::chrono::steady_clock::now();
    auto auditor = Auditor::prepare(challenge, rng);
    const double prepare_cpu = thread_cpu_s() - cpu0;
    auto answer = audit_answer_from_json(*parse_message(answer_text));
    auto verified = answer ? auditor->verify(kept->root(), request.rows, *answer) : Result<void>{};
    const double checker_cpu = thread_cpu_s() - cpu0;
    const double checker_wall = seconds_since(wall0);
    if (!answer || !verified) {
      std::cerr << "honest answer rejected: " << (answer ? verified.error().message : answer.error().message) << "\n";
      return 1;
    }
    out[key + "checker_cpu_s"] = checker_cpu;
    out[key + "checker_prepare_cpu_s"] = prepare_cpu;
    out[key + "checker_wall_s"] = checker_wall;
    out[key + "cost_ratio"] = checker_cpu / best_s;
    out[key + "answer_bytes"] = answer_text.size();
    std::cerr << "  " << checker_cpu << " s CPU (B·r " << prepare_cpu << " s), ratio " << checker_cpu / best_s << "\n";

    if (exact) {
      std::cerr << "n=" << n << ": checker (exact rows)…\n";
      const double e0 = thread_cpu_s();
      auto ok = verify_rows_exact(challenge, kept->root(), request.rows, *answer);
      const double exact_cpu = thread_cpu_s() - e0;
      if (!ok) {
        std::cerr << "exact verifier rejected an honest answer: " << ok.error().message << "\n";
        return 1;
      }
      out[key + "exact_checker_cpu_s"] = exact_cpu;
      std::cerr << "  " << exact_cpu << " s CPU\n";
    }
  }

  if (memory_mib > 0) {
    const MemoryFill fill{crypto::random_hash(), memory_mib << 20, std::uint64_t{1} << 20};
    std::cerr << "memory: filling " << memory_mib << " MiB…\n";
    auto prover = MemoryProver::fill(fill, cores);
    if (!prover) {
      std::cerr << prover.error().message << "\n";
      return 1;
    }
    const double items = static_cast<double>(fill.bytes / kItemBytes);
    out["memory_fill_s"] = prover->fill_elapsed().count();
    out["memory_fill_items_per_s"] = items / prover->fill_elapsed().count();
    ChaChaRng rng = ChaChaRng::from_os();
    const MemoryQuery query = draw_memory_query(fill.bytes / kItemBytes, 1024, 2048, rng);
    const auto t0 = std::chrono::steady_clock::now();
    auto answer = prover->answer(query, cores);
    const double answer_s = seconds_since(t0);
    out["memory_answer_s"] = answer_s;
    out["memory_lookups_per_s"] = 1024.0 * 2048.0 / answer_s;
    const auto cache = MemoryCache::derive(fill);
    const std::vector<std::size_t> sampled = {0, 511, 1023};
    const double v0 = thread_cpu_s();
    auto ok = memory_verify(*cache, query, *answer, sampled);
    out["memory_verify_3_walks_cpu_s"] = thread_cpu_s() - v0;
    if (!ok) {
      std::cerr << "memory verify failed: " << ok.error().message << "\n";
      return 1;
    }
    std::cerr << "  fill " << prover->fill_elapsed().count() << " s, answer " << answer_s << " s\n";
  }
  std::cout << json::serialize(out) << std::endl;
  return 0;
}
