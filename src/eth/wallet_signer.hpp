#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"
#include "eth/rpc.hpp"
#include "eth/uint256.hpp"

namespace kaisar::eth {

// Hands out nonces per sender so several transactions can be sent before any is mined.
// The first nonce for an address is the chain's pending transaction count; after a failed
// send the sequence may have a gap, so the caller (or send_transaction) resyncs.
class NonceManager {
 public:
  explicit NonceManager(RpcClient& rpc) : rpc_(rpc) {}

  Result<std::uint64_t> next(const crypto::Address& sender);
  // Forgets the local sequence; the next call asks the chain again.
  void resync(const crypto::Address& sender);

 private:
  RpcClient& rpc_;
  std::mutex mutex_;
  std::map<crypto::Address, std::uint64_t> next_;
};

struct TxRequest {
  std::optional<crypto::Address> to;  // empty: contract creation
  Uint256 value;
  Bytes data;
  std::optional<std::uint64_t> gas_limit;  // empty: the node's estimate plus 20%
};

// Fills chain id, nonce, EIP-1559 fees and gas, signs with `key` and submits. Returns the
// transaction hash; the transaction may still be pending.
Result<Hash32> send_transaction(RpcClient& rpc, const crypto::PrivateKey& key, NonceManager& nonces,
                                const TxRequest& request);

struct DeployedContract {
  crypto::Address address;
  Receipt receipt;
};

// Sends a creation transaction with `init_code` and waits for it to be mined. kConflict
// when the creation reverted, kTimeout when no receipt came in time.
Result<DeployedContract> deploy_contract(RpcClient& rpc, const crypto::PrivateKey& key, NonceManager& nonces,
                                         ByteView init_code, const Uint256& value = {},
                                         std::chrono::milliseconds timeout = std::chrono::seconds{60},
                                         std::chrono::milliseconds poll_interval = std::chrono::milliseconds{200});

}  // namespace kaisar::eth
