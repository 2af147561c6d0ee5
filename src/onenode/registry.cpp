#include "onenode/registry.hpp"

#include <boost/json.hpp>

#include <algorithm>

#include "core/json_fields.hpp"
#include "onenode/verified.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

namespace {
std::int64_t now_ms(const Clock& clock) {
  return std::chrono::duration_cast<Millis>(clock.now().time_since_epoch()).count();
}

constexpr std::int64_t kFlushEveryMs = 5000;

constexpr char kProviderColumns[] =
    "id, owner, hardware, region, country, agent_version, status, registered_at, last_seen, binding_issued_at, prices, verification";
}  // namespace

ProviderRegistry::ProviderRegistry(store::Database& db, const Clock& clock, EventHub& events,
                                   std::chrono::seconds offline_after,
                                   std::function<std::string(const std::string&)> locate)
    : db_(db), clock_(clock), events_(events), offline_after_(offline_after), locate_(std::move(locate)) {}

Result<void> ProviderRegistry::recover() {
  return db_.transaction([&]() -> Result<void> {
    if (auto r = db_.execute("UPDATE uptime_intervals SET open = 0 WHERE open = 1", {}); !r) {
      return std::unexpected(r.error());
    }
    if (auto r = db_.execute("UPDATE providers SET status = 'offline' WHERE status <> 'offline'", {}); !r) {
      return std::unexpected(r.error());
    }
    return {};
  });
}

Result<std::shared_ptr<Liveness>> ProviderRegistry::connect(const Registration& reg) {
  const std::string id = reg.node.to_lower_hex();
  const std::int64_t now = now_ms(clock_);
  const std::int64_t now_s = now / 1000;
  const std::string country = locate_(reg.remote_ip);
  const std::string hardware = json::serialize(reg.hardware.to_json());

  std::unique_lock lock(mutex_);
  auto existing = db_.query("SELECT owner FROM providers WHERE id = ?", {id});
  if (!existing) return std::unexpected(existing.error());
  if (!existing->empty() && existing->front().text(0) != reg.owner.to_lower_hex()) {
    // A node key belongs to one owner; moving it needs the old binding revoked first.
    return fail(ErrorCode::kPermissionDenied, "node " + reg.node.to_checksum() + " is registered to another owner");
  }
  const bool is_new = existing->empty();
  auto it = online_.find(id);
  const bool was_online = it != online_.end();
  std::shared_ptr<Liveness> live = was_online ? it->second.live : std::make_shared<Liveness>();
  live->last_seen_ms.store(now, std::memory_order_relaxed);
  std::int64_t interval_id = was_online ? it->second.interval_id : 0;

  auto stored = db_.transaction([&]() -> Result<void> {
    store::Value region = reg.region ? store::Value{*reg.region} : store::Value{};
    auto r = db_.execute(
        "INSERT INTO providers(id, owner, binding_signature, binding_issued_at, hardware, region, country, "
        "agent_version, status, registered_at, last_seen, prices) VALUES(?, ?, ?, ?, ?, ?, ?, ?, 'online', ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET binding_signature = excluded.binding_signature, "
        "binding_issued_at = excluded.binding_issued_at, hardware = excluded.hardware, region = excluded.region, "
        "country = excluded.country, agent_version = excluded.agent_version, status = 'online', "
        "last_seen = excluded.last_seen, prices = excluded.prices",
        {id, reg.owner.to_lower_hex(), reg.binding_signature, reg.binding_issued_at, hardware, region, country,
         reg.agent_version, now_s, now_s,
         reg.prices ? store::Value{json::serialize(*reg.prices)} : store::Value{std::monostate{}}});
    if (!r) return std::unexpected(r.error());
    if (!was_online) {
      auto ins = db_.execute("INSERT INTO uptime_intervals(provider_id, started_at, ended_at, open) VALUES(?, ?, ?, 1)",
                             {id, now_s, now_s});
      if (!ins) return std::unexpected(ins.error());
      auto rid = db_.query("SELECT last_insert_rowid()", {});
      if (!rid) return std::unexpected(rid.error());
      interval_id = rid->front().integer(0);
    }
    return {};
  });
  if (!stored) return std::unexpected(stored.error());
  auto terms = std::make_shared<ProviderTerms>();
  terms->gpus = reg.hardware.gpus.size();
  for (const auto& g : reg.hardware.gpus) terms->gpu_names.push_back(g.name);
  if (reg.images) terms->images = std::set<std::string>(reg.images->begin(), reg.images->end());
  terms->cpu_cores = reg.hardware.cpu_cores;
  terms->ram_gb = reg.hardware.ram_bytes >> 30;
  terms->disk_gb = reg.hardware.disk_free_bytes >> 30;
  if (reg.prices) {
    auto price = [&](std::string_view key) {
      const json::value* v = reg.prices->if_contains(key);
      return v != nullptr && v->is_string() ? eth::Uint256::from_decimal(v->get_string()).value_or(eth::Uint256{})
                                            : eth::Uint256{};
    };
    terms->priced = true;
    terms->gpu_hour = price("gpu_hour");
    terms->cpu_core_hour = price("cpu_core_hour");
    terms->ram_gb_hour = price("ram_gb_hour");
  }
  online_[id] = Online{live, interval_id, was_online ? it->second.flushed_s : now_s, std::move(terms)};
  lock.unlock();

  json::object ev{{"provider_id", reg.node.to_checksum()}, {"status", "online"}, {"at", format_rfc3339(clock_.now())}};
  if (is_new) events_.publish("provider.registered", json::serialize(ev));
  if (!was_online) events_.publish("provider.online", json::serialize(ev));
  if (on_status_change) on_status_change(id, true);
  return live;
}

void ProviderRegistry::heartbeat(Liveness& live, const Availability& available) {
  live.available_gpus.store(available.gpus, std::memory_order_relaxed);
  live.available_cpu_cores.store(available.cpu_cores, std::memory_order_relaxed);
  live.available_ram_bytes.store(available.ram_bytes, std::memory_order_relaxed);
  live.last_seen_ms.store(now_ms(clock_), std::memory_order_relaxed);
  heartbeats_.fetch_add(1, std::memory_order_relaxed);
}

void ProviderRegistry::mark_offline(const std::string& id, const Online& entry) {
  const std::int64_t last_s = entry.live->last_seen_ms.load() / 1000;
  (void)db_.transaction([&]() -> Result<void> {
    (void)db_.execute("UPDATE uptime_intervals SET ended_at = ?, open = 0 WHERE id = ?", {last_s, entry.interval_id});
    (void)db_.execute("UPDATE providers SET status = 'offline', last_seen = ? WHERE id = ?", {last_s, id});
    return {};
  });
  auto address = crypto::Address::parse(id);
  json::object ev{{"provider_id", address ? address->to_checksum() : id},
                  {"status", "offline"},
                  {"at", format_rfc3339(clock_.now())},
                  {"last_seen", format_rfc3339(from_unix_seconds(last_s))}};
  events_.publish("provider.offline", json::serialize(ev));
  if (on_status_change) on_status_change(id, false);
}

void ProviderRegistry::sweep(bool force_flush) {
  std::lock_guard sweep_lock(sweep_mutex_);
  const std::int64_t now = now_ms(clock_);
  const std::int64_t grace_ms = std::chrono::duration_cast<Millis>(offline_after_).count();
  std::vector<std::pair<std::string, Online>> gone;
  std::vector<std::pair<std::int64_t, std::int64_t>> flush;  // interval id, last seen (s)
  // Last-seen times reach the database every few seconds, not every sweep: at 10,000
  // providers that is the difference between 10,000 and 2,000 row updates a second. Only
  // the times that moved since they were last written are written.
  const bool flushing = force_flush || now - last_flush_ms_ >= kFlushEveryMs;
  if (flushing) last_flush_ms_ = now;
  {
    std::unique_lock lock(mutex_);
    for (auto it = online_.begin(); it != online_.end();) {
      const std::int64_t last = it->second.live->last_seen_ms.load(std::memory_order_relaxed);
      if (now - last > grace_ms) {
        gone.emplace_back(it->first, it->second);
        it = online_.erase(it);
      } else {
        if (flushing && last / 1000 > it->second.flushed_s) {
          flush.emplace_back(it->second.interval_id, last / 1000);
          it->second.flushed_s = last / 1000;
        }
        ++it;
      }
    }
  }
  for (const auto& [id, entry] : gone) mark_offline(id, entry);
  // In transactions of a thousand, so that nobody waits long for the write lock.
  constexpr std::size_t kBatch = 1000;
  for (std::size_t start = 0; start < flush.size(); start += kBatch) {
    (void)db_.transaction([&]() -> Result<void> {
      for (std::size_t i = start; i < std::min(flush.size(), start + kBatch); ++i) {
        const auto& [interval, last_s] = flush[i];
        (void)db_.execute("UPDATE uptime_intervals SET ended_at = ? WHERE id = ? AND ended_at < ?",
                          {last_s, interval, last_s});
      }
      return {};
    });
  }
}

boost::json::object ProviderRegistry::view(const store::Row& row) const {
  const std::string id = row.text(0);
  const std::int64_t now_s = to_unix_seconds(clock_.now());
  std::int64_t last_seen = row.integer(8);
  std::string status = row.text(6);
  json::value available = nullptr;
  {
    std::shared_lock lock(mutex_);
    if (auto it = online_.find(id); it != online_.end()) {
      last_seen = it->second.live->last_seen_ms.load() / 1000;
      status = "online";
      available = json::object{{"gpus", it->second.live->available_gpus.load()},
                               {"cpu_cores", it->second.live->available_cpu_cores.load()},
                               {"ram_bytes", it->second.live->available_ram_bytes.load()}};
    } else {
      status = "offline";
    }
  }
  json::object uptime;
  auto intervals = db_.query("SELECT started_at, ended_at, open FROM uptime_intervals WHERE provider_id = ? "
                             "ORDER BY started_at DESC LIMIT 10000",
                             {id});
  auto window = [&](std::int64_t seconds) {
    std::int64_t covered = 0;
    const std::int64_t from = now_s - seconds;
    if (intervals) {
      for (const auto& iv : *intervals) {
        std::int64_t start = iv.integer(0);
        std::int64_t end = iv.integer(2) != 0 && status == "online" ? now_s : iv.integer(1);
        if (end <= from) continue;
        covered += end - std::max(start, from);
      }
    }
    const std::int64_t registered = row.integer(7);
    const std::int64_t denominator = std::max<std::int64_t>(1, now_s - std::max(from, registered));
    return std::min(1.0, static_cast<double>(covered) / static_cast<double>(denominator));
  };
  std::int64_t total = 0;
  json::array recent;
  if (intervals) {
    for (const auto& iv : *intervals) {
      std::int64_t end = iv.integer(2) != 0 && status == "online" ? now_s : iv.integer(1);
      total += end - iv.integer(0);
      if (recent.size() < 20) {
        recent.push_back(json::object{{"from", format_rfc3339(from_unix_seconds(iv.integer(0)))},
                                      {"to", iv.integer(2) != 0 && status == "online"
                                                 ? json::value(nullptr)
                                                 : json::value(format_rfc3339(from_unix_seconds(end)))}});
      }
    }
  }
  uptime["ratio_24h"] = window(24 * 3600);
  uptime["ratio_7d"] = window(7 * 24 * 3600);
  uptime["ratio_30d"] = window(30 * 24 * 3600);
  uptime["total_seconds"] = total;
  uptime["intervals"] = std::move(recent);

  json::value hardware;
  boost::system::error_code ec;
  hardware = json::parse(row.text(2), ec);
  if (ec) hardware = json::object{};
  json::value prices = nullptr;
  if (!row.is_null(10)) {
    json::value parsed = json::parse(row.text(10), ec);
    if (!ec && parsed.is_object()) prices = std::move(parsed);
  }
  // Proof of Physical Work: the last check's result (see CheckService).
  json::value verification = nullptr;
  bool verified = false;
  if (!row.is_null(11)) {
    json::value parsed = json::parse(row.text(11), ec);
    if (!ec && parsed.is_object()) {
      const json::value* v = parsed.get_object().if_contains("verified");
      verified = v != nullptr && v->is_bool() && v->get_bool();
      verification = std::move(parsed);
    }
  }
  // Claimed (hardware) and verified side by side: rewards and offers count the verified.
  const VerifiedResources measured = verified_resources(verification);
  const std::uint64_t claimed_ram = hardware.is_object() ? uint_field(hardware.get_object(), "ram_bytes") : 0;
  const std::uint64_t claimed_disk = hardware.is_object() ? uint_field(hardware.get_object(), "disk_free_bytes") : 0;
  auto node = crypto::Address::parse(id);
  auto owner = crypto::Address::parse(row.text(1));
  json::object location{{"country", row.text(4)},
                        {"region", row.is_null(3) ? json::value(nullptr) : json::value(row.text(3))}};
  return json::object{{"id", node ? node->to_checksum() : id},
                      {"owner", owner ? owner->to_checksum() : row.text(1)},
                      {"status", status},
                      {"hardware", std::move(hardware)},
                      {"location", std::move(location)},
                      {"agent_version", row.text(5)},
                      {"registered_at", format_rfc3339(from_unix_seconds(row.integer(7)))},
                      {"last_seen", format_rfc3339(from_unix_seconds(last_seen))},
                      {"uptime", std::move(uptime)},
                      {"available", std::move(available)},
                      {"prices", std::move(prices)},
                      {"verified", verified},
                      {"verified_memory_bytes", std::min(claimed_ram, measured.memory_bytes)},
                      {"verified_disk_bytes", std::min(claimed_disk, measured.disk_bytes)},
                      {"verification", std::move(verification)}};
}

Result<boost::json::array> ProviderRegistry::list() const {
  auto rows = db_.query(std::string("SELECT ") + kProviderColumns + " FROM providers ORDER BY registered_at, id", {});
  if (!rows) return std::unexpected(rows.error());
  json::array out;
  for (const auto& row : *rows) out.push_back(view(row));
  return out;
}

Result<boost::json::object> ProviderRegistry::get(const std::string& id) const {
  auto rows = db_.query(std::string("SELECT ") + kProviderColumns + " FROM providers WHERE id = ?", {id});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "no provider " + id);
  return view(rows->front());
}

Result<std::shared_ptr<const ProviderTerms>> ProviderRegistry::terms(const std::string& id) const {
  {
    std::shared_lock lock(mutex_);
    if (auto it = online_.find(id); it != online_.end() && it->second.terms) return it->second.terms;
  }
  auto rows = db_.query("SELECT 1 FROM providers WHERE id = ?", {id});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "no provider " + id);
  auto address = crypto::Address::parse(id);
  return fail(ErrorCode::kConflict, "provider " + (address ? address->to_checksum() : id) + " is offline");
}

std::vector<std::string> ProviderRegistry::owned_by(const crypto::Address& owner) const {
  std::vector<std::string> out;
  auto rows = db_.query("SELECT id FROM providers WHERE owner = ? ORDER BY registered_at", {owner.to_lower_hex()});
  if (rows) {
    for (const auto& r : *rows) {
      auto a = crypto::Address::parse(r.text(0));
      out.push_back(a ? a->to_checksum() : r.text(0));
    }
  }
  return out;
}

std::vector<std::string> ProviderRegistry::online_ids() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  out.reserve(online_.size());
  for (const auto& [id, entry] : online_) out.push_back(id);
  return out;
}

std::size_t ProviderRegistry::online_count() const {
  std::shared_lock lock(mutex_);
  return online_.size();
}

}  // namespace kaisar::onenode
