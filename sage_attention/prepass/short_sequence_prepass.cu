// fwd's pre-pass for short sequences in one launch (Hopper, where the attention kernel
// quantizes its own Q): the K mean, smoothed INT8 K and FP8 V, with no launch boundary and no
// trip through global memory between the mean and the K that needs it.
//
// Grid (C, batch * heads_kv, 1 + V planes), clusters of (C, 1, 1): the C CTAs of plane 0 for
// one kv head are one thread-block cluster holding all of that head's keys (C <= 16, so up to
// 2048 keys at head_dim 128 and 4096 at 64). Each K CTA
//   1. loads its keys into registers (packed) in the K mean's run layout (k_mean.cuh) and
//      leaves its chunk sums in its own shared memory;
//   2. after the cluster barrier, adds the head's chunk sums in order, reading the other CTAs'
//      shared memory (the same order and bits as k_mean.cuh's finalize);
//   3. quantizes its keys from the registers (per 64-key block: the chunk is the K scale block).
// The CTAs of the other planes quantize V tiles (quantize_v_tile.cuh), which need no mean.
// Longer sequences, and the paths that also quantize Q, keep the K-mean launch(es) and the
// quantizer (k_mean.cu, quantize_qkv.cu); both forms give the same bits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../dependent_launch.cuh"
#include "../quant_config.h"
#include "../tile_layout.h"
#include "../type_utils.cuh"
#include "cluster_launch.h"
#include "k_mean.cuh"
#include "prepass.h"
#include "quantize_v_tile.cuh"
#include "thread_block_cluster.cuh"

namespace sage {
namespace {

constexpr int kThreads = k_mean::kCtaThreads;  // the K mean's run layout fixes the K CTA's threads

// Shared memory of a K CTA: run sums, its chunk sums (read by the whole cluster), the head's
// mean, one float per warp for the block maxima.
template <int DP>
struct KCta {
  using Runs = k_mean::Shape<DP>;
  static constexpr int kChunks = Runs::kChunksPerCta;         // 64-key chunks = K scale blocks
  static constexpr int kKeys = kChunks * kKMeanChunk;         // 128 at head_dim 128, 256 at 64
  static constexpr int kWarpsPerChunk = Runs::kThreadsPerChunk / 32;
  static constexpr int kChunkSumOffset = Runs::kScratchFloats;  // in floats
  static constexpr int kMeanOffset = kChunkSumOffset + kChunks * DP;
  static constexpr int kWarpMaxOffset = kMeanOffset + DP;
  static constexpr int kBytes = (kWarpMaxOffset + kThreads / 32) * int(sizeof(float));
  static_assert(Runs::kThreadsPerChunk % 32 == 0, "a warp never spans two chunks");
  static_assert(kKeys % kKvTile == 0, "a K CTA covers whole tiles");
};

constexpr int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }
constexpr int kSmemBytes = max3(KCta<64>::kBytes, KCta<128>::kBytes, kVTileSmemBytes<kThreads>);

template <typename T, int DP>
__device__ void smooth_and_quantize_k(const PrepassParams& p, int64_t bh, unsigned char* smem) {
  using K = KCta<DP>;
  using Runs = typename K::Runs;
  float* runs = reinterpret_cast<float*>(smem);
  float* chunk_sum = runs + K::kChunkSumOffset;  // [kChunks][DP]
  float* mean = runs + K::kMeanOffset;           // [DP]
  float* warp_max_s = runs + K::kWarpMaxOffset;  // [kThreads / 32]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int rank = blockIdx.x;  // the cluster spans grid.x
  const int local_chunk = tid / Runs::kThreadsPerChunk;
  const int run = (tid / Runs::kGroups) % Runs::kRuns;
  const int c0 = (tid % Runs::kGroups) * 8;
  const int64_t chunk = int64_t(rank) * K::kChunks + local_chunk;
  const int64_t t0 = chunk * kKMeanChunk + run * kKMeanRun;  // this thread's 8 keys

  uint4 raw[kKMeanRun];  // kept for the quantization: K is read once
  k_mean::load_run<T>(p, bh, t0, c0, raw);
  float4 lo, hi;
  k_mean::chunk_sum_of_runs<T, DP>(raw, runs, lo, hi);
  unpack_again_later(raw);
  if (run == 0) {
    reinterpret_cast<float4*>(chunk_sum + local_chunk * DP + c0)[0] = lo;
    reinterpret_cast<float4*>(chunk_sum + local_chunk * DP + c0)[1] = hi;
  }
  cluster::sync();  // every chunk sum of the head is written and visible to the cluster

  // The head's chunk sums in order, then one IEEE division (k_mean.cuh, step 3); each CTA
  // computes the mean for itself from the cluster's shared memory, 8 loads in flight at a time.
  if (tid < DP) {
    constexpr int kInFlight = 8;
    const int n_chunks = int(p.n_k_mean_chunks);  // <= 16 * K::kChunks here
    float total = 0.f;
    for (int first = 0; first < n_chunks; first += kInFlight) {
      float part[kInFlight];
#pragma unroll
      for (int i = 0; i < kInFlight; ++i) {
        const int c = first + i;
        part[i] = c < n_chunks ? cluster::load_shared_of(chunk_sum + (c % K::kChunks) * DP + tid, c / K::kChunks) : 0.f;
      }
#pragma unroll
      for (int i = 0; i < kInFlight; ++i) {
        if (first + i < n_chunks) total += part[i];
      }
    }
    const float m = tid < p.head_dim ? __fdiv_rn(total, float(p.kv_len)) : 0.f;
    mean[tid] = m;
    if (rank == 0) p.k_mean[bh * DP + tid] = m;
  }
  cluster::arrive();  // this CTA reads no other CTA's shared memory from here on
  __syncthreads();

  float km[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) km[j] = mean[c0 + j];
  auto smoothed = [&](int t, float(&x)[8]) { k_mean::smoothed_key<T>(raw[t], km, t0 + t < p.kv_len, c0, p.head_dim, x); };
  float amax = 0.f;
#pragma unroll
  for (int t = 0; t < kKMeanRun; ++t) {
    float x[8];
    smoothed(t, x);
#pragma unroll
    for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(x[j]));
  }
  // A chunk's 64 keys are one K scale block: the maximum over the chunk's warps.
  amax = warp_max(amax);
  if (lane == 0) warp_max_s[warp] = amax;
  __syncthreads();
  amax = warp_max_s[local_chunk * K::kWarpsPerChunk];
#pragma unroll
  for (int w = 1; w < K::kWarpsPerChunk; ++w) amax = fmaxf(amax, warp_max_s[local_chunk * K::kWarpsPerChunk + w]);
  const float inv = inverse_scale(amax, kInt8Max);
  unpack_again_later(raw);
  int8_t* k_head = p.k_int8 + bh * p.kv_len_padded * DP;
#pragma unroll
  for (int t = 0; t < kKMeanRun; ++t) {
    const int64_t key = t0 + t;
    if (key >= p.kv_len_padded) break;  // past the last tile (head_dim 64: a CTA covers two tiles)
    float x[8];
    smoothed(t, x);
    *reinterpret_cast<uint2*>(k_head + (key / kKvTile) * kKvTile * DP + tile_offset(int(key % kKvTile), c0, DP)) =
        quantize_int8x8(x, inv);
  }
  if (run == 0 && c0 == 0 && chunk < p.n_k_scale_blocks) {
    p.k_scale[bh * p.n_k_scale_blocks + chunk] = __fdiv_rn(amax, kInt8Max);
  }
  cluster::wait();  // no CTA exits while another may still read its chunk sums
}

template <typename T, int DP>
__global__ void __launch_bounds__(kThreads, 3) short_sequence_prepass_kernel(PrepassParams p) {
  __shared__ __align__(16) unsigned char smem[kSmemBytes];
  allow_dependent_launch();  // the attention kernel may launch; it waits for this grid to complete
  const int64_t bh = blockIdx.y;
  if (blockIdx.z > 0) {  // V planes: tile (z - 1) * C + x of the head
    const int64_t vt = int64_t(blockIdx.z - 1) * gridDim.x + blockIdx.x;
    if (vt < p.n_kv_tiles) quantize_v_tile<T, DP, kThreads>(p, bh * p.n_kv_tiles + vt, smem);
    return;
  }
  smooth_and_quantize_k<T, DP>(p, bh, smem);
}

template <typename T, int DP>
bool launch(const PrepassParams& p, cudaStream_t stream) {
  constexpr auto kKernel = short_sequence_prepass_kernel<T, DP>;
  const int64_t ctas = ceil_div(p.kv_len_padded, KCta<DP>::kKeys);
  const int64_t heads = int64_t(p.batch) * p.heads_kv;
  if (p.quantize_q || p.kv_len <= 0 || ctas > kLargestClusterCtas || heads > 65535 || !device_is_sm90_or_newer() ||
      !clusters_fit<kKernel>(int(ctas), kThreads)) {
    return false;
  }
  const int64_t v_planes = ceil_div(p.n_kv_tiles, ctas);
  cudaLaunchAttribute attribute;
  const cudaLaunchConfig_t config =
      cluster_launch_config(dim3(unsigned(ctas), unsigned(heads), unsigned(1 + v_planes)), dim3(kThreads),
                            dim3(unsigned(ctas)), stream, &attribute);
  cudaLaunchKernelEx(&config, kKernel, p);
  return true;
}

}  // namespace

bool launch_short_sequence_prepass(const PrepassParams& p, bool is_bf16, cudaStream_t stream) {
  if (is_bf16) {
    return p.dim_padded == 64 ? launch<__nv_bfloat16, 64>(p, stream) : launch<__nv_bfloat16, 128>(p, stream);
  }
  return p.dim_padded == 64 ? launch<__half, 64>(p, stream) : launch<__half, 128>(p, stream);
}

}  // namespace sage
