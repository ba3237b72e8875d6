"""rclpy APIs that differ between the ROS 2 distributions we support, in one place.

Supported: Humble (rclpy 3.3, Python 3.10), Jazzy (rclpy 7.1), Kilted (rclpy 9.1), Rolling.
Everything else vlm_ros takes from rclpy has the same module, name and signature in all four
(the audit: docs/ros_distros.md; tests/test_compat.py pins the allowlist of rclpy imports).
Code elsewhere imports the names below from here, never from the moved modules.

- ``PublisherEventCallbacks`` / ``SubscriptionEventCallbacks``: ``rclpy.qos_event`` in Humble,
  ``rclpy.event_handler`` since Iron.  Jazzy, Kilted and Rolling keep a ``rclpy.qos_event`` shim
  that warns (DeprecationWarning) on import, so the new module is tried first.  The keywords we
  pass (``use_default_callbacks``) exist in both; ``matched`` / ``incompatible_type`` do not
  exist in Humble.
- ``publisher_count(node, subscription)``: ``Subscription.get_publisher_count()`` was added in
  Iron; Humble counts the topic's publishers through the node's graph instead.

Not Python, so not here: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` replaced
``ROS_LOCALHOST_ONLY=1`` in Iron; tests/conftest.py and CMakeLists.txt's test block add the latter
on Humble only (Jazzy and later warn that it is deprecated).
"""

from __future__ import annotations

from typing import Any

try:  # Iron and later (Jazzy, Kilted, Rolling)
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble: the module was renamed rclpy.event_handler in Iron
    from rclpy.qos_event import (  # type: ignore[no-redef]
        PublisherEventCallbacks,
        SubscriptionEventCallbacks,
    )

# Where the event-callback classes came from: "rclpy.event_handler" (Iron and later) or
# "rclpy.qos_event" (Humble).
EVENT_HANDLER_MODULE: str = PublisherEventCallbacks.__module__
HUMBLE_API: bool = EVENT_HANDLER_MODULE == "rclpy.qos_event"


def publisher_count(node: Any, subscription: Any) -> int:
    """How many publishers the subscription's topic has.

    ``Subscription.get_publisher_count()`` exists since Iron; on Humble the count comes from
    ``node.count_publishers(subscription.topic_name)`` (the same graph query by topic name).
    """
    getter = getattr(subscription, "get_publisher_count", None)
    if getter is not None:
        return int(getter())
    return graph_publisher_count(node, subscription)


def graph_publisher_count(node: Any, subscription: Any) -> int:
    """Humble's way (works on every distro): ask the node's graph about the topic's name."""
    return int(node.count_publishers(subscription.topic_name))


__all__ = [
    "EVENT_HANDLER_MODULE",
    "HUMBLE_API",
    "PublisherEventCallbacks",
    "SubscriptionEventCallbacks",
    "graph_publisher_count",
    "publisher_count",
]
