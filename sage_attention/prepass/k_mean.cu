// The K-mean launches: chunk sums, then a finalize launch summing them in order (the
// device steps of k_mean.cuh). In fwd the finalize and the quantizer after it are
// launched overlapping their predecessor (dependent_launch.cuh).
#include "../dependent_launch.cuh"
#include "k_mean.cuh"
#include "prepass.h"

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

template <typename T, int DP>
void launch(const PrepassParams& p, cudaStream_t stream) {
  const int64_t heads = int64_t(p.batch) * p.heads_kv;
  const int64_t ctas_per_head = ceil_div(p.n_k_mean_chunks, k_mean::Shape<DP>::kChunksPerCta);
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
