// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @notice Kaisar's Merkle encoding (docs/ARCHITECTURE.md, src/crypto/merkle.hpp):
/// leaf = keccak256(0x00 || leaf_bytes); node = keccak256(0x01 || min(a,b) || max(a,b)).
library MerkleVerify {
    function nodeHash(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b
            ? keccak256(abi.encodePacked(bytes1(0x01), a, b))
            : keccak256(abi.encodePacked(bytes1(0x01), b, a));
    }

    function verify(bytes32 leaf, bytes32[] calldata proof, bytes32 root) internal pure returns (bool) {
        bytes32 h = leaf;
        for (uint256 i = 0; i < proof.length; ++i) {
            h = nodeHash(h, proof[i]);
        }
        return h == root;
    }
}
