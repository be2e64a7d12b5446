"""SageAttention-compatible quant helpers: shapes and math on CPU (the emulation), and the
CUDA kernels bit-identical to it (marked gpu)."""

import math

import pytest
import torch

from helpers import gen

ORDER = (0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15)


def make(shape_nhd, layout, dtype=torch.bfloat16, seed=0, device="cpu"):
    """A (B, L, H, D) tensor in `layout` (HND tensors are contiguous in HND)."""
    g = torch.Generator().manual_seed(seed)
    x = gen(shape_nhd, dtype, "cpu", g)
    x = x.transpose(1, 2).contiguous() if layout == "HND" else x
    return x.to(device)


def nhd(x, layout):
    return x.transpose(1, 2) if layout == "HND" else x


def unpermute_fp8(v_fp8, layout, length):
    """(B, H, D, P) / (B, D, H, P) stored FP8 -> (B, L, H, D) float in token order."""
    v = v_fp8.float()
    v = v.permute(0, 3, 1, 2) if layout == "HND" else v.permute(0, 3, 2, 1)  # (B, P, H, D)
    p = v.shape[1]
    src = (torch.arange(p).view(-1, 16) // 16 * 16 + torch.tensor(ORDER)).view(-1)
    out = torch.empty_like(v)
    out[:, src] = v
    return out[:, :length]


@pytest.mark.parametrize("layout", ["HND", "NHD"])
def test_per_block_int8_shapes_and_math(sage, layout):
    q = make((2, 300, 4, 64), layout, seed=1)
    k = make((2, 200, 2, 64), layout, seed=2)
    q8, qs, k8, ks = sage.per_block_int8(q, k, BLKQ=128, BLKK=64, tensor_layout=layout)
    assert q8.shape == q.shape and q8.dtype == torch.int8 and k8.shape == k.shape and k8.dtype == torch.int8
    assert qs.shape == (2, 4, 3) and ks.shape == (2, 2, 4) and qs.dtype == ks.dtype == torch.float32
    scale = 64**-0.5 * 1.44269504
    deq = nhd(q8, layout).float() * qs.transpose(1, 2).repeat_interleave(128, dim=1)[:, :300].unsqueeze(-1)
    ref = nhd(q, layout).float() * scale
    assert (deq - ref).abs().max() <= 0.51 * qs.max()
    deq_k = nhd(k8, layout).float() * ks.transpose(1, 2).repeat_interleave(64, dim=1)[:, :200].unsqueeze(-1)
    assert (deq_k - nhd(k, layout).float()).abs().max() <= 0.51 * ks.max()
    assert nhd(q8, layout).abs().amax(dim=(1, 3)).eq(127).all()  # every block uses the full range


@pytest.mark.parametrize("layout", ["HND", "NHD"])
def test_k_mean_is_subtracted_before_quantizing(sage, layout):
    q = make((1, 64, 2, 128), layout, seed=3)
    k = make((1, 130, 2, 128), layout, seed=4)
    seq_dim = 2 if layout == "HND" else 1
    km = k.float().mean(dim=seq_dim, keepdim=True).to(k.dtype)
    _, _, k8, ks = sage.per_block_int8(q, k, km=km, tensor_layout=layout)
    deq = nhd(k8, layout).float() * ks.transpose(1, 2).repeat_interleave(64, dim=1)[:, :130].unsqueeze(-1)
    ref = nhd(k, layout).float() - nhd(km, layout).float()
    assert (deq - ref).abs().max() <= 0.51 * ks.max()


@pytest.mark.parametrize("layout", ["HND", "NHD"])
def test_per_warp_int8_slots(sage, layout):
    q = make((1, 130, 3, 64), layout, seed=5)
    k = make((1, 70, 3, 64), layout, seed=6)
    q8, qs, k8, ks = sage.per_warp_int8(q, k, BLKQ=128, WARPQ=32, BLKK=64, tensor_layout=layout)
    assert qs.shape == (1, 3, 2 * 4) and ks.shape == (1, 3, 2)
    # Slots 5..7 cover rows 160..255, past the 130 rows: SageAttention's floor scale.
    assert torch.equal(qs[..., 5:], torch.full_like(qs[..., 5:], torch.tensor(1e-7) / torch.tensor(127.0)))
    deq = nhd(q8, layout).float() * qs.transpose(1, 2).repeat_interleave(32, dim=1)[:, :130].unsqueeze(-1)
    assert (deq - nhd(q, layout).float()).abs().max() <= 0.51 * qs.max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["HND", "NHD"])
def test_sub_mean(sage, layout, dtype):
    v = make((2, 77, 2, 40), layout, dtype, seed=7)
    vs, vm = sage.sub_mean(v, tensor_layout=layout)
    assert vs.shape == v.shape and vs.dtype == torch.float16 and vm.shape == (2, 2, 40) and vm.dtype == dtype
    seq_dim = 2 if layout == "HND" else 1
    torch.testing.assert_close(vm.float(), v.float().mean(dim=seq_dim), rtol=1e-2, atol=1e-2)
    expect = (nhd(v, layout).float() - vm.float().unsqueeze(1)).to(dtype).to(torch.float16)
    assert torch.equal(nhd(vs, layout), expect)


@pytest.mark.parametrize("smooth", [True, False])
@pytest.mark.parametrize("layout", ["HND", "NHD"])
def test_per_channel_fp8(sage, layout, smooth):
    v = make((1, 150, 2, 64), layout, seed=8)
    v_fp8, v_scale, vm = sage.per_channel_fp8(v, tensor_layout=layout, smooth_v=smooth)
    expected_shape = (1, 2, 64, 192) if layout == "HND" else (1, 64, 2, 192)
    assert v_fp8.shape == expected_shape and v_fp8.dtype == torch.float8_e4m3fn
    assert v_scale.shape == (1, 2, 64) and v_scale.dtype == torch.float32
    assert (vm is not None) == smooth
    deq = unpermute_fp8(v_fp8, layout, 150) * v_scale.unsqueeze(1)
    ref = nhd(v, layout).float() - (vm.unsqueeze(1) if smooth else 0)
    assert ((deq - ref).abs() <= ref.abs().amax(dim=1, keepdim=True) / 16 + 1e-6).all()  # e4m3: 3 mantissa bits
    assert unpermute_fp8(v_fp8, layout, 192)[:, 150:].eq(0).all()  # padding tokens are zeros


def test_per_channel_fp8_zero_channel_has_scale_zero(sage):
    v = make((1, 40, 1, 64), "NHD", seed=9)
    v[..., 5] = 0
    v_fp8, v_scale, _ = sage.per_channel_fp8(v, tensor_layout="NHD", smooth_v=False)
    assert v_scale[0, 0, 5] == 0 and not v_fp8.float().isnan().any() and v_fp8.float()[0, 5].eq(0).all()


def test_quant_helpers_reject_bad_input(sage):
    q = make((1, 16, 1, 64), "NHD")
    with pytest.raises(ValueError, match="tensor_layout"):
        sage.per_block_int8(q, q, tensor_layout="BHSD")
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        sage.sub_mean(q.float(), tensor_layout="NHD")
    with pytest.raises(ValueError, match="multiple of WARPQ"):
        sage.per_warp_int8(q, q, BLKQ=128, WARPQ=48, tensor_layout="NHD")
    with pytest.raises(ValueError, match="km must be"):
        sage.per_block_int8(q, q, km=torch.zeros(1, 1, 2, 64, dtype=q.dtype), tensor_layout="NHD")
    with pytest.raises(ValueError, match="scale_max"):
        sage.per_channel_fp8(q, tensor_layout="NHD", scale_max=1000.0)


HELPER_CASES = [  # (B, L, H, D), layout, dtype
    ((2, 300, 4, 128), "HND", torch.bfloat16),
    ((1, 77, 3, 40), "NHD", torch.float16),
    ((1, 1000, 2, 64), "NHD", torch.bfloat16),
    ((3, 129, 1, 96), "HND", torch.float16),
]


@pytest.mark.gpu
@pytest.mark.parametrize("shape,layout,dtype", HELPER_CASES)
def test_quant_helpers_gpu_bit_identical_to_emulation(sage, shape, layout, dtype):
    b, l, h, d = shape
    q = make(shape, layout, dtype, seed=10)
    k = make((b, l + 13, h, d), layout, dtype, seed=11)
    seq_dim = 2 if layout == "HND" else 1
    km = k.float().mean(dim=seq_dim, keepdim=True).to(dtype)
    cases = [
        lambda q, k, km: sage.per_block_int8(q, k, km=km, tensor_layout=layout),
        lambda q, k, km: sage.per_block_int8(q, k, BLKQ=64, BLKK=128, sm_scale=0.3, tensor_layout=layout),
        lambda q, k, km: sage.per_warp_int8(q, k, km=km, BLKQ=128, WARPQ=32, tensor_layout=layout),
        lambda q, k, km: sage.per_warp_int8(q, k, BLKQ=64, WARPQ=16, BLKK=128, tensor_layout=layout),
        lambda q, k, km: sage.sub_mean(k, tensor_layout=layout),
        lambda q, k, km: sage.per_channel_fp8(k, tensor_layout=layout),
        lambda q, k, km: sage.per_channel_fp8(k, tensor_layout=layout, scale_max=2.25, smooth_v=False),
    ]
    for i, run in enumerate(cases):
        gpu = run(q.cuda(), k.cuda(), km.cuda())
        cpu = run(q, k, km)
        for j, (g, c) in enumerate(zip(gpu, cpu)):
            if c is None:
                assert g is None
                continue
            g = g.cpu()
            assert g.shape == c.shape and g.dtype == c.dtype and g.stride() == c.stride(), (i, j)
            if g.dtype == torch.float8_e4m3fn:
                g, c = g.view(torch.uint8), c.view(torch.uint8)
            assert torch.equal(g, c), f"case {i} output {j}: {(g != c).sum().item()} of {c.numel()} differ"


@pytest.mark.gpu
def test_quant_helpers_gpu_large_offsets(sage):
    """More than 2^31 elements in the input: 64-bit offsets in every helper kernel."""
    free, _ = torch.cuda.mem_get_info()
    if free < 24 * 2**30:
        pytest.skip("needs ~24 GiB of free GPU memory")
    x = torch.randn(1, 2**31 // (8 * 128) + 64, 8, 128, device="cuda", dtype=torch.bfloat16)
    x[:, -1] = 100.0  # larger than any randn value: the last block's amax
    q8, qs, _, _ = sage.per_block_int8(x, x[:, :64], tensor_layout="NHD")
    assert q8[0, -1].eq(127).all() and torch.isfinite(qs).all()
    del q8
    v_fp8, v_scale, _ = sage.per_channel_fp8(x, tensor_layout="NHD", smooth_v=False)
    assert torch.isfinite(v_scale).all() and v_scale.min() > 0
    assert math.isclose(v_scale.max().item() * 448, x.float().abs().max().item(), rel_tol=1e-6)
