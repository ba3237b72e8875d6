"""The node over DDS without camera extrinsics (no TF, camera_pose_in_base not set) and with a
CameraInfo for another image size: grounding without goals and with the reason, an error result
for the mismatch, and the node keeps serving."""

from __future__ import annotations

import pytest
from photos import load_photo
from ros_harness import RosGraph

from vlm_ros import scenes
from vlm_ros.core.types import CameraIntrinsics

pytestmark = pytest.mark.ros  # every test here runs the node over DDS

GOAL_KEYS = ("grasp_pose", "pregrasp_pose", "place_pose", "goal_pose")


@pytest.fixture(scope="module")
def graph():
    # No camera_pose_in_base, and tf2_ros is not importable here: the extrinsics are unknown.
    graph = RosGraph(["-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
                      "-p", "track_target_s:=0.0"])
    yield graph
    graph.close()


def _goal_count(graph: RosGraph) -> int:
    return sum(graph.listener.count(key) for key in GOAL_KEYS)


def test_no_extrinsics_gives_the_grounding_but_no_goals_and_says_why(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    before = _goal_count(graph)
    result = graph.say("grab the red cup")
    assert result["status"] == "ok", result["message"]
    assert result["targets"] and result["targets"][0]["label"] == "cup"
    assert result["targets"][0]["point_camera"] is not None  # 3D in the camera frame
    assert result["targets"][0]["point_base"] is None
    assert result["goals"] == []
    assert ("no camera extrinsics: set camera_pose_in_base or provide TF base_link <- "
            "camera_color_optical_frame") in result["message"]
    assert not graph.wait_for("grasp_pose", 1, timeout_s=1.0)
    assert _goal_count(graph) == before and graph.alive()


def test_uncalibrated_it_never_says_ok_to_grab_the_dog_and_says_it_will_not_act(
        graph: RosGraph) -> None:
    # Issue #20: what may be picked up is judged with the command, with or without a goal; an
    # ok without a goal says so in fields a program reads (will_act, no_goal_reason).
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    graph.show(rgb, scenes.tabletop_depth(w, h, 0.9, 1.2), scenes.intrinsics_for(w, h))
    grab = graph.say("grab the dog")
    assert grab["status"] == "rejected" and "won't pick up the dog" in grab["message"]
    assert grab["will_act"] is False
    go = graph.say("go to the dog")
    assert go["status"] == "ok" and go["goals"] == [] and go["will_act"] is False
    assert go["no_goal_reason"].startswith("no 3D goal possible")
    assert go["no_goal_reason"] in go["message"]
    assert not graph.wait_for("grasp_pose", 1, timeout_s=0.5) and graph.alive()


def test_camera_info_for_another_size_is_an_error_and_the_node_keeps_serving(
        graph: RosGraph) -> None:
    rgb, depth, k = scenes.coffee()  # 600x400
    wrong = CameraIntrinsics(k.fx * 2.0, k.fy * 2.0, 640.0, 360.0, 1280, 720)
    graph.show(rgb, depth, wrong)
    before = _goal_count(graph)
    result = graph.say("grab the red cup")
    assert result["status"] == "error" and result["goals"] == []
    assert "1280x720 image but the image is 600x400" in result["message"]
    assert _goal_count(graph) == before
    # An exact 2x binning of the image's calibration is used (scaled exactly) ...
    graph.show(rgb, depth, CameraIntrinsics(k.fx * 2.0, k.fy * 2.0, k.cx * 2.0, k.cy * 2.0,
                                            1200, 800))
    binned = graph.say("grab the red cup")
    assert binned["status"] == "ok", binned["message"]
    assert binned["targets"][0]["point_camera"] is not None
    # ... and the node still serves the right calibration.
    graph.show(rgb, depth, k)
    again = graph.say("grab the red cup")
    assert again["status"] == "ok" and again["targets"][0]["label"] == "cup"
    assert graph.alive()
