// Host side of fwd: checks every input before any kernel runs, allocates from
// PyTorch's caching allocator on the current stream, launches the pre-pass and
// hands the quantized tensors to the architecture dispatch.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <limits>

#include "dispatch_by_arch.h"
#include "fwd.h"
#include "prepass/prepass.h"
#include "quant_config.h"
#include "tensor_views.h"

namespace sage {
namespace {

void check_qkv(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK_VALUE(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
                    "sage_attention: q, k, v must be 4-D (batch, seqlen, heads, head_dim); got ranks ", q.dim(), ", ",
                    k.dim(), ", ", v.dim());
  TORCH_CHECK_TYPE(q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16,
                   "sage_attention: q must be float16 or bfloat16, got ", q.scalar_type());
  TORCH_CHECK_TYPE(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
                   "sage_attention: q, k, v must share one dtype; got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
                   v.scalar_type());
  TORCH_CHECK_VALUE(q.is_cuda() && k.device() == q.device() && v.device() == q.device(),
                    "sage_attention: q, k, v must be on one CUDA device; got ", q.device(), ", ", k.device(), ", ",
                    v.device());
  TORCH_CHECK_VALUE(k.size(0) == q.size(0) && v.size(0) == q.size(0), "sage_attention: batch sizes differ: q ",
                    q.size(0), ", k ", k.size(0), ", v ", v.size(0));
  TORCH_CHECK_VALUE(k.sizes() == v.sizes(), "sage_attention: k and v must have the same shape; got ", k.sizes(), " and ",
                    v.sizes());
  TORCH_CHECK_VALUE(k.size(3) == q.size(3), "sage_attention: head_dim differs: q ", q.size(3), ", k ", k.size(3));
  TORCH_CHECK_VALUE(q.size(3) >= 1 && q.size(3) <= kMaxHeadDim, "sage_attention: head_dim must be in [1, ", kMaxHeadDim,
                    "], got ", q.size(3));
  TORCH_CHECK_VALUE(k.size(2) >= 1 && q.size(2) % k.size(2) == 0, "sage_attention: heads of q (", q.size(2),
                    ") must be a multiple of heads of k/v (", k.size(2), ")");
  TORCH_CHECK_VALUE(q.size(0) <= 65535 && q.size(2) <= 65535, "sage_attention: batch and heads must be <= 65535");
}

at::Tensor last_dim_contiguous(const at::Tensor& x) { return x.stride(-1) == 1 ? x : x.contiguous(); }

struct Shapes {
  int batch, heads_q, heads_kv, head_dim, dim_padded;
  int64_t q_len, kv_len, q_len_padded, kv_len_padded, n_k_scale_blocks, n_kv_tiles;
};

Shapes shapes_of(const at::Tensor& q, const at::Tensor& k) {
  Shapes s;
  s.batch = int(q.size(0));
  s.q_len = q.size(1);
  s.heads_q = int(q.size(2));
  s.head_dim = int(q.size(3));
  s.kv_len = k.size(1);
  s.heads_kv = int(k.size(2));
  s.dim_padded = padded_head_dim(s.head_dim);
  s.q_len_padded = round_up(s.q_len, kQPad);
  s.kv_len_padded = round_up(s.kv_len, kKvTile);
  s.n_k_scale_blocks = ceil_div(s.kv_len, kKScaleBlock);
  s.n_kv_tiles = ceil_div(s.kv_len, kKvTile);
  return s;
}

// Q's per-row scale carries softmax_scale * log2 e, rounded to fp32 once. The pre-pass and the
// attention kernel (when it quantizes Q itself) both take it from here, so their Q bits agree.
float q_score_scale(double softmax_scale) { return float(softmax_scale * kLog2e); }

// Where the pre-pass writes and the attention kernel reads (layouts: emulation_quantize.py
// QuantizedQKV and tile_layout.h).
struct QuantizedBuffers {
  int8_t* q_int8;
  float* q_scale;
  float* lse_shift;
  int8_t* k_int8;
  float* k_scale;
  float* k_mean;
  uint8_t* v_fp8;
  float* v_scale;
};

// Element counts of each quantized tensor, and of the K-mean chunk-sum scratch. Without
// `with_q` (the attention kernel quantizes Q itself) the Q tensors are empty.
struct QuantizedSizes {
  int64_t q_int8, q_scale, k_int8, k_scale, k_mean, v_fp8, v_scale, k_mean_partial;
  explicit QuantizedSizes(const Shapes& s, bool with_q = true) {
    const int64_t bh = int64_t(s.batch) * s.heads_q, bhk = int64_t(s.batch) * s.heads_kv;
    q_int8 = with_q ? bh * s.q_len_padded * s.dim_padded : 0;
    q_scale = with_q ? bh * s.q_len : 0;
    k_int8 = bhk * s.kv_len_padded * s.dim_padded;
    k_scale = bhk * s.n_k_scale_blocks;
    k_mean = bhk * s.dim_padded;
    v_fp8 = bhk * s.kv_len_padded * s.dim_padded;
    v_scale = bhk * s.n_kv_tiles;
    k_mean_partial = bhk * ceil_div(s.kv_len, kKMeanChunk) * s.dim_padded;
  }
};

// The shape fields the pre-pass and the attention kernel's parameter blocks share.
template <typename Params>
void set_shape_fields(Params& p, const Shapes& s) {
  p.batch = s.batch;
  p.heads_q = s.heads_q;
  p.heads_kv = s.heads_kv;
  p.head_dim = s.head_dim;
  p.dim_padded = s.dim_padded;
  p.q_len = s.q_len;
  p.kv_len = s.kv_len;
  p.q_len_padded = s.q_len_padded;
  p.kv_len_padded = s.kv_len_padded;
  p.n_k_scale_blocks = s.n_k_scale_blocks;
  p.n_kv_tiles = s.n_kv_tiles;
}

// The pre-pass's launches: K mean (chunk sums, finalize), then the quantizer (Q only when
// `quantize_q`); short sequences without Q in one launch (launch_short_sequence_prepass).
void launch_prepass(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Shapes& s,
                    double softmax_scale, const QuantizedBuffers& out, float* k_mean_partial, bool quantize_q) {
  const int64_t n_chunks = ceil_div(s.kv_len, kKMeanChunk);
  PrepassParams p{};
  p.q = strided(q);
  p.k = strided(k);
  p.v = strided(v);
  set_shape_fields(p, s);
  p.n_k_mean_chunks = n_chunks;
  p.score_scale = q_score_scale(softmax_scale);
  p.softmax_scale = float(softmax_scale);
  p.quantize_q = quantize_q;
  p.q_int8 = out.q_int8;
  p.q_scale = out.q_scale;
  p.lse_shift = out.lse_shift;
  p.k_int8 = out.k_int8;
  p.k_scale = out.k_scale;
  p.k_mean = out.k_mean;
  p.k_mean_partial = k_mean_partial;
  p.v_fp8 = out.v_fp8;
  p.v_scale = out.v_scale;

  const int64_t n_blocks = (quantize_q ? int64_t(s.batch) * s.heads_q * (s.q_len_padded / kQuantizerQRows) : 0) +
                           int64_t(s.batch) * s.heads_kv * 2 * (s.kv_len_padded / kKvTile);  // K and V jobs: a tile each
  TORCH_CHECK(n_blocks < std::numeric_limits<int32_t>::max() &&
                  n_chunks * s.batch * s.heads_kv < std::numeric_limits<int32_t>::max(),
              "sage_attention: problem too large for one launch");
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool is_bf16 = q.scalar_type() == at::kBFloat16;
  if (s.kv_len > 0 && launch_short_sequence_prepass(p, is_bf16, stream)) {
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  if (s.kv_len > 0) {
    launch_k_mean(p, is_bf16, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    C10_CUDA_CHECK(cudaMemsetAsync(out.k_mean, 0, QuantizedSizes(s).k_mean * sizeof(float), stream));
  }
  if (n_blocks > 0) {
    launch_quantize_qkv(p, is_bf16, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

// The shape part of the attention kernel's parameters (what the dispatch decides on).
AttentionParams shape_params(const Shapes& s, bool is_causal) {
  AttentionParams p{};
  set_shape_fields(p, s);
  p.is_causal = is_causal;
  return p;
}

// q_input: the caller's Q when the attention kernel quantizes it (attention_quantizes_q), else null.
void run_attention_on(const QuantizedBuffers& qz, const Shapes& s, bool is_causal, at::Tensor& out, at::Tensor& lse,
                      const at::Tensor* q_input = nullptr, double softmax_scale = 0.0) {
  if (s.q_len == 0) return;
  if (s.kv_len == 0) {
    out.zero_();
    lse.fill_(-std::numeric_limits<float>::infinity());
    return;
  }
  AttentionParams p = shape_params(s, is_causal);
  p.q_int8 = qz.q_int8;
  p.q_scale = qz.q_scale;
  p.lse_shift = qz.lse_shift;
  p.k_int8 = qz.k_int8;
  p.k_scale = qz.k_scale;
  p.v_fp8 = qz.v_fp8;
  p.v_scale = qz.v_scale;
  p.out = out.data_ptr();
  p.out_stride_batch = out.stride(0);
  p.out_stride_seq = out.stride(1);
  p.out_stride_head = out.stride(2);
  p.lse = lse.data_ptr<float>();
  if (q_input != nullptr) {
    p.q_input = strided(*q_input);
    p.k_mean = qz.k_mean;
    p.score_scale = q_score_scale(softmax_scale);  // as the pre-pass computes them
    p.softmax_scale = float(softmax_scale);
  }
  TORCH_CHECK(ceil_div(s.q_len, kQPad) < std::numeric_limits<int32_t>::max(), "sage_attention: q_len too large");
  run_attention(p, out.scalar_type() == at::kBFloat16, out.get_device(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> fwd(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                       bool is_causal, std::optional<double> softmax_scale) {
  check_qkv(q_in, k_in, v_in);
  const at::Tensor q = last_dim_contiguous(q_in), k = last_dim_contiguous(k_in), v = last_dim_contiguous(v_in);
  const c10::cuda::CUDAGuard guard(q.device());
  const Shapes s = shapes_of(q, k);
  const double scale = softmax_scale.has_value() ? *softmax_scale : 1.0 / std::sqrt(double(s.head_dim));
  at::Tensor out = at::empty({s.batch, s.q_len, s.heads_q, s.head_dim}, q.options());
  at::Tensor lse = at::empty({s.batch, s.heads_q, s.q_len}, q.options().dtype(at::kFloat));
  if (s.q_len == 0) return {out, lse};
  // Where the dispatch runs the Hopper kernel's narrow tiling for this shape, the attention kernel
  // quantizes Q itself (it reads its Q rows once anyway), so the pre-pass skips Q and Q's scratch
  // is not allocated; the warp-specialized kernel (long rows) reads the pre-pass's INT8 Q.
  const bool q_in_kernel = attention_quantizes_q(shape_params(s, is_causal), q.get_device());
  // Two scratch allocations instead of one per tensor (host cost per call): the 8-bit
  // tensors (each a multiple of 8 KB), and the fp32 ones with the K-mean chunk sums first
  // (16-byte stores).
  const QuantizedSizes n(s, !q_in_kernel);
  at::Tensor bytes = at::empty({n.q_int8 + n.k_int8 + n.v_fp8}, q.options().dtype(at::kByte));
  at::Tensor floats = at::empty({n.k_mean_partial + n.k_mean + 2 * n.q_scale + n.k_scale + n.v_scale},
                                q.options().dtype(at::kFloat));
  QuantizedBuffers qz;
  qz.q_int8 = reinterpret_cast<int8_t*>(bytes.data_ptr());
  qz.k_int8 = qz.q_int8 + n.q_int8;
  qz.v_fp8 = reinterpret_cast<uint8_t*>(qz.k_int8 + n.k_int8);
  float* partial = floats.data_ptr<float>();
  qz.k_mean = partial + n.k_mean_partial;
  qz.q_scale = qz.k_mean + n.k_mean;
  qz.lse_shift = qz.q_scale + n.q_scale;
  qz.k_scale = qz.lse_shift + n.q_scale;
  qz.v_scale = qz.k_scale + n.k_scale;
  launch_prepass(q, k, v, s, scale, qz, partial, /*quantize_q=*/!q_in_kernel);
  run_attention_on(qz, s, is_causal, out, lse, q_in_kernel ? &q : nullptr, scale);
  return {out, lse};
}

std::vector<at::Tensor> quantize_qkv(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                     double softmax_scale) {
  check_qkv(q_in, k_in, v_in);
  const at::Tensor q = last_dim_contiguous(q_in), k = last_dim_contiguous(k_in), v = last_dim_contiguous(v_in);
  const c10::cuda::CUDAGuard guard(q.device());
  const Shapes s = shapes_of(q, k);
  const auto i8 = q.options().dtype(at::kChar), f32 = q.options().dtype(at::kFloat);
  std::vector<at::Tensor> t = {
      at::empty({s.batch, s.heads_q, s.q_len_padded, s.dim_padded}, i8),                 // q_int8
      at::empty({s.batch, s.heads_q, s.q_len}, f32),                                     // q_scale
      at::empty({s.batch, s.heads_q, s.q_len}, f32),                                     // lse_shift
      at::empty({s.batch, s.heads_kv, s.kv_len_padded, s.dim_padded}, i8),               // k_int8
      at::empty({s.batch, s.heads_kv, s.n_k_scale_blocks}, f32),                         // k_scale
      at::empty({s.batch, s.heads_kv, s.dim_padded}, f32),                               // k_mean
      at::empty({s.batch, s.heads_kv, s.kv_len_padded / kKvTile, s.dim_padded, kKvTile},  // v_fp8
                q.options().dtype(at::kFloat8_e4m3fn)),
      at::empty({s.batch, s.heads_kv, s.n_kv_tiles}, f32),                               // v_scale
  };
  at::Tensor partial = at::empty({QuantizedSizes(s).k_mean_partial}, f32);
  const QuantizedBuffers qz{t[0].data_ptr<int8_t>(), t[1].data_ptr<float>(), t[2].data_ptr<float>(),
                            t[3].data_ptr<int8_t>(), t[4].data_ptr<float>(), t[5].data_ptr<float>(),
                            reinterpret_cast<uint8_t*>(t[6].data_ptr()), t[7].data_ptr<float>()};
  launch_prepass(q, k, v, s, softmax_scale, qz, partial.data_ptr<float>(), /*quantize_q=*/true);
  return t;
}

std::tuple<at::Tensor, at::Tensor> attention_quantized(const at::Tensor& q_int8, const at::Tensor& q_scale,
                                                       const at::Tensor& lse_shift, const at::Tensor& k_int8,
                                                       const at::Tensor& k_scale, const at::Tensor& v_fp8,
                                                       const at::Tensor& v_scale, int64_t head_dim, int64_t kv_len,
                                                       bool is_causal, at::ScalarType out_dtype) {
  TORCH_CHECK(q_int8.is_cuda() && q_int8.dim() == 4 && q_int8.scalar_type() == at::kChar &&
                  k_int8.scalar_type() == at::kChar && v_fp8.scalar_type() == at::kFloat8_e4m3fn,
              "attention_quantized: expects the CUDA outputs of quantize_qkv");
  TORCH_CHECK(out_dtype == at::kHalf || out_dtype == at::kBFloat16, "attention_quantized: out_dtype must be fp16/bf16");
  Shapes s;
  s.batch = int(q_int8.size(0));
  s.heads_q = int(q_int8.size(1));
  s.q_len = q_scale.size(2);
  s.q_len_padded = q_int8.size(2);
  s.dim_padded = int(q_int8.size(3));
  s.head_dim = int(head_dim);
  s.heads_kv = int(k_int8.size(1));
  s.kv_len = kv_len;
  s.kv_len_padded = k_int8.size(2);
  s.n_k_scale_blocks = k_scale.size(2);
  s.n_kv_tiles = v_scale.size(2);
  TORCH_CHECK(s.dim_padded == padded_head_dim(s.head_dim) && s.q_len_padded == round_up(s.q_len, kQPad) &&
                  s.kv_len_padded == round_up(kv_len, kKvTile) &&
                  s.n_k_scale_blocks == ceil_div(kv_len, kKScaleBlock) && s.n_kv_tiles == ceil_div(kv_len, kKvTile) &&
                  s.heads_kv >= 1 && s.heads_q % s.heads_kv == 0 && v_fp8.dim() == 5 &&
                  v_fp8.size(2) == s.kv_len_padded / kKvTile && v_fp8.size(3) == s.dim_padded,
              "attention_quantized: tensor shapes do not match head_dim/kv_len");
  for (const at::Tensor* t : {&q_scale, &lse_shift, &k_scale, &v_scale, &k_int8, &v_fp8})
    TORCH_CHECK(t->is_contiguous() && t->device() == q_int8.device(), "attention_quantized: inputs must be contiguous on one device");
  TORCH_CHECK(q_int8.is_contiguous(), "attention_quantized: q_int8 must be contiguous");
  const c10::cuda::CUDAGuard guard(q_int8.device());
  // The kernel only reads these; QuantizedBuffers is also what the pre-pass writes, hence non-const.
  const QuantizedBuffers qz{q_int8.data_ptr<int8_t>(), q_scale.data_ptr<float>(), lse_shift.data_ptr<float>(),
                            k_int8.data_ptr<int8_t>(), k_scale.data_ptr<float>(), nullptr,
                            reinterpret_cast<uint8_t*>(v_fp8.data_ptr()), v_scale.data_ptr<float>()};
  at::Tensor out = at::empty({s.batch, s.q_len, s.heads_q, s.head_dim}, q_int8.options().dtype(out_dtype));
  at::Tensor lse = at::empty({s.batch, s.heads_q, s.q_len}, q_int8.options().dtype(at::kFloat));
  run_attention_on(qz, s, is_causal, out, lse);
  return {out, lse};
}

std::string attention_kernel_name(const at::Tensor& like) {
  TORCH_CHECK(like.is_cuda(), "attention_kernel_name: needs a CUDA tensor");
  return sage::attention_kernel_name(like.get_device());
}

}  // namespace sage
