// Online softmax on the Q·Kᵀ accumulator fragment of one warpgroup (64 rows x 128 keys).
//
// Fragment layout (wgmma m64n128, per warp 16 rows): thread (g = lane/4, t = lane%4)
// holds, for key chunk i (8 keys), s[4i+0..1] = row g, keys 8i+2t, 8i+2t+1 and
// s[4i+2..3] = row g+8, same keys. A row's 128 values live in the 4 threads of a quad.
//
// Same arithmetic as torch-ext/sage_attention/emulation_attention.py up to the last
// bit of fp32 rounding: per score element the fast path spends an I2FP (exact int ->
// float), half a VIMNMX3 (row max, on the integers), one FFMA (scale and subtract the max),
// one EX2, one FADD (row sum) and half a conversion to FP8; the row sums stay per thread
// until the end. The factor 448 of P's FP8 scaling is folded into the exponent, so the row
// sum is kept times 448.
#pragma once
#include <cuda_fp8.h>

#include <cstdint>

#include "../quant_config.h"

namespace sage {
namespace sm90 {

constexpr float kLog2PScale = 8.807354922057604f;  // log2(448)

struct RowState {
  float m = -INFINITY;  // running max of base-2 logits (the same in the 4 threads of a quad)
  float l = 0.f;        // running sum of 448 * exp2(s - m) over this thread's keys: the quad's
                        // four partial sums are added once, after the last tile (quad_sum)
};

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Pins the row states' values at this point of the instruction stream (orders their
// computation before the next volatile asm, e.g. a wgmma issue).
__device__ __forceinline__ void fence_row_state(RowState& a, RowState& b) {
  asm volatile("" : "+f"(a.m), "+f"(a.l), "+f"(b.m), "+f"(b.l)::"memory");
}

// MUFU.EX2 alone (exp2f adds a range check and two fix-up multiplies per call): results
// below 2^-126 flush to 0, which FP8 P would round to 0 anyway; ex2(-inf) = 0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Exact for |x| < 2^24 (an int8 dot product over <= 256 channels is below 2^22). On sm_90
// this is one I2FP instruction (ALU pipe), not the quarter-rate I2F: measured 1.6-3% faster
// than the magic-constant add + subtract it replaced (v12b, NOTES.md).
__device__ __forceinline__ float exact_int_to_float(int x) { return __int2float_rn(x); }

// Four floats -> four e4m3 bytes, first in the lowest byte (round to nearest even, saturating).
__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
  return lo | (hi << 16);
}

// The max of this thread's 16 integer scores of row g (kRow 0) or g+8 (kRow 1) among the 64 keys
// of K scale block kBlock (keys 64*kBlock .. 64*kBlock+63 of the tile or step): a tree of 3-input
// maxima (VIMNMX3 on sm_90), 8 instructions, depth 3.
template <int kRow, int kBlock, int N>
__device__ __forceinline__ int max_of_row_block(const int (&s)[N]) {
  int v[16];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    v[2 * j] = s[4 * (8 * kBlock + j) + 2 * kRow];
    v[2 * j + 1] = s[4 * (8 * kBlock + j) + 2 * kRow + 1];
  }
  const int a = __vimax3_s32(__vimax3_s32(v[0], v[1], v[2]), __vimax3_s32(v[3], v[4], v[5]),
                             __vimax3_s32(v[6], v[7], v[8]));
  const int b = __vimax3_s32(__vimax3_s32(v[9], v[10], v[11]), __vimax3_s32(v[12], v[13], v[14]), v[15]);
  return max(a, b);
}

// P (times 448, FP8) as the A operand of the P·V wgmmas: p_frag[c] covers keys 32c..32c+31 of
// the fragment x (chunks 4c .. 4c+3), in the order V is stored (quant_config.h v_key_at).
template <int C>
__device__ __forceinline__ void pack_p(const float (&x)[16 * C], uint32_t (&p_frag)[C][4]) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const float* y = x + 16 * c;
    p_frag[c][0] = pack_e4m3x4(y[0], y[1], y[4], y[5]);      // row g,   keys of chunks 4c, 4c+1
    p_frag[c][1] = pack_e4m3x4(y[2], y[3], y[6], y[7]);      // row g+8
    p_frag[c][2] = pack_e4m3x4(y[8], y[9], y[12], y[13]);    // row g,   chunks 4c+2, 4c+3
    p_frag[c][3] = pack_e4m3x4(y[10], y[11], y[14], y[15]);  // row g+8
  }
}

// O accumulator chunk j (wgmma m64nN fragment: o[4j], o[4j+1] row g; o[4j+2], o[4j+3] row g+8)
// times its rows' factors.
__device__ __forceinline__ void scale_o_rows(float* o, int j, float factor_a, float factor_b) {
  o[4 * j] *= factor_a;
  o[4 * j + 1] *= factor_a;
  o[4 * j + 2] *= factor_b;
  o[4 * j + 3] *= factor_b;
}

// Which keys of a tile each row may see, for tiles that need masking: the offset in the
// tile of the last visible key (-1: none, 127: all), 32-bit so the compares stay cheap.
struct TileMask {
  int last_a;  // row g
  int last_b;  // row g+8
};

// Masked tiles and steps: the scaled logits with hidden keys at -inf, and each row's max. Scale
// first (a row whose q is all zeros has factor 0; -inf * 0 would be NaN), then mask. kChunks of 8
// keys; chunk i has K scale block i / 8.
template <int kChunks, int kBlocks>
__device__ __forceinline__ void scale_mask_and_max(float (&x)[4 * kChunks], const float (&f)[2][kBlocks],
                                                   const TileMask& mask, int t4, float& max_a, float& max_b) {
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int key = 8 * i + 2 * t4 + e;
      x[4 * i + e] = key > mask.last_a ? -INFINITY : x[4 * i + e] * f[0][i / 8];
      x[4 * i + 2 + e] = key > mask.last_b ? -INFINITY : x[4 * i + 2 + e] * f[1][i / 8];
    }
  }
  max_a = max_b = -INFINITY;
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    max_a = fmaxf(max_a, fmaxf(x[4 * i], x[4 * i + 1]));
    max_b = fmaxf(max_b, fmaxf(x[4 * i + 2], x[4 * i + 3]));
  }
}

// One tile: updates the row states, returns the rescale factors of the two rows and
// P (times 448, FP8) as the A operand of the P·V wgmma: p_frag[c] covers keys 32c..32c+31,
// in the order V is stored (quant_config.h v_key_at). f[r][h] = q_scale(row r) * k_scale
// of key half h (keys 0-63, 64-127).
// kOElems > 0 (the serial narrow loop, where O is idle during the softmax): also rescales
// the O accumulator fragment o[kOElems] (wgmma m64nN layout: o[4j], o[4j+1] row g, o[4j+2],
// o[4j+3] row g+8) by alpha * o_ratio, interleaved with the exponentials. The MUFU-bound
// exponential stream leaves the FMA pipe mostly idle, so the 64 FMULs there cost issue slots
// only, instead of a serial block (and its latency) right before the P·V issue.
template <bool kMasked, int kOElems = 0>
__device__ __forceinline__ void softmax_tile(const int (&s_int)[64], const float (&f)[2][2], const TileMask& mask,
                                             int t4, RowState& row_a, RowState& row_b, float& alpha_a,
                                             float& alpha_b, uint32_t (&p_frag)[4][4], float* o = nullptr,
                                             float o_ratio = 1.f) {
  static_assert(kOElems == 0 || kOElems == 32 || kOElems == 64, "O fragments of head_dim 64 or 128");
  float x[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) x[i] = exact_int_to_float(s_int[i]);
  float max_a, max_b;
  if constexpr (kMasked) {
    scale_mask_and_max<16, 2>(x, f, mask, t4, max_a, max_b);
  } else {
    // Factors are >= 0 and the int -> float conversion is exact, so the max of the scaled
    // logits is the scaled max of the integer scores per key half: found with 3-input integer
    // max (one VIMNMX3 per two scores instead of one FMNMX per score), independent of the
    // conversions. Same bits as the max of the scaled floats (rounding is monotonic).
    max_a = fmaxf(exact_int_to_float(max_of_row_block<0, 0>(s_int)) * f[0][0],
                  exact_int_to_float(max_of_row_block<0, 1>(s_int)) * f[0][1]);
    max_b = fmaxf(exact_int_to_float(max_of_row_block<1, 0>(s_int)) * f[1][0],
                  exact_int_to_float(max_of_row_block<1, 1>(s_int)) * f[1][1]);
  }
  max_a = quad_max(max_a);
  max_b = quad_max(max_b);
  const float m_new_a = fmaxf(row_a.m, max_a), m_new_b = fmaxf(row_b.m, max_b);
  const float base_a = m_new_a > -INFINITY ? m_new_a : 0.f;  // rows with no key yet: p = 0, alpha = 1
  const float base_b = m_new_b > -INFINITY ? m_new_b : 0.f;
  alpha_a = m_new_a > -INFINITY ? fast_exp2(row_a.m - base_a) : 1.f;
  alpha_b = m_new_b > -INFINITY ? fast_exp2(row_b.m - base_b) : 1.f;
  const float bias_a = base_a - kLog2PScale, bias_b = base_b - kLog2PScale;  // p' = 448 * exp2(s - base)
  const float o_factor_a = alpha_a * o_ratio, o_factor_b = alpha_b * o_ratio;
  // 4 chains per row (short dependencies), each started by its first pair: a chain started
  // at 0.f costs an FADD with zero the compiler may not drop (0 + -0 is +0).
  float sum_a[4], sum_b[4];
#pragma unroll
  for (int i = 0; i < 16; ++i) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if constexpr (kMasked) {
        x[4 * i + e] = fast_exp2(x[4 * i + e] - bias_a);
        x[4 * i + 2 + e] = fast_exp2(x[4 * i + 2 + e] - bias_b);
      } else {
        x[4 * i + e] = fast_exp2(fmaf(x[4 * i + e], f[0][i / 8], -bias_a));
        x[4 * i + 2 + e] = fast_exp2(fmaf(x[4 * i + 2 + e], f[1][i / 8], -bias_b));
      }
    }
    if constexpr (kOElems > 0) {
      if (i < kOElems / 4) {
        scale_o_rows(o, i, o_factor_a, o_factor_b);
        // Keeps the multiplies inside each branch: otherwise the compiler sinks the masked and
        // unmasked paths' identical copies below their join, back into a serial block before the
        // P·V issue. (Within the branch ptxas orders them as it likes: attention_sm90.cu.)
        asm volatile("" : "+f"(o[4 * i]), "+f"(o[4 * i + 1]), "+f"(o[4 * i + 2]), "+f"(o[4 * i + 3]) : "f"(x[4 * i]));
      }
    }
    const float pair_a = x[4 * i] + x[4 * i + 1], pair_b = x[4 * i + 2] + x[4 * i + 3];
    sum_a[i % 4] = i < 4 ? pair_a : sum_a[i % 4] + pair_a;
    sum_b[i % 4] = i < 4 ? pair_b : sum_b[i % 4] + pair_b;
  }
  row_a.l = row_a.l * alpha_a + ((sum_a[0] + sum_a[1]) + (sum_a[2] + sum_a[3]));
  row_b.l = row_b.l * alpha_b + ((sum_b[0] + sum_b[1]) + (sum_b[2] + sum_b[3]));
  row_a.m = m_new_a;
  row_b.m = m_new_b;
  pack_p(x, p_frag);
}

// ---- 192-key steps (the warp-specialized kernel, attention_sm90_ws.cu) ----
// The fragment of m64n192: 24 key chunks of 8, s[4i .. 4i+3] as above. Chunk i has K scale block
// i / 8 (f[row][i / 8]); chunks below kSplitChunk hold keys of the step's first V tile (group 0),
// the others of its second (group 1).

// The V scales of a step's two tiles, relative to the larger (v_ref): each a power of two <= 1
// (the pre-pass's pow2_scale), folded into P before its FP8 rounding without error:
// p' = 448 * ratio * exp2(s - m). The row sums take the unscaled p (p' / ratio).
struct StepVFold {
  float log2_ratio[2];
  float inv_ratio[2];
};

// The row sums of a step's P taken on the tensor cores: once P is packed (FP8), six m64n8k32 wgmmas
// multiply it by 8 constant rows (attention_sm90_ws.cu WsSmem::kRowSumOnes): row 0 all 1.0 for the
// chunks of the step's first V tile, row 1 for those of its second, the others 0. Columns 0 and 1
// of that 4-register accumulator then hold, per row, the sums of the FP8-rounded p' = 448 * ratio_g
// * p of each V group; the ratio is taken out exactly (a power of two) when they are added to the
// row sum. This replaces 96 FADD per thread and step (the per-score sum chains) with the six wgmmas
// (issued while the tensor cores are idle between the consumers' turns) and ~6 FFMA/FMUL/FSEL.
//
// The sums are then of P as the P·V used it (FP8), not of fp32 p (emulation_attention.py, kv_step
// 192). Keys whose p' rounds to 0 drop out of both O and the row sum, so a V tile far smaller than
// the step's other one would lose nearly all its keys' weight, and the row would be normalised by
// the other tile's keys alone. Steps with a ratio below kMinRatioForCoreSums therefore sum fp32 p
// on the CUDA cores (the masked softmax variant, which also serves the steps that reach past kv_len).
constexpr float kMinRatioForCoreSums = 0.0625f;  // 2^-4: p' = 448 * ratio * p rounds to 0 only for p < 2^-14.8

// One step: updates the row maxima and leaves p' (fp32, times 448 and the V ratio) in x; the FP8
// packing is separate (pack_p), so it can wait until the previous P·V has released P.
// The row sums move to the new max (times alpha). kMasked: hidden keys (mask) at -inf, and the
// fp32 p' / ratio of this thread's keys added to the row sums. Otherwise the step's row sums come
// from the tensor cores later (add_core_row_sums below).
template <int kSplitChunk, bool kMasked>
__device__ __forceinline__ void softmax_step192(const int (&s_int)[96], const float (&f)[2][3], const StepVFold& fold,
                                                const TileMask& mask, int t4, RowState& row_a, RowState& row_b,
                                                float& alpha_a, float& alpha_b, float (&x)[96]) {
  static_assert(kSplitChunk == 8 || kSplitChunk == 16, "a step's V tile boundary falls on a K scale block");
#pragma unroll
  for (int i = 0; i < 96; ++i) x[i] = exact_int_to_float(s_int[i]);
  float max_a, max_b;
  if constexpr (kMasked) {
    scale_mask_and_max<24, 3>(x, f, mask, t4, max_a, max_b);
  } else {
    max_a = fmaxf(fmaxf(exact_int_to_float(max_of_row_block<0, 0>(s_int)) * f[0][0],
                        exact_int_to_float(max_of_row_block<0, 1>(s_int)) * f[0][1]),
                  exact_int_to_float(max_of_row_block<0, 2>(s_int)) * f[0][2]);
    max_b = fmaxf(fmaxf(exact_int_to_float(max_of_row_block<1, 0>(s_int)) * f[1][0],
                        exact_int_to_float(max_of_row_block<1, 1>(s_int)) * f[1][1]),
                  exact_int_to_float(max_of_row_block<1, 2>(s_int)) * f[1][2]);
  }
  max_a = quad_max(max_a);
  max_b = quad_max(max_b);
  const float m_new_a = fmaxf(row_a.m, max_a), m_new_b = fmaxf(row_b.m, max_b);
  const float base_a = m_new_a > -INFINITY ? m_new_a : 0.f;
  const float base_b = m_new_b > -INFINITY ? m_new_b : 0.f;
  alpha_a = m_new_a > -INFINITY ? fast_exp2(row_a.m - base_a) : 1.f;
  alpha_b = m_new_b > -INFINITY ? fast_exp2(row_b.m - base_b) : 1.f;
  // p' = 448 * ratio_g * exp2(s - base): one bias per row and V group.
  const float bias_a[2] = {base_a - kLog2PScale - fold.log2_ratio[0], base_a - kLog2PScale - fold.log2_ratio[1]};
  const float bias_b[2] = {base_b - kLog2PScale - fold.log2_ratio[0], base_b - kLog2PScale - fold.log2_ratio[1]};
  // kMasked: one chain per row (the masked variant runs at most at a tile's last step and at steps
  // of very unequal V scales; more chains cost registers the unmasked variant's O needs).
  float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
  for (int i = 0; i < 24; ++i) {
    const int g = i < kSplitChunk ? 0 : 1;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if constexpr (kMasked) {
        x[4 * i + e] = fast_exp2(x[4 * i + e] - bias_a[g]);
        x[4 * i + 2 + e] = fast_exp2(x[4 * i + 2 + e] - bias_b[g]);
      } else {
        x[4 * i + e] = fast_exp2(fmaf(x[4 * i + e], f[0][i / 8], -bias_a[g]));
        x[4 * i + 2 + e] = fast_exp2(fmaf(x[4 * i + 2 + e], f[1][i / 8], -bias_b[g]));
      }
    }
    if constexpr (kMasked) {
      sum_a = fmaf(x[4 * i] + x[4 * i + 1], fold.inv_ratio[g], sum_a);
      sum_b = fmaf(x[4 * i + 2] + x[4 * i + 3], fold.inv_ratio[g], sum_b);
    }
  }
  row_a.l = kMasked ? fmaf(row_a.l, alpha_a, sum_a) : row_a.l * alpha_a;
  row_b.l = kMasked ? fmaf(row_b.l, alpha_b, sum_b) : row_b.l * alpha_b;
  row_a.m = m_new_a;
  row_b.m = m_new_b;
}

// Adds a step's row sums from the tensor cores (sums: the m64n8 accumulator, row g's V groups 0
// and 1, then row g+8's; nonzero in the quad's thread t4 = 0 only) times unfold (the step's inverse
// V ratios, or 0 where the softmax summed the step itself). The row sums were already moved to the
// step's max by the softmax (times alpha).
__device__ __forceinline__ void add_core_row_sums(const float (&sums)[4], const float (&unfold)[2], RowState& row_a,
                                                  RowState& row_b) {
  row_a.l += sums[0] * unfold[0] + sums[1] * unfold[1];
  row_b.l += sums[2] * unfold[0] + sums[3] * unfold[1];
}

}  // namespace sm90
}  // namespace sage
