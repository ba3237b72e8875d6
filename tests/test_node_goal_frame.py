"""goal_frame over DDS: goals are checked by the safety gate in base_frame, and only then
transformed into goal_frame; without that transform (no tf2 here) no goal leaves, and the result
says why."""

from __future__ import annotations

import pytest
from ros_harness import RosGraph

from vlm_ros import scenes

pytestmark = pytest.mark.ros  # every test here runs the node over DDS


@pytest.fixture(scope="module")
def graph():
    graph = RosGraph(["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
                      "-p", "goal_frame:=map", "-p", "image_reliability:=reliable",
                      "-p", "follow_rate_hz:=0.0", "-p", "track_target_s:=0.0"])
    yield graph
    graph.close()


def test_goal_frame_without_its_transform_sends_no_goals(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    result = graph.say("grab the red cup")
    assert result["status"] == "error" and result["goals"] == []
    assert "goal_frame map" in result["message"] and "base_link" in result["message"]
    assert result["targets"] and result["targets"][0]["point_base"] is not None
    assert not graph.wait_for("grasp_pose", 1, timeout_s=1.0)
    assert not graph.wait_for("target_pose", 1, timeout_s=0.2)
    assert graph.alive()


def test_the_safety_gate_checks_goals_in_base_frame_before_the_goal_frame_transform() -> None:
    """Static order in Outputs.send_goals: safety.check, then the goal_frame lookup, then the
    transform, then publishing."""
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "vlm_ros" / "ros" / "outputs.py").read_text()
    send = next(f for f in ast.walk(ast.parse(source))
                if isinstance(f, ast.FunctionDef) and f.name == "send_goals")
    lines: dict[str, int] = {}
    for node in ast.walk(send):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            lines[name] = min(lines.get(name, node.lineno), node.lineno)
    assert lines["check"] < lines["_goal_from_base"] < lines["goals_in_frame"] < lines["publish"]
