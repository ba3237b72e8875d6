"""rclpy APIs that moved between the ROS 2 distributions we support, imported in one place."""

from __future__ import annotations

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks  # type: ignore[no-redef]

__all__ = ["PublisherEventCallbacks"]
