#!/usr/bin/env python3
"""Do the co-resident CTAs of an SM run their softmax phases at the same time? (diagnostic)

Needs a build with -DSAGE_SM90_DIAG_TRACE=1 (rows 16-31 of every CTA's O are overwritten by a
trace, so only the timing is meaningful):
    SAGE_EXTRA_NVCC_FLAGS=-DSAGE_SM90_DIAG_TRACE=1 python scripts/build_local.py --out /tmp/sage_trace/build
    python scripts/sm90_phase_trace.py --build-dir /tmp/sage_trace [--shape 4,4096,32,128]
Warp 1 of each narrow CTA records its SM and the SM clock at each phase boundary of every tile
(wait for K/V, Q·Kᵀ, softmax, rescale + P·V). Per SM, over the time when its CTAs overlap, this
prints how the time splits by the number of CTAs in their softmax at once, next to the split
that independent CTAs would give (a binomial with each CTA's share of softmax time): aligned
phases pile up at "all in softmax" and "none in softmax".
"""
import argparse
import collections
import os
import pathlib

import torch

PHASES = 5  # words per tile: tile start, K/V ready, Q·Kᵀ done, softmax done, P·V done


def traces(out, seq, causal, rows=64):
    """Per CTA: (smid, entry clock, [per tile: 5 clock words], end clock) from O rows 16-31 of each 64-row
    block (q_len == kv_len; the words past the CTA's tiles are whatever O's memory held)."""
    b, _, h, _ = out.shape
    result = []
    for bi in range(b):
        for hi in range(h):
            for r0 in range(0, seq - 31, rows):
                words = out[bi, r0 + 16 : r0 + 32, hi, :].contiguous().view(torch.int32).flatten().tolist()
                smid, start = words[0] & 0xFFFFFFFF, words[1] & 0xFFFFFFFF
                stamps = [w & 0xFFFFFFFF for w in words[2:]]
                n_tiles = -(-(r0 + rows if causal else seq) // 128)
                n_tiles = min(n_tiles, len(stamps) // PHASES)
                tiles = [stamps[PHASES * t : PHASES * (t + 1)] for t in range(n_tiles)]
                end = stamps[PHASES * n_tiles] if PHASES * n_tiles < len(stamps) else None
                result.append((smid, start, tiles, end))
    return result


def unwrap(x, ref):
    d = (x - ref) & 0xFFFFFFFF
    return d if d < 2**31 else d - 2**32


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--shape", default="4,4096,32,128", help="B,L,H,D")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--debug", action="store_true", help="print the first traces and a sanity check")
    args = ap.parse_args()
    os.environ["SAGE_ATTENTION_FORCE_KERNEL"] = "sm90_narrow"
    import kernels

    sage = kernels.get_local_kernel(pathlib.Path(args.build_dir))
    b, seq, h, d = (int(x) for x in args.shape.split(","))
    q, k, v = (torch.randn(b, seq, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    for _ in range(3):
        out, _ = sage.fwd(q, k, v, is_causal=args.causal)
    torch.cuda.synchronize()
    by_sm = collections.defaultdict(list)
    all_traces = traces(out, seq, args.causal)
    if args.debug:
        for smid, start, tiles, _ in all_traces[:2]:
            print("smid", smid, "start", start, "tiles", len(tiles))
            for tile in tiles[:4]:
                print("  ", [unwrap(x, start) for x in tile])
        bad = sum(1 for _, s0, tiles, _ in all_traces for tile in tiles
                  if any(unwrap(tile[i + 1], s0) < unwrap(tile[i], s0) for i in range(PHASES - 1)))
        print("tiles with a non-increasing stamp:", bad, "of", sum(len(t) for _, _, t, _ in all_traces))
    # A CTA's slot time outside its loop: kernel entry to its first K/V tile ready (launch, barriers,
    # Q, the first copies) and its last P·V to the end of its epilogue.
    head = tail = life = 0
    for smid, start, tiles, end in all_traces:
        if tiles and end is not None:
            head += unwrap(tiles[0][1], start)
            tail += unwrap(end, tiles[-1][4])
            life += unwrap(end, start)
    if life:
        print(f"slot time outside the loop: entry -> first tile ready {100 * head / life:.1f}%, "
              f"last P·V -> epilogue end {100 * tail / life:.1f}% (mean CTA life {life / len(all_traces):.0f} cycles)")
    # The CTAs of each SM (indices into all_traces) and the SM's clock reference: its first entry.
    ctas_on_sm = collections.defaultdict(list)
    for i, (smid, _, _, _) in enumerate(all_traces):
        ctas_on_sm[smid].append(i)
    sm_ref = {smid: min(all_traces[i][1] for i in ctas) for smid, ctas in ctas_on_sm.items()}
    # The first CTAs of each SM start before the previous kernel (fwd: the pre-pass) ends and wait for
    # it (programmatic dependent launch), which inflates the mean head: the later CTAs' heads alone.
    early = set()
    for smid, ctas in ctas_on_sm.items():
        early.update(sorted(ctas, key=lambda i: unwrap(all_traces[i][1], sm_ref[smid]))[:3])
    later_heads = sorted(unwrap(tiles[0][1], start) for i, (_, start, tiles, _) in enumerate(all_traces)
                         if tiles and i not in early)
    if later_heads:
        print(f"entry -> first tile ready, CTAs after each SM's first three: median {later_heads[len(later_heads) // 2]} "
              f"cycles, mean {sum(later_heads) / len(later_heads):.0f} ({len(later_heads)} CTAs)")
    # Tiles that take the masked softmax (causal: each CTA's last tile, the diagonal's) against the others.
    if args.causal:
        masked, plain = [], []
        for _, start, tiles, _ in all_traces:
            for i, tile in enumerate(tiles):
                t = [unwrap(x, start) for x in tile]
                (masked if i == len(tiles) - 1 else plain).append([t[j + 1] - t[j] for j in range(PHASES - 1)])
        for name, rows in (("unmasked tiles", plain), ("masked (last) tiles", masked)):
            if rows:
                mean = [sum(r[j] for r in rows) / len(rows) for j in range(PHASES - 1)]
                print(f"{name}: {len(rows)}, mean cycles: wait {mean[0]:.0f}, Q·Kᵀ {mean[1]:.0f}, "
                      f"softmax {mean[2]:.0f}, P·V {mean[3]:.0f}, total {sum(mean):.0f}")
    # Per SM: the CTA slots' occupancy between the SM's first entry and last end (gaps between one
    # CTA's end and the next one's entry, and the SM's idle slots before the kernel ends).
    occ_num = occ_den = 0.0
    for ctas in ctas_on_sm.values():
        ended = [all_traces[i] for i in ctas if all_traces[i][3] is not None]
        if ended:
            occ_num += sum(unwrap(end, start) for _, start, _, end in ended)
            ref = min(start for _, start, _, _ in ended)
            occ_den += 3 * max(unwrap(end, ref) for _, _, _, end in ended)
    if occ_den:
        print(f"CTA slot occupancy over each SM's span (3 slots): {100 * occ_num / occ_den:.1f}%")
    for smid, start, tiles, _ in all_traces:
        if tiles:
            by_sm[smid].append((start, tiles))
    hist = collections.Counter()  # number of CTAs in softmax -> cycles, when 3 CTAs are in their loops
    share_num = share_den = 0.0
    for smid, ctas in by_sm.items():
        ref = min(s for s, _ in ctas)
        events = []  # (time, +1/-1 loop, +1/-1 softmax)
        for _, tiles in ctas:
            t = [[unwrap(x, ref) for x in tile] for tile in tiles]
            events.append((t[0][0], 1, 0))
            events.append((t[-1][4], -1, 0))
            for tile in t:
                events.append((tile[2], 0, 1))
                events.append((tile[3], 0, -1))
                share_num += tile[3] - tile[2]
            share_den += t[-1][4] - t[0][0]
        events.sort()
        in_loop = in_soft = 0
        last = None
        for time, dl, ds in events:
            if last is not None and in_loop == 3:
                hist[min(in_soft, 3)] += time - last
            in_loop += dl
            in_soft += ds
            last = time
    total = sum(hist.values())
    p = share_num / share_den
    print(f"shape {args.shape}{' causal' if args.causal else ''}: {len(by_sm)} SMs traced; "
          f"a CTA spends {100 * p:.1f}% of its loop in the softmax")
    print("CTAs in softmax at once (time with 3 CTAs in their loops):  measured   independent")
    for n in range(4):
        expect = {0: (1 - p) ** 3, 1: 3 * p * (1 - p) ** 2, 2: 3 * p * p * (1 - p), 3: p**3}[n]
        print(f"  {n}                                                     {100 * hist[n] / max(total, 1):5.1f}%     {100 * expect:5.1f}%")


if __name__ == "__main__":
    main()
