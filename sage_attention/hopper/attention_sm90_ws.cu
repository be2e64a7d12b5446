// Hopper (sm_90a) SageAttention kernel, warp-specialized, 192-key softmax steps: head_dim 128
// (padded dims up to 128 too), causal or not, the pre-pass's INT8 Q. The dispatch (dispatch_by_arch.cu
// ws192_is_faster) runs it from 16k keys with enough tiles (8k with many; causal from 32k), where it
// beats the narrow kernel (attention_sm90.cu); SAGE_ATTENTION_FORCE_KERNEL=sm90_ws192 pins it
// wherever it applies.
//
// Why (NOTES.md, sessions 16-17): FlashAttention-3's FP8 kernel gains its 6-10% over ours from
// 4k tokens through 192-224-key tiles, which only a warpgroup of 240 registers can hold (the
// scores of 192 keys are 96 registers per thread). One persistent CTA per SM takes tiles of 128
// query rows of one head in turn:
//  - warpgroup 0, the producer, gives its registers away (setmaxnreg 24); one thread issues the
//    bulk copies on mbarriers: each tile's Q (once the consumers' last Q·Kᵀ of the previous tile
//    has read it), then per step the step's 192 K rows (contiguous in the pre-pass's layout) and
//    the two 128-key Vᵀ tiles it touches, into kStages stages, running ahead across tiles;
//  - warpgroups 1 and 2, the consumers (setmaxnreg 240), 64 rows each. Per step t, on its turn
//    (a ping-pong of named barriers between the two), a consumer issues S = Q·Kᵀ of step t
//    (4 x m64n192k32, Q and K from shared memory) and P·V of step t-1 (6 x m64n128k32, P from
//    registers), hands the turn over, waits for Q·Kᵀ alone, runs the online softmax over 192 keys
//    (online_softmax.cuh softmax_step192) while its P·V finishes, then packs P (FP8), issues the
//    row sums of P on the tensor cores (6 x m64n8k32 against constant ones, added to the row sums at
//    the next point: online_softmax.cuh add_core_row_sums) and rescales O by alpha * v_unit / v_ref;
//    the other consumer's wgmmas run meanwhile (FA3's schedule).
//    After a tile's last P·V it writes its O rows through shared memory, one bulk store per row
//    (output_store.cuh stage_o_rows), and takes the next tile without waiting for the stores.
// A step spans 1.5 of the pre-pass's 128-key tiles: even steps all of tile 3u and the first half
// of 3u+1, odd steps the second half of 3u+1 and all of 3u+2. The two tiles' V scales are powers
// of two (type_utils.cuh pow2_scale), so each tile's ratio to the larger is folded into P before
// its FP8 rounding with no error, and O keeps one unit (v_ref) per step. Numerics:
// emulation_attention.py with kv_step=192.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>

#include "../attention/attention_kernels.h"
#include "../dependent_launch.cuh"
#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"
#include "async_copy.cuh"
#include "launch_setup.h"
#include "online_softmax.cuh"
#include "output_store.cuh"
#include "wgmma.cuh"

namespace sage {
namespace sm90 {
namespace {

constexpr int kStepKeys = 192;
constexpr int kD = 128;
constexpr int kConsumers = 2;
constexpr int kThreads = 128 * (kConsumers + 1);
constexpr int kRows = 64 * kConsumers;
#ifndef SAGE_WS_STAGES
#define SAGE_WS_STAGES 3  // a stage is released only after the next step's Q·Kᵀ: 2 leave a softmax's time for a copy
#endif
constexpr int kStages = SAGE_WS_STAGES;
// Diagnostic build only (lse is overwritten): per tile, lane 0 of each consumer's first warp
// stamps the SM clock at the tile's start, after its wait for Q, at each issue point (points 0-13
// and the last 13) and in the epilogue, into shared memory; after the epilogue the consumer
// writes the 64 words into the lse of its 64 rows (tiles of 128 whole rows only).
// scripts/ws192_tile_trace.py reads them: where a tile's time goes beyond its steps. With
// SAGE_WS_DIAG_TRACE=2 the issue points 3-9 are stamped at seven places each instead (the phases
// inside a steady point: `ws192_tile_trace.py --phases`).
#ifndef SAGE_WS_DIAG_TRACE
#define SAGE_WS_DIAG_TRACE 0
#endif
constexpr int kTraceWords = 64;
static_assert(kRows == kQPad && kKvTile == 128 && kKScaleBlock == 64 && kStepKeys == 3 * kKScaleBlock,
              "one bulk copy of the CTA's Q rows; steps of 1.5 V tiles and 3 K scale blocks");

struct WsSmem {
  static constexpr int kQ = kRows * kD;         // 16 KB
  static constexpr int kK = kStepKeys * kD;     // 24 KB
  static constexpr int kVTile = kD * kKvTile;   // 16 KB, one pre-pass Vᵀ tile
  static constexpr int kStage = kK + 2 * kVTile;
  // Two constant 8-row blocks of 128 keys, the B operand of the row-sum wgmmas (online_softmax.cuh
  // add_core_row_sums): the first's row 0 and the second's row 1 all 1.0, every other byte 0.
  static constexpr int kRowSumOnes = kQ + kStages * kStage;
  static constexpr int kO = kRowSumOnes + 2 * 8 * kKvTile;  // offsets stay multiples of 1024 (swizzle)
  static constexpr int kBarriers = kO + kRows * kStagedRowBytes;  // the epilogue's staged O rows
  static constexpr int kTrace = kBarriers + (2 + 2 * kStages) * 8;  // SAGE_WS_DIAG_TRACE's words
  static constexpr int kBytes = 1024 + kTrace + (SAGE_WS_DIAG_TRACE ? kConsumers * kTraceWords * 4 : 0);
};

// The causal mask (bottom-right aligned): a tile takes the steps up to its last row's last visible
// key, and its CTA-wide work varies with its query block. The persistent CTAs then take work items
// of two tiles of one head, the heaviest query block with the lightest (blocks q_blocks-1-j and j):
// every item holds about the same number of steps, so the static round-robin stays balanced (one
// item at a time, the heads' items side by side, so K and V stay in L2). The steps that reach past
// the last visible key of the tile's first row take the masked softmax (per-row limits, fp32 row
// sums) in both consumers; earlier steps run unmasked.
template <bool kCausal>
struct WsSchedule {
  int64_t q_blocks, items_per_head, end;  // cursors run from blockIdx.x to end (exclusive)
  __host__ __device__ WsSchedule(const AttentionParams& p) : q_blocks(ceil_div(p.q_len, int64_t(kRows))) {
    items_per_head = kCausal ? (q_blocks + 1) / 2 : q_blocks;
    end = (kCausal ? 2 : 1) * items_per_head * p.heads_q * p.batch;
  }
  // Work items of one CTA each (the grid: at most one CTA per SM takes them).
  __host__ __device__ int64_t items() const { return kCausal ? end / 2 : end; }
  // A cursor names one tile: without the mask the tile's index (q block, head, batch order); with
  // it 2 * item + (0: the item's heavy tile, 1: its light one).
  __device__ __forceinline__ int64_t first() const { return kCausal ? 2 * int64_t(blockIdx.x) : int64_t(blockIdx.x); }
  __device__ __forceinline__ int64_t next(int64_t cur) const {
    if constexpr (!kCausal) {
      return cur + gridDim.x;
    } else {
      const int64_t item = cur >> 1;
      const uint32_t j = uint32_t(item) % uint32_t(items_per_head);
      const bool has_light = (cur & 1) == 0 && int64_t(j) != q_blocks - 1 - int64_t(j);
      return has_light ? cur + 1 : 2 * (item + gridDim.x);
    }
  }
  // (query block, head x batch) of a cursor, 32-bit (attention_sm90_ws192_takes: the count fits in
  // 31 bits): 64-bit divisions are called subroutines, and the values live around the calls cost the
  // consumers registers.
  __device__ __forceinline__ void decode(int64_t cur, uint32_t& q_block, uint32_t& head_batch) const {
    if constexpr (!kCausal) {
      const uint32_t qb = uint32_t(q_blocks);
      head_batch = uint32_t(cur) / qb;
      q_block = uint32_t(cur) - head_batch * qb;
    } else {
      const uint32_t item = uint32_t(cur >> 1), per_head = uint32_t(items_per_head);
      head_batch = item / per_head;
      const uint32_t j = item - head_batch * per_head;
      q_block = (cur & 1) ? j : uint32_t(q_blocks) - 1 - j;
    }
  }
};

template <typename OutT, bool kCausal>
__global__ void __launch_bounds__(kThreads, 1) attention_sm90_ws_kernel(const __grid_constant__ AttentionParams p, int) {
  using S = WsSmem;
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) & 1023)) & 1023);
  uint8_t* q_s = smem;
  uint8_t* stage_s = smem + S::kQ;  // stage s: K rows, then Vᵀ tile A, then Vᵀ tile B
  uint8_t* o_s = smem + S::kO;
  uint64_t* q_full = reinterpret_cast<uint64_t*>(smem + S::kBarriers);
  uint64_t* full = q_full + 1;
  uint64_t* empty = full + kStages;
  uint64_t* q_empty = empty + kStages;

  // Persistent: gridDim.x CTAs (at most one per SM) take the tiles (128 query rows of one head)
  // blockIdx.x, + gridDim.x, ... in the order q block, head, batch (with the causal mask, items of
  // two tiles in that order: WsSchedule): the CTAs running at any time hold neighbouring tiles, so K
  // and V of a head are read from L2. The producer loads the next
  // tile's Q and first stages while the consumers finish this one (its last steps and epilogue).
  const int tid = threadIdx.x, wg = tid / 128;
  const WsSchedule<kCausal> sched(p);
  const int64_t n_tiles = sched.end;  // the cursors' end (tile indices without the mask)
  const int steps_all = int(ceil_div(p.kv_len, kStepKeys));  // every tile's without the mask
  struct Tile {
    int64_t row0, bh, bhk;
    int h, b;
  };
  auto tile_at = [&](int64_t i) {
    Tile x;
    uint32_t q_block, head_batch;
    sched.decode(i, q_block, head_batch);
    x.row0 = int64_t(q_block) * kRows;
    x.h = int(head_batch % uint32_t(p.heads_q));
    x.b = int(head_batch / uint32_t(p.heads_q));
    x.bh = int64_t(x.b) * p.heads_q + x.h;
    x.bhk = int64_t(x.b) * p.heads_kv + x.h / (p.heads_q / p.heads_kv);
    return x;
  };
  // A tile's steps: with the mask, up to its last row's last visible key (one fully masked step
  // where a row block sees no key: q_len > kv_len), otherwise all.
  auto steps_of = [&](const Tile& x) {
    if constexpr (!kCausal) return steps_all;
    const int64_t keys = visible_keys(p, x.row0, kRows);
    return keys > 0 ? int(ceil_div(keys, kStepKeys)) : 1;
  };

  if (tid == 0) {
    mbarrier_init(q_full, 1);
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], kConsumers * 4);  // every consumer warp releases each stage
    }
    mbarrier_init(q_empty, kConsumers * 4);  // ... and Q after its last Q·Kᵀ of a tile
    mbarrier_init_fence();
  }
  // The row-sum blocks, one 16-byte chunk per thread: rows of 128 bytes whose bytes are all equal,
  // so the swizzle leaves them as they are. 0x38 is 1.0 in e4m3.
  constexpr int kChunksPerRow = kKvTile / 16, kChunksPerBlock = 8 * kChunksPerRow;
  if (tid < 2 * kChunksPerBlock) {
    const int block = tid / kChunksPerBlock, row = (tid % kChunksPerBlock) / kChunksPerRow;
    const uint32_t word = row == block ? 0x38383838u : 0u;
    reinterpret_cast<uint4*>(smem + S::kRowSumOnes)[tid] = make_uint4(word, word, word, word);
    fence_proxy_async_smem();  // before the barrier: the consumers' wgmmas read them
  }
  __syncthreads();
  wait_for_prerequisite_grid();  // the pre-pass's outputs are complete from here on

  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (tid == 0) {
      int64_t g = 0;  // steps loaded so far by this CTA: stage g % kStages, its use (g / kStages)
      int iter = 0;
      for (int64_t i = sched.first(); i < n_tiles; i = sched.next(i), ++iter) {
        const Tile tl = tile_at(i);
        const int n_steps = steps_of(tl);
        const uint8_t* q_src = reinterpret_cast<const uint8_t*>(p.q_int8) + (tl.bh * p.q_len_padded + tl.row0) * kD;
        const uint8_t* k_src = reinterpret_cast<const uint8_t*>(p.k_int8) + tl.bhk * p.kv_len_padded * kD;
        const uint8_t* v_src = p.v_fp8 + tl.bhk * p.n_kv_tiles * S::kVTile;
        if (iter > 0) mbarrier_wait_suspending(q_empty, uint32_t(iter - 1) & 1u);
        mbarrier_arrive_expect_tx(q_full, S::kQ);
        bulk_copy_g2s(q_s, q_src, S::kQ, q_full);
        for (int t = 0; t < n_steps; ++t, ++g) {
          const int stage = int(g % kStages);
          if (g >= kStages) mbarrier_wait_suspending(&empty[stage], uint32_t(g / kStages - 1) & 1u);
          const int64_t key0 = int64_t(t) * kStepKeys;
          // K is padded to whole 128-key tiles: the last step may hold fewer rows (the rest of the
          // stage keeps earlier int8 rows, finite, and their keys are masked).
          const uint32_t k_bytes = uint32_t(min(int64_t(kStepKeys), p.kv_len_padded - key0) * kD);
          const int64_t tile_a = (3 * int64_t(t)) / 2;
          // A step whose second tile is past the last copies the first again: finite FP8 where P is 0.
          const int64_t tile_b = tile_a + 1 < p.n_kv_tiles ? tile_a + 1 : tile_a;
          uint8_t* dst = stage_s + stage * S::kStage;
          mbarrier_arrive_expect_tx(&full[stage], k_bytes + 2 * S::kVTile);
          bulk_copy_g2s(dst, k_src + key0 * kD, k_bytes, &full[stage]);
          bulk_copy_g2s(dst + S::kK, v_src + tile_a * S::kVTile, S::kVTile, &full[stage]);
          bulk_copy_g2s(dst + S::kK + S::kVTile, v_src + tile_b * S::kVTile, S::kVTile, &full[stage]);
        }
      }
      // Leave only when the consumers have read every stage (no copy in flight at exit).
      for (int64_t u = max(int64_t(0), g - kStages); u < g; ++u) mbarrier_wait_suspending(&empty[u % kStages], uint32_t(u / kStages) & 1u);
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");

  const int cw = wg - 1, warp = (tid % 128) / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const int64_t last_key = p.kv_len - 1;
  const int first_masked_step = int(p.kv_len / kStepKeys);  // steps from here on reach past kv_len
  const uint64_t q_desc = smem_desc(q_s + cw * 64 * kD, 128, 1024, SmemLayout::kSwizzle128);
  const uint64_t stage_desc0 = smem_desc(stage_s, 128, 1024, SmemLayout::kSwizzle128);
  const uint64_t ones_desc0 = smem_desc(smem + S::kRowSumOnes, 128, 1024, SmemLayout::kSwizzle128);
  const uintptr_t out_alignment = output_alignment<OutT>(p);
  const bool whole_aligned_rows = p.head_dim == kD && (out_alignment & 3) == 0;
  // Whole rows at 16-byte-aligned addresses leave through shared memory as bulk stores
  // (output_store.cuh stage_o_rows); other layouts and padded head dims store from registers.
  const bool staged_rows = p.head_dim == kD && (out_alignment & 15) == 0;
  const int warp_row0 = cw * 64 + warp * 16;  // this warp's first row in the tile
  uint8_t* const warp_o_s = o_s + warp_row0 * kStagedRowBytes;
  int s_int[96];  // a step's scores: its first Q·Kᵀ overwrites them (nothing live across the tile's end)
  uint32_t p_frag[6][4];

  // Named barriers of the ping-pong (FA3's scheduler barrier): a consumer issues its wgmmas only
  // on its turn and hands the turn over right after, so one warpgroup's tensor-core work runs
  // while the other's softmax does. Without it the two, fed by the same stages, fall into step and
  // the tensor cores idle through their common softmax (the first version: large 1661 us against
  // the narrow kernel's 1293).
  auto turn_wait = [&](int w) { asm volatile("bar.sync %0, 256;\n" ::"r"(1 + w) : "memory"); };
  auto turn_pass = [&](int w) { asm volatile("bar.arrive %0, 256;\n" ::"r"(1 + w) : "memory"); };
  if (cw == 1) turn_pass(0);  // consumer 0 takes the first turn

  // SAGE_WS_DIAG_TRACE: word 0 the SM id, 1 the tile's start, 2 Q ready, 3 + 2k / 4 + 2k the turn
  // passed on / the end of recorded point k (points 0-13, then the last 13), 57 the epilogue's end;
  // in the epilogue 58 O normalised, 59 O rows staged, 60 the proxy fence passed, 61 the bulk
  // stores issued; 62 the tile's first Q·Kᵀ done.
  [[maybe_unused]] uint32_t* const trace_s = reinterpret_cast<uint32_t*>(smem + S::kTrace) + cw * kTraceWords;
  auto stamp = [&](int word) {
    if constexpr (SAGE_WS_DIAG_TRACE) {
      if (tid % 128 == 0 && word >= 0) {
        uint32_t now;
        asm volatile("mov.u32 %0, %%clock;" : "=r"(now)::"memory");
        trace_s[word] = now;
      }
    }
  };
  // SAGE_WS_DIAG_TRACE=2 (the phases inside a point): points 3-9 only, seven words each from
  // 3 + 7 (t - 3): the stage's data ready, the turn taken, the turn passed on (wgmmas issued), Q·Kᵀ
  // done, the softmax done, P·V(t-1) done, the point's end. Words 57-62 as above.
  [[maybe_unused]] int trace_tail0 = 14;  // the first of the last points recorded (set per tile)
  constexpr bool kTracePhases = SAGE_WS_DIAG_TRACE == 2;
  auto phase_word = [&](int t, int j) { return kTracePhases && t >= 3 && t <= 9 ? 3 + 7 * (t - 3) + j : -1000; };
  auto point_word = [&](int t) {
    if constexpr (kTracePhases) return phase_word(t, 2);  // + 1 (the end) is mapped by end_word
    return t <= 13 ? 3 + 2 * t : t >= trace_tail0 ? 3 + 2 * (14 + t - trace_tail0) : -1000;
  };
  auto end_word = [&](int t) { return kTracePhases ? phase_word(t, 6) : point_word(t) + 1; };

  // A tile's Q scales are loaded during the previous tile's last P·V (at a tile's start they
  // stalled the first softmax on the L2's latency: ~0.6% of the consumers' samples at 4k tokens).
  const int row_in_tile = warp_row0 + g;
  auto load_q_scales = [&](const Tile& x, float (&qs)[2]) {
    const int64_t ra = x.row0 + row_in_tile, rb = ra + 8;
    qs[0] = ra < p.q_len ? p.q_scale[x.bh * p.q_len + ra] : 0.f;
    qs[1] = rb < p.q_len ? p.q_scale[x.bh * p.q_len + rb] : 0.f;
  };
  float q_scales[2];
  load_q_scales(tile_at(sched.first()), q_scales);
  int iter = 0;
  [[maybe_unused]] int64_t steps_before = 0;  // kCausal: the steps of this CTA's earlier tiles
  for (int64_t tile = sched.first(); tile < n_tiles; tile = sched.next(tile), ++iter) {
    const Tile tl = tile_at(tile);
    const int n_steps = steps_of(tl);
    trace_tail0 = max(14, n_steps - 12);
    // The ring position of step t (stage, and the parity of its fill) from a per-tile int32 base:
    // taken per step from the CTA's 64-bit step count modulo 3, it cost ~30 uniform-datapath
    // instructions inside the turn, where the other consumer waits for them (ncu, session 18).
    // Steps of the earlier tiles. Without the mask every tile has n_steps; the product keeps that
    // instantiation's machine code as measured before the causal one existed (cuobjdump).
    const int64_t g0 = kCausal ? steps_before : int64_t(iter) * n_steps;
    if constexpr (kCausal) steps_before += n_steps;
    // The steps from masked_from on hide keys of some of the tile's rows (past kv_len, or with the
    // mask past its first row's last visible key): they take the masked softmax. Taken for the tile,
    // not per consumer: a value that depends on the warpgroup is not uniform to the compiler, and
    // the branch on it made ptxas spill ~340 bytes (one masked step more for consumer 1 in a third
    // of the tiles instead).
    const int masked_from =
        kCausal ? int(max(visible_keys(p, tl.row0, 1), int64_t(0)) / kStepKeys) : first_masked_step;
    const int step_base = int(g0 % kStages) + kStages;  // + kStages: (step_base + t - 1) stays >= 0
    const uint32_t parity_base = uint32_t(g0 / kStages + 1) & 1u;  // the + kStages above is one use more
    const bool last_tile = sched.next(tile) >= n_tiles;
    // kCausal: the last key rows g and g+8 see (-1: none), 32-bit (a tile's keys fit: K of one head
    // at 2^31 keys would be 256 GB); the masked steps' limits are these less the step's first key.
    [[maybe_unused]] int last_visible[2];
    if constexpr (kCausal) {
      const int64_t la = visible_keys(p, tl.row0 + row_in_tile, 1) - 1;
      const int64_t lb = visible_keys(p, tl.row0 + row_in_tile + 8, 1) - 1;
      last_visible[0] = int(max(min(la, int64_t(INT32_MAX)), int64_t(-1)));
      last_visible[1] = int(max(min(lb, int64_t(INT32_MAX)), int64_t(-1)));
    }
    const int64_t row_a = tl.row0 + row_in_tile, row_b = row_a + 8;
    const float qs_a = q_scales[0], qs_b = q_scales[1];
    const float* k_scales = p.k_scale + tl.bhk * p.n_k_scale_blocks;
    const float* v_scales = p.v_scale + tl.bhk * p.n_kv_tiles;
    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    float v_unit = 0.f;  // O's unit: the V scale O is counted in
    RowState state_a, state_b;
    // The previous step's row sums from the tensor cores (in flight from the end of its point to the
    // start of the next) and the factors they are added with (online_softmax.cuh add_core_row_sums).
    float core_sums[4], unfold[2];

    // Issue point t (0 .. n_steps): Q·Kᵀ of step t and P·V of step t-1 (P from its softmax, O
    // rescaled already) in one turn, then the wait for Q·Kᵀ alone and the softmax of step t while
    // P·V(t-1) finishes and the other warpgroup's turn runs on the tensor cores. kOdd: step t is
    // odd (step t-1 is not). kPv / kQk:
    // the point has a P·V (t > 0) / a Q·Kᵀ (t < n_steps), compile-time: a wgmma under a run-time
    // branch makes ptxas serialize every wgmma of the kernel (C7520).
    auto point = [&](auto odd, auto pv, auto qk, int t) {
      constexpr bool kOdd = decltype(odd)::value, has_pv = decltype(pv)::value, has_qk = decltype(qk)::value;
      const int gs = step_base + t;  // this tile's steps counted from its first stage use
      const int stage = gs % kStages, prev_stage = (gs + kStages - 1) % kStages;
      const uint32_t parity = (uint32_t(gs / kStages) ^ parity_base) & 1u;
      const int kb = 3 * t;
      const int tile_a = (3 * t) / 2;
      float ks0 = 0.f, ks1 = 0.f, ks2 = 0.f, vs_a = 0.f, vs_b = 0.f;
      if constexpr (has_qk) {  // the step's scales, loaded before the waits (L2 hits, used after Q·Kᵀ)
        ks0 = k_scales[kb];
        ks1 = kb + 1 < p.n_k_scale_blocks ? k_scales[kb + 1] : 0.f;
        ks2 = kb + 2 < p.n_k_scale_blocks ? k_scales[kb + 2] : 0.f;
        vs_a = v_scales[tile_a];
        vs_b = tile_a + 1 < p.n_kv_tiles ? v_scales[tile_a + 1] : 0.f;
        mbarrier_wait(&full[stage], parity);
      }
      if constexpr (has_pv) {  // step t-1's row sums, issued at the end of its point
        wgmma_wait<0>();
        fence_regs(core_sums);
        add_core_row_sums(core_sums, unfold, state_a, state_b);
      }
      stamp(phase_word(t, 0));  // the stage's data ready
      // O's rescale and P's packing (end of the previous point) are done before the turn is taken:
      // left to the compiler, they sink past the barrier, into the turn the other consumer waits on.
      fence_regs(acc);
#pragma unroll
      for (int c = 0; c < 6; ++c) fence_regs(p_frag[c]);
      turn_wait(cw);
      stamp(phase_word(t, 1));  // the turn taken
      wgmma_fence();
      // Q·Kᵀ(t) first, in its own commit group: the wait below lets the softmax start while P·V(t-1)
      // still runs (FA3's intra-warpgroup overlap).
      if constexpr (has_qk) {
        const uint64_t k_desc = smem_desc_advance(stage_desc0, stage * S::kStage);
        wgmma_m64n192k32_s8_overwrite(s_int, q_desc, k_desc);
#pragma unroll
        for (int ks = 1; ks < kD / 32; ++ks) {
          wgmma_m64n192k32_s8(s_int, smem_desc_advance(q_desc, ks * 32), smem_desc_advance(k_desc, ks * 32), true);
        }
        wgmma_commit();
      }
      if constexpr (has_pv) {
        const uint64_t v_desc = smem_desc_advance(stage_desc0, prev_stage * S::kStage + S::kK);
#pragma unroll
        for (int c = 0; c < 6; ++c) {
          constexpr int kOffset = kOdd ? 0 : 64;  // step t-1's first key within its tile A
          const int key = kOffset + 32 * c;
          const uint32_t at = key < kKvTile ? uint32_t(key) : uint32_t(S::kVTile + key - kKvTile);
          wgmma_m64n128k32_e4m3_rs(acc, p_frag[c], smem_desc_advance(v_desc, at), true);
        }
        wgmma_commit();
      }
      if (cw == 0 || has_qk || !last_tile) turn_pass(1 - cw);  // consumer 1's very last pass would have no taker
      stamp(point_word(t));  // the turn taken and its wgmmas issued
      // The P·V still in flight keeps P and O; the softmax below touches neither.
      auto finish_pv = [&] {
        if constexpr (has_pv) {
          wgmma_wait<0>();
          fence_regs(acc);
#pragma unroll
          for (int c = 0; c < 6; ++c) fence_regs(p_frag[c]);
          if (lane == 0) mbarrier_arrive(&empty[prev_stage]);
        }
      };
      if constexpr (!has_qk) {
        finish_pv();
        stamp(end_word(t));
        return;
      }
      if constexpr (has_pv) {
        wgmma_wait<1>();  // Q·Kᵀ(t) is done
      } else {
        wgmma_wait<0>();
      }
      fence_regs(s_int);
      stamp(phase_word(t, 3));  // Q·Kᵀ(t) done
      if (t == 0) stamp(62);  // the tile's first Q·Kᵀ done
      if (t == n_steps - 1 && lane == 0) mbarrier_arrive(q_empty);  // this tile's last Q·Kᵀ has read Q

      constexpr int kSplitChunk = kOdd ? 8 : 16;  // chunks of 8 keys in the step's first V tile
      const float f[2][3] = {{qs_a * ks0, qs_a * ks1, qs_a * ks2}, {qs_b * ks0, qs_b * ks1, qs_b * ks2}};
      // V folding: ratios to the larger scale, powers of two (a tile of scale 0 keeps ratio 1).
      // All scales are powers of two: a product with the exact inverse, not an IEEE division.
      const float v_ref = fmaxf(vs_a, vs_b);
      const float inv_v_ref = power_of_two_inverse(v_ref);
      StepVFold fold;
      const float r_a = vs_a > 0.f && v_ref > 0.f ? vs_a * inv_v_ref : 1.f;
      const float r_b = vs_b > 0.f && v_ref > 0.f ? vs_b * inv_v_ref : 1.f;
      fold.log2_ratio[0] = power_of_two_log2(r_a);
      fold.log2_ratio[1] = power_of_two_log2(r_b);
      fold.inv_ratio[0] = power_of_two_inverse(r_a);
      fold.inv_ratio[1] = power_of_two_inverse(r_b);
      float alpha_a, alpha_b;
      float x[96];
      // Row sums on the tensor cores unless the step reaches past kv_len or a V ratio is small
      // (online_softmax.cuh kMinRatioForCoreSums): those take the masked variant, which sums itself.
      const bool sums_on_cores = t < masked_from && fminf(r_a, r_b) >= kMinRatioForCoreSums;
      if (!sums_on_cores) {
        // Each row's last visible key in the step (-1: none).
        TileMask mask;
        if constexpr (kCausal) {
          const int k0 = t * kStepKeys;
          mask = TileMask{max(min(last_visible[0] - k0, kStepKeys - 1), -1), max(min(last_visible[1] - k0, kStepKeys - 1), -1)};
        } else {
          const int64_t key0 = int64_t(t) * kStepKeys;
          const int last = int(max(min(last_key - key0, int64_t(kStepKeys - 1)), int64_t(-1)));
          mask = TileMask{last, last};
        }
        softmax_step192<kSplitChunk, true>(s_int, f, fold, mask, t4, state_a, state_b, alpha_a, alpha_b, x);
      } else {
        softmax_step192<kSplitChunk, false>(s_int, f, fold, TileMask{}, t4, state_a, state_b, alpha_a, alpha_b, x);
      }
      fence_row_state(state_a, state_b);
      stamp(phase_word(t, 4));  // the softmax done
      finish_pv();  // P and O are free again
      stamp(phase_word(t, 5));  // P·V(t-1) done
      pack_p(x, p_frag);
      // The row sums of P (FP8, as P·V will use it), on the tensor cores, which are mostly idle here
      // (the other consumer's turn is about half a point old); waited for at the next point's start.
      wgmma_fence();
#pragma unroll
      for (int c = 0; c < 6; ++c) {
        const uint64_t ones = smem_desc_advance(ones_desc0, c < kSplitChunk / 4 ? 0 : 8 * kKvTile);
        wgmma_m64n8k32_e4m3_rs(core_sums, p_frag[c], ones, c > 0);
      }
      wgmma_commit();
      unfold[0] = sums_on_cores ? fold.inv_ratio[0] : 0.f;
      unfold[1] = sums_on_cores ? fold.inv_ratio[1] : 0.f;
      // O (idle: P·V of step t-1 is done) moves to step t's unit v_ref, a power-of-two ratio, with alpha.
      const float unit_ratio = v_ref > 0.f && v_unit > 0.f ? v_unit * inv_v_ref : 1.f;
      if (v_ref > 0.f) v_unit = v_ref;
#pragma unroll
      for (int j = 0; j < 16; ++j) scale_o_rows(acc, j, alpha_a * unit_ratio, alpha_b * unit_ratio);
      stamp(end_word(t));
    };

    if constexpr (SAGE_WS_DIAG_TRACE) {
      uint32_t smid;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
      if (tid % 128 == 0) trace_s[0] = smid;
      stamp(1);
    }
    mbarrier_wait(q_full, uint32_t(iter) & 1u);
    stamp(2);
    using False = std::integral_constant<bool, false>;
    using True = std::integral_constant<bool, true>;
    point(False{}, False{}, True{}, 0);  // n_steps >= 1: kv_len >= 1 (validation)
    int t = 1;
    for (; t + 1 < n_steps; t += 2) {
      point(True{}, True{}, True{}, t);
      point(False{}, True{}, True{}, t + 1);
    }
    // Loaded while the last P·V runs: the lse's shift rows (read in the epilogue, they stalled it
    // on the L2's latency: ~2% of the consumers' samples at 4k tokens) and the next tile's Q
    // scales. The next tile is decoded here and again at its start: carried through the epilogue
    // instead, it made ptxas spill 20 bytes.
    float lse_shift[2] = {0.f, 0.f};
    auto load_during_last_pv = [&] {
      if (t4 == 0 && row_a < p.q_len) lse_shift[0] = p.lse_shift[tl.bh * p.q_len + row_a];
      if (t4 == 0 && row_b < p.q_len) lse_shift[1] = p.lse_shift[tl.bh * p.q_len + row_b];
      if (!last_tile) load_q_scales(tile_at(sched.next(tile)), q_scales);
    };
    if (t < n_steps) {  // t odd: one more step, then the last P·V (of an odd step: the next point is even)
      point(True{}, True{}, True{}, t);
      load_during_last_pv();
      point(False{}, True{}, False{}, t + 1);
    } else {  // t == n_steps, odd: the last P·V, of the even step n_steps - 1
      load_during_last_pv();
      point(True{}, True{}, False{}, t);
    }

    // Epilogue (as attention_sm90.cu's): quad sums, one division per row, O and lse.
    const float row_sum[2] = {quad_sum(state_a.l), quad_sum(state_b.l)};
    float norm[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) norm[half] = row_sum[half] > 0.f ? __fdiv_rn(v_unit, row_sum[half]) : 0.f;
    stamp(58);
    if (staged_rows) {
      // The lanes that stored the previous tile's rows wait until those stores have read the
      // staging rows (a whole tile ago: no wait in practice) before the warp writes them again.
      if (iter > 0 && lane < 16) bulk_store_wait_read<0>();
      __syncwarp();
      stage_o_rows<OutT>(warp_o_s, acc, norm[0], norm[1], lane);
      stamp(59);
      fence_proxy_async_shared();  // the rows written above, before the bulk stores read them
      stamp(60);
      __syncwarp();
      const int64_t row = tl.row0 + warp_row0 + lane;
      if (lane < 16 && row < p.q_len) {
        OutT* out = static_cast<OutT*>(p.out) + tl.b * p.out_stride_batch + row * p.out_stride_seq + tl.h * p.out_stride_head;
        bulk_copy_s2g(out, warp_o_s + lane * kStagedRowBytes, kD * sizeof(OutT));
      }
      if (lane < 16) bulk_store_commit();
      stamp(61);
    } else {  // SAGE_WS_DIAG_TRACE: no staged rows, so those three parts take no time
      stamp(59);
      stamp(60);
      stamp(61);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t row = half ? row_b : row_a;
      const float l = row_sum[half], m = half ? state_b.m : state_a.m;
      if (row >= p.q_len) continue;
      if (!staged_rows) {
        OutT* out = static_cast<OutT*>(p.out) + tl.b * p.out_stride_batch + row * p.out_stride_seq + tl.h * p.out_stride_head;
        store_o_row<kD>(out, acc, half, t4, norm[half], whole_aligned_rows, p.head_dim);
      }
      if (t4 == 0) {
        p.lse[tl.bh * p.q_len + row] = l > 0.f ? (m + log2f(l) - kLog2PScale) * kLn2 + lse_shift[half] : -INFINITY;
      }
    }
    if constexpr (SAGE_WS_DIAG_TRACE) {  // after this consumer's lse stores (the barrier orders them)
      stamp(57);
      asm volatile("bar.sync %0, 128;\n" ::"r"(3 + cw) : "memory");
      const int k = tid % 128;
      if (k < kTraceWords && tl.row0 + kRows <= p.q_len) p.lse[tl.bh * p.q_len + tl.row0 + cw * 64 + k] = __uint_as_float(trace_s[k]);
      asm volatile("bar.sync %0, 128;\n" ::"r"(3 + cw) : "memory");  // read before the next tile's stamps
    }
  }  // tiles
  // The staged rows' bulk stores read shared memory, which ends with the CTA: wait for them.
  if (staged_rows && lane < 16) bulk_store_wait<0>();
}

template <typename OutT, bool kCausal>
void launch_ws(const AttentionParams& p, cudaStream_t stream) {
  static_assert(WsSmem::kBytes + 1024 <= 228 * 1024, "one CTA per SM");
  auto kernel = attention_sm90_ws_kernel<OutT, kCausal>;
  static std::atomic<uint64_t> configured{0};  // this instantiation's: the attribute is set once per device
  set_dynamic_smem_once(kernel, WsSmem::kBytes, configured);
  const int64_t items = WsSchedule<kCausal>(p).items();
  const unsigned ctas = unsigned(std::min<int64_t>(items, current_device_sms()));
  launch_overlapping_previous(kernel, dim3(ctas), dim3(kThreads), WsSmem::kBytes, stream, p, 0);
}

}  // namespace
}  // namespace sm90

int64_t attention_sm90_ws192_tiles(const AttentionParams& p) {
  return sm90::WsSchedule<false>(p).end;  // without the mask a cursor is a tile's index
}

bool attention_sm90_ws192_takes(const AttentionParams& p) {
  // The kernel decodes its cursors in 32 bits (tile indices; with the mask, 2 * item + 1).
  const int64_t cursors = p.is_causal ? sm90::WsSchedule<true>(p).end : sm90::WsSchedule<false>(p).end;
  return p.dim_padded == 128 && p.q_input.ptr == nullptr && cursors < (int64_t(1) << 31);
}

void launch_attention_sm90_ws192(const AttentionParams& p, bool out_bf16, cudaStream_t stream) {
  if (p.is_causal) {
    out_bf16 ? sm90::launch_ws<__nv_bfloat16, true>(p, stream) : sm90::launch_ws<__half, true>(p, stream);
  } else {
    out_bf16 ? sm90::launch_ws<__nv_bfloat16, false>(p, stream) : sm90::launch_ws<__half, false>(p, stream);
  }
}

}  // namespace sage
