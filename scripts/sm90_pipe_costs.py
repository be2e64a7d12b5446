#!/usr/bin/env python3
"""Throughput of the softmax's instruction kinds on one Hopper scheduler (sm_90a; needs CuPy).

Each kernel runs 8 independent chains per thread of one instruction kind (or a pair of kinds, to
see whether two share a pipe) with 1 or 4 warps per scheduler, one CTA per SM, and reads the SM
clock around the loop. Prints cycles per warp instruction per scheduler: 8 means a quarter-rate
pipe (MUFU), 2 the half-rate ALU pipe, 1 or less the FMA pipes. Results and what they imply for
the attention kernel's softmax: sage_attention/NOTES.md, session 13 outcome.
    python scripts/sm90_pipe_costs.py
"""
import sys

import cupy as cp
import numpy as np

SRC = r'''
#include <cuda_fp16.h>
extern "C" __global__ void k(float* out, long long* cyc, int iters, int seed) {
  float f[8];
  int x[8];
  unsigned u[8];
  for (int i = 0; i < 8; ++i) {
    f[i] = (threadIdx.x + i + seed) * 1e-3f;
    x[i] = threadIdx.x * 7 + i + seed;
    u[i] = x[i];
  }
  __syncwarp();
  long long t0 = clock64();
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#if OP == 0
      asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(f[i]));
#elif OP == 1
      { float y; asm volatile("cvt.rn.f32.s32 %0, %1;" : "=f"(y) : "r"(x[i])); x[i] = __float_as_int(y); }
#elif OP == 2
      { unsigned short y; asm volatile("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(y) : "f"(f[i]), "f"(f[(i+1)&7])); f[i] = __int_as_float(int(y) | 0x3f000000); }
#elif OP == 3
      asm volatile("max.s32 %0, %0, %1;" : "+r"(x[i]) : "r"(x[(i+3)&7]));
      asm volatile("max.s32 %0, %0, %1;" : "+r"(x[i]) : "r"(x[(i+5)&7]));
#elif OP == 4
      x[i] = __vimax3_s32(x[i], x[(i+3)&7], x[(i+5)&7]);
#elif OP == 5
      asm volatile("fma.rn.f32 %0, %0, %1, %2;" : "+f"(f[i]) : "f"(f[(i+1)&7]), "f"(f[(i+2)&7]));
#elif OP == 6
      asm volatile("add.f32 %0, %0, %1;" : "+f"(f[i]) : "f"(f[(i+1)&7]));
#elif OP == 7
      asm volatile("max.f32 %0, %0, %1;" : "+f"(f[i]) : "f"(f[(i+1)&7]));
#elif OP == 8
      asm volatile("mul.f32 %0, %0, %1;" : "+f"(f[i]) : "f"(f[(i+1)&7]));
#elif OP == 10
      asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(f[i]));
      { unsigned short y; asm volatile("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(y) : "f"(f[(i+2)&7]), "f"(f[(i+1)&7])); x[i] ^= int(y); }
#elif OP == 11
      asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(f[i]));
      { float y; asm volatile("cvt.rn.f32.s32 %0, %1;" : "=f"(y) : "r"(x[i])); x[i] = __float_as_int(y); }
#elif OP == 12
      { unsigned short y; asm volatile("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(y) : "f"(f[i]), "f"(f[(i+1)&7])); x[i] ^= int(y); }
      asm volatile("add.f32 %0, %0, %1;" : "+f"(f[i]) : "f"(f[(i+1)&7]));
#elif OP == 13
      { unsigned y; asm volatile("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(y) : "f"(f[i]), "f"(f[(i+1)&7])); x[i] ^= int(y); }
      asm volatile("add.f32 %0, %0, %1;" : "+f"(f[i]) : "f"(f[(i+1)&7]));
#elif OP == 14
      { unsigned short y; asm volatile("cvt.rn.satfinite.e4m3x2.f16x2 %0, %1;" : "=h"(y) : "r"(x[i])); x[i] = (x[i] << 1) ^ int(y); }
#elif OP == 15
      asm volatile("ex2.approx.f16x2 %0, %0;" : "+r"(u[i]));
#elif OP == 16
      { unsigned short y; asm volatile("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(y) : "f"(f[i]), "f"(f[(i+1)&7])); x[i] ^= int(y); }
      { float y; asm volatile("cvt.rn.f32.s32 %0, %1;" : "=f"(y) : "r"(x[(i+4)&7])); f[i] = y; }
#elif OP == 17
      x[i] = (x[i] ^ x[(i+1)&7]) & x[(i+2)&7];
#elif OP == 18
      { unsigned y; asm volatile("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(y) : "f"(f[i]), "f"(f[(i+1)&7])); x[i] ^= int(y); }
      asm volatile("add.f32 %0, %0, %1;" : "+f"(f[i]) : "f"(f[(i+1)&7]));
#elif OP == 9
      { int y = x[i] + 0x4B400000; x[i] = y ^ x[(i+1)&7]; }
#endif
    }}
  }
  long long t1 = clock64();
  float s = 0; for (int i = 0; i < 8; ++i) s += f[i] + x[i] + u[i];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
  if (threadIdx.x % 32 == 0) cyc[blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32] = t1 - t0;
}
'''

# OP number -> what one source operation issues (the SASS was checked with cuobjdump; 2-3 and 9
# fuse or pair as named; the F2FP tests need one LOP3 to keep the result live).
KINDS = {
    0: "EX2",
    1: "I2FP (cvt.rn.f32.s32)",
    2: "F2FP.E4M3 pack + LOP3 (chained)",  # each result feeds the next F2FP: latency, not rate
    3: "2x IMNMX (fused: VIMNMX3)",
    4: "VIMNMX3",
    5: "FFMA",
    6: "FADD",
    7: "FMNMX",
    8: "FMUL",
    9: "IADD + LOP3",
    10: "EX2 + F2FP.E4M3 + LOP3",
    11: "EX2 + I2FP",
    12: "F2FP.E4M3 + LOP3 + FADD",
    13: "F2FP.F16 pack + LOP3 + FADD",
    14: "F2FP.E4M3 from f16x2 + LOP3",
    15: "ex2.approx.f16x2",
    16: "F2FP.E4M3 + LOP3 + I2FP",
    17: "LOP3",
    18: "F2FP.BF16 pack + LOP3 + FADD",
}


def main():
    iters, sms = 2000, cp.cuda.Device().attributes["MultiProcessorCount"]
    for op, name in KINDS.items():
        fn = cp.RawModule(code=SRC, options=("-arch=sm_90a", f"-DOP={op}")).get_function("k")
        for warps_per_scheduler in (1, 4):
            threads = 128 * warps_per_scheduler
            out = cp.zeros(sms * threads, cp.float32)
            cyc = cp.zeros(sms * threads // 32, cp.int64)
            for _ in range(2):  # the first launch warms up
                fn((sms,), (threads,), (out, cyc, np.int32(iters), np.int32(1)))
            cp.cuda.runtime.deviceSynchronize()
            per_warp = float(cp.median(cyc.astype(cp.float64))) / (iters * 32)  # 32 ops per iteration
            print(f"{name:32s} {warps_per_scheduler} warp(s)/scheduler: {per_warp / warps_per_scheduler:5.2f} cycles per op")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
