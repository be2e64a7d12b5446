"""The quantization recipe: block sizes and constants shared by every path.

These numbers define the algorithm, not just a kernel's tiling: the CPU
emulation and every CUDA kernel must use the same ones, and they mirror
`sage_attention/quant_config.h` (a test checks the two agree).

- Q: INT8, one scale per token (row); the scale carries softmax_scale * log2(e)
  so that int32 Q·Kᵀ times the two scales is already a base-2 logit.
- K: the per-(batch, head, channel) mean over the whole sequence is subtracted
  first ("K smoothing"; softmax is invariant to it), then INT8 with one scale
  per block of K_SCALE_BLOCK keys.
- V: FP8 e4m3, one scale per tile of KV_TILE keys (all channels of a head), rounded up to a
  power of two (ratios between tiles' scales are then exact powers of two);
  the kernels hold V transposed, (batch, heads_kv, head_dim_padded, seqlen_padded),
  with the keys of every group of 32 stored in the order V_KEY_ORDER (below).
- P: the unnormalised probabilities exp2(s - running_max) ∈ [0, 1] are scaled
  by P_FP8_SCALE (= e4m3's largest finite value) and rounded to FP8 e4m3.
- Storage: int8 Q, int8 K and FP8 Vᵀ are kept tile by tile in the order the Hopper
  tensor cores read them (`to_tile_order`; sage_attention/tile_layout.h).
- The online softmax walks keys in tiles of KV_TILE, so the running max used to
  round P is the max over whole tiles seen so far.
- The K mean is summed in fp32 in a fixed order: sequentially over runs of
  K_MEAN_RUN tokens, the run sums sequentially into chunk sums of K_MEAN_CHUNK
  tokens, then the chunk sums sequentially, then one division by the length.
"""

import math

import torch

INT8_MAX = 127.0
FP8_E4M3_MAX = 448.0
P_FP8_SCALE = FP8_E4M3_MAX

K_SCALE_BLOCK = 64  # keys per K scale
KV_TILE = 128  # keys per softmax step and per V scale
Q_PAD = 128  # int8 Q rows are padded to a multiple of this (the largest CTA tile)
K_MEAN_CHUNK = 64  # tokens per partial sum of the K mean
K_MEAN_RUN = 8  # tokens summed by one thread before the run sums are combined

LOG2E = 1.4426950408889634  # log2(e) as a double, rounded once to fp32 by both sides
LN2 = 0.6931471805599453

MAX_HEAD_DIM = 128

# Storage order of keys inside each group of 32 in the transposed FP8 V: memory
# position p holds key V_KEY_ORDER[p]. It is the order in which a thread of a
# tensor-core MMA holds P after the Q·Kᵀ product (accumulator fragment: keys
# 2t, 2t+1 of each 8-key chunk), read as the A operand of the P·V product
# (positions 4t..4t+3 and 16+4t..16+4t+3). Storing V in that order lets P feed
# the next MMA straight from registers; the sum over keys does not care.
V_KEY_ORDER = tuple(
    16 * (p // 16) + (2 * ((p % 16) // 4) + (p % 4) if p % 4 < 2 else 8 + 2 * ((p % 16) // 4) + (p % 4) - 2)
    for p in range(32)
)


def padded_head_dim(head_dim: int) -> int:
    """The head_dim the kernels run at: 64 or 128 (zeros fill the rest)."""
    return 64 if head_dim <= 64 else 128


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def default_softmax_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)


def _swizzle_index(lead_dims, rows):
    """[row, position] -> source chunk for the 128-byte swizzle (an XOR, its own inverse)."""
    r = torch.arange(rows).view(rows, 1) % 8
    return (r ^ torch.arange(8).view(1, 8)).view(*([1] * lead_dims), rows, 8, 1).expand(*([1] * lead_dims), rows, 8, 16)


def to_tile_order(x):
    """Reorder the last two dims (rows, row_bytes) of every tile into the order the Hopper
    tensor cores read (sage_attention/tile_layout.h). Same shape. Rows of 128 bytes: the
    128-byte swizzle (chunk c of row r stored at chunk c ^ (r % 8)); rows of 64 bytes: the
    canonical layout of 8-row x 16-byte core matrices without swizzle."""
    *lead, rows, cols = x.shape
    if cols == 128:
        y = x.reshape(*lead, rows, 8, 16)
        idx = _swizzle_index(len(lead), rows).expand(*lead, rows, 8, 16)
        return torch.take_along_dim(y, idx.to(y.device), dim=-2).reshape(*lead, rows, cols)
    y = x.reshape(*lead, rows // 8, 8, cols // 16, 16).transpose(-3, -2)
    return y.contiguous().reshape(*lead, rows, cols)


def from_tile_order(x):
    """Inverse of to_tile_order."""
    *lead, rows, cols = x.shape
    if cols == 128:
        return to_tile_order(x)  # the swizzle is an involution
    y = x.reshape(*lead, rows // 8, cols // 16, 8, 16).transpose(-3, -2)
    return y.contiguous().reshape(*lead, rows, cols)

# SageAttention-compatible quant helpers (quant_helpers.py).
HELPER_AMAX_FLOOR = 1e-7  # SageAttention's floor: an all-zero block gets scale 1e-7 / 127
FP8_HELPER_BLOCK = 64  # per_channel_fp8 pads the sequence to a multiple of this
# per_channel_fp8 token order: stored position p of each 16-token group holds token ORDER[p]
FP8_HELPER_TOKEN_ORDER = (0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15)
SAGE_LOG2E = 1.44269504  # the log2(e) SageAttention's per_block_int8 folds into sm_scale
