#!/usr/bin/env python3
"""A/B of local builds in one process: how every kernel change in NOTES.md is judged.

    python benchmarks/compare_builds.py old=/path/to/checkout_a new=. [--workload large ...] [--rounds 6]
        [--shape 1,16384,32,128,causal,kv=8]

Each NAME=DIR loads DIR/build (scripts/build_local.py; builds of different sources, or of the same
sources with different SAGE_EXTRA_NVCC_FLAGS, get their own ops namespace, so they load side by
side). Per workload, on the same inputs (bf16 `randn * randint(1, 5)`):
  - accuracy of each build's fwd against fp32 SDPA, and whether its output and lse are bit-identical
    to the first build's (with the rel-L1 distance when they are not);
  - the median time of fwd (pre-pass included) and of the attention kernel alone (attention_quantized
    on quantize_qkv's output), CUDA events, measured in `--rounds` interleaved rounds (build A, build
    B, ..., then the same in reverse order, and so on), so clock and thermal drift spread over all
    builds alike (use an even number of rounds). Round-to-round spread is part of the output: a
    difference inside it is not a result.
Writes compare_builds.json (every round's medians) into --out.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_side_by_side import accuracy, fp32_reference, gen, load_workloads, time_ms  # noqa: E402

DEFAULT_WORKLOADS = ["flux_L128", "flux_L512", "hfb_L512", "causal_b2h32_s1024", "large_b4h32_s4096",
                     "causal_b4h32_s4096", "d64_b4h32_s2048"]


def load_builds(specs):
    """NAME=DIR[@PIN] -> {NAME: (module, PIN or None)}. One DIR may appear under several pins."""
    import kernels

    builds, loaded = {}, {}
    for spec in specs:
        name, _, path = spec.partition("=")
        path, _, pin = path.partition("@")
        if not path:
            sys.exit(f"compare_builds: expected NAME=DIR[@PIN], got {spec!r}")
        if path not in loaded:
            loaded[path] = kernels.get_local_kernel(Path(path) / "build")
        builds[name] = (loaded[path], pin or None)
    return builds


def pin_kernel(pin):
    """SAGE_ATTENTION_FORCE_KERNEL for the calls that follow (dispatch_by_arch.cu reads it per call)."""
    if pin:
        os.environ["SAGE_ATTENTION_FORCE_KERNEL"] = pin
    else:
        os.environ.pop("SAGE_ATTENTION_FORCE_KERNEL", None)


def round_order(names, r):
    """The builds' order in round r: odd rounds reverse it. When the GPU's clock drifts within a run
    (warming up, power capping: seen in session 23, ~20% over a few minutes), a fixed order charges
    the drift to the later builds; reversing every other round cancels it over an even number."""
    return list(names) if r % 2 == 0 else list(names)[::-1]


def compare(builds, w, rounds):
    b, l, h, d, causal = w["batch"], w["seqlen"], w["heads"], w["head_dim"], w["causal"]
    hkv = w.get("heads_kv", h)
    shapes = [(b, l, h, d), (b, l, hkv, d), (b, l, hkv, d)]
    input_sets = [tuple(gen(shapes[i], 100 * s + i) for i in range(3)) for s in range(2)]
    q, k, v = input_sets[0]
    # GQA: the fp32 reference sees each kv head repeated for its query heads.
    ref = fp32_reference(q, k.repeat_interleave(h // hkv, dim=2), v.repeat_interleave(h // hkv, dim=2), causal)
    names = list(builds)
    result = {"accuracy": {}, "fwd_ms": {n: [] for n in names}, "kernel_ms": {n: [] for n in names}}
    first = None
    quantized = {}
    for n, (m, pin) in builds.items():
        pin_kernel(pin)
        out, lse = m.fwd(q, k, v, is_causal=causal)
        acc = accuracy(out, ref)
        if first is None:
            first = (out, lse)
        acc["bit_identical_to_first"] = bool(torch.equal(out, first[0]) and torch.equal(lse, first[1]))
        acc["rel_l1_to_first"] = ((out.float() - first[0].float()).abs().sum() / first[0].float().abs().sum()).item()
        result["accuracy"][n] = acc
        quantized[n] = [(m.quantize_qkv(*s),) for s in input_sets]
    del ref
    target_ms = 40.0 if l < 20000 else 150.0
    for r in range(rounds):
        for n in round_order(names, r):
            m, pin = builds[n]
            pin_kernel(pin)
            fwd = lambda q, k, v, m=m: m.fwd(q, k, v, is_causal=causal)  # noqa: E731
            kernel = lambda z, m=m: m.attention_quantized(z, kv_len=l, head_dim=d, is_causal=causal,  # noqa: E731
                                                          out_dtype=torch.bfloat16)
            result["fwd_ms"][n].append(time_ms(fwd, input_sets, warmup=3, target_ms=target_ms)[0])
            result["kernel_ms"][n].append(time_ms(kernel, quantized[n], warmup=3, target_ms=target_ms)[0])
    pin_kernel(None)
    return result


def summary_line(name, result):
    parts = [name]
    for n, acc in result["accuracy"].items():
        f, kk = result["fwd_ms"][n], result["kernel_ms"][n]
        same = "bit-identical" if acc["bit_identical_to_first"] else f"rel-L1 to first {acc['rel_l1_to_first']:.1e}"
        parts.append(f"{n}: fwd {statistics.median(f) * 1e3:.1f} us ({min(f) * 1e3:.1f}-{max(f) * 1e3:.1f}), "
                     f"kernel {statistics.median(kk) * 1e3:.1f} us ({min(kk) * 1e3:.1f}-{max(kk) * 1e3:.1f}), "
                     f"cos {acc['cos']:.5f}, rel-L1 {acc['rel_l1']:.4f}, {same}")
    return " | ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="NAME=DIR[@PIN]: DIR/build is loaded (the first is the reference); "
                    "@PIN runs it with SAGE_ATTENTION_FORCE_KERNEL=PIN (e.g. new=.@sm90_ws192)")
    ap.add_argument("--workload", action="append", help="workload name(s) from workloads.json")
    ap.add_argument("--shape", action="append", default=[], help="B,L,H,D[,causal][,kv=HKV] (kv=: GQA)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("compare_builds: needs a CUDA GPU")
    builds = load_builds(args.builds)
    names = args.workload or ([] if args.shape else DEFAULT_WORKLOADS)
    workloads = load_workloads(names or ["(shapes only)"], args.shape)  # a name no workload has: shapes alone
    results = {}
    for w in workloads:
        results[w["name"]] = compare(builds, w, args.rounds)
        print(summary_line(w["name"], results[w["name"]]), flush=True)
        torch.cuda.empty_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_builds.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
