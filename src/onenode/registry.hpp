#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "core/hardware.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "eth/uint256.hpp"
#include "onenode/events.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

// What an authenticated agent tells OneNode when it connects.
struct Registration {
  crypto::Address node;
  crypto::Address owner;
  std::string binding_signature;
  std::string binding_issued_at;
  Hardware hardware;
  std::optional<std::string> region;
  std::string agent_version;
  std::string remote_ip;
  // {"gpu_hour","cpu_core_hour","ram_gb_hour"} as canonical decimal token base units;
  // empty when the provider set no prices (it then offers nothing).
  std::optional<boost::json::object> prices;
  // The images its container engine has (absent: it did not say, e.g. no engine).
  std::optional<std::vector<std::string>> images;
};

// What a lease needs of an online provider, kept from its registration so that a
// reservation reads no provider row.
struct ProviderTerms {
  std::uint64_t gpus = 0;
  std::vector<std::string> gpu_names;  // each GPU's NVML name
  std::uint64_t cpu_cores = 0;
  std::uint64_t ram_gb = 0;
  std::uint64_t disk_gb = 0;  // free when it registered
  bool priced = false;  // the provider set prices: it offers something
  std::optional<std::set<std::string>> images;  // see Registration::images
  eth::Uint256 gpu_hour, cpu_core_hour, ram_gb_hour;  // token base units
};

struct Availability {
  std::uint32_t gpus = 0;
  std::uint32_t cpu_cores = 0;
  std::uint64_t ram_bytes = 0;
};

// Liveness of one connected provider, shared with its control session so that a heartbeat
// is a couple of atomic stores and no lookup.
struct Liveness {
  std::atomic<std::int64_t> last_seen_ms{0};
  std::atomic<std::uint32_t> available_gpus{0};
  std::atomic<std::uint32_t> available_cpu_cores{0};
  std::atomic<std::uint64_t> available_ram_bytes{0};
};

// Providers, their online status and uptime intervals. Status and uptime survive restarts:
// open intervals end at the last heartbeat that was flushed.
class ProviderRegistry {
 public:
  ProviderRegistry(store::Database& db, const Clock& clock, EventHub& events, std::chrono::seconds offline_after,
                   std::function<std::string(const std::string&)> locate);

  // At start: intervals left open by a previous run are closed, every provider is offline
  // until its agent reconnects.
  Result<void> recover();
  // An agent proved its node key: upsert the provider and mark it online.
  Result<std::shared_ptr<Liveness>> connect(const Registration& reg);
  void heartbeat(Liveness& live, const Availability& available);
  // Marks offline whoever missed heartbeats past the grace period and, every few seconds
  // or when forced (at shutdown), flushes last-seen times of open intervals. Called about
  // once a second.
  void sweep(bool force_flush = false);

  Result<boost::json::array> list() const;
  Result<boost::json::object> get(const std::string& id) const;
  // What a lease needs of a provider; kNotFound for an unknown one, kConflict when it is
  // offline.
  Result<std::shared_ptr<const ProviderTerms>> terms(const std::string& id) const;
  std::vector<std::string> owned_by(const crypto::Address& owner) const;
  std::size_t online_count() const;
  std::vector<std::string> online_ids() const;  // lower-case
  // Told (lower-case id) when a provider comes online (after it is stored) or goes offline.
  std::function<void(const std::string& id, bool online)> on_status_change;
  std::uint64_t heartbeats() const { return heartbeats_.load(std::memory_order_relaxed); }

 private:
  struct Online {
    std::shared_ptr<Liveness> live;
    std::int64_t interval_id = 0;
    std::int64_t flushed_s = 0;  // the last-seen time last written to the interval
    std::shared_ptr<const ProviderTerms> terms;
  };
  boost::json::object view(const store::Row& row) const;
  void mark_offline(const std::string& id, const Online& entry);

  store::Database& db_;
  const Clock& clock_;
  EventHub& events_;
  std::chrono::seconds offline_after_;
  std::function<std::string(const std::string&)> locate_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, Online> online_;  // by lower-case id
  std::atomic<std::uint64_t> heartbeats_{0};
  std::mutex sweep_mutex_;
  std::int64_t last_flush_ms_ = 0;
};

}  // namespace kaisar::onenode
