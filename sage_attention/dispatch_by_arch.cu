// Architecture dispatch: compute capability -> attention kernel.
//
// Hopper (compute capability 9.0) runs the wgmma kernel when this build holds it
// (the 9.0a unit); every other supported GPU (sm_80 Ampere, sm_89 Ada) runs the
// portable SIMT kernel. Tuned kernels for other archs plug in here and nowhere else.
//
// SAGE_ATTENTION_FORCE_KERNEL=simt makes every GPU run the portable kernel (read per
// call, so tests can check the sm_80/sm_89 path on a Hopper machine).
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "attention/attention_kernels.h"
#include "dispatch_by_arch.h"

namespace sage {
namespace {

enum class AttentionKernel { kSimt, kSm90 };

bool simt_forced() {
  const char* force = std::getenv("SAGE_ATTENTION_FORCE_KERNEL");
  return force != nullptr && std::strcmp(force, "simt") == 0;
}

AttentionKernel choose(int device) {
  if (simt_forced()) return AttentionKernel::kSimt;
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major == 9 && minor == 0 && launch_attention_sm90 != nullptr) return AttentionKernel::kSm90;
  return AttentionKernel::kSimt;
}

}  // namespace

void run_attention(const AttentionParams& p, bool out_bf16, int device, cudaStream_t stream) {
  switch (choose(device)) {
    case AttentionKernel::kSimt:
      launch_attention_simt(p, out_bf16, stream);
      break;
    case AttentionKernel::kSm90:
      launch_attention_sm90(p, out_bf16, stream);
      break;
  }
}

const char* attention_kernel_name(int device) {
  switch (choose(device)) {
    case AttentionKernel::kSimt:
      return "simt";
    case AttentionKernel::kSm90:
      return "sm90";
  }
  return "unknown";
}

}  // namespace sage
