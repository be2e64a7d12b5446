// Attention kernels over the pre-pass outputs. The architecture dispatch
// (dispatch_by_arch.cu) is the only caller and the only place that chooses.
#pragma once
#include <cuda_runtime.h>

#include "../params.h"

namespace sage {

// Portable kernel for every supported arch (sm_80+): dp4a INT8 Q·Kᵀ, online
// softmax, FP8-rounded P and V multiplied in fp32 on the CUDA cores.
void launch_attention_simt(const AttentionParams& p, bool out_bf16, cudaStream_t stream);

// How the Hopper kernel tiles the work (hopper/attention_sm90.cu, NOTES.md):
//  - kWide: a CTA = 2 warpgroups x 64 query rows sharing 4 K/V stages, one CTA per SM,
//    the softmax of tile t overlapping the P·V of tile t-1 inside each warpgroup;
//  - kNarrow: a CTA = 1 warpgroup x 64 rows, 2 stages, three CTAs per SM (168 registers; four at head_dim 64, 128),
//    each warpgroup serial: the other CTAs' warpgroups fill its gaps.
// Since v13 kNarrow is faster on every standard workload, last waves included, and the
// dispatch runs it (sm90_tiling_for); kWide stays selectable and tested.
enum class Sm90Tiling { kWide, kNarrow };

// Hopper kernel (sm_90a only; hopper/attention_sm90.cu): INT8 and FP8 wgmma.
// Declared weak: a build without the 9.0a unit leaves it null and the dispatch
// falls back to the portable kernel.
// With p.q_input set (narrow tiling only), the kernel quantizes Q itself.
__attribute__((weak)) void launch_attention_sm90(const AttentionParams& p, bool out_bf16, Sm90Tiling tiling,
                                                 cudaStream_t stream);

// Hopper kernel, warp-specialized with 192-key softmax steps (hopper/attention_sm90_ws.cu): a
// producer warpgroup and two consumer warpgroups of 64 rows. The dispatch runs it where it beats
// the narrow tiling (dispatch_by_arch.cu); it takes head_dim 65-128 padded to 128, causal or not, the
// pre-pass's INT8 Q (attention_sm90_ws192_takes).
__attribute__((weak)) bool attention_sm90_ws192_takes(const AttentionParams& p);
// Its 128-row query tiles of one head, all heads and batches (the dispatch counts rounds of them
// over the SMs; with the causal mask its persistent CTAs take them two at a time).
__attribute__((weak)) int64_t attention_sm90_ws192_tiles(const AttentionParams& p);
__attribute__((weak)) void launch_attention_sm90_ws192(const AttentionParams& p, bool out_bf16, cudaStream_t stream);

}  // namespace sage
