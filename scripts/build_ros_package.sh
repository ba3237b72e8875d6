#!/usr/bin/env bash
# Build vlm_ros as a ROS 2 package (ament_cmake: the msg/srv/action interfaces and their Python
# bindings, plus the Python package) into build/ros/install, as colcon does, with the PyPI
# Kilted wheels in .venv standing in for /opt/ros.  Needs cmake and a C/C++ compiler.
#
# Use it:  eval "$(scripts/build_ros_package.sh --print-env)"  (scripts/test.sh does).
# On a machine with ROS installed use colcon instead: `colcon build --packages-select vlm_ros`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="${VENV:-$ROOT/.venv}"
OUT="${VLM_ROS_BUILD_DIR:-$ROOT/build/ros}"
PYTHON="$VENV/bin/python"
PY_SITE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("purelib").split("/lib/", 1)[1])')"

print_env() {
  # The source tree first, so `vlm_ros` is this checkout; the install tree after it adds the
  # generated vlm_ros.msg / .srv / .action (vlm_ros/__init__.py extends its path).  The loader
  # finds the typesupport libraries by name, through LD_LIBRARY_PATH, when the process starts.
  echo "export PYTHONPATH=\"$ROOT:$OUT/install/lib/$PY_SITE\${PYTHONPATH:+:\$PYTHONPATH}\""
  echo "export LD_LIBRARY_PATH=\"$OUT/install/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
  echo "export AMENT_PREFIX_PATH=\"$OUT/install:$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\""
}
if [[ "${1:-}" == "--print-env" ]]; then print_env; exit 0; fi

for tool in cmake cc c++; do
  command -v "$tool" >/dev/null || { echo "build_ros_package: $tool not found" >&2; exit 1; }
done

# CMake refuses exported include directories inside the source tree, and .venv (where numpy's
# headers are) lives in this repository: build from a copy, as colcon builds from src/.
# cp -a keeps modification times, so an unchanged package rebuilds nothing.
SRC="$OUT/src/vlm_ros"
rm -rf "$SRC"
mkdir -p "$SRC/scripts"
cp -a CMakeLists.txt package.xml msg srv action launch config worlds vlm_ros "$SRC/"
cp -a scripts/vlm_node scripts/vlm_voice "$SRC/scripts/"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
cmake -S "$SRC" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$OUT/install" \
  -DPython3_EXECUTABLE="$PYTHON" -DBUILD_TESTING=OFF \
  -DCMAKE_PROJECT_INCLUDE="$ROOT/scripts/wheel_include_dirs.cmake" >"$OUT/configure.log" 2>&1 \
  || { tail -40 "$OUT/configure.log" >&2; echo "build_ros_package: cmake configure failed" >&2; exit 1; }
cmake --build "$OUT/build" -j "$(nproc)" >"$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log" >&2; echo "build_ros_package: build failed" >&2; exit 1; }
cmake --install "$OUT/build" >"$OUT/install.log" 2>&1 \
  || { tail -20 "$OUT/install.log" >&2; echo "build_ros_package: install failed" >&2; exit 1; }
echo "vlm_ros built into $OUT/install"
