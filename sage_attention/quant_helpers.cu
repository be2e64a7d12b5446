// Host side of the SageAttention-compatible quant helper ops: checks, allocation from
// PyTorch's caching allocator on the current stream, launches. The Python wrappers
// (torch-ext/sage_attention/quant_helpers.py) give them SageAttention's signatures.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <limits>

#include "prepass/prepass.h"
#include "prepass/quant_helper_kernels.h"
#include "quant_config.h"
#include "tensor_views.h"
#include "quant_helpers.h"

namespace sage {
namespace {

void check_input(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 4, op, ": x must be a 4-D CUDA tensor (batch, seqlen, heads, head_dim)");
  TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16, op,
              ": x must be float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(x.size(3) >= 1 && x.size(3) <= kMaxHeadDim, op, ": head_dim must be in [1, ", kMaxHeadDim, "], got ",
              x.size(3));
  TORCH_CHECK(x.stride(3) == 1, op, ": the last dimension must be contiguous");
  TORCH_CHECK(x.size(0) <= 65535 && x.size(2) <= 65535, op, ": batch and heads must be <= 65535");
}

void check_mean(const at::Tensor& mean, const at::Tensor& x, const char* op) {
  TORCH_CHECK(mean.scalar_type() == at::kFloat && mean.is_contiguous() && mean.device() == x.device() &&
                  mean.dim() == 3 && mean.size(0) == x.size(0) && mean.size(1) == x.size(2) &&
                  mean.size(2) == x.size(3),
              op, ": mean must be a contiguous fp32 (batch, heads, head_dim) tensor on x's device");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> quantize_int8_blocks(const at::Tensor& x, const std::optional<at::Tensor>& mean,
                                                        double scale_mult, int64_t rows_per_slot, int64_t n_slots) {
  check_input(x, "quantize_int8_blocks");
  TORCH_CHECK(rows_per_slot >= 1 && n_slots >= 0 && n_slots * rows_per_slot >= x.size(1) &&
                  n_slots < std::numeric_limits<int32_t>::max() && rows_per_slot <= (1 << 20),
              "quantize_int8_blocks: n_slots * rows_per_slot must cover the sequence");
  if (mean) check_mean(*mean, x, "quantize_int8_blocks");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor y = at::empty_like(x, x.options().dtype(at::kChar));  // keeps x's memory layout
  at::Tensor scale = at::empty({x.size(0), x.size(2), n_slots}, x.options().dtype(at::kFloat));
  if (scale.numel() == 0) return {y, scale};
  Int8BlocksParams p{};
  p.x = strided(x);
  p.y = y.data_ptr<int8_t>();
  p.y_stride_batch = y.stride(0);
  p.y_stride_seq = y.stride(1);
  p.y_stride_head = y.stride(2);
  p.mean = mean ? mean->data_ptr<float>() : nullptr;
  p.scale_mult = float(scale_mult);
  p.scale = scale.data_ptr<float>();
  p.batch = int(x.size(0));
  p.heads = int(x.size(2));
  p.head_dim = int(x.size(3));
  p.rows_per_slot = int(rows_per_slot);
  p.seq_len = x.size(1);
  p.n_slots = n_slots;
  launch_int8_blocks(p, x.scalar_type() == at::kBFloat16, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, scale};
}

at::Tensor channel_mean(const at::Tensor& x) {
  check_input(x, "channel_mean");
  const c10::cuda::CUDAGuard guard(x.device());
  const int dim_padded = padded_head_dim(int(x.size(3)));
  at::Tensor mean = at::zeros({x.size(0), x.size(2), dim_padded}, x.options().dtype(at::kFloat));
  const int64_t n_chunks = ceil_div(x.size(1), kKMeanChunk);
  if (n_chunks > 0 && mean.numel() > 0) {
    TORCH_CHECK(n_chunks * x.size(0) * x.size(2) < std::numeric_limits<int32_t>::max(), "channel_mean: too many chunks for one launch");
    at::Tensor partial = at::empty({x.size(0), x.size(2), n_chunks, dim_padded}, mean.options());
    PrepassParams p{};  // the K-mean kernels, pointed at x
    p.k = strided(x);
    p.batch = int(x.size(0));
    p.heads_kv = int(x.size(2));
    p.head_dim = int(x.size(3));
    p.dim_padded = dim_padded;
    p.kv_len = x.size(1);
    p.n_k_mean_chunks = n_chunks;
    p.k_mean = mean.data_ptr<float>();
    p.k_mean_partial = partial.data_ptr<float>();
    launch_k_mean(p, x.scalar_type() == at::kBFloat16, c10::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return mean.narrow(2, 0, x.size(3)).contiguous();
}

at::Tensor sub_mean_fp16(const at::Tensor& x, const at::Tensor& mean) {
  check_input(x, "sub_mean");
  check_mean(mean, x, "sub_mean");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor y = at::empty_like(x, x.options().dtype(at::kHalf));
  const int64_t items = x.size(1) * ((x.size(3) + 7) / 8);
  if (y.numel() == 0) return y;
  TORCH_CHECK(items / 256 < std::numeric_limits<int32_t>::max(), "sub_mean: sequence too long");
  SubMeanParams p{};
  p.x = strided(x);
  p.y = reinterpret_cast<__half*>(y.data_ptr());
  p.y_stride_batch = y.stride(0);
  p.y_stride_seq = y.stride(1);
  p.y_stride_head = y.stride(2);
  p.mean = mean.data_ptr<float>();
  p.batch = int(x.size(0));
  p.heads = int(x.size(2));
  p.head_dim = int(x.size(3));
  p.seq_len = x.size(1);
  launch_sub_mean(p, x.scalar_type() == at::kBFloat16, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

std::tuple<at::Tensor, at::Tensor> quantize_fp8_per_channel(const at::Tensor& x, const std::optional<at::Tensor>& mean,
                                                            double scale_max, bool heads_first) {
  check_input(x, "per_channel_fp8");
  TORCH_CHECK(scale_max > 0.0 && scale_max <= 448.0, "per_channel_fp8: scale_max must be in (0, 448], got ", scale_max);
  if (mean) check_mean(*mean, x, "per_channel_fp8");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t b = x.size(0), l = x.size(1), h = x.size(2), d = x.size(3);
  const int64_t padded = round_up(l, kFp8Block);
  TORCH_CHECK(padded / kFp8Block < std::numeric_limits<int32_t>::max(), "per_channel_fp8: sequence too long");
  auto f32 = x.options().dtype(at::kFloat);
  at::Tensor y = heads_first ? at::empty({b, h, d, padded}, x.options().dtype(at::kFloat8_e4m3fn))
                             : at::empty({b, d, h, padded}, x.options().dtype(at::kFloat8_e4m3fn));
  at::Tensor amax = at::zeros({b, h, d}, f32);    // scratch: channel amax as fp32 bits
  at::Tensor scale = at::zeros({b, h, d}, f32);   // stays 0 for an empty sequence (amax 0)
  if (y.numel() == 0) return {y, scale};
  ChannelFp8Params p{};
  p.x = strided(x);
  p.mean = mean ? mean->data_ptr<float>() : nullptr;
  p.amax_bits = reinterpret_cast<unsigned int*>(amax.data_ptr<float>());
  p.scale_max = float(scale_max);
  p.scale = scale.data_ptr<float>();
  p.y = reinterpret_cast<uint8_t*>(y.data_ptr());
  p.y_stride_batch = y.stride(0);
  p.y_stride_head = heads_first ? y.stride(1) : y.stride(2);
  p.y_stride_channel = heads_first ? y.stride(2) : y.stride(1);
  p.batch = int(b);
  p.heads = int(h);
  p.head_dim = int(d);
  p.seq_len = l;
  p.padded_len = padded;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  launch_channel_amax(p, bf16, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  launch_channel_fp8(p, bf16, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, scale};
}

}  // namespace sage
