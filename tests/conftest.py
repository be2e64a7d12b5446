"""Shared fixtures: the built kernel (loaded the way users load it) and the GPU marker.

The kernel comes from build/<variant>/ (scripts/build_local.py), through
`kernels.get_local_kernel`. Tests marked `gpu` are skipped without CUDA.
"""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (runs on the GPU machine, skipped elsewhere)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sage():
    import kernels

    build = ROOT / "build"
    try:
        return kernels.get_local_kernel(build)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"no loadable build under {build} ({e}); run: python scripts/build_local.py")


@pytest.fixture(scope="session")
def variant_dir(sage):
    return Path(sage.__file__).parent
