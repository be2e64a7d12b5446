#!/usr/bin/env python3
"""Run benchmarks/benchmark.py's Benchmark subclass the way `kernels benchmark ./` does
(fresh instance per workload, seed, setup_<w>, one benchmark_<w>, verify_<w>, warm-up,
then timed iterations with a device sync), for machines where the `kernels` CLI cannot
start (it imports `sigstore` at start-up). Prints mean/median ms per workload.

    python benchmarks/run_kernels_benchmark.py [--iterations 100] [--warmup 10] [--workload NAME ...]
"""

import argparse
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--workload", action="append")
    args = ap.parse_args()
    import kernels

    spec = importlib.util.spec_from_file_location("sage_benchmark", ROOT / "benchmarks" / "benchmark.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cls = mod.SageAttentionBenchmark
    kernel = kernels.get_local_kernel(ROOT / "build")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = [n[len("benchmark_"):] for n in dir(cls) if n.startswith("benchmark_")]
    if args.workload:
        names = [n for n in names if n in args.workload]
    print(f"{kernel.__name__} on {device}")
    for name in names:
        bench = cls()
        bench.kernel, bench.device = kernel, device
        if bench.seed is not None:
            torch.manual_seed(bench.seed)
            random.seed(bench.seed)
        getattr(bench, f"setup_{name}", bench.setup)()
        run = getattr(bench, f"benchmark_{name}")
        run()
        verify = getattr(bench, f"verify_{name}", None)
        if verify is not None:
            ref = verify()
            if not torch.allclose(bench.out, ref, atol=1e-2):
                sys.exit(f"verification failed for {name}")
        for _ in range(args.warmup):
            run()
        times = []
        for _ in range(args.iterations):
            torch.cuda.synchronize() if device == "cuda" else None
            t0 = time.perf_counter()
            run()
            torch.cuda.synchronize() if device == "cuda" else None
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"{name:24s} mean {statistics.mean(times):.4f} ms  median {statistics.median(times):.4f} ms  (verified)")
        del bench
        torch.cuda.empty_cache() if device == "cuda" else None


if __name__ == "__main__":
    main()
