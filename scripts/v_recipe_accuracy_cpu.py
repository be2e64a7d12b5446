#!/usr/bin/env python3
"""CPU study: accuracy against fp32 attention of two ways to quantize V (NOTES.md, session 15).

Q and K are quantized exactly as the pre-pass does (the emulation's own functions), and the
online softmax walks 128-key tiles as the kernels do. Only V's side differs:
  tile     the recipe (since session 17): one FP8 scale per 128-key tile, rounded up to a power
           of two; O is rescaled by the ratio of consecutive tiles' scales; the row sums add the
           fp32 exponentials;
  tile_exact  the same with the scale amax / 448 unrounded (the recipe until session 17);
  channel  a fixed V unit: one FP8 scale per channel over the whole sequence (applied once, after
           the last tile); the row sums add the FP8-rounded P, which is what a ones block beside
           Vᵀ gives when the tensor cores take the row sums (v37 in NOTES.md);
and the two mixed forms (tile_l8, channel_l32). Two more walk 192-key steps (1.5 tiles: the step a
warp-specialized kernel with 240-register consumers can hold, NOTES.md session 17):
  tile_fold192  unrounded per-tile scales: a step holds keys of two V tiles, so each tile's
                scale ratio to the larger of the two is folded into P before its FP8 rounding
                (one accumulator, ratios <= 1); row sums of the fp32 exponentials;
  pow2_fold192  the same with the power-of-two scales (the recipe): the ratios are powers of two;
  channel192    the fixed V unit at 192-key steps (the step itself changes nothing else).
For shapes up to 4096 tokens the `tile` column
is checked against the emulation (torch-ext/sage_attention/emulation_attention.py), which it
must match: it is the same recipe written out flat. Non-causal; inputs `randn * randint(1, 5)`.

    python scripts/v_recipe_accuracy_cpu.py 1,4096,2,128 1,32760,2,128     (B,L,H,D each)
"""
import math
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

# The emulation modules without the package's __init__ (which loads the compiled ops).
_PKG = types.ModuleType("sage_emulation")
_PKG.__path__ = [str(Path(__file__).resolve().parent.parent / "torch-ext" / "sage_attention")]
sys.modules["sage_emulation"] = _PKG
from sage_emulation.emulation_attention import attention_emulated  # noqa: E402
from sage_emulation.emulation_quantize import (  # noqa: E402
    _pow2_scale_from_amax,
    _quantize_from_amax,
    k_mean_emulated,
    quantize_k_emulated,
    quantize_q_emulated,
    quantize_qkv_emulated,
    rows_from_tile_order,
)
from sage_emulation.quant_config import FP8_E4M3_MAX, K_SCALE_BLOCK, KV_TILE, Q_PAD  # noqa: E402


def gen(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * torch.randint(1, 5, shape, generator=g)).to(torch.bfloat16)


def fp8(x):
    return x.to(torch.float8_e4m3fn).float()


def variants(q, k, v):
    """Outputs (B, H, L, D) fp32 of the variants (module docstring)."""
    b, length, h, d = q.shape
    km = k_mean_emulated(k)
    q8, qs, _ = quantize_q_emulated(q, km, 1 / math.sqrt(d))
    k8, ks = quantize_k_emulated(k, km)
    q8 = rows_from_tile_order(q8, Q_PAD)[:, :, :length].float()
    k8 = rows_from_tile_order(k8, KV_TILE)[:, :, :length].float()
    k_scale_per_key = ks.repeat_interleave(K_SCALE_BLOCK, dim=-1)[..., :length]
    vf = v.float().permute(0, 2, 1, 3)
    n_tiles = -(-length // KV_TILE)
    tiles = F.pad(vf, (0, 0, 0, n_tiles * KV_TILE - length)).view(b, h, n_tiles, KV_TILE, d)
    amax_tile = tiles.abs().amax(dim=(3, 4), keepdim=True)
    # The pre-pass's rounding: one IEEE division per scale, then a multiply per element.
    v_tile, vs_tile = _quantize_from_amax(tiles, amax_tile, FP8_E4M3_MAX)
    v8_tile, vs_tile = fp8(v_tile).view(b, h, n_tiles * KV_TILE, d), vs_tile.view(b, h, n_tiles)
    # The same tiles with each scale rounded up to a power of two: ratios between tiles are then
    # exact powers of two, which P's FP8 rounding can take without error (448 * 2^-k is an e4m3 value).
    vs_pow2, inv_pow2 = _pow2_scale_from_amax(amax_tile, FP8_E4M3_MAX)
    v8_pow2, vs_pow2 = fp8(tiles * inv_pow2).view(b, h, n_tiles * KV_TILE, d), vs_pow2.view(b, h, n_tiles)
    v_channel, vs_channel = _quantize_from_amax(vf, vf.abs().amax(dim=2, keepdim=True), FP8_E4M3_MAX)
    v8_channel = fp8(v_channel)

    def online_steps(step):
        """The online softmax walked in steps of `step` keys: per step its keys and columns, alpha
        (the rescale of what came before) and p = exp2(s - m), with the running max updated."""
        m = torch.full((b, h, length), -math.inf)
        for t in range(-(-length // step)):
            keys = slice(t * step, min((t + 1) * step, length))
            s = (q8 @ k8[:, :, keys].transpose(-1, -2)) * (qs.unsqueeze(-1) * k_scale_per_key[:, :, None, keys])
            m_new = torch.maximum(m, s.amax(-1))
            yield t, keys, torch.arange(keys.start, keys.stop), torch.exp2(m - m_new), torch.exp2(s - m_new.unsqueeze(-1))
            m = m_new

    def folded_pv(p, keys, cols, scales, v8):
        """P·V of a step over two V tiles: each tile's scale ratio to the larger is folded into P
        before its FP8 rounding, and the product is taken in units of the larger (v_ref)."""
        first = keys.start // KV_TILE
        v_ref = scales[..., first:first + 2].amax(-1, keepdim=True)  # (B, H, 1)
        ratio = torch.where(v_ref > 0, scales[..., cols // KV_TILE] / torch.where(v_ref > 0, v_ref, 1.0), 1.0)
        return (fp8(p * ratio.unsqueeze(-2) * FP8_E4M3_MAX) @ v8[:, :, keys]) * v_ref.unsqueeze(-1)

    rows, out = (b, h, length), (b, h, length, d)
    l32, l8, l32_192, l8_192 = (torch.zeros(rows) for _ in range(4))
    acc_tile, acc_exact, acc_channel, acc_fold, acc_pow2, acc_channel192 = (torch.zeros(out) for _ in range(6))
    for t, keys, _, alpha, p in online_steps(KV_TILE):
        p8, a = fp8(p * FP8_E4M3_MAX), alpha.unsqueeze(-1)
        l32, l8 = l32 * alpha + p.sum(-1), l8 * alpha + p8.sum(-1)
        acc_exact = acc_exact * a + (p8 @ v8_tile[:, :, keys]) * vs_tile[:, :, t, None, None]
        acc_tile = acc_tile * a + (p8 @ v8_pow2[:, :, keys]) * vs_pow2[:, :, t, None, None]
        acc_channel = acc_channel * a + p8 @ v8_channel[:, :, keys]
    for _, keys, cols, alpha, p in online_steps(192):
        p8, a = fp8(p * FP8_E4M3_MAX), alpha.unsqueeze(-1)
        l32_192, l8_192 = l32_192 * alpha + p.sum(-1), l8_192 * alpha + p8.sum(-1)
        acc_fold = acc_fold * a + folded_pv(p, keys, cols, vs_tile, v8_tile)
        acc_pow2 = acc_pow2 * a + folded_pv(p, keys, cols, vs_pow2, v8_pow2)
        acc_channel192 = acc_channel192 * a + p8 @ v8_channel[:, :, keys]
    return {
        "tile_fold192": acc_fold / (FP8_E4M3_MAX * l32_192.unsqueeze(-1)),
        "pow2_fold192": acc_pow2 / (FP8_E4M3_MAX * l32_192.unsqueeze(-1)),
        "channel192": acc_channel192 * vs_channel / l8_192.unsqueeze(-1),
        "tile": acc_tile / (FP8_E4M3_MAX * l32.unsqueeze(-1)),
        "tile_exact": acc_exact / (FP8_E4M3_MAX * l32.unsqueeze(-1)),
        "tile_l8": acc_tile / l8.unsqueeze(-1),
        "channel_l32": acc_channel * vs_channel / (FP8_E4M3_MAX * l32.unsqueeze(-1)),
        "channel": acc_channel * vs_channel / l8.unsqueeze(-1),
    }


def main():
    torch.manual_seed(0)
    for arg in sys.argv[1:] or ["1,4096,2,128"]:
        b, length, h, d = (int(x) for x in arg.split(","))
        t0 = time.time()
        q, k, v = (gen((b, length, h, d), seed) for seed in range(3))
        ref = F.scaled_dot_product_attention(q.float().transpose(1, 2), k.float().transpose(1, 2),
                                             v.float().transpose(1, 2))
        outs = variants(q, k, v)
        if length <= 4096:
            emulated, _ = attention_emulated(quantize_qkv_emulated(q, k, v, 1 / math.sqrt(d)), length, length, d,
                                             False, torch.float32)
            diff = (outs["tile"] - emulated.permute(0, 2, 1, 3)).abs().max().item()
            assert diff < 1e-4, f"the flat recipe differs from the emulation by {diff}"
        cells = []
        for name, o in outs.items():
            o = o.to(torch.bfloat16).float()  # the kernels write bf16
            cos = F.cosine_similarity(o.flatten(), ref.flatten(), dim=0).item()
            rel = ((o - ref).abs().sum() / ref.abs().sum()).item()
            cells.append(f"{name}: cos {cos:.6f} rel-L1 {rel:.5f}")
        print(f"{arg} ({time.time() - t0:.0f}s)  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
