#!/usr/bin/env bash
# Nsight Compute on the GPU machine: where the attention kernel and the pre-pass
# spend their cycles, on one fwd call of a given shape (default: large_b4h32_s4096).
#   bash scripts/ncu_attention.sh [B L H D]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-4} L=${2:-4096} H=${3:-32} D=${4:-128}
export PYTHONPATH="/tmp/sage_site${PYTHONPATH:+:$PYTHONPATH}"
ncu --launch-skip 8 --launch-count 4 \
  --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy \
  python3 -c "
import torch, kernels, pathlib
k = kernels.get_local_kernel(pathlib.Path('build'))
q, kk, v = (torch.randn($B, $L, $H, $D, device='cuda', dtype=torch.bfloat16) * 3 for _ in range(3))
for _ in range(3): k.fwd(q, kk, v)
torch.cuda.synchronize()
" 2>&1 | grep -E "^  [a-z_:]+.*\(|Duration|Throughput|Warp Cycles Per Issued|Issued Ipc|No Eligible|Active Warps Per|Achieved Occupancy|Registers Per|stalled|Stall|spends|One or More Eligible" | cut -c1-220
