#!/usr/bin/env python3
"""table.md from peer_fa3_fp8.json (this directory), the `latest` full run and every full run's cuDNN times.

    python3 make_table.py > table.md      (run in this directory)

The 8-bit Q, K, V floor: an FP8 attention from bf16 tensors reads Q, K and V once (2 bytes per element)
and writes them once in 8 bits (1 byte), at the H100's ~3.0 TB/s copy bandwidth; a lower bound on
what it adds to FA3's kernel, which takes FP8 inputs.
"""
import glob
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
sys.path.insert(0, str(RESULTS.parent))
from run_side_by_side import COPY_BYTES_PER_S, load_workloads  # noqa: E402


def rows(path):
    d = json.load(open(path))
    for r in d["results"] if isinstance(d, dict) else d:
        name = r["workload"]["name"] if isinstance(r.get("workload"), dict) else r.get("name")
        yield name, r["rows"]


def main():
    workloads = {w["name"]: w for w in load_workloads()}
    fa3 = json.load(open(HERE / "peer_fa3_fp8.json"))["results"]
    latest = dict(rows(RESULTS / "latest" / "results.json"))
    full_runs = sorted(glob.glob(str(RESULTS / "*full*" / "results.json")))
    cudnn_runs = {}
    for f in full_runs:
        for name, rw in rows(f):
            cudnn_runs.setdefault(name, []).append(rw["SDPA cuDNN"]["ms"])
    print(f"| workload | ours kernel µs | FA3-FP8 kernel µs | ours / FA3 | 8-bit Q, K, V floor µs | FA3 + floor µs "
          f"| cuDNN µs: latest (range, {len(full_runs)} full runs) | #4's fwd target | needed fwd µs (latest cuDNN) "
          f"| FA3 + floor vs cuDNN: latest / slowest | ours fwd vs cuDNN (latest) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in fa3:
        name = r["workload"]
        w = workloads[name]
        elements = w["batch"] * w["seqlen"] * w["heads"] * w["head_dim"]
        floor_us = 3 * elements * 3 / COPY_BYTES_PER_S * 1e6
        ours = statistics.median(r["kernel_ms"]) * 1e3
        peer = statistics.median(r["peers"]["fa3"]["ms"]) * 1e3
        cudnn = latest[name]["SDPA cuDNN"]["ms"] * 1e3
        slow, fast = max(cudnn_runs[name]) * 1e3, min(cudnn_runs[name]) * 1e3
        fwd = latest[name]["sage fwd"]["ms"] * 1e3
        target = 1.2 if name.startswith("flux") else (1.5 if w["seqlen"] >= 4224 else None)  # #4's lines
        bound = peer + floor_us
        print(f"| {name} | {ours:.1f} | {peer:.1f} | {ours / peer:.3f} | {floor_us:.1f} | {bound:.1f} "
              f"| {cudnn:.1f} ({fast:.1f}-{slow:.1f}) | {f'≥ {target}x' if target else '—'} "
              f"| {f'{cudnn / target:.1f}' if target else '—'} | {cudnn / bound:.2f}x / {slow / bound:.2f}x | {cudnn / fwd:.2f}x |")


if __name__ == "__main__":
    main()
