#!/usr/bin/env bash
# Create a venv (default: .venv in the checkout) and install vlm_ros with the given extras
# (default: ros,models) at exactly the versions of requirements/constraints.txt, the lock CI
# tests.  Idempotent: re-running only installs what changed.  Used by scripts/demo.sh and
# scripts/test.sh.
#
#   VLM_ROS_VENV=DIR   the venv to create or update (scripts/test.sh --latest: a throw-away one)
#   VLM_ROS_LATEST=1   ignore the lock: the newest versions setup.py's bounds allow (the drift
#                      canary, docs/dependencies.md).  torch stays at the lock's version: a newer
#                      one is a multi-GB CUDA download on a CPU-only machine.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-ros,models}"
VENV="$(realpath -m "${VLM_ROS_VENV:-.venv}")"
LOCK="$PWD/requirements/constraints.txt"
# The lock's torch (it carries no environment marker there).
TORCH_VERSION="$(sed -n 's/^torch==\([^ ;]*\)$/\1/p' "$LOCK")"
if [ ! -x "$VENV/bin/python" ]; then
  python=""
  # 3.11 first: the local CPU torch wheel (VLM backends) is built for it.
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" 2>/dev/null -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
      python="$candidate"; break
    fi
  done
  [ -n "$python" ] || { echo "bootstrap: need Python 3.11 or 3.12 (the ROS 2 wheels' versions)" >&2; exit 1; }
  "$python" -m venv "$VENV"
fi
own_torch="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
if [ -n "$own_torch" ] && [ "${own_torch%%+*}" != "$TORCH_VERSION" ] && [ "${VLM_ROS_LATEST:-0}" != "1" ]; then
  # A torch installed before this script (a GPU build) is kept: it and the packages only it pulls
  # (triton, nvidia-*) leave the lock, and the lock test names them as the venv's own choice.
  echo "bootstrap: keeping torch $own_torch (the lock has $TORCH_VERSION)" >&2
  grep -v -E '^(torch|torchvision|triton|nvidia-[a-z0-9-]+)==' "$LOCK" > "$VENV/vlm_ros-constraints.txt"
  printf 'torch\ntorchvision\ntriton\nnvidia-*\n' > "$VENV/vlm_ros-unlocked.txt"
  LOCK="$VENV/vlm_ros-constraints.txt"
fi
if [ "${VLM_ROS_LATEST:-0}" = "1" ]; then
  pin=()
else
  pin=(-c "$LOCK")
  # pip builds this package in an isolated environment (setuptools, wheel): the variable reaches
  # that inner pip too, where a -c option would not.
  export PIP_CONSTRAINT="$LOCK"
fi
"$VENV/bin/python" -m pip install -q --upgrade "${pin[@]}" pip setuptools wheel
if [[ ",${extras}," == *",vlm,"* || ",${extras}," == *",voice,"* ]] && ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  # torch first (the VLM backends and silero-vad need it): an unpinned torch pulls a multi-GB CUDA
  # build.  The locked version resolves to the CPU wheel on CI machines; on a GPU machine install
  # the torch you want before this script.
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
fi
"$VENV/bin/python" -m pip install -q "${pin[@]}" -e ".[${extras}]"
if [[ ",${extras}," == *",models,"* ]]; then
  # Build step of the default backend: its TensorFlow graph converted to ONNX once, into the
  # cache it loads from ($VLM_ROS_CACHE, else ~/.cache/vlm_ros; vlm_ros/backends/ssd/convert.py).
  "$VENV/bin/python" -m vlm_ros.backends.ssd.convert
fi
