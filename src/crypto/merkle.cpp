#include "crypto/merkle.hpp"

#include <algorithm>

#include "crypto/keccak.hpp"

namespace kaisar::crypto {

Hash32 merkle_leaf_hash(ByteView leaf) noexcept {
  Bytes data;
  data.reserve(leaf.size() + 1);
  data.push_back(0x00);
  data.insert(data.end(), leaf.begin(), leaf.end());
  return keccak256(ByteView(data));
}

Hash32 merkle_node_hash(const Hash32& a, const Hash32& b) noexcept {
  std::array<std::uint8_t, 65> data{};
  data[0] = 0x01;
  const bool a_first = a <= b;
  const Hash32& lo = a_first ? a : b;
  const Hash32& hi = a_first ? b : a;
  std::copy(lo.begin(), lo.end(), data.begin() + 1);
  std::copy(hi.begin(), hi.end(), data.begin() + 33);
  return keccak256(ByteView(data));
}

MerkleTree::MerkleTree(std::vector<Hash32> leaf_hashes) : leaf_count_(leaf_hashes.size()) {
  if (leaf_hashes.empty()) return;  // root stays 32 zero bytes
  levels_.push_back(std::move(leaf_hashes));
  while (levels_.back().size() > 1) {
    const std::vector<Hash32>& below = levels_.back();
    std::vector<Hash32> above;
    above.reserve((below.size() + 1) / 2);
    for (std::size_t i = 0; i + 1 < below.size(); i += 2) above.push_back(merkle_node_hash(below[i], below[i + 1]));
    if (below.size() % 2 == 1) above.push_back(below.back());  // odd node is carried up
    levels_.push_back(std::move(above));
  }
  root_ = levels_.back().front();
}

Result<std::vector<Hash32>> MerkleTree::proof(std::size_t index) const {
  if (index >= leaf_count_) {
    return fail(ErrorCode::kInvalidArgument, "leaf index " + std::to_string(index) + " is out of range (tree has " +
                                                 std::to_string(leaf_count_) + " leaves)");
  }
  std::vector<Hash32> siblings;
  for (std::size_t level = 0; level + 1 < levels_.size(); ++level) {
    const std::size_t sibling = index ^ 1U;
    // A carried-up node has no sibling on this level and contributes nothing to the proof.
    if (sibling < levels_[level].size()) siblings.push_back(levels_[level][sibling]);
    index /= 2;
  }
  return siblings;
}

bool verify_merkle_proof(const Hash32& leaf_hash, const std::vector<Hash32>& proof, const Hash32& root) noexcept {
  Hash32 node = leaf_hash;
  for (const Hash32& sibling : proof) node = merkle_node_hash(node, sibling);
  return node == root;
}

}  // namespace kaisar::crypto
