// Architecture dispatch: compute capability -> attention kernel.
//
// Today every supported GPU (sm_80 Ampere, sm_89 Ada, sm_90 Hopper) runs the
// portable SIMT kernel; tuned per-arch kernels (Hopper wgmma first) plug in here
// and nowhere else.
#include <cuda_runtime.h>

#include "attention/attention_kernels.h"
#include "dispatch_by_arch.h"

namespace sage {
namespace {

enum class AttentionKernel { kSimt };

AttentionKernel choose(int device) {
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  (void)minor;
  return AttentionKernel::kSimt;
}

}  // namespace

void run_attention(const AttentionParams& p, bool out_bf16, int device, cudaStream_t stream) {
  switch (choose(device)) {
    case AttentionKernel::kSimt:
      launch_attention_simt(p, out_bf16, stream);
      break;
  }
}

const char* attention_kernel_name(int device) {
  switch (choose(device)) {
    case AttentionKernel::kSimt:
      return "simt";
  }
  return "unknown";
}

}  // namespace sage
