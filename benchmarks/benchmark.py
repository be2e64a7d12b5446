"""`kernels benchmark` entry: one benchmark_<workload> per entry of benchmarks/workloads.json.

    kernels benchmark ./            # from the repo root, against build/<variant> (get_local_kernel)

Each workload times `fwd` as a user calls it (eager, bf16 `randn * randint(1, 5)` inputs,
(B, L, H, D)). 8-bit attention is not element-wise close to full precision, so
verify_<workload> checks the output against fp32 SDPA by cosine similarity (and for
NaN/inf) and raises if it fails; it then hands the checked output to the runner's
element-wise comparison. For side-by-side numbers against the peers use
benchmarks/run_side_by_side.py.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from kernels.benchmark import Benchmark

WORKLOADS = json.loads((Path(__file__).resolve().parent / "workloads.json").read_text())["workloads"]
COS_MIN = 0.998


class SageAttentionBenchmark(Benchmark):
    seed = 0

    def _setup(self, w):
        self.workload = w
        shape = (w["batch"], w["seqlen"], w["heads"], w["head_dim"])
        self.q, self.k, self.v = (
            (torch.randn(shape) * torch.randint(1, 5, shape)).to(torch.bfloat16).to(self.device) for _ in range(3)
        )
        self.out = torch.empty_like(self.q)

    def _run(self):
        self.out = self.kernel.fwd(self.q, self.k, self.v, is_causal=self.workload["causal"])[0]

    def _verify(self):
        qt, kt, vt = (t.float().transpose(1, 2) for t in (self.q, self.k, self.v))
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=self.workload["causal"]).transpose(1, 2)
        out = self.out.float()
        if not torch.isfinite(out).all():
            raise AssertionError(f"{self.workload['name']}: output has NaN/inf")
        cos = F.cosine_similarity(out.flatten(), ref.flatten(), dim=0).item()
        if cos < COS_MIN:
            raise AssertionError(f"{self.workload['name']}: cosine similarity {cos:.5f} < {COS_MIN} vs fp32 SDPA")
        return self.out


def _add_workload(w):
    name = w["name"]
    setattr(SageAttentionBenchmark, f"setup_{name}", lambda self: self._setup(w))
    setattr(SageAttentionBenchmark, f"benchmark_{name}", lambda self: self._run())
    setattr(SageAttentionBenchmark, f"verify_{name}", lambda self: self._verify())


for _w in WORKLOADS:
    _add_workload(_w)
