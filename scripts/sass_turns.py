#!/usr/bin/env python3
"""What the ws192 consumers do inside their turns, read from the SASS: a check to run before any
GPU time is spent on a change to hopper/attention_sm90_ws.cu.

    python3 scripts/sass_turns.py ws.o            # an object or cubin: runs cuobjdump --dump-sass
    python3 scripts/sass_turns.py ws.sass         # a saved dump
    [--function bfloat16]                         # the kernel whose name contains this (default)

A turn starts at a consumer's `BAR.SYNC <id>, 0x100` (the ping-pong's named barrier over 256
threads). While one consumer holds the turn, the other waits for it. So every instruction between
that wait and the first wgmma delays the other consumer. Session 22 found a change that left the
loop's source alone but doubled that count and added local-memory reloads: kernel alone +4 to +12%.
Per turn the script prints:
- the instructions from the wait to the first GMMA, and how many of those are FMUL/PRMT (O's rescale,
  P's packing: they belong before the wait);
- the instructions to the next turn;
- the LDL/STL (spills) up to the next turn.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")


def instructions(sass: str, function: str):
    """The instruction texts (predicate included) of the first kernel whose name contains `function`."""
    out, inside = [], False
    for line in sass.splitlines():
        if "Function :" in line:
            if inside:
                break
            inside = function in line
            continue
        if inside:
            m = _OPCODE.search(line)
            if m:
                out.append(m.group(1))
    return out


def is_turn_wait(ins: str) -> bool:
    return "BAR.SYNC" in ins and ins.rstrip().endswith("0x100")


def turns(ins):
    """[(index, to_first_gmma, fmul_prmt_before_gmma, to_next_turn, spills)] for each turn wait."""
    waits = [i for i, x in enumerate(ins) if is_turn_wait(x)]
    rows = []
    for n, i in enumerate(waits):
        end = waits[n + 1] if n + 1 < len(waits) else len(ins)
        first = next((j for j in range(i, end) if "GMMA" in ins[j]), end)
        moved = sum(1 for x in ins[i:first] if re.search(r"\b(FMUL|PRMT)\b", x))
        spills = sum(1 for x in ins[i:end] if re.search(r"\b(LDL|STL)\b", x))
        rows.append((i, first - i, moved, end - i, spills))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="an object/cubin (needs cuobjdump on PATH) or a saved SASS dump")
    ap.add_argument("--function", default="bfloat16", help="part of the kernel's mangled name")
    args = ap.parse_args()
    path = Path(args.path)
    text = path.read_text(errors="replace") if path.suffix == ".sass" else None
    if text is None:
        if shutil.which("cuobjdump") is None:
            sys.exit("sass_turns: cuobjdump not on PATH (CUDA toolkit; or the nvidia-cuda-cuobjdump wheel, unzipped)")
        text = subprocess.run(["cuobjdump", "--dump-sass", str(path)], check=True, capture_output=True, text=True).stdout
    ins = instructions(text, args.function)
    if not ins:
        sys.exit(f"sass_turns: no kernel matching {args.function!r} in {path}")
    print(f"{len(ins)} instructions; turn waits:")
    for i, to_gmma, moved, length, spills in turns(ins):
        print(f"  at {i:6d}: {to_gmma:4d} to the first GMMA ({moved} FMUL/PRMT), {length:5d} to the next turn, {spills} LDL/STL")


if __name__ == "__main__":
    main()
