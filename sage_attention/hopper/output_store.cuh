// Writing a warpgroup's O rows (the wgmma m64nD accumulator: acc[4j + 2*half], acc[4j + 2*half + 1]
// hold channels 8j + 2*t4 and +1 of row g + 8*half) to the output in its dtype, normalised.
// Shared by the Hopper kernels (attention_sm90.cu, attention_sm90_ws.cu); the staged form below is
// the warp-specialized kernel's.
#pragma once
#include <cstdint>

#include "../params.h"
#include "../type_utils.cuh"
#include "async_copy.cuh"

namespace sage {
namespace sm90 {

// The output's base address OR its strides in bytes (the same for every thread of a launch): its
// low bits bound the alignment of every row start, e.g. (x & 3) == 0 for 4-byte-aligned rows.
template <typename T>
__device__ __forceinline__ uintptr_t output_alignment(const AttentionParams& p) {
  return reinterpret_cast<uintptr_t>(p.out) | uintptr_t(p.out_stride_batch | p.out_stride_seq | p.out_stride_head) * sizeof(T);
}

// Two adjacent channels in the output dtype as one 32-bit word, the first in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float x, float y) {
  const T pair[2] = {from_float<T>(x), from_float<T>(y)};
  return *reinterpret_cast<const uint32_t*>(pair);
}

// Two adjacent channels as one 32-bit store; dst must be 4-byte aligned.
template <typename T>
__device__ __forceinline__ void store_aligned_pair(T* dst, float x, float y) {
  *reinterpret_cast<uint32_t*>(dst) = pack_pair<T>(x, y);
}

// One or two channels at any alignment (both: x and y, else x alone).
template <typename T>
__device__ __forceinline__ void store_pair(T* dst, float x, float y, bool both) {
  if (both && (reinterpret_cast<uintptr_t>(dst) & 3) == 0) {
    store_aligned_pair(dst, x, y);
  } else {
    dst[0] = from_float<T>(x);
    if (both) dst[1] = from_float<T>(y);
  }
}

// One row (half 0: row g, 1: row g + 8) of this thread's channels times `norm`. Whole rows
// (head_dim == D) at 4-byte-aligned addresses (base and strides: the same for every thread of the
// launch) take one 32-bit store per channel pair with no test per pair; padded head dims and odd
// layouts take store_pair's checks. (Before v27 every pair was tested: ~860 instructions per
// warp, a tenth of a CTA's instructions at 9 tiles.)
template <int D, typename T>
__device__ __forceinline__ void store_o_row(T* out, const float* acc, int half, int t4, float norm,
                                            bool whole_aligned_rows, int head_dim) {
  if (whole_aligned_rows) {
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      store_aligned_pair(out + 8 * j + 2 * t4, acc[4 * j + 2 * half] * norm, acc[4 * j + 2 * half + 1] * norm);
    }
  } else {
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const int c = 8 * j + 2 * t4;
      if (c < head_dim) store_pair(out + c, acc[4 * j + 2 * half] * norm, acc[4 * j + 2 * half + 1] * norm, c + 1 < head_dim);
    }
  }
}

// ---- Staged rows (the warp-specialized kernel): registers -> shared memory -> bulk stores ----
// A warp's 16 rows of O, normalised and in the output dtype, go to shared memory by stmatrix (8
// instructions per thread instead of 32 scattered 4-byte global stores), and each row then leaves
// as one 256-byte bulk store (async_copy.cuh), issued by one lane: the warp's stores no longer
// queue in the load/store unit behind each other, and the next tile starts while they drain.
// Rows sit kStagedRowBytes apart: 256 bytes plus 16, so the 8 rows of an 8x8 matrix fall on
// different banks (at a 256-byte pitch all 8 would hit the same four).
constexpr int kStagedRowBytes = 128 * 2 + 16;

// Writes this warp's 16 rows x 128 channels (acc: the wgmma m64n128 fragment of the warp's
// threads; rows g and g + 8 times norm_a and norm_b) to `rows` (row r at r * kStagedRowBytes).
// stmatrix's 8x8 matrices are exactly the fragment's (row g, channels 8j + 2*t4, +1), so matrix
// (half, chunk j) is the register pair acc[4j + 2*half], +1; lane L gives the address of row L % 8
// of matrix L / 8 of each x4 call.
template <typename T>
__device__ __forceinline__ void stage_o_rows(uint8_t* rows, const float* acc, float norm_a, float norm_b, int lane) {
  const int k = lane / 8;
  const uint32_t row_addr = smem_addr(rows) + uint32_t((lane % 8 + 8 * (k & 1)) * kStagedRowBytes + 16 * (k >> 1));
#pragma unroll
  for (int c = 0; c < 8; ++c) {  // chunks 2c (matrices 0, 1: rows g, g + 8) and 2c + 1 (matrices 2, 3)
    const float* a = acc + 8 * c;
    const uint32_t r0 = pack_pair<T>(a[0] * norm_a, a[1] * norm_a), r1 = pack_pair<T>(a[2] * norm_b, a[3] * norm_b);
    const uint32_t r2 = pack_pair<T>(a[4] * norm_a, a[5] * norm_a), r3 = pack_pair<T>(a[6] * norm_b, a[7] * norm_b);
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(row_addr + 32 * c), "r"(r0),
                 "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
  }
}

}  // namespace sm90
}  // namespace sage
