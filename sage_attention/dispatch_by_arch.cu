// Architecture dispatch: compute capability -> attention kernel.
//
// Hopper (compute capability 9.0) runs the wgmma kernel when this build holds it
// (the 9.0a unit); every other supported GPU (sm_80 Ampere, sm_89 Ada) runs the
// portable SIMT kernel. Tuned kernels for other archs plug in here and nowhere else.
//
// SAGE_ATTENTION_FORCE_KERNEL=simt makes every GPU run the portable kernel (read per
// call, so tests can check the sm_80/sm_89 path on a Hopper machine); =sm90_wide or
// =sm90_narrow pins the Hopper kernel's tiling (tests check both; neither lets the warp-specialized
// kernel run); =sm90_ws192 runs the warp-specialized 192-key kernel wherever it applies (head_dim
// 65-128, padded to 128; causal or not) and the narrow tiling elsewhere. Unpinned, it runs where it
// measured faster (ws192_is_faster).
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "attention/attention_kernels.h"
#include "dispatch_by_arch.h"
#include "hopper/launch_setup.h"

namespace sage {
namespace {

enum class AttentionKernel { kSimt, kSm90 };

const char* forced_kernel() { return std::getenv("SAGE_ATTENTION_FORCE_KERNEL"); }

bool forced(const char* name) {
  const char* force = forced_kernel();
  return force != nullptr && std::strcmp(force, name) == 0;
}

AttentionKernel choose(int device) {
  if (forced("simt")) return AttentionKernel::kSimt;
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major == 9 && minor == 0 && launch_attention_sm90 != nullptr) return AttentionKernel::kSm90;
  return AttentionKernel::kSimt;
}

// Wide (128 query rows per CTA, one CTA per SM) or narrow (64 rows, three per SM). Since v13
// (NOTES.md) narrow is faster on every standard workload, by 10-44% (flux_L128 0.0366 vs
// 0.0414 ms, large 1.41 vs 1.77, wan 27.5 vs 30.3), last waves included, so it is the
// choice; wide stays selectable (SAGE_ATTENTION_FORCE_KERNEL=sm90_wide) and tested.
// Three narrow CTAs per SM is what the H100/H200's 228 KB of shared memory per SM holds
// (3 x 76.4 KB); on a part with less, narrow would run fewer per SM: slower, still correct.
Sm90Tiling sm90_tiling_for() {
  return forced("sm90_wide") ? Sm90Tiling::kWide : Sm90Tiling::kNarrow;
}

// The warp-specialized kernel (hopper/attention_sm90_ws.cu: 192-key steps, 128-row tiles taken in
// turn by one persistent CTA per SM) against the narrow tiling, fwd (it on the pre-pass's INT8 Q,
// narrow quantizing Q itself), H100, one process. Since w8 (session 25: row sums of P on the tensor
// cores, ~7% off its step; benchmarks/results/2026-11-24_s25_ws192_core_row_sums, fwd ws192/narrow):
//  - 16384 keys: 0.92-0.98 from 11.6 to 46 rounds of tiles over the SMs (1x16384x12, x24, x48,
//    2x16384x6, and 1x32768x6), level at 5.8 and 10.7 rounds (x6, x11): the bound is 11 rounds;
//  - 8192-12288 keys: 0.89-0.98 from 31 rounds (1x8192x64 and x96, 1x10240x56 and x64, 1x12288x48
//    and x64, 2x12288x24), 0.91 at 27 (1x12288x36), but 0.98-1.04 at 8.7-23 rounds;
//  - 8192 keys and below with fewer rounds, and the 4k workloads (large: 31 rounds, +7%), slower:
//    its fwd's pre-pass quantizes Q too (at 1x8192x24 fwd less the kernel is 151 us against narrow's
//    79), which more rounds of tiles (less of the last, partial one) and longer rows pay for.
// Before w8 the bound was 18432 keys and 30 rounds (sessions 20-21). The rule keeps to what was
// measured: long queries as well as keys (a short q_len pads its 128-row tiles).
// With the causal mask (session 26: its tiles stop at their diagonal, its CTAs take items of a heavy
// and a light tile; benchmarks/results/2026-11-24_s26_ws192_causal), kernel alone ws192 / narrow:
//  - 32760-65536 keys at 31-78 rounds of tiles: 0.92-0.97 (1x65536x8 0.92, 1x32768x16 0.97,
//    1x32760x40 0.96; fwd 0.95 at 1x32760x40, level at the other two);
//  - 8192-24576 keys: level (2x8192x32, 1x16384x24, 2x24576x16), 1.02-1.03 (1x24576x32,
//    1x16384x48); 4x4096x32: 1.06. A causal tile's fixed cost (its first steps without a P·V beside
//    them, its epilogue) and its one or two masked steps weigh on rows of half the average length.
bool ws192_is_faster(const AttentionParams& p, int device) {
  if (p.head_dim != 128) return false;
  const int64_t length = p.q_len < p.kv_len ? p.q_len : p.kv_len;
  const int64_t tiles = attention_sm90_ws192_tiles(p), sms = sm90::device_sms(device);
  if (p.is_causal) return length >= 32760 && tiles >= 30 * sms;
  return (length >= 16384 && tiles >= 11 * sms) || (length >= 8192 && tiles >= 30 * sms);
}

// On a Hopper device: whether these parameters (shapes; q_input unset: the kernel reads the
// pre-pass's INT8 Q, so fwd's pre-pass then quantizes Q) run the warp-specialized kernel.
bool runs_ws192(const AttentionParams& p, int device) {
  if (launch_attention_sm90_ws192 == nullptr || attention_sm90_ws192_takes == nullptr || attention_sm90_ws192_tiles == nullptr ||
      forced("sm90_narrow") || forced("sm90_wide")) {
    return false;
  }
  return attention_sm90_ws192_takes(p) && (forced("sm90_ws192") || ws192_is_faster(p, device));
}

}  // namespace

void run_attention(const AttentionParams& p, bool out_bf16, int device, cudaStream_t stream) {
  // The caller chose in-kernel Q (attention_quantizes_q was true for these parameters): only the
  // narrow Hopper kernel takes it, so it runs even if the environment pin changed meanwhile.
  if (p.q_input.ptr != nullptr) {
    launch_attention_sm90(p, out_bf16, Sm90Tiling::kNarrow, stream);
    return;
  }
  switch (choose(device)) {
    case AttentionKernel::kSimt:
      launch_attention_simt(p, out_bf16, stream);
      break;
    case AttentionKernel::kSm90:
      if (runs_ws192(p, device)) {
        launch_attention_sm90_ws192(p, out_bf16, stream);
      } else {
        launch_attention_sm90(p, out_bf16, sm90_tiling_for(), stream);
      }
      break;
  }
}

// Only the narrow tiling quantizes Q itself; the wide and the warp-specialized kernels read the
// pre-pass's INT8 Q, so where the warp-specialized kernel will run, fwd's pre-pass quantizes Q.
bool attention_quantizes_q(const AttentionParams& p, int device) {
  return choose(device) == AttentionKernel::kSm90 && sm90_tiling_for() == Sm90Tiling::kNarrow && !runs_ws192(p, device);
}

const char* attention_kernel_name(int device) {
  switch (choose(device)) {
    case AttentionKernel::kSimt:
      return "simt";
    case AttentionKernel::kSm90:  // a pinned tiling is named, so tests can see the pin took effect
      return forced("sm90_wide")     ? "sm90_wide"
             : forced("sm90_narrow") ? "sm90_narrow"
             : forced("sm90_ws192")  ? "sm90_ws192"
                                     : "sm90";
  }
  return "unknown";
}

}  // namespace sage
