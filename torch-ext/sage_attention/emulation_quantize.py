"""CPU emulation of the quantization pre-pass (the oracle for the CUDA pre-pass).

Every operation here is chosen so that the CUDA kernels can reproduce it bit for
bit: fp32 arithmetic with one rounding per step (one IEEE division per block for
the reciprocal scale, then multiplies), round-half-even to int8,
round-to-nearest-even to FP8 e4m3, and a fixed summation order for the K mean. Inputs are (batch, seqlen, heads, head_dim) ("NHD"), fp16 or bf16.
"""

from typing import NamedTuple

import torch

from .quant_config import (
    FP8_E4M3_MAX,
    INT8_MAX,
    K_MEAN_CHUNK,
    K_MEAN_RUN,
    K_SCALE_BLOCK,
    KV_TILE,
    LOG2E,
    Q_PAD,
    V_KEY_ORDER,
    from_tile_order,
    to_tile_order,
    padded_head_dim,
    round_up,
)


class QuantizedQKV(NamedTuple):
    """What the attention kernel consumes. Shapes (D = padded head_dim):

    q_int8    (B, H, round_up(Lq, Q_PAD), D)               int8, tiles of Q_PAD rows in tile order
    q_scale   (B, H, Lq)                                     fp32, includes softmax_scale*log2(e)
    lse_shift (B, H, Lq)                                     fp32, softmax_scale * q·k_mean (natural log units)
    k_int8    (B, Hkv, round_up(Lk, KV_TILE), D)             int8, smoothed (mean subtracted), tiles of KV_TILE keys in tile order
    k_scale   (B, Hkv, ceil(Lk / K_SCALE_BLOCK))             fp32
    k_mean    (B, Hkv, D)                                    fp32
    v_fp8     (B, Hkv, ceil(Lk / KV_TILE), D, KV_TILE)       float8_e4m3fn: per tile Vᵀ (channels x keys), keys in
                                                             V_KEY_ORDER per 32, in tile order
    v_scale   (B, Hkv, ceil(Lk / KV_TILE))                   fp32

    "Tile order" is quant_config.to_tile_order: the layout the Hopper kernel copies
    straight into shared memory.
    """

    q_int8: torch.Tensor
    q_scale: torch.Tensor
    lse_shift: torch.Tensor
    k_int8: torch.Tensor
    k_scale: torch.Tensor
    k_mean: torch.Tensor
    v_fp8: torch.Tensor
    v_scale: torch.Tensor


def score_scale_fp32(softmax_scale: float) -> torch.Tensor:
    """softmax_scale * log2(e), computed in double and rounded once to fp32 (as the C++ side does)."""
    return torch.tensor(softmax_scale * LOG2E, dtype=torch.float32)


def _pad_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad dim 1 (tokens) of a (B, L, H, D) tensor to `length`."""
    if x.shape[1] == length:
        return x
    pad = x.new_zeros(x.shape[0], length - x.shape[1], *x.shape[2:])
    return torch.cat([x, pad], dim=1)


def _pad_channels(x: torch.Tensor, dim_padded: int) -> torch.Tensor:
    if x.shape[-1] == dim_padded:
        return x
    return torch.nn.functional.pad(x, (0, dim_padded - x.shape[-1]))


def k_mean_emulated(k: torch.Tensor) -> torch.Tensor:
    """Mean of K over the sequence, (B, Hkv, d) fp32, in the kernels' summation order:
    sequential fp32 sums over runs of K_MEAN_RUN tokens, the runs of a chunk of
    K_MEAN_CHUNK tokens summed sequentially, the chunk sums summed sequentially, then
    one IEEE division by the length. Zero padding past the length changes no bits."""
    b, lk, hkv, d = k.shape
    n_chunks = -(-lk // K_MEAN_CHUNK)
    runs = K_MEAN_CHUNK // K_MEAN_RUN
    kf = _pad_tokens(k.float(), n_chunks * K_MEAN_CHUNK).view(b, n_chunks, runs, K_MEAN_RUN, hkv, d)
    run_sum = torch.zeros(b, n_chunks, runs, hkv, d, dtype=torch.float32)
    for t in range(K_MEAN_RUN):
        run_sum = run_sum + kf[:, :, :, t]
    chunk_sum = torch.zeros(b, n_chunks, hkv, d, dtype=torch.float32)
    for r in range(runs):
        chunk_sum = chunk_sum + run_sum[:, :, r]
    total = torch.zeros(b, hkv, d, dtype=torch.float32)
    for c in range(n_chunks):
        total = total + chunk_sum[:, c]
    return total / torch.tensor(float(lk), dtype=torch.float32)


def _quantize_from_amax(x: torch.Tensor, amax: torch.Tensor, qmax: float):
    """Scale = amax / qmax (the dequantization scale, stored) and x * (qmax / amax): one fp32
    division per block, then a multiply per element, on both the CPU and the GPU.
    Blocks whose amax is 0 (or whose scale underflows) quantize to 0 with scale 0."""
    scale = amax / qmax
    ok = scale > 0
    # tensor / tensor: an IEEE division (python-scalar / tensor would be reciprocal * scalar)
    inv = torch.where(ok, torch.full_like(amax, qmax) / torch.where(ok, amax, torch.ones_like(amax)), torch.zeros_like(amax))
    return x * inv, scale


def _pow2_scale_from_amax(amax: torch.Tensor, qmax: float):
    """V's scales (type_utils.cuh pow2_scale, same bits): amax / qmax rounded up to a power of two,
    at least 2^-126, and its exact inverse; 0 and 0 where amax is 0, inf and 0 where it is inf."""
    raw = amax / qmax
    bits = raw.clamp(min=2.0**-126).view(torch.int32)
    bits = torch.where((bits & 0x7FFFFF) != 0, (bits & 0x7F800000) + 0x800000, bits)
    ok = (raw > 0) & ~torch.isinf(raw)
    scale = torch.where(ok, bits.view(torch.float32), torch.where(torch.isinf(raw), raw, torch.zeros_like(raw)))
    inv = torch.where(ok, ((254 - (bits >> 23)) << 23).view(torch.float32), torch.zeros_like(raw))
    return scale, inv


def _int8_from_amax(x: torch.Tensor, amax: torch.Tensor):
    """Round half-to-even into [-127, 127]."""
    y, scale = _quantize_from_amax(x, amax, INT8_MAX)
    return torch.round(y).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8), scale


def quantize_q_emulated(q: torch.Tensor, k_mean: torch.Tensor, softmax_scale: float):
    """Per-token INT8 Q. Returns q_int8 (B, H, Lq_pad, D), q_scale (B, H, Lq), lse_shift (B, H, Lq)."""
    b, lq, h, d = q.shape
    hkv = k_mean.shape[1]
    dp = padded_head_dim(d)
    qf = q.float()  # (B, Lq, H, d)
    amax = qf.abs().amax(dim=-1, keepdim=True)
    q_int, raw_scale = _int8_from_amax(qf, amax)
    q_scale = (raw_scale.squeeze(-1) * score_scale_fp32(softmax_scale)).permute(0, 2, 1).contiguous()
    # lse shift: softmax_scale * q·k_mean on the unquantized q, in fp32.
    km = k_mean.repeat_interleave(h // hkv, dim=1)  # (B, H, d)
    dot = (qf * km.unsqueeze(1)).sum(dim=-1)  # (B, Lq, H)
    lse_shift = (dot * torch.tensor(softmax_scale, dtype=torch.float32)).permute(0, 2, 1).contiguous()
    q_int = _pad_channels(_pad_tokens(q_int, round_up(lq, Q_PAD)), dp).permute(0, 2, 1, 3)
    return rows_to_tile_order(q_int, Q_PAD), q_scale, lse_shift


def quantize_k_emulated(k: torch.Tensor, k_mean: torch.Tensor):
    """Smoothed INT8 K with one scale per K_SCALE_BLOCK keys.
    Returns k_int8 (B, Hkv, Lk_pad, D), k_scale (B, Hkv, n_blocks)."""
    b, lk, hkv, d = k.shape
    dp = padded_head_dim(d)
    n_blocks = -(-lk // K_SCALE_BLOCK)
    ks = k.float() - k_mean.unsqueeze(1)  # (B, Lk, Hkv, d)
    ks = _pad_tokens(ks, n_blocks * K_SCALE_BLOCK)
    # Padded keys must not enter the amax: they are zeros after padding, and |0| never raises an amax.
    blocks = ks.view(b, n_blocks, K_SCALE_BLOCK, hkv, d)
    amax = blocks.abs().amax(dim=(2, 4), keepdim=True)  # (B, nb, 1, Hkv, 1)
    k_int, scale = _int8_from_amax(blocks, amax)
    k_int = k_int.view(b, n_blocks * K_SCALE_BLOCK, hkv, d)[:, :lk]
    k_int = _pad_channels(_pad_tokens(k_int, round_up(lk, KV_TILE)), dp)
    k_scale = scale.view(b, n_blocks, hkv).permute(0, 2, 1).contiguous()
    return rows_to_tile_order(k_int.permute(0, 2, 1, 3), KV_TILE), k_scale


def rows_to_tile_order(x: torch.Tensor, tile_rows: int) -> torch.Tensor:
    """(..., L, D) with L % tile_rows == 0 -> same shape, each tile of rows in tile order."""
    *lead, length, d = x.shape
    return to_tile_order(x.reshape(*lead, length // tile_rows, tile_rows, d)).reshape(*lead, length, d)


def rows_from_tile_order(x: torch.Tensor, tile_rows: int) -> torch.Tensor:
    *lead, length, d = x.shape
    return from_tile_order(x.reshape(*lead, length // tile_rows, tile_rows, d)).reshape(*lead, length, d)


def v_from_storage(v_fp8: torch.Tensor) -> torch.Tensor:
    """Stored V (B, Hkv, n_tiles, D, KV_TILE) -> (B, Hkv, D, Lk_pad) fp32 with keys in natural order."""
    b, hkv, n_tiles, dp, _ = v_fp8.shape
    v = from_tile_order(v_fp8.view(torch.uint8)).view(torch.float8_e4m3fn).float()
    v = v.transpose(2, 3).reshape(b, hkv, dp, n_tiles * KV_TILE)
    out = torch.empty_like(v)
    out[..., v_storage_index(v.shape[-1])] = v
    return out


def v_storage_index(padded_len: int) -> torch.Tensor:
    """Key stored at each position of a transposed V row (padded_len is a multiple of 32)."""
    pos = torch.arange(padded_len)
    return pos // 32 * 32 + torch.tensor(V_KEY_ORDER)[pos % 32]


def quantize_v_emulated(v: torch.Tensor):
    """FP8 e4m3 V with one power-of-two scale per KV_TILE keys, stored transposed (keys in
    V_KEY_ORDER per 32). Returns v_fp8 (B, Hkv, n_tiles, D, KV_TILE) in tile order, v_scale
    (B, Hkv, n_tiles)."""
    b, lk, hkv, d = v.shape
    dp = padded_head_dim(d)
    n_tiles = -(-lk // KV_TILE)
    vf = _pad_tokens(v.float(), n_tiles * KV_TILE).view(b, n_tiles, KV_TILE, hkv, d)
    amax = vf.abs().amax(dim=(2, 4), keepdim=True)
    scale, inv = _pow2_scale_from_amax(amax, FP8_E4M3_MAX)
    v8 = (vf * inv).to(torch.float8_e4m3fn)
    v8 = _pad_channels(v8.view(torch.uint8).view(b, n_tiles * KV_TILE, hkv, d), dp)
    v8 = v8.permute(0, 2, 3, 1)[..., v_storage_index(v8.shape[1])]  # (B, Hkv, D, Lk_pad), keys permuted per 32
    v8 = v8.reshape(b, hkv, dp, n_tiles, KV_TILE).transpose(2, 3)  # (B, Hkv, n_tiles, D, KV_TILE)
    v8 = to_tile_order(v8).view(torch.float8_e4m3fn)
    v_scale = scale.view(b, n_tiles, hkv).permute(0, 2, 1).contiguous()
    return v8, v_scale


def quantize_qkv_emulated(q, k, v, softmax_scale: float) -> QuantizedQKV:
    k_mean = k_mean_emulated(k)
    q_int8, q_scale, lse_shift = quantize_q_emulated(q, k_mean, softmax_scale)
    k_int8, k_scale = quantize_k_emulated(k, k_mean)
    v_fp8, v_scale = quantize_v_emulated(v)
    k_mean = _pad_channels(k_mean, padded_head_dim(k.shape[-1])).contiguous()
    return QuantizedQKV(q_int8, q_scale, lse_shift, k_int8, k_scale, k_mean, v_fp8, v_scale)
