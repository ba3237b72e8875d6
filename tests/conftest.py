"""Test-wide set-up.

DDS discovery must stay on this machine (no multicast onto the network) and every test session
gets its own ROS_DOMAIN_ID so parallel runs never see each other.  These are set here, before any
test imports rclpy, and never become defaults for robot use.
"""

from __future__ import annotations

import os
import random

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if os.environ.get("ROS_DISTRO") == "humble":  # Humble predates the variable above (Iron)
    os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(100, 200)))
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")
