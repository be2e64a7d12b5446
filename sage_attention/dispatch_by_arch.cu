// Architecture dispatch: compute capability -> attention kernel.
//
// Hopper (compute capability 9.0) runs the wgmma kernel when this build holds it
// (the 9.0a unit); every other supported GPU (sm_80 Ampere, sm_89 Ada) runs the
// portable SIMT kernel. Tuned kernels for other archs plug in here and nowhere else.
#include <cuda_runtime.h>

#include "attention/attention_kernels.h"
#include "dispatch_by_arch.h"

namespace sage {
namespace {

enum class AttentionKernel { kSimt, kSm90 };

AttentionKernel choose(int device) {
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
