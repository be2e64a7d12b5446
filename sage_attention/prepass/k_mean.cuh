// K mean over the sequence, per (batch, kv head, channel), for K smoothing: the two
// device-side steps, launched by k_mean.cu (for fwd's pre-pass and the quant helpers).
//
// The summation order is fixed so the CPU emulation (emulation_quantize.k_mean_emulated)
// reproduces it bit for bit and two runs give the same bits:
//   1. a thread sums a run of kKMeanRun tokens for 8 channels, sequentially;
//   2. the runs of a chunk of kKMeanChunk tokens are summed in order -> chunk sum;
//   3. the chunk sums of a head are summed in order, then one IEEE division by the length.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../params.h"
#include "../quant_config.h"
#include "../type_utils.cuh"

namespace sage {
namespace k_mean {

constexpr int kCtaThreads = 256;

template <int DP>
struct Shape {
  static constexpr int kGroups = DP / 8;                      // 8-channel groups per token
  static constexpr int kRuns = kKMeanChunk / kKMeanRun;       // runs per chunk
  static constexpr int kThreadsPerChunk = kGroups * kRuns;    // one thread per (run, group)
  static constexpr int kChunksPerCta = kCtaThreads / kThreadsPerChunk;
  static constexpr int kScratchFloats = kChunksPerCta * kRuns * DP;  // run sums of the CTA's chunks
  static_assert(kCtaThreads % kThreadsPerChunk == 0, "whole chunks per CTA");
};

// Step 1: this thread's run, tokens t0 .. t0 + kKMeanRun - 1 of channels c0 .. c0 + 7 of one
// head's K (zeros past kv_len and head_dim), all loads in flight before any use, kept packed.
template <typename T>
__device__ __forceinline__ void load_run(const PrepassParams& p, int64_t bh, int64_t t0, int c0,
                                         uint4 (&raw)[kKMeanRun]) {
  const int b = int(bh / p.heads_kv), h = int(bh % p.heads_kv);
  const T* k = static_cast<const T*>(p.k.ptr) + b * p.k.stride_batch + h * p.k.stride_head;
#pragma unroll
  for (int t = 0; t < kKMeanRun; ++t) {
    raw[t] = t0 + t < p.kv_len ? load8_packed(k + (t0 + t) * p.k.stride_seq, c0, p.head_dim) : make_uint4(0, 0, 0, 0);
  }
}

// K smoothing, as every K quantizer applies it (the bits must agree): channels c0 .. c0 + 7
// of one key (packed), minus the head's mean; 0 for a key past kv_len (`real_key` false) and
// for channels past head_dim.
template <typename T>
__device__ __forceinline__ void smoothed_key(const uint4& raw, const float (&km)[8], bool real_key, int c0, int head_dim,
                                             float (&x)[8]) {
  unpack8<T>(raw, x);
#pragma unroll
  for (int j = 0; j < 8; ++j) x[j] = (real_key && c0 + j < head_dim) ? __fsub_rn(x[j], km[j]) : 0.f;
}

// Steps 1-2 in shared memory: each thread's run sum (sequential over its tokens) into
// scratch[local_chunk][run][DP]; after a barrier, the run-0 thread of each (chunk, channel
// group) adds its chunk's runs in order. Returns that chunk sum (channels c0 .. c0 + 7) in
// the run-0 threads; the others get zeros. `scratch` holds Shape<DP>::kScratchFloats floats.
template <typename T, int DP>
__device__ __forceinline__ void chunk_sum_of_runs(const uint4 (&raw)[kKMeanRun], float* scratch, float4& lo,
                                                  float4& hi) {
  using S = Shape<DP>;
  const int tid = threadIdx.x;
  const int local_chunk = tid / S::kThreadsPerChunk;
  const int run = (tid / S::kGroups) % S::kRuns;
  const int c0 = (tid % S::kGroups) * 8;
  float sum[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int t = 0; t < kKMeanRun; ++t) {
    float x[8];
    unpack8<T>(raw[t], x);
#pragma unroll
    for (int j = 0; j < 8; ++j) sum[j] += x[j];
  }
  float4* runs = reinterpret_cast<float4*>(scratch);  // [local_chunk][run][DP]
  const int slot = ((local_chunk * S::kRuns + run) * DP + c0) / 4;
  runs[slot] = make_float4(sum[0], sum[1], sum[2], sum[3]);
  runs[slot + 1] = make_float4(sum[4], sum[5], sum[6], sum[7]);
  __syncthreads();
  lo = make_float4(0.f, 0.f, 0.f, 0.f);
  hi = lo;
  if (run != 0) return;
#pragma unroll
  for (int r = 0; r < S::kRuns; ++r) {
    const float4 a = runs[slot + r * DP / 4], c = runs[slot + r * DP / 4 + 1];
    lo = make_float4(lo.x + a.x, lo.y + a.y, lo.z + a.z, lo.w + a.w);
    hi = make_float4(hi.x + c.x, hi.y + c.y, hi.z + c.z, hi.w + c.w);
  }
}

// Steps 1-2 for chunks [first_chunk, first_chunk + kChunksPerCta) of head `bh`
// (= b * heads_kv + h): chunk sums into p.k_mean_partial[bh][chunk][0..DP).
// `scratch` holds Shape<DP>::kScratchFloats floats of shared memory.
template <typename T, int DP>
__device__ void chunk_sums(const PrepassParams& p, int64_t bh, int64_t first_chunk, float* scratch) {
  using S = Shape<DP>;
  const int tid = threadIdx.x;
  const int run = (tid / S::kGroups) % S::kRuns;
  const int c0 = (tid % S::kGroups) * 8;
  const int64_t chunk = first_chunk + tid / S::kThreadsPerChunk;
  uint4 raw[kKMeanRun];
  load_run<T>(p, bh, chunk * kKMeanChunk + run * kKMeanRun, c0, raw);
  float4 lo, hi;
  chunk_sum_of_runs<T, DP>(raw, scratch, lo, hi);
  if (run != 0 || chunk >= p.n_k_mean_chunks) return;
  float4* dst = reinterpret_cast<float4*>(p.k_mean_partial + (bh * p.n_k_mean_chunks + chunk) * DP + c0);
  dst[0] = lo;
  dst[1] = hi;
}

// Step 3 for head `bh`, by a whole CTA of kCtaThreads: the chunk sums are staged through
// shared memory a piece at a time (all threads loading) and summed in order by DP threads.
// Reads go through L2 (ld.global.cg): other CTAs wrote them (of the partial kernel, or of the
// same cluster in the one-launch form, k_mean.cu). `stage` holds kStageFloats
// floats of shared memory.
constexpr int kStageFloats = 4096;

template <int DP>
__device__ void finalize(const PrepassParams& p, int64_t bh, float* stage) {
  constexpr int kPiece = kStageFloats / DP;  // chunks per piece
  const int tid = threadIdx.x;
  const float4* src = reinterpret_cast<const float4*>(p.k_mean_partial + bh * p.n_k_mean_chunks * DP);
  float4* stage4 = reinterpret_cast<float4*>(stage);
  float total = 0.f;
  for (int64_t start = 0; start < p.n_k_mean_chunks; start += kPiece) {
    const int n = int(p.n_k_mean_chunks - start < kPiece ? p.n_k_mean_chunks - start : kPiece);
    __syncthreads();  // the previous piece has been summed
    for (int e = tid; e < n * DP / 4; e += kCtaThreads) stage4[e] = __ldcg(src + start * DP / 4 + e);
    __syncthreads();
    if (tid < DP) {
      for (int i = 0; i < n; ++i) total += stage[i * DP + tid];
    }
  }
  if (tid < DP) p.k_mean[bh * DP + tid] = tid < p.head_dim ? __fdiv_rn(total, float(p.kv_len)) : 0.f;
}

}  // namespace k_mean
}  // namespace sage
