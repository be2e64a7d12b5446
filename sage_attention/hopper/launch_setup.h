// Host-side setup the Hopper kernels' launches and their dispatch share: the dynamic shared-memory
// attribute, set once per device and kernel, and a device's SM count, asked once.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace sage {
namespace sm90 {

// Sets `kernel`'s dynamic shared-memory limit to `bytes` on the current device unless this
// kernel's own `configured` (one bit per device, a static of the caller's instantiation) says
// it is set already. Devices past 64 set it on every call.
template <typename Kernel>
void set_dynamic_smem_once(Kernel kernel, int bytes, std::atomic<uint64_t>& configured) {
  int device = 0;
  cudaGetDevice(&device);
  if (device >= 64 || !((configured.load(std::memory_order_relaxed) >> device) & 1u)) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (device < 64) configured.fetch_or(uint64_t(1) << device, std::memory_order_relaxed);
  }
}

// A device's SM count (at least 1), cached per device (the dispatch asks on every call).
inline int device_sms(int device) {
  static int cached[64] = {};
  if (device >= 0 && device < 64 && cached[device] > 0) return cached[device];
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (sms < 1) sms = 1;
  if (device >= 0 && device < 64) cached[device] = sms;
  return sms;
}

// The current device's SM count (persistent grids).
inline int current_device_sms() {
  int device = 0;
  cudaGetDevice(&device);
  return device_sms(device);
}

}  // namespace sm90
}  // namespace sage
