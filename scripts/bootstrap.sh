#!/usr/bin/env bash
# Create .venv in the checkout and install vlm_ros with the given extras (default: ros,models).
# Idempotent: re-running only installs what changed.  Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-ros,models}"
if [ ! -x .venv/bin/python ]; then
  python=""
  # 3.11 first: the local CPU torch wheel (VLM backends) is built for it.
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" 2>/dev/null -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
      python="$candidate"; break
    fi
  done
  [ -n "$python" ] || { echo "bootstrap: need Python 3.11 or 3.12 (the ROS 2 wheels' versions)" >&2; exit 1; }
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if [[ ",${extras}," == *",vlm,"* || ",${extras}," == *",voice,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # Pin torch first (the VLM backends and silero-vad need it): an unpinned torch pulls a multi-GB CUDA build.  2.13.0 resolves to the
  # CPU wheel on CI machines; on a GPU machine install the torch you want before this script.
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
