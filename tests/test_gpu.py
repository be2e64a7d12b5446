"""GPU paths against the CPU emulation (the oracle) and fp32 attention.
Marked `gpu`: they run on the GPU machine and are skipped elsewhere."""

import importlib

import pytest
import torch

from cases import PREPASS_SHAPES, SHAPES, shape_id
from helpers import accuracy, gen_qkv, reference, tiny_v_tile_qkv

pytestmark = pytest.mark.gpu

COS_MIN, REL_L1_MAX = 0.998, 0.05
# GPU vs emulation: the same quantized tensors; the kernels differ only in fp32 rounding
# (order of sums, exp2's last bits, the Hopper kernel's P·V accumulated in the tensor-core
# accumulator with the V scale folded into the rescale), which can flip an occasional FP8
# rounding of P.
EMU_REL_L1_MAX, EMU_MAX_ABS_FRAC = 2e-3, 2e-2


def _to_cpu(qkv):
    return [t.cpu() for t in qkv]


@pytest.mark.parametrize("shape", SHAPES + PREPASS_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_quantized_tensors_bit_identical_to_emulation(sage, shape, dtype):
    b, lq, lk, h, hkv, d, _ = shape
    q, k, v = gen_qkv(b, lq, lk, h, hkv, d, dtype=dtype, seed=11)
    gpu = sage.quantize_qkv(q.cuda(), k.cuda(), v.cuda())
    cpu = sage.quantize_qkv(q, k, v)
    for name in ("q_int8", "k_int8", "q_scale", "k_scale", "k_mean", "v_scale"):
        g, c = getattr(gpu, name).cpu(), getattr(cpu, name)
        assert g.shape == c.shape, name
        assert torch.equal(g, c), f"{name}: {(g != c).sum().item()} of {c.numel()} differ"
    assert torch.equal(gpu.v_fp8.cpu().view(torch.uint8), cpu.v_fp8.view(torch.uint8)), "v_fp8 differs"
    torch.testing.assert_close(gpu.lse_shift.cpu(), cpu.lse_shift, rtol=1e-5, atol=1e-4)


def _is_hopper():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


def _ws192_emulated(sage, q, k, v, is_causal, dtype):
    """The emulation of the warp-specialized kernel (192-key steps) on CPU copies of NHD q, k, v."""
    emu = importlib.import_module(sage.__name__ + ".emulation_attention")
    return emu.attention_emulated(sage.quantize_qkv(q, k, v), q.shape[1], k.shape[1], q.shape[3], is_causal, dtype,
                                  kv_step=emu.STEP_192)


def _ws192_pinned_vs_emulation(sage, monkeypatch, q, k, v, is_causal=False):
    """fwd with the warp-specialized kernel pinned (CPU inputs, run on the GPU) and its emulation:
    (out, lse, emu_out, emu_lse), all on CPU."""
    monkeypatch.setenv("SAGE_ATTENTION_FORCE_KERNEL", "sm90_ws192")
    out, lse = sage.fwd(q.cuda(), k.cuda(), v.cuda(), is_causal=is_causal)
    return (out.cpu(), lse.cpu()) + tuple(_ws192_emulated(sage, q, k, v, is_causal, q.dtype))


@pytest.fixture(params=["dispatched", "simt", "sm90_wide", "sm90_narrow", "sm90_ws192"])
def attention_kernel(request, monkeypatch):
    """Run a test with the kernel the dispatch picks, again with the portable SIMT kernel
    forced (the sm_80/sm_89 path, which a Hopper machine would otherwise never run), and on
    Hopper with each of the sm90 kernel's tilings pinned (the dispatch picks one by size)."""
    if request.param.startswith("sm90") and not _is_hopper():
        pytest.skip("the sm90 tilings run on compute capability 9.0 only")
    if request.param != "dispatched":
        monkeypatch.setenv("SAGE_ATTENTION_FORCE_KERNEL", request.param)
    return request.param


@pytest.mark.parametrize("shape", SHAPES + PREPASS_SHAPES[:1], ids=shape_id)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fwd_gpu_matches_emulation_and_fp32(sage, shape, dtype, attention_kernel):
    b, lq, lk, h, hkv, d, causal = shape
    q, k, v = gen_qkv(b, lq, lk, h, hkv, d, dtype=dtype, seed=12)
    out, lse = sage.fwd(q.cuda(), k.cuda(), v.cuda(), is_causal=causal)
    torch.cuda.synchronize()
    out, lse = out.cpu(), lse.cpu()
    assert not out.isnan().any() and not lse.isnan().any()
    if attention_kernel == "sm90_ws192" and 64 < d <= 128:  # where that kernel runs
        emu_out, emu_lse = _ws192_emulated(sage, q, k, v, causal, dtype)
    else:
        emu_out, emu_lse = sage.fwd(q, k, v, is_causal=causal)
    _, rel_emu, max_emu = accuracy(out, emu_out)
    assert rel_emu <= EMU_REL_L1_MAX and max_emu <= EMU_MAX_ABS_FRAC * emu_out.float().abs().max(), (rel_emu, max_emu)
    finite = emu_lse.isfinite()
    assert torch.equal(lse.isfinite(), finite)
    torch.testing.assert_close(lse[finite], emu_lse[finite], rtol=0, atol=1e-3)
    ref, _, rows = reference(q, k, v, causal)
    cos, rel, _ = accuracy(out[:, rows], ref[:, rows])
    assert cos >= COS_MIN and rel <= REL_L1_MAX, (cos, rel)


@pytest.mark.skipif(not _is_hopper(), reason="the sm90 kernels run on compute capability 9.0 only")
def test_ws192_sums_a_tiny_v_tile_on_the_cuda_cores(sage, monkeypatch):
    """The warp-specialized kernel takes a step's row sums from FP8 P on the tensor cores, except
    where one V tile's scale is far below the other's (online_softmax.cuh kMinRatioForCoreSums):
    there the tile's p' rounds to 0, and sums from FP8 P would normalise the rows by the other
    keys alone (tiny_v_tile_qkv: output ~3 instead of ~0.05). Against fp32 attention and the
    emulation, which follows the same rule. The output is a small residual (~0.05, from weights of
    ~e^-6 on values ~3), so the FP8 roundings of P that exp2.approx flips against the CPU's exp2 move
    it by ~1% of itself: every Hopper kernel, narrow and the fp32-sum ws192 too, is 0.9% from the
    emulation here (rel-L1), hence a looser bound than EMU_REL_L1_MAX."""
    q, k, v = tiny_v_tile_qkv()
    out, lse, emu_out, emu_lse = _ws192_pinned_vs_emulation(sage, monkeypatch, q, k, v)
    _, rel_emu, _ = accuracy(out, emu_out)
    assert rel_emu <= 0.02, rel_emu
    torch.testing.assert_close(lse, emu_lse, rtol=0, atol=1e-3)
    ref, _, _ = reference(q, k, v, False)
    cos, rel, _ = accuracy(out, ref)
    assert cos >= COS_MIN and rel <= REL_L1_MAX, (cos, rel)


@pytest.mark.skipif(not _is_hopper(), reason="the sm90 kernels run on compute capability 9.0 only")
@pytest.mark.parametrize("kv_len", [256, 1024, 1088])
def test_ws192_last_step_past_kv_len_matches_emulation(sage, monkeypatch, kv_len):
    """kv_len a multiple of 128 but not of 192: the last 192-key step reaches past kv_len though the
    padded K holds no key beyond it. The kernel sums that step's fp32 p on the CUDA cores (its masked
    steps), and so must the emulation (its rule once looked only at hidden keys, and took FP8 sums
    there: lse 0.017 off at 256 and 1024 keys)."""
    q, k, v = gen_qkv(1, 300, kv_len, 2, 2, 128, seed=12)
    out, lse, emu_out, emu_lse = _ws192_pinned_vs_emulation(sage, monkeypatch, q, k, v)
    _, rel_emu, _ = accuracy(out, emu_out)
    assert rel_emu <= EMU_REL_L1_MAX, rel_emu
    torch.testing.assert_close(lse, emu_lse, rtol=0, atol=1e-3)


@pytest.mark.skipif(not _is_hopper(), reason="the sm90 kernels run on compute capability 9.0 only")
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1000, 1000, 4, 4, 128, True),  # 8 q blocks: 4 items of two tiles per head
        (2, 1300, 1300, 6, 2, 128, True),  # 11 q blocks (the middle item holds one tile), GQA
        (1, 500, 3000, 3, 3, 128, True),  # q_len < kv_len: every row sees at least 2501 keys
        (1, 3000, 500, 3, 1, 128, True),  # q_len > kv_len: the first 2500 rows see no key (one masked step)
        (2, 3000, 3000, 16, 8, 128, True),  # 384 items on at most 132 CTAs: each takes ~3 in turn
        (1, 700, 700, 2, 2, 96, True),  # head_dim 96, padded to 128
    ],
    ids=shape_id,
)
def test_ws192_causal_matches_emulation_and_fp32(sage, monkeypatch, shape):
    """The warp-specialized kernel with the causal mask (bottom-right aligned): its tiles take the
    steps up to their last row's last visible key, the steps past their first row's take the masked
    softmax with fp32 row sums (emulation_attention.py follows the same rule), and its persistent
    CTAs take items of two tiles, the heavy and the light one of a head. Against the emulation and
    fp32 attention."""
    b, lq, lk, h, hkv, d, causal = shape
    q, k, v = gen_qkv(b, lq, lk, h, hkv, d, seed=23)
    out, lse, emu_out, emu_lse = _ws192_pinned_vs_emulation(sage, monkeypatch, q, k, v, is_causal=True)
    assert not out.isnan().any() and not lse.isnan().any()
    _, rel_emu, max_emu = accuracy(out, emu_out)
    assert rel_emu <= EMU_REL_L1_MAX and max_emu <= EMU_MAX_ABS_FRAC * emu_out.float().abs().max(), (rel_emu, max_emu)
    finite = emu_lse.isfinite()
    assert torch.equal(lse.isfinite(), finite)
    # The row sums of FP8 P: where exp2.approx and the CPU's exp2 round a row's largest p' to
    # neighbouring FP8 values, that row's lse moves by 1e-3 to a few 1e-2 (here 1 row of 96,000 at
    # 1.7e-3; in review 3 rows of 320,000 at up to 6.5e-3 on 2x4000x4000x40, and the non-causal kernel
    # 0.036 on one row there). A step summed by the wrong rule would move every row of its tiles
    # (~1e-2: the kv_len test above), far more than 0.1% of the rows.
    lse_diff = (lse[finite] - emu_lse[finite]).abs()
    assert lse_diff.max() <= 0.05 and (lse_diff > 1e-3).float().mean() <= 1e-3, (lse_diff.max(), (lse_diff > 1e-3).sum())
    ref, _, rows = reference(q, k, v, causal)
    cos, rel, _ = accuracy(out[:, rows], ref[:, rows])
    assert cos >= COS_MIN and rel <= REL_L1_MAX, (cos, rel)
    if lq > lk:  # rows that see no key: out 0, lse -inf
        assert not out[:, : lq - lk].any() and torch.isneginf(lse[:, :, : lq - lk]).all()


def test_sageattn_layouts_agree_on_gpu(sage):
    q, k, v = gen_qkv(2, 300, 260, 8, 4, 128, device="cuda", seed=13)
    out_nhd = sage.sageattn(q, k, v, tensor_layout="NHD", is_causal=True)
    qh, kh, vh = (t.transpose(1, 2).contiguous() for t in (q, k, v))  # genuinely HND memory
    out_hnd, lse = sage.sageattn(qh, kh, vh, tensor_layout="HND", is_causal=True, return_lse=True)
    assert out_hnd.shape == (2, 8, 300, 128) and lse.shape == (2, 8, 300)
    torch.testing.assert_close(out_hnd.transpose(1, 2), out_nhd, rtol=0, atol=0)


def test_two_runs_are_bit_identical(sage):
    q, k, v = gen_qkv(1, 1000, 1000, 8, 8, 128, device="cuda", seed=14)
    a, la = sage.fwd(q, k, v)
    b, lb = sage.fwd(q, k, v)
    assert torch.equal(a, b) and torch.equal(la, lb)


def test_every_output_element_is_written(sage):
    """Poison the caching allocator's memory first: a skipped element would show up as NaN."""
    q, k, v = gen_qkv(1, 190, 250, 4, 2, 96, device="cuda", seed=15)
    for _ in range(3):
        junk = torch.full((1, 190, 4, 96), float("nan"), device="cuda", dtype=torch.bfloat16)
        del junk
        out, lse = sage.fwd(q, k, v, is_causal=False)
        assert not out.isnan().any() and not lse.isnan().any()


@pytest.mark.parametrize(
    "shape, dtype, hnd",
    [
        ((1, 200, 300, 4, 2, 64, True), torch.bfloat16, False),
        ((2, 300, 333, 8, 4, 128, False), torch.float16, False),
        ((1, 190, 250, 4, 2, 96, False), torch.bfloat16, True),
        ((1, 1000, 1000, 2, 1, 128, True), torch.bfloat16, True),
        # fwd's one-launch pre-pass on Hopper (short_sequence_prepass.cu) at its limits: a
        # 16-CTA cluster (2048 keys at head_dim 128, 4096 at 64), a single key, and one key past
        # the limit (the K-mean and quantizer launches again).
        ((1, 64, 2048, 4, 2, 128, False), torch.bfloat16, False),
        ((1, 100, 4096, 2, 2, 64, False), torch.float16, True),
        ((1, 130, 1, 2, 1, 128, False), torch.bfloat16, False),
        ((1, 70, 2049, 2, 1, 128, True), torch.bfloat16, False),
        ((2, 64, 3969, 4, 2, 64, False), torch.bfloat16, False),  # batch > 1, GQA, head_dim 64, 16-CTA clusters
        # Causal heavy-first grid (hopper/cta_order.cuh) with a spare CTA: 10000 keys make groups of
        # at most 6 kv heads, so 7 heads take 2 groups of 4 slots, one of them without a head. Both
        # kernel variants (Q quantized in the kernel, and pre-quantized) must skip it alike.
        ((1, 300, 10000, 7, 7, 128, True), torch.bfloat16, False),
        # The same under GQA: at 20000 keys a group holds at most 3 kv heads, so 7 kv heads take
        # 4 groups of 2 (4 query-head slots each): 16 slots for 14 query heads, 2 without a head.
        ((1, 300, 20000, 14, 7, 128, True), torch.bfloat16, False),
        # The warp-specialized kernel (sm90_ws192): 720 tiles of 128 rows on at most 132 persistent
        # CTAs, so each CTA's staging rows and Q tile are reused many times; "HND" strides, GQA, a
        # last q block of 60 rows (its second consumer has none), 400 keys in steps of 192, 192, 16.
        ((3, 700, 400, 40, 8, 128, False), torch.bfloat16, True),
        # One 192-key step per tile (the tile's first point is also its last Q·Kᵀ), ~10 tiles per CTA.
        ((2, 1000, 150, 80, 80, 128, False), torch.float16, False),
    ],
    ids=lambda x: shape_id(x) if isinstance(x, tuple) else str(x),
)
def test_kernel_alone_equals_fwd(sage, shape, dtype, hnd, attention_kernel):
    """fwd against quantize_qkv + attention_quantized, bit for bit. On the Hopper kernel's narrow
    tiling fwd quantizes Q inside the attention kernel (from strided inputs, "HND" views too)
    while quantize_qkv does it in the pre-pass: the two must give the same bits."""
    b, lq, lk, h, hkv, d, causal = shape
    q, k, v = gen_qkv(b, lq, lk, h, hkv, d, dtype=dtype, device="cuda", seed=16)
    if hnd:  # the same values through "HND" strides: (B, H, L, D) storage seen as (B, L, H, D)
        q, k, v = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
    out, lse = sage.fwd(q, k, v, is_causal=causal)
    qz = sage.quantize_qkv(q, k, v)
    out2, lse2 = sage.attention_quantized(qz, kv_len=lk, head_dim=d, is_causal=causal, out_dtype=q.dtype)
    assert torch.equal(out, out2) and torch.equal(lse, lse2)


@pytest.mark.skipif(not _is_hopper(), reason="the sm90 kernels run on compute capability 9.0 only")
@pytest.mark.parametrize("n, rounds, causal", [(16384, 11, False), (8192, 30, False), (32760, 30, True)])
def test_long_rows_dispatch_to_ws192(sage, monkeypatch, n, rounds, causal):
    """With q_len and kv_len >= 16384 and at least 11 rounds of 128-row tiles over the SMs, or >= 8192
    and at least 30 rounds (head_dim 128, non-causal), or with the causal mask >= 32760 and at least 30
    rounds, the dispatch runs the warp-specialized kernel (dispatch_by_arch.cu ws192_is_faster): fwd
    and the kernel alone then equal that kernel pinned, bit for bit. One key fewer, one query fewer,
    or one head fewer than the rounds need runs the narrow tiling (whose 128-key steps round
    differently)."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    h = -(-rounds * sms // (n // 128))  # the fewest heads that make the rounds
    q, k, v = gen_qkv(1, n, n, h, h, 128, device="cuda", seed=22)
    cases = [
        ((q, k, v), "sm90_ws192"),
        ((q, k[:, 1:], v[:, 1:]), "sm90_narrow"),
        ((q[:, 1:], k, v), "sm90_narrow"),
        ((q[:, :, 1:], k[:, :, 1:], v[:, :, 1:]), "sm90_narrow"),
    ]
    for (qc, kc, vc), expected in cases:
        runs = {}
        for pin in (None, "sm90_ws192", "sm90_narrow"):
            if pin is None:
                monkeypatch.delenv("SAGE_ATTENTION_FORCE_KERNEL", raising=False)
            else:
                monkeypatch.setenv("SAGE_ATTENTION_FORCE_KERNEL", pin)
            out, lse = sage.fwd(qc, kc, vc, is_causal=causal)
            qz = sage.quantize_qkv(qc, kc, vc)
            alone = sage.attention_quantized(qz, kv_len=kc.shape[1], head_dim=128, is_causal=causal, out_dtype=q.dtype)
            runs[pin] = (out, lse) + tuple(alone)
        other = "sm90_narrow" if expected == "sm90_ws192" else "sm90_ws192"
        shape = (qc.shape, kc.shape)
        assert all(torch.equal(a, b) for a, b in zip(runs[None], runs[expected])), (shape, expected)
        assert not torch.equal(runs[None][0], runs[other][0]), (shape, other)


@pytest.mark.parametrize("b, h, hkv", [(2, 5, 5), (1, 10, 5)], ids=["mha", "gqa"])
def test_causal_cta_order_covers_every_block(sage, attention_kernel, b, h, hkv):
    """Causal launches of the Hopper kernel's narrow tiling take the query blocks heaviest first
    within groups of heads sized to L2 (hopper/cta_order.cuh). At 24000 keys a group holds the
    query heads of 2 kv heads at most: 5 heads (MHA) make 4 groups (a power of two) of 2 head
    slots, 3 slots without a head; 10 query heads on 5 kv heads (GQA) make 4 groups of 2 kv
    heads, 4 query-head slots each, 6 without a head. Those CTAs must exit without writing. Each
    CTA's result does not depend on when it runs: the batched call must equal one call per
    (batch, head), bit for bit."""
    lq, lk, d = 24000, 24000, 128
    q, k, v = gen_qkv(b, lq, lk, h, hkv, d, device="cuda", seed=20)
    out, lse = sage.fwd(q, k, v, is_causal=True)
    assert not out.isnan().any() and not lse.isnan().any()
    for bi in range(b):
        for hi in range(h):
            kv = (slice(bi, bi + 1), slice(None), slice(hi // (h // hkv), hi // (h // hkv) + 1))
            sl = (slice(bi, bi + 1), slice(None), slice(hi, hi + 1))
            o1, l1 = sage.fwd(q[sl], k[kv], v[kv], is_causal=True)
            assert torch.equal(o1, out[sl]), (bi, hi)
            assert torch.equal(l1, lse[bi : bi + 1, hi : hi + 1]), (bi, hi)


def test_dispatch_names_a_kernel(sage, attention_kernel):
    expected = "sm90" if _is_hopper() else "simt"
    if attention_kernel != "dispatched":
        expected = attention_kernel  # a pinned tiling is named, so a misspelt pin cannot pass unseen
    assert sage.attention_kernel_name("cuda") == expected


@pytest.mark.skipif(not _is_hopper(), reason="the sm90 kernel runs on compute capability 9.0 only")
@pytest.mark.parametrize(
    "shape", [(2, 300, 333, 8, 4, 128, False), (1, 1000, 1000, 6, 6, 64, False), (2, 300, 333, 8, 4, 128, True)],
    ids=shape_id,
)
def test_sm90_tilings_agree(sage, shape, monkeypatch):
    """The tilings run the same per-row arithmetic in the same order: bit-identical without a
    causal mask. With one, a CTA's rows also pass through tiles that are fully masked for them
    (its other warpgroups' rows see those keys), and CTAs differ in rows; such a tile adds
    nothing but still moves O to the tile's V-scale unit, which can change O's last fp32 bit."""
    b, lq, lk, h, hkv, d, causal = shape
    q, k, v = gen_qkv(b, lq, lk, h, hkv, d, device="cuda", seed=17)
    outs = []
    for tiling in ("sm90_wide", "sm90_narrow"):
        monkeypatch.setenv("SAGE_ATTENTION_FORCE_KERNEL", tiling)
        assert sage.attention_kernel_name("cuda") == tiling
        outs.append(sage.fwd(q, k, v, is_causal=causal))
    o_w, l_w = outs[0]
    for o, lse in outs[1:]:
        assert torch.equal(lse, l_w)
        if not causal:
            assert torch.equal(o, o_w)
        else:
            assert not o.isnan().any()
            # about one bf16 rounding step (2^-8 relative) of each element
            torch.testing.assert_close(o.float(), o_w.float(), rtol=2**-7, atol=1e-4 * o_w.float().abs().max().item())


def test_fwd_captures_in_a_cuda_graph(sage):
    """Scratch comes from the caching allocator on the current stream: capture works and the
    replay computes what the eager call computes, also after the inputs change in place."""
    q, k, v = gen_qkv(1, 300, 300, 4, 2, 128, device="cuda", seed=17)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        sage.fwd(q, k, v, is_causal=True)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        g_out, g_lse = sage.fwd(q, k, v, is_causal=True)
    for seed in (18, 19):
        q2, k2, v2 = gen_qkv(1, 300, 300, 4, 2, 128, device="cuda", seed=seed)
        q.copy_(q2), k.copy_(k2), v.copy_(v2)
        graph.replay()
        out, lse = sage.fwd(q, k, v, is_causal=True)
        torch.cuda.synchronize()
        assert torch.equal(g_out, out) and torch.equal(g_lse, lse)


@pytest.mark.skipif(not _is_hopper(), reason="the cluster forms of the pre-pass run on compute capability 9.0")
@pytest.mark.parametrize(
    "kv_len, used, unused",
    [
        (1152, "short_sequence_prepass_kernel", ("k_mean", "quantize_qkv")),  # one launch (p11)
        (4608, "k_mean_cluster_kernel", ("k_mean_partial", "k_mean_finalize")),  # 16-CTA clusters (p13)
    ],
)
def test_fwd_takes_the_cluster_prepass_on_hopper(sage, kv_len, used, unused):
    """The host picks the cluster launches where they apply. A check that wrongly refused them
    (the device query, the binary's version) would cost only speed, which no other test sees."""
    from torch.profiler import ProfilerActivity, profile

    q, k, v = gen_qkv(1, 64, kv_len, 4, 2, 128, device="cuda", seed=20)
    sage.fwd(q, k, v)  # the host's one-time cluster queries happen outside the profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        sage.fwd(q, k, v)
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    assert any(used in n for n in names), names
    assert not any(u in n for n in names for u in unused), names
