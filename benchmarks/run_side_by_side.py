#!/usr/bin/env python3
"""Side-by-side attention benchmark: sage_attention against SDPA's backends (and the
official `sageattention` package when it is importable), one process, same inputs.

    python benchmarks/run_side_by_side.py                 # every workload of workloads.json
    python benchmarks/run_side_by_side.py --quick         # a small set, < 1 min of GPU time
    python benchmarks/run_side_by_side.py --shape 1,4096,24,128 --shape 2,1024,32,128,causal
    python benchmarks/run_side_by_side.py --render benchmarks/results/latest/results.json   # tables/plots again

Inputs: bf16 `randn * randint(1, 5)`, a fresh seed per tensor, (B, L, H, D) "NHD".
Timing: CUDA events around each call, warm-up first, median of many runs; when a
workload's inputs fit in L2 several input sets are rotated so the cache is not timed.
Accuracy: against fp32 SDPA on upcast inputs (cosine, rel-L1, max-abs, NaN/inf flag).
Writes results.json, results.md and PNG plots into --out (default benchmarks/results/).
"""

import argparse
import contextlib
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = [ROOT / "benchmarks" / "workloads.json", ROOT.parent / "shared" / "bench" / "workloads.json"]
QUICK = ["flux_L128", "hfb_L512", "causal_b2h32_s1024", "d64_b4h32_s2048", "large_b4h32_s4096"]

# H100 SXM rates for the roofline columns (see sage_attention/NOTES.md).
MMA8_TOPS = 1979e12
EXP2_PER_S = 16 * 132 * 1.98e9
COPY_BYTES_PER_S = 3.0e12
L2_BYTES = 50 * 1024 * 1024


def load_workloads(names=None, shapes=()):
    path = next((p for p in WORKLOADS if p.exists()), None)
    wl = json.loads(path.read_text())["workloads"] if path else []
    if names:
        wl = [w for w in wl if w["name"] in names]
    for s in shapes:  # B,L,H,D[,causal][,kv=HKV]
        parts = s.split(",")
        b, l, h, d = (int(x) for x in parts[:4])
        extra = parts[4:]
        causal = "causal" in extra
        hkv = next((int(x[3:]) for x in extra if x.startswith("kv=")), h)
        if any(x != "causal" and not x.startswith("kv=") for x in extra) or hkv < 1 or h % hkv:
            raise ValueError(f"shape {s!r}: expected B,L,H,D[,causal][,kv=HKV] with HKV dividing H")
        name = f"b{b}_s{l}_h{h}_d{d}{f'_kv{hkv}' if hkv != h else ''}{'_causal' if causal else ''}"
        wl.append({"name": name, "batch": b, "seqlen": l, "heads": h, "heads_kv": hkv, "head_dim": d,
                   "causal": causal})
    return wl


def gen(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * torch.randint(1, 5, shape, generator=g)).to(torch.bfloat16).cuda()


def time_ms(fn, input_sets, warmup=10, target_ms=200.0):
    """Median of per-call CUDA-event times. Calls are queued back to back (one sync per
    batch, as triton's do_bench does), so each includes what the GPU waits on the host
    for: an eager call's dispatch cost counts when it exceeds the GPU time."""
    for i in range(warmup):
        fn(*input_sets[i % len(input_sets)])
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for i in range(5):
        fn(*input_sets[i % len(input_sets)])
    b.record()
    b.synchronize()
    n = int(min(2000, max(30, target_ms / max(a.elapsed_time(b) / 5, 1e-3))))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        args = input_sets[i % len(input_sets)]
        starts[i].record()
        fn(*args)
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)), n


def accuracy(out, ref):
    o, r = out.float().flatten(), ref.flatten()
    finite = bool(torch.isfinite(o).all())
    cos = F.cosine_similarity(o, r, dim=0).item()
    rel = ((o - r).abs().sum() / r.abs().sum()).item()
    return {"cos": cos, "rel_l1": rel, "max_abs": (o - r).abs().max().item(), "finite": finite}


def sdpa_backend(backend):
    """The context that forces one SDPA backend; entered once around a whole measurement."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel({"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                        "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend])


def sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          is_causal=causal).transpose(1, 2)


def fp32_reference(q, k, v, causal):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        return F.scaled_dot_product_attention(q.float().transpose(1, 2), k.float().transpose(1, 2),
                                              v.float().transpose(1, 2), is_causal=causal).transpose(1, 2)


def implementations(sage):
    impls = {
        "sage fwd": lambda q, k, v, c: sage.fwd(q, k, v, is_causal=c)[0],
        "sage sageattn": lambda q, k, v, c: sage.sageattn(q, k, v, tensor_layout="NHD", is_causal=c),
        "SDPA flash": sdpa,
        "SDPA cuDNN": sdpa,
        "SDPA efficient": sdpa,
    }
    try:
        import sageattention  # the official package, when installed

        impls["official sageattn"] = lambda q, k, v, c: sageattention.sageattn(q, k, v, tensor_layout="NHD", is_causal=c)
    except ImportError:
        pass
    return impls


def floors_us(w):
    b, l, h, d, c = w["batch"], w["seqlen"], w["heads"], w["head_dim"], w["causal"]
    ops = 4 * b * h * l * l * d / (2 if c else 1)
    exps = b * h * l * l / (2 if c else 1)
    return {"mma_us": ops / MMA8_TOPS * 1e6, "exp_us": exps / EXP2_PER_S * 1e6,
            "memory_us": 4 * b * l * h * d * 2 / COPY_BYTES_PER_S * 1e6, "ops": ops}


def run_workload(sage, w):
    b, l, h, d, c = w["batch"], w["seqlen"], w["heads"], w["head_dim"], w["causal"]
    shape = (b, l, h, d)
    set_bytes = 3 * math.prod(shape) * 2
    n_sets = max(1, min(8, math.ceil(2 * L2_BYTES / set_bytes)))
    sets = [tuple(gen(shape, 1000 * s + i) for i in range(3)) + (c,) for s in range(n_sets)]
    q, k, v, _ = sets[0]
    ref = fp32_reference(q, k, v, c)
    fl = floors_us(w)
    rows = {}
    for name, fn in implementations(sage).items():
        ctx = sdpa_backend(name.split()[1].lower()) if name.startswith("SDPA") else contextlib.nullcontext()
        try:
            with ctx:
                out = fn(q, k, v, c)
                acc = accuracy(out, ref)
                ms, n = time_ms(fn, sets)
        except Exception as e:  # a backend that does not support this shape
            rows[name] = {"error": str(e).splitlines()[0][:200]}
            continue
        rows[name] = {"ms": ms, "runs": n, "tops": fl["ops"] / ms / 1e9, **acc}
    # Our pre-pass and attention kernel alone, on the same inputs.
    qz_sets = [(sage.quantize_qkv(*s[:3]),) for s in sets]
    ms_pre, n = time_ms(lambda q, k, v, c: sage.quantize_qkv(q, k, v), sets)
    rows["sage pre-pass alone"] = {"ms": ms_pre, "runs": n}
    kernel = lambda qz: sage.attention_quantized(qz, kv_len=l, head_dim=d, is_causal=c, out_dtype=torch.bfloat16)[0]
    acc = accuracy(kernel(qz_sets[0][0]), ref)
    ms_k, n = time_ms(kernel, qz_sets)
    rows["sage kernel alone"] = {"ms": ms_k, "runs": n, "tops": fl["ops"] / ms_k / 1e9, **acc}
    del sets, qz_sets, ref
    torch.cuda.empty_cache()
    return {"workload": w, "floors": fl, "rows": rows}


def profile_fwd(sage, w, calls=20):
    """GPU time per kernel of one eager `fwd` call (torch.profiler), to see where it goes."""
    from torch.profiler import ProfilerActivity, profile

    shape = (w["batch"], w["seqlen"], w["heads"], w["head_dim"])
    q, k, v = (gen(shape, 7 + i) for i in range(3))
    for _ in range(3):
        sage.fwd(q, k, v, is_causal=w["causal"])
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            sage.fwd(q, k, v, is_causal=w["causal"])
        torch.cuda.synchronize()
    rows = [(e.key, e.device_time_total / calls, e.count // calls) for e in prof.key_averages() if e.device_time_total > 0]
    print(f"profile of fwd on {w['name']} (us per call):")
    for name, us, n in sorted(rows, key=lambda r: -r[1]):
        print(f"  {us:9.1f}  x{n}  {name[:100]}")
    return rows


def environment():
    commit = os.environ.get("SAGE_COMMIT")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip() or "unknown"
        except OSError:
            commit = "unknown"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        driver = "unknown"
    return {"gpu": torch.cuda.get_device_name(), "driver": driver, "torch": torch.__version__,
            "cuda": torch.version.cuda, "commit": commit,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def markdown(env, results):
    lines = [f"GPU {env['gpu']} (driver {env['driver']}), torch {env['torch']} (CUDA {env['cuda']}), "
             f"commit {env['commit']}, {env['time']}. Times: median ms (CUDA events, warm, inputs rotated "
             "through L2); TOPS = 4·B·H·L²·D (halved causal) / time; accuracy vs fp32 SDPA; "
             "'fwd vs X' = X's time / fwd's time (> 1: fwd is faster). Pre-pass alone is the "
             "`quantize_qkv` call as a user makes it (host cost included).", ""]
    lines.append("| workload | sage fwd ms (TOPS) | sageattn ms | kernel alone ms (TOPS) | pre-pass ms | SDPA flash ms | "
                 "SDPA cuDNN ms | SDPA eff. ms | fwd vs cuDNN | fwd vs flash | fwd vs eff. | cos / rel-L1 / max-abs | "
                 "kernel vs floor |")
    lines.append("|" + "---|" * 13)
    for r in results:
        w, rows, fl = r["workload"], r["rows"], r["floors"]

        def ms(name):
            x = rows.get(name, {})
            return x.get("ms")

        def fmt(name, tops=False):
            x = rows.get(name, {})
            if "ms" not in x:
                return "n/a"
            return f"{x['ms']:.4f}" + (f" ({x['tops']:.0f})" if tops else "")

        fwd = ms("sage fwd")
        ratio = lambda peer: f"{ms(peer) / fwd:.2f}x" if fwd and ms(peer) else "n/a"
        a = rows.get("sage fwd", {})
        floor = max(fl["mma_us"], fl["exp_us"], fl["memory_us"]) / 1e3
        k = ms("sage kernel alone")
        lines.append(
            f"| {w['name']} | {fmt('sage fwd', True)} | {fmt('sage sageattn')} | {fmt('sage kernel alone', True)} | "
            f"{fmt('sage pre-pass alone')} | {fmt('SDPA flash')} | {fmt('SDPA cuDNN')} | {fmt('SDPA efficient')} | "
            f"{ratio('SDPA cuDNN')} | {ratio('SDPA flash')} | {ratio('SDPA efficient')} | "
            f"{a.get('cos', float('nan')):.5f} / {a.get('rel_l1', float('nan')):.4f} / {a.get('max_abs', float('nan')):.3f}"
            f"{'' if a.get('finite', True) else ' NaN/inf!'} | {k / floor if k else float('nan'):.1f}x |")
    if any("official sageattn" in r["rows"] for r in results):
        lines += ["", "| workload | official sageattn ms | sage fwd vs official |", "|---|---|---|"]
        for r in results:
            o, f = r["rows"].get("official sageattn", {}).get("ms"), r["rows"].get("sage fwd", {}).get("ms")
            if o and f:
                lines.append(f"| {r['workload']['name']} | {o:.4f} | {o / f:.2f}x |")
    lines += ["", "kernel vs floor: our attention kernel alone over max(8-bit MMA at 1979 TOPS, ex2 at 16/SM/clk, "
              "reading Q,K,V + writing O in bf16 at 3.0 TB/s).", "",
              "Roofline (µs): the floors per workload, what the kernel alone and the whole fwd measured.", "",
              "| workload | 8-bit MMA floor | ex2 floor | memory floor | kernel alone | pre-pass alone | fwd |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        fl, rows = r["floors"], r["rows"]
        us = lambda name: f"{rows[name]['ms'] * 1e3:.1f}" if "ms" in rows.get(name, {}) else "n/a"
        lines.append(f"| {r['workload']['name']} | {fl['mma_us']:.1f} | {fl['exp_us']:.1f} | {fl['memory_us']:.1f} | "
                     f"{us('sage kernel alone')} | {us('sage pre-pass alone')} | {us('sage fwd')} |")
    return "\n".join(lines) + "\n"


def plots(env, results, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available: no plots")
        return
    names = ["sage fwd", "sage kernel alone", "SDPA flash", "SDPA cuDNN", "official sageattn"]
    fig, ax = plt.subplots(figsize=(9, 5))
    for name in names:
        pts = sorted((r["workload"]["seqlen"], r["rows"][name]["tops"]) for r in results
                     if "tops" in r["rows"].get(name, {}) and r["workload"]["head_dim"] == 128 and not r["workload"]["causal"])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("sequence length (non-causal, head_dim 128)")
    ax.set_ylabel("TOPS (4·B·H·L²·D / time)")
    ax.set_title(f"{env['gpu']}, torch {env['torch']}, commit {env['commit']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "tops_vs_seqlen.png", dpi=120)
    fig, ax = plt.subplots(figsize=(7, 5))
    for name in ["sage fwd", "SDPA flash", "SDPA cuDNN", "official sageattn"]:
        pts = [(r["rows"][name]["cos"], r["rows"][name]["rel_l1"]) for r in results if "cos" in r["rows"].get(name, {})]
        if pts:
            ax.scatter([1 - p[0] for p in pts], [p[1] for p in pts], label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1 - cosine similarity vs fp32 SDPA")
    ax.set_ylabel("rel-L1 vs fp32 SDPA")
    ax.set_title("accuracy per workload")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=120)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--render":  # re-render results.md and plots from a results.json
        data = json.loads(Path(sys.argv[2]).read_text())
        out = Path(sys.argv[2]).parent
        (out / "results.md").write_text(markdown(data["env"], data["results"]))
        plots(data["env"], data["results"], out)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workload", action="append", help="workload name(s) from workloads.json")
    ap.add_argument("--shape", action="append", default=[], help="B,L,H,D[,causal] (MHA)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--profile", action="store_true", help="also print fwd's per-kernel GPU time per workload")
    ap.add_argument("--build-dir", default=str(ROOT / "build"), help="where the local build lives")
    args = ap.parse_args()
    if any(w.get("heads_kv", w["heads"]) != w["heads"] for w in load_workloads([], args.shape)):
        sys.exit("run_side_by_side: GQA shapes (kv=) are for benchmarks/compare_builds.py; the peers here take MHA")
    if not torch.cuda.is_available():
        sys.exit("run_side_by_side: needs a CUDA GPU")
    import kernels

    sage = kernels.get_local_kernel(Path(args.build_dir))
    names = QUICK if args.quick else args.workload
    wl = load_workloads(names, args.shape) if (names or not args.shape) else load_workloads([], args.shape)
    env = environment()
    print(f"{sage.__name__}: attention kernel {sage.attention_kernel_name('cuda')}; {env}", flush=True)
    results = []
    for w in wl:
        if args.profile:
            profile_fwd(sage, w)
        r = run_workload(sage, w)
        results.append(r)
        f = r["rows"]["sage fwd"]
        print(f"{w['name']}: fwd {f.get('ms', float('nan')):.4f} ms, kernel {r['rows']['sage kernel alone']['ms']:.4f} ms, "
              f"pre-pass {r['rows']['sage pre-pass alone']['ms']:.4f} ms, cuDNN {r['rows'].get('SDPA cuDNN', {}).get('ms', float('nan')):.4f} ms, "
              f"cos {f.get('cos', float('nan')):.5f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"env": env, "results": results}, indent=1) + "\n")
    md = markdown(env, results)
    (out / "results.md").write_text(md)
    plots(env, results, out)
    print(md)


if __name__ == "__main__":
    main()
