"""Integration-test harness: the real vlm_ros node in its own process, talked to over DDS.

The node runs exactly as a user starts it (`vlm-ros node --ros-args ...`), so a crash shows up as
a dead process.  The test process hosts a PhotoCamera (what an RGB-D driver publishes), a
CommandClient (text teleop) and listeners on every goal topic, spun by one background executor.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

# A test module that imports this harness is skipped, not broken, where rclpy is missing.
pytest.importorskip("rclpy")

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, String
from visualization_msgs.msg import MarkerArray

from vlm_ros.core.types import CameraIntrinsics
from vlm_ros.ros.compat import publisher_count
from vlm_ros.ros.photo_camera import PhotoCamera
from vlm_ros.ros.teleop import CommandClient
from vlm_ros.tools.rig import NodeProcess

GOAL_TOPICS = {
    "goal_pose": "/goal_pose",
    "grasp_pose": "/vlm_ros/grasp_pose",
    "pregrasp_pose": "/vlm_ros/pregrasp_pose",
    "place_pose": "/vlm_ros/place_pose",
    "target_pose": "/vlm_ros/target_pose",
}


class Listener(Node):
    """Records every message on the goal, marker, stop and debug-image topics."""

    def __init__(self) -> None:
        super().__init__("vlm_ros_test_listener")
        self.received: dict[str, list[Any]] = defaultdict(list)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for key, topic in GOAL_TOPICS.items():
            self.create_subscription(PoseStamped, topic, self._store(key), reliable)
        self.create_subscription(MarkerArray, "/vlm_ros/markers", self._store("markers"),
                                 reliable)
        self.create_subscription(Empty, "/vlm_ros/stop", self._store("stop"), reliable)
        self.create_subscription(String, "/vlm_ros/answer", self._store("answer"), reliable)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._store("diagnostics"),
                                 reliable)
        self.create_subscription(Image, "/vlm_ros/debug_image", self._store("debug_image"),
                                 reliable)

    def _store(self, key: str):
        return lambda msg: self.received[key].append(msg)

    def count(self, key: str) -> int:
        return len(self.received[key])

    def node_counts(self) -> dict[str, int]:
        """The node's own counters from its latest /diagnostics message."""
        for array in reversed(self.received["diagnostics"]):
            for status in array.status:
                if status.name == "vlm_ros: grounding":
                    return {kv.key: int(kv.value) for kv in status.values if kv.value.isdigit()}
        return {}


class RosGraph:
    """Node process + camera + client + listener."""

    def __init__(self, node_args: list[str], env: dict[str, str] | None = None,
                 ready: bool = True, camera_rate_hz: float = 10.0) -> None:
        """``ready=False``: do not wait for the node's topics (a lifecycle node started with
        autostart:=false has none until configured and activated); wait_until_linked() later.
        ``camera_rate_hz``: the PhotoCamera's frames per second."""
        # The environment carries ROS_AUTOMATIC_DISCOVERY_RANGE and ROS_DOMAIN_ID.
        self.node = NodeProcess(node_args, env=env)
        self._nodes: list[Node] = []
        self.executor: MultiThreadedExecutor | None = None
        self._spinner: threading.Thread | None = None
        try:
            rclpy.init()
            blank = np.zeros((48, 64, 3), np.uint8)
            self.camera = PhotoCamera(blank, np.ones((48, 64), np.float32),
                                      rate_hz=camera_rate_hz)
            self._nodes.append(self.camera)
            self.client = CommandClient("/vlm_ros", name="vlm_ros_test_client")
            self._nodes.append(self.client)
            self.listener = Listener()
            self._nodes.append(self.listener)
            # The robot's side of a several-step command: "done" / "failed" on robot_status.
            self.robot_status = self.client.create_publisher(
                String, "/robot_status",
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            self.executor = MultiThreadedExecutor(num_threads=3)
            for node in self._nodes:
                self.executor.add_node(node)
            self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
            self._spinner.start()
            if ready:
                self.wait_until_linked()
        except BaseException:
            self.close()  # the node process never outlives a graph that failed to start
            raise

    def wait_until_linked(self) -> None:
        """Wait until the node reads commands and camera frames (raises if it does not)."""
        if not (self.client.wait_for_node(None, 60.0) and self._wait_for_links(30.0)):
            tail = self.node.tail(40)
            self.close()
            raise RuntimeError("vlm_ros node did not come up:\n" + tail)

    def _wait_for_links(self, timeout_s: float) -> bool:
        """Each topic is discovered on its own: wait until camera and goal topics are all linked."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (all(pub.get_subscription_count() > 0
                    for pub in (self.camera.image_pub, self.camera.depth_pub,
                                self.camera.info_pub))
                    and all(publisher_count(self.listener, sub) > 0
                            for sub in self.listener.subscriptions)
                    and self.listener.node_counts().get("rgb_frames", 0) > 0):
                return True  # the node says it is receiving camera frames
            time.sleep(0.05)
        return False

    def show(self, rgb: np.ndarray, depth_m: np.ndarray | None = None,
             intrinsics: CameraIntrinsics | None = None) -> None:
        """Put a new scene in front of the camera and let stale frames drain.

        Waits until the camera has published the new scene (its timer can lag on a loaded
        machine): a command must not meet the old scene, nor the new scene's first frame
        before the node has ever seen a CameraInfo (the node waits for CameraInfo only once
        that stream flows)."""
        published = self.camera.published
        self.camera.set_image(rgb, depth_m, intrinsics)
        deadline = time.monotonic() + 10.0
        while self.camera.published < published + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)

    def say(self, text: str, timeout_s: float = 30.0) -> dict[str, Any]:
        result = self.client.send(text, None, timeout_s)
        assert result is not None, f"no result for {text!r}; node log:\n" + "\n".join(
            self.node.tail())
        return result

    def robot_done(self, succeeded: bool, detail: str = "") -> None:
        self.robot_status.publish(String(data=json.dumps({"success": succeeded,
                                                          "detail": detail})))

    def wait_for_result(self, matches: Callable[[dict[str, Any]], bool],
                        timeout_s: float = 10.0) -> bool:
        """Has (or will, within the timeout) a ~/result matching ``matches`` arrived?"""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(matches(r) for r in list(self.client.results)):
                return True
            time.sleep(0.05)
        return False

    def wait_for(self, key: str, count: int, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.listener.count(key) >= count:
                return True
            time.sleep(0.02)
        return False

    def alive(self) -> bool:
        return self.node.alive()

    def close(self) -> None:
        """End everything, the node process last and whatever fails before it (idempotent)."""
        try:
            if self.executor is not None:
                self.executor.shutdown()
                self.executor = None
            # The spin thread may still be inside spin_once: destroying the nodes under it raises
            # InvalidHandle there.
            if self._spinner is not None:
                self._spinner.join(timeout=5.0)
                self._spinner = None
            while self._nodes:
                self._nodes.pop().destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
        finally:
            self.node.stop()


def call(node: Node, srv_type: Any, name: str, request: Any, timeout_s: float = 60.0) -> Any:
    """Call a service from ``node`` (spun elsewhere, e.g. by a RosGraph's executor)."""
    client = node.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout_s), f"no service {name}"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), f"{name}: no answer within {timeout_s} s"
        return future.result()
    finally:
        node.destroy_client(client)


def set_parameters(node: Node, values: dict[str, Any], target: str = "/vlm_ros") -> list[Any]:
    """`ros2 param set`, over the node's rcl_interfaces/srv/SetParameters service: one
    SetParametersResult (successful, reason) per parameter."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request()
    request.parameters = [Parameter(name, value=value).to_parameter_msg()
                          for name, value in values.items()]
    return list(call(node, SetParameters, f"{target}/set_parameters", request).results)
