#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/merkle.hpp"
#include "popw/chacha20.hpp"
#include "popw/matrix.hpp"

namespace kaisar::popw {

// One committed row of C with its Merkle proof.
struct RowOpening {
  std::uint32_t row = 0;
  std::vector<std::int32_t> values;  // n values
  std::vector<Hash32> proof;         // siblings from the leaf up (crypto::MerkleTree::proof)

  friend bool operator==(const RowOpening&, const RowOpening&) = default;
};

struct AuditRequest {
  std::vector<std::uint32_t> rows;

  friend bool operator==(const AuditRequest&, const AuditRequest&) = default;
};

struct AuditAnswer {
  std::vector<RowOpening> openings;  // one per requested row, in the request's order

  friend bool operator==(const AuditAnswer&, const AuditAnswer&) = default;
};

// Leaf bytes of row i: uint32 big-endian i || SHA-256 of the n values as int32 little-endian.
Bytes row_leaf(std::uint32_t row, std::span<const std::int32_t> values);

// A product matrix (row-major n×n) and the Merkle tree over its rows; the root is what a
// provider commits to.
class Commitment {
 public:
  Commitment(std::uint32_t n, std::vector<std::int32_t> product, unsigned threads = 0);

  const Hash32& root() const noexcept { return tree_.root(); }
  std::uint32_t n() const noexcept { return n_; }
  std::span<const std::int32_t> product() const noexcept { return product_; }

  Result<RowOpening> open(std::uint32_t row) const;
  // Openings for every requested row, in order; fails on a row ≥ n.
  Result<AuditAnswer> answer(const AuditRequest& request) const;

 private:
  std::uint32_t n_;
  std::vector<std::int32_t> product_;
  crypto::MerkleTree tree_;
};

// The provider's side: computes C = A·B for a challenge and commits to it.
class Prover {
 public:
  // elapsed() covers generating A and B, the product and the Merkle tree.
  static Result<Prover> compute(const Challenge& challenge, Kernel kernel, unsigned threads = 0);

  const Hash32& root() const noexcept { return commitment_.root(); }
  std::chrono::duration<double> elapsed() const noexcept { return elapsed_; }
  const Commitment& commitment() const noexcept { return commitment_; }
  Result<RowOpening> open(std::uint32_t row) const { return commitment_.open(row); }
  Result<AuditAnswer> answer(const AuditRequest& request) const { return commitment_.answer(request); }

 private:
  Prover(Commitment commitment, std::chrono::duration<double> elapsed)
      : commitment_(std::move(commitment)), elapsed_(elapsed) {}

  Commitment commitment_;
  std::chrono::duration<double> elapsed_;
};

// `count` distinct rows in [0, n), uniformly, in the order drawn. The checker must draw
// them only after it holds the provider's root. Requires count ≤ n.
std::vector<std::uint32_t> sample_rows(std::uint32_t n, std::uint32_t count, ChaChaRng& rng);

// The checker's side with Freivalds fingerprints over GF(p), p = 2^61 − 1: a secret
// random r and v = B·r mod p, computed once per challenge in O(n²); each opened row then
// costs O(n) to check: Σ_k C[i][k]·r[k] ≡ Σ_j A[i][j]·v[j] (mod p). A wrong row passes
// with probability ≤ 1/p. r never leaves the Auditor.
class Auditor {
 public:
  static Result<Auditor> prepare(const Challenge& challenge, ChaChaRng& rng);
  static Result<Auditor> prepare(const Challenge& challenge);  // r from the OS CSPRNG

  // Accepts iff `answer` opens exactly `rows` (distinct, < n, same order), every proof
  // leads to `root` and every row passes the fingerprint. The error names the first
  // failing row.
  Result<void> verify(const Hash32& root, std::span<const std::uint32_t> rows, const AuditAnswer& answer) const;

 private:
  Auditor(Challenge challenge, std::vector<std::uint64_t> r, std::vector<std::uint64_t> v)
      : challenge_(challenge), r_(std::move(r)), v_(std::move(v)) {}

  Challenge challenge_;
  std::vector<std::uint64_t> r_;
  std::vector<std::uint64_t> v_;
};

// Same acceptance as Auditor::verify, but each row is recomputed exactly (O(n²) per row):
// the reference for disputes. Both verifiers accept the same answers (up to the 1/p
// fingerprint error).
Result<void> verify_rows_exact(const Challenge& challenge, const Hash32& root, std::span<const std::uint32_t> rows,
                               const AuditAnswer& answer);

}  // namespace kaisar::popw
