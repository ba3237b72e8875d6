"""Parameters over DDS: a second node sets them through /vlm_ros/set_parameters (what
`ros2 param set` does); live ones change what the running node does, others are refused."""

from __future__ import annotations

import time

import pytest
from ros_harness import RosGraph, set_parameters

from vlm_ros import scenes

pytestmark = pytest.mark.ros  # the node over DDS

CAMERA = ["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
          "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
          "-p", "publish_debug_image:=false", "-p", "track_target_s:=0.0"]


@pytest.fixture(scope="module")
def graph():
    graph = RosGraph(CAMERA)
    graph.show(*scenes.coffee())
    yield graph
    graph.close()


def _set(graph: RosGraph, **values) -> list:
    return set_parameters(graph.client, values)


def test_score_threshold_is_applied_to_the_next_command(graph: RosGraph) -> None:
    before = graph.say("grab the red cup")
    assert before["status"] == "ok", before
    score = before["targets"][0]["score"]
    assert score < 0.99, score  # what the change below must make too low
    try:
        [result] = _set(graph, score_threshold=0.99)
        assert result.successful, result.reason
        grasps = graph.listener.count("grasp_pose")
        after = graph.say("grab the red cup")
        assert after["status"] == "not_found" and after["goals"] == [], after
        time.sleep(0.5)
        assert graph.listener.count("grasp_pose") == grasps
    finally:
        [result] = _set(graph, score_threshold=0.3)
    assert result.successful
    assert graph.say("grab the red cup")["status"] == "ok"


def test_an_out_of_range_value_is_refused_with_the_range(graph: RosGraph) -> None:
    [result] = _set(graph, score_threshold=7.5)
    assert not result.successful
    assert "score_threshold" in result.reason and "1.0" in result.reason, result.reason
    assert graph.say("grab the red cup")["status"] == "ok"  # the old value still applies


def test_a_read_only_parameter_is_refused(graph: RosGraph) -> None:
    [result] = _set(graph, backend="owl")
    assert not result.successful and "read-only" in result.reason, result.reason
    assert graph.say("grab the red cup")["backend"] == "ssd_coco"


def test_a_cross_field_rule_is_refused_with_the_reason(graph: RosGraph) -> None:
    [result] = _set(graph, workspace_min=[0.0, 0.0, 5.0])
    assert not result.successful and "below workspace_max" in result.reason, result.reason
    [result] = _set(graph, allowed_actions=["pick", "dance"])
    assert not result.successful and "unknown action(s) dance" in result.reason, result.reason


def test_confirm_before_motion_switched_on_live(graph: RosGraph) -> None:
    [result] = _set(graph, confirm_before_motion=True)
    assert result.successful, result.reason
    try:
        grasps = graph.listener.count("grasp_pose")
        asked = graph.say("grab the red cup")
        assert asked["status"] == "awaiting_confirmation" and asked["goals"] == [], asked
        time.sleep(0.3)
        assert graph.listener.count("grasp_pose") == grasps
        assert graph.say("no")["message"].startswith("cancelled")
    finally:
        [result] = _set(graph, confirm_before_motion=False)
    assert result.successful
    assert graph.say("grab the red cup")["status"] == "ok"


def test_the_safety_gate_follows_a_live_workspace(graph: RosGraph) -> None:
    """A workspace that excludes the cup: the same pick is refused by the gate."""
    [result] = _set(graph, workspace_max=[0.05, 1.0, 1.8])
    assert result.successful, result.reason
    try:
        refused = graph.say("grab the red cup")
        assert refused["status"] == "rejected" and "safety gate" in refused["message"], refused
    finally:
        [result] = _set(graph, workspace_max=[1.2, 1.0, 1.8])
    assert graph.say("grab the red cup")["status"] == "ok"


def test_score_threshold_minus_one_restores_the_backends_own_default(graph: RosGraph) -> None:
    """-1 = the backend's default (ssd_coco: 0.3): pushed back to the model by the worker."""
    [result] = _set(graph, score_threshold=-0.5)  # inside rclpy's [-1, 1], refused by the rule
    assert not result.successful and "or -1" in result.reason, result.reason
    try:
        [result] = _set(graph, score_threshold=0.99)
        assert result.successful, result.reason
        assert graph.say("grab the red cup")["status"] == "not_found"
    finally:
        [result] = _set(graph, score_threshold=-1.0)
    assert result.successful, result.reason
    assert graph.say("grab the red cup")["status"] == "ok"
