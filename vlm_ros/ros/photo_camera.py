"""A camera driver stand-in: publishes a still RGB image (+ depth + CameraInfo) at a fixed rate.

Used by `vlm-ros camera`, the photo demo and the integration tests; it publishes exactly what a
RealSense-style RGB-D driver would (sensor-data QoS, matching stamps, registered depth).
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vlm_ros.core.types import CameraIntrinsics
from vlm_ros.ros.convert import array_to_image


def camera_info_msg(intrinsics: CameraIntrinsics, frame_id: str) -> CameraInfo:
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = intrinsics.width, intrinsics.height
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, 0.0, intrinsics.fy, intrinsics.cy, 0.0,
              0.0, 0.0, 1.0, 0.0]
    return info


class PhotoCamera(Node):
    """Publishes ``rgb`` on camera/image, ``depth_m`` (16UC1 mm) on camera/depth, and info."""

    def __init__(self, rgb: np.ndarray, depth_m: np.ndarray | None = None,
                 intrinsics: CameraIntrinsics | None = None, rate_hz: float = 10.0,
                 frame_id: str = "camera_color_optical_frame", name: str = "photo_camera",
                 namespace: str = "", log_every_s: float = 0.0) -> None:
        """``log_every_s`` > 0: log what is published once at start and the frame count every
        ``log_every_s`` seconds (`vlm-ros camera` does; tests and demos stay quiet)."""
        if not rate_hz > 0.0:  # NaN too
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        super().__init__(name, namespace=namespace)
        self.frame_id = frame_id
        self.rate_hz = rate_hz
        self.published = 0
        # Reliable like most RGB-D drivers' defaults: serves reliable and best-effort readers.
        # 10 samples: with 2, Fast DDS replaced about a quarter of 640x480 RGB-D frames at 30 Hz
        # before an idle reader acknowledged them (measured with vlm-ros bench).
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, "camera/image", qos)
        self.depth_pub = self.create_publisher(Image, "camera/depth", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", qos)
        self.set_image(rgb, depth_m, intrinsics)
        self.create_timer(1.0 / rate_hz, self.publish_once)
        if log_every_s > 0.0:
            self.get_logger().info(self.describe())
            self.create_timer(log_every_s, lambda: self.get_logger().info(
                f"published {self.published} frames on {self.image_pub.topic_name}"))

    def describe(self) -> str:
        """One line: what this camera publishes, where, and how often."""
        parts = [f"{self._image.width}x{self._image.height} rgb8 on {self.image_pub.topic_name}"]
        if self._depth is not None:
            parts.append(f"16UC1 depth (mm) on {self.depth_pub.topic_name}")
        if self._info is not None:
            parts.append(f"CameraInfo on {self.info_pub.topic_name}")
        return (f"publishing {', '.join(parts)} at {self.rate_hz:g} Hz, "
                f"frame_id {self.frame_id}")

    def set_image(self, rgb: np.ndarray, depth_m: np.ndarray | None = None,
                  intrinsics: CameraIntrinsics | None = None) -> None:
        """Swap the scene (messages are built once here, not per publish)."""
        self._image = array_to_image(rgb, "rgb8")
        self._depth = None
        if depth_m is not None:
            millimetres = np.nan_to_num(depth_m * 1000.0, nan=0.0).clip(0, 65535)
            self._depth = array_to_image(millimetres.astype(np.uint16), "16UC1")
        self._info = camera_info_msg(intrinsics, self.frame_id) if intrinsics else None

    def set_image_msg(self, image: Image) -> None:
        """Publish ``image`` as it is (tests use this to send malformed frames)."""
        self._image = image

    def publish_once(self) -> None:
        stamp = self.get_clock().now().to_msg()
        for msg, publisher in ((self._image, self.image_pub), (self._depth, self.depth_pub),
                               (self._info, self.info_pub)):
            if msg is not None:
                msg.header.stamp = stamp
                msg.header.frame_id = self.frame_id
                publisher.publish(msg)
        self.published += 1
