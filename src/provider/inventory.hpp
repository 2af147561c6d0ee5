#pragma once

#include <string>

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

}  // namespace kaisar::provider
