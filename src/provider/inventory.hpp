#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/hardware.hpp"

namespace kaisar::provider {

// Detects this machine's hardware: CPU model and logical cores (the ones this process may
// use), RAM, the filesystem holding `data_dir`, and NVIDIA GPUs through NVML loaded at run
// time (libnvidia-ml.so.1) when it is present. Without NVML or GPUs the list is empty and
// the provider registers as CPU-only.
Hardware detect_hardware(const std::string& data_dir);

// Only the GPUs; `note` tells why none were found (no NVML, init failed, …).
// `library` is the NVML library to load (tests point it at a stand-in).
std::vector<Gpu> detect_nvidia_gpus(std::string* note = nullptr, const char* library = "libnvidia-ml.so.1");

// The NVML library to load: $KAISAR_NVML_LIBRARY when set, else the driver's usual name.
std::string nvml_library();

// `count` of the machine's GPUs (their uuids, in the machine's order) that are not in
// `used` and, when `model` is given, are of that model (gpu_model_matches); nothing when
// fewer are free. A GPU belongs to one lease at a time.
std::optional<std::vector<std::string>> pick_gpus(const std::vector<Gpu>& all, const std::set<std::string>& used,
                                                  std::uint32_t count, std::string_view model = {});

// What a GPU is doing now, read through NVML.
struct GpuSample {
  std::string uuid;
  unsigned utilization_percent = 0;  // of the last sample period (NVML: about 1/6 s to 1 s)
  std::uint64_t memory_used_bytes = 0;
};

// Keeps NVML open to sample GPUs by uuid. Without NVML every sample is empty.
class GpuSampler {
 public:
  explicit GpuSampler(const std::string& library);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  bool available() const { return lib_ != nullptr; }
  std::optional<GpuSample> sample(const std::string& uuid) const;

 private:
  void* lib_ = nullptr;
  int (*shutdown_)() = nullptr;
  int (*by_uuid_)(const char*, void**) = nullptr;
  int (*utilization_)(void*, void*) = nullptr;
  int (*memory_)(void*, void*) = nullptr;
};

}  // namespace kaisar::provider
