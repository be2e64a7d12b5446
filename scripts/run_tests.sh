#!/usr/bin/env bash
# The test command: installs what is missing, builds the kernel, runs the tests.
# With a GPU: builds for the local GPU's arch and runs every test, GPU tests included.
# Without one (CI): compiles the CUDA sources for every arch build.toml names,
# links the extension, and runs the CPU tests (GPU tests skip).
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
[ "$CAN_BUILD" = 1 ] || { echo "run_tests: need nvcc and a CUDA build of torch"; exit 1; }
"$PY" scripts/build_local.py
exec env HF_HUB_OFFLINE=1 "$PY" -m pytest -q -rs tests "$@"
