#include "popw/audit.hpp"

#include <bit>

#include "crypto/keccak.hpp"

#include <immintrin.h>

#include <algorithm>
#include <numeric>
#include <string>

#include "popw/parallel.hpp"

namespace kaisar::popw {

namespace {

constexpr std::uint64_t kP = (std::uint64_t{1} << 61) - 1;  // Mersenne prime 2^61 − 1

// x mod p for a signed 128-bit x.
std::uint64_t mod_p(__int128 x) noexcept {
  __int128 r = x % static_cast<__int128>(kP);
  if (r < 0) r += kP;
  return static_cast<std::uint64_t>(r);
}

// Σ_k row[k]·w[k] mod p for w[k] < p; |row[k]| < 2^31 keeps the sum inside 2^106.
template <class T>
std::uint64_t dot_mod_p(std::span<const T> row, std::span<const std::uint64_t> w) noexcept {
  __int128 sum = 0;
  for (std::size_t k = 0; k < row.size(); ++k) sum += static_cast<__int128>(row[k]) * static_cast<__int128>(w[k]);
  return mod_p(sum);
}

// The fingerprint vector split into 31-bit limbs: r[k] = hi[k]·2^31 + lo[k]. With int8
// entries every limb sum stays below 2^7·2^31·2^14 = 2^52, so 64-bit integers and doubles
// alike hold it exactly.
struct Limbs {
  std::vector<std::int64_t> lo, hi;
  std::vector<double> lo_d, hi_d;
};

std::uint64_t combine(std::int64_t sum_lo, std::int64_t sum_hi) noexcept {
  return mod_p(static_cast<__int128>(sum_hi) * (std::int64_t{1} << 31) + sum_lo);
}

// Σ_k b[k]·r[k] mod p.
std::uint64_t dot_b_portable(const std::int8_t* b, const Limbs& r, std::size_t n) noexcept {
  std::int64_t sum_lo = 0;
  std::int64_t sum_hi = 0;
  for (std::size_t k = 0; k < n; ++k) {
    sum_lo += b[k] * r.lo[k];
    sum_hi += b[k] * r.hi[k];
  }
  return combine(sum_lo, sum_hi);
}

// The same with AVX2 FMAs on doubles: each product and partial sum is an integer below
// 2^53, so every FMA is exact and the order of summation does not matter.
__attribute__((target("avx2,fma"))) std::uint64_t dot_b_avx2(const std::int8_t* b, const Limbs& r,
                                                             std::size_t n) noexcept {
  __m256d lo0 = _mm256_setzero_pd(), lo1 = _mm256_setzero_pd();
  __m256d hi0 = _mm256_setzero_pd(), hi1 = _mm256_setzero_pd();
  for (std::size_t k = 0; k < n; k += 8) {  // n is a multiple of 64
    const __m256i b32 = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + k)));
    const __m256d x0 = _mm256_cvtepi32_pd(_mm256_castsi256_si128(b32));
    const __m256d x1 = _mm256_cvtepi32_pd(_mm256_extracti128_si256(b32, 1));
    lo0 = _mm256_fmadd_pd(x0, _mm256_loadu_pd(r.lo_d.data() + k), lo0);
    lo1 = _mm256_fmadd_pd(x1, _mm256_loadu_pd(r.lo_d.data() + k + 4), lo1);
    hi0 = _mm256_fmadd_pd(x0, _mm256_loadu_pd(r.hi_d.data() + k), hi0);
    hi1 = _mm256_fmadd_pd(x1, _mm256_loadu_pd(r.hi_d.data() + k + 4), hi1);
  }
  alignas(32) double lo[4], hi[4];
  _mm256_store_pd(lo, _mm256_add_pd(lo0, lo1));
  _mm256_store_pd(hi, _mm256_add_pd(hi0, hi1));
  return combine(static_cast<std::int64_t>(lo[0] + lo[1] + lo[2] + lo[3]),
                 static_cast<std::int64_t>(hi[0] + hi[1] + hi[2] + hi[3]));
}

Result<void> check_request(std::uint32_t n, std::span<const std::uint32_t> rows) {
  if (rows.empty()) return fail(ErrorCode::kInvalidArgument, "rows: no rows requested");
  std::vector<std::uint32_t> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t k = 0; k < sorted.size(); ++k) {
    if (sorted[k] >= n) {
      return fail(ErrorCode::kInvalidArgument,
                  "rows: row " + std::to_string(sorted[k]) + " is out of range (n = " + std::to_string(n) + ")");
    }
    if (k > 0 && sorted[k] == sorted[k - 1]) {
      return fail(ErrorCode::kInvalidArgument, "rows: row " + std::to_string(sorted[k]) + " is requested twice");
    }
  }
  return {};
}

// Shape, order and Merkle checks shared by both verifiers; row_ok judges the values.
template <class RowOk>
Result<void> check_answer(std::uint32_t n, const Hash32& root, std::span<const std::uint32_t> rows,
                          const AuditAnswer& answer, RowOk&& row_ok) {
  if (auto ok = check_request(n, rows); !ok) return ok;
  if (answer.openings.size() != rows.size()) {
    return fail(ErrorCode::kInvalidArgument, "openings: " + std::to_string(answer.openings.size()) +
                                                 " openings for " + std::to_string(rows.size()) + " requested rows");
  }
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const RowOpening& o = answer.openings[k];
    const std::string row = "row " + std::to_string(rows[k]);
    if (o.row != rows[k]) {
      return fail(ErrorCode::kInvalidArgument, "openings: opening " + std::to_string(k) + " is for row " +
                                                   std::to_string(o.row) + ", but " + row + " was requested");
    }
    if (o.values.size() != n) {
      return fail(ErrorCode::kInvalidArgument, row + ": " + std::to_string(o.values.size()) +
                                                   " values, expected n = " + std::to_string(n));
    }
    if (!crypto::verify_merkle_proof(crypto::merkle_leaf_hash(row_leaf(o.row, o.values)), o.proof, root)) {
      return fail(ErrorCode::kInvalidArgument, row + ": the Merkle proof does not lead to the committed root");
    }
    if (!row_ok(o)) {
      return fail(ErrorCode::kInvalidArgument, row + ": the values are not this row of A·B");
    }
  }
  return {};
}

std::vector<Hash32> hash_rows(std::uint32_t n, std::span<const std::int32_t> product, unsigned threads) {
  std::vector<Hash32> leaves(n);
  parallel_for(n, thread_count(threads), [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      leaves[i] = crypto::merkle_leaf_hash(row_leaf(static_cast<std::uint32_t>(i), product.subspan(i * n, n)));
    }
  });
  return leaves;
}

}  // namespace

Bytes row_leaf(std::uint32_t row, std::span<const std::int32_t> values) {
  // SHA-256 of the row, not Keccak: the rows are 4n bytes each (64 MiB at n = 4096) and
  // SHA-256 runs on the CPU's SHA extensions several times faster; only the 36-byte leaf
  // enters the Keccak tree (docs/popw.md §3).
  Hash32 digest;
  if constexpr (std::endian::native == std::endian::little) {
    digest = crypto::sha256({reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * 4});
  } else {
    Bytes le(4 * values.size());
    std::size_t at = 0;
    for (std::int32_t v : values) {
      const auto u = static_cast<std::uint32_t>(v);
      for (int b = 0; b < 4; ++b) le[at++] = static_cast<std::uint8_t>(u >> (8 * b));
    }
    digest = crypto::sha256(le);
  }
  Bytes leaf(4 + digest.size());
  for (int b = 0; b < 4; ++b) leaf[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(row >> (24 - 8 * b));
  std::copy(digest.begin(), digest.end(), leaf.begin() + 4);
  return leaf;
}

Commitment::Commitment(std::uint32_t n, std::vector<std::int32_t> product, unsigned threads)
    : n_(n), product_(std::move(product)), tree_(hash_rows(n_, product_, threads)) {}

Result<RowOpening> Commitment::open(std::uint32_t row) const {
  if (row >= n_) {
    return fail(ErrorCode::kInvalidArgument,
                "row " + std::to_string(row) + " is out of range (n = " + std::to_string(n_) + ")");
  }
  auto proof = tree_.proof(row);
  if (!proof) return std::unexpected(proof.error());
  const auto values = std::span(product_).subspan(std::size_t{row} * n_, n_);
  return RowOpening{row, {values.begin(), values.end()}, std::move(*proof)};
}

Result<AuditAnswer> Commitment::answer(const AuditRequest& request) const {
  AuditAnswer answer;
  answer.openings.reserve(request.rows.size());
  for (std::uint32_t row : request.rows) {
    auto opening = open(row);
    if (!opening) return std::unexpected(opening.error());
    answer.openings.push_back(std::move(*opening));
  }
  return answer;
}

Result<Prover> Prover::compute(const Challenge& challenge, Kernel kernel, unsigned threads) {
  if (auto ok = check_size(challenge.n); !ok) return std::unexpected(ok.error());
  const auto start = std::chrono::steady_clock::now();
  const auto a = generate_matrix(challenge.seed, Matrix::kA, challenge.n, threads);
  const auto b = generate_matrix(challenge.seed, Matrix::kB, challenge.n, threads);
  Commitment commitment(challenge.n, multiply(kernel, a, b, challenge.n, threads), threads);
  return Prover(std::move(commitment), std::chrono::steady_clock::now() - start);
}

std::vector<std::uint32_t> sample_rows(std::uint32_t n, std::uint32_t count, ChaChaRng& rng) {
  std::vector<std::uint32_t> all(n);
  std::iota(all.begin(), all.end(), 0U);
  count = std::min(count, n);
  for (std::uint32_t k = 0; k < count; ++k) {  // partial Fisher–Yates
    const auto pick = k + static_cast<std::uint32_t>(rng.below(n - k));
    std::swap(all[k], all[pick]);
  }
  all.resize(count);
  return all;
}

Result<Auditor> Auditor::prepare(const Challenge& challenge) {
  ChaChaRng rng = ChaChaRng::from_os();
  return prepare(challenge, rng);
}

Result<Auditor> Auditor::prepare(const Challenge& challenge, ChaChaRng& rng) {
  if (auto ok = check_size(challenge.n); !ok) return std::unexpected(ok.error());
  const std::size_t n = challenge.n;
  std::vector<std::uint64_t> r(n);
  Limbs limbs;
  for (std::size_t k = 0; k < n; ++k) {
    r[k] = rng.below(kP);
    limbs.lo.push_back(static_cast<std::int64_t>(r[k] & 0x7fffffffU));
    limbs.hi.push_back(static_cast<std::int64_t>(r[k] >> 31));
    limbs.lo_d.push_back(static_cast<double>(limbs.lo.back()));
    limbs.hi_d.push_back(static_cast<double>(limbs.hi.back()));
  }
  static const bool has_fma = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
  }();
  const auto dot_b = has_fma ? dot_b_avx2 : dot_b_portable;
  std::vector<std::uint64_t> v(n);
  std::vector<std::int8_t> row(n);
  for (std::size_t j = 0; j < n; ++j) {  // v = B·r, one regenerated row of B at a time
    matrix_row(challenge.seed, Matrix::kB, static_cast<std::uint32_t>(j), row);
    v[j] = dot_b(row.data(), limbs, n);
  }
  return Auditor(challenge, std::move(r), std::move(v));
}

Result<void> Auditor::verify(const Hash32& root, std::span<const std::uint32_t> rows, const AuditAnswer& answer) const {
  std::vector<std::int8_t> a_row(challenge_.n);
  return check_answer(challenge_.n, root, rows, answer, [&](const RowOpening& o) {
    matrix_row(challenge_.seed, Matrix::kA, o.row, a_row);
    return dot_mod_p<std::int32_t>(o.values, r_) == dot_mod_p<std::int8_t>(a_row, v_);
  });
}

Result<void> verify_rows_exact(const Challenge& challenge, const Hash32& root, std::span<const std::uint32_t> rows,
                               const AuditAnswer& answer) {
  if (auto ok = check_size(challenge.n); !ok) return ok;
  const std::size_t n = challenge.n;
  const std::vector<std::int8_t> b = generate_matrix(challenge.seed, Matrix::kB, challenge.n, 1);
  std::vector<std::int8_t> a_row(n);
  std::vector<std::int32_t> c_row(n);
  return check_answer(challenge.n, root, rows, answer, [&](const RowOpening& o) {
    matrix_row(challenge.seed, Matrix::kA, o.row, a_row);
    std::fill(c_row.begin(), c_row.end(), 0);
    for (std::size_t j = 0; j < n; ++j) {
      const std::int32_t a = a_row[j];
      const std::int8_t* b_row = b.data() + j * n;
      for (std::size_t k = 0; k < n; ++k) c_row[k] += a * b_row[k];
    }
    return std::equal(c_row.begin(), c_row.end(), o.values.begin());
  });
}

}  // namespace kaisar::popw
