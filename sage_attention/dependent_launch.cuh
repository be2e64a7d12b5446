// Programmatic dependent launch (Hopper): each kernel of fwd's chain (K mean -> quantizer ->
// attention; the K mean is one cluster launch up to 8192 keys at head_dim 128, else sums ->
// finalize; up to 2048 keys the whole pre-pass is one launch, short_sequence_prepass.cu)
// is launched while the previous one still runs, so launch latency, prologues and the jobs
// that need nothing from the previous kernel (the quantizer's V tiles) overlap its tail
// instead of following it.
// A kernel allows it with allow_dependent_launch() once every CTA has started; the
// dependent kernel calls wait_for_prerequisite_grid() before it reads anything the
// previous kernel wrote. On GPUs before sm_90 both are no-ops and launches are plain.
#pragma once
#include <cuda_runtime.h>

#include <utility>

namespace sage {

__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Blocks the calling thread until the grid this launch depends on has completed and its
// writes are visible. A no-op when launched without the attribute.
__device__ __forceinline__ void wait_for_prerequisite_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Whether the current device is compute capability >= 9.0 (launch overlap and thread-block
// clusters); cached per device.
inline bool device_is_sm90_or_newer() {
  constexpr int kMaxDevices = 64;
  static signed char cached[kMaxDevices] = {};  // 0 unknown, 1 yes, -1 no
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) return false;
  if (cached[device] == 0) {
    int major = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cached[device] = major >= 9 ? 1 : -1;
  }
  return cached[device] > 0;
}

// Launches `kernel` so it may start before the previous kernel on `stream` finishes (it must
// call wait_for_prerequisite_grid before reading that kernel's output). Plain launch before sm_90.
template <typename... Params, typename... Args>
cudaError_t launch_overlapping_previous(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                                        cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = device_is_sm90_or_newer() ? 1 : 0;  // launch overlap came with sm_90
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace sage
