#!/usr/bin/env bash
# Build compile-time variants of the Hopper kernel side by side (9.0a only) and A/B them in one
# process with benchmarks/compare_builds.py (interleaved rounds, CUDA events; the first variant is
# the reference). Each argument is one variant's nvcc defines, e.g.
#   bash scripts/sm90_variants.sh "" "-DSAGE_SM90_DIAG_NO_COPY=1"
# (default: the plain build only). Diagnostic variants may give wrong results: timing only
# (compare_builds prints each one's accuracy next to its times).
# Environment: WORKLOADS (compare_builds arguments; default three workloads), ROUNDS (default 5),
# SAGE_ATTENTION_FORCE_KERNEL=sm90_wide / sm90_narrow pins the tiling; results go to $OUT/variants.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh >/dev/null
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("")
root=/tmp/sage_variants
for i in "${!variants[@]}"; do
  SAGE_EXTRA_NVCC_FLAGS="${variants[$i]}" python3 scripts/build_local.py --archs 9.0a --jobs 4 \
    --out "$root/v$i/build" >"$root.v$i.log" 2>&1 &
done
wait
specs=()
for i in "${!variants[@]}"; do
  grep -q "compile done" "$root.v$i.log" || { echo "build v$i failed:"; tail -20 "$root.v$i.log"; exit 1; }
  echo "v$i: ${variants[$i]:-(plain)}"
  specs+=("v$i=$root/v$i")
done
python3 benchmarks/compare_builds.py "${specs[@]}" \
  ${WORKLOADS:---workload large_b4h32_s4096 --workload causal_b4h32_s4096 --workload long_b1h24_s16384} \
  --rounds "${ROUNDS:-5}" --out "${OUT:-/tmp}/variants"
