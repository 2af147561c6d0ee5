#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace kaisar::popw {

// The work of one compute challenge: C = A·B, A and B n×n int8 matrices derived from the
// seed (docs/popw.md §1–2).
using ChallengeSeed = Hash32;

inline constexpr std::uint32_t kMinN = 64;
inline constexpr std::uint32_t kMaxN = 16384;
inline constexpr std::uint32_t kStepN = 64;  // n is a multiple of this

struct Challenge {
  ChallengeSeed seed{};
  std::uint32_t n = 0;

  friend bool operator==(const Challenge&, const Challenge&) = default;
};

// n in [kMinN, kMaxN] and a multiple of kStepN.
Result<void> check_size(std::uint32_t n) noexcept;

// Which matrix a row belongs to; the value is word 0 of the ChaCha20 nonce.
enum class Matrix : std::uint32_t { kA = 0x41, kB = 0x42 };

// Row `row` of matrix `m`: the first out.size() (= n) keystream bytes of ChaCha20 with
// key = seed, nonce = {m, row, 0}, counter from 0, each byte read as int8.
void matrix_row(const ChallengeSeed& seed, Matrix m, std::uint32_t row, std::span<std::int8_t> out) noexcept;

// The whole n×n matrix, row-major, generated on `threads` threads (0: all cores).
std::vector<std::int8_t> generate_matrix(const ChallengeSeed& seed, Matrix m, std::uint32_t n, unsigned threads = 0);

// Ways to compute the product; all give bit-identical results.
enum class Kernel {
  kNaive,  // triple loop: the reference
  kSimd,   // blocked int16 pair products with int32 accumulators (AVX2 when the CPU has it)
  kBlas,   // OpenBLAS DGEMM on integer-valued doubles; exact because |C[i][k]| ≤ n·2^14 < 2^53
};

std::string_view kernel_name(Kernel kernel) noexcept;
// "naive", "simd" or "blas".
Result<Kernel> kernel_from_name(std::string_view name) noexcept;
// The fastest kernel on this CPU (bench/popw measures both).
Kernel best_kernel() noexcept;
// Whether OpenBLAS could be loaded (kBlas computes with kSimd's code otherwise).
bool blas_available() noexcept;
// Whether kSimd uses AVX2 here (it falls back to portable code otherwise).
bool simd_uses_avx2() noexcept;

// C = A·B exactly in int32, row-major. a and b are row-major n×n (n as check_size wants;
// the caller guarantees sizes). threads: 0 means all cores; kNaive is single-threaded.
std::vector<std::int32_t> multiply(Kernel kernel, std::span<const std::int8_t> a, std::span<const std::int8_t> b,
                                   std::uint32_t n, unsigned threads = 0);

// Threads to use for a request of `threads` (0: all cores).
unsigned thread_count(unsigned threads) noexcept;

}  // namespace kaisar::popw
