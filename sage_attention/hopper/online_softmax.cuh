// Online softmax on the Q·Kᵀ accumulator fragment of one warpgroup (64 rows x 128 keys).
//
// Fragment layout (wgmma m64n128, per warp 16 rows): thread (g = lane/4, t = lane%4)
// holds, for key chunk i (8 keys), s[4i+0..1] = row g, keys 8i+2t, 8i+2t+1 and
// s[4i+2..3] = row g+8, same keys. A row's 128 values live in the 4 threads of a quad.
//
// Arithmetic follows torch-ext/sage_attention/emulation_attention.py step by step.
#pragma once
#include <cuda_fp8.h>

#include <cstdint>

#include "../quant_config.h"

namespace sage {
namespace sm90 {

struct RowState {
  float m = -INFINITY;  // running max of base-2 logits
  float l = 0.f;        // running sum of exp2(s - m)
};

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Four floats -> four e4m3 bytes, first in the lowest byte (round to nearest even, saturating).
__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
  return lo | (hi << 16);
}

// Updates the row state with one tile of logits `s` (already scaled, masked keys at -inf),
// returns the rescale factors of the two rows, and writes P (scaled by 448, FP8) as the
// A operand of the P·V wgmma: p_frag[c] covers keys 32c..32c+31 (V stores them in this order).
__device__ __forceinline__ void softmax_tile(float (&s)[64], RowState& row_a, RowState& row_b, float& alpha_a,
                                             float& alpha_b, uint32_t (&p_frag)[4][4]) {
  float max_a = -INFINITY, max_b = -INFINITY;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    max_a = fmaxf(max_a, fmaxf(s[4 * i], s[4 * i + 1]));
    max_b = fmaxf(max_b, fmaxf(s[4 * i + 2], s[4 * i + 3]));
  }
  max_a = quad_max(max_a);
  max_b = quad_max(max_b);
  const float m_new_a = fmaxf(row_a.m, max_a), m_new_b = fmaxf(row_b.m, max_b);
  const float base_a = m_new_a > -INFINITY ? m_new_a : 0.f;  // rows with no key yet: p = 0, alpha = 1
  const float base_b = m_new_b > -INFINITY ? m_new_b : 0.f;
  alpha_a = m_new_a > -INFINITY ? exp2f(row_a.m - base_a) : 1.f;
  alpha_b = m_new_b > -INFINITY ? exp2f(row_b.m - base_b) : 1.f;
  float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    s[4 * i] = exp2f(s[4 * i] - base_a);
    s[4 * i + 1] = exp2f(s[4 * i + 1] - base_a);
    s[4 * i + 2] = exp2f(s[4 * i + 2] - base_b);
    s[4 * i + 3] = exp2f(s[4 * i + 3] - base_b);
    sum_a += s[4 * i] + s[4 * i + 1];
    sum_b += s[4 * i + 2] + s[4 * i + 3];
  }
  row_a.l = row_a.l * alpha_a + quad_sum(sum_a);
  row_b.l = row_b.l * alpha_b + quad_sum(sum_b);
  row_a.m = m_new_a;
  row_b.m = m_new_b;
  constexpr float k = kPFp8Scale;
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const float* x = s + 16 * c;  // chunks 4c .. 4c+3
    p_frag[c][0] = pack_e4m3x4(x[0] * k, x[1] * k, x[4] * k, x[5] * k);      // row g,   keys of chunks 4c, 4c+1
    p_frag[c][1] = pack_e4m3x4(x[2] * k, x[3] * k, x[6] * k, x[7] * k);      // row g+8
    p_frag[c][2] = pack_e4m3x4(x[8] * k, x[9] * k, x[12] * k, x[13] * k);    // row g,   chunks 4c+2, 4c+3
    p_frag[c][3] = pack_e4m3x4(x[10] * k, x[11] * k, x[14] * k, x[15] * k);  // row g+8
  }
}

}  // namespace sm90
}  // namespace sage
