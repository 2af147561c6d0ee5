#include "provider/inventory.hpp"

#include <algorithm>
#include <cstdlib>

#include <dlfcn.h>
#include <sched.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace kaisar::provider {

namespace {

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon));
    if (key == "model name" || key == "Hardware" || key == "Model" || key == "cpu model") {
      return trim(line.substr(colon + 1));
    }
  }
  return "unknown CPU";
}

std::uint32_t cpu_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<std::uint32_t>(CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<std::uint32_t>(n) : 1;
}

std::uint64_t ram_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb * 1024;
  }
  return 0;
}

// The NVML subset we use, resolved by name so that no NVIDIA package is needed to build.
using nvmlReturn = int;
using nvmlDevice = void*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlUtilization {
  unsigned gpu, memory;
};

}  // namespace

std::vector<Gpu> detect_nvidia_gpus(std::string* note, const char* library) {
  std::vector<Gpu> gpus;
  void* lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    if (note != nullptr) *note = "NVML (libnvidia-ml.so.1) not found: no NVIDIA driver";
    return gpus;
  }
  auto sym = [&](const char* name) { return dlsym(lib, name); };
  auto init = reinterpret_cast<nvmlReturn (*)()>(sym("nvmlInit_v2"));
  auto shutdown = reinterpret_cast<nvmlReturn (*)()>(sym("nvmlShutdown"));
  auto count = reinterpret_cast<nvmlReturn (*)(unsigned*)>(sym("nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<nvmlReturn (*)(unsigned, nvmlDevice*)>(sym("nvmlDeviceGetHandleByIndex_v2"));
  auto name = reinterpret_cast<nvmlReturn (*)(nvmlDevice, char*, unsigned)>(sym("nvmlDeviceGetName"));
  auto uuid = reinterpret_cast<nvmlReturn (*)(nvmlDevice, char*, unsigned)>(sym("nvmlDeviceGetUUID"));
  auto memory = reinterpret_cast<nvmlReturn (*)(nvmlDevice, NvmlMemory*)>(sym("nvmlDeviceGetMemoryInfo"));
  auto driver = reinterpret_cast<nvmlReturn (*)(char*, unsigned)>(sym("nvmlSystemGetDriverVersion"));
  if (init == nullptr || shutdown == nullptr || count == nullptr || handle == nullptr || name == nullptr ||
      uuid == nullptr || memory == nullptr || driver == nullptr) {
    if (note != nullptr) *note = "NVML is missing expected functions";
    dlclose(lib);
    return gpus;
  }
  if (init() != 0) {
    if (note != nullptr) *note = "nvmlInit failed: driver not loaded or no permission";
    dlclose(lib);
    return gpus;
  }
  char driver_version[96] = {};
  driver(driver_version, sizeof driver_version);
  unsigned n = 0;
  if (count(&n) == 0) {
    for (unsigned i = 0; i < n && i < 64; ++i) {
      nvmlDevice dev = nullptr;
      if (handle(i, &dev) != 0) continue;
      Gpu g;
      char buf[96] = {};
      if (name(dev, buf, sizeof buf) == 0) g.name = buf;
      char ubuf[96] = {};
      if (uuid(dev, ubuf, sizeof ubuf) == 0) g.uuid = ubuf;
      NvmlMemory mem{};
      if (memory(dev, &mem) == 0) g.vram_bytes = mem.total;
      g.driver = driver_version;
      gpus.push_back(std::move(g));
    }
  }
  shutdown();
  dlclose(lib);
  if (gpus.empty() && note != nullptr) *note = "NVML reports no GPUs";
  return gpus;
}

Hardware detect_hardware(const std::string& data_dir) {
  Hardware h;
  h.cpu_model = cpu_model();
  h.cpu_cores = cpu_cores();
  h.ram_bytes = ram_bytes();
  struct statvfs fs {};
  if (statvfs(data_dir.c_str(), &fs) == 0) {
    h.disk_bytes = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
    h.disk_free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  }
  h.gpus = detect_nvidia_gpus(nullptr, nvml_library().c_str());
  return h;
}

std::string nvml_library() {
  // KAISAR_NVML_LIBRARY names NVML when it is not where the driver usually puts it.
  const char* nvml = std::getenv("KAISAR_NVML_LIBRARY");
  return nvml != nullptr && *nvml != '\0' ? std::string(nvml) : std::string("libnvidia-ml.so.1");
}

std::optional<std::vector<std::string>> pick_gpus(const std::vector<Gpu>& all, const std::set<std::string>& used,
                                                  std::uint32_t count, std::string_view model) {
  std::vector<std::string> picked;
  for (const auto& gpu : all) {
    if (picked.size() == count) break;
    if (gpu.uuid.empty() || used.contains(gpu.uuid)) continue;
    if (!model.empty() && !gpu_model_matches(gpu.name, model)) continue;
    picked.push_back(gpu.uuid);
  }
  if (picked.size() < count) return std::nullopt;
  return picked;
}

GpuSampler::GpuSampler(const std::string& library) {
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return;
  auto init = reinterpret_cast<nvmlReturn (*)()>(dlsym(lib, "nvmlInit_v2"));
  shutdown_ = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlShutdown"));
  by_uuid_ = reinterpret_cast<int (*)(const char*, void**)>(dlsym(lib, "nvmlDeviceGetHandleByUUID"));
  utilization_ = reinterpret_cast<int (*)(void*, void*)>(dlsym(lib, "nvmlDeviceGetUtilizationRates"));
  memory_ = reinterpret_cast<int (*)(void*, void*)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  if (init == nullptr || shutdown_ == nullptr || by_uuid_ == nullptr || utilization_ == nullptr ||
      memory_ == nullptr || init() != 0) {
    dlclose(lib);
    return;
  }
  lib_ = lib;
}

GpuSampler::~GpuSampler() {
  if (lib_ == nullptr) return;
  shutdown_();
  dlclose(lib_);
}

std::optional<GpuSample> GpuSampler::sample(const std::string& uuid) const {
  if (lib_ == nullptr) return std::nullopt;
  nvmlDevice dev = nullptr;
  if (by_uuid_(uuid.c_str(), &dev) != 0) return std::nullopt;
  NvmlUtilization rates{};
  if (utilization_(dev, &rates) != 0) return std::nullopt;
  GpuSample s;
  s.uuid = uuid;
  s.utilization_percent = std::min(rates.gpu, 100u);
  NvmlMemory mem{};
  if (memory_(dev, &mem) == 0) s.memory_used_bytes = mem.used;
  return s;
}

}  // namespace kaisar::provider
