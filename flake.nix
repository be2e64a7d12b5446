{
  description = "sage_attention: SageAttention (INT8 QK, FP8 PV) as a Hugging Face kernels Hub kernel";

  inputs = {
    kernel-builder.url = "github:huggingface/kernels";
  };

  outputs =
    { self, kernel-builder }:
    kernel-builder.lib.genKernelFlakeOutputs {
      inherit self;
      path = ./.;
    };
}
