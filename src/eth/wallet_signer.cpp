#include "eth/wallet_signer.hpp"

#include "eth/transaction.hpp"

namespace kaisar::eth {

Result<std::uint64_t> NonceManager::next(const crypto::Address& sender) {
  std::lock_guard lock(mutex_);
  auto it = next_.find(sender);
  if (it == next_.end()) {
    auto pending = rpc_.get_transaction_count(sender, BlockId::pending());
    if (!pending) return std::unexpected(pending.error());
    it = next_.emplace(sender, *pending).first;
  }
  return it->second++;
}

void NonceManager::resync(const crypto::Address& sender) {
  std::lock_guard lock(mutex_);
  next_.erase(sender);
}

Result<Hash32> send_transaction(RpcClient& rpc, const crypto::PrivateKey& key, NonceManager& nonces,
                                const TxRequest& request) {
  const crypto::Address sender = key.address();
  Eip1559Transaction tx;
  tx.to = request.to;
  tx.value = request.value;
  tx.data = request.data;

  auto chain_id = rpc.chain_id();
  if (!chain_id) return std::unexpected(chain_id.error());
  tx.chain_id = *chain_id;

  auto fees = rpc.estimate_fees();
  if (!fees) return std::unexpected(fees.error());
  tx.max_fee_per_gas = fees->max_fee_per_gas;
  tx.max_priority_fee_per_gas = fees->max_priority_fee_per_gas;

  if (request.gas_limit) {
    tx.gas_limit = *request.gas_limit;
  } else {
    auto estimate = rpc.estimate_gas(CallRequest{sender, request.to, request.value, request.data, std::nullopt});
    if (!estimate) return std::unexpected(estimate.error());
    // Headroom for state that changes between estimate and inclusion.
    if (*estimate > UINT64_MAX / 6) return fail(ErrorCode::kUnavailable, "node's gas estimate is out of range");
    tx.gas_limit = *estimate * 6 / 5;
  }

  // Taken last so that a failure above does not leave a gap in the sequence.
  auto nonce = nonces.next(sender);
  if (!nonce) return std::unexpected(nonce.error());
  tx.nonce = *nonce;

  const SignedEip1559Transaction signed_tx = sign_transaction(tx, key);
  auto hash = rpc.send_raw_transaction(signed_tx.raw);
  if (!hash) {
    nonces.resync(sender);
    return std::unexpected(hash.error());
  }
  if (*hash != signed_tx.hash) {
    return fail(ErrorCode::kUnavailable, "node returned transaction hash " + to_hex(*hash) + " for " +
                                             to_hex(signed_tx.hash) + "; check the RPC URL");
  }
  return *hash;
}

Result<DeployedContract> deploy_contract(RpcClient& rpc, const crypto::PrivateKey& key, NonceManager& nonces,
                                         ByteView init_code, const Uint256& value, std::chrono::milliseconds timeout,
                                         std::chrono::milliseconds poll_interval) {
  if (init_code.empty()) return fail(ErrorCode::kInvalidArgument, "contract init code is empty");
  TxRequest request;
  request.value = value;
  request.data.assign(init_code.begin(), init_code.end());
  auto hash = send_transaction(rpc, key, nonces, request);
  if (!hash) return std::unexpected(hash.error());
  auto receipt = rpc.wait_for_receipt(*hash, timeout, poll_interval);
  if (!receipt) return std::unexpected(receipt.error());
  if (receipt->status != 1) {
    return fail(ErrorCode::kConflict, "contract creation " + to_hex(*hash) + " reverted in block " +
                                          std::to_string(receipt->block_number));
  }
  if (!receipt->contract_address) {
    return fail(ErrorCode::kUnavailable, "receipt of creation " + to_hex(*hash) + " has no contract address");
  }
  return DeployedContract{*receipt->contract_address, std::move(*receipt)};
}

}  // namespace kaisar::eth
