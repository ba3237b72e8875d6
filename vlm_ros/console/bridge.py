"""The console's ROS side: the ``vlm_ros_console`` node.

It publishes the browser's commands on ``<node>/command`` (reliable, like `vlm-ros say`) and
forwards to the web server, through one thread-safe callback ``emit(kind, payload)``:

* ``frame``: JPEG bytes of the camera (``camera_topic``, at most ``max_fps`` a second: frames
  in between are not even converted) and of every ``<node>/debug_image`` (one per answer);
* ``result``: each ``<node>/result`` JSON; ``stop``: each ``<node>/stop``;
* ``health``: the node's ``/diagnostics`` status boiled down to what the health panel shows.

Callbacks run on this node's executor thread and only convert and hand over: the web server
decides per browser what to send (and drops frames a slow browser has no time for).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, String

from vlm_ros.ros.convert import ConversionError, image_to_array
from vlm_ros.ros.diagnostics import find_node_status, status_level
from vlm_ros.ros.teleop import camera_reader_qos, qualified_node_name

NODE_NAME = "vlm_ros_console"
JPEG_QUALITY = 80
Emit = Callable[[str, Any], None]


def default_camera_topic(node: str) -> str:
    """The camera the node reads by default: ``camera/image`` in the node's namespace."""
    namespace = qualified_node_name(node).rsplit("/", 1)[0]
    return f"{namespace}/camera/image"


def encode_jpeg(msg: Image, quality: int = JPEG_QUALITY) -> bytes | None:
    """sensor_msgs/Image -> JPEG bytes (None for an image that cannot be shown)."""
    try:
        array, encoding = image_to_array(msg)
    except (ConversionError, ValueError):
        return None
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.dtype != "uint8":  # depth or 16-bit mono: scale for viewing
        array = cv2.normalize(array, None, 0, 255, cv2.NORM_MINMAX).astype("uint8")
    ok, data = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else None


def health_from_diagnostics(values: dict[str, str], previous: tuple[float, int] | None,
                            now: float) -> tuple[dict[str, Any], tuple[float, int] | None]:
    """The health panel's figures from the node's key/values: camera frames per second (from
    the ``rgb_frames`` counter between two messages), model time (p50/p95 ms), queue depth."""
    def number(key: str) -> float | None:
        try:
            value = float(values.get(key, "nan"))
        except ValueError:
            return None
        return None if value != value else round(value, 1)  # NaN -> None

    frames = int(number("rgb_frames") or 0)
    fps = None
    if previous is not None and now > previous[0]:
        fps = round(max(0, frames - previous[1]) / (now - previous[0]), 1)
    return ({"camera_fps": fps, "model_ms_p50": number("model_ms_p50"),
             "model_ms_p95": number("model_ms_p95"),
             "queued_commands": int(number("queued_commands") or 0),
             "commands": int(number("commands") or 0), "results": int(number("results") or 0),
             "following": values.get("following") == "True",
             "tracking": values.get("tracking") == "True"}, (now, frames))


class ConsoleNode(Node):
    """The console on the ROS graph.  ``node``: the vlm_ros node's name (leading / optional)."""

    def __init__(self, emit: Emit, node: str = "/vlm_ros", camera_topic: str | None = None,
                 max_fps: float = 15.0, name: str = NODE_NAME) -> None:
        super().__init__(name)
        self.target = qualified_node_name(node)
        self._emit = emit
        self.max_fps = max_fps
        self.camera_topic = default_camera_topic(node) if camera_topic is None else camera_topic
        self.watching = False  # set by the server while a browser is connected
        self._camera_due = 0.0
        self.camera_frames = 0  # received / forwarded, for the health panel
        self.camera_forwarded = 0
        self._last_health: tuple[float, int] | None = None
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.command_pub = self.create_publisher(String, f"{self.target}/command", reliable)
        self.create_subscription(String, f"{self.target}/result", self._on_result, reliable)
        self.create_subscription(Empty, f"{self.target}/stop", self._on_stop, reliable)
        self.create_subscription(Image, f"{self.target}/debug_image", self._on_debug,
                                 QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        # The object memory (latched by the node): the page lists it, a click asks to go there.
        self.create_subscription(String, f"{self.target}/memory", self._on_memory,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.camera_reliability = ""
        if self.camera_topic:
            self._camera_timer = self.create_timer(0.5, self._subscribe_camera)
            self._subscribe_camera()

    def _subscribe_camera(self) -> None:
        """Subscribe once the camera's publishers are seen (see camera_reader_qos)."""
        qos = camera_reader_qos(self, self.camera_topic)
        if qos is None:
            return
        self._camera_timer.cancel()
        reliable = qos.reliability == ReliabilityPolicy.RELIABLE
        self.camera_reliability = "reliable" if reliable else "best_effort"
        self.create_subscription(Image, self.camera_topic, self._on_camera, qos)
        self.get_logger().info(f"showing {self.camera_topic} ({self.camera_reliability})")

    # ------------------------------------------------------------------ out
    def send_command(self, text: str) -> float:
        """Publish ``text`` on the node's ~/command; returns the time it was handed to DDS."""
        self.command_pub.publish(String(data=text))
        return time.time()

    def node_seen(self) -> bool:
        """Does the vlm_ros node read our commands?"""
        return self.command_pub.get_subscription_count() > 0

    # ------------------------------------------------------------------ in
    def _on_result(self, msg: String) -> None:
        try:
            result = json.loads(msg.data)
        except ValueError:
            result = {"status": "error", "message": msg.data[:500]}
        self._emit("result", result)

    def _on_memory(self, msg: String) -> None:
        try:
            self._emit("memory", json.loads(msg.data))
        except ValueError:
            pass  # not the node's JSON: nothing to show

    def _on_stop(self, _msg: Empty) -> None:
        self._emit("stop", {"at": time.time()})

    def _on_debug(self, msg: Image) -> None:
        data = encode_jpeg(msg)
        if data is not None:
            self._emit("frame", ("debug", data))

    def _on_camera(self, msg: Image) -> None:
        self.camera_frames += 1
        now = time.monotonic()
        if not self.watching or now < self._camera_due:
            return  # throttled: not even converted
        # A schedule, not "period since the last one": 20 Hz in, 15 Hz out sends 3 of 4 frames
        # (spacing from the last frame would send every other one, 10 Hz).
        period = 1.0 / self.max_fps
        self._camera_due = max(self._camera_due, now - period) + period
        data = encode_jpeg(msg)
        if data is not None:
            self.camera_forwarded += 1
            self._emit("frame", ("camera", data))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        status = find_node_status(msg)
        if status is None:
            return
        values = {kv.key: kv.value for kv in status.values}
        health, self._last_health = health_from_diagnostics(values, self._last_health,
                                                            time.monotonic())
        health.update(level=status_level(status), message=status.message,
                      backend=status.hardware_id)
        self._emit("health", health)
