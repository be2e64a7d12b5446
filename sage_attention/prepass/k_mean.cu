// K mean over the sequence, per (batch, kv head, channel), for K smoothing.
//
// The summation order is fixed so the CPU emulation reproduces it bit for bit
// and two runs give the same bits: each thread sums one channel of one chunk of
// kKMeanChunk tokens sequentially in fp32; a second launch sums the chunk sums
// sequentially and divides once by the length.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../quant_config.h"
#include "../type_utils.cuh"
#include "prepass.h"

namespace sage {
namespace {

// grid (n_chunks, heads_kv, batch), block dim_padded threads (one per channel).
template <typename T>
__global__ void k_mean_partial_kernel(PrepassParams p) {
  const int c = threadIdx.x;
  const int64_t chunk = blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  float sum = 0.f;
  if (c < p.head_dim) {
    const T* k = static_cast<const T*>(p.k.ptr) + b * p.k.stride_batch + h * p.k.stride_head + c;
    const int64_t t0 = chunk * kKMeanChunk;
    const int64_t t1 = t0 + kKMeanChunk < p.kv_len ? t0 + kKMeanChunk : p.kv_len;
    for (int64_t t = t0; t < t1; ++t) sum += to_float(k[t * p.k.stride_seq]);
  }
  p.k_mean_partial[((int64_t(b) * p.heads_kv + h) * p.n_k_mean_chunks + chunk) * p.dim_padded + c] = sum;
}

// grid (heads_kv, batch), block dim_padded threads.
__global__ void k_mean_finalize_kernel(PrepassParams p) {
  const int c = threadIdx.x;
  const int h = blockIdx.x, b = blockIdx.y;
  const int64_t head = int64_t(b) * p.heads_kv + h;
  const float* partial = p.k_mean_partial + head * p.n_k_mean_chunks * p.dim_padded + c;
  float total = 0.f;
  for (int64_t i = 0; i < p.n_k_mean_chunks; ++i) total += partial[i * p.dim_padded];
  p.k_mean[head * p.dim_padded + c] = c < p.head_dim ? __fdiv_rn(total, float(p.kv_len)) : 0.f;
}

}  // namespace

void launch_k_mean(const PrepassParams& p, bool is_bf16, cudaStream_t stream) {
  dim3 grid_partial(p.n_k_mean_chunks, p.heads_kv, p.batch);
  if (is_bf16) {
    k_mean_partial_kernel<__nv_bfloat16><<<grid_partial, p.dim_padded, 0, stream>>>(p);
  } else {
    k_mean_partial_kernel<__half><<<grid_partial, p.dim_padded, 0, stream>>>(p);
  }
  k_mean_finalize_kernel<<<dim3(p.heads_kv, p.batch), p.dim_padded, 0, stream>>>(p);
}

}  // namespace sage
