#!/usr/bin/env bash
# Build compile-time variants of the Hopper kernel side by side and time each on a few
# workloads (kernel alone and fwd). Each argument is one variant's nvcc defines, e.g.
#   bash scripts/sm90_variants.sh "" "-DSAGE_SM90_DIAG_NO_COPY=1"
# (default: the plain build only). Diagnostic variants give wrong results: timing only.
# SAGE_ATTENTION_FORCE_KERNEL=sm90_wide / sm90_narrow in the environment pins the tiling.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh >/dev/null
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("")
for i in "${!variants[@]}"; do
  SAGE_EXTRA_NVCC_FLAGS="${variants[$i]}" python3 scripts/build_local.py --out /tmp/sage_variant_$i --jobs 4 >/tmp/sage_variant_$i.log 2>&1 &
done
wait
for i in "${!variants[@]}"; do
  echo "== ${variants[$i]}"
  PYTHONUNBUFFERED=1 python3 benchmarks/run_side_by_side.py --build-dir /tmp/sage_variant_$i ${WORKLOADS:---workload flux_L128 --workload large_b4h32_s4096 --workload causal_b4h32_s4096} --out /tmp/sage_variant_res_$i 2>&1 | grep -E "^[A-Za-z0-9_]+: fwd"
done
