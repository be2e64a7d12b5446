// Registers the custom ops. CUDA implementations live in sage_attention/fwd.cu;
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

  ops.def("attention_kernel_name(Tensor like) -> str");
  ops.impl("attention_kernel_name", c10::DeviceType::CUDA, &sage::attention_kernel_name);
}

REGISTER_EXTENSION(TORCH_EXTENSION_NAME)
