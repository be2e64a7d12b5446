"""CPU emulation of the quantized attention (the oracle for every CUDA attention kernel).

It consumes exactly what the pre-pass produces (`QuantizedQKV`) and walks the
keys in tiles of KV_TILE with an online softmax, as the kernels do (the
warp-specialized Hopper kernel in steps of 192 keys: attention_emulated's kv_step):

    s      = float(int8 Q · int8 Kᵀ) * (q_scale_row * k_scale_block)   # base-2 logits
    m_new  = max(m, rowmax(s))                 alpha = exp2(m - m_new)
    p      = exp2(s - m_new)                   l     = l * alpha + rowsum(p)
    p8     = fp8_e4m3(p * 448)
    acc    = acc * alpha + (p8 · v8_tile) * v_scale_tile
    out    = acc / (l * 448)
    lse    = (m + log2(l)) * ln 2 + lse_shift     (natural log, K-smoothing shift added back)

Int8 products summed over head_dim stay below 2^24, so the fp32 matmul of the
integer values is exact in any order. fp8·fp8 products are exact in fp32; only
the order of the fp32 sums inside a tile, and exp2's last bits, may differ from a
GPU kernel.

Masking: keys at or past kv_len, and with is_causal keys j > i + (kv_len - q_len)
(bottom-right alignment, as FlashAttention >= 2.1). A query row that sees no key
gets out = 0 and lse = -inf.
"""

import math

import torch

from .emulation_quantize import QuantizedQKV, rows_from_tile_order, v_from_storage
from .quant_config import K_SCALE_BLOCK, KV_TILE, LN2, P_FP8_SCALE, Q_PAD

STEP_192 = 192  # keys per step of the warp-specialized Hopper kernel: 1.5 V tiles, 3 K scale blocks
# Below this ratio of a step's two V scales, that kernel sums the step's fp32 p on the CUDA cores:
# FP8 p' = 448 * ratio * p of a much smaller tile would round to 0, and its keys drop out of the sum.
MIN_RATIO_FOR_CORE_SUMS = 2.0**-4


def attention_emulated(
    qkv: QuantizedQKV,
    q_len: int,
    kv_len: int,
    head_dim: int,
    is_causal: bool,
    out_dtype: torch.dtype,
    kv_step: int = KV_TILE,
):
    """Returns out (B, Lq, H, head_dim) in out_dtype and lse (B, H, Lq) fp32.

    kv_step: keys per online-softmax step: KV_TILE for every kernel but the warp-specialized
    Hopper one (hopper/attention_sm90_ws.cu), which takes STEP_192. A 192-key step holds keys of
    two V tiles (even steps: all of tile 3u and half of 3u+1; odd steps: the other half of 3u+1 and
    all of 3u+2), whose scales are powers of two: each tile's ratio to the step's larger scale
    (v_ref) is folded into P before its FP8 rounding, exactly, and the step's P·V is taken in units
    of v_ref (one accumulator). A tile of scale 0 keeps ratio 1. That kernel also takes a step's row
    sums on the tensor cores, from P as the P·V uses it: l adds sum(p8 / ratio) / 448 instead of
    sum(p), except in steps that reach past kv_len or, with is_causal, past the last visible key of
    the first row of the row's 128-row tile (the kernel's tiles take the masked softmax there), or
    whose smaller ratio is below MIN_RATIO_FOR_CORE_SUMS (online_softmax.cuh kMinRatioForCoreSums),
    which sum fp32 p. With KV_TILE steps the ratio is 1 and v_ref the tile's scale: the recipe in the
    module docstring."""
    assert kv_step in (KV_TILE, STEP_192), kv_step
    q8, qs = rows_from_tile_order(qkv.q_int8, Q_PAD)[:, :, :q_len].float(), qkv.q_scale
    b, h, _, dp = q8.shape
    group = h // qkv.k_int8.shape[1]

    def per_q_head(t):  # (B, Hkv, ...) -> (B, H, ...) for GQA
        return t.repeat_interleave(group, dim=1) if group > 1 else t

    k8 = per_q_head(rows_from_tile_order(qkv.k_int8, KV_TILE).float())  # (B, H, Lk_pad, D)
    v8 = per_q_head(v_from_storage(qkv.v_fp8))  # (B, H, D, Lk_pad)
    k_scale = per_q_head(qkv.k_scale)  # (B, H, nKb)
    v_scale = per_q_head(qkv.v_scale)  # (B, H, nT)
    lk_pad = k8.shape[2]

    rows = torch.arange(q_len).view(q_len, 1)
    if kv_step == STEP_192:
        # Keys every row of each row's Q_PAD-row tile sees: kv_len, or (causal) up to the tile's
        # first row's last visible key; step t is whole for the tile when (t + 1) * 192 <= that.
        tile_first = torch.div(torch.arange(q_len), Q_PAD, rounding_mode="floor") * Q_PAD
        reach = torch.full((q_len,), kv_len)
        if is_causal:
            reach = torch.clamp(torch.minimum(reach, tile_first + (kv_len - q_len) + 1), min=0)
        tile_sees_step = [(t + 1) * kv_step <= reach for t in range(-(-kv_len // kv_step))]
    m = torch.full((b, h, q_len), -math.inf)
    l = torch.zeros(b, h, q_len)
    acc = torch.zeros(b, h, q_len, dp)
    for t in range(-(-kv_len // kv_step)):
        lo, hi = t * kv_step, min((t + 1) * kv_step, lk_pad)
        cols = torch.arange(lo, hi)
        allowed = cols.view(1, -1) < kv_len
        if is_causal:
            allowed = allowed & (cols.view(1, -1) <= rows + (kv_len - q_len))
        if not bool(allowed.any()):
            break  # causal: later steps are masked for every row too
        acc_int = q8 @ k8[:, :, lo:hi].transpose(-1, -2)  # exact integers
        ks = k_scale[..., (cols // K_SCALE_BLOCK).clamp(max=k_scale.shape[-1] - 1)]  # (B, H, n)
        s = acc_int * (qs.unsqueeze(-1) * ks.unsqueeze(-2))
        s = torch.where(allowed, s, torch.tensor(-math.inf))
        m_new = torch.maximum(m, s.amax(dim=-1))
        seen = m_new > -math.inf  # rows that have at least one key so far
        m_safe = torch.where(seen, m_new, torch.zeros_like(m_new))
        alpha = torch.where(seen, torch.exp2(m - m_safe), torch.ones_like(m))
        # The step's V tiles, their scales relative to the larger one (powers of two <= 1).
        tiles = cols // KV_TILE
        vs = v_scale[..., tiles[0] : tiles[-1] + 1]  # (B, H, 1 or 2)
        v_ref = vs.amax(dim=-1, keepdim=True)
        ratio = torch.where((vs > 0) & (v_ref > 0), vs / torch.where(v_ref > 0, v_ref, 1.0), torch.ones(()))
        col_ratio = ratio[..., tiles - tiles[0]]  # (B, H, n)
        p = torch.exp2(s - m_safe.unsqueeze(-1))  # masked: exp2(-inf) = 0
        p8 = (p * col_ratio.unsqueeze(-2) * P_FP8_SCALE).to(torch.float8_e4m3fn).float()
        row_sum = p.sum(dim=-1)
        # The kernel's masked steps sum on the CUDA cores: for a tile of Q_PAD rows, every step that
        # reaches past kv_len or (causal) past the last visible key of the tile's first row, even
        # for the tile's rows that see the whole step.
        if kv_step == STEP_192:
            whole = tile_sees_step[t]  # (q_len,): rows whose tile sees all of step t
            if bool(whole.any()):
                on_cores = ratio.amin(dim=-1, keepdim=True) >= MIN_RATIO_FOR_CORE_SUMS  # (B, H, 1)
                core_sum = (p8 / col_ratio.unsqueeze(-2)).sum(dim=-1) / P_FP8_SCALE
                row_sum = torch.where(on_cores & whole, core_sum, row_sum)
        l = l * alpha + row_sum
        o_step = p8 @ v8[..., lo:hi].transpose(-1, -2)
        acc = acc * alpha.unsqueeze(-1) + o_step * v_ref.unsqueeze(-1)
        m = m_new
    has_keys = l > 0
    denom = torch.where(has_keys, l * P_FP8_SCALE, torch.ones_like(l))
    out = torch.where(has_keys.unsqueeze(-1), acc / denom.unsqueeze(-1), torch.zeros_like(acc))
    lse = torch.where(
        has_keys,
        (m + torch.log2(torch.where(has_keys, l, torch.ones_like(l)))) * LN2 + qkv.lse_shift,
        torch.full_like(l, -math.inf),
    )
    out = out[..., :head_dim].permute(0, 2, 1, 3).to(out_dtype).contiguous()
    return out, lse
