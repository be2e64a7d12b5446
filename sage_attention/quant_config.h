// The quantization recipe shared by the pre-pass and every attention kernel.
// These constants define the algorithm (the CPU emulation in
// torch-ext/sage_attention/quant_config.py uses the same ones; a test checks).
#pragma once

namespace sage {

constexpr float kInt8Max = 127.0f;
constexpr float kFp8E4M3Max = 448.0f;
constexpr float kPFp8Scale = kFp8E4M3Max;  // P in [0,1] is scaled by this before FP8 rounding

constexpr int kKScaleBlock = 64;  // keys per K scale
constexpr int kKvTile = 128;      // keys per softmax step and per V scale (a power of two: type_utils.cuh)
constexpr int kQPad = 128;        // int8 Q rows are padded to a multiple of this (largest CTA tile)
constexpr int kKMeanChunk = 64;   // tokens per partial sum of the K mean
constexpr int kKMeanRun = 8;      // tokens one thread sums before the runs of a chunk are combined

constexpr double kLog2e = 1.4426950408889634;
constexpr float kLn2 = 0.6931471805599453f;

constexpr int kMaxHeadDim = 128;

// Transposed FP8 V stores the keys of each group of 32 in the order a tensor-core
// thread holds P after Q·Kᵀ (see V_KEY_ORDER in quant_config.py): position p holds
// key v_key_at(p).
__host__ __device__ constexpr int v_key_at(int p) {
  return 16 * (p / 16) + ((p % 4) < 2 ? 2 * ((p % 16) / 4) + (p % 4) : 8 + 2 * ((p % 16) / 4) + (p % 4) - 2);
}

__host__ __device__ constexpr int padded_head_dim(int head_dim) { return head_dim <= 64 ? 64 : 128; }
__host__ __device__ constexpr long long round_up(long long x, long long m) { return (x + m - 1) / m * m; }
__host__ __device__ constexpr long long ceil_div(long long x, long long m) { return (x + m - 1) / m; }

}  // namespace sage
