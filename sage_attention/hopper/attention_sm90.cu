// Hopper (sm_90a) SageAttention kernel: INT8 Q·Kᵀ and FP8 P·V on the tensor cores (wgmma).
//
// A warpgroup owns 64 query rows of one head. Per 128-key tile:
//   S  = wgmma s8 (Q from registers or smem, K from smem)  -> int32 fragment
//   online softmax (online_softmax.cuh); P = fp8(448 * exp2(s - m)) stays in registers
//   O = O * alpha * v_unit / v_scale_tile, then O += wgmma e4m3 (P from registers, Vᵀ from smem)
//   (fp32 accumulator in registers; V's per-tile scale folded into the rescale factor)
// K and Vᵀ tiles stream through kStages shared-memory stages: one thread issues a
// bulk copy per tile (the pre-pass stored each tile contiguously in the tensor cores'
// order, tile_layout.h) that completes on the stage's "full" mbarrier; every consumer
// warp arrives on the stage's "empty" mbarrier once its P·V product has read it. The issuing
// thread refills stages without a CTA-wide barrier in the loop: wide, at each tile's wait,
// every stage free by then (blocking only for the tile its own warpgroup needs next);
// narrow, right after each Q·Kᵀ issue (while its warps wait for the tensor cores anyway),
// the one stage every warp released before that issue.
// Two tilings (Tiling below; the dispatch runs narrow, the faster one since v13):
//  - wide: 2 warpgroups per CTA, one CTA per SM; the warpgroups drift apart by up to
//    kStages - 1 tiles, and within a warpgroup the softmax of tile t runs while the P·V
//    of tile t-1 is on the tensor cores;
//  - narrow: 1 warpgroup per CTA, three CTAs per SM (four at head_dim 64), each warpgroup serial; the other
//    CTAs' warpgroups overlap its waits.
// On fwd's path the narrow tiling also quantizes its own Q rows (kQuantizeQ below), with the
// pre-pass's arithmetic, so the pre-pass before it covers K and V only.
// Numerics follow torch-ext/sage_attention/emulation_attention.py.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <type_traits>

#include "../attention/attention_kernels.h"
#include "../dependent_launch.cuh"
#include "../prepass/quantize_q_row.cuh"
#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"
#include "async_copy.cuh"
#include "cta_order.cuh"
#include "launch_setup.h"
#include "online_softmax.cuh"
#include "output_store.cuh"
#include "wgmma.cuh"

namespace sage {
namespace sm90 {
namespace {

// The two tilings (Sm90Tiling, attention_kernels.h). Measured on the H100 (NOTES.md, v13):
// narrow is 10-44% faster than wide on every standard workload, Flux sizes included.
template <int Warpgroups, int CtasPerSm, int Stages, bool OverlapSoftmax>
struct Tiling {
  static constexpr int kWarpgroups = Warpgroups;  // consumer warpgroups per CTA, 64 query rows each
  static constexpr int kCtasPerSm = CtasPerSm;    // resident CTAs per SM: sets the register cap
  static constexpr int kStages = Stages;          // K/V shared-memory stages
  // true: softmax(t) runs while P·V(t-1) is on the tensor cores (P double-buffered, Q in
  // registers, ~250 registers). false: serial, P·V(t) waited within its tile, Q·Kᵀ reads Q
  // from shared memory (fits 168 registers, so three CTAs share an SM).
  static constexpr bool kOverlapSoftmax = OverlapSoftmax;
  static constexpr bool kQInRegisters = OverlapSoftmax;
  static constexpr int kPBuffers = OverlapSoftmax ? 2 : 1;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kRows = 64 * kWarpgroups;
  // Q rows are stored in tiles of kQPad rows whose layout repeats every 64 rows, so a CTA's
  // rows (64 or 128, dividing kQPad) are one contiguous block of a stored tile.
  static_assert(kQPad % kRows == 0, "a CTA's Q rows lie inside one stored Q tile");
};
using WideTiling = Tiling<2, 1, 4, true>;
using NarrowTiling = Tiling<1, 3, 2, false>;
// The narrow tiling at head_dim 64: half the O accumulator and half the shared memory,
// so four CTAs share an SM (128 registers, no spills; 36 KB each). Measured (v22, NOTES.md):
// 5-11% faster than three CTAs per SM; five would need 96 registers, where ptxas spills and
// serializes the wgmmas (C7512); a third stage gained nothing.
using NarrowTiling64 = Tiling<1, 4, 2, false>;

// Diagnostic build only (wrong results, timing only): copy only the first kStages K/V
// tiles and reuse them. (A "no softmax" switch existed until it turned out that ptxas
// serializes its wgmmas (C7511), which made its timings meaningless; NOTES.md.)
#ifndef SAGE_SM90_DIAG_NO_COPY
#define SAGE_SM90_DIAG_NO_COPY 0
#endif
// Diagnostic build only (lse is overwritten): warp 1 of each CTA sums SM clock cycles per
// loop phase over its tiles and writes the four sums and the tile count into lse[row0 ..
// row0 + 4] of its CTA (scripts/sm90_phase_clocks.py reads them). Phases, narrow: tile wait,
// Q·Kᵀ (with thread 0's refill), softmax, P·V; wide (steady-state iterations only: the first tile's Q·Kᵀ and softmax
// and the last P·V are not timed): tile wait, Q·Kᵀ(t) + P·V(t-1) issue until Q·Kᵀ is done,
// softmax, the rest of P·V(t-1).
#ifndef SAGE_SM90_DIAG_CLOCKS
#define SAGE_SM90_DIAG_CLOCKS 0
#endif
// Diagnostic build only (O rows 16-31 of each CTA are overwritten): lane 0 of warp 1 writes
// its SM id, the SM clock at kernel entry, at each phase boundary of its first tiles (the phases
// of SAGE_SM90_DIAG_CLOCKS) and after the epilogue into its CTA's O rows 16-31 as 32-bit words
// (scripts/sm90_phase_trace.py reads them): are co-resident CTAs' softmax phases aligned?
#ifndef SAGE_SM90_DIAG_TRACE
#define SAGE_SM90_DIAG_TRACE 0
#endif
// Diagnostic build only: request this many more bytes of shared memory per CTA, so fewer CTAs
// share an SM (with SAGE_SM90_DIAG_CLOCKS: a warpgroup's phase times with less contention).
#ifndef SAGE_SM90_DIAG_SMEM_PAD
#define SAGE_SM90_DIAG_SMEM_PAD 0
#endif
// The SM's clock counter (diagnostic builds: SAGE_SM90_DIAG_CLOCKS, SAGE_SM90_DIAG_TRACE).
__device__ __forceinline__ uint32_t sm_clock() {
  uint32_t now;
  asm volatile("mov.u32 %0, %%clock;" : "=r"(now)::"memory");
  return now;
}
static_assert(kKvTile == 128 && kKScaleBlock == 64, "the fragment math assumes 128-key tiles, 64-key K scales");

template <int D, typename T>
struct Smem {
  static constexpr int kStages = T::kStages;
  static constexpr int kQ = T::kRows * D;
  static constexpr int kK = kKvTile * D;
  static constexpr int kV = D * kKvTile;
  static constexpr int kBarriers = kQ + kStages * (kK + kV);  // offset of the mbarriers
  static constexpr int kQRowData = kBarriers + 128;  // q scale and lse shift per row, when the kernel quantizes Q
  static_assert((1 + 2 * kStages) * 8 <= kQRowData - kBarriers, "the mbarriers fit before the row data");
  static constexpr int kBytes = 1024 + kQRowData + 2 * T::kRows * 4;  // + room to align to 1024
  // Q·Kᵀ operands: 128-byte rows are stored swizzled, 64-byte rows as plain core matrices.
  static constexpr SmemLayout kQkLayout = D == 128 ? SmemLayout::kSwizzle128 : SmemLayout::kInterleave;
  static constexpr uint32_t kQkStepBytes = D == 128 ? 32 : 256;  // start-address move per 32-byte K step
  static constexpr uint32_t kQkKStride = 128, kQkMnStride = D == 128 ? 1024 : 8 * D;
};

template <int D>
__device__ __forceinline__ void pv_wgmma(float (&o)[D / 2], const uint32_t (&a)[4], uint64_t desc, bool acc);
template <>
__device__ __forceinline__ void pv_wgmma<128>(float (&o)[64], const uint32_t (&a)[4], uint64_t desc, bool acc) {
  wgmma_m64n128k32_e4m3_rs(o, a, desc, acc);
}
template <>
__device__ __forceinline__ void pv_wgmma<64>(float (&o)[32], const uint32_t (&a)[4], uint64_t desc, bool acc) {
  wgmma_m64n64k32_e4m3_rs(o, a, desc, acc);
}

// kQuantizeQ: the CTA quantizes its own Q rows from the input (p.q_input) instead of copying
// the pre-pass's INT8 Q: the pre-pass then reads and writes a third less, and the Q loads are
// issued before the wait for the pre-pass, overlapping its tail (narrow tiling only).
// kHeavyFirst: the causal heavy-first CTA order (cta_order.cuh), over log2_head_groups.
template <int D, typename OutT, typename T, bool kQuantizeQ, bool kHeavyFirst>
__global__ void __launch_bounds__(T::kThreads, T::kCtasPerSm)
    attention_sm90_kernel(const __grid_constant__ AttentionParams p, int log2_head_groups) {
  using S = Smem<D, T>;
  static_assert(!kQuantizeQ || T::kWarpgroups == 1, "in-kernel Q quantization is written for one warpgroup per CTA");
  constexpr int kStages = T::kStages, kRows = T::kRows, kThreads = T::kThreads, kPBuffers = T::kPBuffers;
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  // Swizzled tiles must start on 1024-byte boundaries.
  uint8_t* smem = smem_raw + ((1024 - (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) & 1023)) & 1023);
  uint8_t* q_s = smem;
  uint8_t* k_s = smem + S::kQ;
  uint8_t* v_s = k_s + kStages * S::kK;
  uint64_t* q_full = reinterpret_cast<uint64_t*>(smem + S::kBarriers);
  uint64_t* full = q_full + 1;
  uint64_t* empty = full + kStages;
  float* q_scale_s = reinterpret_cast<float*>(smem + S::kQRowData);  // [kRows], kQuantizeQ only
  float* lse_shift_s = q_scale_s + kRows;

  [[maybe_unused]] uint32_t entry_clock = 0;  // SAGE_SM90_DIAG_TRACE
  if constexpr (SAGE_SM90_DIAG_TRACE) entry_clock = sm_clock();
  const int tid = threadIdx.x;
  // wg is a compile-time 0 in the one-warpgroup tilings: values derived from it (the Q
  // descriptor) then stay uniform, and their per-tile arithmetic runs on the uniform datapath.
  const int wg = T::kWarpgroups == 1 ? 0 : tid / 128, warp = (tid % 128) / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const CtaWork work = cta_work<kHeavyFirst>(log2_head_groups);
  if (kHeavyFirst && work.head >= p.heads_q) return;  // a spare CTA of the last head group
  const int h = work.head, b = work.batch;
  const int hk = h / (p.heads_q / p.heads_kv);
  const int64_t bh = int64_t(b) * p.heads_q + h;
  const int64_t bhk = int64_t(b) * p.heads_kv + hk;
  const int64_t row0 = int64_t(work.q_block) * kRows;
  const int64_t row_a = row0 + wg * 64 + warp * 16 + g, row_b = row_a + 8;
  const int64_t causal_offset = p.kv_len - p.q_len;  // bottom-right alignment

  const int64_t n_keys = visible_keys(p, row0, kRows);
  // Tile counters are 32-bit (2^31 tiles of 128 keys is far beyond any kv_len); addresses are 64-bit.
  const int n_tiles = n_keys > 0 ? int(ceil_div(n_keys, kKvTile)) : 0;

  const uint8_t* q_src = reinterpret_cast<const uint8_t*>(p.q_int8) + (bh * p.q_len_padded + row0) * D;
  const uint8_t* k_src = reinterpret_cast<const uint8_t*>(p.k_int8) + bhk * p.kv_len_padded * D;
  const uint8_t* v_src = p.v_fp8 + bhk * p.n_kv_tiles * S::kV;
  auto issue_tile = [&](int t, int stage) {
    if (SAGE_SM90_DIAG_NO_COPY && t >= kStages) {
      mbarrier_arrive(&full[stage]);
      return;
    }
    mbarrier_arrive_expect_tx(&full[stage], S::kK + S::kV);
    bulk_copy_g2s(k_s + stage * S::kK, k_src + int64_t(t) * S::kK, S::kK, &full[stage]);
    bulk_copy_g2s(v_s + stage * S::kV, v_src + int64_t(t) * S::kV, S::kV, &full[stage]);
  };
  if (tid == 0) {
    mbarrier_init(q_full, 1);
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], kThreads / 32);
    }
    mbarrier_init_fence();
  }
  __syncthreads();
  // kQuantizeQ: this thread's 8 channels of its Q rows (kQLanesPerRow threads per row, all
  // loads in flight before the wait: Q is the caller's input, not the pre-pass's output).
  constexpr int kQLanesPerRow = D / 8, kQRowsPerStep = kThreads / kQLanesPerRow;
  constexpr int kQSteps = kQuantizeQ ? kRows / kQRowsPerStep : 1;
  uint4 q_raw[kQSteps];
  if constexpr (kQuantizeQ) {
    const OutT* q_in = static_cast<const OutT*>(p.q_input.ptr) + b * p.q_input.stride_batch + h * p.q_input.stride_head;
#pragma unroll
    for (int step = 0; step < kQSteps; ++step) {
      const int64_t row = row0 + step * kQRowsPerStep + tid / kQLanesPerRow;
      q_raw[step] = row < p.q_len ? load8_packed(q_in + row * p.q_input.stride_seq, (tid % kQLanesPerRow) * 8, p.head_dim)
                                  : make_uint4(0, 0, 0, 0);
    }
  }
  wait_for_prerequisite_grid();  // the pre-pass's outputs are complete from here on
  if (tid == 0 && !kQuantizeQ) {
    mbarrier_arrive_expect_tx(q_full, S::kQ);
    bulk_copy_g2s(q_s, q_src, S::kQ, q_full);
  }
  int issued = 0;  // tiles whose copy has been issued (meaningful in thread 0 only)
  // Thread 0: issue every tile whose stage is free, up to `need` (blocking for tiles < need).
  auto issue_ready = [&](int need) {
    while (issued < n_tiles && issued < need + kStages) {
      const int stage = issued % kStages;
      if (issued >= kStages) {
        const uint32_t freed = uint32_t(issued / kStages - 1) & 1u;  // parity of the consumption that frees it
        if (issued < need) {
          mbarrier_wait(&empty[stage], freed);
        } else if (!mbarrier_test(&empty[stage], freed)) {
          break;
        }
      }
      issue_tile(issued, stage);
      ++issued;
    }
  };
  if (tid == 0) issue_ready(0);

  if constexpr (kQuantizeQ) {
    // The pre-pass's arithmetic (quantize_q_row.cuh) into the shared-memory Q tile, in the
    // layout the bulk copy would have brought; the tensor cores read it after the fence.
    const int c0 = (tid % kQLanesPerRow) * 8;
    float km[8];
    const float4* km4 = reinterpret_cast<const float4*>(p.k_mean + bhk * D + c0);  // 32-byte aligned
    *reinterpret_cast<float4*>(km) = __ldcg(km4);  // written by the pre-pass: read through L2
    *reinterpret_cast<float4*>(km + 4) = __ldcg(km4 + 1);
    QuantizedQSlice q8[kQSteps];
    quantize_q_slices<OutT, kQLanesPerRow>(q_raw, km, p.score_scale, p.softmax_scale, q8);
#pragma unroll
    for (int step = 0; step < kQSteps; ++step) {
      const int r = step * kQRowsPerStep + tid / kQLanesPerRow;
      *reinterpret_cast<uint2*>(q_s + tile_offset(r, c0, D)) = q8[step].bytes;
      if (c0 == 0) {
        q_scale_s[r] = row0 + r < p.q_len ? q8[step].scale : 0.f;
        lse_shift_s[r] = q8[step].lse_shift;
      }
    }
    fence_proxy_async_smem();
    __syncthreads();
  }
  const int r_a = int(row_a - row0), r_b = r_a + 8;  // this thread's rows in the CTA
  const float qs_a = kQuantizeQ ? q_scale_s[r_a] : row_a < p.q_len ? p.q_scale[bh * p.q_len + row_a] : 0.f;
  const float qs_b = kQuantizeQ ? q_scale_s[r_b] : row_b < p.q_len ? p.q_scale[bh * p.q_len + row_b] : 0.f;
  // O accumulates P·V8 directly in the wgmma accumulator, in units of `v_unit` (the V scale of
  // the last tile folded in): before tile t's P·V, O *= alpha_t * v_unit / v_scale_t.
  float acc[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
  float v_unit = 0.f;
  RowState state_a, state_b;
  int s_int[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) s_int[i] = 0;
  const int64_t last_key = p.kv_len - 1;
  // Tiles from this one on reach past kv_len or cross the causal diagonal (a key of the tile
  // is hidden from some row of the CTA) and take the masked softmax: one compare per tile.
  // Tile t ends at key 128t + 127; row0 sees keys below diag, every later row more.
  const int64_t diag = row0 + causal_offset + 1;
  const int first_masked_tile =
      int(p.is_causal ? min(p.kv_len / kKvTile, diag > 0 ? diag / kKvTile : int64_t(0)) : p.kv_len / kKvTile);
  const int64_t last_key_a = p.is_causal ? min(row_a + causal_offset, last_key) : last_key;
  const int64_t last_key_b = p.is_causal ? min(row_b + causal_offset, last_key) : last_key;

  // Pipeline per warpgroup, wide tiling (iteration t): issue Q·Kᵀ of tile t; rescale O; issue
  // P·V of tile t-1; wait for Q·Kᵀ only; softmax of tile t while P·V of tile t-1 runs on the
  // tensor cores; then wait for P·V. P is double-buffered in registers (the in-flight P·V reads
  // one buffer while the softmax writes the other). (Warpgroups taking turns to issue, FA3's
  // ping-pong, measured 2-7% slower: v8b, v12f in NOTES.md.)
  float alpha_a = 1.f, alpha_b = 1.f, tile_vs = 0.f;
  uint32_t p_frag[kPBuffers][4][4];
  auto wait_tile = [&](int t) { mbarrier_wait(&full[t % kStages], uint32_t(t / kStages) & 1u); };
  // Wide: before waiting for tile t, thread 0 makes sure tile t has been issued (blocking on its
  // stage if the other warpgroup still reads it) and issues later tiles whose stage is free.
  // Waiting for a tile nobody has issued yet would deadlock: the warpgroups drift apart.
  auto issue_and_wait_tile = [&](int t) {
    if (tid == 0) issue_ready(t + 1);
    wait_tile(t);
  };
  // This thread's Q fragments (A operand layout: rows g and g+8 of its warp's 16, bytes
  // 4t..4t+3 and 16+4t..16+4t+3 of each 32-byte K step), loaded once from shared memory.
  uint32_t q_frag[T::kQInRegisters ? D / 32 : 1][4];
  auto load_q_fragments = [&] {
    const int r_a = wg * 64 + warp * 16 + g, r_b = r_a + 8;
#pragma unroll
    for (int ks = 0; ks < D / 32; ++ks) {
      const int k0 = ks * 32 + 4 * t4, k1 = k0 + 16;
      q_frag[ks][0] = *reinterpret_cast<const uint32_t*>(q_s + tile_offset(r_a, k0, D));
      q_frag[ks][1] = *reinterpret_cast<const uint32_t*>(q_s + tile_offset(r_b, k0, D));
      q_frag[ks][2] = *reinterpret_cast<const uint32_t*>(q_s + tile_offset(r_a, k1, D));
      q_frag[ks][3] = *reinterpret_cast<const uint32_t*>(q_s + tile_offset(r_b, k1, D));
    }
  };
  // Operand descriptors of stage 0 / K step 0, built once; the loop only adds offsets.
  const uint64_t k_desc0 = smem_desc(k_s, S::kQkKStride, S::kQkMnStride, S::kQkLayout);
  const uint64_t q_desc0 = smem_desc(q_s + wg * 64 * D, S::kQkKStride, S::kQkMnStride, S::kQkLayout);
  const uint64_t v_desc0 = smem_desc(v_s, 128, 1024, SmemLayout::kSwizzle128);  // Vᵀ rows: 128 keys, swizzled
  auto issue_qk = [&](int stage) {
#pragma unroll
    for (int ks = 0; ks < D / 32; ++ks) {
      const uint64_t desc_k = smem_desc_advance(k_desc0, stage * S::kK + ks * S::kQkStepBytes);
      if constexpr (T::kQInRegisters) {
        wgmma_m64n128k32_s8_rs(s_int, q_frag[ks], desc_k, ks > 0);
      } else {
        wgmma_m64n128k32_s8(s_int, smem_desc_advance(q_desc0, ks * S::kQkStepBytes), desc_k, ks > 0);
      }
    }
  };
  constexpr bool kRescaleInSoftmax = !T::kOverlapSoftmax && !kQuantizeQ;
  // O's move to the V-scale unit of the tile whose softmax runs: the factor v_unit / v_scale.
  auto take_v_unit_ratio = [&] {
    const float ratio = tile_vs > 0.f ? __fdividef(v_unit, tile_vs) : 1.f;
    if (tile_vs > 0.f) v_unit = tile_vs;
    return ratio;
  };
  // O = O * alpha * v_unit / v_scale + P·V8 for the tile whose softmax ran last (unless the
  // softmax has done the rescale already: kRescaleInSoftmax).
  auto rescale_and_issue_pv = [&](auto buf, int stage) {
    if constexpr (!kRescaleInSoftmax) {
      const float ratio = take_v_unit_ratio();
#pragma unroll
      for (int j = 0; j < D / 8; ++j) scale_o_rows(acc, j, alpha_a * ratio, alpha_b * ratio);
    }
    fence_regs(acc);
    wgmma_fence();
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      pv_wgmma<D>(acc, p_frag[decltype(buf)::value % kPBuffers][c], smem_desc_advance(v_desc0, stage * S::kV + c * 32),
                  true);
    }
    wgmma_commit();
  };
  // Per-tile scales are prefetched one tile ahead into registers, off the critical path.
  float next_ks0 = 0.f, next_ks1 = 0.f, next_vs = 0.f;
  const float* k_scales = p.k_scale + bhk * p.n_k_scale_blocks;  // this kv head's scales
  const float* v_scales = p.v_scale + bhk * p.n_kv_tiles;
  auto prefetch_scales = [&](int t) {
    if (t >= n_tiles) return;
    next_ks0 = k_scales[2 * t];
    next_ks1 = 2 * t + 1 < p.n_k_scale_blocks ? k_scales[2 * t + 1] : 0.f;
    next_vs = v_scales[t];
  };
  auto softmax = [&](auto buf, int t) {
    const float ks0 = next_ks0, ks1 = next_ks1;
    tile_vs = next_vs;
    prefetch_scales(t + 1);
    const float f[2][2] = {{qs_a * ks0, qs_a * ks1}, {qs_b * ks0, qs_b * ks1}};
    const int64_t key0 = int64_t(t) * kKvTile;
    constexpr int b = decltype(buf)::value % kPBuffers;
    // The narrow loop with the pre-pass's INT8 Q: O is idle during the softmax, which rescales
    // it (softmax_tile), and ptxas places those multiplies among the exponentials (v33, NOTES.md).
    // With in-kernel Q (fwd's path) it places them after the exponentials wherever the source
    // puts them, so that instantiation keeps the rescale before the P·V issue (its code unchanged).
    constexpr int kOElems = kRescaleInSoftmax ? D / 2 : 0;
    const float o_ratio = kRescaleInSoftmax ? take_v_unit_ratio() : 1.f;
    if (t >= first_masked_tile) {
      const TileMask mask{int(max(min(last_key_a - key0, int64_t(kKvTile - 1)), int64_t(-1))),
                          int(max(min(last_key_b - key0, int64_t(kKvTile - 1)), int64_t(-1)))};
      softmax_tile<true, kOElems>(s_int, f, mask, t4, state_a, state_b, alpha_a, alpha_b, p_frag[b], acc, o_ratio);
    } else {
      softmax_tile<false, kOElems>(s_int, f, TileMask{}, t4, state_a, state_b, alpha_a, alpha_b, p_frag[b], acc,
                                   o_ratio);
    }
  };
  // SAGE_SM90_DIAG_CLOCKS: SM cycles per loop phase, summed over the tiles of this warp.
  [[maybe_unused]] uint32_t phase[4] = {0, 0, 0, 0}, clk = 0, stamped_tiles = 0;
  // SAGE_SM90_DIAG_TRACE: lane 0 of warp 1 traces, in CTAs whose O rows 16-31 exist.
  [[maybe_unused]] const bool trace_cta = SAGE_SM90_DIAG_TRACE && row0 + 32 <= p.q_len;
  [[maybe_unused]] const bool tracer = trace_cta && tid == 32;
  [[maybe_unused]] int traced = 0;  // words written so far
  [[maybe_unused]] uint32_t* trace_words =
      SAGE_SM90_DIAG_TRACE ? reinterpret_cast<uint32_t*>(static_cast<OutT*>(p.out) + b * p.out_stride_batch +
                                                         (row0 + 16) * p.out_stride_seq + h * p.out_stride_head)
                           : nullptr;
  auto trace_word = [&](uint32_t w) {  // 64 words per O row (128 channels of 16 bits), rows 16-31
    if (traced < 16 * 64) {
      trace_words[(traced / 64) * (p.out_stride_seq * int64_t(sizeof(OutT)) / 4) + traced % 64] = w;
      ++traced;
    }
  };
  if constexpr (SAGE_SM90_DIAG_TRACE) {
    if (tracer) {
      uint32_t smid;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
      trace_word(smid);
      trace_word(entry_clock);
    }
  }
  auto stamp = [&](int i) {
    if constexpr (SAGE_SM90_DIAG_TRACE) {
      if (tracer) trace_word(sm_clock());
    }
    if constexpr (SAGE_SM90_DIAG_CLOCKS) {
      const uint32_t now = sm_clock();
      if (i >= 0) phase[i] += now - clk;
      if (i == 3) ++stamped_tiles;
      clk = now;
    }
  };
  // One steady-state iteration: tile t's Q·Kᵀ and softmax (into P buffer B), tile t-1's P·V.
  auto iteration = [&](auto buf, int t) {
    constexpr int B = decltype(buf)::value;
    const int stage = t % kStages, prev_stage = (t - 1) % kStages;
    stamp(-1);
    issue_and_wait_tile(t);
    stamp(0);
    fence_regs(s_int);
    wgmma_fence();
    issue_qk(stage);
    wgmma_commit();
    rescale_and_issue_pv(std::integral_constant<int, 1 - B>{}, prev_stage);
    wgmma_wait<1>();  // Q·Kᵀ of tile t is done; P·V of tile t-1 may still run
    fence_regs(s_int);
    stamp(1);
    softmax(buf, t);
    stamp(2);
    wgmma_wait<0>();
    fence_regs(acc);
    stamp(3);
    if (lane == 0) mbarrier_arrive(&empty[prev_stage]);  // this warp no longer reads tile t-1
  };

  prefetch_scales(0);
  if constexpr (!kQuantizeQ) mbarrier_wait(q_full, 0);
  if constexpr (T::kQInRegisters) load_q_fragments();
  if constexpr (!T::kOverlapSoftmax) {
    // Narrow tiling: serial per warpgroup (the SM's other CTAs fill the gaps): Q·Kᵀ(t),
    // wait, softmax into the single P buffer, P·V(t), wait. Waiting for P·V(t) here (not
    // after the next Q·Kᵀ issue) keeps P and O out of the registers live across the next
    // Q·Kᵀ: 168 registers are enough without spills. Tile t's stage is released as soon as
    // its P·V is done, and thread 0 refills it (tile t + 2) while the next Q·Kᵀ runs: a copy
    // has a whole tile's time to land, and the refill sits where every warp waits on the
    // tensor cores anyway. (Refilling at the tile's wait, before the Q·Kᵀ issue, kept the
    // other three warps waiting for warp 0 at the warpgroup's wgmma: v13 in NOTES.md.
    // Refilling right after P·V with thread 0 blocking on the other warps: v12c, 10% slower.)
    for (int t = 0; t < n_tiles; ++t) {
      const int stage = t % kStages;
      stamp(-1);
      wait_tile(t);
      stamp(0);
      wgmma_fence();
      issue_qk(stage);
      wgmma_commit();
      // While Q·Kᵀ(t) runs, thread 0 refills the stage tile t-1 used with tile t-1+kStages.
      // Every warp releases that stage right after its P·V(t-1), before it reaches this Q·Kᵀ
      // issue, so the wait is short and never on another thread's progress here; done here,
      // the refill costs no warp time on the critical path.
      if (tid == 0 && t >= 1 && t - 1 + kStages < n_tiles) {
        const int freed = (t - 1) % kStages;
        mbarrier_wait(&empty[freed], uint32_t((t - 1) / kStages) & 1u);
        issue_tile(t - 1 + kStages, freed);
      }
      wgmma_wait<0>();
      fence_regs(s_int);
      stamp(1);
      softmax(std::integral_constant<int, 0>{}, t);
      // The row sums read the scores' registers; without this fence the compiler sinks
      // them below the P·V issue, and ptxas then serializes every wgmma (C7514).
      fence_row_state(state_a, state_b);
      stamp(2);
      rescale_and_issue_pv(std::integral_constant<int, 0>{}, stage);
      wgmma_wait<0>();
      fence_regs(acc);
      if (lane == 0) mbarrier_arrive(&empty[stage]);  // thread 0 refills it during the next Q·Kᵀ
      stamp(3);
    }
  } else if (n_tiles > 0) {
    issue_and_wait_tile(0);
    fence_regs(s_int);
    wgmma_fence();
    issue_qk(0);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(s_int);
    softmax(std::integral_constant<int, 0>{}, 0);
    int t = 1;
    for (; t + 1 < n_tiles; t += 2) {
      iteration(std::integral_constant<int, 1>{}, t);
      iteration(std::integral_constant<int, 0>{}, t + 1);
    }
    if (t < n_tiles) iteration(std::integral_constant<int, 1>{}, t);
    // Last tile's P·V (its softmax wrote buffer (n_tiles - 1) & 1).
    const int last_stage = (n_tiles - 1) % kStages;
    if ((n_tiles - 1) & 1) {
      rescale_and_issue_pv(std::integral_constant<int, 1>{}, last_stage);
    } else {
      rescale_and_issue_pv(std::integral_constant<int, 0>{}, last_stage);
    }
    wgmma_wait<0>();
    fence_regs(acc);
    if (lane == 0) mbarrier_arrive(&empty[last_stage]);
  }

  // Epilogue: add up each row's partial sums over its quad, normalise (one division per row,
  // then a multiply per element), write O (only real rows and channels) and lse.
  const float row_sum[2] = {quad_sum(state_a.l), quad_sum(state_b.l)};  // every lane: full-warp shuffles
  // Whole aligned rows take the test-free stores (output_store.cuh).
  const bool whole_aligned_rows = p.head_dim == D && (output_alignment<OutT>(p) & 3) == 0;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = half ? row_b : row_a;
    const float l = row_sum[half], m = half ? state_b.m : state_a.m;
    if (row >= p.q_len) continue;
    if (trace_cta && row - row0 >= 16 && row - row0 < 32) continue;  // the trace's rows
    const bool has_keys = l > 0.f;
    const float norm = has_keys ? __fdiv_rn(v_unit, l) : 0.f;
    OutT* out = static_cast<OutT*>(p.out) + b * p.out_stride_batch + row * p.out_stride_seq + h * p.out_stride_head;
    store_o_row<D>(out, acc, half, t4, norm, whole_aligned_rows, p.head_dim);
    if (t4 == 0) {
      const float shift = kQuantizeQ ? lse_shift_s[half ? r_b : r_a] : p.lse_shift[bh * p.q_len + row];
      p.lse[bh * p.q_len + row] = has_keys ? (m + log2f(l) - kLog2PScale) * kLn2 + shift : -INFINITY;
    }
  }
  if constexpr (SAGE_SM90_DIAG_TRACE) {
    __syncthreads();  // the CTA's last store issued: the end of its slot time
    if (tracer) trace_word(sm_clock());
  }
  if constexpr (SAGE_SM90_DIAG_CLOCKS) {
    __syncthreads();  // after every warp's epilogue wrote its lse
    if (tid == 32 && row0 + 5 <= p.q_len) {  // warp 1 of the CTA (of its first warpgroup)
      for (int i = 0; i < 4; ++i) p.lse[bh * p.q_len + row0 + i] = float(phase[i]);
      p.lse[bh * p.q_len + row0 + 4] = float(stamped_tiles);
    }
  }
}

template <int D, typename OutT, typename T, bool kQuantizeQ, bool kHeavyFirst>
void launch_kernel(const AttentionParams& p, const CtaGrid& g, cudaStream_t stream) {
  static_assert(T::kCtasPerSm * (Smem<D, T>::kBytes + 1024) <= 228 * 1024, "the CTAs of one SM must fit its shared memory");
  constexpr int kSmem = Smem<D, T>::kBytes + SAGE_SM90_DIAG_SMEM_PAD;
  auto kernel = attention_sm90_kernel<D, OutT, T, kQuantizeQ, kHeavyFirst>;
  // The shared-memory attribute is set once per device and instantiation (this function's own static).
  static std::atomic<uint64_t> configured{0};
  set_dynamic_smem_once(kernel, kSmem, configured);
  launch_overlapping_previous(kernel, g.grid, dim3(T::kThreads), kSmem, stream, p, g.log2_head_groups);
}

// Causal launches of the narrow tiling (the dispatched one) take the heavy-first CTA order;
// the wide tiling (selectable for tests and comparisons) keeps the plain order.
template <int D, typename OutT, typename T, bool kQuantizeQ>
void launch(const AttentionParams& p, cudaStream_t stream) {
  const unsigned q_blocks = unsigned(ceil_div(p.q_len, T::kRows));
  constexpr bool kNarrow = T::kWarpgroups == 1;  // the narrow tilings (NarrowTiling, NarrowTiling64)
  const CtaGrid g = kNarrow && p.is_causal
                        ? causal_heavy_first_grid(q_blocks, p.heads_q, p.heads_kv, p.batch, p.kv_len_padded, D)
                        : plain_grid(q_blocks, p.heads_q, p.batch);
  if constexpr (kNarrow) {  // only the narrow tilings instantiate the heavy-first kernels
    if (g.heavy_first) {
      launch_kernel<D, OutT, T, kQuantizeQ, true>(p, g, stream);
      return;
    }
  }
  launch_kernel<D, OutT, T, kQuantizeQ, false>(p, g, stream);
}

template <typename T, bool kQuantizeQ>
void launch_tiling(const AttentionParams& p, bool out_bf16, cudaStream_t stream) {
  using T64 = std::conditional_t<std::is_same_v<T, NarrowTiling>, NarrowTiling64, T>;  // head_dim 64
  if (out_bf16) {
    p.dim_padded == 64 ? launch<64, __nv_bfloat16, T64, kQuantizeQ>(p, stream)
                       : launch<128, __nv_bfloat16, T, kQuantizeQ>(p, stream);
  } else {
    p.dim_padded == 64 ? launch<64, __half, T64, kQuantizeQ>(p, stream) : launch<128, __half, T, kQuantizeQ>(p, stream);
  }
}

}  // namespace
}  // namespace sm90

void launch_attention_sm90(const AttentionParams& p, bool out_bf16, Sm90Tiling tiling, cudaStream_t stream) {
  if (tiling == Sm90Tiling::kNarrow) {
    p.q_input.ptr != nullptr ? sm90::launch_tiling<sm90::NarrowTiling, true>(p, out_bf16, stream)
                             : sm90::launch_tiling<sm90::NarrowTiling, false>(p, out_bf16, stream);
  } else {
    sm90::launch_tiling<sm90::WideTiling, false>(p, out_bf16, stream);  // INT8 Q from the pre-pass (dispatch_by_arch.cu)
  }
}

}  // namespace sage
