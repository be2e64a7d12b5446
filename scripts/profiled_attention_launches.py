#!/usr/bin/env python3
"""The workload the Nsight Compute scripts profile (ncu_vs_fa3.sh, ncu_stalls_by_sass.sh): our
attention kernel alone (attention_quantized on quantize_qkv's output), or with --fwd as fwd runs it
(for the narrow tiling, the instantiation that quantizes Q itself), head_dim 128, bf16 `randn * randint(1, 5)` inputs,
five launches from the local build (the scripts skip the first three).

    python3 scripts/profiled_attention_launches.py B,L,H [--causal] [--fwd]
"""

import argparse
import pathlib

import kernels
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shape", help="B,L,H (head_dim 128)")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--fwd", action="store_true", help="launch fwd (pre-pass + attention) instead")
    args = ap.parse_args()
    b, l, h = (int(v) for v in args.shape.split(","))
    k = kernels.get_local_kernel(pathlib.Path(__file__).resolve().parent.parent / "build")
    x = [torch.randn(b, l, h, 128, device="cuda", dtype=torch.bfloat16)
         * torch.randint(1, 5, (b, l, h, 128), device="cuda") for _ in range(3)]
    z = k.quantize_qkv(*x)
    for _ in range(5):
        if args.fwd:
            k.fwd(*x, is_causal=args.causal)
        else:
            k.attention_quantized(z, kv_len=l, head_dim=128, is_causal=args.causal, out_dtype=torch.bfloat16)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
