#!/usr/bin/env bash
# The main job: build for the local GPU and run attention on a sample, printing
# accuracy against fp32 SDPA and time against SDPA. With no GPU it runs the CPU
# emulation path (and says so).
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
if [ "$CAN_BUILD" = 1 ]; then
  "$PY" scripts/build_local.py
elif [ ! -d build ]; then
  echo "run_sample: no build/ and nothing to build with"; exit 1
fi
exec env HF_HUB_OFFLINE=1 "$PY" scripts/sample.py "$@"
