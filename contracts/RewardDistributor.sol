// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";
import "./TokenTransfer.sol";
import "./MerkleVerify.sol";

/// @title RewardDistributor
/// @notice Per-epoch Merkle roots of ERC-20 rewards (providers, checkers, zero nodes).
/// The operator sets each epoch's root once; anyone funds the contract (fund() or a plain
/// transfer); anyone may submit a claim, the tokens always go to `account`.
/// Leaf bytes are abi.encodePacked(account, amount) (20 + 32 bytes); each account may claim
/// once per epoch, so the tree must hold at most one leaf per account.
contract RewardDistributor is Operated {
    using TokenTransfer for IERC20;

    error RootAlreadySet();
    error NoRoot();
    error AlreadyClaimed();
    error InvalidProof();
    error ZeroAmount();

    event RootSet(uint64 indexed epoch, bytes32 root, uint256 total);
    event Funded(address indexed from, uint256 amount);
    event Claimed(uint64 indexed epoch, address indexed account, uint256 amount);

    IERC20 public immutable token;
    mapping(uint64 => bytes32) public rootOf;
    mapping(uint64 => mapping(address => bool)) public claimed;

    constructor(IERC20 token_) {
        if (address(token_) == address(0)) revert ZeroAddress();
        token = token_;
    }

    /// @param total the sum of the epoch's leaves, informational (for indexers)
    function setRoot(uint64 epoch, bytes32 root, uint256 total) external onlyOperator {
        if (root == bytes32(0)) revert NoRoot();
        if (rootOf[epoch] != bytes32(0)) revert RootAlreadySet();
        rootOf[epoch] = root;
        emit RootSet(epoch, root, total);
    }

    function fund(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        token.pull(msg.sender, address(this), amount);
        emit Funded(msg.sender, amount);
    }

    function leafHash(address account, uint256 amount) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x00), account, amount));
    }

    function claim(uint64 epoch, address account, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        bytes32 root = rootOf[epoch];
        if (root == bytes32(0)) revert NoRoot();
        if (claimed[epoch][account]) revert AlreadyClaimed();
        if (!MerkleVerify.verify(leafHash(account, amount), proof, root)) revert InvalidProof();
        claimed[epoch][account] = true;
        token.send(account, amount);
        emit Claimed(epoch, account, amount);
    }
}
