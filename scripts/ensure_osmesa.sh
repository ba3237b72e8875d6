#!/usr/bin/env bash
# MuJoCo renders headless through OSMesa (MUJOCO_GL=osmesa) unless the caller chose EGL/GLFW.
# Install Debian's libosmesa6 when it is missing and we may (root with apt-get); otherwise say how.
set -euo pipefail
if [ "${MUJOCO_GL:-osmesa}" != "osmesa" ] || ldconfig -p 2>/dev/null | grep -q "libOSMesa.so"; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq libosmesa6 >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libosmesa6 >/dev/null
  }
else
  echo "ensure_osmesa: install libosmesa6 (sudo apt-get install libosmesa6) or set MUJOCO_GL=egl" >&2
  exit 1
fi
