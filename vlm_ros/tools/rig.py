"""The rig that `vlm-ros soak`, `vlm-ros bench` and the integration tests share: the node
under test as its own process, a counting camera, the coffee scene at stream resolution,
and readers for the node's /diagnostics and /proc figures.

The node runs exactly as a user starts it (`vlm-ros node --ros-args ...`) so its RSS and CPU time
are its own and a crash shows up as a dead process.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from vlm_ros import scenes
from vlm_ros.core.types import CameraIntrinsics
from vlm_ros.ros.diagnostics import find_node_status
from vlm_ros.ros.photo_camera import PhotoCamera

if TYPE_CHECKING:
    from rclpy.executors import Executor
    from rclpy.node import Node

CAMERA_POSE = "[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]"  # 1 m up, looking along base +x: goals exist
# Reliable images (PhotoCamera publishes reliable; large best-effort samples get lost on UDP), no
# debug image (a visualisation option that would add an annotate + 0.9 MB publish per result).
BASE_NODE_ARGS = ["-p", "image_reliability:=reliable", "-p", "publish_debug_image:=false",
                  "-p", f"camera_pose_in_base:={CAMERA_POSE}"]


class NodeProcess:
    """`vlm-ros <subcommand> --ros-args ...` as a user starts it (the grounding node by default,
    or e.g. the voice node); its output is drained into a bounded log so the pipe never blocks.
    ``env`` adds to this process's environment (which carries the ROS discovery settings)."""

    def __init__(self, node_args: list[str], subcommand: str = "node",
                 env: dict[str, str] | None = None, log_lines: int = 40) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vlm_ros.cli", subcommand, "--ros-args", *node_args],
            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.log: collections.deque[str] = collections.deque(maxlen=log_lines)
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip())

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of output, for failure messages."""
        return "\n".join(list(self.log)[-lines:])

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class CountingCamera(PhotoCamera):
    """A PhotoCamera that counts what it published, to compare with what the node received.

    ``paused`` holds the stream (the timer keeps running, nothing is sent): the frame counters of
    both sides can then be read once every frame in flight has arrived.
    """

    paused = False

    def publish_once(self) -> None:
        if self.paused:
            return
        super().publish_once()  # PhotoCamera counts what it published (``published``)


def coffee_scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray, CameraIntrinsics]:
    """The coffee photo at the stream's resolution, with a tabletop depth and the photo's lens
    (the cup keeps its real ~8 cm size, see vlm_ros/scenes.py)."""
    rgb, _depth, _intrinsics = scenes.coffee()
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return rgb, scenes.tabletop_depth(width, height), scenes.intrinsics_for(
        width, height, scenes.COFFEE_HFOV_DEG)


def node_status(array: DiagnosticArray) -> dict[str, str] | None:
    """The node's key/values from one /diagnostics message (None if it is another node's)."""
    status = find_node_status(array)
    return None if status is None else {kv.key: kv.value for kv in status.values}


def parse_result(msg: String) -> dict[str, Any]:
    """One ~/result as a dict ({} for text that is not JSON: still an answer, counted)."""
    try:
        return json.loads(msg.data)
    except json.JSONDecodeError:
        return {}


def counters(values: dict[str, str]) -> dict[str, int]:
    """The integer counters among a status's values (rgb_frames, commands, ...)."""
    return {key: int(value) for key, value in values.items() if value.isdigit()}


def read_rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time process ``pid`` has used, all threads (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The command name (field 2) may hold spaces: count fields after its closing ')'.
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(condition: Callable[[], Any], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return False


def spin_in_background(executor: Executor) -> threading.Thread:
    """Spin ``executor`` on a daemon thread (the camera timer and the tool's readers)."""
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    return spinner


def stop_spinning(executor: Executor, spinner: threading.Thread | None,
                  nodes: list[Node | None]) -> None:
    """Stop the executor, then destroy ``nodes``.  rclpy's shutdown does not wait for a callback
    in progress, so the nodes are destroyed only once the spin thread has left it."""
    executor.shutdown(timeout_sec=5.0)
    if spinner is not None:
        spinner.join(timeout=5.0)
    for node in nodes:
        if node is not None:
            node.destroy_node()
