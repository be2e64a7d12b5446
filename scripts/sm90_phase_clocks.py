#!/usr/bin/env python3
"""Where a narrow-tiling warpgroup spends its cycles per 128-key tile (diagnostic).

Needs a build with -DSAGE_SM90_DIAG_CLOCKS=1 (its lse output is overwritten, so only the
timing is meaningful):
    SAGE_EXTRA_NVCC_FLAGS=-DSAGE_SM90_DIAG_CLOCKS=1 python scripts/build_local.py --out /tmp/sage_clocks
    python scripts/sm90_phase_clocks.py --build-dir /tmp/sage_clocks [--shape 4,4096,32,128]
Prints SM clock cycles per tile, averaged over CTAs, per loop phase (--tiling narrow: waiting
for the K/V tile, Q·Kᵀ issue to done, softmax, rescale + P·V issue to done; --tiling wide: the
overlapped loop's phases).
"""
import argparse
import os
import pathlib

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--shape", default="4,4096,32,128", help="B,L,H,D")
    ap.add_argument("--tiling", default="narrow", choices=["narrow", "wide"])
    args = ap.parse_args()
    os.environ["SAGE_ATTENTION_FORCE_KERNEL"] = "sm90_" + args.tiling
    import kernels

    sage = kernels.get_local_kernel(pathlib.Path(args.build_dir))
    b, seq, h, d = (int(x) for x in args.shape.split(","))
    q, k, v = (torch.randn(b, seq, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    for _ in range(3):
        _, lse = sage.fwd(q, k, v)
    torch.cuda.synchronize()
    rows = 64 if args.tiling == "narrow" else 128
    ctas = lse[:, :, : seq // rows * rows].reshape(b, h, seq // rows, rows)[..., :5].reshape(-1, 5).double()
    tiles = ctas[:, 4].sum()
    if args.tiling == "narrow":
        names = ["wait for K/V tile", "Q·Kᵀ issue -> done", "softmax", "rescale + P·V issue -> done"]
    else:  # steady-state iterations only (the first tile's Q·Kᵀ and softmax are not stamped)
        names = ["wait for K/V tile", "issue QK(t)+PV(t-1) -> QK done", "softmax(t)", "rest of P·V(t-1)"]
    per_tile = [(ctas[:, i].sum() / tiles).item() for i in range(4)]
    print(f"shape {args.shape}: {ctas.shape[0]} CTAs, {int(tiles.item())} tiles (warp 1 of each CTA)")
    for n, c in zip(names, per_tile):
        print(f"  {n:30s} {c:8.0f} cycles/tile")
    print(f"  {'total':30s} {sum(per_tile):8.0f} cycles/tile")


if __name__ == "__main__":
    main()
