// Kernels behind the SageAttention-compatible quant helpers (torch-ext/sage_attention/
// quant_helpers.py: per_block_int8, per_warp_int8, sub_mean, per_channel_fp8). They use
// the pre-pass's building blocks (type_utils.cuh: packed 8-channel loads, the IEEE
// inverse scale, round-half-even int8) and its fixed-order channel mean (k_mean.cu), so
// each output is bit-identical to the CPU emulation in emulation_quant_helpers.py.
//
// Inputs are (batch, seqlen, heads, head_dim) views read through strides (an "HND"
// tensor arrives as a transposed view, no copy); outputs are written through strides too.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../quant_config.h"
#include "../type_utils.cuh"
#include "quant_helper_kernels.h"

namespace sage {
namespace {

constexpr int kThreads = 256;

// One CTA per (slot, head, batch): rows [slot * rows_per_slot, +rows_per_slot) of the
// sequence, every channel. Two passes over the rows: the block's amax (after the optional
// mean subtraction and the scale multiplier), then quantize. The second pass re-reads the
// rows (L1/L2 hits) rather than holding up to 128 x 128 values in registers.
template <typename T>
__global__ void __launch_bounds__(kThreads) int8_blocks_kernel(Int8BlocksParams p) {
  __shared__ float scratch[kThreads / 32];
  const int slot = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int groups = (p.head_dim + 7) / 8;
  const int64_t row0 = int64_t(slot) * p.rows_per_slot;
  const int64_t rows = row0 < p.seq_len ? min(int64_t(p.rows_per_slot), p.seq_len - row0) : 0;
  const T* x = static_cast<const T*>(p.x.ptr) + b * p.x.stride_batch + h * p.x.stride_head;
  int8_t* y = p.y + b * p.y_stride_batch + h * p.y_stride_head;
  const float* mean = p.mean ? p.mean + (int64_t(b) * p.heads + h) * p.head_dim : nullptr;
  auto load_row_group = [&](int64_t r, int c0, float (&v)[8]) {
    unpack8<T>(load8_packed(x + (row0 + r) * p.x.stride_seq, c0, p.head_dim), v);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (mean && c0 + j < p.head_dim) v[j] -= mean[c0 + j];
      v[j] = __fmul_rn(v[j], p.scale_mult);
    }
  };
  float amax = 0.f;
  for (int64_t i = threadIdx.x; i < rows * groups; i += kThreads) {
    float v[8];
    load_row_group(i / groups, int(i % groups) * 8, v);
#pragma unroll
    for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(v[j]));
  }
  amax = fmaxf(block_max<kThreads>(amax, scratch), kHelperAmaxFloor);
  const float inv = inverse_scale(amax, kInt8Max);
  if (threadIdx.x == 0) p.scale[(int64_t(b) * p.heads + h) * p.n_slots + slot] = __fdiv_rn(amax, kInt8Max);
  for (int64_t i = threadIdx.x; i < rows * groups; i += kThreads) {
    const int64_t r = i / groups;
    const int c0 = int(i % groups) * 8;
    float v[8];
    load_row_group(r, c0, v);
    int8_t* dst = y + (row0 + r) * p.y_stride_seq + c0;
    const uint2 q8 = quantize_int8x8(v, inv);
    if (c0 + 8 <= p.head_dim && (reinterpret_cast<uintptr_t>(dst) & 7) == 0) {
      *reinterpret_cast<uint2*>(dst) = q8;
    } else {
      for (int j = 0; j < 8 && c0 + j < p.head_dim; ++j) dst[j] = int8_t(((j < 4 ? q8.x : q8.y) >> (8 * (j % 4))) & 0xFF);
    }
  }
}

// out = fp16(T(x - T(mean))): the subtraction in the input's precision as SageAttention's
// sub_mean does, then a round to fp16. One thread per 8 channels of a row.
template <typename T>
__global__ void __launch_bounds__(kThreads) sub_mean_kernel(SubMeanParams p) {
  const int groups = (p.head_dim + 7) / 8;
  const int64_t item = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (item >= p.seq_len * groups) return;
  const int64_t r = item / groups;
  const int c0 = int(item % groups) * 8, h = blockIdx.y, b = blockIdx.z;
  const T* x = static_cast<const T*>(p.x.ptr) + b * p.x.stride_batch + h * p.x.stride_head + r * p.x.stride_seq;
  __half* y = p.y + b * p.y_stride_batch + h * p.y_stride_head + r * p.y_stride_seq;
  const float* mean = p.mean + (int64_t(b) * p.heads + h) * p.head_dim;
  float v[8];
  unpack8<T>(load8_packed(x, c0, p.head_dim), v);
  for (int j = 0; j < 8 && c0 + j < p.head_dim; ++j) {
    const float m = to_float(from_float<T>(mean[c0 + j]));
    y[c0 + j] = __float2half_rn(to_float(from_float<T>(v[j] - m)));
  }
}

// Per-channel amax over the sequence of |x - mean| (or |x|): one CTA per (token chunk,
// head, batch); non-negative floats order like their bit patterns, so an integer atomicMax
// merges the chunks in any order with the same result.
template <typename T>
__global__ void __launch_bounds__(kThreads) channel_amax_kernel(ChannelFp8Params p) {
  const int groups = (p.head_dim + 7) / 8;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t row0 = int64_t(blockIdx.x) * kChannelAmaxRows;
  const T* x = static_cast<const T*>(p.x.ptr) + b * p.x.stride_batch + h * p.x.stride_head;
  const float* mean = p.mean ? p.mean + (int64_t(b) * p.heads + h) * p.head_dim : nullptr;
  unsigned int* amax_bits = p.amax_bits + (int64_t(b) * p.heads + h) * p.head_dim;
  // Thread -> fixed channel group, strided over the chunk's rows.
  const int threads_per_row_set = (kThreads / groups) * groups;
  if (threadIdx.x >= threads_per_row_set) return;
  const int g = threadIdx.x % groups, row_lane = threadIdx.x / groups, row_step = kThreads / groups;
  const int c0 = g * 8;
  float m[8], amax[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    m[j] = (mean && c0 + j < p.head_dim) ? mean[c0 + j] : 0.f;
    amax[j] = 0.f;
  }
  for (int64_t r = row0 + row_lane; r < min(row0 + kChannelAmaxRows, p.seq_len); r += row_step) {
    float v[8];
    unpack8<T>(load8_packed(x + r * p.x.stride_seq, c0, p.head_dim), v);
#pragma unroll
    for (int j = 0; j < 8; ++j) amax[j] = fmaxf(amax[j], fabsf(v[j] - m[j]));
  }
  for (int j = 0; j < 8 && c0 + j < p.head_dim; ++j) atomicMax(amax_bits + c0 + j, __float_as_uint(amax[j]));
}

// One CTA per (64-token block, head, batch): quantize (x - mean) * (scale_max / amax) to
// e4m3 and write it transposed, (.., channel, token), tokens of each 16 in SageAttention's
// order (kFp8TokenPosition), tokens past seq_len as 0. Staged through shared memory so both
// the reads (rows) and the writes (channel rows of 64 bytes) are coalesced. The scales come
// from the channel amax as in the pre-pass (inverse_scale: an all-zero channel gets 0);
// the first block of the sequence stores them.
template <typename T>
__global__ void __launch_bounds__(kThreads) channel_fp8_kernel(ChannelFp8Params p) {
  __shared__ uint8_t tile[kMaxHeadDim][kFp8Block + 16];  // +16: fewer bank conflicts on the transposed writes
  __shared__ float inv_s[kMaxHeadDim];
  const int groups = (p.head_dim + 7) / 8;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t t0 = int64_t(blockIdx.x) * kFp8Block;
  const T* x = static_cast<const T*>(p.x.ptr) + b * p.x.stride_batch + h * p.x.stride_head;
  const int64_t head = int64_t(b) * p.heads + h;
  const float* mean = p.mean ? p.mean + head * p.head_dim : nullptr;
  for (int c = threadIdx.x; c < p.head_dim; c += kThreads) {
    const float amax = __uint_as_float(p.amax_bits[head * p.head_dim + c]);
    inv_s[c] = inverse_scale(amax, p.scale_max);
    if (blockIdx.x == 0) p.scale[head * p.head_dim + c] = __fdiv_rn(amax, p.scale_max);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kFp8Block * groups; i += kThreads) {
    const int r = i / groups, c0 = (i % groups) * 8;
    const int64_t token = t0 + r;
    float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (token < p.seq_len) unpack8<T>(load8_packed(x + token * p.x.stride_seq, c0, p.head_dim), v);
    // Stored position of this token inside its 16-token group.
    const int pos = (r & ~15) | kFp8TokenPosition[r & 15];
    for (int j = 0; j < 8 && c0 + j < p.head_dim; ++j) {
      const int c = c0 + j;
      const float centered = mean ? v[j] - mean[c] : v[j];
      tile[c][pos] = token < p.seq_len ? float_to_e4m3(__fmul_rn(centered, inv_s[c])) : uint8_t(0);
    }
  }
  __syncthreads();
  // Write out: channel rows of kFp8Block bytes, 16 bytes per thread.
  constexpr int kChunks = kFp8Block / 16;
  for (int i = threadIdx.x; i < p.head_dim * kChunks; i += kThreads) {
    const int c = i / kChunks, chunk = i % kChunks;
    uint8_t* dst = p.y + b * p.y_stride_batch + h * p.y_stride_head + int64_t(c) * p.y_stride_channel + t0 + chunk * 16;
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(&tile[c][chunk * 16]);
  }
}

}  // namespace

void launch_int8_blocks(const Int8BlocksParams& p, bool is_bf16, cudaStream_t stream) {
  dim3 grid(unsigned(p.n_slots), unsigned(p.heads), unsigned(p.batch));
  if (is_bf16) {
    int8_blocks_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
  } else {
    int8_blocks_kernel<__half><<<grid, kThreads, 0, stream>>>(p);
  }
}

void launch_sub_mean(const SubMeanParams& p, bool is_bf16, cudaStream_t stream) {
  const int64_t items = p.seq_len * ((p.head_dim + 7) / 8);
  dim3 grid(unsigned((items + kThreads - 1) / kThreads), unsigned(p.heads), unsigned(p.batch));
  if (is_bf16) {
    sub_mean_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
  } else {
    sub_mean_kernel<__half><<<grid, kThreads, 0, stream>>>(p);
  }
}

void launch_channel_amax(const ChannelFp8Params& p, bool is_bf16, cudaStream_t stream) {
  dim3 grid(unsigned((p.seq_len + kChannelAmaxRows - 1) / kChannelAmaxRows), unsigned(p.heads), unsigned(p.batch));
  if (is_bf16) {
    channel_amax_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
  } else {
    channel_amax_kernel<__half><<<grid, kThreads, 0, stream>>>(p);
  }
}

void launch_channel_fp8(const ChannelFp8Params& p, bool is_bf16, cudaStream_t stream) {
  dim3 grid(unsigned(p.padded_len / kFp8Block), unsigned(p.heads), unsigned(p.batch));
  if (is_bf16) {
    channel_fp8_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
  } else {
    channel_fp8_kernel<__half><<<grid, kThreads, 0, stream>>>(p);
  }
}

}  // namespace sage
