// Host API behind the torch ops: input checks, allocation, pre-pass, dispatch.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <tuple>
#include <vector>

namespace sage {

// q (B, Lq, H, d), k/v (B, Lk, Hkv, d), fp16/bf16 -> out (B, Lq, H, d), lse (B, H, Lq) fp32.
std::tuple<at::Tensor, at::Tensor> fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool is_causal,
                                       std::optional<double> softmax_scale);

// The pre-pass alone: [q_int8, q_scale, lse_shift, k_int8, k_scale, k_mean, v_fp8, v_scale].
std::vector<at::Tensor> quantize_qkv(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     double softmax_scale);

// The attention kernel alone, on pre-pass outputs.
std::tuple<at::Tensor, at::Tensor> attention_quantized(const at::Tensor& q_int8, const at::Tensor& q_scale,
                                                       const at::Tensor& lse_shift, const at::Tensor& k_int8,
                                                       const at::Tensor& k_scale, const at::Tensor& v_fp8,
                                                       const at::Tensor& v_scale, int64_t head_dim, int64_t kv_len,
                                                       bool is_causal, at::ScalarType out_dtype);

// Which attention kernel the dispatch picks for this tensor's device.
std::string attention_kernel_name(const at::Tensor& like);

}  // namespace sage
