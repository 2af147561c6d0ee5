// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";

/// @title EpochLog
/// @notice Append-only log of each epoch's Merkle root (signed checks, heartbeats, usage),
/// posted by the operator. Epochs start at 0 and must be posted in order, each exactly once.
/// Gas does not depend on the number of leaves.
contract EpochLog is Operated {
    error WrongEpoch(uint64 expected);

    event RootPosted(uint64 indexed epoch, bytes32 root, uint64 leafCount);

    struct Entry {
        bytes32 root;
        uint64 leafCount;
        uint64 postedAt;
    }

    uint64 public nextEpoch;
    mapping(uint64 => Entry) private _entries;

    function postRoot(uint64 epoch, bytes32 root, uint64 leafCount) external onlyOperator {
        if (epoch != nextEpoch) revert WrongEpoch(nextEpoch);
        unchecked {
            nextEpoch = epoch + 1;
        }
        _entries[epoch] = Entry(root, leafCount, uint64(block.timestamp));
        emit RootPosted(epoch, root, leafCount);
    }

    /// @return root zero for an epoch not posted yet (also the empty tree's root: check `posted`)
    function epochOf(uint64 epoch) external view returns (bytes32 root, uint64 leafCount, uint64 postedAt, bool posted) {
        Entry memory e = _entries[epoch];
        return (e.root, e.leafCount, e.postedAt, epoch < nextEpoch);
    }
}
