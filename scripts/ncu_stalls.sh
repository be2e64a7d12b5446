#!/usr/bin/env bash
# Nsight Compute stall breakdown of the Hopper attention kernel on one fwd call.
#   [BUILD=build-dir] bash scripts/ncu_stalls.sh [B L H D]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-4} L=${2:-4096} H=${3:-32} D=${4:-128}
export PYTHONPATH="/tmp/sage_site${PYTHONPATH:+:$PYTHONPATH}"
ncu --kernel-name regex:attention_sm90 --launch-skip 2 --launch-count 1 \
  --metrics smsp__average_warp_latency_issue_stalled_barrier.ratio,smsp__average_warp_latency_issue_stalled_long_scoreboard.ratio,smsp__average_warp_latency_issue_stalled_short_scoreboard.ratio,smsp__average_warp_latency_issue_stalled_wait.ratio,smsp__average_warp_latency_issue_stalled_math_pipe_throttle.ratio,smsp__average_warp_latency_issue_stalled_mio_throttle.ratio,smsp__average_warp_latency_issue_stalled_dispatch_stall.ratio,smsp__average_warp_latency_issue_stalled_not_selected.ratio,smsp__average_warp_latency_issue_stalled_selected.ratio,smsp__average_warp_latency_issue_stalled_membar.ratio,smsp__average_warp_latency_issue_stalled_sleeping.ratio,smsp__average_warp_latency_issue_stalled_branch_resolving.ratio,smsp__average_warp_latency_issue_stalled_no_instruction.ratio,smsp__average_warp_latency_issue_stalled_lg_throttle.ratio,smsp__average_warp_latency_issue_stalled_tex_throttle.ratio,smsp__average_warp_latency_issue_stalled_drain.ratio,smsp__average_warp_latency_issue_stalled_misc.ratio,smsp__inst_executed.sum,smsp__cycles_elapsed.avg,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,sm__cycles_elapsed.avg.per_second,gpu__time_duration.sum \
  python3 -c "
import torch, kernels, pathlib
k = kernels.get_local_kernel(pathlib.Path('${BUILD:-build}'))
q, kk, v = (torch.randn($B, $L, $H, $D, device='cuda', dtype=torch.bfloat16) * 3 for _ in range(3))
for _ in range(4): k.fwd(q, kk, v)
torch.cuda.synchronize()
" 2>&1 | grep -E "smsp__|sm__" | cut -c1-160
