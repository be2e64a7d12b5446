"""SageAttention 2.2's quantization helpers, with the signatures and return shapes of
the kernels-community port (sageattention/quant.py): per_block_int8, per_warp_int8,
sub_mean, per_channel_fp8. On CUDA they run this library's kernels
(sage_attention/quant_helpers.cu); on CPU the exact emulation
(emulation_quant_helpers.py), which the CUDA results match bit for bit.

Differences from SageAttention, all deliberate:
- head_dim may be any size in [1, 128] (SageAttention: 64 or 128).
- Means over the sequence are fp32 sums in a fixed order divided by the true length
  (SageAttention's per_channel_fp8 divides by the length rounded up to 16).
- per_channel_fp8 writes 0 for padding tokens and gives an all-zero channel scale 0
  (SageAttention: -mean * scale_max / amax for padding, NaN for an all-zero channel).
"""

from typing import Optional, Tuple

import torch

from ._ops import ops
from .quant_config import MAX_HEAD_DIM, SAGE_LOG2E
from .validation import SUPPORTED_DTYPES, check_tensor_layout


def _check(name: str, t: torch.Tensor, tensor_layout: str) -> None:
    check_tensor_layout(tensor_layout)
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        raise ValueError(f"sage_attention: {name} must be a 4-D tensor")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"sage_attention: {name} must be float16 or bfloat16, got {t.dtype}")
    if not 1 <= t.shape[-1] <= MAX_HEAD_DIM:
        raise ValueError(f"sage_attention: head_dim must be in [1, {MAX_HEAD_DIM}], got {t.shape[-1]}")


def _nhd(t: torch.Tensor, tensor_layout: str) -> torch.Tensor:
    """(B, L, H, D) view of a tensor in `tensor_layout`, no copy (the last dim made contiguous)."""
    t = t.transpose(1, 2) if tensor_layout == "HND" else t
    return t if t.stride(-1) == 1 else t.contiguous()


def _from_nhd(t: torch.Tensor, tensor_layout: str) -> torch.Tensor:
    return t.transpose(1, 2) if tensor_layout == "HND" else t


def _seq_len(t: torch.Tensor, tensor_layout: str) -> int:
    return t.shape[2] if tensor_layout == "HND" else t.shape[1]


def _k_mean_arg(km: Optional[torch.Tensor], k: torch.Tensor, tensor_layout: str) -> Optional[torch.Tensor]:
    """SageAttention's km: (B, 1, Hkv, D) for "NHD", (B, Hkv, 1, D) for "HND" -> (B, Hkv, D) fp32."""
    if km is None:
        return None
    kn = _nhd(k, tensor_layout)
    expected = (kn.shape[0], kn.shape[2], kn.shape[3])
    km3 = km.squeeze(2 if tensor_layout == "HND" else 1) if km.dim() == 4 else km
    if tuple(km3.shape) != expected or km3.device != k.device:
        raise ValueError(
            f"sage_attention: km must be (batch, 1, heads, head_dim) for NHD or (batch, heads, 1, head_dim) for HND "
            f"on k's device; got {tuple(km.shape)} for k {tuple(k.shape)}"
        )
    return km3.float().contiguous()


def _check_blocks(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"sage_attention: {name} must be a positive int, got {value!r}")


def _quantize_k(k: torch.Tensor, km: Optional[torch.Tensor], BLKK: int, tensor_layout: str):
    """k (minus km) INT8 per BLKK keys: the same for per_block_int8 and per_warp_int8."""
    lk = _seq_len(k, tensor_layout)
    k8, k_scale = ops.quantize_int8_blocks(
        _nhd(k, tensor_layout), _k_mean_arg(km, k, tensor_layout), 1.0, BLKK, -(-lk // BLKK)
    )
    return _from_nhd(k8, tensor_layout), k_scale


def per_block_int8(
    q: torch.Tensor,
    k: torch.Tensor,
    km: Optional[torch.Tensor] = None,
    BLKQ: int = 128,
    BLKK: int = 64,
    sm_scale: Optional[float] = None,
    tensor_layout: str = "HND",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """INT8 per block of BLKQ query rows / BLKK key rows (all channels of a head).

    q's scale has sm_scale (default head_dim**-0.5) times log2(e) folded in; km, if given,
    is subtracted from k first. Returns q_int8 (like q), q_scale (B, H, ceil(Lq/BLKQ)) fp32,
    k_int8 (like k), k_scale (B, Hkv, ceil(Lk/BLKK)) fp32.
    """
    _check("q", q, tensor_layout)
    _check("k", k, tensor_layout)
    _check_blocks(BLKQ=BLKQ, BLKK=BLKK)
    if sm_scale is None:
        sm_scale = q.shape[-1] ** -0.5
    sm_scale = float(sm_scale) * SAGE_LOG2E
    lq = _seq_len(q, tensor_layout)
    q8, q_scale = ops.quantize_int8_blocks(_nhd(q, tensor_layout), None, sm_scale, BLKQ, -(-lq // BLKQ))
    return (_from_nhd(q8, tensor_layout), q_scale, *_quantize_k(k, km, BLKK, tensor_layout))


def per_warp_int8(
    q: torch.Tensor,
    k: torch.Tensor,
    km: Optional[torch.Tensor] = None,
    BLKQ: int = 128,
    WARPQ: int = 32,
    BLKK: int = 64,
    tensor_layout: str = "HND",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """INT8 per WARPQ query rows (BLKQ // WARPQ scales per BLKQ block; slots past the end
    get the floor scale 1e-7 / 127) and per BLKK key rows. No softmax scale is folded in.
    Returns q_int8, q_scale (B, H, ceil(Lq/BLKQ) * (BLKQ // WARPQ)), k_int8, k_scale."""
    _check("q", q, tensor_layout)
    _check("k", k, tensor_layout)
    _check_blocks(BLKQ=BLKQ, WARPQ=WARPQ, BLKK=BLKK)
    if BLKQ % WARPQ != 0:
        raise ValueError(f"sage_attention: BLKQ ({BLKQ}) must be a multiple of WARPQ ({WARPQ})")
    lq = _seq_len(q, tensor_layout)
    q8, q_scale = ops.quantize_int8_blocks(_nhd(q, tensor_layout), None, 1.0, WARPQ, -(-lq // BLKQ) * (BLKQ // WARPQ))
    return (_from_nhd(q8, tensor_layout), q_scale, *_quantize_k(k, km, BLKK, tensor_layout))


def sub_mean(v: torch.Tensor, tensor_layout: str = "HND") -> Tuple[torch.Tensor, torch.Tensor]:
    """v minus its mean over the sequence. Returns v_smoothed (like v, float16; the
    subtraction in v's dtype) and vm (B, Hkv, D) in v's dtype."""
    _check("v", v, tensor_layout)
    vn = _nhd(v, tensor_layout)
    mean = ops.channel_mean(vn)
    return _from_nhd(ops.sub_mean_fp16(vn, mean), tensor_layout), mean.to(v.dtype)


def per_channel_fp8(
    v: torch.Tensor, tensor_layout: str = "HND", scale_max: float = 448.0, smooth_v: bool = True
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """FP8 e4m3 V with one scale per channel (amax over the sequence / scale_max), after
    subtracting the channel mean when smooth_v. Returns v_fp8 (B, Hkv, D, P) for "HND" or
    (B, D, Hkv, P) for "NHD" (P = length rounded up to 64; tokens of each 16 in
    SageAttention's order, quant_config.FP8_HELPER_TOKEN_ORDER), v_scale (B, Hkv, D) fp32,
    and vm (B, Hkv, D) fp32 when smooth_v, else None."""
    _check("v", v, tensor_layout)
    if not 0.0 < float(scale_max) <= 448.0:
        raise ValueError(f"sage_attention: scale_max must be in (0, 448], got {scale_max}")
    vn = _nhd(v, tensor_layout)
    mean = ops.channel_mean(vn) if smooth_v else None
    v_fp8, v_scale = ops.quantize_fp8_per_channel(vn, mean, float(scale_max), tensor_layout == "HND")
    return v_fp8, v_scale, mean
