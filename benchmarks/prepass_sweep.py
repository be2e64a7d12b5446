#!/usr/bin/env python3
"""GPU time of the pre-pass alone against its memory floor (read bf16 once, write 8-bit once,
at 3.0 TB/s), per shape, two ways:

- quantize_qkv (Q, K and V) replayed from a CUDA graph, so host cost is excluded;
- fwd's own pre-pass: where the attention kernel quantizes Q itself (the Hopper kernel), fwd's
  pre-pass covers K and V only. Measured as the span on the GPU from the start of fwd's first
  pre-pass kernel to the end of its last (torch.profiler timestamps), median over calls;
  its floor counts K and V only. (The attention kernel, launched overlapping the pre-pass,
  waits for it; its Q quantization is part of the attention kernel's time.)

    python benchmarks/prepass_sweep.py [--build-dir build]
"""
import argparse
import pathlib
import statistics

import torch

SHAPES = [(1, 1152, 24, 128), (1, 4608, 24, 128), (4, 4096, 32, 128), (1, 32760, 40, 128)]


def floor_us(b, l, h, d, tensors=3):
    return b * l * h * d * tensors * (2 + 1) / 3.0e12 * 1e6


PREPASS_KERNELS = ("k_mean", "quantize_qkv", "short_sequence_prepass")  # fwd's launches before the attention kernel


def fwd_prepass_span_us(sage, q, k, v, calls=20):
    """Median GPU span of fwd's pre-pass kernels per call (first start to last end)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        sage.fwd(q, k, v)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            sage.fwd(q, k, v)
        torch.cuda.synchronize()
    kernels = sorted(
        (e.time_range.start, e.time_range.end, e.name)
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start
    )
    spans, start = [], None
    for t0, t1, name in kernels:
        if any(n in name for n in PREPASS_KERNELS):
            start = t0 if start is None else start
            end = t1
        elif start is not None:  # the attention kernel of the same call: close the span
            spans.append(end - start)
            start = None
    return statistics.median(spans) if spans else float("nan")


def time_graph(fn, iters=20, rounds=7):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(iters):
            fn()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) * 1000 / iters)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    args = ap.parse_args()
    import kernels

    sage = kernels.get_local_kernel(pathlib.Path(args.build_dir))
    for shape in SHAPES:
        b, l, h, d = shape
        q, k, v = (torch.randn(b, l, h, d, device="cuda", dtype=torch.bfloat16) * torch.randint(1, 5, (1,)).item() for _ in range(3))
        t = time_graph(lambda: sage.quantize_qkv(q, k, v))
        t_fwd = fwd_prepass_span_us(sage, q, k, v)
        print(
            f"{str(shape):>20} floor {floor_us(*shape):7.1f} us | quantize_qkv {t:7.1f} us"
            f" | fwd's pre-pass ({sage.attention_kernel_name('cuda')}) {t_fwd:7.1f} us, K/V floor {floor_us(*shape, tensors=2):7.1f} us",
            flush=True,
        )


if __name__ == "__main__":
    main()
