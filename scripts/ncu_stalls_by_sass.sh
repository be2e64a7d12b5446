#!/usr/bin/env bash
# Where do one kernel's warps wait? Nsight Compute's warp-state samples per SASS instruction for
# our kernel alone (attention_quantized on quantize_qkv's output), one launch, head_dim 128, or with
# SAGE_PROFILE_FWD=1 the attention kernel that fwd launches (for the narrow tiling, its in-kernel-Q
# instantiation):
#   [SAGE_ATTENTION_FORCE_KERNEL=sm90_ws192] [SAGE_PROFILE_FWD=1] bash scripts/ncu_stalls_by_sass.sh B,L,H OUT_DIR [causal]
# Writes OUT_DIR/stalls_<pin>_<B>x<L>x<H>.csv (one row per instruction: address, SASS, samples per
# stall reason) and the .ncu-rep beside it; summarize with scripts/summarize_sass_stalls.py.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="/tmp/sage_site${PYTHONPATH:+:$PYTHONPATH}"
IFS=, read -r B L H <<<"$1"
out_dir="$2"; causal="${3:+True}"; causal="${causal:-False}"
mkdir -p "$out_dir"
fwd="${SAGE_PROFILE_FWD:+--fwd}"
tag="${SAGE_ATTENTION_FORCE_KERNEL:-dispatched}_${B}x${L}x${H}$([ "$causal" = True ] && echo _causal)${fwd:+_fwd}"
ncu --kernel-name regex:attention_sm90 --launch-skip 3 --launch-count 1 \
  --section WarpStateStats --section SourceCounters --import-source no -f -o "$out_dir/stalls_$tag" \
  python3 scripts/profiled_attention_launches.py "$B,$L,$H" $([ "$causal" = True ] && echo --causal) $fwd > "$out_dir/stalls_$tag.log" 2>&1
ncu -i "$out_dir/stalls_$tag.ncu-rep" --page source --csv --print-source sass > "$out_dir/stalls_$tag.csv" 2>>"$out_dir/stalls_$tag.log"
echo "$out_dir/stalls_$tag.csv: $(wc -l < "$out_dir/stalls_$tag.csv") lines"
