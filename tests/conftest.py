"""Test-wide set-up.

DDS discovery must stay on this machine (no multicast onto the network) and every test session
gets its own ROS_DOMAIN_ID so parallel runs never see each other.  These are set here, before any
test imports rclpy, and never become defaults for robot use.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if os.environ.get("ROS_DISTRO") == "humble":  # Humble predates the variable above (Iron)
    os.environ["ROS_LOCALHOST_ONLY"] = "1"


def _claim_domain_id() -> str:
    """A ROS_DOMAIN_ID no other test session on this machine holds: each candidate is a lock
    file, held (flock) for the life of this process, so two pytest runs at once never share a
    domain (a shared one mixes their nodes' answers).  Fast DDS allows 0..232."""
    folder = Path(tempfile.gettempdir()) / "vlm_ros_test_domains"
    folder.mkdir(exist_ok=True)
    candidates = list(range(100, 233))
    random.Random(os.getpid()).shuffle(candidates)
    for domain in candidates:
        handle = open(folder / f"{domain}.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _HELD_LOCKS.append(handle)
        return str(domain)
    raise RuntimeError(f"every test ROS domain 100..232 is taken (locks in {folder})")


_HELD_LOCKS: list = []
if "ROS_DOMAIN_ID" not in os.environ:  # a caller's choice (.ci/run) stands
    os.environ["ROS_DOMAIN_ID"] = _claim_domain_id()
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")


def _check_built_interfaces() -> None:
    """CI builds the ROS package (scripts/build_ros_package.sh) and sets
    VLM_ROS_REQUIRE_INTERFACES: then the generated vlm_ros.msg / .srv / .action must import, so
    the tests of the service, the action and the typed messages run instead of skipping."""
    if os.environ.get("VLM_ROS_REQUIRE_INTERFACES") != "1":
        return
    import importlib

    for module in ("vlm_ros.msg", "vlm_ros.srv", "vlm_ros.action"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise RuntimeError(
                f"VLM_ROS_REQUIRE_INTERFACES=1 but {module} does not import ({exc}); run "
                f"scripts/build_ros_package.sh and eval its --print-env") from exc


_check_built_interfaces()

# Every process this session starts carries its mark (VLM_ROS_TEST_RUN): a test that leaves one
# running errors, and the session fails if any is left at its end (tests/process_guard.py).
from process_guard import _no_process_outlives_its_test, pytest_sessionfinish  # noqa: E402,F401
