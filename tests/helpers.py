"""Input generation and the fp32 reference used by every accuracy test."""

import math

import torch


def gen(shape, dtype=torch.bfloat16, device="cpu", generator=None):
    """randn * randint(1, 5): the kernels-benchmarks input distribution (never zeros)."""
    x = torch.randn(shape, generator=generator) * torch.randint(1, 5, shape, generator=generator)
    return x.to(dtype=dtype, device=device)


def gen_qkv(b, lq, lk, h, hkv, d, dtype=torch.bfloat16, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        gen((b, lq, h, d), dtype, device, g),
        gen((b, lk, hkv, d), dtype, device, g),
        gen((b, lk, hkv, d), dtype, device, g),
    )


def causal_mask(lq, lk, device="cpu"):
    """Bottom-right aligned: query i sees keys j <= i + lk - lq."""
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(lk - lq)


def reference(q, k, v, is_causal, softmax_scale=None):
    """fp32 attention on NHD inputs: (out (B, Lq, H, d) fp32, lse (B, H, Lq) fp32, rows_with_keys (Lq,))."""
    b, lq, h, d = q.shape
    lk, hkv = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if softmax_scale is None else softmax_scale
    qf = q.float().transpose(1, 2)
    kf = k.float().transpose(1, 2).repeat_interleave(h // hkv, dim=1)
    vf = v.float().transpose(1, 2).repeat_interleave(h // hkv, dim=1)
    s = (qf @ kf.transpose(-1, -2)) * scale
    rows = torch.ones(lq, dtype=torch.bool, device=q.device)
    if is_causal:
        mask = causal_mask(lq, lk, q.device)
        s = s.masked_fill(~mask, -math.inf)
        rows = mask.any(dim=-1)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    out = (p @ vf).transpose(1, 2)
    return out, lse, rows


def accuracy(out, ref):
    """cosine similarity, rel-L1 and max-abs of out against ref (flattened, fp32)."""
    o, r = out.float().flatten(), ref.float().flatten()
    cos = torch.nn.functional.cosine_similarity(o, r, dim=0).item()
    rel_l1 = ((o - r).abs().sum() / r.abs().sum()).item()
    return cos, rel_l1, (o - r).abs().max().item()


def tiny_v_tile_qkv(seed=31, d=128, lk=1024, dtype=torch.bfloat16, device="cpu"):
    """(1, lk, 2, d) inputs whose rows put nearly all their weight on the keys of one 128-key V tile
    (keys 256-383) whose values are 2^-20 of the others', which have a mean of 3: in a step of
    192 keys that tile's V scale is 2^-20 of the other's. Its p' = 448 * 2^-20 * p rounds to 0
    in FP8, so row sums taken from FP8 P would leave only the other keys' small weights, and the
    output would be their mean (about 3) instead of about 0.05."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (gen((1, lk, 2, d), torch.float32, "cpu", g) for _ in range(3))
    u = torch.randn(d, generator=g)
    u = u / u.norm() * 2.5 * d**0.25  # u . u / sqrt(d) = 6.25: the tile's keys lead by ~6 nats
    tile = slice(256, 384)
    q = 0.3 * q + u
    k = 0.3 * k
    k[:, tile] += u
    v = v + 3.0
    v[:, tile] = (v[:, tile] - 3.0) * 2.0**-20
    return tuple(t.to(dtype=dtype, device=device) for t in (q, k, v))
