"""CPU emulation of the quant helper ops (the oracle for sage_attention/quant_helpers.cu
and the CPU implementation of the ops). Every input is (B, L, H, D), any strides.

    quantize_int8_blocks   v = (x - mean) * scale_mult, per block of rows_per_slot rows
                           (all channels): amax = max(max|v|, 1e-7), scale = amax / 127,
                           int8 = round_half_even(v * (127 / amax))
    channel_mean           fp32 mean over the sequence in the pre-pass's fixed order
    sub_mean_fp16          fp16(dtype(x - dtype(mean)))
    quantize_fp8_per_channel  per channel: amax = max|x - mean| over the sequence,
                           scale = amax / scale_max, e4m3(v * (scale_max / amax)), stored
                           (B, H, D, P) or (B, D, H, P), P = len rounded up to 64, tokens of
                           each 16 in FP8_HELPER_TOKEN_ORDER, padding 0; an all-zero channel
                           gets scale 0 and zeros
"""

from typing import Optional, Tuple

import torch

from .emulation_quantize import _int8_from_amax, _quantize_from_amax, k_mean_emulated
from .quant_config import FP8_HELPER_BLOCK, FP8_HELPER_TOKEN_ORDER, HELPER_AMAX_FLOOR, INT8_MAX


def int8_blocks_emulated(
    x: torch.Tensor, mean: Optional[torch.Tensor], scale_mult: float, rows_per_slot: int, n_slots: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    b, l, h, d = x.shape
    v = x.float()
    if mean is not None:
        v = v - mean.float().unsqueeze(1)
    v = v * torch.tensor(scale_mult, dtype=torch.float32)
    padded = x.new_zeros(b, n_slots * rows_per_slot, h, d, dtype=torch.float32)
    padded[:, :l] = v
    amax = padded.abs().view(b, n_slots, rows_per_slot, h, d).amax(dim=(2, 4)).transpose(1, 2)  # (B, H, n_slots)
    amax = amax.clamp_min(HELPER_AMAX_FLOOR)
    amax_rows = amax.transpose(1, 2).repeat_interleave(rows_per_slot, dim=1)[:, :l].unsqueeze(-1)  # (B, L, H, 1)
    q, _ = _int8_from_amax(v, amax_rows)  # the pre-pass's scale rule and rounding
    out = torch.empty_like(x, dtype=torch.int8)  # the input's memory layout, as the CUDA op
    out.copy_(q)
    return out, (amax / INT8_MAX).contiguous()


def channel_mean_emulated(x: torch.Tensor) -> torch.Tensor:
    b, l, h, d = x.shape
    if l == 0:
        return torch.zeros(b, h, d, dtype=torch.float32)
    return k_mean_emulated(x).contiguous()


def sub_mean_fp16_emulated(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    m = mean.to(x.dtype).float().unsqueeze(1)
    y = (x.float() - m).to(x.dtype).to(torch.float16)
    out = torch.empty_like(x, dtype=torch.float16)
    out.copy_(y)
    return out


def fp8_per_channel_emulated(
    x: torch.Tensor, mean: Optional[torch.Tensor], scale_max: float, heads_first: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    b, l, h, d = x.shape
    v = x.float()
    if mean is not None:
        v = v - mean.float().unsqueeze(1)
    amax = v.abs().amax(dim=1) if l > 0 else torch.zeros(b, h, d)  # (B, H, D)
    y, scale = _quantize_from_amax(v, amax.unsqueeze(1), scale_max)  # the pre-pass's scale rule
    scale = scale.squeeze(1)
    q = y.to(torch.float8_e4m3fn)
    padded_len = -(-l // FP8_HELPER_BLOCK) * FP8_HELPER_BLOCK
    stored = torch.zeros(b, padded_len, h, d, dtype=torch.float8_e4m3fn)
    stored[:, :l] = q
    order = torch.tensor(FP8_HELPER_TOKEN_ORDER)
    src = (torch.arange(padded_len).view(-1, 16) // 16 * 16 + order).view(-1)  # stored position -> token
    stored = stored[:, src]  # (B, P, H, D)
    perm = (0, 2, 3, 1) if heads_first else (0, 3, 2, 1)
    return stored.permute(*perm).contiguous(), scale
