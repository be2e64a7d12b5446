"""Bad input gets a clear error before any kernel runs; empty sequences give well-shaped results."""

import math

import pytest
import torch

from helpers import gen_qkv

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _qkv(device, **kw):
    args = dict(b=1, lq=70, lk=90, h=4, hkv=2, d=64)
    args.update(kw)
    return gen_qkv(args["b"], args["lq"], args["lk"], args["h"], args["hkv"], args["d"], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_wrong_dtype(sage, device):
    q, k, v = _qkv(device)
    with pytest.raises((TypeError, RuntimeError), match="float16 or bfloat16"):
        sage.fwd(q.float(), k.float(), v.float())


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_dtypes(sage, device):
    q, k, v = _qkv(device)
    with pytest.raises((TypeError, RuntimeError), match="share one dtype"):
        sage.fwd(q, k.half(), v)


@pytest.mark.gpu
def test_mixed_devices(sage):
    q, k, v = _qkv("cuda")
    with pytest.raises((ValueError, RuntimeError), match="one device"):
        sage.fwd(q, k.cpu(), v)


@pytest.mark.parametrize("device", DEVICES)
def test_mismatched_batch(sage, device):
    q, _, _ = _qkv(device, b=2)
    _, k, v = _qkv(device, b=1)
    with pytest.raises((ValueError, RuntimeError), match="batch sizes differ"):
        sage.fwd(q, k, v)


@pytest.mark.parametrize("device", DEVICES)
def test_mismatched_head_dim(sage, device):
    q, _, _ = _qkv(device, d=64)
    _, k, v = _qkv(device, d=128)
    with pytest.raises((ValueError, RuntimeError), match="head_dim differs"):
        sage.fwd(q, k, v)


@pytest.mark.parametrize("device", DEVICES)
def test_k_v_shapes_differ(sage, device):
    q, k, v = _qkv(device)
    with pytest.raises((ValueError, RuntimeError), match="same shape"):
        sage.fwd(q, k, v[:, :-1])


@pytest.mark.parametrize("device", DEVICES)
def test_heads_not_divisible(sage, device):
    q, k, v = _qkv(device, h=5, hkv=2)
    with pytest.raises((ValueError, RuntimeError), match="multiple of heads"):
        sage.fwd(q, k, v)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d", [0, 129, 256])
def test_head_dim_out_of_range(sage, device, d):
    q = torch.randn(1, 8, 2, d, device=device).bfloat16() + 1
    with pytest.raises((ValueError, RuntimeError), match="head_dim must be in"):
        sage.fwd(q, q, q)


@pytest.mark.parametrize("device", DEVICES)
def test_wrong_rank(sage, device):
    q, k, v = _qkv(device)
    with pytest.raises((ValueError, RuntimeError), match="4-D"):
        sage.fwd(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="4-D"):
        sage.sageattn(q[0], k[0], v[0], tensor_layout="HND")


@pytest.mark.parametrize("device", DEVICES)
def test_unknown_layout(sage, device):
    q, k, v = _qkv(device)
    with pytest.raises(ValueError, match="tensor_layout"):
        sage.sageattn(q, k, v, tensor_layout="BSHD")


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_last_dim_is_handled(sage, device):
    q, k, v = _qkv(device)
    q_t = q.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, stride(-1) != 1
    assert q_t.stride(-1) != 1
    out_ref, _ = sage.fwd(q, k, v)
    out_t, _ = sage.fwd(q_t, k, v)
    torch.testing.assert_close(out_t, out_ref, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lq,lk", [(0, 50), (50, 0), (0, 0)])
def test_zero_length_sequences(sage, device, lq, lk):
    q, k, v = _qkv(device, lq=lq, lk=lk)
    out, lse = sage.fwd(q, k, v, is_causal=True)
    assert out.shape == q.shape and out.dtype == q.dtype and out.device == q.device
    assert lse.shape == (1, 4, lq) and lse.dtype == torch.float32
    if lq:
        assert torch.all(out == 0)
        assert torch.all(lse == -math.inf)
    out_hnd = sage.sageattn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    assert out_hnd.shape == (1, 4, lq, 64)
