#!/usr/bin/env python3
"""Run sage_attention on a sample (a Flux-sized attention: 1 x 1152 tokens x 24 heads x 128)
and print its accuracy against fp32 SDPA and its time against SDPA (CUDA), or run the
CPU emulation path when there is no GPU."""

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def gen(shape, dtype, device):
    return (torch.randn(shape) * torch.randint(1, 5, shape)).to(dtype=dtype, device=device)


def time_ms(fn, iters=50):
    for _ in range(5):
        fn()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqlen", type=int, default=1152)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--causal", action="store_true")
    args = ap.parse_args()

    import kernels

    sage = kernels.get_local_kernel(ROOT / "build")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        print("No CUDA GPU: running the CPU path (the exact emulation of the quantized kernels; slow, for reference).")
    shape = (args.batch, args.seqlen, args.heads, args.head_dim)
    torch.manual_seed(0)
    q, k, v = (gen(shape, torch.bfloat16, device) for _ in range(3))
    print(f"{sage.__name__} on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}; "
          f"attention kernel: {sage.attention_kernel_name(device)}; shape (B, L, H, d) = {shape}, bf16, causal={args.causal}")

    out, lse = sage.fwd(q, k, v, is_causal=args.causal)
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    ref = F.scaled_dot_product_attention(qt.float(), kt.float(), vt.float(), is_causal=args.causal).transpose(1, 2)
    o, r = out.float().flatten(), ref.flatten()
    cos = F.cosine_similarity(o, r, dim=0).item()
    rel_l1 = ((o - r).abs().sum() / r.abs().sum()).item()
    print(f"accuracy vs fp32 SDPA: cosine {cos:.6f}  rel-L1 {rel_l1:.4f}  max-abs {(o - r).abs().max().item():.4f}  "
          f"NaN: {bool(out.isnan().any())}")

    if device == "cuda":
        t_sage = time_ms(lambda: sage.fwd(q, k, v, is_causal=args.causal))
        t_sdpa = time_ms(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=args.causal))
        flops = 4 * args.batch * args.heads * args.seqlen**2 * args.head_dim / (2 if args.causal else 1)
        print(f"time (median of 50, CUDA events): sage_attention fwd {t_sage:.4f} ms ({flops / t_sage / 1e9:.0f} TOPS), "
              f"SDPA bf16 {t_sdpa:.4f} ms ({flops / t_sdpa / 1e9:.0f} TFLOPS): speedup {t_sdpa / t_sage:.2f}x")


if __name__ == "__main__":
    main()
