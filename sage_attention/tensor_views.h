// Host side: the (batch, seqlen, heads, head_dim) view of an at::Tensor that the kernel
// parameter blocks carry (params.h StridedInput), shared by fwd.cu and quant_helpers.cu.
#pragma once
#include <ATen/ATen.h>

#include "params.h"

namespace sage {

inline StridedInput strided(const at::Tensor& x) {
  return StridedInput{x.data_ptr(), x.stride(0), x.stride(1), x.stride(2)};
}

}  // namespace sage
