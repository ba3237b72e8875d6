"""tf2-backed frame resolution for the node (the core's FrameResolver protocol).

tf2_ros is not available as a PyPI wheel, so it is imported lazily; the node falls back to the
static ``camera_pose_in_base`` extrinsics when it is missing, and says so in its start-up log.
"""

from __future__ import annotations

from typing import Any

from vlm_ros.core.geometry import FrameResolver, StaticFrameResolver, Transform
from vlm_ros.ros.params import NodeSettings


def tf2_available() -> bool:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


class Tf2FrameResolver:
    """Looks transforms up at the image stamp; returns None (never a guess) when tf2 cannot."""

    def __init__(self, node: Any, timeout_s: float) -> None:
        import tf2_ros
        from rclpy.duration import Duration

        self._tf2 = tf2_ros
        self._timeout = Duration(seconds=timeout_s)
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self._node = node

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


def make_frame_resolver(node: Any, settings: NodeSettings) -> tuple[FrameResolver, bool]:
    """tf2 at the image stamp when importable (and use_tf), else the static extrinsics; and
    whether tf2 is used."""
    if settings.use_tf and tf2_available():
        return Tf2FrameResolver(node, settings.tf_timeout_s), True
    if settings.use_tf:
        node.get_logger().warning(
            "use_tf is true but tf2_ros is not importable: using the static "
            "camera_pose_in_base extrinsics for the image frame only")
    return LazyStaticResolver(settings), False


class LazyStaticResolver:
    """StaticFrameResolver bound to the first camera frame it is asked about: it knows exactly
    one camera frame (whatever frame the images carry, or camera_frame), so other frames are
    refused, never guessed."""

    def __init__(self, settings: NodeSettings) -> None:
        self._settings = settings
        self._extrinsics = settings.camera_extrinsics()
        self._resolver: StaticFrameResolver | None = None

    def lookup(self, target_frame: str, source_frame: str, stamp: float) -> Any:
        camera_frame = self._settings.camera_frame or source_frame
        if not camera_frame:
            return None
        if self._resolver is None:
            self._resolver = StaticFrameResolver(self._settings.base_frame, camera_frame,
                                                 self._extrinsics)
        return self._resolver.lookup(target_frame, source_frame, stamp)
