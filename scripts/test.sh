#!/usr/bin/env bash
# The README's test command: installs everything the tests need into .venv, fetches the real
# test photos, lints, and runs the whole suite.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "ros,ros-build,models,test,vlm,sim,voice,console"
bash scripts/ensure_osmesa.sh
bash scripts/ensure_espeak.sh
bash scripts/ensure_chromium.sh
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
.venv/bin/python scripts/fetch_test_photos.py --dest .cache/photos
# The ROS package as colcon builds it (interfaces + bindings): the service, action, lifecycle and
# typed-message tests run against it, and must not skip (tests/conftest.py checks).
bash scripts/build_ros_package.sh
eval "$(bash scripts/build_ros_package.sh --print-env)"
export VLM_ROS_REQUIRE_INTERFACES=1
# Humble's Python: tests/test_ros_distros.py byte-compiles every file with a real 3.10 when one is
# at hand (pyenv keeps one on these machines).
if [ -z "${PYTHON310:-}" ]; then
  # (pyenv's shim on PATH may be there without answering: run each candidate to be sure.)
  for candidate in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 "$(command -v python3.10 || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      export PYTHON310="$candidate"; break
    fi
  done
fi
# DDS discovery stays on this machine; tests/conftest.py sets the same for every test process.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}"
.venv/bin/ruff check vlm_ros tests scripts launch
.venv/bin/python -m pytest -q "$@"
