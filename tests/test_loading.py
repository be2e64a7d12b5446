"""Users' loading path: get_kernel("kernels-community/sage_attention", version=1) with
LOCAL_KERNELS pointing at this repo, offline, in a fresh process."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_get_kernel_with_local_kernels_offline(variant_dir, device):
    code = (
        "import json, torch\n"
        "from kernels import get_kernel\n"
        "k = get_kernel('kernels-community/sage_attention', version=1)\n"
        f"q = (torch.randn(1, 300, 4, 128) * torch.randint(1, 5, (1, 300, 4, 128))).bfloat16().to('{device}')\n"
        "o, lse = k.fwd(q, q, q, is_causal=False)\n"
        "o2 = k.sageattn(q.transpose(1, 2), q.transpose(1, 2), q.transpose(1, 2))\n"
        "print(json.dumps({'name': k.__name__, 'kernel': k.attention_kernel_name(q.device),"
        " 'nan': bool(o.isnan().any()), 'same': bool(torch.equal(o, o2.transpose(1, 2)))}))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", LOCAL_KERNELS=f"kernels-community/sage_attention={ROOT}")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["name"] == json.loads((variant_dir / "metadata.json").read_text())["id"]
    assert not info["nan"] and info["same"]
    if device == "cpu":
        assert info["kernel"] == "cpu-emulation"
