#!/usr/bin/env python3
"""Local build without Nix: produces exactly the layout `kernels` loads.

    build/torch<MAJ><MIN>-cxx11-cu<XY>-x86_64-linux/
        __init__.py ... (the Python package torch-ext/sage_attention/)
        _ops.py                                  (ops namespace _sage_attention_cuda_<id>)
        _sage_attention_cuda_<id>.abi3.so        (Py_LIMITED_API: one build serves Python >= 3.9)
        metadata.json

It reads build.toml (the same file kernel-builder uses), builds for the installed
torch and nvcc, and only for the archs asked for (default: the local GPUs' archs,
or every arch build.toml names when there is no GPU).

    python scripts/build_local.py                   # archs of the local GPU(s)
    python scripts/build_local.py --archs 9.0a
    python scripts/build_local.py --all-archs --objects-only   # CI: compile everything, no link

SAGE_EXTRA_NVCC_FLAGS (space-separated) is appended to every nvcc command (for experiments).
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Written into the build's include dir: the two macros torch_binding.cpp uses.
# kernel-builder generates its own equivalent header for Hub builds.
REGISTRATION_H = """\
#pragma once
#include <Python.h>
#include <torch/library.h>
#define SAGE_CONCAT_(a, b) a##b
#define SAGE_CONCAT(a, b) SAGE_CONCAT_(a, b)
#define SAGE_STR_(a) #a
#define SAGE_STR(a) SAGE_STR_(a)
// TORCH_LIBRARY with its namespace argument macro-expanded first.
#define TORCH_LIBRARY_EXPAND(NAME, MODULE) TORCH_LIBRARY(NAME, MODULE)
// An empty Python module, so `import <name>` loads the library and runs its op registrations.
#define REGISTER_EXTENSION(NAME)                                                            \\
  PyMODINIT_FUNC SAGE_CONCAT(PyInit_, NAME)() {                                             \\
    static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, SAGE_STR(NAME), nullptr, 0, nullptr}; \\
    return PyModule_Create(&module_def);                                                    \\
  }
"""

OPS_PY = '''import torch
from . import {ops_name}
ops = torch.ops.{ops_name}


def add_op_namespace_prefix(op_name: str):
    """Prefix op by namespace."""
    return f"{ops_name}::{{op_name}}"
'''


def log(msg):
    print(f"[build_local] {msg}", flush=True)


def load_config():
    with open(ROOT / "build.toml", "rb") as f:
        return tomllib.load(f)


def python_name(cfg):
    return cfg["general"]["name"].replace("-", "_")


def source_id(cfg):
    """7 hex digits identifying the sources (content hash of every file build.toml lists + the Python
    package) and any SAGE_EXTRA_NVCC_FLAGS."""
    files = set(cfg["torch"]["src"])
    for kernel in cfg["kernel"].values():
        files.update(kernel["src"])
    files.update(str(p.relative_to(ROOT)) for p in (ROOT / "torch-ext" / python_name(cfg)).glob("*.py"))
    h = hashlib.sha1()
    for rel in sorted(files):
        h.update(rel.encode())
        h.update((ROOT / rel).read_bytes())
    # Experiment flags change the binary: a build with them must not share the ops namespace of
    # one without (two such builds loaded in one process would resolve to the same ops).
    extra = os.environ.get("SAGE_EXTRA_NVCC_FLAGS", "").split()  # as nvcc gets them
    if extra:
        h.update(b"\0SAGE_EXTRA_NVCC_FLAGS:" + " ".join(extra).encode())
    return h.hexdigest()[:7]


def torch_info():
    import torch
    from torch.utils import cpp_extension

    if torch.version.cuda is None:
        sys.exit("build_local: the installed torch has no CUDA support; install a CUDA build of torch to build the kernels")
    maj, minor = torch.__version__.split("+")[0].split(".")[:2]
    cu_maj, cu_min = torch.version.cuda.split(".")[:2]
    abi = "cxx11" if torch.compiled_with_cxx11_abi() else "cxx98"
    variant = f"torch{maj}{minor}-{abi}-cu{cu_maj}{cu_min}-{platform.machine()}-{platform.system().lower()}"
    return {
        "version": (int(maj), int(minor)),
        "variant": variant,
        "includes": cpp_extension.include_paths("cuda"),
        "lib_dir": str(Path(torch.__file__).parent / "lib"),
        "cxx11_abi": int(torch.compiled_with_cxx11_abi()),
        "local_archs": sorted(
            {"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        )
        if torch.cuda.is_available()
        else [],
    }


def cuda_home():
    nvcc = shutil.which("nvcc")
    for cand in (os.environ.get("CUDA_HOME"), "/usr/local/cuda", str(Path(nvcc).resolve().parent.parent) if nvcc else None):
        if cand and (Path(cand) / "include" / "cuda_runtime.h").exists():
            return Path(cand)
    sys.exit("build_local: CUDA toolkit not found (set CUDA_HOME)")


def gencode(arch):
    """'9.0a' -> -gencode=arch=compute_90a,code=sm_90a."""
    num = arch.replace(".", "")
    return f"-gencode=arch=compute_{num},code=sm_{num}"


def select_archs(kernel_archs, wanted):
    """The unit's archs that serve the wanted capabilities ('9.0' is served by '9.0a')."""
    chosen = []
    for a in kernel_archs:
        base = a.rstrip("a")
        if wanted is None or a in wanted or base in wanted:
            chosen.append(a)
    return chosen


def run(cmd, cwd=ROOT):
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        raise SystemExit(f"build_local: command failed ({cmd[0]} ... {cmd[-1]})")
    return time.time() - t0, (proc.stdout + proc.stderr).strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", help="comma-separated CUDA capabilities, e.g. 9.0a or 8.0,9.0a")
    ap.add_argument("--all-archs", action="store_true", help="every arch build.toml names")
    ap.add_argument("--objects-only", action="store_true", help="compile only (CI: proves the sources build)")
    ap.add_argument("--out", default=str(ROOT / "build"), help="output root (default: build/)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    cfg = load_config()
    pkg = python_name(cfg)
    backend = cfg["general"]["backends"][0]
    info = torch_info()
    ops_name = f"_{pkg}_{backend}_{source_id(cfg)}"

    if args.all_archs:
        wanted = None
    elif args.archs:
        wanted = set(a.strip() for a in args.archs.split(","))
    elif info["local_archs"]:
        wanted = set(info["local_archs"])
    else:
        log("no GPU visible: building every arch build.toml names")
        wanted = None

    cuda = cuda_home()
    std = "c++17" if info["version"] < (2, 12) else "c++20"
    defines = [
        f"-DTORCH_EXTENSION_NAME={ops_name}",
        "-DPy_LIMITED_API=0x03090000",
        f"-D_GLIBCXX_USE_CXX11_ABI={info['cxx11_abi']}",
    ]
    obj_dir = Path(args.out) / ".obj" / info["variant"]
    obj_dir.mkdir(parents=True, exist_ok=True)
    gen_inc = Path(tempfile.mkdtemp(prefix="sage_build_inc_"))
    (gen_inc / "registration.h").write_text(REGISTRATION_H)
    includes = [f"-I{p}" for p in info["includes"]] + [f"-I{cuda / 'include'}", f"-I{sysconfig.get_paths()['include']}", f"-I{gen_inc}"]

    jobs = []
    built_archs = set()
    for name, kernel in cfg["kernel"].items():
        archs = select_archs(kernel.get("cuda-capabilities", []), wanted)
        if not archs:
            log(f"skip [kernel.{name}]: none of its archs {kernel.get('cuda-capabilities')} requested")
            continue
        built_archs.update(archs)
        inc = [f"-I{ROOT / d}" for d in kernel.get("include", [])]
        for src in kernel["src"]:
            if not src.endswith(".cu"):
                continue
            obj = obj_dir / (src.replace("/", "_") + ".o")
            cmd = ["nvcc", "-c", str(ROOT / src), "-o", str(obj), f"-std={std}", "-Xcompiler", "-fPIC",
                   "-Xcompiler", "-fvisibility=hidden", *kernel.get("cuda-flags", []), *defines, *includes, *inc,
                   *[gencode(a) for a in archs], *os.environ.get("SAGE_EXTRA_NVCC_FLAGS", "").split()]
            jobs.append((f"{src} [{','.join(archs)}]", cmd, obj))
    if not jobs:
        sys.exit(f"build_local: no kernel unit builds for archs {sorted(wanted or [])}")
    for src in cfg["torch"]["src"]:
        if src.endswith(".cpp"):
            obj = obj_dir / (src.replace("/", "_") + ".o")
            cmd = ["g++", "-c", str(ROOT / src), "-o", str(obj), f"-std={std}", "-O2", "-fPIC", "-fvisibility=hidden",
                   *defines, *includes]
            jobs.append((src, cmd, obj))

    log(f"torch variant {info['variant']}, archs {sorted(built_archs)}, ops {ops_name}, {len(jobs)} compile jobs, {args.jobs} at a time")
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for (label, _, _), (secs, out) in zip(jobs, pool.map(lambda j: run(j[1]), jobs)):
            log(f"compiled {label} in {secs:.0f}s" + (f"\n{out}" if out else ""))
    log(f"compile done in {time.time() - t0:.0f}s")
    if args.objects_only:
        return

    variant_dir = Path(args.out) / info["variant"]
    if variant_dir.exists():
        shutil.rmtree(variant_dir)
    variant_dir.mkdir(parents=True)
    so_path = variant_dir / f"{ops_name}.abi3.so"
    run(["g++", "-shared", "-o", str(so_path), *[str(o) for _, _, o in jobs],
         f"-L{info['lib_dir']}", "-lc10", "-lc10_cuda", "-ltorch", "-ltorch_cpu", "-ltorch_cuda",
         f"-L{cuda / 'lib64'}", "-lcudart_static", "-ldl", "-lrt", "-lpthread"])
    for py in sorted((ROOT / "torch-ext" / pkg).glob("*.py")):
        if py.name != "_ops.py":
            shutil.copy2(py, variant_dir / py.name)
    (variant_dir / "_ops.py").write_text(OPS_PY.format(ops_name=ops_name))
    metadata = {
        "name": cfg["general"]["name"],
        "id": ops_name,
        "version": cfg["general"]["version"],
        "license": cfg["general"]["license"],
        "python-depends": cfg["general"].get("python-depends", []),
        "backend": {"type": backend, "archs": sorted(built_archs)},
    }
    (variant_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    log(f"built {variant_dir}")


if __name__ == "__main__":
    main()
