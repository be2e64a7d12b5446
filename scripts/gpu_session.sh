#!/usr/bin/env bash
# One call on the GPU machine: tests (which build for the local arch), the sample,
# and a compute-sanitizer memcheck pass; logs and the stripped build go to $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/sage_out}"; mkdir -p "$OUT"
nvidia-smi -L
bash scripts/run_tests.sh "$@" 2>&1 | tee "$OUT/tests.log" | grep -v "^\[build_local\] compiled"
bash scripts/run_sample.sh 2>&1 | tee "$OUT/sample.log"
bash scripts/run_sample.sh --causal --seqlen 1000 2>&1 | tail -3 | tee -a "$OUT/sample.log"
export PYTHONPATH="/tmp/sage_site${PYTHONPATH:+:$PYTHONPATH}"
: > "$OUT/memcheck.log"
for tiling in sm90_wide sm90_narrow sm90_ws192; do  # on non-Hopper GPUs all run the portable kernel
SAGE_ATTENTION_FORCE_KERNEL=$tiling compute-sanitizer --tool memcheck --error-exitcode 9 python3 -c "
import torch, kernels, pathlib
k = kernels.get_local_kernel(pathlib.Path('build'))
for (lq, lk, h, hk, d, c) in [(77, 200, 4, 2, 96, True), (200, 77, 2, 1, 40, True), (130, 129, 2, 2, 128, False), (64, 1, 1, 1, 64, False), (1000, 1000, 2, 1, 128, True), (10000, 10000, 7, 7, 128, True), (3000, 20000, 14, 7, 128, True)]:
    q = torch.randn(1, lq, h, d, device='cuda', dtype=torch.bfloat16)
    kk = torch.randn(1, lk, hk, d, device='cuda', dtype=torch.bfloat16)
    o, l = k.fwd(q, kk, kk.clone(), is_causal=c)
torch.cuda.synchronize(); print('memcheck run done ($tiling)')
" 2>&1 | tail -4 | tee -a "$OUT/memcheck.log"
done
for d in build/torch*; do strip --strip-unneeded "$d"/*.so; tar czf "$OUT/$(basename "$d").tgz" "$d"; done
