#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace kaisar {

struct Gpu {
  std::string name;          // "NVIDIA H100 80GB HBM3"
  std::uint64_t vram_bytes = 0;
  std::string uuid;          // "GPU-…"
  std::string driver;        // "550.54.15"
};

// What a provider machine has, as the agent detected it.
struct Hardware {
  std::string cpu_model;
  std::uint32_t cpu_cores = 0;   // logical CPUs the agent may use
  std::uint64_t ram_bytes = 0;
  std::uint64_t disk_bytes = 0;  // filesystem holding the agent's data dir
  std::uint64_t disk_free_bytes = 0;
  std::vector<Gpu> gpus;         // empty: CPU-only provider

  boost::json::object to_json() const;
  // Validates untrusted JSON from an agent: types, sizes (strings ≤ 256 bytes, ≤ 64 GPUs).
  static Result<Hardware> from_json(const boost::json::value& v) noexcept;
};

// Whether a GPU named `name` ("NVIDIA GeForce RTX 4090") is of `model` ("RTX_4090",
// "rtx 4090"): the model's words appear in the name's in a row (see core/words.hpp).
bool gpu_model_matches(std::string_view name, std::string_view model);

}  // namespace kaisar
