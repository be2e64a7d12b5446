#!/usr/bin/env bash
# Nsight Compute, the same counters for our Hopper kernel alone (attention_quantized on
# quantize_qkv's output) and for FlashAttention-3's FP8 kernel (benchmarks/peers/, built into
# .peer/ and its variants), one launch each, per shape: where does FA3 save its time?
#   [TILINGS="sm90_narrow sm90_wide"] [FA3_LIBS=".peer .peer/n128"] bash scripts/ncu_vs_fa3.sh [B,L,H ...]
# (head_dim 128, non-causal; default shapes: flux_L320 and large; TILINGS pins our kernel's tiling
# with SAGE_ATTENTION_FORCE_KERNEL, default the dispatched one.)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="/tmp/sage_site${PYTHONPATH:+:$PYTHONPATH}"
SHAPES=("$@"); [ ${#SHAPES[@]} -gt 0 ] || SHAPES=(1,1344,24 4,4096,32)
METRICS=gpu__time_duration.sum,sm__cycles_elapsed.avg,smsp__inst_executed.sum,smsp__warps_active.avg.per_cycle_active,\
sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,\
sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,\
smsp__issue_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__block_size,launch__registers_per_thread,\
launch__occupancy_limit_registers,dram__bytes_read.sum,lts__t_sector_hit_rate.pct,\
smsp__average_warp_latency_issue_stalled_barrier.ratio,smsp__average_warp_latency_issue_stalled_long_scoreboard.ratio,\
smsp__average_warp_latency_issue_stalled_wait.ratio,smsp__average_warp_latency_issue_stalled_math_pipe_throttle.ratio,\
smsp__average_warp_latency_issue_stalled_dispatch_stall.ratio,smsp__average_warp_latency_issue_stalled_not_selected.ratio,\
smsp__average_warp_latency_issue_stalled_selected.ratio,smsp__average_warp_latency_issue_stalled_short_scoreboard.ratio,\
smsp__average_warp_latency_issue_stalled_sleeping.ratio,smsp__average_warp_latency_issue_stalled_mio_throttle.ratio
for shape in "${SHAPES[@]}"; do
  IFS=, read -r B L H <<<"$shape"
  for tiling in ${TILINGS:-dispatched}; do
  echo "=== ours ($tiling), attention_quantized ${B}x${L}x${H}x128"
  [ "$tiling" = dispatched ] && unset SAGE_ATTENTION_FORCE_KERNEL || export SAGE_ATTENTION_FORCE_KERNEL=$tiling
  ncu --kernel-name regex:attention_sm90 --launch-skip 3 --launch-count 1 --metrics "$METRICS" python3 scripts/profiled_attention_launches.py "$B,$L,$H" 2>&1 | grep -E "^\s+(gpu__|sm__|smsp__|launch__|dram__|lts__)" | sed 's/  */ /g'
  done
  unset SAGE_ATTENTION_FORCE_KERNEL
  for lib in ${FA3_LIBS:-.peer .peer/n128 .peer/n192}; do
    [ -x "$lib/fa3_fp8_timer" ] || continue
    echo "=== FA3 fp8 ($lib) ${B}x${L}x${H}x128"
    ncu --kernel-name regex:device_kernel --launch-skip 3 --launch-count 1 --metrics "$METRICS" \
      "$lib/fa3_fp8_timer" "$B,$L,$H,0" 2>&1 | grep -E "^\s+(gpu__|sm__|smsp__|launch__|dram__|lts__)" | sed 's/  */ /g'
  done
done
