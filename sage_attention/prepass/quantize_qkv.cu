// The quantizer: one launch turns Q, K and V into what the attention kernels read.
//
// A 1-D grid is split into three ranges of CTAs:
//   Q: 64 query rows of one head  -> per-token INT8 (scale * softmax_scale * log2 e) and the lse shift
//   K: 64 keys of one kv head     -> (K - mean) as INT8 with one scale per 64 keys
//   V: 128 keys of one kv head    -> FP8 e4m3 with one scale per 128 keys, written transposed
//                                    (keys of each group of 32 in v_position_of order)
// Inputs are read in place through strides; padding rows/channels are written as zeros.
// Outputs are stored tile by tile in the tensor-core order of tile_layout.h.
// Arithmetic (IEEE division, round-half-even, e4m3 nearest-even) matches
// torch-ext/sage_attention/emulation_quantize.py bit for bit.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"
#include "prepass.h"

namespace sage {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kQRowsPerCta = 64;
constexpr int kSmemBytes = kKvTile * (kMaxHeadDim + 2) * 2;  // V tile of 16-bit inputs; K's fp32 tile is smaller
static_assert(kKScaleBlock * kMaxHeadDim * 4 <= kSmemBytes, "K tile must fit the shared buffer");

template <typename T, int DP>
__device__ void quantize_q_rows(const PrepassParams& p, int64_t block) {
  const int64_t tiles_per_head = p.q_len_padded / kQRowsPerCta;
  const int64_t tile = block % tiles_per_head;
  const int64_t bh = block / tiles_per_head;  // b * heads_q + h
  const int h = int(bh % p.heads_q);
  const int b = int(bh / p.heads_q);
  const int group = p.heads_q / p.heads_kv;
  const float* km = p.k_mean + (int64_t(b) * p.heads_kv + h / group) * DP;
  const T* q = static_cast<const T*>(p.q.ptr) + b * p.q.stride_batch + h * p.q.stride_head;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kPerLane = DP / 32;

  for (int rr = warp; rr < kQRowsPerCta; rr += kWarps) {
    const int64_t row = tile * kQRowsPerCta + rr;
    const bool valid = row < p.q_len;
    float x[kPerLane];
    float amax = 0.f, dot = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int c = lane + 32 * i;
      x[i] = (valid && c < p.head_dim) ? to_float(q[row * p.q.stride_seq + c]) : 0.f;
      amax = fmaxf(amax, fabsf(x[i]));
      dot += x[i] * km[c];
    }
    amax = warp_max(amax);
    dot = warp_sum(dot);
    const float scale = __fdiv_rn(amax, kInt8Max);
    int8_t* dst = p.q_int8 + (bh * p.q_len_padded + (row / kQPad) * kQPad) * DP;
    const int r = int(row % kQPad);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) dst[tile_offset(r, lane + 32 * i, DP)] = quantize_int8(x[i], scale);
    if (lane == 0 && valid) {
      p.q_scale[bh * p.q_len + row] = __fmul_rn(scale, p.score_scale);
      p.lse_shift[bh * p.q_len + row] = dot * p.softmax_scale;
    }
  }
}

template <typename T, int DP>
__device__ void quantize_k_block(const PrepassParams& p, int64_t block, unsigned char* smem) {
  const int64_t blocks_per_head = p.kv_len_padded / kKScaleBlock;
  const int64_t kb = block % blocks_per_head;
  const int64_t bh = block / blocks_per_head;  // b * heads_kv + h
  const int h = int(bh % p.heads_kv);
  const int b = int(bh / p.heads_kv);
  const float* km = p.k_mean + bh * DP;
  const T* k = static_cast<const T*>(p.k.ptr) + b * p.k.stride_batch + h * p.k.stride_head;
  float* tile = reinterpret_cast<float*>(smem);  // [kKScaleBlock][DP]
  const int64_t key0 = kb * kKScaleBlock;

  float amax = 0.f;
  for (int e = threadIdx.x; e < kKScaleBlock * DP; e += kThreads) {
    const int r = e / DP, c = e % DP;
    const int64_t key = key0 + r;
    const float val = (key < p.kv_len && c < p.head_dim) ? __fsub_rn(to_float(k[key * p.k.stride_seq + c]), km[c]) : 0.f;
    tile[e] = val;
    amax = fmaxf(amax, fabsf(val));
  }
  amax = block_max<kThreads>(amax, tile + kKScaleBlock * DP);
  const float scale = __fdiv_rn(amax, kInt8Max);
  int8_t* dst = p.k_int8 + (bh * p.kv_len_padded + (key0 / kKvTile) * kKvTile) * DP;
  const int r0 = int(key0 % kKvTile);
  for (int e = threadIdx.x; e < kKScaleBlock * DP; e += kThreads) {
    dst[tile_offset(r0 + e / DP, e % DP, DP)] = quantize_int8(tile[e], scale);
  }
  if (threadIdx.x == 0 && kb < p.n_k_scale_blocks) p.k_scale[bh * p.n_k_scale_blocks + kb] = scale;
}

template <typename T, int DP>
__device__ void quantize_v_tile(const PrepassParams& p, int64_t block, unsigned char* smem) {
  constexpr int kStride = DP + 2;  // odd word stride: the transposed reads below hit distinct banks
  const int64_t tiles_per_head = p.kv_len_padded / kKvTile;
  const int64_t vt = block % tiles_per_head;
  const int64_t bh = block / tiles_per_head;
  const int h = int(bh % p.heads_kv);
  const int b = int(bh / p.heads_kv);
  const T* v = static_cast<const T*>(p.v.ptr) + b * p.v.stride_batch + h * p.v.stride_head;
  T* tile = reinterpret_cast<T*>(smem);  // [kKvTile][kStride]
  float* scratch = reinterpret_cast<float*>(smem + kKvTile * kStride * sizeof(T));
  const int64_t key0 = vt * kKvTile;

  float amax = 0.f;
  for (int e = threadIdx.x; e < kKvTile * DP; e += kThreads) {
    const int r = e / DP, c = e % DP;
    const int64_t key = key0 + r;
    const T val = (key < p.kv_len && c < p.head_dim) ? v[key * p.v.stride_seq + c] : from_float<T>(0.f);
    tile[r * kStride + c] = val;
    amax = fmaxf(amax, fabsf(to_float(val)));
  }
  amax = block_max<kThreads>(amax, scratch);
  const float scale = __fdiv_rn(amax, kFp8E4M3Max);
  uint8_t* dst = p.v_fp8 + (bh * tiles_per_head + vt) * DP * kKvTile;  // this tile's Vᵀ block
  for (int e = threadIdx.x; e < kKvTile * DP; e += kThreads) {
    const int c = e / kKvTile, r = e % kKvTile;  // consecutive threads: consecutive keys of one channel
    const float val = to_float(tile[r * kStride + c]);
    dst[tile_offset(c, (r & ~31) + v_position_of(r & 31), kKvTile)] = scale > 0.f ? float_to_e4m3(__fdiv_rn(val, scale)) : uint8_t(0);
  }
  if (threadIdx.x == 0 && vt < p.n_kv_tiles) p.v_scale[bh * p.n_kv_tiles + vt] = scale;
}

template <typename T, int DP>
__global__ void __launch_bounds__(kThreads) quantize_qkv_kernel(PrepassParams p, int64_t n_q_blocks, int64_t n_k_blocks) {
  __shared__ __align__(16) unsigned char smem[kSmemBytes + kWarps * sizeof(float)];
  const int64_t block = blockIdx.x;
  if (block < n_q_blocks) {
    quantize_q_rows<T, DP>(p, block);
  } else if (block < n_q_blocks + n_k_blocks) {
    quantize_k_block<T, DP>(p, block - n_q_blocks, smem);
  } else {
    quantize_v_tile<T, DP>(p, block - n_q_blocks - n_k_blocks, smem);
  }
}

template <typename T, int DP>
void launch(const PrepassParams& p, cudaStream_t stream) {
  const int64_t n_q = int64_t(p.batch) * p.heads_q * (p.q_len_padded / kQRowsPerCta);
  const int64_t n_k = int64_t(p.batch) * p.heads_kv * (p.kv_len_padded / kKScaleBlock);
  const int64_t n_v = int64_t(p.batch) * p.heads_kv * (p.kv_len_padded / kKvTile);
  quantize_qkv_kernel<T, DP><<<dim3(unsigned(n_q + n_k + n_v)), kThreads, 0, stream>>>(p, n_q, n_k);
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
