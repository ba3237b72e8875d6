"""CameraPoseHistory: a camera that pans on the robot, placed by the pose it reported at each
image's stamp (the node's camera_pose_topic, for robots without TF)."""

from __future__ import annotations

import math

import pytest

from vlm_ros.core.geometry import CameraPoseHistory, camera_extrinsics


def history() -> CameraPoseHistory:
    poses = CameraPoseHistory("base_link", "cam", max_gap_s=0.5)
    for stamp, yaw in ((1.0, 0.0), (2.0, 90.0), (1.5, 45.0)):  # out of order on purpose
        poses.add(stamp, camera_extrinsics(0.0, 0.0, 1.0, 0.0, 0.0, math.radians(yaw)))
    return poses


def heading(poses: CameraPoseHistory, stamp: float) -> float | None:
    transform = poses.lookup("base_link", "cam", stamp)
    if transform is None:
        return None
    x, y, _z = transform.apply((0.0, 0.0, 1.0))
    return round(math.degrees(math.atan2(y, x)), 6)


def test_an_image_takes_the_newest_pose_not_after_its_stamp() -> None:
    poses = history()
    assert heading(poses, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert heading(poses, 1.2) == pytest.approx(0.0, abs=1e-6)
    assert heading(poses, 1.5) == pytest.approx(45.0)
    assert heading(poses, 2.4) == pytest.approx(90.0)


def test_no_pose_before_the_image_or_too_old_a_one_places_it_nowhere() -> None:
    poses = history()
    assert poses.lookup("base_link", "cam", 0.5) is None
    assert poses.lookup("base_link", "cam", 2.6) is None
    assert "no camera pose within 0.5 s" in poses.why_not("base_link", "cam")


def test_the_inverse_and_unknown_frames() -> None:
    poses = history()
    to_base = poses.lookup("base_link", "cam", 2.0)
    to_cam = poses.lookup("cam", "base_link", 2.0)
    point = (0.3, -0.2, 1.5)
    assert to_cam.apply(to_base.apply(point)) == pytest.approx(point)
    assert poses.lookup("map", "cam", 2.0) is None
    assert "only 'base_link' <-> 'cam'" in poses.why_not("map", "cam")
