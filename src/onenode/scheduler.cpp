#include "onenode/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "crypto/address.hpp"
#include "onenode/verified.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kTokenUnit = 1e18;  // base units per token (18 decimals)

std::uint64_t u64(const json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

std::string text(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

double tokens(const eth::Uint256& base_units) {
  // Exact enough for display and search: the decimal digits as a double, then scaled.
  return std::stod(base_units.to_decimal()) / kTokenUnit;
}

double round_to(double v, double scale) { return std::round(v * scale) / scale; }

// The values that change with what is free.
struct Dynamic {
  FieldValue num_gpus, gpu_total_ram, cpu_cores, ram, price_hour;

  Dynamic(const Machine& m, const Free& f)
      : num_gpus(static_cast<double>(f.gpus)),
        gpu_total_ram(round_to(static_cast<double>(m.vram_bytes) * f.gpus / kGiB, 10)),
        cpu_cores(static_cast<double>(f.cpu_cores)),
        ram(static_cast<double>(f.ram_gb)),
        price_hour(m.gpu_hour_tokens * f.gpus + m.cpu_core_hour_tokens * f.cpu_cores +
                   m.ram_gb_hour_tokens * static_cast<double>(f.ram_gb)) {}

  const FieldValue* at(const Machine& m, std::size_t field) const {
    switch (field) {
      case kNumGpus: return &num_gpus;
      case kGpuTotalRam: return &gpu_total_ram;
      case kCpuCores: return &cpu_cores;
      case kRam: return &ram;
      case kPriceHour: return &price_hour;
      default: return m.fixed[field] ? &*m.fixed[field] : nullptr;
    }
  }
};

bool offered(const Machine& m) { return m.online && m.priced; }

}  // namespace

Machine machine_from_provider(const json::object& provider) {
  Machine m;
  m.id = text(provider, "id");
  auto address = crypto::Address::parse(m.id);
  m.key = address ? address->to_lower_hex() : m.id;
  m.online = text(provider, "status") == "online";
  const json::object empty;
  const json::value* hardware_v = provider.if_contains("hardware");
  const json::object& hardware = hardware_v != nullptr && hardware_v->is_object() ? hardware_v->get_object() : empty;

  // GPUs: the model most of them are (ties: the first GPU's model), with that model's
  // smallest memory. A GPU is free or leased, never shared.
  struct Model {
    int count = 0;
    std::size_t first = 0;
    std::uint64_t vram = 0;
    std::string driver;
  };
  std::map<std::string, Model> models;
  if (const json::value* gpus = hardware.if_contains("gpus"); gpus != nullptr && gpus->is_array()) {
    std::size_t index = 0;
    for (const auto& g : gpus->get_array()) {
      if (!g.is_object()) continue;
      const std::uint64_t bytes = u64(g.get_object().if_contains("vram_bytes"));
      auto [it, inserted] =
          models.try_emplace(text(g.get_object(), "name"), Model{0, index, bytes, text(g.get_object(), "driver")});
      it->second.count++;
      it->second.vram = std::min(it->second.vram, bytes);
      ++index;
    }
    m.gpus = static_cast<std::uint32_t>(std::min<std::size_t>(gpus->get_array().size(), 64));
  }
  const Model* chosen = nullptr;
  std::string gpu_name;
  for (const auto& [name, model] : models) {
    if (chosen == nullptr || model.count > chosen->count || (model.count == chosen->count && model.first < chosen->first)) {
      chosen = &model;
      gpu_name = name;
    }
  }
  m.vram_bytes = chosen != nullptr ? chosen->vram : 0;
  m.cpu_cores = static_cast<std::uint32_t>(std::min<std::uint64_t>(u64(hardware.if_contains("cpu_cores")), 4096));
  m.ram_gb = static_cast<std::uint64_t>(static_cast<double>(u64(hardware.if_contains("ram_bytes"))) / kGiB);
  m.memory_bytes = u64(hardware.if_contains("ram_bytes"));
  m.disk_bytes = u64(hardware.if_contains("disk_free_bytes"));
  if (const json::value* v = provider.if_contains("verification"); v != nullptr) {
    const VerifiedResources measured = verified_resources(*v);
    m.verified_memory_bytes = std::min(m.memory_bytes, measured.memory_bytes);
    m.verified_disk_bytes = std::min(m.disk_bytes, measured.disk_bytes);
  }

  if (const json::value* prices = provider.if_contains("prices"); prices != nullptr && prices->is_object()) {
    m.priced = true;
    m.prices = prices->get_object();
    auto price = [&](std::string_view key) {
      return eth::Uint256::from_decimal(text(m.prices, key)).value_or(eth::Uint256{});
    };
    m.gpu_hour = price("gpu_hour");
    m.cpu_core_hour = price("cpu_core_hour");
    m.ram_gb_hour = price("ram_gb_hour");
    m.gpu_hour_tokens = tokens(m.gpu_hour);
    m.cpu_core_hour_tokens = tokens(m.cpu_core_hour);
    m.ram_gb_hour_tokens = tokens(m.ram_gb_hour);
  }
  double reliability = 0;
  if (const json::value* uptime = provider.if_contains("uptime"); uptime != nullptr && uptime->is_object()) {
    if (const json::value* r = uptime->get_object().if_contains("ratio_30d"); r != nullptr && r->is_number()) {
      reliability = r->to_number<double>();
    }
  }
  const json::value* location_v = provider.if_contains("location");
  const json::object& location = location_v != nullptr && location_v->is_object() ? location_v->get_object() : empty;

  auto& f = m.fixed;
  if (!gpu_name.empty()) f[kGpuName] = gpu_name;
  f[kGpuRam] = round_to(static_cast<double>(m.vram_bytes) / kGiB, 10);
  f[kCpuName] = text(hardware, "cpu_model");
  f[kDisk] = std::floor(static_cast<double>(u64(hardware.if_contains("disk_free_bytes"))) / kGiB);
  f[kGpuPriceHour] = m.gpu_hour_tokens;
  f[kReliability] = round_to(reliability, 10000);
  f[kCountry] = text(location, "country");
  if (const json::value* region = location.if_contains("region"); region != nullptr && region->is_string()) {
    f[kRegion] = std::string(region->get_string());
  }
  // Proof of Physical Work: verified by the last check, with the throughput it measured
  // (one GPU, or the CPU of a CPU-only machine) and that per token-hour of the same unit.
  const json::value* verified = provider.if_contains("verified");
  f[kVerified] = verified != nullptr && verified->is_bool() && verified->get_bool();
  if (const json::value* v = provider.if_contains("verification"); v != nullptr && v->is_object() && std::get<bool>(*f[kVerified])) {
    if (const json::value* tops = v->get_object().if_contains("tops"); tops != nullptr && tops->is_number()) {
      const double perf = tops->to_number<double>();
      f[kPerf] = perf;
      const double unit = m.gpus > 0 ? m.gpu_hour_tokens
                                     : m.cpu_core_hour_tokens * m.cpu_cores + m.ram_gb_hour_tokens * static_cast<double>(m.ram_gb);
      if (unit > 0) f[kPerfPerPrice] = round_to(perf / unit, 1000);
    }
  }
  if (chosen != nullptr && !chosen->driver.empty()) f[kDriverVersion] = chosen->driver;
  f[kProvider] = m.id;
  return m;
}

Free free_of(const Machine& m) {
  return Free{m.gpus - std::min(m.gpus, m.held.gpus), m.cpu_cores - std::min(m.cpu_cores, m.held.cpu_cores),
              m.ram_gb - std::min(m.ram_gb, m.held.memory_gb)};
}

json::object offer_json(const Machine& m, const Free& free) {
  const eth::Uint256 hour = m.gpu_hour * free.gpus + m.cpu_core_hour * free.cpu_cores + m.ram_gb_hour * free.ram_gb;
  const Dynamic d(m, free);
  auto value = [&](std::size_t field) -> json::value {
    const FieldValue* v = d.at(m, field);
    if (v == nullptr) return nullptr;
    if (const double* n = std::get_if<double>(v)) return *n;
    if (const bool* b = std::get_if<bool>(v)) return *b;
    return json::value(std::get<std::string>(*v));
  };
  return json::object{
      {"id", m.id},
      {"provider", m.id},
      {"gpu_name", value(kGpuName)},
      {"num_gpus", free.gpus},
      {"gpu_ram", value(kGpuRam)},
      {"gpu_total_ram", value(kGpuTotalRam)},
      {"cpu_cores", free.cpu_cores},
      {"cpu_name", value(kCpuName)},
      {"ram", free.ram_gb},
      {"disk", value(kDisk)},
      {"memory_bytes", m.memory_bytes},
      {"verified_memory_bytes", m.verified_memory_bytes},
      {"disk_bytes", m.disk_bytes},
      {"verified_disk_bytes", m.verified_disk_bytes},
      {"price_hour", tokens(hour)},
      {"price_hour_base_units", hour.to_decimal()},
      {"gpu_price_hour", value(kGpuPriceHour)},
      {"prices", m.prices},
      {"reliability", value(kReliability)},
      {"country", value(kCountry)},
      {"region", value(kRegion)},
      {"verified", value(kVerified)},
      {"perf", value(kPerf)},
      {"perf_per_price", value(kPerfPerPrice)},
      {"driver_version", value(kDriverVersion)},
  };
}

void Scheduler::index_prices(std::uint32_t index, bool add) {
  const Machine& m = machines_[index];
  if (!offered(m)) return;
  auto apply = [&](std::set<PriceKey>& set, double unit) {
    const PriceKey key{unit, index, m.gpu_hour_tokens, m.cpu_core_hour_tokens, m.ram_gb_hour_tokens};
    if (add) set.insert(key);
    else set.erase(key);
  };
  const Free free = free_of(m);
  if (free.cpu_cores == 0) return;
  if (m.gpus > 0 && free.gpus > 0) {
    const FieldValue& model = m.fixed[kGpuName] ? *m.fixed[kGpuName] : FieldValue{std::string{}};
    auto& set = by_gpu_price_[{std::get<std::string>(model), std::get<double>(*m.fixed[kGpuRam])}];
    apply(set, m.gpu_hour_tokens);
    min_gpu_hour_ = std::min(min_gpu_hour_, m.gpu_hour_tokens);
  }
  apply(by_core_price_, m.cpu_core_hour_tokens);
  min_core_hour_ = std::min(min_core_hour_, m.cpu_core_hour_tokens);
  min_ram_gb_hour_ = std::min(min_ram_gb_hour_, m.ram_gb_hour_tokens);
}

void Scheduler::upsert(const json::object& provider) {
  Machine m = machine_from_provider(provider);
  if (m.key.empty()) return;
  std::unique_lock lock(mutex_);
  auto [it, inserted] = by_key_.try_emplace(m.key, static_cast<std::uint32_t>(machines_.size()));
  if (inserted) {
    machines_.push_back(std::move(m));
  } else {
    index_prices(it->second, false);
    m.held = machines_[it->second].held;
    machines_[it->second] = std::move(m);
  }
  index_prices(it->second, true);
}

void Scheduler::set_held(const std::string& key, const Reserved& held) {
  std::unique_lock lock(mutex_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  Machine& m = machines_[it->second];
  // The price walks hold machines with a GPU (or a core) free: only a change across zero
  // moves a machine in or out of them (called under the lease book's write lock: keep it short).
  auto membership = [&m](const Reserved& r) { return std::pair{m.gpus > r.gpus, m.cpu_cores > r.cpu_cores}; };
  if (membership(held) == membership(m.held)) {
    m.held = held;
    return;
  }
  index_prices(it->second, false);
  m.held = held;
  index_prices(it->second, true);
}

std::size_t Scheduler::size() const {
  std::shared_lock lock(mutex_);
  return machines_.size();
}

Result<Scheduler::Page> Scheduler::search(std::string_view query, std::string_view sort, std::size_t limit) const {
  auto q = parse_query(query);
  if (!q) return std::unexpected(q.error());
  auto keys = parse_sort(sort.empty() ? std::string_view("price_hour,-reliability") : sort);
  if (!keys) return std::unexpected(keys.error());
  const std::size_t k = keys->size();

  std::shared_lock lock(mutex_);
  // The matches, each with its sort values (copied: the order is decided on these alone).
  std::vector<std::uint32_t> matched;
  std::vector<std::optional<FieldValue>> sort_values;
  for (std::uint32_t i = 0; i < machines_.size(); ++i) {
    const Machine& m = machines_[i];
    if (!offered(m)) continue;
    const Dynamic d(m, free_of(m));
    if (!q->matches_at([&](std::size_t field) { return d.at(m, field); })) continue;
    matched.push_back(i);
    for (const SortKey& key : *keys) {
      const FieldValue* v = d.at(m, key.field_index);
      sort_values.push_back(v != nullptr ? std::optional<FieldValue>(*v) : std::nullopt);
    }
  }
  std::vector<std::uint32_t> order(matched.size());
  for (std::uint32_t j = 0; j < order.size(); ++j) order[j] = j;
  auto before = [&](std::uint32_t a, std::uint32_t b) {
    for (std::size_t s = 0; s < k; ++s) {
      const auto& va = sort_values[a * k + s];
      const auto& vb = sort_values[b * k + s];
      const int cmp = compare_for_sort((*keys)[s], va ? &*va : nullptr, vb ? &*vb : nullptr);
      if (cmp != 0) return cmp < 0;
    }
    return a < b;  // then the order providers first came in
  };
  const std::size_t shown = std::min(limit, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(shown), order.end(), before);
  Page page;
  page.total = matched.size();
  for (std::size_t j = 0; j < shown; ++j) {
    const Machine& m = machines_[matched[order[j]]];
    page.offers.push_back(offer_json(m, free_of(m)));
  }
  return page;
}

Result<std::vector<std::string>> Scheduler::candidates(const Query& query, const Need& need, std::size_t count) const {
  struct Candidate {
    double price;
    double reliability;
    std::uint32_t index;
  };
  // Best first: cheaper, then more reliable, then earlier.
  auto better = [](const Candidate& a, const Candidate& b) {
    if (a.price != b.price) return a.price < b.price;
    if (a.reliability != b.reliability) return a.reliability > b.reliability;
    return a.index < b.index;
  };
  std::vector<Candidate> top;  // a heap with the worst of the best `count` on top
  if (count == 0) return std::vector<std::string>{};
  std::shared_lock lock(mutex_);
  // Walks one price-ordered set until nothing further on can beat the worst kept.
  // Like Kubernetes' percentageOfNodesToScore: once the set is full, only a bounded number
  // of further machines are looked at, so a placement costs the same with 1,000 or 100,000
  // providers. What it can miss is a machine dearer per unit whose CPU and memory are
  // cheap enough to make up for it.
  constexpr std::size_t kLookFurther = 256;
  auto walk = [&](const std::set<PriceKey>& set, double unit_count, double rest_at_least) {
    std::size_t further = 0;
    for (const PriceKey& key : set) {
      // A lower bound of the machine's price for `need`: its unit price for the walked
      // resource plus the cheapest anyone charges for the rest.
      if (top.size() == count && (key.unit * unit_count + rest_at_least > top.front().price || ++further > kLookFurther)) {
        break;
      }
      const double price = key.gpu_hour * need.gpus + key.cpu_core_hour * need.cpu_cores +
                           key.ram_gb_hour * static_cast<double>(need.ram_gb);
      if (top.size() == count && price > top.front().price) continue;  // cheap checks first
      const Machine& m = machines_[key.index];
      const FieldValue* r = m.fixed[kReliability] ? &*m.fixed[kReliability] : nullptr;
      const Candidate c{price, r != nullptr ? std::get<double>(*r) : 0.0, key.index};
      if (top.size() == count && !better(c, top.front())) continue;
      const Free free = free_of(m);
      if (free.gpus < need.gpus || free.cpu_cores < need.cpu_cores || free.ram_gb < need.ram_gb) continue;
      const Dynamic d(m, free);
      if (!query.matches_at([&](std::size_t field) { return d.at(m, field); })) continue;
      if (top.size() == count) {
        std::pop_heap(top.begin(), top.end(), better);
        top.pop_back();
      }
      top.push_back(c);
      std::push_heap(top.begin(), top.end(), better);
    }
  };
  const double ram_at_least = min_ram_gb_hour_ * static_cast<double>(need.ram_gb);
  if (need.gpus > 0) {
    // Only the models the query's gpu_name and gpu_ram conditions allow.
    for (const auto& [model, set] : by_gpu_price_) {
      const FieldValue name{model.first};
      const FieldValue ram{model.second};
      bool allowed = true;
      for (const Condition& c : query.conditions) {
        if (c.field_index == kGpuName) allowed = allowed && condition_holds(c, model.first.empty() ? nullptr : &name);
        if (c.field_index == kGpuRam) allowed = allowed && condition_holds(c, &ram);
      }
      if (allowed) walk(set, need.gpus, min_core_hour_ * need.cpu_cores + ram_at_least);
    }
  } else {
    walk(by_core_price_, need.cpu_cores, ram_at_least);
  }
  std::sort_heap(top.begin(), top.end(), better);
  std::vector<std::string> out;
  for (const auto& c : top) out.push_back(machines_[c.index].id);
  return out;
}

Result<json::object> place_lease(const Scheduler& scheduler, LeaseBook& leases, const crypto::Address& renter,
                                 LeaseSpec spec, const Query& query, const chain::Deployment& chain,
                                 const std::string& idempotency_key) {
  constexpr std::size_t kTries = 3;
  // A retried request gets the lease its first try placed, wherever that was.
  if (auto earlier = leases.replayed(renter, idempotency_key, spec); !earlier || *earlier) {
    if (!earlier) return std::unexpected(earlier.error());
    return **earlier;
  }
  auto picks = scheduler.candidates(query, Need{spec.gpus, spec.cpus, spec.memory_gb}, kTries);
  if (!picks) return std::unexpected(picks.error());
  if (picks->empty()) {
    return fail(ErrorCode::kConflict, "no online offer matches the query with " + std::to_string(spec.gpus) + " GPUs, " +
                                          std::to_string(spec.cpus) + " CPU cores and " +
                                          std::to_string(spec.memory_gb) + " GiB free");
  }
  Error last{ErrorCode::kConflict, "every matching offer was taken meanwhile; try again"};
  for (const auto& id : *picks) {
    spec.offer = id;
    auto lease = leases.create(renter, spec, chain, idempotency_key);
    if (lease) return lease;
    // Taken a moment ago, gone offline, or without the image: the next one.
    if (lease.error().code != ErrorCode::kConflict && lease.error().code != ErrorCode::kNotFound) return lease;
    last = lease.error();
  }
  return std::unexpected(last);
}

}  // namespace kaisar::onenode
