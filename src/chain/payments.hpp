#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "chain/indexer.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"
#include "eth/rpc.hpp"
#include "eth/uint256.hpp"
#include "eth/wallet_signer.hpp"
#include "store/database.hpp"

namespace kaisar::chain {

// What a renter pays for one lease: `amount` token base units into the renter's own record
// of `escrow` under `lease_id`, locked until `locked_until` (the lease's latest end plus the
// settlement margin; the renter may reclaim an unsettled record after it). OneNode's API
// hands this out; the renter's wallet approves and deposits.
struct LeasePayment {
  std::uint64_t chain_id = 0;
  crypto::Address escrow;
  crypto::Address token;
  Hash32 lease_id{};
  eth::Uint256 amount;
  std::chrono::sys_seconds locked_until{};
};

boost::json::object to_json(const LeasePayment& payment);
Result<LeasePayment> payment_from_json(const boost::json::value& value);

// The escrow's lease id for a OneNode lease id: keccak256 of its text.
Hash32 escrow_lease_id(std::string_view lease_id);

struct PaymentResult {
  std::optional<Hash32> approve_tx;  // empty when the allowance already covered it
  std::optional<Hash32> deposit_tx;  // empty when this lease was already paid by this wallet
  std::uint64_t gas_used = 0;
};

// The renter's side: checks the chain id, approves the escrow when the allowance is short,
// deposits what the wallet's own record lacks (a deposit and later top-ups count together),
// and waits for both receipts. Paying a lease that this wallet already paid is success
// without a transaction; deposits of other wallets under the same lease id do not matter.
Result<PaymentResult> pay_lease(eth::RpcClient& rpc, const crypto::PrivateKey& renter, eth::NonceManager& nonces,
                                const LeasePayment& payment,
                                std::chrono::milliseconds timeout = std::chrono::seconds{60},
                                std::chrono::milliseconds poll_interval = std::chrono::milliseconds{200});

struct Reclaimed {
  eth::Uint256 amount;
  Hash32 tx_hash{};
  std::uint64_t gas_used = 0;
};
// The depositor takes its own unsettled record back (LeaseEscrow.reclaim), paying the gas.
// kNotFound when it has no open record for this lease; kConflict while the record is locked
// (the message says until when).
Result<Reclaimed> reclaim_deposit(eth::RpcClient& rpc, const crypto::PrivateKey& depositor, eth::NonceManager& nonces,
                                  const crypto::Address& escrow, const Hash32& lease_id,
                                  std::chrono::milliseconds timeout = std::chrono::seconds{60},
                                  std::chrono::milliseconds poll_interval = std::chrono::milliseconds{200});

// Calldata of LeaseEscrow.settle of `renter`'s record, for the outbox.
Result<Bytes> settle_calldata(const Hash32& lease_id, const crypto::Address& renter, const crypto::Address& provider,
                              const eth::Uint256& to_provider, const eth::Uint256& refund_to_renter,
                              const eth::Uint256& credit_points);

// One depositor's record in the escrow, read from the chain.
struct EscrowRecord {
  eth::Uint256 amount;
  enum class State { kNone, kOpen, kSettled, kReclaimed } state = State::kNone;
  std::chrono::sys_seconds locked_until{};
};
Result<EscrowRecord> escrow_record(eth::RpcClient& rpc, const crypto::Address& escrow, const Hash32& lease_id,
                                   const crypto::Address& depositor);

// One LeaseEscrow event, decoded.
struct EscrowEvent {
  enum class Kind { kDeposited, kToppedUp, kSettled, kPointsUsed, kReclaimed };
  Kind kind = Kind::kDeposited;
  Hash32 lease_id{};
  crypto::Address renter;     // the depositor whose record this is
  std::chrono::sys_seconds locked_until{};  // kDeposited, kToppedUp: the record's lock now
  crypto::Address provider;   // kSettled
  eth::Uint256 amount;        // deposited / topped up / points used; paid to the provider for kSettled
  eth::Uint256 refund;        // kSettled: to the renter
  eth::Uint256 credit_points; // kSettled
  std::uint64_t block_number = 0;
  Hash32 tx_hash{};
  std::uint64_t log_index = 0;
};
std::string_view to_string(EscrowEvent::Kind kind);

// Empty for a log that is not a LeaseEscrow event; an error for one that claims to be but
// does not decode.
Result<std::optional<EscrowEvent>> decode_escrow_event(const eth::Log& log);

// What the chain says about one depositor's record for a lease.
struct LeaseFunds {
  crypto::Address renter;
  eth::Uint256 deposited;  // deposits and top-ups of this depositor only
  std::chrono::sys_seconds locked_until{};
  bool settled = false;
  bool reclaimed = false;
  eth::Uint256 paid_to_provider;
  eth::Uint256 refunded;
  std::vector<EscrowEvent> events;
};

// Keeps LeaseEscrow's events (from one escrow address) in the database, as the indexer
// delivers them and takes them back on reorganizations.
class EscrowLedger final : public LogHandler {
 public:
  EscrowLedger(store::Database& db, const crypto::Address& escrow) : db_(db), escrow_(escrow) {}
  Result<void> apply(const eth::Log& log) override;
  Result<void> rewind(std::uint64_t first_block) override;
  // `depositor`'s record: empty when none of its events for this lease has been indexed.
  Result<std::optional<LeaseFunds>> funds(const Hash32& lease_id, const crypto::Address& depositor);
  // Who deposited under this lease id, in order of their first deposit.
  Result<std::vector<crypto::Address>> depositors(const Hash32& lease_id);

 private:
  store::Database& db_;
  crypto::Address escrow_;
};

}  // namespace kaisar::chain
