"""One path to a goal (issue #20): every entry point answers through the CommandSession and its
safety gate; what may be picked up is judged with the command; an ``ok`` says whether the robot
will act.

The grounding here is the CLI's own (``vlm-ros ground``: a Pipeline with the real SSD-COCO
detector under a CommandSession, on real photos with a depth image and a calibration), and the
CLI itself as a process for the commands of the issue; tests/test_node_one_path.py runs the same
commands through the node over DDS and compares the two.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from photos import load_photo, photo_path

from vlm_ros import scenes
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core import safety
from vlm_ros.core.geometry import StaticFrameResolver, UnknownExtrinsics, camera_extrinsics
from vlm_ros.core.goals import GoalConfig
from vlm_ros.core.pipeline import Pipeline, PipelineConfig
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Frame, GroundingResult

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "camera_color_optical_frame"
POSE = (0.0, 0.0, 1.0, 0.0, 0.0, 0.0)  # the README's --camera-pose 0 0 1.0 0 0 0


@pytest.fixture(scope="module")
def backend() -> SsdCocoBackend:
    return SsdCocoBackend()


def calibrated(backend: SsdCocoBackend) -> CommandSession:
    """What `vlm-ros ground --depth ... --camera-info ... --camera-pose 0 0 1 0 0 0` builds."""
    frames = StaticFrameResolver("base_link", CAMERA, camera_extrinsics(*POSE))
    return CommandSession(Pipeline(backend, PipelineConfig(goals=GoalConfig()), frames))


def uncalibrated(backend: SsdCocoBackend) -> CommandSession:
    return CommandSession(Pipeline(backend, PipelineConfig(), UnknownExtrinsics("base_link")))


def photo_frame(name: str, near_m: float = 2.0, far_m: float = 6.0) -> Frame:
    rgb = load_photo(name)
    h, w = rgb.shape[:2]
    return Frame(rgb=rgb, depth_m=scenes.tabletop_depth(w, h, near_m, far_m),
                 intrinsics=scenes.intrinsics_for(w, h), frame_id=CAMERA)


def coffee_frame() -> Frame:
    rgb, depth, intrinsics = scenes.coffee()
    return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics, frame_id=CAMERA)


def refused(result: GroundingResult, *words: str) -> None:
    assert result.status in ("rejected", "not_found"), (result.status, result.message)
    assert not result.goals and not result.will_act
    for word in words:
        assert word in result.message, (word, result.message)


# -------------------------------------------------------------------------- affordances
@pytest.mark.parametrize("text, photo, words", [
    ("pick up the person", "zidane", ["won't pick up the person", "never grasped"]),
    ("抓起那个人", "zidane", ["won't pick up the person"]),
    ("grab the horse", "horses", ["won't pick up the horse", "animal"]),
    ("pick up the giraffe", "giraffe", ["won't pick up the giraffe"]),
    ("grab the truck", "dog", ["won't pick up the truck", "vehicle"]),
    ("bring me the zebra", "giraffe", ["won't pick up the zebra"]),
    ("grab the dog", "dog", ["won't pick up the dog"]),
])
@pytest.mark.parametrize("session", [calibrated, uncalibrated])
def test_what_is_never_picked_up_is_refused_with_or_without_3d(backend, session, text, photo,
                                                               words) -> None:
    refused(session(backend).run(text, photo_frame(photo)), *words)


def test_something_that_isnt_the_cup_is_never_the_table(backend) -> None:
    # The coffee photo holds a cup and a dining table: excluding the cup leaves only furniture.
    result = calibrated(backend).run("grab something that isn't the cup", coffee_frame())
    refused(result, "you excluded it (the cup)", "the dining table I may not pick up")
    assert all(c.label != "dining table" or "not picked up" in " ".join(c.reasons)
               for c in result.candidates)


def test_a_label_the_table_does_not_know_may_be_refused_by_configuration(backend) -> None:
    session = calibrated(backend)
    session.safety = safety.SafetyConfig(never_grasp=frozenset({"cups"}))
    refused(session.run("grab the cup", coffee_frame()), "won't pick up the cup")
    session.safety = safety.SafetyConfig(may_grasp=frozenset({"dining table"}))
    result = session.run("look at the dining table", coffee_frame())
    assert result.status == "ok"


def test_too_wide_is_judged_once_3d_is_known_without_calibration(backend) -> None:
    # No camera pose (no goal possible), but depth and intrinsics measure the width.
    rgb, depth, intrinsics = scenes.coffee()
    frame = Frame(rgb=rgb, depth_m=depth * 4.0, intrinsics=intrinsics, frame_id=CAMERA)
    refused(uncalibrated(backend).run("grab the cup", frame), "too wide to grasp")


@pytest.mark.parametrize("text, words", [
    ("put the cup on the person", ["won't put anything on the person"]),
    ("put the cup in the dog", ["won't put anything in the dog"]),
    ("put the cup on the banana", ["won't put anything on the banana", "cannot hold"]),
    ("把杯子放到狗上", ["won't put anything"]),
])
def test_places_that_cannot_hold_an_object_are_refused(backend, text, words) -> None:
    refused(calibrated(backend).run(text, coffee_frame()), *words)


def test_navigation_keeps_its_standoff_from_a_person() -> None:
    from vlm_ros.core.types import Candidate, Goal, Instruction, ObjectQuery, Pose

    person = Candidate(0, "person", 0.9, (0, 0, 10, 10), point_base=(2.0, 0.0, 0.0))
    goal = Goal("navigate", "base_link", Pose((1.6, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)), 0.0)
    result = GroundingResult(status="ok", targets=[person], goals=[goal],
                             instruction=Instruction("go to the person", action="navigate",
                                                     target=ObjectQuery(noun="person")))
    decision = safety.check(result, safety.SafetyConfig(), now=0.0)
    assert not decision.allowed and "min_person_standoff_m" in decision.reason
    result.goals = [Goal("navigate", "base_link", Pose((1.1, 0.0, 0.0), (0, 0, 0, 1.0)), 0.0)]
    assert safety.check(result, safety.SafetyConfig(), now=0.0).allowed


# ------------------------------------------------------------------------- will_act
def test_an_ok_without_3d_says_the_robot_will_not_act(backend) -> None:
    result = uncalibrated(backend).run("go to the dog", photo_frame("dog"))
    assert result.status == "ok" and not result.goals
    assert result.will_act is False
    assert result.no_goal_reason.startswith("no 3D goal possible")
    as_json = result.to_dict()
    assert as_json["will_act"] is False and as_json["no_goal_reason"] == result.no_goal_reason


def test_an_ok_with_goals_says_the_robot_will_act(backend) -> None:
    result = calibrated(backend).run("grab the red cup", coffee_frame())
    assert result.status == "ok" and result.goals and result.will_act
    assert result.no_goal_reason == ""


def test_a_refusal_by_the_gate_says_why_in_no_goal_reason() -> None:
    result = GroundingResult(status="ok")
    safety.apply(result, safety.GateDecision(False, ["because"]))
    assert result.status == "rejected" and result.no_goal_reason.endswith("because")


# ------------------------------------------------------------- questions and non-commands
@pytest.mark.parametrize("text, status, says", [
    ("is there a cup?", "ok", "yes: I see a cup"),
    ("do you see a cup", "ok", "yes"),
    ("有杯子吗", "ok", "yes"),
    ("is there a dog?", "not_found", "no: "),
    ("how many cups are there?", "ok", "I see a cup"),
    ("有几个杯子", "ok", "I see a cup"),
    ("what colour is the cup?", "ok", "the cup is red"),
    ("杯子是什么颜色", "ok", "the cup is red"),
])
def test_questions_are_answered_without_a_goal(backend, text, status, says) -> None:
    result = calibrated(backend).run(text, coffee_frame())
    assert result.status == status, result.message
    assert says in result.message
    assert result.instruction.action == "ask"
    assert not result.goals and not result.will_act and result.no_goal_reason == ""


# ---------------------------------------------------------------------- the CLI as a process
def _write_inputs(folder: Path, name: str, near_m: float, far_m: float) -> list[str]:
    """The README's calibrated call: depth PNG (mm), CameraInfo YAML, --camera-pose."""
    rgb = load_photo(name)
    h, w = rgb.shape[:2]
    depth = scenes.tabletop_depth(w, h, near_m, far_m)
    k = scenes.intrinsics_for(w, h)
    cv2.imwrite(str(folder / "depth.png"), np.round(depth * 1000.0).astype(np.uint16))
    (folder / "camera.yaml").write_text(yaml.safe_dump({
        "image_width": w, "image_height": h,
        "camera_matrix": {"rows": 3, "cols": 3,
                          "data": [float(v) for v in (k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0,
                                                      0.0, 1.0)]}}))
    return ["--image", str(photo_path(name)), "--depth", str(folder / "depth.png"),
            "--camera-info", str(folder / "camera.yaml"), "--camera-pose", *map(str, POSE)]


@pytest.mark.slow
def test_the_cli_refuses_what_the_issue_saw_it_accept(tmp_path: Path) -> None:
    inputs = _write_inputs(tmp_path, "zidane", 2.0, 6.0)
    for text in ("pick up the person", "抓起那个人"):
        run = subprocess.run([sys.executable, "-m", "vlm_ros.cli", "ground", *inputs,
                              "--command", text, "--json"], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert result["status"] == "rejected" and result["goals"] == []
        assert result["will_act"] is False and "won't pick up the person" in result["message"]


# ------------------------------------------------------------------------- static: one path
def _calls(path: Path, attribute: str) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(ROOT / 'vlm_ros')}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == attribute)
                or (isinstance(node.func, ast.Name) and node.func.id == attribute))]


def _callers(attribute: str) -> set[str]:
    found = set()
    for path in sorted((ROOT / "vlm_ros").rglob("*.py")):
        found.update(c.split(":")[0] for c in _calls(path, attribute))
    return found


def test_goals_are_made_in_one_place_and_answered_only_through_the_session() -> None:
    # Goals are built by the pipeline alone; goal objects are constructed in core/goals.py,
    # and in the simulator only from goal messages it received (to execute them).
    assert _callers("make_goals") == {"core/pipeline.py"}
    assert _callers("Goal") == {"core/goals.py", "sim/ros_node.py"}
    # A grounding (with its goals) is asked for by the session and the node's worker only ...
    assert _callers("ground") <= {"core/session.py", "ros/worker.py"}
    assert _callers("result_for_box") == {"core/session.py"}
    # ... and the worker hands every grounding back to the session, which judges it: a
    # command's at once, a tracking re-grounding's when its future is collected.
    worker = ROOT / "vlm_ros" / "ros" / "worker.py"
    source = worker.read_text()
    functions = {f.name: ast.get_source_segment(source, f) for f in ast.walk(ast.parse(source))
                 if isinstance(f, ast.FunctionDef)}
    grounding = {name for name, body in functions.items() if "self._pipeline.ground(" in body}
    assert grounding == {"_ground", "_start_background"}
    assert "self.session.grounded(" in functions["_ground"]
    assert "self._background[request.id]" in functions["_start_background"]
    assert "self.session.grounded(" in functions["_collect_background"]
    # Only the CLI and the node build a session; everything else (console, demo, eval, bench,
    # soak, MCP) talks to the node.
    assert _callers("CommandSession") == {"cli.py", "ros/node.py"}
    assert _callers("Pipeline") == {"cli.py", "ros/node.py", "ros/worker.py"}  # live settings


def test_the_session_judges_every_grounding_before_it_answers() -> None:
    source = (ROOT / "vlm_ros" / "core" / "session.py").read_text()
    tree = ast.parse(source)
    grounded = next(f for f in ast.walk(tree)
                    if isinstance(f, ast.FunctionDef) and f.name == "grounded")
    lines = [n.lineno for n in ast.walk(grounded)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "_judged"]
    branch_lines = [n.lineno for n in ast.walk(grounded)
                    if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                    and n.func.attr in ("_confirmed", "_step_grounded", "_ask_confirmation",
                                        "_start_tracking")]
    assert lines and all(min(lines) < line for line in branch_lines)
    judged = next(f for f in ast.walk(tree)
                  if isinstance(f, ast.FunctionDef) and f.name == "_judged")
    assert "safety.judge" in ast.get_source_segment(source, judged)
