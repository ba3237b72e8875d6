"""The safety gate: unit tests of the core check, and the node refusing goals over DDS."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.core import safety
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.types import Candidate, Goal, GroundingResult, Instruction, Pose

if TYPE_CHECKING:  # imported where used: the core tests here run without rclpy
    from ros_harness import RosGraph


def _result(kind: str, xyz: tuple[float, float, float], score: float = 0.9,
            stamp: float = 100.0, action: str = "pick") -> GroundingResult:
    return GroundingResult(
        status="ok", instruction=Instruction(text="t", action=action),
        targets=[Candidate(id=0, label="cup", score=score, bbox=(0, 0, 1, 1))],
        goals=[Goal(kind=kind, frame_id="base_link", pose=Pose(xyz))], stamp=stamp)


def test_goal_inside_every_limit_passes() -> None:
    assert safety.check(_result("grasp", (0.5, 0.0, 0.8)), SafetyConfig(), now=100.2).allowed


@pytest.mark.parametrize("result, now, config, why", [
    (_result("grasp", (2.0, 0.0, 0.8)), 100.0, SafetyConfig(), "outside the workspace"),
    (_result("place", (0.5, 0.0, -1.0)), 100.0, SafetyConfig(), "outside the workspace"),
    (_result("navigate", (30.0, 0.0, 0.0), action="navigate"), 100.0, SafetyConfig(),
     "max_nav_distance"),
    (_result("navigate", (2.0, 0.5, 0.0), action="navigate"), 100.0,
     SafetyConfig(keepout_zones=[(1.5, 0.0, 2.5, 1.0)]), "keep-out"),
    (_result("grasp", (0.5, 0.0, 0.8), score=0.1), 100.0, SafetyConfig(), "confidence"),
    (_result("grasp", (0.5, 0.0, 0.8)), 103.0, SafetyConfig(max_frame_age_s=1.0), "old"),
    (_result("grasp", (0.5, 0.0, 0.8)), 100.0,
     SafetyConfig(allowed_actions=frozenset({"navigate"})), "not allowed"),
    (_result("grasp", (0.5, math.nan, 0.8)), 100.0, SafetyConfig(), "not finite"),
])
def test_refusals_say_why_and_remove_every_goal(result, now, config, why) -> None:
    decision = safety.check(result, config, now=now)
    assert not decision.allowed
    assert why in decision.reason
    safety.apply(result, decision)
    assert result.status == "rejected" and result.goals == []
    assert why in result.message


def test_only_the_gated_method_touches_goal_publishers() -> None:
    """Static proof for the node: `goal_pubs` is used in Outputs.__init__ (creation) and in
    Outputs.send_goals, which calls safety.check before publishing - nowhere else in the
    ROS shell."""
    ros = Path(__file__).resolve().parents[1] / "vlm_ros" / "ros"
    users = set()
    for path in sorted(ros.glob("*.py")):
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, ast.FunctionDef) and any(
                    isinstance(n, ast.Attribute) and n.attr == "goal_pubs"
                    for n in ast.walk(func)):
                users.add(f"{path.name}:{func.name}")
    assert users == {"outputs.py:__init__", "outputs.py:send_goals"}
    tree = ast.parse((ros / "outputs.py").read_text())
    send = next(f for f in ast.walk(tree)
                if isinstance(f, ast.FunctionDef) and f.name == "send_goals")
    calls = [n for n in ast.walk(send) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)]
    first_check = min(n.lineno for n in calls if n.func.attr == "check")
    first_publish = min(n.lineno for n in calls if n.func.attr == "publish")
    assert first_check < first_publish


@pytest.fixture(scope="module")
def strict_graph():
    from ros_harness import RosGraph

    graph = RosGraph(["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
                      "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
                      "-p", "workspace_max:=[0.3, 1.0, 1.8]", "-p", "max_nav_distance:=2.0"])
    yield graph
    graph.close()


@pytest.mark.ros
def test_node_refuses_a_grasp_outside_the_workspace(strict_graph: RosGraph) -> None:
    strict_graph.show(*scenes.coffee())
    result = strict_graph.say("grab the red cup")
    assert result["status"] == "rejected"
    assert "outside the workspace" in result["message"]
    assert result["goals"] == [] and result["targets"]  # grounded, but no motion
    assert not strict_graph.wait_for("grasp_pose", 1, timeout_s=1.0)
    assert strict_graph.alive()


@pytest.mark.ros
def test_node_refuses_a_navigation_goal_too_far_away(strict_graph: RosGraph) -> None:
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    strict_graph.show(rgb, scenes.tabletop_depth(w, h, 2.0, 8.0), scenes.intrinsics_for(w, h))
    result = strict_graph.say("go to the dog")
    assert result["status"] == "rejected" and "max_nav_distance" in result["message"]
    assert not strict_graph.wait_for("goal_pose", 1, timeout_s=1.0)
