"""Camera calibration vs image, camera extrinsics and goal_frame: the rules of
vlm_ros/core/calibration.py, the UnknownExtrinsics resolver and goals_in_frame (ROS-free), and
the same rules where the node reads CameraInfo messages (vlm_ros/ros/convert.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlm_ros import scenes
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.calibration import (
    Calibration,
    CameraInputError,
    check_camera_input,
    check_depth_shape,
    integer_binning,
    intrinsics_for_image,
)
from vlm_ros.core.geometry import (
    StaticFrameResolver,
    Transform,
    UnknownExtrinsics,
    camera_extrinsics,
    quat_from_yaw,
)
from vlm_ros.core.goals import goal_from_base_via_camera, goal_from_camera, goals_in_frame
from vlm_ros.core.instruction import parse_instruction
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.types import CameraIntrinsics, Frame, Goal, Pose

K_1280 = (1000.0, 0.0, 640.0, 0.0, 1002.0, 360.0, 0.0, 0.0, 1.0)
# A rectified camera whose P differs from K (as after cv2.getOptimalNewCameraMatrix), with a
# stereo baseline term Tx that a single camera ignores.
P_1280 = (950.0, 0.0, 630.0, -47.5, 0.0, 951.0, 355.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _calibration(**kwargs) -> Calibration:
    values = {"width": 1280, "height": 720, "k": K_1280, "p": P_1280}
    values.update(kwargs)
    return Calibration(**values)


# ------------------------------------------------------------------------------- P versus K


def test_rectified_images_use_p_and_ignore_tx() -> None:
    k = intrinsics_for_image(_calibration(), 1280, 720, rectified=True)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (950.0, 951.0, 630.0, 355.0, 1280, 720)


def test_raw_images_use_k() -> None:
    k = intrinsics_for_image(_calibration(), 1280, 720, rectified=False)
    assert (k.fx, k.fy, k.cx, k.cy) == (1000.0, 1002.0, 640.0, 360.0)


def test_rectified_image_with_an_all_zero_p_is_refused() -> None:
    with pytest.raises(CameraInputError, match="all-zero P"):
        intrinsics_for_image(_calibration(p=(0.0,) * 12), 1280, 720, rectified=True)
    # A raw image does not need P.
    assert intrinsics_for_image(_calibration(p=(0.0,) * 12), 1280, 720, False).fx == 1000.0


def test_a_file_without_p_describes_the_image_with_k() -> None:
    k = intrinsics_for_image(_calibration(p=()), 1280, 720, rectified=True)
    assert (k.fx, k.cx) == (1000.0, 640.0)


def test_all_zero_k_is_uncalibrated_in_both_modes() -> None:
    for rectified in (True, False):
        with pytest.raises(CameraInputError, match="not calibrated"):
            intrinsics_for_image(_calibration(k=(0.0,) * 9), 1280, 720, rectified)


# --------------------------------------------------------------------------- size and binning


def test_exact_2x_binning_is_accepted_and_scales_k_exactly() -> None:
    k = intrinsics_for_image(_calibration(), 640, 360, rectified=False)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (500.0, 501.0, 320.0, 180.0, 640, 360)
    p = intrinsics_for_image(_calibration(), 320, 180, rectified=True)  # 4x
    assert (p.fx, p.fy, p.cx, p.cy, p.width, p.height) == (237.5, 237.75, 157.5, 88.75, 320, 180)


def test_another_aspect_ratio_is_refused() -> None:
    """The case that moved a grasp by 0.56 m: a 1280x720 CameraInfo on a 640x480 image."""
    with pytest.raises(CameraInputError, match=r"1280x720 image but the image is 640x480"):
        intrinsics_for_image(_calibration(), 640, 480, rectified=True)


@pytest.mark.parametrize("size", [(641, 360), (640, 361), (1279, 720), (427, 240), (2560, 1440)])
def test_off_by_one_non_integer_and_upscaled_sizes_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(CameraInputError, match="not the same size nor an exact integer binning"):
        intrinsics_for_image(_calibration(), *size, rectified=False)


def test_integer_binning() -> None:
    assert integer_binning((1280, 720), (1280, 720)) == 1
    assert integer_binning((1280, 720), (640, 360)) == 2
    assert integer_binning((1280, 720), (640, 480)) is None
    assert integer_binning((1280, 720), (640, 240)) is None  # 2 across, 3 down
    assert integer_binning((1280, 720), (0, 0)) is None


def test_camera_info_binning_and_roi_follow_rep_104() -> None:
    calib = _calibration(width=1280, height=960, binning_x=2, binning_y=2,
                         k=(1000.0, 0.0, 640.0, 0.0, 1000.0, 480.0, 0.0, 0.0, 1.0))
    assert calib.published_size() == (640, 480)
    k = intrinsics_for_image(calib, 640, 480, rectified=False)
    assert (k.fx, k.cx, k.cy) == (500.0, 320.0, 240.0)
    cropped = _calibration(width=1280, height=960, binning_x=2, binning_y=2,
                           k=(1000.0, 0.0, 640.0, 0.0, 1000.0, 480.0, 0.0, 0.0, 1.0),
                           roi=(100, 40, 800, 600))
    k = intrinsics_for_image(cropped, 400, 300, rectified=False)
    assert (k.fx, k.cx, k.cy, k.width, k.height) == (500.0, 270.0, 220.0, 400, 300)
    # The binned size is what the image must match: the full sensor size is refused.
    with pytest.raises(CameraInputError, match="after its binning 2x2"):
        intrinsics_for_image(calib, 1280, 960, rectified=False)


def test_a_cropping_roi_on_a_rectified_image_is_refused() -> None:
    with pytest.raises(CameraInputError, match="roi on a rectified image"):
        intrinsics_for_image(_calibration(roi=(100, 40, 800, 600)), 800, 600, rectified=True)
    # A roi that is the whole sensor crops nothing.
    whole = intrinsics_for_image(_calibration(roi=(0, 0, 1280, 720)), 1280, 720, True)
    assert whole.fx == 950.0


# -------------------------------------------------------------------------------------- depth


def test_depth_must_be_registered_to_the_image() -> None:
    check_depth_shape((480, 640), 640, 480)
    check_depth_shape((240, 320), 640, 480)  # half resolution: an exact binning
    for shape in ((640, 480), (480, 200), (481, 640), (360, 640)):  # transposed, cut, off by one
        with pytest.raises(CameraInputError, match="not registered"):
            check_depth_shape(shape, 640, 480)
    with pytest.raises(CameraInputError, match="single-channel"):
        check_depth_shape((480, 640, 3), 640, 480)


def test_check_camera_input_checks_depth_and_calibration_together() -> None:
    calib = Calibration.from_intrinsics(CameraIntrinsics(500.0, 500.0, 319.5, 239.5, 640, 480))
    assert check_camera_input(640, 480, (480, 640), calib, True).fx == 500.0
    assert check_camera_input(640, 480, None, None, True) is None
    with pytest.raises(CameraInputError, match="--depth is 480x640"):
        check_camera_input(640, 480, (640, 480), calib, True, depth_name="--depth")


# ------------------------------------------------------------------------ unknown extrinsics


@pytest.fixture(scope="module")
def backend() -> SsdCocoBackend:
    return SsdCocoBackend()


def test_unset_extrinsics_give_the_grounding_but_no_goals_and_say_why(backend) -> None:
    rgb, depth, k = scenes.coffee()
    frame = Frame(rgb=rgb, depth_m=depth, intrinsics=k, frame_id="camera_color_optical_frame")
    pipeline = Pipeline(backend, frames=UnknownExtrinsics("base_link"))
    result = pipeline.ground(parse_instruction("grab the red cup"), frame)
    assert result.status == "ok" and result.goals == []
    assert result.targets and result.targets[0].label == "cup"
    assert result.targets[0].point_camera is not None  # 3D in the camera frame
    assert result.targets[0].point_base is None
    assert ("no camera extrinsics: set camera_pose_in_base or provide TF base_link <- "
            "camera_color_optical_frame") in result.message
    # The same frame with the extrinsics known gives goals.
    known = StaticFrameResolver("base_link", "camera_color_optical_frame",
                                camera_extrinsics(0.0, 0.0, 1.0))
    assert Pipeline(backend, frames=known).ground(
        parse_instruction("grab the red cup"), frame).goals


def test_unknown_extrinsics_resolve_only_a_frame_to_itself() -> None:
    frames = UnknownExtrinsics("base_link")
    assert frames.lookup("base_link", "camera", 0.0) is None
    assert frames.lookup("camera", "camera", 0.0) == Transform.identity()


# ------------------------------------------------------------------------------- goal_frame


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-9) for x, y in zip(a, b))


def test_goals_in_another_frame() -> None:
    # The robot stands at (2, 1) in map, turned 90 degrees left.
    map_from_base = Transform((2.0, 1.0, 0.0), quat_from_yaw(math.pi / 2))
    grasp = Goal("grasp", "base_link", Pose((0.5, 0.0, 0.8), (1.0, 0.0, 0.0, 0.0)), stamp=3.0)
    nav = Goal("navigate", "base_link", Pose((1.0, 0.0, 0.0), quat_from_yaw(0.0)), stamp=3.0)
    moved = goals_in_frame([grasp, nav], "map", map_from_base)
    assert [g.frame_id for g in moved] == ["map", "map"]
    assert [g.kind for g in moved] == ["grasp", "navigate"] and moved[0].stamp == 3.0
    assert _close(moved[0].pose.position, (2.0, 1.5, 0.8))
    assert _close(moved[1].pose.position, (2.0, 2.0, 0.0))
    assert _close(moved[1].pose.orientation, quat_from_yaw(math.pi / 2))
    # A top-down grasp stays top-down: its approach axis still points down.
    rotated = Transform((0.0, 0.0, 0.0), moved[0].pose.orientation).apply((0.0, 0.0, 1.0))
    assert _close(rotated, (0.0, 0.0, -1.0))
    # The inputs are not changed (the result keeps its base-frame goals until published).
    assert grasp.frame_id == "base_link" and grasp.pose.position == (0.5, 0.0, 0.8)


def test_goal_transform_composition_matches_the_chain() -> None:
    base_from_camera = camera_extrinsics(0.1, -0.05, 1.2, 0.0, 0.5, 0.2)
    map_from_base = Transform((3.0, -1.0, 0.0), quat_from_yaw(-0.7))
    point = (0.2, -0.1, 1.5)  # in the camera optical frame
    chained = map_from_base.apply(base_from_camera.apply(point))
    map_from_camera = goal_from_camera(base_from_camera, map_from_base)
    assert _close(map_from_camera.apply(point), chained)
    # And back: goal <- base from a goal <- camera lookup.
    recovered = goal_from_base_via_camera(base_from_camera, map_from_camera)
    assert _close(recovered.translation, map_from_base.translation)
    assert _close(recovered.apply((1.0, 2.0, 3.0)), map_from_base.apply((1.0, 2.0, 3.0)))


def test_identity_goal_frame_changes_nothing() -> None:
    goal = Goal("look", "base_link", Pose((1.0, 2.0, 0.5), quat_from_yaw(0.3)))
    (same,) = goals_in_frame([goal], "base_link", Transform.identity())
    assert _close(same.pose.position, goal.pose.position)
    assert _close(same.pose.orientation, goal.pose.orientation)


# ------------------------------------------------------------------- CameraInfo in the node


def test_node_conversion_applies_the_rules_to_camera_info_messages() -> None:
    pytest.importorskip("sensor_msgs")
    from sensor_msgs.msg import CameraInfo

    from vlm_ros.ros.convert import ConversionError, array_to_image
    from vlm_ros.ros.frame_buffer import to_frame

    info = CameraInfo(width=1280, height=720)
    info.k, info.p = list(K_1280), list(P_1280)
    image = array_to_image(np.zeros((360, 640, 3), np.uint8), "rgb8")
    depth = array_to_image(np.full((360, 640), 1000, np.uint16), "16UC1")
    rectified = to_frame(image, depth, info, 0.001, image_rectified=True)
    assert rectified.intrinsics == CameraIntrinsics(475.0, 475.5, 315.0, 177.5, 640, 360)
    raw = to_frame(image, depth, info, 0.001, image_rectified=False)
    assert raw.intrinsics == CameraIntrinsics(500.0, 501.0, 320.0, 180.0, 640, 360)
    wrong = array_to_image(np.zeros((480, 640, 3), np.uint8), "rgb8")
    with pytest.raises(ConversionError, match="1280x720 image but the image is 640x480"):
        to_frame(wrong, None, info, 0.001)
    transposed = array_to_image(np.full((640, 360), 1000, np.uint16), "16UC1")
    with pytest.raises(ConversionError, match="camera/depth is 360x640, not registered"):
        to_frame(image, transposed, info, 0.001)


def test_an_image_topic_name_that_contradicts_image_rectified_is_warned_about() -> None:
    pytest.importorskip("sensor_msgs")
    from vlm_ros.ros.frame_buffer import rectification_doubt

    assert "set image_rectified:=false" in rectification_doubt("/camera/color/image_raw", True)
    assert "set image_rectified:=true" in rectification_doubt(
        "/camera/image_rect_color/compressed", False)
    assert rectification_doubt("/camera/image_rect", True) == ""
    assert rectification_doubt("/camera/image_raw", False) == ""
    assert rectification_doubt("/vlm_ros/camera/image", True) == ""
