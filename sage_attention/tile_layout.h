// Storage order of the quantized operand tiles in global memory.
//
// The pre-pass writes int8 Q, int8 K and FP8 Vᵀ tile by tile, each tile already in the
// layout the Hopper tensor cores read from shared memory (wgmma's canonical K-major
// layout without swizzle): 16-byte chunks grouped into 8-row x 16-byte "core
// matrices"; within a tile, core matrices of one 8-row group sit side by side along
// the row (128 B apart), and 8-row groups are `row_bytes * 8` apart. A whole tile is
// then one contiguous block that a single bulk copy moves into shared memory.
//
//   Q:  tiles of kQPad rows x D bytes      (B, H, Lq_pad, D)
//   K:  tiles of kKvTile keys x D bytes    (B, Hkv, Lk_pad, D)
//   Vᵀ: tiles of D channels x kKvTile keys (B, Hkv, Lk_pad / kKvTile, D, kKvTile),
//       keys of every 32 in v_key_at order (quant_config.h)
#pragma once

namespace sage {

// Byte offset of byte `col` of row `row` inside a tile whose rows are `row_bytes` long.
__host__ __device__ constexpr int tile_offset(int row, int col, int row_bytes) {
  return (row >> 3) * (row_bytes * 8) + (col >> 4) * 128 + (row & 7) * 16 + (col & 15);
}

}  // namespace sage
