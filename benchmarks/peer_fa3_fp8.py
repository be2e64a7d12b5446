#!/usr/bin/env python3
"""FlashAttention-3's FP8 forward kernel beside ours, kernel alone, in one process.

    python benchmarks/peer_fa3_fp8.py --fa3-lib .peer/libfa3_fp8_timer.so [--fa3-lib n128=DIR/lib...so]
        --build . [--workload large_b4h32_s4096 ...] [--rounds 3] [--out DIR]

FA3 (Dao-AILab/flash-attention, hopper/) is the warp-specialized Hopper design #4 points to: a
producer warp feeding two consumer warpgroups through TMA and mbarriers, 128 x 224 tiles at head_dim
128 in FP8. It is built outside this repository (benchmarks/peers/build_fa3_fp8_timer.sh) into a
small library that times its kernel on e4m3 inputs (randn * randint(1, 5), per-tensor descale 1)
with CUDA events, calls queued back to back. Our side is `attention_quantized` on `quantize_qkv`'s
output (the kernel alone, as the full benchmark measures it) and `fwd`, with the same timer style
(run_side_by_side.time_ms). Rounds are interleaved (FA3, ours, FA3, ...), so drift spreads over
both. FA3's FP8 path is per-tensor scaled with no K smoothing: a speed reference, not an accuracy
peer (its own correctness check, against an fp32 reference of its e4m3 inputs, prints first).

Head_dim 128 workloads only (the library holds FA3's hdim128 e4m3 instantiation). Several libraries
(NAME=PATH; variants of FA3's tile_size.h, say) are timed side by side, the first named "fa3" by
default.
"""

import argparse
import ctypes
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_side_by_side import environment, floors_us, gen, load_workloads, time_ms  # noqa: E402


def tops(w, ms):
    return floors_us(w)["ops"] / (ms * 1e-3) / 1e12


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fa3-lib", action="append", required=True,
                    help="[NAME=]libfa3_fp8_timer.so from benchmarks/peers/build_fa3_fp8_timer.sh (repeatable)")
    ap.add_argument("--build", default=".", help="checkout whose build/ holds our extension (scripts/build_local.py)")
    ap.add_argument("--workload", action="append", help="workload name (default: every head_dim 128 MHA workload)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import kernels

    sage = kernels.get_local_kernel(Path(args.build) / "build")
    peers = {}
    for i, spec in enumerate(args.fa3_lib):
        name, _, path = spec.rpartition("=")
        lib = ctypes.CDLL(str(Path(path).resolve()))
        lib.fa3_fp8_median_ms.restype = ctypes.c_double
        lib.fa3_fp8_median_ms.argtypes = [ctypes.c_int] * 4 + [ctypes.c_float, ctypes.c_int]
        if i == 0:
            lib.fa3_fp8_check()
        peers[name or ("fa3" if i == 0 else f"fa3_{i}")] = lib

    wl = [w for w in load_workloads(args.workload) if w["head_dim"] == 128 and w.get("heads_kv", w["heads"]) == w["heads"]]
    results = []
    for w in wl:
        b, l, h, d, causal = w["batch"], w["seqlen"], w["heads"], w["head_dim"], w["causal"]
        input_sets = [tuple(gen((b, l, h, d), 100 * s + i) for i in range(3)) for s in range(2)]
        quantized = [(sage.quantize_qkv(*s),) for s in input_sets]
        target_ms = 40.0 if l < 20000 else 150.0
        peer_ms, kernel_ms, fwd_ms = {n: [] for n in peers}, [], []
        for r in range(args.rounds):
            for n, lib in peers.items():
                peer_ms[n].append(lib.fa3_fp8_median_ms(b, l, h, int(causal), target_ms, r))
            kernel = lambda z: sage.attention_quantized(z, kv_len=l, head_dim=d, is_causal=causal,  # noqa: E731
                                                        out_dtype=torch.bfloat16)
            kernel_ms.append(time_ms(kernel, quantized, warmup=3, target_ms=target_ms)[0])
            fwd_ms.append(time_ms(lambda q, k, v: sage.fwd(q, k, v, is_causal=causal), input_sets,
                                  warmup=3, target_ms=target_ms)[0])
        k, fw = statistics.median(kernel_ms), statistics.median(fwd_ms)
        row = {"workload": w["name"], "kernel_ms": kernel_ms, "fwd_ms": fwd_ms, "kernel_tops": tops(w, k), "peers": {}}
        line = [f"{w['name']:<20} ours kernel {k:8.4f} ms ({tops(w, k):4.0f} TOPS) [{min(kernel_ms):.4f}-{max(kernel_ms):.4f}]"
                f" fwd {fw:8.4f}"]
        for n, ms in peer_ms.items():
            f = statistics.median(ms)
            row["peers"][n] = {"ms": ms, "tops": tops(w, f), "over_kernel": f / k, "over_fwd": f / fw}
            line.append(f"{n} {f:8.4f} ({tops(w, f):4.0f}) [{min(ms):.4f}-{max(ms):.4f}] {f / k:.3f}x")
        results.append(row)
        print(" | ".join(line), flush=True)
        del input_sets, quantized
        torch.cuda.empty_cache()

    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "peer_fa3_fp8.json").write_text(json.dumps({"env": environment(), "rounds": args.rounds,
                                                           "results": results}, indent=1))


if __name__ == "__main__":
    main()
