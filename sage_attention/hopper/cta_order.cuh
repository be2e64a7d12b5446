// Which (query block, head, batch) each CTA of the Hopper kernel works on.
//
// The grid is (query blocks, heads, batch), and the hardware starts CTAs roughly in linear
// blockIdx order (x fastest). Without a causal mask every CTA does the same work, and the
// plain order keeps the query blocks of one head side by side, so they read its K/V tiles
// from L2 at about the same time.
//
// With the causal mask a query block's work grows with its index (it sees the keys up to
// its last row): in the plain order the heaviest blocks of the last heads start last and run
// on a half-empty GPU at the end. Causal launches therefore take the blocks heaviest first
// (longest-processing-time order) within groups of heads of one batch entry: the grid is
// (heads per group, query blocks, batch x head groups), so the linear CTA index walks the
// groups in order and, inside a group, the query blocks from the last to the first with the
// group's heads side by side. The host sizes the groups so one group's K/V tiles stay within
// part of L2, since the CTAs running at one time now span a whole group's heads
// (causal_heavy_first_grid below). When the groups do not divide the heads, the last
// group's spare CTAs exit at once.
//
// Both orders are compiled as separate kernels (kHeavyFirst) rather than picked at run time:
// with a run-time select between the two decodes (measured with 64-bit divisions, 32-bit
// divisions and shifts in the decode alike), ptxas no longer treats the head, batch and first
// row as the same in every thread, and the main loop's address and mask arithmetic moves from
// the uniform datapath to per-thread registers (fwd 2-3% slower on every workload, causal or
// not, in an A/B on the H100). The decode itself is a shift and a mask (a power-of-two number
// of head groups), the cheapest form; whether a division alone would also break uniformity was
// not isolated (the kernel's `h / group` for GQA stays uniform).
#pragma once
#include <cstdint>

namespace sage {
namespace sm90 {

struct CtaWork {
  unsigned q_block;  // unsigned like blockIdx: the plain order's code stays what it was before this file
  int head, batch;
};

// kHeavyFirst: the heavy-first grid above with 2^log2_head_groups head groups; a CTA whose
// head is past the last (head >= heads) has no work. Otherwise the plain grid.
template <bool kHeavyFirst>
__device__ __forceinline__ CtaWork cta_work(int log2_head_groups) {
  if constexpr (!kHeavyFirst) return {blockIdx.x, int(blockIdx.y), int(blockIdx.z)};
  const unsigned shift = unsigned(log2_head_groups);
  const unsigned group = blockIdx.z & ((1u << shift) - 1u), batch = blockIdx.z >> shift;
  return {gridDim.y - 1 - blockIdx.y, int(group * gridDim.x + blockIdx.x), int(batch)};
}

// Host: the grid of a launch and cta_work's argument.
struct CtaGrid {
  dim3 grid;
  bool heavy_first;
  int log2_head_groups;  // cta_work's argument
};

// The plain grid (query blocks, heads, batch), decoded from blockIdx as it stands.
inline CtaGrid plain_grid(unsigned q_blocks, int heads, int batch) {
  return {dim3(q_blocks, unsigned(heads), unsigned(batch)), false, 0};
}

// Causal: the heavy-first grid. The quantized K and V of one kv head take 2 bytes per key and
// channel; 16 MiB of the H100's 50 MiB L2 holds 16 kv heads at 4096 keys (head_dim 128), 64 at
// 1024 (a group never spans two batch entries). Groups are counted in kv heads and hold all
// query heads of each (under GQA they read the same tiles), so a group never
// straddles a kv head. Longer sequences get smaller groups, down to one kv head (heavy first
// within its query heads), also when one kv head alone exceeds the budget.
inline CtaGrid causal_heavy_first_grid(unsigned q_blocks, int heads, int heads_kv, int batch,
                                       int64_t kv_len_padded, int dim_padded) {
  constexpr int64_t kL2Budget = int64_t(16) << 20;
  const int heads_per_kv = heads / heads_kv;
  const int64_t per_kv_head = 2 * kv_len_padded * dim_padded;
  int64_t fit_kv = per_kv_head > 0 ? kL2Budget / per_kv_head : heads_kv;  // kv heads per group
  fit_kv = fit_kv < 1 ? 1 : fit_kv > heads_kv ? heads_kv : fit_kv;
  int log2_groups = 0;
  while ((int64_t(1) << log2_groups) * fit_kv < heads_kv) ++log2_groups;  // the fewest groups of <= fit_kv
  const int groups = 1 << log2_groups;
  const int per_group = (heads_kv + groups - 1) / groups * heads_per_kv;  // as even as a power of two allows
  if (q_blocks > 65535u || int64_t(batch) * groups > 65535) return plain_grid(q_blocks, heads, batch);  // past y/z limits
  return {dim3(unsigned(per_group), q_blocks, unsigned(batch) * unsigned(groups)), true, log2_groups};
}

}  // namespace sm90
}  // namespace sage
