#pragma once
#include <cuda_runtime.h>

#include "params.h"

namespace sage {

// The one place that decides which attention kernel runs on which GPU.
void run_attention(const AttentionParams& p, bool out_bf16, int device, cudaStream_t stream);

// Whether the kernel run_attention picks on `device` for these shapes (q_input unset) quantizes Q
// itself, from the input (AttentionParams::q_input): fwd then leaves Q out of the pre-pass.
bool attention_quantizes_q(const AttentionParams& p, int device);

// Name of the kernel run_attention picks on `device` (for tests and benchmarks).
const char* attention_kernel_name(int device);

}  // namespace sage
