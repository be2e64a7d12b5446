#!/usr/bin/env bash
# Build the Hopper kernel's compile-time variants side by side and time each on a few
# workloads (kernel alone and fwd): SAGE_SM90_PINGPONG x SAGE_SM90_STAGES.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh >/dev/null
for v in "1 3" "0 3" "1 2" "0 2"; do
  set -- $v
  SAGE_EXTRA_NVCC_FLAGS="-DSAGE_SM90_PINGPONG=$1 -DSAGE_SM90_STAGES=$2" python3 scripts/build_local.py --out /tmp/sage_v_$1_$2 --jobs 4 >/tmp/build_$1_$2.log 2>&1 &
done
wait
for v in "1 3" "0 3" "1 2" "0 2"; do
  set -- $v
  echo "== pingpong=$1 stages=$2"
  PYTHONUNBUFFERED=1 python3 benchmarks/run_side_by_side.py --build-dir /tmp/sage_v_$1_$2 --workload flux_L128 --workload large_b4h32_s4096 --workload causal_b4h32_s4096 --out /tmp/res_$1_$2 2>&1 | grep -E "^(flux|large|causal)"
done
