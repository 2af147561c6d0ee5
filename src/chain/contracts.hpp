#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"
#include "eth/abi.hpp"
#include "eth/rpc.hpp"
#include "eth/wallet_signer.hpp"

namespace kaisar::chain {

// One compiled contract from contracts/: its ABI (JSON text) and init code (hex, no 0x).
struct Artifact {
  std::string_view name;
  std::string_view abi_json;
  std::string_view bytecode_hex;
};

// Every contract compiled into this binary (generated at build time by solcjs).
std::span<const Artifact> artifacts();
// kNotFound for a name that is not compiled in.
Result<Artifact> artifact(std::string_view name);

// Where Kaisar's contracts live on one chain.
struct Deployment {
  std::uint64_t chain_id = 0;
  crypto::Address token;        // ERC-20 payments are made in (KaiToken on dev chains)
  crypto::Address points;       // RewardPoints
  crypto::Address escrow;       // LeaseEscrow
  crypto::Address epoch_log;    // EpochLog
  crypto::Address distributor;  // RewardDistributor
  crypto::Address registry;     // ProviderRegistry
  std::uint64_t deployed_block = 0;  // the indexer starts here

  friend bool operator==(const Deployment&, const Deployment&) = default;
};

boost::json::object to_json(const Deployment& deployment);
// Strict: every field present, addresses valid.
Result<Deployment> deployment_from_json(const boost::json::value& value);

struct DeployOptions {
  // Use this ERC-20 instead of deploying KaiToken (production: a stablecoin).
  std::optional<crypto::Address> token;
  std::chrono::milliseconds receipt_timeout{60000};
  std::chrono::milliseconds poll_interval{200};
};

// Deploys the contracts with `owner` as owner and operator, and lets the escrow mint and
// spend reward points. Waits for every transaction; kConflict when one reverts.
Result<Deployment> deploy_contracts(eth::RpcClient& rpc, const crypto::PrivateKey& owner, eth::NonceManager& nonces,
                                    const DeployOptions& options = {});

// Sends a call to `to` and waits for its receipt; kConflict when it reverts.
Result<eth::Receipt> transact(eth::RpcClient& rpc, const crypto::PrivateKey& key, eth::NonceManager& nonces,
                              const crypto::Address& to, std::string_view signature, const eth::AbiValue::List& args,
                              std::chrono::milliseconds timeout = std::chrono::seconds{60},
                              std::chrono::milliseconds poll_interval = std::chrono::milliseconds{200});

// eth_call of a view function; `returns` is the canonical tuple of its outputs, e.g. "(uint256)".
Result<eth::AbiValue::List> call_view(eth::RpcClient& rpc, const crypto::Address& to, std::string_view signature,
                                      const eth::AbiValue::List& args, std::string_view returns);

// ERC-20 balanceOf.
Result<eth::Uint256> token_balance(eth::RpcClient& rpc, const crypto::Address& token, const crypto::Address& holder);

}  // namespace kaisar::chain
