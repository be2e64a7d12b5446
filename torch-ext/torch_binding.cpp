// Registers the custom ops. CUDA implementations live in sage_attention/fwd.cu and
// sage_attention/quant_helpers.cu;
// the CPU implementations (the emulation) and the fake (meta) implementations are
// registered from Python in sage_attention/_op_registrations.py.
#include <torch/library.h>

#include "registration.h"
#include "torch_binding.h"

TORCH_LIBRARY_EXPAND(TORCH_EXTENSION_NAME, ops) {
  ops.def("fwd(Tensor q, Tensor k, Tensor v, bool is_causal=False, float? softmax_scale=None) -> (Tensor, Tensor)");
  ops.impl("fwd", c10::DeviceType::CUDA, &sage::fwd);

  ops.def("quantize_qkv(Tensor q, Tensor k, Tensor v, float softmax_scale) -> Tensor[]");
  ops.impl("quantize_qkv", c10::DeviceType::CUDA, &sage::quantize_qkv);

  ops.def(
      "attention_quantized(Tensor q_int8, Tensor q_scale, Tensor lse_shift, Tensor k_int8, Tensor k_scale, "
      "Tensor v_fp8, Tensor v_scale, int head_dim, int kv_len, bool is_causal, ScalarType out_dtype) "
      "-> (Tensor, Tensor)");
  ops.impl("attention_quantized", c10::DeviceType::CUDA, &sage::attention_quantized);

  // SageAttention-compatible quant helpers (torch-ext/sage_attention/quant_helpers.py).
  ops.def("quantize_int8_blocks(Tensor x, Tensor? mean, float scale_mult, int rows_per_slot, int n_slots) -> (Tensor, Tensor)");
  ops.impl("quantize_int8_blocks", c10::DeviceType::CUDA, &sage::quantize_int8_blocks);
  ops.def("channel_mean(Tensor x) -> Tensor");
  ops.impl("channel_mean", c10::DeviceType::CUDA, &sage::channel_mean);
  ops.def("sub_mean_fp16(Tensor x, Tensor mean) -> Tensor");
  ops.impl("sub_mean_fp16", c10::DeviceType::CUDA, &sage::sub_mean_fp16);
  ops.def("quantize_fp8_per_channel(Tensor x, Tensor? mean, float scale_max, bool heads_first) -> (Tensor, Tensor)");
  ops.impl("quantize_fp8_per_channel", c10::DeviceType::CUDA, &sage::quantize_fp8_per_channel);

  ops.def("attention_kernel_name(Tensor like) -> str");
  ops.impl("attention_kernel_name", c10::DeviceType::CUDA, &sage::attention_kernel_name);
}

REGISTER_EXTENSION(TORCH_EXTENSION_NAME)
