// Host entry points of the quantization pre-pass (launches on `stream`).
#pragma once
#include <cuda_runtime.h>

#include "../params.h"

namespace sage {

constexpr int kQuantizerQRows = 64;  // query rows per Q CTA of the quantizer

// Launch sequence: K mean (chunk sums, then finalize) and one launch quantizing Q, K and V,
// each launched overlapping its predecessor on Hopper (dependent_launch.cuh); or, for short
// sequences on fwd's Hopper path, the single launch below.
void launch_k_mean(const PrepassParams& p, bool is_bf16, cudaStream_t stream);
void launch_quantize_qkv(const PrepassParams& p, bool is_bf16, cudaStream_t stream);

// Short sequences when Q is not quantized here (fwd on Hopper): the K mean, K and V in one
// cluster launch instead of the two above (short_sequence_prepass.cu; the same bits). Returns
// false, launching nothing, where it does not apply (Q wanted, too many keys, more than 65535
// batch x kv heads, before sm_90, or the device cannot hold the cluster: cluster_launch.h).
bool launch_short_sequence_prepass(const PrepassParams& p, bool is_bf16, cudaStream_t stream);

}  // namespace sage
