// Times FlashAttention-3's FP8 (e4m3) forward kernel at head_dim 128 on given shapes, with CUDA
// events, and checks one small shape against an fp32 reference on the host. A peer measurement
// for sage_attention's kernel notes: built outside the repository against an FA3 checkout.
//
// Inputs: randn * randint(1, 5) rounded to e4m3 (per-tensor descale 1), softmax scale 1/sqrt(d).
// Build: benchmarks/peers/build_fa3_fp8_timer.sh. Usage: fa3_fp8_timer B,S,H,causal [...] (prints a
// correctness check and each shape's median), or load libfa3_fp8_timer.so (benchmarks/peer_fa3_fp8.py).
#include <cuda_runtime.h>
#include <cuda_fp8.h>
#include <cuda_bf16.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "flash.h"
#include "cutlass/numeric_types.h"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
  std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); std::exit(1); } } while (0)

// Declared by the instantiation file compiled beside this one.
template <int Arch, typename T, int kHeadDim, int kHeadDimV, bool Split, bool PagedKVNonTMA, bool Has_softcap, bool PackGQA>
void run_mha_fwd_(Flash_fwd_params &params, cudaStream_t stream);

// Only the varlen path calls this; the build disables varlen.
void prepare_varlen_num_blocks(Flash_fwd_params &, cudaStream_t, bool, int, int, bool) {
  std::fprintf(stderr, "prepare_varlen_num_blocks called: varlen is not built\n");
  std::abort();
}

__device__ unsigned mix(unsigned x) {
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16; return x;
}

// Box-Muller normal times an integer 1..4 drawn once per row of 128 channels.
__global__ void fill_e4m3(__nv_fp8_e4m3 *dst, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    unsigned a = mix(unsigned(i) * 2654435761U ^ seed), b = mix(a ^ 0x9e3779b9U);
    float u1 = (a >> 8) * (1.0f / 16777216.0f) + 1e-7f, u2 = (b >> 8) * (1.0f / 16777216.0f);
    float g = sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
    float m = float(1 + mix(unsigned(i / 128) ^ seed ^ 0x51ed27u) % 4);
    dst[i] = __nv_fp8_e4m3(g * m);
  }
}

struct Shape { int b, s, h; bool causal; };

static void set_params(Flash_fwd_params &p, const Shape &sh, void *q, void *k, void *v, void *o, float *lse,
                       int *semaphore, int num_sm) {
  const int d = 128;
  p = {};
  p.is_e4m3 = true;
  p.q_ptr = q; p.k_ptr = k; p.v_ptr = v; p.o_ptr = o;
  // (batch, seq, heads, dim) contiguous; strides in elements.
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = int64_t(sh.h) * d;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = d;
  p.v_dim_stride = 1;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = int64_t(sh.s) * sh.h * d;
  p.softmax_lse_ptr = lse;
  p.b = p.b_k = sh.b; p.h = p.h_k = sh.h;
  p.seqlen_q = p.seqlen_k = sh.s;
  p.seqlen_q_rounded = p.seqlen_k_rounded = (sh.s + 127) / 128 * 128;
  p.d = p.d_rounded = p.dv = p.dv_rounded = d;
  p.total_q = p.total_k = sh.b * sh.s;
  p.scale_softmax = 1.0f / std::sqrt(float(d));
  p.p_dropout = 1.f; p.p_dropout_in_uint8_t = 255; p.rp_dropout = 1.f;
  p.is_causal = sh.causal; p.is_local = false;
  p.window_size_left = sh.s - 1; p.window_size_right = sh.causal ? 0 : sh.s - 1;
  p.num_splits = 1; p.pack_gqa = false;
  p.arch = 90; p.num_sm = num_sm;
  p.varlen_sort_batches = true; p.head_swizzle = sh.causal;
  // FA3's own API zeroes this counter before each causal call (the dynamic persistent scheduler).
  p.tile_count_semaphore = sh.causal ? semaphore : nullptr;
}

static float e4m3_to_float(__nv_fp8_e4m3 x) { return float(x); }

// fp32 reference for every row of a small shape.
static void check_small(int num_sm) {
  for (int causal = 0; causal < 2; ++causal) {
    Shape sh{1, 300, 2, bool(causal)};
    const int d = 128; size_t n = size_t(sh.b) * sh.s * sh.h * d;
    __nv_fp8_e4m3 *q, *k, *v; __nv_bfloat16 *o; float *lse; int *sem;
    CK(cudaMalloc(&q, n)); CK(cudaMalloc(&k, n)); CK(cudaMalloc(&v, n));
    CK(cudaMalloc(&o, n * 2)); CK(cudaMalloc(&lse, sizeof(float) * sh.s * sh.h)); CK(cudaMalloc(&sem, 4));
    fill_e4m3<<<64, 256>>>(q, n, 11); fill_e4m3<<<64, 256>>>(k, n, 12); fill_e4m3<<<64, 256>>>(v, n, 13);
    Flash_fwd_params p; set_params(p, sh, q, k, v, o, lse, sem, num_sm);
    CK(cudaMemset(sem, 0, 4));
    run_mha_fwd_<90, cutlass::float_e4m3_t, 128, 128, false, false, false, false>(p, 0);
    CK(cudaDeviceSynchronize());
    std::vector<__nv_fp8_e4m3> hq(n), hk(n), hv(n); std::vector<__nv_bfloat16> ho(n);
    CK(cudaMemcpy(hq.data(), q, n, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(hk.data(), k, n, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hv.data(), v, n, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(ho.data(), o, n * 2, cudaMemcpyDeviceToHost));
    double dot = 0, nr = 0, no = 0, l1 = 0, l1r = 0; bool finite = true;
    std::vector<double> s(sh.s);
    for (int h = 0; h < sh.h; ++h) for (int i = 0; i < sh.s; ++i) {
      double mx = -1e300;
      for (int j = 0; j < sh.s; ++j) {
        double acc = 0;
        for (int c = 0; c < d; ++c)
          acc += double(e4m3_to_float(hq[(size_t(i) * sh.h + h) * d + c])) * e4m3_to_float(hk[(size_t(j) * sh.h + h) * d + c]);
        s[j] = (causal && j > i) ? -1e300 : acc / std::sqrt(double(d));
        mx = std::max(mx, s[j]);
      }
      double sum = 0; for (int j = 0; j < sh.s; ++j) { s[j] = s[j] < -1e299 ? 0 : std::exp(s[j] - mx); sum += s[j]; }
      for (int c = 0; c < d; ++c) {
        double r = 0; for (int j = 0; j < sh.s; ++j) r += s[j] * e4m3_to_float(hv[(size_t(j) * sh.h + h) * d + c]);
        r /= sum; double g = __bfloat162float(ho[(size_t(i) * sh.h + h) * d + c]);
        finite = finite && std::isfinite(g);
        dot += r * g; nr += r * r; no += g * g; l1 += std::fabs(r - g); l1r += std::fabs(r);
      }
    }
    std::printf("check 1x300x2 %s: cos %.6f rel-L1 %.4f finite %d\n", causal ? "causal" : "non-causal",
                dot / std::sqrt(nr * no), l1 / l1r, int(finite));
    cudaFree(q); cudaFree(k); cudaFree(v); cudaFree(o); cudaFree(lse); cudaFree(sem);
  }
}

// Median ms of `target_ms` worth of timed calls (at least 10) on one shape, after 5 warm-up calls.
static double time_shape(const Shape &sh, int num_sm, float target_ms, int seed, int *runs) {
  const int d = 128; size_t n = size_t(sh.b) * sh.s * sh.h * d;
  __nv_fp8_e4m3 *q, *k, *v; __nv_bfloat16 *o; float *lse; int *sem;
  CK(cudaMalloc(&q, n)); CK(cudaMalloc(&k, n)); CK(cudaMalloc(&v, n));
  CK(cudaMalloc(&o, n * 2)); CK(cudaMalloc(&lse, sizeof(float) * size_t(sh.b) * sh.s * sh.h)); CK(cudaMalloc(&sem, 4));
  fill_e4m3<<<1024, 256>>>(q, n, 1 + seed); fill_e4m3<<<1024, 256>>>(k, n, 100 + seed); fill_e4m3<<<1024, 256>>>(v, n, 200 + seed);
  Flash_fwd_params p; set_params(p, sh, q, k, v, o, lse, sem, num_sm);
  auto call = [&] {
    if (sh.causal) CK(cudaMemsetAsync(sem, 0, 4, 0));
    run_mha_fwd_<90, cutlass::float_e4m3_t, 128, 128, false, false, false, false>(p, 0);
  };
  for (int i = 0; i < 5; ++i) call();
  CK(cudaDeviceSynchronize());
  cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  CK(cudaEventRecord(e0)); call(); CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
  float once = 0; CK(cudaEventElapsedTime(&once, e0, e1));
  int reps = std::max(10, std::min(400, int(target_ms / std::max(once, 1e-3f))));
  // Queued back to back with one sync at the end (as sage_attention's time_ms and triton's
  // do_bench do), so a call's time is the GPU's, not the host's launch latency.
  std::vector<float> ms(reps);
  std::vector<cudaEvent_t> starts(reps), ends(reps);
  for (int r = 0; r < reps; ++r) { CK(cudaEventCreate(&starts[r])); CK(cudaEventCreate(&ends[r])); }
  for (int r = 0; r < reps; ++r) { CK(cudaEventRecord(starts[r])); call(); CK(cudaEventRecord(ends[r])); }
  CK(cudaDeviceSynchronize());
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventElapsedTime(&ms[r], starts[r], ends[r]));
    CK(cudaEventDestroy(starts[r])); CK(cudaEventDestroy(ends[r]));
  }
  std::sort(ms.begin(), ms.end());
  CK(cudaEventDestroy(e0)); CK(cudaEventDestroy(e1));
  cudaFree(q); cudaFree(k); cudaFree(v); cudaFree(o); cudaFree(lse); cudaFree(sem);
  if (runs) *runs = reps;
  return ms[reps / 2];
}

static int device_sms() {
  int dev = 0, num_sm = 0; CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&num_sm, cudaDevAttrMultiProcessorCount, dev));
  return num_sm;
}

// Entry points for ctypes (benchmarks time FA3 in the same process as sage_attention).
extern "C" void fa3_fp8_check() { check_small(device_sms()); std::fflush(stdout); }
extern "C" double fa3_fp8_median_ms(int b, int s, int h, int causal, float target_ms, int seed) {
  return time_shape(Shape{b, s, h, causal != 0}, device_sms(), target_ms, seed, nullptr);
}

int main(int argc, char **argv) {
  int num_sm = device_sms();
  check_small(num_sm);
  for (int a = 1; a < argc; ++a) {
    Shape sh{}; int c = 0;
    if (std::sscanf(argv[a], "%d,%d,%d,%d", &sh.b, &sh.s, &sh.h, &c) != 4) { std::fprintf(stderr, "bad shape %s\n", argv[a]); return 2; }
    sh.causal = c != 0;
    int reps = 0;
    double med = time_shape(sh, num_sm, 1500.0f, a, &reps);
    double ops = 4.0 * sh.b * sh.h * double(sh.s) * sh.s * 128 * (sh.causal ? 0.5 : 1.0);
    std::printf("fa3_fp8 %dx%dx%dx128 %s: median %.4f ms (%d runs) %.0f TOPS\n", sh.b, sh.s, sh.h,
                sh.causal ? "causal" : "non-causal", med, reps, ops / (med * 1e-3) / 1e12);
  }
  return 0;
}
