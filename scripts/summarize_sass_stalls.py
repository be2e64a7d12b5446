#!/usr/bin/env python3
"""Summarize the per-instruction warp-state samples written by scripts/ncu_stalls_by_sass.sh.

    python3 scripts/summarize_sass_stalls.py stalls_sm90_ws192_4x4096x32.csv [--top 25] [--per-visit N]

Prints, for the kernel in the CSV (Nsight Compute's source page, SASS view):
- the instructions executed and the warp-state samples in all, and the mix of stall reasons;
- the code as runs of instructions with the same execution count (a loop body, a branch, the
  producer's wait loop ...), each with its share of the samples and its main stall reasons;
- the instructions with the most samples;
- with --per-visit N: the opcode mix of the instructions executed exactly N times (one loop
  body: e.g. the steady-state issue points of the warp-specialized kernel).
Addresses are printed relative to the kernel's first instruction.
"""

import argparse
import collections
import csv
import sys


def load(path):
    rows = list(csv.reader(open(path, newline="")))
    header_at = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    header = rows[header_at]
    col = {name: i for i, name in enumerate(header)}
    data = [r for r in rows[header_at + 1:] if len(r) == len(header) and r[0].startswith("0x")]
    if not data:
        sys.exit(f"{path}: no instruction rows")
    stall_cols = [n for n in header if n.startswith("stall_") and "Not Issued" not in n]
    base = int(data[0][col["Address"]], 16)
    out = []
    for r in data:
        out.append({
            "addr": int(r[col["Address"]], 16) - base,
            "sass": r[col["Source"]].strip(),
            "executed": int(r[col["Instructions Executed"]] or 0),
            "samples": int(r[col["Warp Stall Sampling (All Samples)"]] or 0),
            "stalls": {n[len("stall_"):]: int(r[col[n]] or 0) for n in stall_cols},
        })
    return out


def opcode(sass):
    words = sass.split()
    word = words[1] if words and words[0].startswith("@") and len(words) > 1 else (words[0] if words else "")
    return word.split(".")[0]


def top_stalls(counter, n=3):
    return ", ".join(f"{k} {v}" for k, v in counter.most_common(n) if v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--per-visit", type=int, default=0, help="opcode mix of the instructions executed N times")
    ap.add_argument("--min-share", type=float, default=0.2, help="runs below this %% of the samples are not listed")
    args = ap.parse_args()
    ins = load(args.csv)
    total_samples = sum(i["samples"] for i in ins) or 1
    mix = collections.Counter()
    for i in ins:
        mix.update(i["stalls"])
    print(f"{args.csv}: {sum(i['executed'] for i in ins)} instructions executed, {total_samples} samples")
    print("stall mix: " + ", ".join(f"{k} {100 * v / total_samples:.1f}%" for k, v in mix.most_common(12) if v))

    print("\nruns of equal execution count (start, end, executed each, share of samples, main stalls):")
    run, runs = [], []
    for i in ins:
        if run and i["executed"] != run[-1]["executed"]:
            runs.append(run)
            run = []
        run.append(i)
    runs.append(run)
    for run in runs:
        samples = sum(i["samples"] for i in run)
        if 100 * samples / total_samples < args.min_share:
            continue
        stalls = collections.Counter()
        for i in run:
            stalls.update(i["stalls"])
        print(f"  {run[0]['addr']:#08x}-{run[-1]['addr']:#08x}  x{run[0]['executed']:<9} "
              f"{100 * samples / total_samples:5.1f}%  {top_stalls(stalls)}")

    print(f"\nthe {args.top} instructions with the most samples:")
    for i in sorted(ins, key=lambda i: -i["samples"])[: args.top]:
        stalls = collections.Counter(i["stalls"])
        print(f"  {i['addr']:#08x} x{i['executed']:<9} {i['samples']:6d}  {i['sass'][:64]:64s} {top_stalls(stalls, 2)}")

    if args.per_visit:
        body = [i for i in ins if i["executed"] == args.per_visit]
        ops = collections.Counter(opcode(i["sass"]) for i in body)
        print(f"\ninstructions executed {args.per_visit} times: {len(body)}")
        print("  " + ", ".join(f"{k} {v}" for k, v in ops.most_common(30)))


if __name__ == "__main__":
    main()
