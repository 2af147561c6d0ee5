// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";

/// @title ProviderRegistry
/// @notice Binds a node id (the address of the node key) to its owner wallet. The owner
/// binds with its own transaction (register), or the operator relays the owner's EIP-191
/// signature (registerFor). A node stays with its first owner until that owner releases it.
contract ProviderRegistry is Operated {
    error NodeTaken(address currentOwner);
    error NotNodeOwner();
    error BadSignature();

    event NodeBound(address indexed node, address indexed owner, bool relayed);
    event NodeReleased(address indexed node, address indexed owner);

    /// @dev secp256k1n / 2: signatures with a higher s are malleable copies
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    mapping(address => address) public ownerOf;

    /// @notice The 32 bytes the owner signs with personal_sign (EIP-191 version 0x45):
    /// keccak256("Kaisar provider binding" || node (20 bytes) || owner (20 bytes)).
    function bindingHash(address node, address owner_) public pure returns (bytes32) {
        return keccak256(abi.encodePacked("Kaisar provider binding", node, owner_));
    }

    /// @notice Binds `node` to the caller.
    function register(address node) external {
        _bind(node, msg.sender, false);
    }

    /// @notice Binds `node` to `owner_`, authorized by `signature` = personal_sign(owner_,
    /// bindingHash(node, owner_)) as 65 bytes r || s || v (v 27/28 or 0/1).
    function registerFor(address node, address owner_, bytes calldata signature) external onlyOperator {
        if (owner_ == address(0)) revert ZeroAddress();
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", bindingHash(node, owner_)));
        if (_recover(digest, signature) != owner_) revert BadSignature();
        _bind(node, owner_, true);
    }

    /// @notice The owner gives the node up; anyone may then bind it.
    function release(address node) external {
        if (ownerOf[node] != msg.sender || msg.sender == address(0)) revert NotNodeOwner();
        delete ownerOf[node];
        emit NodeReleased(node, msg.sender);
    }

    /// @dev Binding again to the same owner is a no-op (safe to retry).
    function _bind(address node, address owner_, bool relayed) private {
        if (node == address(0)) revert ZeroAddress();
        address current = ownerOf[node];
        if (current == owner_) return;
        if (current != address(0)) revert NodeTaken(current);
        ownerOf[node] = owner_;
        emit NodeBound(node, owner_, relayed);
    }

    function _recover(bytes32 digest, bytes calldata sig) private pure returns (address) {
        if (sig.length != 65) revert BadSignature();
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert BadSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert BadSignature();
        return signer;
    }
}
