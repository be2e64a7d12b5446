"""sage_attention: SageAttention (INT8 Q·Kᵀ with K smoothing, FP8 P·V, fp32
accumulation) as a Hugging Face `kernels` Hub kernel.

    from kernels import get_kernel
    sage = get_kernel("kernels-community/sage_attention", version=1)
    out, lse = sage.fwd(q, k, v, is_causal=False)          # (B, L, H, d)
    out = sage.sageattn(q, k, v, tensor_layout="HND")      # SageAttention API
"""

from . import _op_registrations  # noqa: F401  (CPU emulation + fake implementations)
from .emulation_quantize import QuantizedQKV
from .quant_helpers import per_block_int8, per_channel_fp8, per_warp_int8, sub_mean
from .interface import (
    attention_kernel_name,
    attention_quantized,
    fwd,
    quantize_qkv,
    sageattn,
    sageattn_qk_int8_pv_fp8_cuda,
    sageattn_qk_int8_pv_fp8_cuda_sm90,
    sageattn_qk_int8_pv_fp16_cuda,
    sageattn_qk_int8_pv_fp16_triton,
)

__all__ = [
    "QuantizedQKV",
    "attention_kernel_name",
    "attention_quantized",
    "fwd",
    "per_block_int8",
    "per_channel_fp8",
    "per_warp_int8",
    "quantize_qkv",
    "sageattn",
    "sageattn_qk_int8_pv_fp8_cuda",
    "sageattn_qk_int8_pv_fp8_cuda_sm90",
    "sageattn_qk_int8_pv_fp16_cuda",
    "sageattn_qk_int8_pv_fp16_triton",
    "sub_mean",
]
