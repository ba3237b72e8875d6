#!/usr/bin/env bash
# The README's main job: install into .venv, then run the closed loop in the MuJoCo simulator:
# a scripted dialogue over DDS -> the vlm_ros node -> grasp/place poses -> the simulated gripper
# (results, annotated images and run.gif in out/demo).  `--photo` grounds a real photo instead;
# `--console` serves the web console (http://127.0.0.1:8080/) instead of the script.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="ros,models,demo,sim"
# --console: drive the simulated robot from a browser (aiohttp; push-to-talk needs the voice extra)
[[ " $* " == *" --console "* ]] && extras="${extras},console,voice"
# --mcp: serve the simulated robot to an MCP host (the Model Context Protocol SDK)
[[ " $* " == *" --mcp "* ]] && extras="${extras},mcp"
bash scripts/bootstrap.sh "$extras"
bash scripts/ensure_osmesa.sh
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
# Keep DDS discovery on this machine for the demo; a robot deployment sets its own range.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-57}"
exec .venv/bin/vlm-ros demo "$@"
