#!/usr/bin/env bash
# The two checks NOTES.md's plan asks for before any warp-specialized rewrite, in one GPU call
# (Hopper only, ~4 minutes):
#   1. SAGE_SM90_DIAG_WIDE_QK_FIRST: the wide loop waits for Q·Kᵀ(t) before the rescale and the
#      P·V(t-1) issue. Does the softmax start earlier, and is the loop faster (A/B)?
#   2. SAGE_SM90_DIAG_WIDE_NO_PV: the wide loop issues no P·V (wrong results): the softmax phase
#      with no register-sourced wgmma of its own warpgroup in flight.
# Prints the phase clocks (scripts/sm90_phase_clocks.py) of the wide loop as built today, with
# each switch, and of the narrow loop for reference; then an A/B of check 1 against today's
# wide loop (both forced to the wide tiling). Builds go to /tmp/sage_wide_checks/<name>/build.
#   bash scripts/sm90_wide_loop_checks.sh [B,L,H,D]      (default 4,4096,32,128)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh >/dev/null
shape="${1:-4,4096,32,128}"
root=/tmp/sage_wide_checks
declare -A flags=(
  [clocks]="-DSAGE_SM90_DIAG_CLOCKS=1"
  [clocks_qk_first]="-DSAGE_SM90_DIAG_CLOCKS=1 -DSAGE_SM90_DIAG_WIDE_QK_FIRST=1"
  [clocks_no_pv]="-DSAGE_SM90_DIAG_CLOCKS=1 -DSAGE_SM90_DIAG_WIDE_NO_PV=1"
  [plain]=""
  [qk_first]="-DSAGE_SM90_DIAG_WIDE_QK_FIRST=1"
)
for name in "${!flags[@]}"; do
  SAGE_EXTRA_NVCC_FLAGS="${flags[$name]}" python3 scripts/build_local.py --archs 9.0a --jobs 3 \
    --out "$root/$name/build" >"$root.$name.log" 2>&1 &
done
wait
for name in "${!flags[@]}"; do
  [ -d "$root/$name/build" ] && grep -q "compile done" "$root.$name.log" || { echo "build $name failed:"; tail -20 "$root.$name.log"; exit 1; }
done
for name in clocks clocks_qk_first clocks_no_pv; do
  echo "== wide loop, ${flags[$name]}"
  python3 scripts/sm90_phase_clocks.py --build-dir "$root/$name/build" --shape "$shape" --tiling wide
done
echo "== narrow loop, ${flags[clocks]}"
python3 scripts/sm90_phase_clocks.py --build-dir "$root/clocks/build" --shape "$shape" --tiling narrow
echo "== A/B, both forced to the wide tiling: today's loop (plain) against QK_FIRST"
SAGE_ATTENTION_FORCE_KERNEL=sm90_wide python3 benchmarks/compare_builds.py plain="$root/plain" qk_first="$root/qk_first" \
  --workload large_b4h32_s4096 --workload long_b1h24_s16384 --rounds 5 --out "${OUT:-/tmp}/wide_loop_checks"
