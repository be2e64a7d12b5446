"""Public attention API: `fwd` (flash-attn style) and the SageAttention-compatible `sageattn` family.

All of them run one algorithm (INT8 Q·Kᵀ with K smoothing, FP8 P·V, fp32
accumulation; see quant_config.py) through the op `fwd`: on CUDA the kernels
picked by sage_attention/dispatch_by_arch.cu, on CPU the exact emulation.
"""

from typing import Optional, Tuple, Union

import torch

from ._ops import ops
from .emulation_quantize import QuantizedQKV
from .quant_config import default_softmax_scale
from .validation import check_qkv, check_tensor_layout


def fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    is_causal: bool = False,
    softmax_scale: Optional[float] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attention over (batch, seqlen, heads, head_dim) tensors, like flash-attn's `fwd`.

    Args:
        q: (B, Lq, H, d), float16 or bfloat16.
        k, v: (B, Lk, Hkv, d), same dtype and device; H % Hkv == 0 (GQA/MQA).
            d in [1, 128] (64 and 128 native; other sizes are zero-padded inside the kernels).
            Any strides with a contiguous last dimension are read in place.
        is_causal: causal mask aligned to the bottom-right corner when Lq != Lk
            (query i sees keys j <= i + Lk - Lq, as FlashAttention >= 2.1).
        softmax_scale: defaults to 1/sqrt(d).

    Returns:
        out (B, Lq, H, d) in q's dtype, and lse (B, H, Lq) float32: the natural-log
        log-sum-exp of the scaled scores (K-smoothing shift added back). A query row
        that sees no key (causal with Lq > Lk, or Lk == 0) gets out = 0 and lse = -inf.
    """
    if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)
            and q.is_cuda and k.is_cuda and v.is_cuda):
        check_qkv(q, k, v)  # all-CUDA inputs are checked once, in C++ (same messages and exception types)
    return ops.fwd(q, k, v, bool(is_causal), None if softmax_scale is None else float(softmax_scale))


def sageattn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    tensor_layout: str = "HND",
    is_causal: bool = False,
    sm_scale: Optional[float] = None,
    return_lse: bool = False,
    **kwargs,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Drop-in for SageAttention 2.2's `sageattn`.

    Args:
        q: (B, H, Lq, d) for tensor_layout "HND", (B, Lq, H, d) for "NHD".
        k, v: (B, Hkv, Lk, d) / (B, Lk, Hkv, d); H % Hkv == 0.
        tensor_layout: "HND" or "NHD". Views are read through strides, no copy.
        is_causal: causal mask, bottom-right aligned when Lq != Lk.
        sm_scale: softmax scale, default 1/sqrt(d).
        return_lse: also return lse (B, H, Lq) float32, natural log.
        **kwargs: SageAttention's tuning options (qk_quant_gran, pv_accum_dtype,
            smooth_k, smooth_v, ...) are accepted for compatibility; this library
            always runs its one recipe (quant_config.py), which smooths K.

    Returns:
        out in the input layout and dtype, or (out, lse) with return_lse.
    """
    check_tensor_layout(tensor_layout)
    if tensor_layout == "HND":
        for name, t in (("q", q), ("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4:
                raise ValueError(f"sage_attention: {name} must be a 4-D tensor (batch, heads, seqlen, head_dim)")
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    out, lse = fwd(q, k, v, is_causal=is_causal, softmax_scale=sm_scale)
    if tensor_layout == "HND":
        out = out.transpose(1, 2)
    return (out, lse) if return_lse else out


def _sageattn_variant(name: str):
    def variant(q, k, v, tensor_layout="HND", is_causal=False, sm_scale=None, return_lse=False, **kwargs):
        return sageattn(q, k, v, tensor_layout, is_causal, sm_scale, return_lse, **kwargs)

    variant.__name__ = name
    variant.__qualname__ = name
    variant.__doc__ = (
        f"SageAttention 2.2's `{name}`, kept for compatibility: same arguments as `sageattn`, "
        "runs this library's recipe on the kernel the architecture dispatch picks."
    )
    return variant


sageattn_qk_int8_pv_fp16_triton = _sageattn_variant("sageattn_qk_int8_pv_fp16_triton")
sageattn_qk_int8_pv_fp16_cuda = _sageattn_variant("sageattn_qk_int8_pv_fp16_cuda")
sageattn_qk_int8_pv_fp8_cuda = _sageattn_variant("sageattn_qk_int8_pv_fp8_cuda")
sageattn_qk_int8_pv_fp8_cuda_sm90 = _sageattn_variant("sageattn_qk_int8_pv_fp8_cuda_sm90")


def quantize_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, softmax_scale: Optional[float] = None):
    """The quantization pre-pass alone, on NHD inputs: returns a QuantizedQKV (see emulation_quantize.py)."""
    check_qkv(q, k, v)
    scale = default_softmax_scale(q.shape[-1]) if softmax_scale is None else float(softmax_scale)
    return QuantizedQKV(*ops.quantize_qkv(q, k, v, scale))


def attention_quantized(qkv, kv_len: int, head_dim: int, is_causal: bool = False, out_dtype=torch.bfloat16):
    """The attention kernel alone, on the output of `quantize_qkv`. Returns (out NHD, lse)."""
    return ops.attention_quantized(
        qkv.q_int8, qkv.q_scale, qkv.lse_shift, qkv.k_int8, qkv.k_scale, qkv.v_fp8, qkv.v_scale,
        int(head_dim), int(kv_len), bool(is_causal), out_dtype,
    )


def attention_kernel_name(device: Union[str, torch.device, None] = None) -> str:
    """Which attention kernel family runs on `device` ("cpu-emulation" on CPU; "sm90" on Hopper, where
    the dispatch picks the narrow or the warp-specialized kernel per shape, unless pinned)."""
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return ops.attention_kernel_name(torch.empty(0, device=device))
