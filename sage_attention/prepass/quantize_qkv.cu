// The quantizer: one launch turns Q, K and V into what the attention kernels read.
//
// A 1-D grid is split into three ranges of CTAs:
//   V: 128 keys of one kv head    -> FP8 e4m3 with one scale per 128 keys, transposed
//                                    (position p of each group of 32 holds key v_key_at(p))
//   Q: 64 query rows of one head  -> per-token INT8 (scale * softmax_scale * log2 e) and the lse shift
//                                    (quantize_q_row.cuh; no Q CTAs when the attention kernel
//                                    quantizes Q itself, p.quantize_q false)
//   K: 128 keys of one kv head    -> (K - mean) as INT8 with one scale per 64 keys
// The kernel is launched overlapping the K-mean launch (dependent_launch.cuh): V CTAs come
// first and need nothing from it; Q and K CTAs wait for it before reading the mean.
// Inputs are read in place through strides with 16-byte loads (8 channels per thread,
// consecutive threads on consecutive channels); outputs are stored tile by tile in the
// tensor-core order of tile_layout.h. Padding rows/channels are written as zeros.
// Arithmetic (scale = amax / qmax, x * (qmax / amax), round-half-even, e4m3
// nearest-even) matches torch-ext/sage_attention/emulation_quantize.py bit for bit.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../dependent_launch.cuh"
#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"
#include "k_mean.cuh"
#include "prepass.h"
#include "quantize_q_row.cuh"
#include "quantize_v_tile.cuh"

namespace sage {
namespace {

constexpr int kThreads = 256;
constexpr int kQRowsPerCta = kQuantizerQRows;

template <typename T, int DP>
__device__ void quantize_q_rows(const PrepassParams& p, int64_t block) {
  constexpr int kLanesPerRow = DP / 8;
  constexpr int kRowsPerStep = kThreads / kLanesPerRow;
  const int64_t tiles_per_head = p.q_len_padded / kQRowsPerCta;
  const int64_t tile = block % tiles_per_head;
  const int64_t bh = block / tiles_per_head;  // b * heads_q + h
  const int h = int(bh % p.heads_q);
  const int b = int(bh / p.heads_q);
  const int group = p.heads_q / p.heads_kv;
  const int c0 = (threadIdx.x % kLanesPerRow) * 8;
  float km[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) km[j] = __ldcg(p.k_mean + (int64_t(b) * p.heads_kv + h / group) * DP + c0 + j);
  const T* q = static_cast<const T*>(p.q.ptr) + b * p.q.stride_batch + h * p.q.stride_head;

  constexpr int kSteps = kQRowsPerCta / kRowsPerStep;
  uint4 raw[kSteps];  // inputs stay packed: few registers, so several CTAs fit on an SM
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {  // all loads in flight before any use
    const int64_t row = tile * kQRowsPerCta + step * kRowsPerStep + int(threadIdx.x) / kLanesPerRow;
    raw[step] = row < p.q_len ? load8_packed(q + row * p.q.stride_seq, c0, p.head_dim) : make_uint4(0, 0, 0, 0);
  }
  QuantizedQSlice q8[kSteps];
  quantize_q_slices<T, kLanesPerRow>(raw, km, p.score_scale, p.softmax_scale, q8);
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int64_t row = tile * kQRowsPerCta + step * kRowsPerStep + int(threadIdx.x) / kLanesPerRow;
    int8_t* dst = p.q_int8 + (bh * p.q_len_padded + (row / kQPad) * kQPad) * DP;
    *reinterpret_cast<uint2*>(dst + tile_offset(int(row % kQPad), c0, DP)) = q8[step].bytes;
    if (c0 == 0 && row < p.q_len) {
      p.q_scale[bh * p.q_len + row] = q8[step].scale;
      p.lse_shift[bh * p.q_len + row] = q8[step].lse_shift;
    }
  }
}

// Keys per K job: a whole 128-key tile, two K scale blocks of 64 keys with a maximum each.
// (64-key jobs until p12: twice the CTAs, half the loads in flight per thread; 128 measured
// 5-10% faster from 4608 tokens up, NOTES.md.)
constexpr int kKJobKeys = kKvTile;
constexpr int kKJobBlocks = kKJobKeys / kKScaleBlock;
static_assert(kKJobKeys % kKScaleBlock == 0 && kKvTile % kKJobKeys == 0, "K jobs of whole scale blocks inside one tile");

template <typename T, int DP>
__device__ void quantize_k_block(const PrepassParams& p, int64_t block, unsigned char* smem) {
  constexpr int kGroups = DP / 8;
  constexpr int kPerThread = kKJobKeys * kGroups / kThreads;
  constexpr int kPerBlock = kPerThread / kKJobBlocks;  // a thread's keys advance with i: blocks are runs of i
  static_assert(kThreads % kGroups == 0, "a thread keeps its channel group across iterations");
  const int64_t jobs_per_head = p.kv_len_padded / kKJobKeys;
  const int64_t job = block % jobs_per_head;
  const int64_t bh = block / jobs_per_head;  // b * heads_kv + h
  const int h = int(bh % p.heads_kv);
  const int b = int(bh / p.heads_kv);
  const int c0 = (threadIdx.x % kGroups) * 8;
  const T* k = static_cast<const T*>(p.k.ptr) + b * p.k.stride_batch + h * p.k.stride_head;
  const int64_t key0 = job * kKJobKeys;
  float km[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) km[j] = __ldcg(p.k_mean + bh * DP + c0 + j);

  uint4 raw[kPerThread];  // packed inputs; (k - mean) is recomputed from them when quantizing
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t key = key0 + (int(threadIdx.x) + i * kThreads) / kGroups;
    raw[i] = key < p.kv_len ? load8_packed(k + key * p.k.stride_seq, c0, p.head_dim) : make_uint4(0, 0, 0, 0);
  }
  auto smoothed = [&](int i, float (&x)[8]) {
    const int64_t key = key0 + (int(threadIdx.x) + i * kThreads) / kGroups;
    k_mean::smoothed_key<T>(raw[i], km, key < p.kv_len, c0, p.head_dim, x);
  };
  float amax[kKJobBlocks];
#pragma unroll
  for (int kb = 0; kb < kKJobBlocks; ++kb) {
    amax[kb] = 0.f;
#pragma unroll
    for (int i = kb * kPerBlock; i < (kb + 1) * kPerBlock; ++i) {
      float x[8];
      smoothed(i, x);
#pragma unroll
      for (int j = 0; j < 8; ++j) amax[kb] = fmaxf(amax[kb], fabsf(x[j]));
    }
    amax[kb] = block_max<kThreads>(amax[kb], reinterpret_cast<float*>(smem));
  }
  unpack_again_later(raw);
  int8_t* dst = p.k_int8 + (bh * p.kv_len_padded + (key0 / kKvTile) * kKvTile) * DP;
  const int r0 = int(key0 % kKvTile);
#pragma unroll
  for (int kb = 0; kb < kKJobBlocks; ++kb) {
    const float inv = inverse_scale(amax[kb], kInt8Max);
#pragma unroll
    for (int i = kb * kPerBlock; i < (kb + 1) * kPerBlock; ++i) {
      const int r = (int(threadIdx.x) + i * kThreads) / kGroups;
      float x[8];
      smoothed(i, x);
      *reinterpret_cast<uint2*>(dst + tile_offset(r0 + r, c0, DP)) = quantize_int8x8(x, inv);
    }
    const int64_t scale_block = key0 / kKScaleBlock + kb;
    if (threadIdx.x == 0 && scale_block < p.n_k_scale_blocks) {
      p.k_scale[bh * p.n_k_scale_blocks + scale_block] = __fdiv_rn(amax[kb], kInt8Max);
    }
  }
}

constexpr int kSmemBytes = kVTileSmemBytes<kThreads>;

// Job r of a role with `per_head` jobs for each of `heads` heads, as the index head * per_head + job
// the job functions take. Tile-major: consecutive CTAs take the same tile of consecutive heads,
// so the CTAs running at once read neighbouring bytes of each row when heads are interleaved
// in memory ("NHD"); with each head contiguous ("HND") every CTA reads a contiguous block anyway.
// (Measured on the H100, NHD inputs: head-major order made this kernel 1.3-1.5x slower at
// 4k-32k tokens.)
__device__ __forceinline__ int64_t tile_major(int64_t r, int64_t heads, int64_t per_head) {
  return (r % heads) * per_head + r / heads;
}

template <typename T, int DP>
__global__ void __launch_bounds__(kThreads, 3) quantize_qkv_kernel(PrepassParams p, int64_t n_v_blocks, int64_t n_q_blocks) {
  __shared__ __align__(16) unsigned char smem[kSmemBytes];
  allow_dependent_launch();  // the attention kernel may launch; it waits for this grid to complete
  const int64_t heads_kv = int64_t(p.batch) * p.heads_kv, heads_q = int64_t(p.batch) * p.heads_q;
  const int64_t block = blockIdx.x;
  if (block < n_v_blocks) {
    quantize_v_tile<T, DP, kThreads>(p, tile_major(block, heads_kv, n_v_blocks / heads_kv), smem);
    return;
  }
  wait_for_prerequisite_grid();  // Q and K read the K mean
  if (block < n_v_blocks + n_q_blocks) {
    const int64_t r = block - n_v_blocks;
    quantize_q_rows<T, DP>(p, tile_major(r, heads_q, n_q_blocks / heads_q));
  } else {
    const int64_t r = block - n_v_blocks - n_q_blocks;
    quantize_k_block<T, DP>(p, tile_major(r, heads_kv, p.kv_len_padded / kKJobKeys), smem);
  }
}

template <typename T, int DP>
void launch(const PrepassParams& p, cudaStream_t stream) {
  const int64_t n_q = p.quantize_q ? int64_t(p.batch) * p.heads_q * (p.q_len_padded / kQRowsPerCta) : 0;
  const int64_t n_k = int64_t(p.batch) * p.heads_kv * (p.kv_len_padded / kKJobKeys);
  const int64_t n_v = int64_t(p.batch) * p.heads_kv * (p.kv_len_padded / kKvTile);
  launch_overlapping_previous(quantize_qkv_kernel<T, DP>, dim3(unsigned(n_v + n_q + n_k)), dim3(kThreads), 0, stream,
                              p, n_v, n_q);
}

}  // namespace

void launch_quantize_qkv(const PrepassParams& p, bool is_bf16, cudaStream_t stream) {
  if (is_bf16) {
    p.dim_padded == 64 ? launch<__nv_bfloat16, 64>(p, stream) : launch<__nv_bfloat16, 128>(p, stream);
  } else {
    p.dim_padded == 64 ? launch<__half, 64>(p, stream) : launch<__half, 128>(p, stream);
  }
}

}  // namespace sage
