#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "eth/uint256.hpp"
#include "onenode/leases.hpp"
#include "onenode/query.hpp"

namespace kaisar::onenode {

// One provider as an offer, kept in memory: what it has and charges, where it is, how
// reliable it has been, and what its leases hold.
struct Machine {
  std::string id;   // checksum address: the offer id
  std::string key;  // lower-case hex
  bool online = false;
  bool priced = false;
  std::uint32_t gpus = 0;  // all of them; the offer names the model most of them are
  std::uint64_t vram_bytes = 0;
  std::uint32_t cpu_cores = 0;
  std::uint64_t ram_gb = 0;
  // Claimed by the agent and verified by checks (VerifiedResources), shown side by side.
  std::uint64_t memory_bytes = 0, verified_memory_bytes = 0;
  std::uint64_t disk_bytes = 0, verified_disk_bytes = 0;
  boost::json::object prices;  // as the provider set them (decimal base units)
  eth::Uint256 gpu_hour, cpu_core_hour, ram_gb_hour;
  double gpu_hour_tokens = 0, cpu_core_hour_tokens = 0, ram_gb_hour_tokens = 0;
  // The searchable values that do not depend on what is free (see offer_fields()).
  std::array<std::optional<FieldValue>, kOfferFieldCount> fixed;
  Reserved held;
};

// What of a machine is not held by leases.
struct Free {
  std::uint32_t gpus = 0;
  std::uint32_t cpu_cores = 0;
  std::uint64_t ram_gb = 0;
};

// A provider's registry view (ProviderRegistry::get) as a machine; `held` starts empty.
Machine machine_from_provider(const boost::json::object& provider);
Free free_of(const Machine& m);
// The offer as the API shows it.
boost::json::object offer_json(const Machine& m, const Free& free);

// What a placement needs free on one machine.
struct Need {
  std::uint32_t gpus = 0;
  std::uint32_t cpu_cores = 1;
  std::uint64_t ram_gb = 1;
};

// The offers index and the scheduler. Every provider the registry knows is a machine here;
// the registry tells it who is online (with a fresh view: hardware, prices, reliability)
// and the lease book tells it what leases hold, so a search never reads the database.
// The database stays the authority: a placement's reservation is checked again in the
// lease book's transaction.
class Scheduler {
 public:
  // A provider's registry view (online or not, see ProviderRegistry::get).
  void upsert(const boost::json::object& provider);
  void set_held(const std::string& key, const Reserved& held);
  std::size_t size() const;

  struct Page {
    boost::json::array offers;  // at most `limit`, in order
    std::size_t total = 0;      // how many matched
  };
  // GET /api/v1/offers. `sort` empty: cheapest first (ties: most reliable).
  Result<Page> search(std::string_view query, std::string_view sort, std::size_t limit) const;

  // Machines that match `query`, are online with prices and have `need` free, best first:
  // the lowest price for what is needed (ties: most reliable, then the order providers
  // first came in), at most `count`. Walks the machines from the cheapest unit price, so
  // it stops early instead of looking at every provider.
  Result<std::vector<std::string>> candidates(const Query& query, const Need& need, std::size_t count) const;

 private:
  // The walked unit price, then the machine, with its other prices at hand so that a walk
  // reads machines only when their price could win.
  struct PriceKey {
    double unit;
    std::uint32_t index;
    double gpu_hour, cpu_core_hour, ram_gb_hour;
    friend auto operator<=>(const PriceKey&, const PriceKey&) = default;
  };
  void index_prices(std::uint32_t index, bool add);

  mutable std::shared_mutex mutex_;
  std::vector<Machine> machines_;
  std::unordered_map<std::string, std::uint32_t> by_key_;
  // Online, priced machines with something free by unit price: per GPU for each GPU model
  // (machines with a GPU free), per CPU core (machines with a core free).
  std::map<std::pair<std::string, double>, std::set<PriceKey>> by_gpu_price_;  // by (gpu_name, gpu_ram)
  std::set<PriceKey> by_core_price_;
  // The lowest unit prices seen (never raised: still lower bounds when machines go).
  double min_gpu_hour_ = 1e300, min_core_hour_ = 1e300, min_ram_gb_hour_ = 1e300;
};

// POST /api/v1/leases with a query instead of an offer: the best candidates in turn until
// one reservation holds (another renter may have taken the capacity a moment before).
Result<boost::json::object> place_lease(const Scheduler& scheduler, LeaseBook& leases, const crypto::Address& renter,
                                        LeaseSpec spec, const Query& query, const chain::Deployment& chain,
                                        const std::string& idempotency_key = {});

}  // namespace kaisar::onenode
