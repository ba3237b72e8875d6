#!/usr/bin/env bash
# The README's test command: installs everything the tests need into .venv at the lock's
# versions (requirements/constraints.txt), fetches the real test photos, lints, and runs the
# whole suite.  Extra arguments go to pytest.
#
# --latest (first argument): the drift canary.  A throw-away venv (.cache/venv-latest, made
# afresh) gets the newest versions setup.py's bounds allow instead of the lock, the ROS package
# is built beside it (build/ros-latest), the differences from the lock are printed, and the same
# suite runs.  docs/dependencies.md records what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--latest" ]; then
  shift
  export VLM_ROS_LATEST=1 VLM_ROS_VENV="$PWD/.cache/venv-latest" VLM_ROS_BUILD_DIR="$PWD/build/ros-latest"
  rm -rf "$VLM_ROS_VENV"
fi
VENV="${VLM_ROS_VENV:-$PWD/.venv}"
export VENV  # scripts/build_ros_package.sh builds against this venv's ROS wheels
bash scripts/bootstrap.sh "ros,ros-build,models,test,vlm,sim,voice,console,mcp"
if [ "${VLM_ROS_LATEST:-0}" = "1" ]; then
  echo "test.sh --latest: what this venv has that the lock does not:"
  "$VENV/bin/python" scripts/lock_check.py --list
fi
bash scripts/ensure_osmesa.sh
bash scripts/ensure_espeak.sh
bash scripts/ensure_chromium.sh
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
"$VENV/bin/python" scripts/fetch_test_photos.py --dest .cache/photos
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
"$VENV/bin/ruff" check vlm_ros tests scripts launch
# The whole suite takes ~15 minutes here; a run past the limit is killed with every process it
# started (a test stuck beyond pytest's own faulthandler_timeout), so CI reports instead of hanging.
# Every process of the run carries this token (tests/process_guard.py): what a run that did not
# finish normally left behind is ended afterwards.
export VLM_ROS_TEST_RUN="${VLM_ROS_TEST_RUN:-$(date +%s%N)$$}"
status=0
timeout -s KILL "${VLM_ROS_TEST_TIMEOUT_S:-3600}" "$VENV/bin/python" -m pytest -q "$@" || status=$?
"$VENV/bin/python" tests/process_guard.py
exit "$status"
