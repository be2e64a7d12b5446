// V of one kv head's 128-key tile -> FP8 e4m3 with one power-of-two scale for the tile, transposed (position
// p of each group of 32 holds key v_key_at(p)) and stored in the tensor cores' order
// (tile_layout.h). Shared by the quantizer (quantize_qkv.cu) and the short-sequence pre-pass
// (short_sequence_prepass.cu). Arithmetic as torch-ext/sage_attention/emulation_quantize.py.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../params.h"
#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"

namespace sage {

// Shared memory quantize_v_tile needs: the staged tile and one float per warp.
template <int kThreads>
constexpr int kVTileSmemBytes = kMaxHeadDim * kKvTile + (kThreads / 32) * int(sizeof(float));

// V: quantized bytes are staged in shared memory as the transposed tile (channel rows of 128
// key positions, 16-byte columns XOR-swizzled per channel so neither the word stores nor the
// 16-byte reads pile onto one bank), then written out in tile order with 16-byte stores, one
// 128-byte row per 8 threads.
__device__ __forceinline__ int v_stage_offset(int c, int pos) {
  const int swizzle = ((c & 7) ^ (c >> 3)) & 7;
  return c * kKvTile + (((pos >> 4) ^ swizzle) << 4) + (pos & 15);
}

template <typename T, int DP, int kThreads>
__device__ void quantize_v_tile(const PrepassParams& p, int64_t block, unsigned char* smem) {
  constexpr int kGroups = DP / 8;                      // 8-channel groups per key
  constexpr int kThreadRows = kThreads / kGroups;      // threads sharing a channel group
  constexpr int kKeyQuads = kKvTile / 4;               // runs of 4 stored positions per channel
  constexpr int kQuadsPerThread = kKeyQuads / kThreadRows;
  static_assert(kThreads % kGroups == 0 && kKeyQuads % kThreadRows == 0, "whole key quads per thread");
  const int64_t tiles_per_head = p.kv_len_padded / kKvTile;
  const int64_t vt = block % tiles_per_head;
  const int64_t bh = block / tiles_per_head;
  const int h = int(bh % p.heads_kv);
  const int b = int(bh / p.heads_kv);
  const int c0 = (threadIdx.x % kGroups) * 8;
  const int thread_row = threadIdx.x / kGroups;
  const T* v = static_cast<const T*>(p.v.ptr) + b * p.v.stride_batch + h * p.v.stride_head;
  const int64_t key0 = vt * kKvTile;
  uint8_t* stage = smem;                                     // [DP][kKvTile] bytes, swizzled columns
  float* scratch = reinterpret_cast<float*>(smem + DP * kKvTile);

  // A thread takes whole quads of stored positions (4 keys that sit side by side in a channel
  // row of the transposed tile: keys v_key_at(4q .. 4q + 3)), so it writes 4 FP8 values of a
  // channel as one 32-bit word; the kGroups threads of a channel-group row read the same keys
  // (each 16 bytes of them), so the loads stay coalesced.
  uint4 raw[kQuadsPerThread][4];  // packed inputs: few registers, so several CTAs fit on an SM
#pragma unroll
  for (int i = 0; i < kQuadsPerThread; ++i) {
    const int quad = thread_row + i * kThreadRows;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = v_key_at(4 * quad + e);
      raw[i][e] = key0 + r < p.kv_len ? load8_packed(v + (key0 + r) * p.v.stride_seq, c0, p.head_dim) : make_uint4(0, 0, 0, 0);
    }
  }
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < kQuadsPerThread; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x[8];
      unpack8<T>(raw[i][e], x);
#pragma unroll
      for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(x[j]));
    }
  }
  amax = block_max<kThreads>(amax, scratch);
  const Pow2Scale scale = pow2_scale(amax, kFp8E4M3Max);  // a power of two (type_utils.cuh says why)
  const float inv = scale.inv;
#pragma unroll
  for (int i = 0; i < kQuadsPerThread; ++i) {
    const int quad = thread_row + i * kThreadRows;
    float x[4][8];
#pragma unroll
    for (int e = 0; e < 4; ++e) unpack8<T>(raw[i][e], x[e]);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const uint32_t word = uint32_t(float_to_e4m3(__fmul_rn(x[0][j], inv))) |
                            uint32_t(float_to_e4m3(__fmul_rn(x[1][j], inv))) << 8 |
                            uint32_t(float_to_e4m3(__fmul_rn(x[2][j], inv))) << 16 |
                            uint32_t(float_to_e4m3(__fmul_rn(x[3][j], inv))) << 24;
      *reinterpret_cast<uint32_t*>(stage + v_stage_offset(c0 + j, 4 * quad)) = word;
    }
  }
  __syncthreads();
  uint8_t* dst = p.v_fp8 + (bh * tiles_per_head + vt) * DP * kKvTile;  // this tile's Vᵀ block
  for (int e = threadIdx.x; e < DP * kKvTile / 16; e += kThreads) {
    const int c = e / 8, col = e % 8;  // 8 consecutive threads write one 128-byte channel row
    const uint4 chunk = *reinterpret_cast<const uint4*>(stage + v_stage_offset(c, col * 16));
    *reinterpret_cast<uint4*>(dst + tile_offset(c, col * 16, kKvTile)) = chunk;
  }
  if (threadIdx.x == 0 && vt < p.n_kv_tiles) p.v_scale[bh * p.n_kv_tiles + vt] = scale.scale;
}

}  // namespace sage
