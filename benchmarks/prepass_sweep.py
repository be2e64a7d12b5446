#!/usr/bin/env python3
"""GPU time of the pre-pass alone (quantize_qkv replayed from a CUDA graph, so host cost is
excluded) against its memory floor (read bf16 Q, K, V once, write 8-bit Q, K, V once, at
3.0 TB/s), per shape.

    python benchmarks/prepass_sweep.py [--build-dir build]
"""
import argparse
import pathlib
import statistics

import torch

SHAPES = [(1, 1152, 24, 128), (1, 4608, 24, 128), (4, 4096, 32, 128), (1, 32760, 40, 128)]


def floor_us(b, l, h, d):
    return b * l * h * d * (3 * 2 + 3 * 1) / 3.0e12 * 1e6


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
        print(f"{str(shape):>20} floor {floor_us(*shape):7.1f} us | pre-pass {t:7.1f} us", flush=True)


if __name__ == "__main__":
    main()
