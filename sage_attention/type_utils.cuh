// Small device helpers: input conversions, FP8 rounding, warp reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cstdint>

namespace sage {

__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Round to FP8 e4m3, nearest-even, saturating to ±448 (torch's float8_e4m3fn cast rounds the same way).
__device__ __forceinline__ uint8_t float_to_e4m3(float x) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
}
// Every e4m3 value is exact in fp16, so P and V tiles can sit in shared memory as halves.
__device__ __forceinline__ __half e4m3_to_half(uint8_t bits) {
  return __half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(bits), __NV_E4M3));
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
// Max over the block; every thread gets the result. `scratch` holds one float per warp.
template <int kThreads>
__device__ __forceinline__ float block_max(float x, float* scratch) {
  constexpr int kWarps = kThreads / 32;
  x = warp_max(x);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  float r = scratch[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) r = fmaxf(r, scratch[w]);
  return r;
}

}  // namespace sage

namespace sage {

// Eight consecutive channels c0..c0+7 of one row, kept packed (16 bytes: half the registers
// of 8 floats), zeros past head_dim; a 16-byte load when the row allows it (aligned and
// fully inside head_dim). unpack8 converts them when needed.
template <typename T>
__device__ __forceinline__ uint4 load8_packed(const T* row, int c0, int head_dim) {
  if (c0 + 8 <= head_dim && (reinterpret_cast<uintptr_t>(row + c0) & 15) == 0) {
    return *reinterpret_cast<const uint4*>(row + c0);
  }
  uint4 raw = make_uint4(0, 0, 0, 0);
  T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = c0 + j < head_dim ? row[c0 + j] : from_float<T>(0.f);
  return raw;
}
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&x)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) x[j] = to_float(v[j]);
}

// Packed inputs are unpacked again at each use (a sum, a maximum, the stores): this empty asm
// "changes" them, so the compiler cannot keep all the unpacked floats live from one use to the
// next instead, which spills at the quantizers' 80-register cap.
template <int N>
__device__ __forceinline__ void unpack_again_later(uint4 (&raw)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(raw[i].x), "+r"(raw[i].y), "+r"(raw[i].z), "+r"(raw[i].w));
}

// qmax / amax as the pre-pass and its emulation compute it: one IEEE division, 0 when the scale is 0.
__device__ __forceinline__ float inverse_scale(float amax, float qmax) {
  return __fdiv_rn(amax, qmax) > 0.f ? __fdiv_rn(qmax, amax) : 0.f;
}

// V's scales are powers of two: amax / qmax (one IEEE division) rounded up to a power of two,
// at least 2^-126, and its exact inverse. The ratio of two tiles' scales is then a power of two
// too, which a kernel can fold into P before P's FP8 rounding without adding any rounding error
// (448 * 2^-k is an e4m3 value), and multiplying by the inverse is exact. Accuracy against fp32
// is unchanged (NOTES.md, session 17). amax = 0 gives {0, 0}; an infinite amax gives {inf, 0}
// (as inverse_scale). Same bits as _pow2_scale_from_amax in emulation_quantize.py.
struct Pow2Scale {
  float scale, inv;
};
// 1 / r and log2(r), exactly, for r a normal power of two (2^-126 <= r <= 2^127), from its exponent.
__device__ __forceinline__ float power_of_two_inverse(float r) {
  return __uint_as_float((254u - (__float_as_uint(r) >> 23)) << 23);
}
__device__ __forceinline__ float power_of_two_log2(float r) { return float(int(__float_as_uint(r) >> 23) - 127); }
__device__ __forceinline__ Pow2Scale pow2_scale(float amax, float qmax) {
  const float raw = __fdiv_rn(amax, qmax);
  if (!(raw > 0.f)) return {0.f, 0.f};
  if (isinf(raw)) return {raw, 0.f};
  uint32_t bits = __float_as_uint(fmaxf(raw, 1.17549435e-38f));  // 2^-126: the inverse stays finite
  if (bits & 0x7FFFFFu) bits = (bits & 0x7F800000u) + 0x00800000u;  // next power of two up
  const float scale = __uint_as_float(bits);
  return {scale, power_of_two_inverse(scale)};
}

// Round half to even into [-127, 127] (torch.round then clamp), four values per word. Clamping
// before rounding gives the same integers (the bounds are integers). The rounding is one fp32
// add of 1.5 * 2^23, whose ulp is 1: the sum is the integer rounded half to even, held in the
// low mantissa bits (two's complement, |y| <= 127), on the FMA pipe instead of rint + F2I
// (two quarter-rate conversions per value).
__device__ __forceinline__ uint32_t quantize_int8x4(const float* x, float inv) {
  constexpr float kRoundingBias = 12582912.f;  // 1.5 * 2^23
  uint32_t bits[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float y = fminf(fmaxf(__fmul_rn(x[j], inv), -127.f), 127.f);
    bits[j] = __float_as_uint(__fadd_rn(y, kRoundingBias));
  }
  // Low bytes of bits[0..3] into bytes 0..3.
  return __byte_perm(__byte_perm(bits[0], bits[1], 0x0040), __byte_perm(bits[2], bits[3], 0x0040), 0x5410);
}

// Eight values as INT8 (quantize_int8x4 twice), the first in the lowest byte of .x.
__device__ __forceinline__ uint2 quantize_int8x8(const float (&x)[8], float inv) {
  return make_uint2(quantize_int8x4(x, inv), quantize_int8x4(x + 4, inv));
}

}  // namespace sage
