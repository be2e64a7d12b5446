// Per-token INT8 quantization of Q, one 8-channel slice of kSteps rows per thread: the
// arithmetic shared by the pre-pass quantizer (quantize_qkv.cu) and the Hopper kernel, which
// quantizes its own Q rows when fwd runs it (hopper/attention_sm90.cu). One function for both,
// so the two produce the same bits (and both match torch-ext/sage_attention/emulation_quantize.py).
#pragma once
#include "../quant_config.h"
#include "../type_utils.cuh"

namespace sage {

struct QuantizedQSlice {
  uint2 bytes;      // the slice's 8 channels as INT8, first channel in the lowest byte
  float scale;      // the row's scale, times softmax_scale * log2 e (score_scale)
  float lse_shift;  // softmax_scale * q · k_mean: the K smoothing's shift of the row's logits
};

// raw[s]: channels c0..c0+7 of this thread's row in step s (load8_packed); km: the same
// channels of the rows' K mean (one kv head for all steps). Each row's kLanesPerRow lanes
// must be consecutive and aligned in the warp, and every lane of the warp must call this
// (full-warp shuffles reduce each row's max and dot product). The work goes phase by phase
// over all steps (partial max and dot, the shuffle reductions, the scales), so the steps'
// dependency chains can overlap (on the Hopper kernel's prologue this measured no different
// from step by step: NOTES.md, v16).
template <typename T, int kLanesPerRow, int kSteps>
__device__ __forceinline__ void quantize_q_slices(const uint4 (&raw)[kSteps], const float (&km)[8], float score_scale,
                                                  float softmax_scale, QuantizedQSlice (&out)[kSteps]) {
  float amax[kSteps], dot[kSteps];
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
    float x[8];
    unpack8<T>(raw[s], x);
    amax[s] = 0.f;
    dot[s] = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      amax[s] = fmaxf(amax[s], fabsf(x[j]));
      dot[s] += x[j] * km[j];
    }
  }
#pragma unroll
  for (int o = kLanesPerRow / 2; o > 0; o >>= 1) {
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      amax[s] = fmaxf(amax[s], __shfl_xor_sync(0xffffffffu, amax[s], o));
      dot[s] += __shfl_xor_sync(0xffffffffu, dot[s], o);
    }
  }
  // The two IEEE divisions of a row (its scale and inverse scale) are done once per row, not by
  // each of its kLanesPerRow lanes: lane i of a row's lanes divides for step i, and the results
  // are shuffled back (a division is a long instruction sequence; kSteps of them per lane were
  // most of the Hopper kernel's Q prologue).
  static_assert(kSteps <= kLanesPerRow, "a lane of each row for each step's division");
  const int lane = threadIdx.x % 32, first_lane_of_row = lane & ~(kLanesPerRow - 1), step_of_lane = lane % kLanesPerRow;
  float my_amax = amax[0];
#pragma unroll
  for (int s = 1; s < kSteps; ++s) my_amax = step_of_lane == s ? amax[s] : my_amax;
  const float my_scale = __fdiv_rn(my_amax, kInt8Max);
  const float my_inv = inverse_scale(my_amax, kInt8Max);
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
    float x[8];
    unpack8<T>(raw[s], x);
    const float inv = __shfl_sync(0xffffffffu, my_inv, first_lane_of_row + s);
    const float scale = __shfl_sync(0xffffffffu, my_scale, first_lane_of_row + s);
    out[s].bytes = quantize_int8x8(x, inv);
    out[s].scale = __fmul_rn(scale, score_scale);
    out[s].lse_shift = dot[s] * softmax_scale;
  }
}

}  // namespace sage
