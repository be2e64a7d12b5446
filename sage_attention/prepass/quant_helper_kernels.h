// Launchers of the kernels behind the SageAttention-compatible quant helpers
// (quant_helper_kernels.cu); parameter blocks passed by value, 64-bit offsets.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../params.h"

namespace sage {

constexpr float kHelperAmaxFloor = 1e-7f;  // SageAttention's floor: an all-zero block gets scale 1e-7 / 127
constexpr int kChannelAmaxRows = 512;      // tokens per CTA of the per-channel amax
constexpr int kFp8Block = 64;              // per_channel_fp8 pads the sequence to a multiple of this
// SageAttention's per_channel_fp8 token order: stored position p of a 16-token group holds
// token {0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15}[p]; this is its inverse
// (token -> position), as quant_config.py FP8_HELPER_TOKEN_ORDER states it for the emulation.
__device__ constexpr int kFp8TokenPosition[16] = {0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15};

// INT8 per block of rows: y = round((x - mean) * scale_mult * 127 / amax), scale = amax / 127.
struct Int8BlocksParams {
  StridedInput x;  // (B, L, H, D)
  int8_t* y;       // same logical shape, through strides
  int64_t y_stride_batch, y_stride_seq, y_stride_head;
  const float* mean;  // (B, H, D) fp32 or nullptr
  float scale_mult;
  float* scale;  // (B, H, n_slots)
  int batch, heads, head_dim, rows_per_slot;
  int64_t seq_len, n_slots;
};

struct SubMeanParams {
  StridedInput x;  // (B, L, H, D)
  __half* y;
  int64_t y_stride_batch, y_stride_seq, y_stride_head;
  const float* mean;  // (B, H, D) fp32, rounded to the input dtype before subtracting
  int batch, heads, head_dim;
  int64_t seq_len;
};

struct ChannelFp8Params {
  StridedInput x;      // (B, L, H, D)
  const float* mean;   // (B, H, D) fp32 or nullptr (no smoothing)
  unsigned int* amax_bits;  // (B, H, D) fp32 bits, zero-initialised: channel_amax output
  float scale_max;
  float* scale;             // (B, H, D): amax / scale_max, written by channel_fp8
  uint8_t* y;               // e4m3 bits: (.., channel, padded_len) through strides
  int64_t y_stride_batch, y_stride_head, y_stride_channel;
  int batch, heads, head_dim;
  int64_t seq_len, padded_len;
};

void launch_int8_blocks(const Int8BlocksParams& p, bool is_bf16, cudaStream_t stream);
void launch_sub_mean(const SubMeanParams& p, bool is_bf16, cudaStream_t stream);
void launch_channel_amax(const ChannelFp8Params& p, bool is_bf16, cudaStream_t stream);
void launch_channel_fp8(const ChannelFp8Params& p, bool is_bf16, cudaStream_t stream);

}  // namespace sage
