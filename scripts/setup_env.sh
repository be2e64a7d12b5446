# Sourced by run_sample.sh and run_tests.sh: installs what is missing, then builds.
# Honours $PYTHON (default python3). Idempotent: a ready machine installs nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
cd "$ROOT"

have_py() { "$PY" -c "import $1" >/dev/null 2>&1; }
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

# Offline machines (the GPU machine) can carry wheels in .whl/: install them into a private site dir.
if [ -d "$ROOT/.whl" ] && ! have_py kernels; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sage_site "$ROOT"/.whl/*.whl
  export PYTHONPATH="/tmp/sage_site${PYTHONPATH:+:$PYTHONPATH}"
fi

if ! have_py torch; then
  echo "[setup] installing torch (a CUDA build: needed to compile the kernels)"
  pip_install torch
fi
for spec in pytest:pytest numpy:numpy kernels:kernels kernels_data:kernels-data; do
  mod="${spec%%:*}"; pkg="${spec#*:}"
  have_py "$mod" || { echo "[setup] installing $pkg"; pip_install "$pkg"; }
done
# flake.nix is checked with nix-instantiate --parse (Debian's nix-bin), when apt is usable.
if ! command -v nix-instantiate >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (timeout 120 apt-get install -y -q nix-bin >/dev/null 2>&1 || { timeout 120 apt-get update -q >/dev/null 2>&1 && timeout 120 apt-get install -y -q nix-bin >/dev/null 2>&1; }) \
    || echo "[setup] nix-bin not installable here: the flake.nix parse test will skip"
fi

CAN_BUILD=1
if ! command -v nvcc >/dev/null 2>&1; then
  echo "[setup] nvcc not found: cannot compile the CUDA sources"; CAN_BUILD=0
elif [ "$("$PY" -c 'import torch; print(torch.version.cuda is not None)')" != "True" ]; then
  echo "[setup] the installed torch is a CPU-only build: cannot compile the CUDA sources"; CAN_BUILD=0
fi
