"""What may be picked up, at the node over DDS (issue #12): the real node process, a real photo with
synthetic depth and CameraInfo.  "pick up the person" publishes no goal and says why on ~/result;
"go to the person" still publishes goal_pose; nothing is put on the dog.  (With
confirm-before-motion a refused pick is refused, never asked about: tests/test_node_confirm.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
from photos import load_photo
from ros_harness import RosGraph

from vlm_ros import scenes
from vlm_ros.core.types import CameraIntrinsics

pytestmark = pytest.mark.ros  # every test here runs the node over DDS

# 1 m up looking along base +x: the person, about a metre away, is inside the manipulation
# workspace, so the category is the only reason a pick of her is refused.
CAMERA = ["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
          "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
          "-p", "publish_debug_image:=false"]
MANIPULATION = ("grasp_pose", "pregrasp_pose", "place_pose", "target_pose")


def scene(name: str) -> tuple[np.ndarray, np.ndarray, CameraIntrinsics]:
    """A photo about a metre away (a plane 0.9-1.2 m) seen through a 60 degree lens."""
    rgb = load_photo(name)
    h, w = rgb.shape[:2]
    return rgb, scenes.tabletop_depth(w, h, near_m=0.9, far_m=1.2), scenes.intrinsics_for(w, h)


@pytest.fixture(scope="module")
def graph():
    graph = RosGraph(CAMERA)
    yield graph
    graph.close()


def _counts(graph: RosGraph) -> dict[str, int]:
    return {key: graph.listener.count(key) for key in (*MANIPULATION, "goal_pose")}


def test_pick_up_the_person_is_rejected_and_publishes_no_goal(graph: RosGraph) -> None:
    graph.show(*scene("person"))
    before = _counts(graph)
    result = graph.say("pick up the person")
    assert result["status"] == "rejected", result
    assert "I won't pick up the person: a person is never grasped" in result["message"]
    assert "outside the workspace" not in result["message"]
    # Judged with the command (issue #20): refused before the model ran, nothing grounded.
    assert result["goals"] == [] and result["targets"] == [] and result["will_act"] is False
    assert not graph.wait_for("grasp_pose", before["grasp_pose"] + 1, timeout_s=1.5)
    assert _counts(graph) == before  # no grasp, pregrasp, place or target pose, no goal_pose
    assert graph.alive()


def test_go_to_the_person_still_publishes_goal_pose(graph: RosGraph) -> None:
    graph.show(*scene("person"))
    before = _counts(graph)
    result = graph.say("go to the person")
    assert result["status"] == "ok", result["message"]
    assert [g["kind"] for g in result["goals"]] == ["navigate"]
    assert graph.wait_for("goal_pose", before["goal_pose"] + 1)
    assert graph.listener.count("grasp_pose") == before["grasp_pose"]


def test_nothing_is_put_on_the_dog(graph: RosGraph) -> None:
    graph.show(*scene("dog"))
    before = _counts(graph)
    result = graph.say("put it on the dog")
    assert result["status"] == "rejected", result
    assert "I won't put anything on the dog" in result["message"]
    assert not graph.wait_for("place_pose", before["place_pose"] + 1, timeout_s=1.0)


def test_the_red_cup_is_still_picked_up(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    grasps = graph.listener.count("grasp_pose")
    result = graph.say("grab the red cup")
    assert result["status"] == "ok", result["message"]
    assert 0.05 < result["targets"][0]["width_m"] < 0.15
    assert graph.wait_for("grasp_pose", grasps + 1)
