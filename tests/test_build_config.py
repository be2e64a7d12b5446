"""The Hub artifact's configuration: build.toml, flake.nix, and the built variant's layout."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import ROOT

SOURCE_SUFFIXES = {".cu", ".cuh", ".h", ".hpp", ".cpp", ".cc"}


def _load_build_toml():
    import tomllib

    with open(ROOT / "build.toml", "rb") as f:
        return tomllib.load(f)


def test_build_toml_parses_with_the_builders_parser():
    """kernels' bundled Rust parser (the kernels-data crate the builder uses) accepts build.toml."""
    from kernels import _rust

    build = _rust.Build.open(str(ROOT))
    assert "cuda" in [str(b).lower().split(".")[-1] for b in build.general.backends]


def test_build_toml_has_no_edition_and_required_fields():
    cfg = _load_build_toml()
    general = cfg["general"]
    assert "edition" not in general, "kernel-builder v0.16.x rejects `edition`"
    assert isinstance(general["version"], int)
    assert general["name"] == "sage-attention"
    assert general["license"] and general["backends"] == ["cuda"]
    assert cfg["general"]["cuda"]["minver"]
    assert cfg["general"]["hub"]["repo-id"] == "kernels-community/sage_attention"
    assert cfg["torch"]["src"]
    for name, kernel in cfg["kernel"].items():
        assert kernel["backend"] == "cuda", name
        assert kernel["cuda-capabilities"], name
        assert "torch" in kernel["depends"], name
        assert kernel["src"], name


def test_every_listed_file_exists_and_every_source_is_listed():
    cfg = _load_build_toml()
    listed = set(cfg["torch"]["src"])
    for kernel in cfg["kernel"].values():
        listed.update(kernel["src"])
        for inc in kernel.get("include", []):
            assert (ROOT / inc).is_dir(), inc
    missing = sorted(p for p in listed if not (ROOT / p).is_file())
    assert not missing, f"build.toml lists files that do not exist: {missing}"
    tree = {
        str(p.relative_to(ROOT))
        for d in ("sage_attention", "torch-ext")
        for p in (ROOT / d).rglob("*")
        if p.suffix in SOURCE_SUFFIXES
    }
    unlisted = sorted(tree - listed)
    assert not unlisted, f"source files not listed in build.toml: {unlisted}"


def test_flake_nix_parses():
    nix = shutil.which("nix-instantiate")
    if nix is None:
        pytest.skip("nix-instantiate not installed (Debian package nix-bin)")
    text = (ROOT / "flake.nix").read_text()
    assert "genKernelFlakeOutputs" in text and "github:huggingface/kernels" in text
    subprocess.run([nix, "--parse", str(ROOT / "flake.nix")], check=True, capture_output=True)


def test_quant_constants_agree_between_cpp_and_python():
    from importlib import util

    spec = util.spec_from_file_location("qc", ROOT / "torch-ext" / "sage_attention" / "quant_config.py")
    qc = util.module_from_spec(spec)
    spec.loader.exec_module(qc)
    header = (ROOT / "sage_attention" / "quant_config.h").read_text()

    def cpp(name):
        m = re.search(rf"constexpr \w+ {name} = ([0-9.]+)f?;", header)
        assert m, name
        return float(m.group(1))

    assert cpp("kInt8Max") == qc.INT8_MAX
    assert cpp("kFp8E4M3Max") == qc.FP8_E4M3_MAX
    assert cpp("kKScaleBlock") == qc.K_SCALE_BLOCK
    assert cpp("kKvTile") == qc.KV_TILE
    assert cpp("kQPad") == qc.Q_PAD
    assert cpp("kKMeanChunk") == qc.K_MEAN_CHUNK
    assert cpp("kKMeanRun") == qc.K_MEAN_RUN
    assert cpp("kLog2e") == qc.LOG2E
    assert cpp("kMaxHeadDim") == qc.MAX_HEAD_DIM


def test_built_variant_layout(sage, variant_dir):
    """build/<variant>/ holds what kernels loads: package .py files, _ops.py, the abi3 .so, metadata.json."""
    maj, minor = torch.__version__.split("+")[0].split(".")[:2]
    cu = torch.version.cuda.replace(".", "")[:3]
    assert re.fullmatch(rf"torch{maj}{minor}-cxx11-cu{cu}-x86_64-linux", variant_dir.name), variant_dir.name
    meta_path = variant_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    assert re.fullmatch(r"_sage_attention_cuda_[0-9a-f]{7}", meta["id"])
    assert meta["id"] == sage.__name__
    assert (variant_dir / f"{meta['id']}.abi3.so").is_file()
    assert meta["backend"]["type"] == "cuda" and meta["backend"]["archs"]
    assert meta["version"] == _load_build_toml()["general"]["version"]
    import kernels_data

    kernels_data.Metadata.read_from_file(str(meta_path))  # the loader's own schema check
    ops_py = (variant_dir / "_ops.py").read_text()
    assert f"torch.ops.{meta['id']}" in ops_py
    assert sage._ops.add_op_namespace_prefix("fwd") == f"{meta['id']}::fwd"
    for py in (ROOT / "torch-ext" / "sage_attention").glob("*.py"):
        assert (variant_dir / py.name).is_file(), py.name


def test_so_uses_only_the_limited_python_api(variant_dir):
    """An abi3 build must not reference version-specific CPython symbols."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not available")
    so = next(variant_dir.glob("*.abi3.so"))
    undefined = subprocess.run([nm, "-D", "--undefined-only", str(so)], capture_output=True, text=True, check=True).stdout
    py_syms = sorted({line.split()[-1] for line in undefined.splitlines() if line.split()[-1].startswith("Py")})
    assert set(py_syms) <= {"PyModule_Create2"}, py_syms
