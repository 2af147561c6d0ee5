#pragma once

#include <boost/json/value.hpp>

#include <cstdint>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"
#include "eth/rpc.hpp"
#include "eth/wallet_signer.hpp"

namespace kaisar::chain {

// ProviderRegistry's binding of a node key to its owner wallet, as EIP-712 typed data:
// Binding(address node,address owner,uint256 nonce) in the domain {name "Kaisar
// ProviderRegistry", version "1", chainId, verifyingContract}. The node key signs it (and
// the owner too when the operator relays it), so a signature never replays on another
// chain or deployment, nor after the node is released (its nonce grows).
struct NodeBinding {
  std::uint64_t chain_id = 0;
  crypto::Address registry;
  crypto::Address node;
  crypto::Address owner;
  std::uint64_t nonce = 0;
};

// The typed data a wallet signs with eth_signTypedData_v4.
boost::json::value typed_data(const NodeBinding& binding);
Result<Hash32> binding_digest(const NodeBinding& binding);

// The registry's current nonce for `node` (it grows each time the node is released).
Result<std::uint64_t> registry_nonce(eth::RpcClient& rpc, const crypto::Address& registry, const crypto::Address& node);

// The owner binds its node on chain with its own transaction: the node key signs the binding
// (chain id and nonce read from the node), the owner sends ProviderRegistry.register.
// kConflict when the registry refuses (e.g. the node belongs to another owner).
Result<eth::Receipt> register_node(eth::RpcClient& rpc, const crypto::PrivateKey& owner, eth::NonceManager& nonces,
                                   const crypto::Address& registry, const crypto::PrivateKey& node_key);

}  // namespace kaisar::chain
