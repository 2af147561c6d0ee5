#pragma once

#include <cstddef>
#include <vector>

#include "core/bytes.hpp"

namespace kaisar::crypto {

// Keccak Merkle tree, compatible with OpenZeppelin's MerkleProof.verify so that Solidity
// contracts can check our proofs:
//   leaf hash   = keccak256(0x00 || leaf_bytes)         (domain-separated from nodes)
//   node hash   = keccak256(0x01 || min(a,b) || max(a,b))  (sorted pair: proofs need no
//                 left/right flags)
//   odd level   = the last node is carried up unchanged
//   empty tree  = 32 zero bytes
// docs/ARCHITECTURE.md repeats this encoding.
Hash32 merkle_leaf_hash(ByteView leaf) noexcept;
Hash32 merkle_node_hash(const Hash32& a, const Hash32& b) noexcept;

class MerkleTree {
 public:
  // Takes leaf hashes (already merkle_leaf_hash'ed).
  explicit MerkleTree(std::vector<Hash32> leaf_hashes);

  const Hash32& root() const { return root_; }
  std::size_t leaf_count() const { return leaf_count_; }
  // Sibling hashes from the leaf up. Fails if index is out of range.
  Result<std::vector<Hash32>> proof(std::size_t index) const;

 private:
  std::vector<std::vector<Hash32>> levels_;
  Hash32 root_{};
  std::size_t leaf_count_ = 0;
};

bool verify_merkle_proof(const Hash32& leaf_hash, const std::vector<Hash32>& proof, const Hash32& root) noexcept;

}  // namespace kaisar::crypto
