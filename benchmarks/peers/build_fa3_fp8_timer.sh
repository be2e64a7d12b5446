#!/usr/bin/env bash
# Builds FlashAttention-3's FP8 head_dim-128 forward (one instantiation file of an FA3 checkout) with
# our timer (fa3_fp8_timer.cu) into OUT_DIR/fa3_fp8_timer and OUT_DIR/libfa3_fp8_timer.so, sm_90a only.
# A peer for benchmarks/peer_fa3_fp8.py; nothing of FA3 enters this repository or its builds.
#
#   bash benchmarks/peers/build_fa3_fp8_timer.sh FA3_HOPPER_DIR CUTLASS_INCLUDE_DIR [OUT_DIR]
#
# FA3_HOPPER_DIR: hopper/ of a Dao-AILab/flash-attention checkout (measured: 0251105a).
# CUTLASS_INCLUDE_DIR: CUTLASS/CuTe headers, e.g. the nvidia-cutlass wheel's
# cutlass_library/source/include (measured: 4.2.0). About 2 minutes on 2 cores.
set -euo pipefail
FA3="${1:?FA3 hopper/ directory}"; CUTLASS="${2:?CUTLASS include directory}"; OUT="${3:-.peer}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
# FA3's own setup.py flags, and its FLASHATTENTION_DISABLE_* switches for every feature the timer does
# not call, so only the plain causal / non-causal kernels compile.
FLAGS=(-O3 -std=c++17 --use_fast_math --expt-relaxed-constexpr --expt-extended-lambda -Xcompiler -fPIC
       -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED -DCUTLASS_ENABLE_GDC_FOR_SM90 -DCUTLASS_DEBUG_TRACE_LEVEL=0 -DNDEBUG
       -DFLASHATTENTION_DISABLE_LOCAL -DFLASHATTENTION_DISABLE_VARLEN -DFLASHATTENTION_DISABLE_APPENDKV
       -DFLASHATTENTION_DISABLE_CLUSTER -DFLASHATTENTION_DISABLE_SOFTCAP -DFLASHATTENTION_DISABLE_PAGEDKV
       -DFLASHATTENTION_DISABLE_SPLIT -DFLASHATTENTION_DISABLE_PACKGQA -DFLASHATTENTION_DISABLE_SM8x
       -DFLASHATTENTION_DISABLE_BACKWARD -gencode arch=compute_90a,code=sm_90a -I"$FA3" -I"$CUTLASS")
nvcc "${FLAGS[@]}" -Xptxas -v -c "$FA3/instantiations/flash_fwd_hdim128_e4m3_sm90.cu" -o "$OUT/fa3_inst.o" \
  2> "$OUT/fa3_inst.ptxas.log"
nvcc "${FLAGS[@]}" -c "$HERE/fa3_fp8_timer.cu" -o "$OUT/fa3_fp8_timer.o"
nvcc -shared -gencode arch=compute_90a,code=sm_90a "$OUT/fa3_inst.o" "$OUT/fa3_fp8_timer.o" -o "$OUT/libfa3_fp8_timer.so"
nvcc -gencode arch=compute_90a,code=sm_90a "$OUT/fa3_inst.o" "$OUT/fa3_fp8_timer.o" -o "$OUT/fa3_fp8_timer"
grep -E "registers|spill" "$OUT/fa3_inst.ptxas.log" || true
echo "built $OUT/fa3_fp8_timer and $OUT/libfa3_fp8_timer.so"
