// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";

/// @title ProviderRegistry
/// @notice Binds a node id (the address of the node key) to its owner wallet. Every binding
/// carries the node key's signature, so nobody can claim a node whose key they do not hold;
/// the owner binds with its own transaction (register), or the operator relays the owner's
/// signature too (registerFor). Signatures are EIP-712 over
/// Binding(address node,address owner,uint256 nonce) in the domain
/// {name "Kaisar ProviderRegistry", version "1", chainId, verifyingContract}, so none replays
/// on another chain or deployment; a node's nonce grows on release, so none replays after.
/// A node stays with its first owner until that owner releases it.
contract ProviderRegistry is Operated {
    error NodeTaken(address currentOwner);
    error NotNodeOwner();
    error BadSignature();

    event NodeBound(address indexed node, address indexed owner, bool relayed);
    event NodeReleased(address indexed node, address indexed owner);

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant BINDING_TYPEHASH = keccak256("Binding(address node,address owner,uint256 nonce)");
    bytes32 private constant NAME_HASH = keccak256("Kaisar ProviderRegistry");
    bytes32 private constant VERSION_HASH = keccak256("1");

    /// @dev secp256k1n / 2: signatures with a higher s are malleable copies
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    mapping(address => address) public ownerOf;
    mapping(address => uint256) public nonceOf;

    /// @dev Computed per call (not cached) so that a fork with another chain id gets its own.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// @notice The EIP-712 digest that both the node key and the owner sign to bind `node`
    /// to `owner_` now (eth_signTypedData_v4 of the Binding struct with nonceOf[node]).
    function bindingDigest(address node, address owner_) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(BINDING_TYPEHASH, node, owner_, nonceOf[node]));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice Binds `node` to the caller; `nodeSignature` is the node key's signature of
    /// bindingDigest(node, caller), 65 bytes r || s || v (v 27/28 or 0/1).
    function register(address node, bytes calldata nodeSignature) external {
        if (_recover(bindingDigest(node, msg.sender), nodeSignature) != node) revert BadSignature();
        _bind(node, msg.sender, false);
    }

    /// @notice Binds `node` to `owner_` with both signatures of bindingDigest(node, owner_).
    function registerFor(address node, address owner_, bytes calldata ownerSignature, bytes calldata nodeSignature)
        external
        onlyOperator
    {
        if (owner_ == address(0)) revert ZeroAddress();
        bytes32 digest = bindingDigest(node, owner_);
        if (_recover(digest, ownerSignature) != owner_) revert BadSignature();
        if (_recover(digest, nodeSignature) != node) revert BadSignature();
        _bind(node, owner_, true);
    }

    /// @notice The owner gives the node up; anyone holding the node key may then bind it.
    function release(address node) external {
        if (ownerOf[node] != msg.sender || msg.sender == address(0)) revert NotNodeOwner();
        delete ownerOf[node];
        ++nonceOf[node];
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
