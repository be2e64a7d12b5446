// The K-mean launches (the device steps of k_mean.cuh). Up to kMaxClusterRounds rounds of
// chunks per CTA, one launch: the CTAs of a head form a thread-block cluster, and after the
// cluster barrier its first CTA sums the head's chunk sums in order (no second launch and
// its latency: Flux-size sequences). Longer sequences: chunk sums, then a finalize launch
// summing them in order. In fwd the finalize and the quantizer after it are launched
// overlapping their predecessor (dependent_launch.cuh).
#include "../dependent_launch.cuh"
#include "cluster_launch.h"
#include "k_mean.cuh"
#include "prepass.h"
#include "thread_block_cluster.cuh"

namespace sage {
namespace {

using k_mean::kCtaThreads;

// 1-D grid: batch * heads * ceil(n_chunks / kChunksPerCta) CTAs, tile-major (consecutive CTAs
// take the same chunks of consecutive heads: neighbouring bytes of each row in "NHD").
template <typename T, int DP>
__global__ void __launch_bounds__(kCtaThreads) k_mean_partial_kernel(PrepassParams p, int64_t heads) {
  __shared__ __align__(16) float scratch[k_mean::Shape<DP>::kScratchFloats];
  allow_dependent_launch();  // the finalize may launch; it waits for this grid to complete
  const int64_t block = blockIdx.x;
  k_mean::chunk_sums<T, DP>(p, block % heads, (block / heads) * k_mean::Shape<DP>::kChunksPerCta, scratch);
}

// grid (batch * heads)
template <int DP>
__global__ void __launch_bounds__(kCtaThreads) k_mean_finalize_kernel(PrepassParams p) {
  __shared__ __align__(16) float stage[k_mean::kStageFloats];
  allow_dependent_launch();  // the quantizer's V tiles need nothing from here
  wait_for_prerequisite_grid();
  k_mean::finalize<DP>(p, blockIdx.x, stage);
}

// Cluster form: grid (heads, C), cluster (1, C, 1) with C <= kLargestClusterCtas; CTA y of head x
// takes chunk groups y * rounds .. y * rounds + rounds - 1 (kChunksPerCta chunks each). Clusters
// of 8 (portable) where that needs at most kMaxClusterRounds rounds, else of 16 where the device
// allows (4608 tokens: 3 rounds instead of the two launches; A/B p13 in NOTES.md).
#ifndef SAGE_K_MEAN_MAX_CLUSTER_ROUNDS  // (a build switch for measurements: 0 = never the cluster form)
#define SAGE_K_MEAN_MAX_CLUSTER_ROUNDS 4
#endif
constexpr int kMaxClusterRounds = SAGE_K_MEAN_MAX_CLUSTER_ROUNDS;

template <typename T, int DP>
__global__ void __launch_bounds__(kCtaThreads) k_mean_cluster_kernel(PrepassParams p, int rounds) {
  constexpr int kSmemFloats = k_mean::Shape<DP>::kScratchFloats > k_mean::kStageFloats ? k_mean::Shape<DP>::kScratchFloats
                                                                                         : k_mean::kStageFloats;
  __shared__ __align__(16) float smem[kSmemFloats];  // run sums, then the finalize's stage
  allow_dependent_launch();  // the quantizer's V tiles need nothing from here
  const int64_t bh = blockIdx.x;
  for (int r = 0; r < rounds; ++r) {
    const int64_t first_chunk = (int64_t(blockIdx.y) * rounds + r) * k_mean::Shape<DP>::kChunksPerCta;
    if (first_chunk >= p.n_k_mean_chunks) break;  // uniform over the CTA
    k_mean::chunk_sums<T, DP>(p, bh, first_chunk, smem);
    __syncthreads();  // the run sums in smem are read before the next round overwrites them
  }
  __threadfence();
  cluster::sync();  // every chunk sum of the head is written and visible
  if (blockIdx.y == 0) k_mean::finalize<DP>(p, bh, smem);
}

template <typename T, int DP>
void launch(const PrepassParams& p, cudaStream_t stream) {
  constexpr auto kClusterKernel = k_mean_cluster_kernel<T, DP>;
  const int64_t heads = int64_t(p.batch) * p.heads_kv;
  const int64_t ctas_per_head = ceil_div(p.n_k_mean_chunks, k_mean::Shape<DP>::kChunksPerCta);
  int64_t cluster_ctas = ctas_per_head < kPortableClusterCtas ? ctas_per_head : kPortableClusterCtas;
  if (ceil_div(ctas_per_head, cluster_ctas) > kMaxClusterRounds) {
    cluster_ctas = ctas_per_head < kLargestClusterCtas ? ctas_per_head : kLargestClusterCtas;
  }
  const int64_t rounds = ceil_div(ctas_per_head, cluster_ctas);
  if (rounds <= kMaxClusterRounds && device_is_sm90_or_newer() && heads <= 0x7fffffff &&
      clusters_fit<kClusterKernel>(int(cluster_ctas), kCtaThreads)) {
    cudaLaunchAttribute attribute;
    const cudaLaunchConfig_t config =
        cluster_launch_config(dim3(unsigned(heads), unsigned(cluster_ctas)), dim3(kCtaThreads),
                              dim3(1, unsigned(cluster_ctas), 1), stream, &attribute);
    cudaLaunchKernelEx(&config, kClusterKernel, p, int(rounds));
    return;
  }
  k_mean_partial_kernel<T, DP><<<dim3(unsigned(heads * ctas_per_head)), kCtaThreads, 0, stream>>>(p, heads);
  launch_overlapping_previous(k_mean_finalize_kernel<DP>, dim3(unsigned(heads)), dim3(kCtaThreads), 0, stream, p);
}

}  // namespace

void launch_k_mean(const PrepassParams& p, bool is_bf16, cudaStream_t stream) {
  if (is_bf16) {
    p.dim_padded == 64 ? launch<__nv_bfloat16, 64>(p, stream) : launch<__nv_bfloat16, 128>(p, stream);
  } else {
    p.dim_padded == 64 ? launch<__half, 64>(p, stream) : launch<__half, 128>(p, stream);
  }
}

}  // namespace sage
