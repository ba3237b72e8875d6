"""Confirm-before-motion over DDS against the node process (issue #5).

The node states what will move, publishes no goal until "yes"/"confirm"/"确认", then grounds
again on a fresh frame; "no", a timeout, a new command or stop cancel it.
"""

from __future__ import annotations

import time

import pytest
from photos import load_photo
from ros_harness import RosGraph

from vlm_ros import scenes

pytestmark = pytest.mark.ros  # the node over DDS, or its module (which needs rclpy)

CAMERA = ["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
          "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
          "-p", "publish_debug_image:=false"]


@pytest.fixture(scope="module")
def confirming():
    graph = RosGraph([*CAMERA, "-p", "confirm_before_motion:=true",
                      "-p", "confirm_timeout_s:=2.0"])
    graph.show(*scenes.coffee())
    yield graph
    graph.close()


def _grasps(graph: RosGraph) -> int:
    return graph.listener.count("grasp_pose")


def _ask(graph: RosGraph) -> dict:
    grasps = _grasps(graph)
    result = graph.say("grab the red cup")
    assert result["status"] == "awaiting_confirmation", result
    assert result["goals"] == []
    assert "I will pick the cup at (" in result["message"] and "base_link" in result["message"]
    time.sleep(0.3)
    assert _grasps(graph) == grasps  # stating the plan moves nothing
    return result


@pytest.mark.parametrize("yes", ["yes", "confirm", "确认"])
def test_confirmed_plan_publishes_the_grasp(confirming: RosGraph, yes: str) -> None:
    _ask(confirming)
    grasps = _grasps(confirming)
    result = confirming.say(yes)
    assert result["status"] == "ok" and result["message"].startswith("confirmed:"), result
    assert result["goals"] and confirming.wait_for("grasp_pose", grasps + 1)


def test_no_cancels_and_nothing_moves(confirming: RosGraph) -> None:
    _ask(confirming)
    grasps = _grasps(confirming)
    result = confirming.say("no")
    assert result["status"] == "ok" and result["message"].startswith("cancelled"), result
    assert confirming.say("yes")["message"] == "nothing to confirm"
    time.sleep(0.3)
    assert _grasps(confirming) == grasps


def test_unanswered_confirmation_expires(confirming: RosGraph) -> None:
    results = confirming.client.results
    seen = len(results)
    _ask(confirming)
    grasps = _grasps(confirming)
    # confirm_timeout_s is 2 s: the node says the plan expired, unprompted.
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not any(
            "no answer within 2 s" in r.get("message", "") for r in results[seen:]):
        time.sleep(0.1)
    expired = [r for r in results[seen:] if "no answer within 2 s" in r.get("message", "")]
    assert expired and expired[0]["status"] == "rejected", results[seen:]
    late = confirming.say("yes")
    assert late["status"] == "rejected" and late["message"] == "nothing to confirm", late
    time.sleep(0.3)
    assert _grasps(confirming) == grasps


def test_stop_cancels_a_pending_confirmation(confirming: RosGraph) -> None:
    _ask(confirming)
    grasps = _grasps(confirming)
    stopped = confirming.say("stop")
    assert "confirmations" in stopped["message"]
    assert confirming.say("yes")["message"] == "nothing to confirm"
    time.sleep(0.3)
    assert _grasps(confirming) == grasps


def test_a_new_command_supersedes_the_pending_one(confirming: RosGraph) -> None:
    _ask(confirming)
    result = confirming.say("grab the blue cup")  # not in the photo: not_found, nothing held
    assert result["status"] == "not_found"
    assert confirming.say("yes")["message"] == "nothing to confirm"


def test_a_pick_the_gate_refuses_is_not_asked_about(confirming: RosGraph) -> None:
    rgb = load_photo("person")
    h, w = rgb.shape[:2]
    confirming.show(rgb, scenes.tabletop_depth(w, h, 0.9, 1.2), scenes.intrinsics_for(w, h))
    grasps = _grasps(confirming)
    try:
        result = confirming.say("pick up the person")
        assert result["status"] == "rejected", result  # not "awaiting_confirmation"
        assert "a person is never grasped" in result["message"]
        assert confirming.say("yes")["message"] == "nothing to confirm"
        time.sleep(0.3)
        assert _grasps(confirming) == grasps
    finally:
        confirming.show(*scenes.coffee())


def test_target_moved_since_the_question_is_refused(confirming: RosGraph) -> None:
    rgb, depth, intrinsics = scenes.coffee()
    _ask(confirming)
    grasps = _grasps(confirming)
    # The same cup, 30 cm farther away by the time the operator says yes.
    confirming.show(rgb, depth + 0.3, intrinsics)
    try:
        result = confirming.say("yes")
        assert result["status"] == "rejected" and "moved" in result["message"], result
        time.sleep(0.3)
        assert _grasps(confirming) == grasps
    finally:
        confirming.show(rgb, depth, intrinsics)


def test_confirmation_words_without_a_question(confirming: RosGraph) -> None:
    result = confirming.say("yes")
    assert result["status"] == "rejected" and result["message"] == "nothing to confirm"


def test_a_place_confirmation_states_the_destination() -> None:
    from vlm_ros.core.session import stated_object
    from vlm_ros.core.types import Candidate, GroundingResult, Instruction

    cup = Candidate(0, "cup", 0.9, (0, 0, 10, 10), point_base=(0.5, 0.0, 0.1))
    bowl = Candidate(1, "bowl", 0.9, (20, 0, 40, 10), point_base=(0.6, 0.2, 0.05))
    placing = GroundingResult(status="ok", instruction=Instruction(text="put the cup in the bowl",
                                                                   action="place"),
                              targets=[cup], destination=bowl)
    picking = GroundingResult(status="ok", instruction=Instruction(text="grab the cup",
                                                                   action="pick"),
                              targets=[cup])
    assert stated_object(placing) is bowl
    assert stated_object(picking) is cup
