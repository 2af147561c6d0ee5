/* A stand-in for libnvidia-ml.so.1 with two GPUs, for testing GPU detection on machines
 * without NVIDIA hardware. FAKE_NVML_FAIL=1 makes nvmlInit_v2 fail like a missing driver. */
#include <stdlib.h>
#include <string.h>

typedef struct {
  unsigned long long total, free, used;
} Memory;

static int g_devices[2];

int nvmlInit_v2(void) {
  const char* fail = getenv("FAKE_NVML_FAIL");
  return fail != NULL && fail[0] == '1' ? 9 : 0;
}
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  if (index >= 2) return 2;
  *device = &g_devices[index];
  return 0;
}
static unsigned index_of(void* device) { return device == &g_devices[0] ? 0u : 1u; }
int nvmlDeviceGetName(void* device, char* name, unsigned length) {
  strncpy(name, index_of(device) == 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA GeForce RTX 4090", length);
  return 0;
}
int nvmlDeviceGetUUID(void* device, char* uuid, unsigned length) {
  strncpy(uuid, index_of(device) == 0 ? "GPU-00000000-0000-0000-0000-000000000000" : "GPU-11111111-1111-1111-1111-111111111111", length);
  return 0;
}
int nvmlDeviceGetHandleByUUID(const char* uuid, void** device) {
  for (unsigned i = 0; i < 2; ++i) {
    char buf[96];
    nvmlDeviceGetUUID(&g_devices[i], buf, sizeof buf);
    if (strcmp(buf, uuid) == 0) {
      *device = &g_devices[i];
      return 0;
    }
  }
  return 6; /* NVML_ERROR_NOT_FOUND */
}
/* Utilisation: 37% on the first GPU, 90% on the second, with 1 GiB and 2 GiB in use. */
typedef struct {
  unsigned gpu, memory;
} Utilization;
int nvmlDeviceGetUtilizationRates(void* device, Utilization* rates) {
  rates->gpu = index_of(device) == 0 ? 37u : 90u;
  rates->memory = 10u;
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  memory->total = index_of(device) == 0 ? 85520809984ull : 25757220864ull;
  memory->used = index_of(device) == 0 ? 1073741824ull : 2147483648ull;
  memory->free = memory->total - memory->used;
  return 0;
}
int nvmlSystemGetDriverVersion(char* version, unsigned length) {
  strncpy(version, "550.54.15", length);
  return 0;
}
