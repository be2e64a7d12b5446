// Thread-block cluster primitives (sm_90): the cluster barrier, split into its two halves,
// and reads of another CTA's shared memory (distributed shared memory). Used by the K-mean
// cluster kernel (k_mean.cu) and the short-sequence pre-pass (short_sequence_prepass.cu); the
// host launches those only on compute capability >= 9.0, and before sm_90 these trap.
#pragma once
#include <cstdint>

namespace sage {
namespace cluster {

// Every thread of every CTA of the cluster arrives; memory written before it is visible to the
// cluster after the matching wait (release / acquire). Every thread of each warp must call it.
__device__ __forceinline__ void arrive() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// Every thread of the cluster waits here until all have arrived.
__device__ __forceinline__ void sync() {
  arrive();
  wait();
}

// The float at `local` (a shared-memory address of this CTA's layout) in the shared memory of
// the cluster's CTA `rank`.
__device__ __forceinline__ float load_shared_of(const float* local, uint32_t rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(local));
  uint32_t remote;
  float value;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(address), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(value) : "r"(remote));
  return value;
#else
  __trap();
  return 0.f;
#endif
}

}  // namespace cluster
}  // namespace sage
