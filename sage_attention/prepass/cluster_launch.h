// Host side of the pre-pass's thread-block-cluster launches (k_mean.cu, short_sequence_prepass.cu):
// the launch configuration, and whether a cluster size can be resident on the current device.
// Sizes above 8 CTAs are non-portable (sm_90 allows 16); the kernel is allowed them here.
#pragma once
#include <cuda_runtime.h>

#include <atomic>

namespace sage {

constexpr int kPortableClusterCtas = 8;
constexpr int kLargestClusterCtas = 16;

// `attribute` must outlive the launch that uses the returned configuration.
inline cudaLaunchConfig_t cluster_launch_config(dim3 grid, dim3 block, dim3 cluster, cudaStream_t stream,
                                                cudaLaunchAttribute* attribute) {
  attribute->id = cudaLaunchAttributeClusterDimension;
  attribute->val.clusterDim.x = cluster.x;
  attribute->val.clusterDim.y = cluster.y;
  attribute->val.clusterDim.z = cluster.z;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = 1;
  return config;
}

// Whether clusters of `ctas` CTAs (1 <= ctas <= kLargestClusterCtas) of kKernel, `threads` each,
// can run on the current device: the kernel's machine code is sm_90 or newer (a build that only
// had pre-sm_90 PTX for this device would JIT the cluster primitives into traps,
// thread_block_cluster.cuh) and the device can hold such a cluster. Asked once per device and
// size; the answer, and the non-portable size attribute set on the kernel with it, are kept for
// the process (a cudaDeviceReset would drop the attribute: not supported here).
// With an error already pending from earlier work it answers no without asking, and leaves that
// error to the caller's launch check.
template <auto kKernel>
bool clusters_fit(int ctas, int threads) {
  constexpr int kMaxDevices = 64;
  static std::atomic<signed char> known[kMaxDevices][kLargestClusterCtas + 1];  // 0 unknown, 1 yes, -1 no
  int device = 0;
  if (ctas < 1 || ctas > kLargestClusterCtas || cudaGetDevice(&device) != cudaSuccess || device < 0 ||
      device >= kMaxDevices) {
    return false;
  }
  std::atomic<signed char>& answer = known[device][ctas];
  signed char fits = answer.load(std::memory_order_relaxed);
  if (fits == 0) {
    if (cudaPeekAtLastError() != cudaSuccess) return false;  // not ours to clear; ask again next time
    cudaFuncAttributes binary{};
    cudaLaunchAttribute attribute;
    const cudaLaunchConfig_t config =
        cluster_launch_config(dim3(unsigned(ctas)), dim3(unsigned(threads)), dim3(unsigned(ctas)), nullptr, &attribute);
    int clusters = 0;
    const bool asked = cudaFuncGetAttributes(&binary, kKernel) == cudaSuccess &&
                       (ctas <= kPortableClusterCtas ||
                        cudaFuncSetAttribute(kKernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess) &&
                       cudaOccupancyMaxActiveClusters(&clusters, kKernel, &config) == cudaSuccess;
    if (!asked) cudaGetLastError();  // a refusal of our own queries is an answer, not an error to report later
    fits = asked && binary.binaryVersion >= 90 && clusters > 0 ? 1 : -1;
    answer.store(fits, std::memory_order_relaxed);
  }
  return fits > 0;
}

}  // namespace sage
