// K mean over the sequence, per (batch, kv head, channel), for K smoothing.
//
// The summation order is fixed so the CPU emulation reproduces it bit for bit
// and two runs give the same bits: each thread sums 8 channels of one chunk of
// kKMeanChunk tokens sequentially in fp32 (16-byte loads, several in flight); a
// second launch sums the chunk sums sequentially and divides once by the length.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../quant_config.h"
#include "../type_utils.cuh"
#include "prepass.h"

namespace sage {
namespace {

constexpr int kThreads = 256;

// grid (n_chunks, ceil(heads_kv * dim_padded / 8 / kThreads), batch): thread -> (kv head, 8 channels).
template <typename T>
__global__ void __launch_bounds__(kThreads) k_mean_partial_kernel(PrepassParams p) {
  const int groups = p.dim_padded / 8;
  const int item = blockIdx.y * kThreads + threadIdx.x;
  if (item >= p.heads_kv * groups) return;
  const int h = item / groups, c0 = (item % groups) * 8;
  const int64_t chunk = blockIdx.x, b = blockIdx.z;
  const T* k = static_cast<const T*>(p.k.ptr) + b * p.k.stride_batch + h * p.k.stride_head;
  const int64_t t0 = chunk * kKMeanChunk;
  const int n = int(p.kv_len - t0 < kKMeanChunk ? p.kv_len - t0 : kKMeanChunk);
  float sum[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll 8
  for (int t = 0; t < n; ++t) {
    float x[8];
    load8(k + (t0 + t) * p.k.stride_seq, c0, p.head_dim, x);
#pragma unroll
    for (int j = 0; j < 8; ++j) sum[j] += x[j];
  }
  float* dst = p.k_mean_partial + ((b * p.heads_kv + h) * p.n_k_mean_chunks + chunk) * p.dim_padded + c0;
  reinterpret_cast<float4*>(dst)[0] = make_float4(sum[0], sum[1], sum[2], sum[3]);
  reinterpret_cast<float4*>(dst)[1] = make_float4(sum[4], sum[5], sum[6], sum[7]);
}

// grid (ceil(heads_kv * dim_padded / kThreads), batch): thread -> (kv head, channel).
__global__ void __launch_bounds__(kThreads) k_mean_finalize_kernel(PrepassParams p) {
  const int item = blockIdx.x * kThreads + threadIdx.x;
  if (item >= p.heads_kv * p.dim_padded) return;
  const int h = item / p.dim_padded, c = item % p.dim_padded;
  const int64_t head = int64_t(blockIdx.y) * p.heads_kv + h;
  const float* partial = p.k_mean_partial + head * p.n_k_mean_chunks * p.dim_padded + c;
  float total = 0.f;
#pragma unroll 8
  for (int64_t i = 0; i < p.n_k_mean_chunks; ++i) total += partial[i * p.dim_padded];
  p.k_mean[head * p.dim_padded + c] = c < p.head_dim ? __fdiv_rn(total, float(p.kv_len)) : 0.f;
}

}  // namespace

void launch_k_mean(const PrepassParams& p, bool is_bf16, cudaStream_t stream) {
  const int items = p.heads_kv * (p.dim_padded / 8);
  dim3 grid_partial(unsigned(p.n_k_mean_chunks), unsigned((items + kThreads - 1) / kThreads), p.batch);
  if (is_bf16) {
    k_mean_partial_kernel<__nv_bfloat16><<<grid_partial, kThreads, 0, stream>>>(p);
  } else {
    k_mean_partial_kernel<__half><<<grid_partial, kThreads, 0, stream>>>(p);
  }
  dim3 grid_final(unsigned((p.heads_kv * p.dim_padded + kThreads - 1) / kThreads), p.batch);
  k_mean_finalize_kernel<<<grid_final, kThreads, 0, stream>>>(p);
}

}  // namespace sage
