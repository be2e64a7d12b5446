// Storage order of the quantized operand tiles in global memory.
//
// The pre-pass writes int8 Q, int8 K and FP8 Vᵀ tile by tile, each tile already in the
// layout the Hopper tensor cores read from shared memory, so a whole tile is one
// contiguous block that a single bulk copy moves into shared memory:
//  - rows of 128 bytes (Q and K at head_dim 128, every Vᵀ tile): wgmma's K-major
//    128-byte swizzle: row r at r * 128, its 16-byte chunk c at chunk c ^ (r % 8);
//  - rows of 64 bytes (Q and K at head_dim 64): the canonical layout without swizzle,
//    8-row x 16-byte core matrices, those of one 8-row group side by side (128 B
//    apart), 8-row groups 512 B apart.
//
//   Q:  tiles of kQPad rows x D bytes      (B, H, Lq_pad, D)
//   K:  tiles of kKvTile keys x D bytes    (B, Hkv, Lk_pad, D)
//   Vᵀ: tiles of D channels x kKvTile keys (B, Hkv, Lk_pad / kKvTile, D, kKvTile),
//       keys of every 32 in v_key_at order (quant_config.h)
#pragma once

namespace sage {

// Byte offset of byte `col` of row `row` inside a tile whose rows are `row_bytes` long.
__host__ __device__ constexpr int tile_offset(int row, int col, int row_bytes) {
  return row_bytes == 128 ? row * 128 + ((((col >> 4) ^ row) & 7) << 4) + (col & 15)
                          : (row >> 3) * (row_bytes * 8) + (col >> 4) * 128 + (row & 7) * 16 + (col & 15);
}

}  // namespace sage
