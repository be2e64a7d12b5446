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
// can be resident on the current device; asked once per device and size.
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
    cudaLaunchAttribute attribute;
    const cudaLaunchConfig_t config =
        cluster_launch_config(dim3(unsigned(ctas)), dim3(unsigned(threads)), dim3(unsigned(ctas)), nullptr, &attribute);
    int clusters = 0;
    fits = (ctas <= kPortableClusterCtas ||
            cudaFuncSetAttribute(kKernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess) &&
                   cudaOccupancyMaxActiveClusters(&clusters, kKernel, &config) == cudaSuccess && clusters > 0
               ? 1
               : -1;
    cudaGetLastError();  // a refusal is an answer here, not an error for the next launch check
    answer.store(fits, std::memory_order_relaxed);
  }
  return fits > 0;
}

}  // namespace sage
