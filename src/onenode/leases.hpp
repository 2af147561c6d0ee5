#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "chain/contracts.hpp"
#include "chain/payments.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "onenode/events.hpp"
#include "onenode/registry.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

// What a renter asks for (POST /api/v1/leases).
struct LeaseSpec {
  std::string offer;  // provider id
  std::string query;  // instead of an offer: the scheduler picks the best match
  std::string image;
  std::uint32_t gpus = 0;
  std::string gpu_model;  // optional: "RTX_4090", "H100" (words of the GPUs' NVML name)
  std::uint32_t cpus = 1;
  std::uint32_t memory_gb = 1;
  std::uint32_t disk_gb = 0;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::uint16_t> ports;
  // Which ports the gateway relays as raw TCP (default: 22 when exposed) and which HTTP
  // ports it opens to anyone (default: none; the others need the lease's access token).
  std::vector<std::uint16_t> tcp_ports;
  std::vector<std::uint16_t> public_ports;
  std::vector<std::string> command;
  std::string ssh_key;
  std::uint32_t hours = 1;

  static Result<LeaseSpec> from_json(const boost::json::object& o);
  boost::json::object to_json() const;
};

// How long past a lease's latest possible end the renter's escrow record stays locked: the
// time OneNode has to settle it before the renter could reclaim it.
inline constexpr std::chrono::hours kSettleMargin{24};

// The lock a lease's payment asks for: its pay-by time plus its hours plus the margin (a
// lease starts at the latest at its pay-by time and runs its hours).
std::chrono::sys_seconds payment_lock(SystemTime pay_by, std::uint64_t hours);

// Whether one depositor's escrow record pays `due` for a lease that needs `lock`: open, at
// least `due` in deposits and top-ups together, locked long enough.
bool record_pays(const chain::EscrowRecord& record, const eth::Uint256& due, std::chrono::sys_seconds lock);

struct Reserved {
  std::uint32_t gpus = 0;
  std::uint32_t cpu_cores = 0;
  std::uint64_t memory_gb = 0;
};

// Leases and the capacity they hold. Every state change is stored with its reason in the
// same transaction as the state: pending_payment → paid → deploying → running → ended |
// failed. Capacity is reserved atomically at creation (the database's write lock), so
// renters racing for the last GPU get exactly one lease.
class LeaseBook final : public chain::LogHandler {
 public:
  LeaseBook(store::Database& db, const Clock& clock, EventHub& events, ProviderRegistry& registry,
            std::chrono::seconds payment_timeout);

  // Quotes, reserves and stores a lease in pending_payment. kConflict when the offer does
  // not have the resources free, kNotFound for an unknown or offline provider.
  // `idempotency_key` (optional, the renter's Idempotency-Key header) makes a retried
  // request return the lease the first one created instead of reserving again.
  Result<boost::json::object> create(const crypto::Address& renter, const LeaseSpec& spec,
                                     const chain::Deployment& chain, const std::string& idempotency_key = {});
  // The lease a request with this renter's `idempotency_key` created, if any; kConflict when
  // the key was used for a different request.
  Result<std::optional<boost::json::object>> replayed(const crypto::Address& renter, const std::string& idempotency_key,
                                                      const LeaseSpec& spec) const;
  Result<boost::json::object> get(const std::string& id) const;
  Result<boost::json::array> list_for(const crypto::Address& renter) const;
  // Capacity held by the provider's leases that are not final (lower-case id).
  Result<Reserved> reserved_on(const std::string& provider_id) const;
  // Calls `use` with what the provider's leases hold, under the write lock (so that it is
  // ordered with the holds on_capacity_change reports).
  void with_held(const std::string& provider_id, const std::function<void(const Reserved&)>& use);
  // Called (with the provider's lower-case id and what its leases now hold) inside the
  // transaction in which a lease took or gave back capacity.
  std::function<void(const std::string& provider_id, const Reserved& held)> on_capacity_change;
  // Every state change, called inside its transaction (keep it short; a rollback can follow).
  std::function<void(const std::string& lease_id, std::string_view state)> on_state_change;
  // Adds to the API's view of a lease (the gateway's endpoints and access token).
  std::function<void(boost::json::object& lease)> decorate;
  // Ids of the running leases.
  std::vector<std::string> running_ids() const;
  // Fails leases not paid in full past the payment timeout and frees their capacity;
  // returns how many. `renters_record` reads the renter's own escrow record from the chain
  // (an error: cannot tell, e.g. the node is down: it waits), so an indexer that lags fails
  // nobody, and dust or other wallets' deposits keep no lease alive. OneNode sends nothing
  // back: depositors reclaim their records themselves once their lock has passed.
  std::size_t expire_unpaid(
      const std::function<Result<chain::EscrowRecord>(const Hash32& escrow_lease_id, const crypto::Address& renter)>&
          renters_record);

  // Deploy messages for the provider's leases that are paid (and, when `resend`, those
  // already deploying or running: after the agent reconnects). Paid ones become deploying.
  std::vector<std::string> take_deploys(const std::string& provider_id, bool resend);
  // Leases of the provider that should have a container (paid, deploying, running).
  std::vector<std::string> live_on(const std::string& provider_id) const;
  // Providers with paid leases waiting for a deploy message.
  std::vector<std::string> providers_with_paid_leases() const;
  // A lease_status message from `provider_id` (only its own leases): running with its
  // endpoints, or failed with a reason.
  Result<void> on_status(const std::string& provider_id, const boost::json::object& message);

  // The renter ends a lease early (paid, deploying or running) or cancels an unpaid one.
  // Returns the lease and the provider to tell (empty when no container was asked for).
  Result<std::pair<boost::json::object, std::string>> stop(const crypto::Address& renter, const std::string& id);
  // The renter asks for `hours` more of a paid, deploying or running lease: returns the
  // lease with the payment that tops the escrow up to the new total. The hours are added
  // when the indexer sees the top-up.
  Result<boost::json::object> extend(const crypto::Address& renter, const std::string& id, std::uint32_t hours);
  // A lease_usage message from `provider_id`: kept as the lease's latest usage and sent on
  // the lease's event stream with the cost so far.
  Result<void> on_usage(const std::string& provider_id, const boost::json::object& message);
  // The provider's agent went away while leases were deploying: they fail and are refunded.
  void fail_deploying(const std::string& provider_id, const std::string& reason);
  // Ends running leases whose paid time is over; returns (provider, lease id) to stop.
  std::vector<std::pair<std::string, std::string>> expire_running();

  // Queues the settlement of a lease that ended or failed (set by OneNode: a LeaseEscrow
  // settle of the renter's record through the outbox): `to_provider` to the provider's owner
  // wallet, the rest of the deposit back to the renter.
  std::function<Result<void>(const Hash32& escrow_lease_id, const crypto::Address& renter,
                             const crypto::Address& provider_owner, const eth::Uint256& to_provider,
                             const eth::Uint256& to_renter)>
      settle;

  // chain::LogHandler: the renter's own deposits and top-ups mark leases paid once they add
  // up to the quote (inside the indexer's transaction); other depositors are ignored.
  Result<void> apply(const eth::Log& log) override;
  Result<void> rewind(std::uint64_t first_block) override;

  void set_ledger(chain::EscrowLedger* ledger) { ledger_ = ledger; }

 private:
  Result<void> transition(const std::string& id, std::string_view from, std::string_view to, const std::string& reason);
  // Moves a lease to ended or failed and queues its settlement, in one transaction.
  Result<void> finish(const std::string& id, std::string_view from, std::string_view to, const std::string& reason);
  // The API's view of a lease row; its history is read unless given.
  boost::json::object view(const store::Row& row, const boost::json::array* known_history = nullptr) const;
  void capacity_changed_of(const std::string& lease_id);
  Result<void> apply_extension(const std::string& id, const chain::EscrowEvent& event);

  store::Database& db_;
  const Clock& clock_;
  EventHub& events_;
  ProviderRegistry& registry_;
  std::chrono::seconds payment_timeout_;
  chain::EscrowLedger* ledger_ = nullptr;
};

}  // namespace kaisar::onenode
