#!/usr/bin/env python3
"""Where does a tile of the warp-specialized 192-key kernel spend its time beyond its steps? (diagnostic)

Needs a build with -DSAGE_WS_DIAG_TRACE=1 (the lse output is overwritten by clock stamps, so only the
timing is meaningful):
    SAGE_EXTRA_NVCC_FLAGS=-DSAGE_WS_DIAG_TRACE=1 python scripts/build_local.py --archs 9.0a --out /tmp/ws_trace/build
    python scripts/ws192_tile_trace.py --build-dir /tmp/ws_trace [--shape 4,4096,32,128]
With a -DSAGE_WS_DIAG_TRACE=2 build and --phases it prints instead the phases inside steady points
4-9 (the kernel stamps points 3-9 at seven places each, POINT_PHASES) and how the two consumers'
turns fall against each other.
Per tile, lane 0 of each consumer warpgroup stamps the SM clock at the tile's start, when its Q is
ready, at each issue point (after it passed the turn on, and at the point's end) and after the
epilogue (hopper/attention_sm90_ws.cu, SAGE_WS_DIAG_TRACE). Point 0 issues the tile's first Q·Kᵀ
only, points 1 .. n-1 a Q·Kᵀ and the previous step's P·V, point n the last P·V only. This prints, per
consumer, the median over tiles (each CTA's first tile apart) of every phase, the steady point, and
the tile's period against n steady points: the per-tile cost that the fit of session 22 put at ~4.9 µs.
"""
import argparse
import os
import pathlib
import statistics

import torch

# SM clock stamps are 32-bit: the difference x - ref across a wrap (sm90_phase_trace.py's helper).
from sm90_phase_trace import unwrap as since

TRACE_WORDS = 64
HEAD_POINTS = 14  # points 0-13 are recorded, then the last 13 (the kernel's point_word)
TAIL_POINTS = 13
EPILOGUE_PARTS = ("row sums and norms", "O rows staged", "proxy fence", "bulk stores issued", "lse stored")


# SAGE_WS_DIAG_TRACE=2: the stamps of points 3-9, seven words each from 3 + 7 (t - 3) (phase_word).
PHASE_POINTS = range(3, 10)
POINT_STAMPS = ("data ready", "turn taken", "turn passed", "Q·Kᵀ done", "softmax done", "P·V done", "end")
# The phase ending at each stamp (the first from the previous point's end).
POINT_PHASES = ("wait for the stage's data", "wait for the turn", "issue and pass the turn", "wait for Q·Kᵀ",
                "softmax", "wait for P·V(t-1)", "pack P, rescale O")


def phase_words(t):
    """Word indices of point t's seven stamps in a SAGE_WS_DIAG_TRACE=2 build."""
    return [3 + 7 * (t - 3) + j for j in range(len(POINT_STAMPS))]


def point_phases(w):
    """One consumer's tile (trace level 2): {point t: {phase: cycles}} for the points 4-9, each from the
    previous point's end."""
    out = {}
    for t in PHASE_POINTS[1:]:
        marks = [w[phase_words(t - 1)[-1]]] + [w[i] for i in phase_words(t)]
        out[t] = {name: since(b, a) for name, a, b in zip(POINT_PHASES, marks, marks[1:])}
        out[t]["point"] = since(marks[-1], marks[0])
    return out


def turn_offsets(w0, w1):
    """How the consumers' turns interleave (trace level 2, one tile, one SM's clock): per point t of
    4-8, consumer 1 takes turn t after consumer 0 passed it on, and consumer 0 takes turn t + 1 after
    consumer 1 passed turn t on. Cycles (a large value: the taker was late, not the giver)."""
    taken, passed = POINT_STAMPS.index("turn taken"), POINT_STAMPS.index("turn passed")
    out = {"consumer 1 takes after consumer 0 passed": [], "consumer 0 takes after consumer 1 passed": []}
    for t in PHASE_POINTS[1:-1]:
        out["consumer 1 takes after consumer 0 passed"].append(since(w1[phase_words(t)[taken]], w0[phase_words(t)[passed]]))
        out["consumer 0 takes after consumer 1 passed"].append(
            since(w0[phase_words(t + 1)[taken]], w1[phase_words(t)[passed]]))
    return out


def point_words(t, n_steps):
    """(turn passed, point end) word indices of point t, or None when the kernel does not record it."""
    tail0 = max(HEAD_POINTS, n_steps - (TAIL_POINTS - 1))
    if t < HEAD_POINTS:
        k = t
    elif t >= tail0:
        k = HEAD_POINTS + t - tail0
    else:
        return None
    return 3 + 2 * k, 4 + 2 * k


def decode(lse, q_len, rows=128):
    """{tile index: [words of consumer 0, words of consumer 1]} for tiles of `rows` whole rows."""
    b, h, _ = lse.shape
    q_blocks = -(-q_len // rows)
    words = lse.contiguous().view(torch.int32).cpu()
    tiles = {}
    for bi in range(b):
        for hi in range(h):
            for qb in range(q_len // rows):
                i = (bi * h + hi) * q_blocks + qb
                r0 = qb * rows
                tiles[i] = [[w & 0xFFFFFFFF for w in words[bi, hi, r0 + c * 64 : r0 + c * 64 + TRACE_WORDS].tolist()]
                            for c in range(2)]
    return tiles


def phases(w, n_steps):
    """One consumer's tile: {name: cycles} for its phases, relative to the tile's start."""
    out = {"Q ready": since(w[2], w[1])}
    prev_end = w[2]
    for t in range(n_steps + 1):
        pw = point_words(t, n_steps)
        if pw is None:
            prev_end = None
            continue
        passed, end = w[pw[0]], w[pw[1]]
        if prev_end is not None:
            out[f"point {t}"] = since(end, prev_end)
            out[f"point {t} to turn passed"] = since(passed, prev_end)
        prev_end = end
    out["epilogue"] = since(w[57], w[pw[1]])
    # Inside the epilogue: O normalised, rows staged, proxy fence, bulk stores issued, lse stored.
    marks = [w[pw[1]], w[58], w[59], w[60], w[61], w[57]]
    for name, a, b in zip(EPILOGUE_PARTS, marks, marks[1:]):
        out["epilogue: " + name] = since(b, a)
    out["point 0: Q·Kᵀ done"] = since(w[62], w[2])
    out["tile"] = since(w[57], w[1])
    # The steady point: the mean of the recorded points 3 .. n-3 (odd and even steps alternate in
    # length, so a mean over both, not a median).
    steady = [out[f"point {t}"] for t in range(3, n_steps - 2) if f"point {t}" in out]
    out["steady point"] = sum(steady) / len(steady) if steady else float("nan")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--shape", default="4,4096,32,128", help="B,L,H,D (q_len == kv_len)")
    ap.add_argument("--calls", type=int, default=5, help="fwd calls before the traced one")
    ap.add_argument("--phases", action="store_true", help="a SAGE_WS_DIAG_TRACE=2 build: the phases inside points")
    args = ap.parse_args()
    os.environ["SAGE_ATTENTION_FORCE_KERNEL"] = "sm90_ws192"
    import kernels

    sage = kernels.get_local_kernel(pathlib.Path(args.build_dir))
    b, seq, h, d = (int(x) for x in args.shape.split(","))
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(b, seq, h, d, device="cuda", dtype=torch.bfloat16, generator=gen)
               * torch.randint(1, 5, (1,), device="cuda", generator=gen) for _ in range(3))
    for _ in range(args.calls):
        sage.fwd(q, k, v, is_causal=False)
    # The kernel's own time (the profiler) converts cycles to µs: its longest CTA spans about all of it.
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            sage.fwd(q, k, v, is_causal=False)
        torch.cuda.synchronize()
    ws_us = [getattr(e, "device_time", None) or e.cuda_time for e in prof.events() if "attention_sm90_ws_kernel" in e.name]
    kernel_us = statistics.median(ws_us) if ws_us else None
    _, lse = sage.fwd(q, k, v, is_causal=False)
    torch.cuda.synchronize()

    n_steps = -(-seq // 192)
    tiles = decode(lse, seq)
    if args.phases:
        print_point_phases(args.shape, tiles, n_steps, kernel_us)
        return
    n_tiles = -(-seq // 128) * h * b
    grid = min(n_tiles, torch.cuda.get_device_properties(0).multi_processor_count)
    by_cta = {}
    for i, w in tiles.items():
        by_cta.setdefault(i % grid, []).append((i // grid, w))
    # Cycles per µs from the CTAs' spans (first tile's start to last epilogue's end).
    spans = []
    for cta, items in by_cta.items():
        items.sort()
        if items[0][0] == 0 and len(items) == -(-(n_tiles - cta) // grid):
            spans.append(since(items[-1][1][0][57], items[0][1][0][1]))
    mhz = max(spans) / kernel_us if spans and kernel_us else None
    print(f"shape {args.shape}: {n_tiles} tiles on {grid} CTAs, {n_steps} steps of 192 keys per tile; "
          + (f"kernel {kernel_us:.1f} µs" if kernel_us else "kernel time not found") + (f", ~{mhz:.0f} SM cycles per µs" if mhz else ""))

    for c in range(2):
        rows = {"first tile of a CTA": [], "later tiles": []}
        periods, gaps = [], []
        for items in by_cta.values():
            for j, (it, w) in enumerate(items):
                ph = phases(w[c], n_steps)
                rows["first tile of a CTA" if it == 0 else "later tiles"].append(ph)
                if j + 1 < len(items) and items[j + 1][0] == it + 1:
                    nxt = items[j + 1][1][c]
                    periods.append(since(nxt[1], w[c][1]))
                    gaps.append(since(nxt[1], w[c][57]))
        later = rows["later tiles"]
        if not later:
            continue
        med = {key: statistics.median(r[key] for r in later if key in r) for key in later[0]}
        steady = med["steady point"]
        print(f"\nconsumer {c}: medians over {len(later)} tiles that are not a CTA's first (cycles)")
        print(f"  Q ready after the tile's start: {med['Q ready']:.0f}")
        for t in (0, 1, 2, n_steps - 2, n_steps - 1, n_steps):
            key = f"point {t}"
            if key in med:
                print(f"  {key:>9}: {med[key]:6.0f}  (of it to the turn passed on: {med[key + ' to turn passed']:.0f})")
        print(f"  steady point (mean of points 3 .. n-3): {steady:.0f}")
        print(f"  first Q·Kᵀ done after Q ready: {med['point 0: Q·Kᵀ done']:.0f}")
        print(f"  epilogue: {med['epilogue']:.0f} (" +
              ", ".join(f"{name} {med['epilogue: ' + name]:.0f}" for name in EPILOGUE_PARTS) + ")")
        if periods:
            period, gap = statistics.median(periods), statistics.median(gaps)
            extra = period - n_steps * steady
            line = (f"  tile period (start to next start): {period:.0f} = {n_steps} x steady + {extra:.0f}; "
                    f"epilogue end to the next tile's start {gap:.0f} (two trace barriers included)")
            if mhz:
                line += f"; the extra is {extra / mhz:.2f} µs per tile"
            print(line)
        first = rows["first tile of a CTA"]
        if first:
            print(f"  a CTA's first tile: Q ready {statistics.median(r['Q ready'] for r in first):.0f}, "
                  f"tile {statistics.median(r['tile'] for r in first):.0f} (later: {med['tile']:.0f})")


def print_point_phases(shape, tiles, n_steps, kernel_us):
    """Medians over every traced tile of each phase of points 4-9 (trace level 2), per consumer."""
    if n_steps < 11:
        raise SystemExit(f"--phases needs tiles of at least 11 steps (points 3-9 steady); {shape} has {n_steps}")
    print(f"shape {shape}: {len(tiles)} tiles traced, {n_steps} steps of 192 keys per tile"
          + (f"; kernel {kernel_us:.1f} µs" if kernel_us else ""))
    for c in range(2):
        per_tile = [point_phases(w[c]) for w in tiles.values()]
        print(f"\nconsumer {c}: medians over tiles and points 4-9 (cycles)")
        for name in POINT_PHASES + ("point",):
            vals = [ph[t][name] for ph in per_tile for t in ph]
            by_point = "  ".join(f"{statistics.median(ph[t][name] for ph in per_tile):5.0f}" for t in PHASE_POINTS[1:])
            print(f"  {name:>26}: {statistics.median(vals):6.0f}   (points 4-9: {by_point})")
    offsets = [turn_offsets(w[0], w[1]) for w in tiles.values()]
    print("\nturns (medians over tiles and points 4-8, cycles):")
    for key in offsets[0]:
        print(f"  {key}: {statistics.median(v for o in offsets for v in o[key]):.0f}")


if __name__ == "__main__":
    main()
