#!/usr/bin/env bash
# One GPU session, prepared to run unattended on a lent machine with no network:
#
#   A. scripts/gpu_benchmark.py: ms/frame of every VLM backend (random weights, real sizes)
#      -> $OUT/gpu_benchmark.json, $OUT/gpu_benchmark.md (docs/gpu_benchmark.md with its
#         results block replaced), $OUT/gpu_benchmark.log
#   B. `vlm-ros bench` with the owl backend on the GPU: the node as its own process, driven over
#      DDS by a 30 Hz RGB-D stream and text commands, with a randomly initialised OWLv2-B/16 of
#      the real size (boxes are meaningless; the per-stage timings are what it is for)
#      -> $OUT/gpu_bench_owl.json, $OUT/gpu_bench_owl.log
#
# Run from the repository root (or a copy of vlm_ros/, scripts/ and docs/):
#   OUT=/some/folder bash scripts/gpu_session.sh
# ROS 2 (rclpy and message packages) comes from cp312 wheels in $WHEELS (default .whl/), installed
# with --prefix into /tmp (pip --target drops the wheels' lib/ data files, which hold the .so
# libraries).  If there are none and rclpy cannot be imported, part B is skipped.
#
# Every part has its own time limit (timeout -s KILL also kills the node process the bench
# starts: same process group), so the whole script ends in about 6 minutes at most.
# Knobs (environment): GPU_SESSION_TINY=1 (CPU smoke test: tiny configs, few iterations),
# BENCHMARK_TIMEOUT_S, BENCH_TIMEOUT_S, BENCHMARK_ARGS, BENCH_ARGS, PYTHON.

set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/.whl}
TINY=${GPU_SESSION_TINY:-0}
BENCHMARK_TIMEOUT_S=${BENCHMARK_TIMEOUT_S:-230}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-140}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
LOG=$OUT/session.log
started=$SECONDS

say() { echo "[gpu_session +$((SECONDS - started))s] $*" | tee -a "$LOG"; }

say "host $(hostname), $(nproc) cores; python: $(command -v "$PYTHON")"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  "$PYTHON" - <<'EOF'
import platform, torch, transformers
print("python", platform.python_version(), "torch", torch.__version__, "transformers",
      transformers.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
} 2>&1 | tee -a "$LOG"

# ------------------------------------------------------------------ A. per-backend GPU latency
if [ "$TINY" = 1 ]; then
  benchmark_args=(--tiny --iterations 3 --dtypes float16,float32)
else
  # fp16 is the target's precision; bf16 is what Qwen-class VLMs usually run at; fp32 is the
  # adapters' default off the GPU.  Defaults: 50 timed calls (10 for generate / end-to-end).
  benchmark_args=(--dtypes float16,bfloat16,float32)
fi
# shellcheck disable=SC2206
benchmark_args+=(${BENCHMARK_ARGS:-})
cp docs/gpu_benchmark.md "$OUT/gpu_benchmark.md"
say "A: gpu_benchmark.py ${benchmark_args[*]} (limit ${BENCHMARK_TIMEOUT_S}s)"
set -o pipefail
timeout -s KILL "$BENCHMARK_TIMEOUT_S" "$PYTHON" scripts/gpu_benchmark.py "${benchmark_args[@]}" \
  --json "$OUT/gpu_benchmark.json" --markdown "$OUT/gpu_benchmark.md" 2>&1 \
  | grep --line-buffered -v -E "^(Loading weights|Writing model shards)|it/s\]$" \
  | tee "$OUT/gpu_benchmark.log"
say "A: exit ${PIPESTATUS[0]} (137 = killed at its limit: gpu_benchmark.json then holds the figures so far)"
set +o pipefail

# ------------------------------------------------------------ B. vlm-ros bench, owl on the GPU
wheels=("$WHEELS"/*.whl)
if [ -e "${wheels[0]}" ]; then
  say "B: installing ${#wheels[@]} ROS 2 wheels into /tmp/ros2"
  if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --prefix /tmp/ros2 "${wheels[@]}" >>"$LOG" 2>&1; then
    site=$(ls -d /tmp/ros2/lib/python3*/site-packages)
    libs=$(ls -d "$site"/ros_*.libs 2>/dev/null | paste -sd:)
    # What the wheels' bootstrapper .pth would set (a .pth is not read from PYTHONPATH).
    export PYTHONPATH=$ROOT:$site
    export LD_LIBRARY_PATH=/tmp/ros2/lib${libs:+:$libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export AMENT_PREFIX_PATH=/tmp/ros2 _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
  else
    say "B: wheel install failed (see session.log)"
  fi
fi
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$((120 + RANDOM % 90))
if ! timeout -s KILL 60 "$PYTHON" -c "import rclpy, diagnostic_msgs.msg, vlm_ros.tools.bench" \
    >>"$LOG" 2>&1; then
  say "B: skipped - rclpy / vlm_ros.tools.bench cannot be imported (see session.log)"
else
  model_dir=/tmp/vlm_gpu_session
  device=cuda dtype=float16
  if [ "$TINY" = 1 ]; then device=cpu dtype=float32; fi
  say "B: saving a random-weight OWLv2 (real size unless tiny) to $model_dir/owl"
  if timeout -s KILL 90 "$PYTHON" - "$model_dir" "$device" "$TINY" >>"$LOG" 2>&1 <<'EOF'
import sys
from pathlib import Path

import torch

sys.path.insert(0, "scripts")
import gpu_benchmark as gb  # the same OWLv2-B/16 config and offline processor as part A

folder, device, tiny = Path(sys.argv[1]), torch.device(sys.argv[2]), sys.argv[3] == "1"
settings = gb.Settings(device=device, tiny=tiny, iterations=1, warmup=0, generate_iterations=1,
                       new_tokens=1, workdir=folder)
print("saved", gb.save_owl(settings))
EOF
  then
    if [ "$TINY" = 1 ]; then
      bench_args=(--commands 3 --seconds 3)
    else
      bench_args=(--commands 20 --seconds 8)
    fi
    # shellcheck disable=SC2206
    bench_args+=(${BENCH_ARGS:-})
    say "B: vlm-ros bench --backend owl --device $device --dtype $dtype ${bench_args[*]}" \
        "(ROS_DOMAIN_ID=$ROS_DOMAIN_ID, limit ${BENCH_TIMEOUT_S}s)"
    set -o pipefail
    timeout -s KILL "$BENCH_TIMEOUT_S" "$PYTHON" -m vlm_ros.cli bench --backend owl \
      --model "$model_dir/owl" --device "$device" --dtype "$dtype" "${bench_args[@]}" \
      --out "$OUT/gpu_bench_owl.json" 2>&1 | tee "$OUT/gpu_bench_owl.log"
    say "B: exit ${PIPESTATUS[0]} (1 = the run itself reported not ok; 137 = killed at its limit)"
    set +o pipefail
  else
    say "B: could not save the OWLv2 model (see session.log)"
  fi
fi
say "done; files in $OUT: $(ls "$OUT" | paste -sd' ')"
