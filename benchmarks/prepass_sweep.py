#!/usr/bin/env python3
"""GPU time of the fused quantizer alone (quantize_qkv replayed from a CUDA graph, so host
cost is excluded), per shape, under the schedule knobs read from the environment when the
graph is captured (SAGE_PREPASS_LAG, ...). For tuning the pre-pass schedule.

    python benchmarks/prepass_sweep.py [--build-dir build] [--config LAG=3 ...]
"""
import argparse
import os
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
    ap.add_argument("--config", action="append", default=[], help="ENV=VALUE[,ENV=VALUE] (repeatable)")
    args = ap.parse_args()
    import kernels

    sage = kernels.get_local_kernel(pathlib.Path(args.build_dir))
    configs = [""] + args.config
    for shape in SHAPES:
        b, l, h, d = shape
        q, k, v = (torch.randn(b, l, h, d, device="cuda", dtype=torch.bfloat16) * torch.randint(1, 5, (1,)).item() for _ in range(3))
        line = [f"{str(shape):>20} floor {floor_us(*shape):7.1f} us"]
        for cfg in configs:
            env = dict(kv.split("=", 1) for kv in cfg.split(",") if kv)
            old = {key: os.environ.get(key) for key in env}
            os.environ.update(env)
            try:
                t = time_graph(lambda: sage.quantize_qkv(q, k, v))
            finally:
                for key, val in old.items():
                    if val is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = val
            line.append(f"{cfg or 'default'}: {t:7.1f}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
