"""tf2-backed frame resolution for the node (the core's FrameResolver protocol).

tf2_ros is not available as a PyPI wheel, so it is imported lazily; the node falls back to the
static ``camera_pose_in_base`` extrinsics when it is missing, and says so in its start-up log.
With neither (camera_pose_in_base left at [0.0], "not set") the extrinsics are unknown: results
still carry the grounding but no goals, and say why (never an assumed identity extrinsic).
"""

from __future__ import annotations

import threading
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from vlm_ros.core.geometry import (
    OPTICAL_TO_BODY,
    CameraPoseHistory,
    FrameResolver,
    StaticFrameResolver,
    Transform,
    UnknownExtrinsics,
    no_extrinsics_reason,
    quat_normalize,
)
from vlm_ros.ros.params import NodeSettings


def tf2_available() -> bool:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


class Tf2FrameResolver:
    """Looks transforms up at the image stamp; returns None (never a guess) when tf2 cannot."""

    def __init__(self, node: Any, timeout_s: float, base_frame: str = "base_link") -> None:
        import tf2_ros
        from rclpy.duration import Duration

        self._tf2 = tf2_ros
        self._timeout = Duration(seconds=timeout_s)
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self._node = node
        self.base_frame = base_frame

    def lookup(self, target_frame: str, source_frame: str, stamp: float) -> Transform | None:
        from rclpy.time import Time

        if not target_frame or not source_frame:
            return None
        try:
            msg = self.buffer.lookup_transform(
                target_frame, source_frame, Time(nanoseconds=int(stamp * 1e9)), self._timeout)
        except (self._tf2.LookupException, self._tf2.ConnectivityException,
                self._tf2.ExtrapolationException, self._tf2.TransformException) as exc:
            self._node.get_logger().warning(
                f"no transform {source_frame} -> {target_frame} at t={stamp:.3f}: {exc}")
            return None
        t, r = msg.transform.translation, msg.transform.rotation
        return Transform((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))

    def why_not(self, target_frame: str, source_frame: str) -> str:
        missing = f"no TF {target_frame} <- {source_frame} at the image stamp"
        if target_frame == self.base_frame:  # the camera's pose on the robot
            return f"{no_extrinsics_reason(target_frame, source_frame)} ({missing})"
        return missing


def make_frame_resolver(node: Any, settings: NodeSettings) -> tuple[FrameResolver, bool]:
    """tf2 at the image stamp when importable (and use_tf), else the static extrinsics, else
    (camera_pose_in_base not set) a resolver that refuses and says why; and whether tf2 is
    used."""
    if settings.use_tf and tf2_available():
        return Tf2FrameResolver(node, settings.tf_timeout_s, settings.base_frame), True
    if settings.camera_pose_topic:
        return CameraPoseTopic(node, settings), False
    extrinsics = settings.camera_extrinsics()
    if extrinsics is None:
        node.get_logger().warning(
            "no camera extrinsics: " + ("tf2_ros is not importable and " if settings.use_tf
                                        else "use_tf is false and ")
            + "camera_pose_in_base is not set: results will carry the grounding but no goals "
              "until camera_pose_in_base is set (or TF is available)")
        return UnknownExtrinsics(settings.base_frame), False
    if settings.use_tf:
        node.get_logger().warning(
            "use_tf is true but tf2_ros is not importable: using the static "
            "camera_pose_in_base extrinsics for the image frame only")
    return LazyStaticResolver(settings, extrinsics), False


class LazyStaticResolver:
    """StaticFrameResolver bound to the first camera frame it is asked about: it knows exactly
    one camera frame (whatever frame the images carry, or camera_frame), so other frames are
    refused, never guessed."""

    def __init__(self, settings: NodeSettings, extrinsics: Transform) -> None:
        self._settings = settings
        self._extrinsics = extrinsics
        self._resolver: StaticFrameResolver | None = None

    def lookup(self, target_frame: str, source_frame: str, stamp: float) -> Any:
        camera_frame = self._settings.camera_frame or source_frame
        if not camera_frame:
            return None
        if self._resolver is None:
            self._resolver = StaticFrameResolver(self._settings.base_frame, camera_frame,
                                                 self._extrinsics)
        return self._resolver.lookup(target_frame, source_frame, stamp)

    def why_not(self, target_frame: str, source_frame: str) -> str:
        return (f"cannot transform from '{source_frame}' to '{target_frame}': without tf2 "
                f"only {self._settings.base_frame} <- the camera frame (camera_pose_in_base) "
                f"is known")


class CameraPoseTopic:
    """Without TF, a camera that moves on the robot (a pan-tilt unit, the simulator's camera)
    publishes its body pose in base_frame on ``camera_pose_topic`` (PoseStamped, stamped like
    its images); an image is placed with the newest pose not after its stamp
    (:class:`vlm_ros.core.geometry.CameraPoseHistory`), and nowhere when there is none."""

    def __init__(self, node: Any, settings: NodeSettings) -> None:
        self._settings = settings
        self._history: CameraPoseHistory | None = None
        self._lock = threading.Lock()  # written by the executor, read by the worker
        self._pending: list[tuple[float, Transform]] = []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subscription = node.create_subscription(PoseStamped, settings.camera_pose_topic,
                                                     self._on_pose, reliable)

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        body = Transform((p.x, p.y, p.z), quat_normalize((q.x, q.y, q.z, q.w)))
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            if self._history is None:
                self._pending.append((stamp, body.compose(OPTICAL_TO_BODY)))
            else:
                self._history.add(stamp, body.compose(OPTICAL_TO_BODY))

    def _bound(self, source_frame: str) -> CameraPoseHistory | None:
        camera_frame = self._settings.camera_frame or source_frame
        if self._history is None and camera_frame:
            self._history = CameraPoseHistory(self._settings.base_frame, camera_frame)
            for stamp, pose in self._pending:
                self._history.add(stamp, pose)
            self._pending.clear()
        return self._history

    def lookup(self, target_frame: str, source_frame: str, stamp: float) -> Any:
        with self._lock:
            history = self._bound(source_frame)
            return None if history is None else history.lookup(target_frame, source_frame, stamp)

    def why_not(self, target_frame: str, source_frame: str) -> str:
        with self._lock:
            history = self._bound(source_frame)
            if history is None:
                return "no camera frame yet"
            return history.why_not(target_frame, source_frame)
