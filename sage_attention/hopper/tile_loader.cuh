// Global -> shared copies of the int8/FP8 operand tiles into the canonical
// no-swizzle K-major layout wgmma reads: 8-row x 16-byte core matrices, the core
// matrices of one 8-row group side by side along K (128 B apart), row groups
// `row_bytes * 8` apart. cp.async (16 B, L2 only) so the copy of the next tile
// overlaps the math on the current one.
#pragma once
#include <cstdint>

namespace sage {
namespace sm90 {

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Byte offset of 16-byte chunk `chunk` of row `row` in a canonical tile with `row_bytes` per row.
__host__ __device__ constexpr int canonical_offset(int row, int chunk, int row_bytes) {
  return (row >> 3) * (row_bytes * 8) + chunk * 128 + (row & 7) * 16;
}

// Copies kRows x kRowBytes bytes (global rows `gstride` bytes apart) into a canonical tile.
// Eight consecutive threads fill one core matrix: conflict-free shared-memory writes,
// and every 32-byte global sector read is used whole.
template <int kRows, int kRowBytes, int kThreads>
__device__ __forceinline__ void load_tile(uint8_t* smem, const uint8_t* gmem, int64_t gstride, int tid) {
  constexpr int kChunks = kRowBytes / 16;
  constexpr int kTotal = kRows * kChunks;
  static_assert(kTotal % kThreads == 0, "tile must split evenly over the threads");
#pragma unroll
  for (int i = 0; i < kTotal / kThreads; ++i) {
    const int e = tid + i * kThreads;
    const int rest = e >> 3;
    const int chunk = rest % kChunks;
    const int row = (rest / kChunks) * 8 + (e & 7);
    cp_async_16(smem + canonical_offset(row, chunk, kRowBytes), gmem + row * gstride + chunk * 16);
  }
}

}  // namespace sm90
}  // namespace sage
