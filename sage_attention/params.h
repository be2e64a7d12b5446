// Parameter blocks passed by value to the pre-pass and attention kernels.
// All element offsets are computed in 64-bit: tensors may exceed 2^31 elements.
#pragma once
#include <cstdint>

namespace sage {

// One of q/k/v as the user passed it: (batch, seqlen, heads, head_dim) read through
// strides (so "HND" and "NHD" views both arrive here without a copy); the last
// dimension is contiguous.
struct StridedInput {
  const void* ptr;
  int64_t stride_batch;
  int64_t stride_seq;
  int64_t stride_head;
};

struct PrepassParams {
  StridedInput q, k, v;
  int batch, heads_q, heads_kv, head_dim, dim_padded;
  int64_t q_len, kv_len, q_len_padded, kv_len_padded;
  int64_t n_k_scale_blocks, n_kv_tiles, n_k_mean_chunks;
  float score_scale;    // fp32(softmax_scale * log2 e), folded into q_scale
  float softmax_scale;  // for the lse shift
  bool quantize_q;      // false: the attention kernel quantizes Q itself (q_int8, q_scale, lse_shift unused)
  // Outputs; layouts are documented in torch-ext/sage_attention/emulation_quantize.py (QuantizedQKV)
  // and tile_layout.h.
  int8_t* q_int8;
  float* q_scale;
  float* lse_shift;
  int8_t* k_int8;
  float* k_scale;
  float* k_mean;          // (B, Hkv, dim_padded)
  float* k_mean_partial;  // (B, Hkv, n_k_mean_chunks, dim_padded) scratch
  uint8_t* v_fp8;         // e4m3 bits, (B, Hkv, kv_len_padded / kKvTile, dim_padded, kKvTile)
  float* v_scale;
};

struct AttentionParams {
  const int8_t* q_int8;
  const float* q_scale;
  const float* lse_shift;
  const int8_t* k_int8;
  const float* k_scale;
  const uint8_t* v_fp8;
  const float* v_scale;
  void* out;  // (B, Lq, H, head_dim) through strides
  int64_t out_stride_batch, out_stride_seq, out_stride_head;
  float* lse;  // (B, H, Lq) contiguous
  int batch, heads_q, heads_kv, head_dim, dim_padded;
  int64_t q_len, kv_len, q_len_padded, kv_len_padded;
  int64_t n_k_scale_blocks, n_kv_tiles;
  bool is_causal;
  // Q straight from the input, quantized by the kernel itself (fwd on the Hopper kernel's
  // narrow tiling: dispatch_by_arch.cu decides), when q_input.ptr is set; q_int8, q_scale and
  // lse_shift are then unused. Q's dtype is the output's.
  StridedInput q_input;
  const float* k_mean;  // (B, Hkv, dim_padded), from the pre-pass
  float score_scale, softmax_scale;
};

// Keys that query rows [row0, row0 + rows) may see at all: kv_len, or with the causal
// mask (bottom-right aligned) up to the last row's limit; <= 0 when none.
__host__ __device__ inline int64_t visible_keys(const AttentionParams& p, int64_t row0, int rows) {
  if (!p.is_causal) return p.kv_len;
  const int64_t last_row = (row0 + rows < p.q_len ? row0 + rows : p.q_len) - 1;
  const int64_t limit = last_row + (p.kv_len - p.q_len) + 1;
  return limit < p.kv_len ? limit : p.kv_len;
}

}  // namespace sage
