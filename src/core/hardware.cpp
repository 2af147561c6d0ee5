#include "core/hardware.hpp"

#include <boost/json.hpp>

#include "core/words.hpp"

namespace kaisar {

namespace {
constexpr std::size_t kMaxString = 256;
constexpr std::size_t kMaxGpus = 64;

Result<std::string> get_string(const boost::json::object& o, std::string_view key, std::string_view where) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::string{};
  if (!it->value().is_string()) return fail(ErrorCode::kInvalidArgument, std::string(where) + "." + std::string(key) + " must be a string");
  const auto& s = it->value().get_string();
  if (s.size() > kMaxString) return fail(ErrorCode::kInvalidArgument, std::string(where) + "." + std::string(key) + " is too long");
  return std::string(s);
}

Result<std::uint64_t> get_uint(const boost::json::object& o, std::string_view key, std::string_view where) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::uint64_t{0};
  const auto& v = it->value();
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return fail(ErrorCode::kInvalidArgument, std::string(where) + "." + std::string(key) + " must be a non-negative integer");
}
}  // namespace

boost::json::object Hardware::to_json() const {
  boost::json::array gpu_list;
  for (const auto& g : gpus) {
    gpu_list.push_back(boost::json::object{
        {"name", g.name}, {"vram_bytes", g.vram_bytes}, {"uuid", g.uuid}, {"driver", g.driver}});
  }
  return boost::json::object{{"cpu_model", cpu_model},   {"cpu_cores", cpu_cores},
                             {"ram_bytes", ram_bytes},   {"disk_bytes", disk_bytes},
                             {"disk_free_bytes", disk_free_bytes}, {"gpus", std::move(gpu_list)}};
}

Result<Hardware> Hardware::from_json(const boost::json::value& v) noexcept {
  try {
    if (!v.is_object()) return fail(ErrorCode::kInvalidArgument, "hardware must be an object");
    const auto& o = v.get_object();
    Hardware h;
    auto model = get_string(o, "cpu_model", "hardware");
    if (!model) return std::unexpected(model.error());
    h.cpu_model = *model;
    auto cores = get_uint(o, "cpu_cores", "hardware");
    if (!cores) return std::unexpected(cores.error());
    if (*cores > 65536) return fail(ErrorCode::kInvalidArgument, "hardware.cpu_cores is implausible");
    h.cpu_cores = static_cast<std::uint32_t>(*cores);
    for (auto [key, field] : {std::pair{"ram_bytes", &h.ram_bytes}, std::pair{"disk_bytes", &h.disk_bytes},
                              std::pair{"disk_free_bytes", &h.disk_free_bytes}}) {
      auto n = get_uint(o, key, "hardware");
      if (!n) return std::unexpected(n.error());
      *field = *n;
    }
    if (auto it = o.find("gpus"); it != o.end() && !it->value().is_null()) {
      if (!it->value().is_array()) return fail(ErrorCode::kInvalidArgument, "hardware.gpus must be an array");
      const auto& arr = it->value().get_array();
      if (arr.size() > kMaxGpus) return fail(ErrorCode::kInvalidArgument, "hardware.gpus has too many entries");
      for (const auto& g : arr) {
        if (!g.is_object()) return fail(ErrorCode::kInvalidArgument, "hardware.gpus[] must be objects");
        const auto& go = g.get_object();
        Gpu gpu;
        auto name = get_string(go, "name", "gpu");
        auto uuid = get_string(go, "uuid", "gpu");
        auto driver = get_string(go, "driver", "gpu");
        auto vram = get_uint(go, "vram_bytes", "gpu");
        if (!name) return std::unexpected(name.error());
        if (!uuid) return std::unexpected(uuid.error());
        if (!driver) return std::unexpected(driver.error());
        if (!vram) return std::unexpected(vram.error());
        gpu.name = *name;
        gpu.uuid = *uuid;
        gpu.driver = *driver;
        gpu.vram_bytes = *vram;
        h.gpus.push_back(std::move(gpu));
      }
    }
    return h;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInvalidArgument, std::string("hardware: ") + e.what());
  }
}

bool gpu_model_matches(std::string_view name, std::string_view model) {
  const auto words = lower_words(model);
  return !words.empty() && has_words(name, words);
}

}  // namespace kaisar
