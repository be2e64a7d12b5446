"""CPU (emulation) and fake (meta) implementations of the ops declared in
torch-ext/torch_binding.cpp. The CUDA implementations are in C++.

The CPU implementation is the oracle: it runs the exact quantized algorithm
(emulation_quantize.py, emulation_attention.py), so the package also works,
slowly, on a machine without a GPU."""

import math

import torch

from ._ops import add_op_namespace_prefix
from .emulation_attention import attention_emulated
from .emulation_quant_helpers import (
    channel_mean_emulated,
    fp8_per_channel_emulated,
    int8_blocks_emulated,
    sub_mean_fp16_emulated,
)
from .emulation_quantize import QuantizedQKV, quantize_qkv_emulated
from .quant_config import (
    FP8_HELPER_BLOCK,
    K_SCALE_BLOCK,
    KV_TILE,
    MAX_HEAD_DIM,
    Q_PAD,
    default_softmax_scale,
    padded_head_dim,
    round_up,
)
from .validation import SUPPORTED_DTYPES, check_qkv


def _last_dim_contiguous(x):
    return x if x.stride(-1) == 1 else x.contiguous()


@torch.library.register_kernel(add_op_namespace_prefix("fwd"), "cpu")
def _fwd_cpu(q, k, v, is_causal=False, softmax_scale=None):
    check_qkv(q, k, v)
    b, lq, h, d = q.shape
    lk = k.shape[1]
    if lq == 0 or lk == 0:
        return q.new_zeros(b, lq, h, d), torch.full((b, h, lq), -math.inf, dtype=torch.float32)
    qkv = quantize_qkv_emulated(q, k, v, default_softmax_scale(d) if softmax_scale is None else float(softmax_scale))
    return attention_emulated(qkv, lq, lk, d, is_causal, q.dtype)


@torch.library.register_fake(add_op_namespace_prefix("fwd"))
def _fwd_fake(q, k, v, is_causal=False, softmax_scale=None):
    check_qkv(q, k, v)
    b, lq, h, d = q.shape
    return q.new_empty(b, lq, h, d), q.new_empty(b, h, lq, dtype=torch.float32)


@torch.library.register_kernel(add_op_namespace_prefix("quantize_qkv"), "cpu")
def _quantize_qkv_cpu(q, k, v, softmax_scale):
    check_qkv(q, k, v)
    return list(quantize_qkv_emulated(_last_dim_contiguous(q), k, v, softmax_scale))


@torch.library.register_fake(add_op_namespace_prefix("quantize_qkv"))
def _quantize_qkv_fake(q, k, v, softmax_scale):
    check_qkv(q, k, v)
    b, lq, h, d = q.shape
    lk, hkv = k.shape[1], k.shape[2]
    dp = padded_head_dim(d)
    f32 = dict(dtype=torch.float32)
    return [
        q.new_empty(b, h, round_up(lq, Q_PAD), dp, dtype=torch.int8),
        q.new_empty(b, h, lq, **f32),
        q.new_empty(b, h, lq, **f32),
        q.new_empty(b, hkv, round_up(lk, KV_TILE), dp, dtype=torch.int8),
        q.new_empty(b, hkv, -(-lk // K_SCALE_BLOCK), **f32),
        q.new_empty(b, hkv, dp, **f32),
        q.new_empty(b, hkv, -(-lk // KV_TILE), dp, KV_TILE, dtype=torch.float8_e4m3fn),
        q.new_empty(b, hkv, -(-lk // KV_TILE), **f32),
    ]


@torch.library.register_kernel(add_op_namespace_prefix("attention_quantized"), "cpu")
def _attention_quantized_cpu(q_int8, q_scale, lse_shift, k_int8, k_scale, v_fp8, v_scale, head_dim, kv_len, is_causal, out_dtype):
    b, h, _, dp = q_int8.shape
    q_len = q_scale.shape[2]
    if q_len == 0 or kv_len == 0:
        return q_int8.new_zeros(b, q_len, h, head_dim, dtype=out_dtype), torch.full((b, h, q_len), -math.inf)
    qkv = QuantizedQKV(q_int8, q_scale, lse_shift, k_int8, k_scale, None, v_fp8, v_scale)
    return attention_emulated(qkv, q_len, kv_len, head_dim, is_causal, out_dtype)


@torch.library.register_fake(add_op_namespace_prefix("attention_quantized"))
def _attention_quantized_fake(q_int8, q_scale, lse_shift, k_int8, k_scale, v_fp8, v_scale, head_dim, kv_len, is_causal, out_dtype):
    b, h = q_int8.shape[:2]
    q_len = q_scale.shape[2]
    return q_int8.new_empty(b, q_len, h, head_dim, dtype=out_dtype), q_int8.new_empty(b, h, q_len, dtype=torch.float32)


@torch.library.register_kernel(add_op_namespace_prefix("attention_kernel_name"), "cpu")
def _attention_kernel_name_cpu(like):
    return "cpu-emulation"


# The quant helper ops (quant_helpers.py): CPU = emulation_quant_helpers.py.
def _helper_input(x, op):
    if x.dim() != 4 or x.dtype not in SUPPORTED_DTYPES or not 1 <= x.shape[-1] <= MAX_HEAD_DIM:
        raise ValueError(f"{op}: x must be a 4-D float16/bfloat16 (batch, seqlen, heads, head_dim<={MAX_HEAD_DIM}) tensor")


@torch.library.register_kernel(add_op_namespace_prefix("quantize_int8_blocks"), "cpu")
def _quantize_int8_blocks_cpu(x, mean, scale_mult, rows_per_slot, n_slots):
    _helper_input(x, "quantize_int8_blocks")
    if rows_per_slot < 1 or n_slots * rows_per_slot < x.shape[1]:
        raise ValueError("quantize_int8_blocks: n_slots * rows_per_slot must cover the sequence")
    return int8_blocks_emulated(x, mean, scale_mult, rows_per_slot, n_slots)


@torch.library.register_fake(add_op_namespace_prefix("quantize_int8_blocks"))
def _quantize_int8_blocks_fake(x, mean, scale_mult, rows_per_slot, n_slots):
    return torch.empty_like(x, dtype=torch.int8), x.new_empty(x.shape[0], x.shape[2], n_slots, dtype=torch.float32)


@torch.library.register_kernel(add_op_namespace_prefix("channel_mean"), "cpu")
def _channel_mean_cpu(x):
    _helper_input(x, "channel_mean")
    return channel_mean_emulated(x)


@torch.library.register_fake(add_op_namespace_prefix("channel_mean"))
def _channel_mean_fake(x):
    return x.new_empty(x.shape[0], x.shape[2], x.shape[3], dtype=torch.float32)


@torch.library.register_kernel(add_op_namespace_prefix("sub_mean_fp16"), "cpu")
def _sub_mean_fp16_cpu(x, mean):
    _helper_input(x, "sub_mean")
    return sub_mean_fp16_emulated(x, mean)


@torch.library.register_fake(add_op_namespace_prefix("sub_mean_fp16"))
def _sub_mean_fp16_fake(x, mean):
    return torch.empty_like(x, dtype=torch.float16)


@torch.library.register_kernel(add_op_namespace_prefix("quantize_fp8_per_channel"), "cpu")
def _quantize_fp8_per_channel_cpu(x, mean, scale_max, heads_first):
    _helper_input(x, "per_channel_fp8")
    return fp8_per_channel_emulated(x, mean, scale_max, heads_first)


@torch.library.register_fake(add_op_namespace_prefix("quantize_fp8_per_channel"))
def _quantize_fp8_per_channel_fake(x, mean, scale_max, heads_first):
    b, l, h, d = x.shape
    p = round_up(l, FP8_HELPER_BLOCK)
    shape = (b, h, d, p) if heads_first else (b, d, h, p)
    return x.new_empty(*shape, dtype=torch.float8_e4m3fn), x.new_empty(b, h, d, dtype=torch.float32)
