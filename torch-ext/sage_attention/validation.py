"""Input checks shared by every Python entry point and by the CPU and fake op
implementations (the CUDA op repeats them in C++, sage_attention/fwd.cu, before
any kernel runs). Errors name the offending argument and what was expected."""

import torch

from .quant_config import MAX_HEAD_DIM

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
TENSOR_LAYOUTS = ("HND", "NHD")


def check_tensor_layout(tensor_layout: str) -> None:
    """SageAttention's layout names: "HND" = (B, H, L, d), "NHD" = (B, L, H, d)."""
    if tensor_layout not in TENSOR_LAYOUTS:
        raise ValueError(f"sage_attention: tensor_layout must be 'HND' or 'NHD', got {tensor_layout!r}")


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """q (B, Lq, H, d), k and v (B, Lk, Hkv, d): the layout of `fwd` ("NHD")."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"sage_attention: {name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"sage_attention: q, k, v must be 4-D (batch, seqlen, heads, head_dim); got ranks {q.dim()}, {k.dim()}, {v.dim()}"
        )
    if q.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"sage_attention: q must be float16 or bfloat16, got {q.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"sage_attention: q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"sage_attention: q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    if k.shape[0] != q.shape[0] or v.shape[0] != q.shape[0]:
        raise ValueError(f"sage_attention: batch sizes differ: q {q.shape[0]}, k {k.shape[0]}, v {v.shape[0]}")
    if k.shape != v.shape:
        raise ValueError(f"sage_attention: k and v must have the same shape; got {tuple(k.shape)} and {tuple(v.shape)}")
    if k.shape[3] != q.shape[3]:
        raise ValueError(f"sage_attention: head_dim differs: q {q.shape[3]}, k {k.shape[3]}")
    if not 1 <= q.shape[3] <= MAX_HEAD_DIM:
        raise ValueError(f"sage_attention: head_dim must be in [1, {MAX_HEAD_DIM}], got {q.shape[3]}")
    if k.shape[2] < 1 or q.shape[2] % k.shape[2] != 0:
        raise ValueError(
            f"sage_attention: heads of q ({q.shape[2]}) must be a multiple of heads of k/v ({k.shape[2]})"
        )
