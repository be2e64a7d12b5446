// Writing a warpgroup's O rows (the wgmma m64nD accumulator: acc[4j + 2*half], acc[4j + 2*half + 1]
// hold channels 8j + 2*t4 and +1 of row g + 8*half) to the output in its dtype, normalised.
// Shared by the Hopper kernels (attention_sm90.cu, attention_sm90_ws.cu).
#pragma once
#include <cstdint>

#include "../type_utils.cuh"

namespace sage {
namespace sm90 {

// Two adjacent channels as one 32-bit store; dst must be 4-byte aligned.
template <typename T>
__device__ __forceinline__ void store_aligned_pair(T* dst, float x, float y) {
  const T pair[2] = {from_float<T>(x), from_float<T>(y)};
  *reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(pair);
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

}  // namespace sm90
}  // namespace sage
