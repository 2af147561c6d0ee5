#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "crypto/merkle.hpp"
#include "eth/uint256.hpp"
#include "onenode/config.hpp"
#include "onenode/events.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

// Epoch leaves (docs/checkers.md "Epochs"); a leaf's hash is keccak256(0x00 || bytes):
//   attestation  0x01 || EIP-712 digest (32) || signature r||s||v (65)
//   uptime       0x02 || provider (20) || epoch (8, big-endian) || uptime s (8) || job s (8)
Bytes attestation_leaf(const Hash32& digest, ByteView signature);
Bytes uptime_leaf(const crypto::Address& provider, std::uint64_t epoch, std::uint64_t uptime_s, std::uint64_t job_s);
// RewardDistributor's leaf bytes: account (20) || amount (32, big-endian).
Bytes reward_leaf(const crypto::Address& account, const eth::Uint256& amount);

// What a provider or checker did in an epoch, and its reward weight (docs/checkers.md
// "Rewards"): providers by (uptime + 3 × job time) × hardware score, with the hardware
// score 3·GPU + 2·bandwidth + CPU + memory + disk (each relative to a reference machine);
// checkers by checks × (1 − error rate).
struct ProviderWork {
  std::uint64_t uptime_s = 0;
  std::uint64_t job_s = 0;
  double tops = 0;            // verified int8 TOPS (0: not verified)
  double bandwidth_mbps = 0;  // not measured yet: 0
  std::uint64_t cpu_cores = 0;
  std::uint64_t ram_bytes = 0;   // verified: min(claimed, what the memory phase filled and passed)
  std::uint64_t disk_bytes = 0;  // verified: no check measures disk yet, so 0
  bool failed_check = false;  // the last check failed: no reward
};
double hardware_score(const ProviderWork& w);
double provider_weight(const ProviderWork& w);
double checker_weight(std::uint64_t checks, double error_rate);
// `pool` shared by weight, rounded down (what is left over stays in the pool).
std::vector<eth::Uint256> share(const eth::Uint256& pool, const std::vector<double>& weights);

// An epoch's pool split between providers and checkers (docs/checkers.md): checkers get at
// most a fifth, and at most `cap_per_check` per weighted check, so that no epoch's pool goes
// to checkers whole (one check in a quiet epoch earns the cap, not the pool). What checkers
// do not take goes to providers when any worked, and is not minted otherwise.
struct RewardPools {
  eth::Uint256 providers;
  eth::Uint256 checkers;
};
RewardPools split_rewards(const eth::Uint256& pool, double provider_weights, double checker_weights,
                          const eth::Uint256& cap_per_check);

// Epochs: the open epoch collects attestations; when it is epoch_length old it closes: its
// attestations and every provider's uptime record form one Merkle tree whose root goes on
// chain (EpochLog.postRoot, through the outbox, in the same database transaction), and the
// epoch's reward pool is shared out as a Merkle distribution (RewardDistributor.setRoot).
class EpochBook {
 public:
  EpochBook(store::Database& db, const Clock& clock, EventHub& events, const OneNodeConfig& config);

  // Opens epoch 0 on a fresh database.
  Result<void> recover();
  std::uint64_t current() const { return current_.load(); }
  // Closes the open epoch if it is due (or now, when forced) and opens the next.
  Result<void> tick(bool force = false);

  // Chain writes (Settlement); without them epochs are closed but not posted.
  std::function<Result<void>(std::uint64_t epoch, const Hash32& root, std::uint64_t leaves)> post_root;
  std::function<Result<void>(std::uint64_t epoch, const Hash32& root, const eth::Uint256& total)> post_rewards;
  // The transaction that carried the write with this outbox key (0x-hex), if sent.
  std::function<std::optional<std::string>(const std::string& key)> transaction_of;
  // Whether a running lease's container answers its probes (LeaseProbe); a lease that does
  // not earns no job time. Unset: every lease's time counts.
  std::function<bool(const std::string& lease_id)> job_answering;

  Result<boost::json::array> list(std::size_t limit);
  Result<boost::json::object> get(std::uint64_t number);
  // Inclusion proof of an attestation (its check id) or an uptime record (the provider's
  // address) in a closed epoch.
  Result<boost::json::object> proof(std::uint64_t number, const std::string& id);
  // An account's rewards with their claim proofs.
  Result<boost::json::array> rewards(const crypto::Address& account);

 private:
  Result<void> close(std::int64_t start_s, std::int64_t end_s);
  // 'e': an epoch's leaves; 'r': its rewards.
  Result<std::shared_ptr<const crypto::MerkleTree>> tree(char kind, std::uint64_t number);
  std::int64_t now_s() const;

  store::Database& db_;
  const Clock& clock_;
  EventHub& events_;
  OneNodeConfig config_;
  std::atomic<std::uint64_t> current_{0};
  std::mutex mutex_;  // one close at a time
  std::mutex cache_mutex_;
  std::map<std::pair<char, std::uint64_t>, std::shared_ptr<const crypto::MerkleTree>> trees_;
};

}  // namespace kaisar::onenode
