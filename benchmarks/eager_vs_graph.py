"""The CPU-side cost of an eager `fwd` call: eager back-to-back calls against the same
call replayed from a CUDA graph (issue #3's target: within 5 µs at 1152 tokens).

Per shape, three figures (median over rounds of N calls, CUDA events around each round):
  eager ms/call    N eager `fwd` calls issued back to back
  graph ms/call    N replays of one captured `fwd` call
  host µs/call     wall time of issuing N eager calls, before synchronizing (the CPU cost)

    python benchmarks/eager_vs_graph.py [--build-dir build] [--shape 1,1152,24,128] [--json out.json]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def timed_rounds(step, calls, rounds):
    per_call = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            step()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) / calls)
    return statistics.median(per_call)


def host_cost_us(step, calls, rounds):
    costs = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        costs.append((time.perf_counter() - t0) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(costs)


def measure(sage, shape, calls=50, rounds=30):
    b, l, h, d = shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(b, l, h, d, device="cuda", dtype=torch.bfloat16, generator=gen)
        * torch.randint(1, 5, (1,), device="cuda", generator=gen).to(torch.bfloat16)
        for _ in range(3)
    )
    eager = lambda: sage.fwd(q, k, v)  # noqa: E731
    for _ in range(20):
        eager()
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            eager()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        g_out, g_lse = sage.fwd(q, k, v)
    graph.replay()
    torch.cuda.synchronize()
    ref_out, ref_lse = eager()
    same = bool(torch.equal(g_out, ref_out) and torch.equal(g_lse, ref_lse))
    result = {
        "shape": list(shape),
        "eager_ms_per_call": timed_rounds(eager, calls, rounds),
        "graph_ms_per_call": timed_rounds(graph.replay, calls, rounds),
        "host_us_per_eager_call": host_cost_us(eager, calls, rounds),
        "graph_output_equals_eager": same,
    }
    result["eager_minus_graph_us"] = (result["eager_ms_per_call"] - result["graph_ms_per_call"]) * 1e3
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--shape", action="append", default=[], help="B,L,H,D (default: Flux 1152 and 4608 tokens)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import kernels

    sage = kernels.get_local_kernel(Path(args.build_dir))
    shapes = [tuple(int(x) for x in s.split(",")) for s in args.shape] or [(1, 1152, 24, 128), (1, 4608, 24, 128)]
    results = []
    print(f"{'shape':>20} {'eager ms':>10} {'graph ms':>10} {'eager-graph us':>15} {'host us/call':>13}  graph==eager")
    for shape in shapes:
        r = measure(sage, shape)
        results.append(r)
        print(
            f"{str(shape):>20} {r['eager_ms_per_call']:10.4f} {r['graph_ms_per_call']:10.4f} "
            f"{r['eager_minus_graph_us']:15.2f} {r['host_us_per_eager_call']:13.2f}  {r['graph_output_equals_eager']}"
        )
    if args.json:
        env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
        Path(args.json).write_text(json.dumps({"env": env, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
