"""CPU (emulation) and fake (meta) implementations of the ops declared in
torch-ext/torch_binding.cpp. The CUDA implementations are in C++.

The CPU implementation is the oracle: it runs the exact quantized algorithm
(emulation_quantize.py, emulation_attention.py), so the package also works,
slowly, on a machine without a GPU."""

import math

import torch

from ._ops import add_op_namespace_prefix
from .emulation_attention import attention_emulated
from .emulation_quantize import QuantizedQKV, quantize_qkv_emulated
from .quant_config import K_SCALE_BLOCK, KV_TILE, Q_PAD, default_softmax_scale, padded_head_dim, round_up
from .validation import check_qkv


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
