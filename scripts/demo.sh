#!/usr/bin/env bash
# The README's main job: install into .venv, then ground a real photo end to end through the
# ROS 2 node (camera publisher -> vlm_ros node -> results, goals, annotated images in out/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "ros,models,demo"
# Keep DDS discovery on this machine for the demo; a robot deployment sets its own range.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-57}"
exec .venv/bin/vlm-ros demo "$@"
