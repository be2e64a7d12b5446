// K mean over the sequence, per (batch, kv head, channel), for K smoothing.
//
// The summation order is fixed so the CPU emulation reproduces it bit for bit and
// two runs give the same bits (quant_config.h): a thread sums a run of kKMeanRun
// tokens for 8 channels (16-byte loads, all in flight at once); the runs of a
// chunk of kKMeanChunk tokens are summed in order through shared memory; a second
// launch sums the chunk sums in order and divides once by the length.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../quant_config.h"
#include "../type_utils.cuh"
#include "prepass.h"

namespace sage {
namespace {

constexpr int kRuns = kKMeanChunk / kKMeanRun;  // runs per chunk
constexpr int kItems = 32;                      // (kv head, 8-channel group) items per CTA
constexpr int kThreads = kRuns * kItems;

// grid (n_chunks, ceil(heads_kv * dim_padded / 8 / kItems), batch); thread -> (run, item).
template <typename T>
__global__ void __launch_bounds__(kThreads) k_mean_partial_kernel(PrepassParams p) {
  __shared__ float4 run_sums[kRuns][kItems][2];
  const int groups = p.dim_padded / 8;
  const int run = threadIdx.x / kItems, local = threadIdx.x % kItems;
  const int item = blockIdx.y * kItems + local;
  const bool active = item < p.heads_kv * groups;
  const int h = active ? item / groups : 0, c0 = active ? (item % groups) * 8 : 0;
  const int64_t chunk = blockIdx.x, b = blockIdx.z;
  const T* k = static_cast<const T*>(p.k.ptr) + b * p.k.stride_batch + h * p.k.stride_head;
  const int64_t t0 = chunk * kKMeanChunk + run * kKMeanRun;
  uint4 raw[kKMeanRun];  // independent loads first (kept packed), then the ordered sum
#pragma unroll
  for (int t = 0; t < kKMeanRun; ++t) {
    raw[t] = (active && t0 + t < p.kv_len) ? load8_packed(k + (t0 + t) * p.k.stride_seq, c0, p.head_dim)
                                           : make_uint4(0, 0, 0, 0);
  }
  float sum[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int t = 0; t < kKMeanRun; ++t) {
    float x[8];
    unpack8<T>(raw[t], x);
#pragma unroll
    for (int j = 0; j < 8; ++j) sum[j] += x[j];
  }
  run_sums[run][local][0] = make_float4(sum[0], sum[1], sum[2], sum[3]);
  run_sums[run][local][1] = make_float4(sum[4], sum[5], sum[6], sum[7]);
  __syncthreads();
  if (run != 0 || !active) return;
  float4 lo = make_float4(0.f, 0.f, 0.f, 0.f), hi = lo;
#pragma unroll
  for (int r = 0; r < kRuns; ++r) {
    const float4 a = run_sums[r][local][0], c = run_sums[r][local][1];
    lo = make_float4(lo.x + a.x, lo.y + a.y, lo.z + a.z, lo.w + a.w);
    hi = make_float4(hi.x + c.x, hi.y + c.y, hi.z + c.z, hi.w + c.w);
  }
  float4* dst = reinterpret_cast<float4*>(p.k_mean_partial + ((b * p.heads_kv + h) * p.n_k_mean_chunks + chunk) * p.dim_padded + c0);
  dst[0] = lo;
  dst[1] = hi;
}

constexpr int kFinalizeThreads = 256;

// grid (ceil(heads_kv * dim_padded / kFinalizeThreads), batch): thread -> (kv head, channel).
__global__ void __launch_bounds__(kFinalizeThreads) k_mean_finalize_kernel(PrepassParams p) {
  const int item = blockIdx.x * kFinalizeThreads + threadIdx.x;
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
  dim3 grid_partial(unsigned(p.n_k_mean_chunks), unsigned((items + kItems - 1) / kItems), p.batch);
  if (is_bf16) {
    k_mean_partial_kernel<__nv_bfloat16><<<grid_partial, kThreads, 0, stream>>>(p);
  } else {
    k_mean_partial_kernel<__half><<<grid_partial, kThreads, 0, stream>>>(p);
  }
  dim3 grid_final(unsigned((p.heads_kv * p.dim_padded + kFinalizeThreads - 1) / kFinalizeThreads), p.batch);
  k_mean_finalize_kernel<<<grid_final, kFinalizeThreads, 0, stream>>>(p);
}

}  // namespace sage
