#include "popw/matrix.hpp"

#include <dlfcn.h>
#include <immintrin.h>

#include <cstring>
#include <string>

#include "popw/chacha20.hpp"
#include "popw/parallel.hpp"

namespace kaisar::popw {

namespace {

// Blocking of the SIMD kernel: a tile is kRows rows × kPanel columns of C; the K dimension
// is walked kDepth at a time so that a panel slice of B (kDepth/2 pair rows × 128 bytes)
// stays in L1 while kBlockRows rows of A pass over it.
constexpr std::size_t kRows = 4;
constexpr std::size_t kPanel = 32;
constexpr std::size_t kDepth = 256;
constexpr std::size_t kBlockRows = 64;

// B packed for pair products: panel p (columns 32p..32p+31), pair row q (rows 2q, 2q+1)
// holds for each column c the two int16 values B[2q][c], B[2q+1][c] side by side.
std::vector<std::int16_t> pack_b(std::span<const std::int8_t> b, std::size_t n, unsigned threads) {
  std::vector<std::int16_t> packed(n * n);
  const std::size_t panels = n / kPanel;
  parallel_for(panels, threads, [&](std::size_t begin, std::size_t end) {
    for (std::size_t p = begin; p < end; ++p) {
      for (std::size_t q = 0; q < n / 2; ++q) {
        std::int16_t* out = packed.data() + (p * (n / 2) + q) * 2 * kPanel;
        const std::int8_t* row0 = b.data() + 2 * q * n + p * kPanel;
        const std::int8_t* row1 = row0 + n;
        for (std::size_t c = 0; c < kPanel; ++c) {
          out[2 * c] = row0[c];
          out[2 * c + 1] = row1[c];
        }
      }
    }
  });
  return packed;
}

inline std::int32_t load_pair(const std::int16_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Adds the kRows×kPanel tile A[rows, depth]·B[depth, panel] into c. a points at the first
// row's first depth element (lda apart), panel at the first pair row of the slice.
void tile_portable(const std::int16_t* a, std::size_t lda, const std::int16_t* panel, std::size_t pairs,
                   std::int32_t* c, std::size_t ldc) noexcept {
  std::int32_t acc[kRows][kPanel] = {};
  for (std::size_t q = 0; q < pairs; ++q) {
    const std::int16_t* bq = panel + q * 2 * kPanel;
    for (std::size_t r = 0; r < kRows; ++r) {
      const std::int32_t a0 = a[r * lda + 2 * q];
      const std::int32_t a1 = a[r * lda + 2 * q + 1];
      for (std::size_t col = 0; col < kPanel; ++col) acc[r][col] += a0 * bq[2 * col] + a1 * bq[2 * col + 1];
    }
  }
  for (std::size_t r = 0; r < kRows; ++r) {
    for (std::size_t col = 0; col < kPanel; ++col) c[r * ldc + col] += acc[r][col];
  }
}

// The same tile with AVX2: vpmaddwd multiplies 16 int16 pairs and adds each pair into an
// int32 lane, which is exact (|a0·b0 + a1·b1| ≤ 2^15).
__attribute__((target("avx2"))) void tile_avx2(const std::int16_t* a, std::size_t lda, const std::int16_t* panel,
                                               std::size_t pairs, std::int32_t* c, std::size_t ldc) noexcept {
  for (std::size_t half = 0; half < 2; ++half) {
    __m256i acc[kRows][2];
    for (auto& row : acc) row[0] = row[1] = _mm256_setzero_si256();
    const std::int16_t* b = panel + half * kPanel;
    for (std::size_t q = 0; q < pairs; ++q) {
      const std::int16_t* bq = b + q * 2 * kPanel;
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bq));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bq + 16));
      for (std::size_t r = 0; r < kRows; ++r) {
        const __m256i ar = _mm256_set1_epi32(load_pair(a + r * lda + 2 * q));
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(ar, b0));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(ar, b1));
      }
    }
    for (std::size_t r = 0; r < kRows; ++r) {
      for (std::size_t v = 0; v < 2; ++v) {
        auto* out = reinterpret_cast<__m256i*>(c + r * ldc + half * 16 + v * 8);
        _mm256_storeu_si256(out, _mm256_add_epi32(_mm256_loadu_si256(out), acc[r][v]));
      }
    }
  }
}

bool cpu_has_avx2() noexcept {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

std::vector<std::int32_t> multiply_naive(std::span<const std::int8_t> a, std::span<const std::int8_t> b, std::size_t n) {
  std::vector<std::int32_t> c(n * n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < n; ++k) {
      std::int32_t sum = 0;
      for (std::size_t j = 0; j < n; ++j) sum += std::int32_t{a[i * n + j]} * std::int32_t{b[j * n + k]};
      c[i * n + k] = sum;
    }
  }
  return c;
}

std::vector<std::int32_t> multiply_simd(std::span<const std::int8_t> a, std::span<const std::int8_t> b, std::size_t n,
                                        unsigned threads) {
  const std::vector<std::int16_t> packed = pack_b(b, n, threads);
  std::vector<std::int16_t> wide(n * n);
  std::vector<std::int32_t> c(n * n, 0);
  const auto tile = cpu_has_avx2() ? tile_avx2 : tile_portable;
  parallel_for(n / kRows, threads, [&](std::size_t tile_begin, std::size_t tile_end) {
    const std::size_t r0 = tile_begin * kRows;
    const std::size_t r1 = tile_end * kRows;
    for (std::size_t i = r0 * n; i < r1 * n; ++i) wide[i] = a[i];
    for (std::size_t d0 = 0; d0 < n; d0 += kDepth) {
      const std::size_t pairs = std::min(kDepth, n - d0) / 2;
      for (std::size_t m0 = r0; m0 < r1; m0 += kBlockRows) {
        const std::size_t m1 = std::min(m0 + kBlockRows, r1);
        for (std::size_t p = 0; p < n / kPanel; ++p) {
          const std::int16_t* panel = packed.data() + (p * (n / 2) + d0 / 2) * 2 * kPanel;
          for (std::size_t i = m0; i < m1; i += kRows) {
            tile(wide.data() + i * n + d0, n, panel, pairs, c.data() + i * n + p * kPanel, n);
          }
        }
      }
    }
  });
  return c;
}

// OpenBLAS is loaded when the blas kernel is first used rather than linked: a linked
// OpenBLAS starts its thread pool before main() runs, and those threads would receive the
// SIGTERM and SIGINT that Kaisar's processes block in every thread to shut down cleanly.
struct Blas {
  // cblas_dgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
  using Dgemm = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double, double*,
                         int);
  using SetThreads = void (*)(int);
  Dgemm dgemm = nullptr;
  SetThreads set_threads = nullptr;
};

const Blas* blas() noexcept {
  static const Blas loaded = [] {
    Blas b;
    for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
      void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) continue;
      b.dgemm = reinterpret_cast<Blas::Dgemm>(dlsym(handle, "cblas_dgemm"));
      b.set_threads = reinterpret_cast<Blas::SetThreads>(dlsym(handle, "openblas_set_num_threads"));
      if (b.dgemm != nullptr) break;
      dlclose(handle);
    }
    return b;
  }();
  return loaded.dgemm != nullptr ? &loaded : nullptr;
}

std::vector<std::int32_t> multiply_blas(std::span<const std::int8_t> a, std::span<const std::int8_t> b, std::size_t n,
                                        unsigned threads) {
  const Blas* lib = blas();
  if (lib == nullptr) return multiply_simd(a, b, n, threads);  // the same bits, without OpenBLAS
  std::vector<double> da(a.begin(), a.end());
  std::vector<double> db(b.begin(), b.end());
  std::vector<double> dc(n * n);
  if (lib->set_threads != nullptr) lib->set_threads(static_cast<int>(threads));
  constexpr int kRowMajor = 101, kNoTrans = 111;  // CBLAS_ORDER, CBLAS_TRANSPOSE values
  const auto ni = static_cast<int>(n);
  lib->dgemm(kRowMajor, kNoTrans, kNoTrans, ni, ni, ni, 1.0, da.data(), ni, db.data(), ni, 0.0, dc.data(), ni);
  std::vector<std::int32_t> c(n * n);
  // Every value is an integer below 2^53 in magnitude, so the conversion is exact.
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<std::int32_t>(dc[i]);
  return c;
}

}  // namespace

Result<void> check_size(std::uint32_t n) noexcept {
  if (n < kMinN || n > kMaxN || n % kStepN != 0) {
    return fail(ErrorCode::kInvalidArgument, "n must be a multiple of " + std::to_string(kStepN) + " between " +
                                                 std::to_string(kMinN) + " and " + std::to_string(kMaxN) + ", got " +
                                                 std::to_string(n));
  }
  return {};
}

void matrix_row(const ChallengeSeed& seed, Matrix m, std::uint32_t row, std::span<std::int8_t> out) noexcept {
  const ChaChaNonce nonce{static_cast<std::uint32_t>(m), row, 0};
  chacha20_keystream(seed, nonce, 0, {reinterpret_cast<std::uint8_t*>(out.data()), out.size()});
}

std::vector<std::int8_t> generate_matrix(const ChallengeSeed& seed, Matrix m, std::uint32_t n, unsigned threads) {
  std::vector<std::int8_t> out(std::size_t{n} * n);
  parallel_for(n, thread_count(threads), [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      matrix_row(seed, m, static_cast<std::uint32_t>(i), std::span(out).subspan(i * n, n));
    }
  });
  return out;
}

std::string_view kernel_name(Kernel kernel) noexcept {
  switch (kernel) {
    case Kernel::kNaive: return "naive";
    case Kernel::kSimd: return "simd";
    case Kernel::kBlas: return "blas";
  }
  return "unknown";
}

Result<Kernel> kernel_from_name(std::string_view name) noexcept {
  for (Kernel k : {Kernel::kNaive, Kernel::kSimd, Kernel::kBlas}) {
    if (name == kernel_name(k)) return k;
  }
  return fail(ErrorCode::kInvalidArgument,
              "unknown kernel \"" + std::string(name) + "\"; use naive, simd or blas");
}

Kernel best_kernel() noexcept { return cpu_has_avx2() || blas() == nullptr ? Kernel::kSimd : Kernel::kBlas; }

bool blas_available() noexcept { return blas() != nullptr; }

bool simd_uses_avx2() noexcept { return cpu_has_avx2(); }

unsigned thread_count(unsigned threads) noexcept {
  if (threads != 0) return threads;
  return std::max(1U, std::thread::hardware_concurrency());
}

std::vector<std::int32_t> multiply(Kernel kernel, std::span<const std::int8_t> a, std::span<const std::int8_t> b,
                                   std::uint32_t n, unsigned threads) {
  switch (kernel) {
    case Kernel::kNaive: return multiply_naive(a, b, n);
    case Kernel::kSimd: return multiply_simd(a, b, n, thread_count(threads));
    case Kernel::kBlas: return multiply_blas(a, b, n, thread_count(threads));
  }
  return {};
}

}  // namespace kaisar::popw
