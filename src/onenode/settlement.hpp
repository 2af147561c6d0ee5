#pragma once

#include <boost/json/object.hpp>

#include <memory>

#include "chain/contracts.hpp"
#include "chain/http_transport.hpp"
#include "chain/indexer.hpp"
#include "chain/outbox.hpp"
#include "chain/payments.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "onenode/config.hpp"
#include "onenode/leases.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

// OneNode's link to the chain: the contracts, the outbox that carries every chain write
// and the indexer that follows the contracts' events.
class Settlement {
 public:
  // Checks the node's chain id, unlocks the operator key, loads the contract addresses
  // (or deploys them when allowed) and starts the outbox and indexer threads.
  // `leases`, when given, receives the escrow's events (it keeps the ledger up to date and
  // marks leases paid in the same transaction).
  static Result<std::unique_ptr<Settlement>> open(const OneNodeConfig& config, store::Database& db, const Clock& clock,
                                                  LeaseBook* leases = nullptr);
  ~Settlement();

  void stop();
  // GET /api/v1/chain
  boost::json::object info();
  // Dev chains: tops `address` up to 100 ETH (anvil_setBalance) and mints it 1,000 KAI
  // through the outbox (once per address per minute).
  Result<boost::json::object> faucet(const crypto::Address& address);

  // What the indexed escrow events say about one depositor's record for a lease
  // (GET /api/v1/payments/{lease_id}).
  Result<std::optional<chain::LeaseFunds>> lease_funds(const Hash32& lease_id, const crypto::Address& depositor) {
    return ledger_->funds(lease_id, depositor);
  }
  chain::EscrowLedger& ledger() { return *ledger_; }

  // One depositor's record for this lease, read from the chain (an error when the node
  // cannot be asked).
  Result<chain::EscrowRecord> escrow_record(const Hash32& escrow_lease_id, const crypto::Address& depositor);
  // Queues the settlement of the renter's record: `to_provider` to the provider's wallet,
  // `to_renter` (and whatever else is left of the record) back to the renter. The operator
  // settles nothing else: stray records go back to their depositors by `reclaim`.
  Result<void> settle_lease(const Hash32& escrow_lease_id, const crypto::Address& renter,
                            const crypto::Address& provider_wallet, const eth::Uint256& to_provider,
                            const eth::Uint256& to_renter);

  // Queues EpochLog.postRoot(epoch, root, leaves) (key "epoch:N").
  Result<void> post_epoch_root(std::uint64_t epoch, const Hash32& root, std::uint64_t leaves);
  // Queues RewardDistributor.setRoot(epoch, root, total) (key "rewards:N"); with `fund`, first
  // mints `total` of the token into the distributor (dev chains: the operator owns KaiToken).
  Result<void> post_rewards(std::uint64_t epoch, const Hash32& root, const eth::Uint256& total, bool fund);
  // The hash of the transaction that carries the outbox write `key`, once signed.
  std::optional<std::string> transaction_of(const std::string& key);

  const chain::Deployment& deployment() const { return deployment_; }
  chain::Outbox& outbox() { return *outbox_; }
  chain::Indexer& indexer() { return *indexer_; }

 private:
  Settlement() = default;

  OneNodeConfig config_;
  const Clock* clock_ = nullptr;
  std::unique_ptr<chain::HttpRpcTransport> transport_;
  chain::Deployment deployment_;
  crypto::Address operator_;
  std::unique_ptr<chain::EscrowLedger> ledger_;
  std::unique_ptr<chain::Outbox> outbox_;
  std::unique_ptr<chain::Indexer> indexer_;
};

}  // namespace kaisar::onenode
