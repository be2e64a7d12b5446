// Portable SageAttention kernel (CUDA cores only, every arch >= sm_80).
//
// It runs the exact quantized algorithm of the CPU emulation
// (torch-ext/sage_attention/emulation_attention.py) in the most direct way:
// correctness reference on the GPU and fallback for archs without a tuned kernel.
//
// CTA = 64 query rows of one head, 128 threads: thread t owns row t/2 and half
// (t%2) of each 128-key tile for Q·Kᵀ, and half of the head_dim columns for P·V.
// Q's int8 row stays in registers; K (int8), V (FP8 -> fp16, exact) and P (FP8 ->
// fp16, exact) tiles go through shared memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"
#include "attention_kernels.h"

namespace sage {
namespace {

constexpr int kRows = 64;  // query rows per CTA
constexpr int kThreads = 2 * kRows;
constexpr int kHalfTile = kKvTile / 2;
static_assert(kHalfTile == kKScaleBlock, "each thread's half tile must share one K scale");

template <int DP>
struct SimtSmem {
  static constexpr int kKWords = DP / 4 + 1;   // int8 K row as 32-bit words, +1 against bank conflicts
  static constexpr int kVRow = kKvTile + 8;   // fp16 V^T row (one channel, 128 keys)
  static constexpr int kPRow = kKvTile + 8;   // fp16 P row (one query, 128 keys)
  static constexpr size_t kKBytes = size_t(kKvTile) * kKWords * 4;
  static constexpr size_t kVBytes = size_t(DP) * kVRow * 2;
  static constexpr size_t kPBytes = size_t(kRows) * kPRow * 2;
  static constexpr size_t kBytes = kKBytes + kVBytes + kPBytes;
};

template <int DP, typename OutT>
__global__ void __launch_bounds__(kThreads) attention_simt_kernel(AttentionParams p) {
  using S = SimtSmem<DP>;
  extern __shared__ __align__(16) unsigned char smem[];
  int* k_s = reinterpret_cast<int*>(smem);
  __half* v_s = reinterpret_cast<__half*>(smem + S::kKBytes);
  __half* p_s = reinterpret_cast<__half*>(smem + S::kKBytes + S::kVBytes);

  const int tid = threadIdx.x;
  const int r = tid >> 1, half = tid & 1;
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.heads_q / p.heads_kv);
  const int64_t bh = int64_t(b) * p.heads_q + h;
  const int64_t bhk = int64_t(b) * p.heads_kv + hk;
  const int64_t row0 = int64_t(blockIdx.x) * kRows;
  const int64_t row = row0 + r;
  const bool valid_row = row < p.q_len;
  const int64_t causal_offset = p.kv_len - p.q_len;  // bottom-right alignment

  const int64_t n_keys = visible_keys(p, row0, kRows);
  const int64_t n_tiles = n_keys > 0 ? ceil_div(n_keys, kKvTile) : 0;

  constexpr int kWords = DP / 4;
  int q_words[kWords];
  {
    const int8_t* tile = p.q_int8 + (bh * p.q_len_padded + (row / kQPad) * kQPad) * DP;
    const int r_in_tile = int(row % kQPad);
#pragma unroll
    for (int w = 0; w < kWords; ++w) q_words[w] = *reinterpret_cast<const int*>(tile + tile_offset(r_in_tile, 4 * w, DP));
  }
  const float q_scale = valid_row ? p.q_scale[bh * p.q_len + row] : 0.f;

  constexpr int kCols = DP / 2;  // output columns owned by this thread
  float acc[kCols];
#pragma unroll
  for (int i = 0; i < kCols; ++i) acc[i] = 0.f;
  float m = -INFINITY, l = 0.f;

  for (int64_t t = 0; t < n_tiles; ++t) {
    const int64_t key0 = t * kKvTile;
    __syncthreads();  // previous tile's K, V and P are no longer read
    {
      const int8_t* k_src = p.k_int8 + (bhk * p.kv_len_padded + key0) * DP;  // one tile, in tile order
      for (int e = tid; e < kKvTile * kWords; e += kThreads) {
        const int j = e / kWords, w = e % kWords;
        k_s[j * S::kKWords + w] = *reinterpret_cast<const int*>(k_src + tile_offset(j, 4 * w, DP));
      }
      const uint8_t* v_src = p.v_fp8 + (bhk * p.n_kv_tiles + t) * DP * kKvTile;
      for (int e = tid; e < DP * (kKvTile / 4); e += kThreads) {
        const int c = e / (kKvTile / 4), j4 = (e % (kKvTile / 4)) * 4;
        const uint32_t four = *reinterpret_cast<const uint32_t*>(v_src + tile_offset(c, j4, kKvTile));
#pragma unroll
        for (int i = 0; i < 4; ++i) {  // storage position j4+i holds key v_key_at(...)
          const int pos = j4 + i;
          v_s[c * S::kVRow + (pos & ~31) + v_key_at(pos & 31)] = e4m3_to_half(uint8_t(four >> (8 * i)));
        }
      }
    }
    __syncthreads();

    // S = Q·Kᵀ for this thread's 64 keys, as base-2 logits.
    const int64_t kblock = 2 * t + half;
    const float k_scale = kblock < p.n_k_scale_blocks ? p.k_scale[bhk * p.n_k_scale_blocks + kblock] : 0.f;
    const float factor = q_scale * k_scale;
    float s[kHalfTile];
    float tile_max = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < kHalfTile; ++jj) {
      const int j = half * kHalfTile + jj;
      const int* krow = k_s + j * S::kKWords;
      int dot = 0;
#pragma unroll
      for (int w = 0; w < kWords; ++w) dot = __dp4a(q_words[w], krow[w], dot);
      const int64_t key = key0 + j;
      const bool allowed = valid_row && key < p.kv_len && (!p.is_causal || key <= row + causal_offset);
      s[jj] = allowed ? float(dot) * factor : -INFINITY;
      tile_max = fmaxf(tile_max, s[jj]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const bool seen = m_new > -INFINITY;
    const float m_safe = seen ? m_new : 0.f;
    const float alpha = seen ? exp2f(m - m_safe) : 1.f;
    float row_sum = 0.f;
    __half* prow = p_s + r * S::kPRow + half * kHalfTile;
#pragma unroll
    for (int jj = 0; jj < kHalfTile; ++jj) {
      const float pj = exp2f(s[jj] - m_safe);
      row_sum += pj;
      prow[jj] = e4m3_to_half(float_to_e4m3(pj * kPFp8Scale));
    }
    row_sum += __shfl_xor_sync(0xffffffffu, row_sum, 1);
    l = l * alpha + row_sum;
    m = m_new;
    __syncthreads();

    // O_tile = P8 · V8 over the 128 keys, for this thread's columns; then fold into acc.
    const float v_scale = p.v_scale[bhk * p.n_kv_tiles + t];
    const __half2* p2 = reinterpret_cast<const __half2*>(p_s + r * S::kPRow);
#pragma unroll 4
    for (int i = 0; i < kCols; ++i) {
      const int c = half * kCols + i;
      const __half2* v2 = reinterpret_cast<const __half2*>(v_s + c * S::kVRow);
      float o = 0.f;
#pragma unroll 8
      for (int j2 = 0; j2 < kKvTile / 2; ++j2) {
        const float2 pf = __half22float2(p2[j2]);
        const float2 vf = __half22float2(v2[j2]);
        o += pf.x * vf.x;
        o += pf.y * vf.y;
      }
      acc[i] = acc[i] * alpha + o * v_scale;
    }
  }

  if (!valid_row) return;
  const bool has_keys = l > 0.f;
  const float denom = l * kPFp8Scale;
  OutT* out = static_cast<OutT*>(p.out) + b * p.out_stride_batch + row * p.out_stride_seq + h * p.out_stride_head;
#pragma unroll
  for (int i = 0; i < kCols; ++i) {
    const int c = half * kCols + i;
    if (c < p.head_dim) out[c] = from_float<OutT>(has_keys ? __fdiv_rn(acc[i], denom) : 0.f);
  }
  if (half == 0) p.lse[bh * p.q_len + row] = has_keys ? (m + log2f(l)) * kLn2 + p.lse_shift[bh * p.q_len + row] : -INFINITY;
}

template <int DP, typename OutT>
void launch(const AttentionParams& p, cudaStream_t stream) {
  constexpr size_t kSmem = SimtSmem<DP>::kBytes;
  auto kernel = attention_simt_kernel<DP, OutT>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmem));
  dim3 grid(unsigned(ceil_div(p.q_len, kRows)), p.heads_q, p.batch);
  kernel<<<grid, kThreads, kSmem, stream>>>(p);
}

}  // namespace

void launch_attention_simt(const AttentionParams& p, bool out_bf16, cudaStream_t stream) {
  if (out_bf16) {
    p.dim_padded == 64 ? launch<64, __nv_bfloat16>(p, stream) : launch<128, __nv_bfloat16>(p, stream);
  } else {
    p.dim_padded == 64 ? launch<64, __half>(p, stream) : launch<128, __half>(p, stream);
  }
}

}  // namespace sage
