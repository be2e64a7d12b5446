"""The benchmark scripts run where the README says (the GPU machine); here they must at least
import and parse their arguments, and the A/B script must pick the workloads it is asked for."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.parametrize("script", ["run_side_by_side.py", "compare_builds.py", "peer_fa3_fp8.py"])
def test_benchmark_script_parses_its_arguments(script):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout


def test_compare_builds_selects_named_workloads_and_shapes_alone():
    from run_side_by_side import load_workloads

    named = load_workloads(["large_b4h32_s4096"], ["1,300,2,64,causal"])
    assert [w["name"] for w in named] == ["large_b4h32_s4096", "b1_s300_h2_d64_causal"]
    shapes_only = load_workloads(["(shapes only)"], ["2,128,4,128"])  # compare_builds.py with --shape alone
    assert len(shapes_only) == 1 and shapes_only[0]["causal"] is False and shapes_only[0]["batch"] == 2


def test_compare_builds_reverses_the_order_every_other_round():
    from compare_builds import round_order

    names = ["base", "a", "b"]
    orders = [round_order(names, r) for r in range(4)]
    assert orders == [names, names[::-1], names, names[::-1]]
    # Over an even number of rounds every build's mean position is the same.
    assert len({sum(order.index(n) for order in orders) for n in names}) == 1


def test_shape_specs_take_gqa_and_reject_what_they_cannot_parse():
    from run_side_by_side import load_workloads

    (gqa,) = load_workloads(["(shapes only)"], ["1,16384,32,128,causal,kv=8"])
    assert gqa["heads"] == 32 and gqa["heads_kv"] == 8 and gqa["causal"] is True
    assert gqa["name"] == "b1_s16384_h32_d128_kv8_causal"
    (mha,) = load_workloads(["(shapes only)"], ["1,64,4,64"])
    assert mha["heads_kv"] == 4
    for bad in ["1,64,4,64,kv=3", "1,64,4,64,casual", "1,64,4,64,kv=0"]:
        with pytest.raises(ValueError):
            load_workloads(["(shapes only)"], [bad])


def test_side_by_side_refuses_gqa_shapes_before_touching_a_gpu():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_side_by_side.py"), "--shape",
                          "1,128,4,64,kv=2"], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "compare_builds.py" in run.stderr


def test_v_recipe_study_matches_the_emulation_on_a_small_shape():
    # The study's `tile` column is today's recipe written out flat; the script asserts it equals
    # the emulation (up to 1e-4) for shapes of <= 4096 tokens, then prints the four variants.
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "v_recipe_accuracy_cpu.py"), "1,300,2,64"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert all(f"{name}: cos" in run.stdout for name in ["tile", "tile_l8", "channel_l32", "channel"])


def test_stall_summary_sums_samples_by_loop_body(tmp_path):
    # A miniature of Nsight Compute's source page (SASS view), as ncu_stalls_by_sass.sh writes it:
    # a kernel-name line, the header, one row per instruction.
    header = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Instructions Executed", "stall_wait",
              "stall_barrier", "stall_wait (Not Issued)"]
    rows = [["0x1000", "LDC R1, c[0x0][0x28]", "2", "4", "2", "0", "2"],
            ["0x1010", "MUFU.EX2 R2, R3", "30", "40", "20", "0", "20"],
            ["0x1020", "@!P0 BAR.SYNC R0, 0x100", "50", "40", "0", "50", "0"],
            ["0x1030", "EXIT", "0", "4", "0", "0", "0"]]
    path = tmp_path / "stalls.csv"
    path.write_text('"Kernel Name","k"\n' + "\n".join(",".join(f'"{c}"' for c in r) for r in [header] + rows) + "\n")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "summarize_sass_stalls.py"), str(path), "--per-visit",
                          "40"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "88 instructions executed, 82 samples" in run.stdout
    assert "barrier 61.0%" in run.stdout and "wait 26.8%" in run.stdout
    assert "0x000010-0x000020  x40" in run.stdout  # the loop body: two instructions run 40 times
    assert "instructions executed 40 times: 2" in run.stdout and "MUFU 1, BAR 1" in run.stdout


def test_sass_turns_counts_what_a_turn_holds(tmp_path):
    # A miniature cuobjdump dump: two kernels; in the bf16 one, two turns (BAR.SYNC over 256 threads).
    # The first holds 2 FMULs and a spill reload before its first GMMA; the second goes straight to it.
    body = ["BAR.SYNC.DEFER_BLOCKING 0x0", "BAR.SYNC.DEFER_BLOCKING R3, 0x100", "FMUL R120, R120, R19",
            "LDL R4, [R1]", "FMUL R121, R121, R19", "IGMMA.64x192x32.S8.S8 R24, gdesc[UR12], RZ, !UPT",
            "BAR.ARV R4, 0x100", "MUFU.EX2 R5, R6", "@!P3 BAR.SYNC.DEFER_BLOCKING 0x1, 0x100",
            "QGMMA.64x128x32.F32.E4M3.E4M3 R120, R184, gdesc[UR16], R120", "EXIT"]
    lines = ["\t\tFunction : _Z6kernelI6__halfEvv", "        /*0000*/                   NOP ;"]
    lines += ["\t\tFunction : _Z6kernelI13__nv_bfloat16Evv"]
    lines += [f"        /*{16 * i:04x}*/                   {x} ;  /* 0x0 */" for i, x in enumerate(body)]
    path = tmp_path / "k.sass"
    path.write_text("\n".join(lines) + "\n")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "sass_turns.py"), str(path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "11 instructions; turn waits:" in run.stdout
    assert "at      1:    4 to the first GMMA (2 FMUL/PRMT),     7 to the next turn, 1 LDL/STL" in run.stdout
    assert "at      8:    1 to the first GMMA (0 FMUL/PRMT),     3 to the next turn, 0 LDL/STL" in run.stdout


def test_ws192_tile_trace_reads_phases_from_the_stamps():
    """The trace script on synthetic stamps (the layout of attention_sm90_ws.cu SAGE_WS_DIAG_TRACE):
    a tile of 22 steps whose points each take 3000 cycles after a 500-cycle wait for Q."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import ws192_tile_trace as trace

    n_steps = 22
    words = [0] * trace.TRACE_WORDS
    words[1], words[2], words[62] = 1000, 1500, 2100
    clock = 1500
    for t in range(n_steps + 1):
        passed, end = trace.point_words(t, n_steps)
        words[passed], clock = clock + 100, clock + 3000
        words[end] = clock
    for word, after in zip((58, 59, 60, 61, 57), (300, 600, 650, 700, 900)):
        words[word] = clock + after
    ph = trace.phases(words, n_steps)
    assert ph["Q ready"] == 500 and ph["point 0: Q·Kᵀ done"] == 600
    assert all(ph[f"point {t}"] == 3000 and ph[f"point {t} to turn passed"] == 100 for t in range(n_steps + 1))
    assert ph["epilogue"] == 900 and ph["epilogue: bulk stores issued"] == 50 and ph["epilogue: lse stored"] == 200
    # Long tiles: points 0-13 and the last 13 are recorded, in 27 slots before word 57; the points
    # in between are not, and the point after the gap is not measured from the one before it.
    assert trace.point_words(86, 86) == (55, 56) and trace.point_words(50, 86) is None
    words = [0] * trace.TRACE_WORDS
    words[1], words[2] = 0, 100
    for t in [*range(14), *range(74, 87)]:
        passed, end = trace.point_words(t, 86)
        words[passed], words[end] = 1000 * t + 150, 1000 * t + 1100
    words[57] = words[58] = words[59] = words[60] = words[61] = 86_000 + 1100
    ph = trace.phases(words, 86)
    assert ph["point 13"] == 1000 and "point 50" not in ph and "point 74" not in ph and ph["point 75"] == 1000
    assert ph["steady point"] == 1000
    # decode: the words of tile i sit in the lse rows of that tile, consumer c at rows 64c ..; a
    # partial last q block (200 rows: 2 blocks of 128, the second partial) is left out.
    lse = torch.zeros(1, 2, 200)
    lse.view(torch.int32)[0, 1, 0:64] = torch.arange(64, dtype=torch.int32)
    tiles = trace.decode(lse, 200)
    assert sorted(tiles) == [0, 2] and tiles[2][0] == list(range(64)) and tiles[2][1] == [0] * 64


def test_ws192_tile_trace_reads_the_phases_inside_points():
    """Trace level 2 (SAGE_WS_DIAG_TRACE=2): points 3-9, seven stamps each. Synthetic consumers whose
    points take 3000 cycles: 100 waiting for data, 400 for the turn, 50 issuing, 600 for Q·Kᵀ, 1500 of
    softmax, 50 for P·V, 300 to pack and rescale; consumer 1 runs 1500 cycles behind consumer 0."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import ws192_tile_trace as trace

    steps = (100, 400, 50, 600, 1500, 50, 300)
    assert dict(zip(trace.POINT_PHASES, steps)) and len(trace.POINT_PHASES) == len(trace.POINT_STAMPS) == 7
    assert trace.phase_words(3)[0] == 3 and trace.phase_words(9)[-1] == 51  # below the epilogue's words 57-62

    def consumer(start):
        words, clock = [0] * trace.TRACE_WORDS, start
        for t in trace.PHASE_POINTS:
            for i, d in zip(trace.phase_words(t), steps):
                clock += d
                words[i] = clock
        return words

    w0, w1 = consumer(10_000), consumer(11_500)
    ph = trace.point_phases(w0)
    assert sorted(ph) == [4, 5, 6, 7, 8, 9]
    assert all(ph[t]["point"] == 3000 and [ph[t][n] for n in trace.POINT_PHASES] == list(steps) for t in ph)
    off = trace.turn_offsets(w0, w1)
    # consumer 1 takes turn t 1500 - 50 = 1450 after consumer 0 passed it; consumer 0 takes turn t + 1
    # 3000 - 1500 - 50 = 1450 after consumer 1 passed turn t.
    assert off["consumer 1 takes after consumer 0 passed"] == [1450] * 5
    assert off["consumer 0 takes after consumer 1 passed"] == [1450] * 5
