// Host side of the SageAttention-compatible quant helper ops (quant_helpers.cu).
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace sage {

// x (B, L, H, D) through strides -> (int8 tensor like x, scales (B, H, n_slots) fp32).
std::tuple<at::Tensor, at::Tensor> quantize_int8_blocks(const at::Tensor& x, const std::optional<at::Tensor>& mean,
                                                        double scale_mult, int64_t rows_per_slot, int64_t n_slots);
// Fixed-order fp32 mean over the sequence: (B, L, H, D) -> (B, H, D).
at::Tensor channel_mean(const at::Tensor& x);
// fp16(x - mean) with the subtraction in x's dtype; mean (B, H, D) fp32.
at::Tensor sub_mean_fp16(const at::Tensor& x, const at::Tensor& mean);
// Per-channel FP8: (v_fp8 (B, H, D, P) or (B, D, H, P) when heads_first is false, scale (B, H, D)).
std::tuple<at::Tensor, at::Tensor> quantize_fp8_per_channel(const at::Tensor& x, const std::optional<at::Tensor>& mean,
                                                            double scale_max, bool heads_first);

}  // namespace sage
