#include "onenode/offers.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "crypto/address.hpp"
#include "eth/uint256.hpp"

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

eth::Uint256 price(const json::object& prices, std::string_view key) {
  return eth::Uint256::from_decimal(text(prices, key)).value_or(eth::Uint256{});
}

double tokens(const eth::Uint256& base_units) {
  // Exact enough for display and search: the decimal digits as a double, then scaled.
  return std::stod(base_units.to_decimal()) / kTokenUnit;
}

}  // namespace

void apply_reservations(json::array& providers, const std::map<std::string, Reserved>& held) {
  for (auto& p : providers) {
    if (!p.is_object()) continue;
    json::object& provider = p.as_object();
    if (text(provider, "status") != "online") continue;
    const json::value* hw = provider.if_contains("hardware");
    if (hw == nullptr || !hw->is_object()) continue;
    const json::object& hardware = hw->get_object();
    const std::uint64_t gpus =
        hardware.contains("gpus") && hardware.at("gpus").is_array() ? hardware.at("gpus").as_array().size() : 0;
    const std::uint64_t cores = u64(hardware.if_contains("cpu_cores"));
    const std::uint64_t ram = u64(hardware.if_contains("ram_bytes"));
    Reserved r;
    auto id = crypto::Address::parse(text(provider, "id"));
    if (id) {
      if (auto it = held.find(id->to_lower_hex()); it != held.end()) r = it->second;
    }
    const std::uint64_t held_ram = r.memory_gb * static_cast<std::uint64_t>(kGiB);
    provider["available"] = json::object{{"gpus", gpus - std::min<std::uint64_t>(gpus, r.gpus)},
                                         {"cpu_cores", cores - std::min<std::uint64_t>(cores, r.cpu_cores)},
                                         {"ram_bytes", ram - std::min<std::uint64_t>(ram, held_ram)}};
  }
}

json::array build_offers(const json::array& providers) {
  json::array offers;
  for (const auto& p : providers) {
    if (!p.is_object()) continue;
    const json::object& provider = p.get_object();
    const json::value* prices_v = provider.if_contains("prices");
    const json::value* available_v = provider.if_contains("available");
    if (text(provider, "status") != "online" || prices_v == nullptr || !prices_v->is_object() ||
        available_v == nullptr || !available_v->is_object()) {
      continue;
    }
    const json::object& prices = prices_v->get_object();
    const json::object& available = available_v->get_object();
    const json::value* hardware_v = provider.if_contains("hardware");
    const json::object empty;
    const json::object& hardware = hardware_v != nullptr && hardware_v->is_object() ? hardware_v->get_object() : empty;

    // GPUs: the free count ("available": the hardware less what leases hold, see
    // apply_reservations), of the model most of its GPUs are (ties: the
    // first GPU's model), with that model's smallest memory.
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
        const std::string name = text(g.get_object(), "name");
        const std::uint64_t bytes = u64(g.get_object().if_contains("vram_bytes"));
        auto [it, inserted] = models.try_emplace(name, Model{0, index, bytes, text(g.get_object(), "driver")});
        it->second.count++;
        it->second.vram = std::min(it->second.vram, bytes);
        ++index;
      }
    }
    std::string gpu_name;
    const Model* chosen = nullptr;
    for (const auto& [name, m] : models) {
      if (chosen == nullptr || m.count > chosen->count || (m.count == chosen->count && m.first < chosen->first)) {
        chosen = &m;
        gpu_name = name;
      }
    }
    const std::uint64_t vram = chosen != nullptr ? chosen->vram : 0;
    const std::string driver = chosen != nullptr ? chosen->driver : std::string{};
    const std::uint64_t free_gpus = std::min<std::uint64_t>(u64(available.if_contains("gpus")), 64);
    const std::uint64_t free_cores = std::min<std::uint64_t>(u64(available.if_contains("cpu_cores")), 4096);
    const std::uint64_t free_ram_gb =
        static_cast<std::uint64_t>(static_cast<double>(u64(available.if_contains("ram_bytes"))) / kGiB);

    const eth::Uint256 gpu_hour = price(prices, "gpu_hour");
    const eth::Uint256 hour = gpu_hour * free_gpus + price(prices, "cpu_core_hour") * free_cores +
                              price(prices, "ram_gb_hour") * free_ram_gb;
    const json::value* location_v = provider.if_contains("location");
    const json::object& location = location_v != nullptr && location_v->is_object() ? location_v->get_object() : empty;
    double reliability = 0;
    if (const json::value* uptime = provider.if_contains("uptime"); uptime != nullptr && uptime->is_object()) {
      if (const json::value* r = uptime->get_object().if_contains("ratio_30d"); r != nullptr && r->is_number()) {
        reliability = r->to_number<double>();
      }
    }
    json::object offer{
        {"id", provider.at("id")},
        {"provider", provider.at("id")},
        {"gpu_name", gpu_name.empty() ? json::value(nullptr) : json::value(gpu_name)},
        {"num_gpus", free_gpus},
        {"gpu_ram", std::round(static_cast<double>(vram) / kGiB * 10) / 10},
        {"gpu_total_ram", std::round(static_cast<double>(vram) * static_cast<double>(free_gpus) / kGiB * 10) / 10},
        {"cpu_cores", free_cores},
        {"cpu_name", text(hardware, "cpu_model")},
        {"ram", free_ram_gb},
        {"disk", std::floor(static_cast<double>(u64(hardware.if_contains("disk_free_bytes"))) / kGiB)},
        {"price_hour", tokens(hour)},
        {"price_hour_base_units", hour.to_decimal()},
        {"gpu_price_hour", tokens(gpu_hour)},
        {"prices", prices},
        {"reliability", std::round(reliability * 10000) / 10000},
        {"country", text(location, "country")},
        {"region", location.if_contains("region") ? location.at("region") : json::value(nullptr)},
        {"verified", false},
        {"driver_version", driver.empty() ? json::value(nullptr) : json::value(driver)},
    };
    offers.push_back(std::move(offer));
  }
  return offers;
}

std::optional<FieldValue> offer_field(const json::object& offer, std::string_view field) {
  const json::value* v = offer.if_contains(field);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (v->is_bool()) return FieldValue{v->get_bool()};
  if (v->is_number()) return FieldValue{v->to_number<double>()};
  if (v->is_string()) return FieldValue{std::string(v->get_string())};
  return std::nullopt;
}

Result<json::array> search_offers(const json::array& providers, std::string_view query, std::string_view sort) {
  auto q = parse_query(query);
  if (!q) return std::unexpected(q.error());
  auto keys = parse_sort(sort.empty() ? std::string_view("price_hour") : sort);
  if (!keys) return std::unexpected(keys.error());
  std::vector<json::object> matched;
  for (auto& offer : build_offers(providers)) {
    json::object& o = offer.as_object();
    if (q->matches([&o](std::string_view f) { return offer_field(o, f); })) matched.push_back(std::move(o));
  }
  std::stable_sort(matched.begin(), matched.end(), [&](const json::object& a, const json::object& b) {
    return sort_before(*keys, [&a](std::string_view f) { return offer_field(a, f); },
                       [&b](std::string_view f) { return offer_field(b, f); });
  });
  json::array out;
  for (auto& o : matched) out.push_back(std::move(o));
  return out;
}

}  // namespace kaisar::onenode
