"""The node's typed interfaces over DDS, against the built package (scripts/build_ros_package.sh):
the ~/instruct action (feedback, a clarification answered, a confirmation, cancel = stop, a goal
superseded, several steps), the ~/ground service and the typed ~/grounding topic.

Skipped where the interfaces are not built; scripts/test.sh builds them and makes a skip an
error (tests/conftest.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from ros_harness import RosGraph

from vlm_ros import scenes
from vlm_ros.ros.convert import array_to_image

pytestmark = pytest.mark.ros

actions = pytest.importorskip("vlm_ros.action", reason="interfaces not built: run "
                              "scripts/build_ros_package.sh and eval its --print-env")
services = pytest.importorskip("vlm_ros.srv")
interfaces = pytest.importorskip("vlm_ros.msg")

import rclpy  # noqa: E402
from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

Instruct = actions.Instruct
CAMERA = ["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
          "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
          "-p", "publish_debug_image:=false", "-p", "track_target_s:=0.0"]


def _wait(future: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not future.done():
        assert time.monotonic() < deadline, "no answer from the node in time"
        time.sleep(0.02)
    return future.result()


@dataclass
class GoalRun:
    handle: Any
    feedback: list[Any] = field(default_factory=list)

    def stages(self) -> list[str]:
        return [f.stage for f in list(self.feedback)]

    def wait_for_stage(self, stage: str, timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for f in list(self.feedback):
                if f.stage == stage:
                    return f
            time.sleep(0.02)
        raise AssertionError(f"no {stage!r} feedback; got {self.stages()}")

    def result(self, timeout_s: float = 30.0) -> tuple[int, Any]:
        response = _wait(self.handle.get_result_async(), timeout_s)
        return response.status, response.result


class Executive:
    """What a mission executive holds: an action client, a service client, a typed reader."""

    def __init__(self, graph: RosGraph) -> None:
        self.node = rclpy.create_node("vlm_ros_test_executive")
        self.instruct = ActionClient(self.node, Instruct, "/vlm_ros/instruct")
        self.ground = self.node.create_client(services.Ground, "/vlm_ros/ground")
        self.typed: list[Any] = []
        self.node.create_subscription(
            interfaces.GroundingResult, "/vlm_ros/grounding", self.typed.append,
            QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
        graph.executor.add_node(self.node)
        assert self.instruct.wait_for_server(timeout_sec=30.0), "no ~/instruct server"
        assert self.ground.wait_for_service(timeout_sec=30.0), "no ~/ground service"

    def send(self, text: str) -> GoalRun:
        run = GoalRun(handle=None)
        future = self.instruct.send_goal_async(
            Instruct.Goal(command=text), feedback_callback=lambda m: run.feedback.append(
                m.feedback))
        run.handle = _wait(future)
        assert run.handle.accepted
        return run


def _start(extra: list[str]) -> tuple[RosGraph, Executive]:
    graph = RosGraph([*CAMERA, *extra])
    try:
        return graph, Executive(graph)
    except BaseException:
        graph.close()
        raise


@pytest.fixture(scope="module")
def node():
    graph, executive = _start([])
    yield graph, executive
    graph.close()


def test_a_goal_reports_its_stages_and_succeeds_with_the_goals(node) -> None:
    graph, executive = node
    graph.show(*scenes.coffee())
    grasps = graph.listener.count("grasp_pose")
    run = executive.send("grab the red cup")
    status, result = run.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message
    assert result.outcome == Instruct.Result.OUTCOME_DONE
    assert result.result.status == "ok" and result.result.action == "pick"
    assert result.result.targets[0].label == "cup"
    assert "grasp" in list(result.result.goal_kinds)
    stages = run.stages()
    assert stages[0] == Instruct.Feedback.STAGE_QUEUED
    assert Instruct.Feedback.STAGE_WAITING_FOR_FRAME in stages
    assert Instruct.Feedback.STAGE_GROUNDING in stages
    assert graph.wait_for("grasp_pose", grasps + 1)


def test_a_clarification_is_feedback_and_its_answer_ends_the_goal(node) -> None:
    graph, executive = node
    rgb, depth, intrinsics = scenes.two_cups()
    graph.show(rgb, depth, intrinsics)
    run = executive.send("grab the cup")
    asked = run.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CLARIFICATION)
    assert asked.question.startswith("Which cup")
    assert list(asked.choices) == ["the one on the left", "the one on the right"]
    assert not run.handle.get_result_async().done()  # the goal waits for the answer
    graph.say(asked.choices[0])  # answered the way a person answers, on ~/command
    status, result = run.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message
    x1, _, x2, _ = result.result.targets[0].bbox
    assert (x1 + x2) / 2 < rgb.shape[1] / 2


def test_cancel_is_a_stop(node) -> None:
    graph, executive = node
    graph.show(*scenes.two_cups())
    stops = graph.listener.count("stop")
    run = executive.send("grab the cup")
    run.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CLARIFICATION)
    _wait(run.handle.cancel_goal_async())
    status, result = run.result()
    assert status == GoalStatus.STATUS_CANCELED
    assert result.outcome == Instruct.Result.OUTCOME_CANCELLED
    assert result.result.goals == []
    assert graph.wait_for("stop", stops + 1)  # signalled to the robot
    answer = graph.say("the left one")  # the stop cleared the question
    assert answer["status"] == "rejected" and answer["goals"] == []


def test_a_new_goal_supersedes_the_waiting_one(node) -> None:
    graph, executive = node
    graph.show(*scenes.two_cups())
    first = executive.send("grab the cup")
    first.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CLARIFICATION)
    second = executive.send("grab the blue cup")
    status, result = first.result()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.outcome == Instruct.Result.OUTCOME_CANCELLED
    assert "superseded" in result.result.message
    status, result = second.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message


def test_another_command_ends_the_goal_instead_of_becoming_its_result(node) -> None:
    """A command of its own on ~/command while the goal waits (not an answer) is not this goal's
    outcome: the goal ends cancelled, naming it, and carries none of its goals."""
    graph, executive = node
    graph.show(*scenes.two_cups())
    run = executive.send("grab the cup")
    run.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CLARIFICATION)
    graph.say("grab the cup")  # the operator starts over: a new command, a new question
    status, result = run.result()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.outcome == Instruct.Result.OUTCOME_CANCELLED
    assert "superseded by another command: 'grab the cup'" in result.result.message
    assert result.result.goals == []
    graph.say("stop")  # leave no question open for the next test


def test_a_goal_not_found_is_refused(node) -> None:
    graph, executive = node
    graph.show(*scenes.coffee())
    run = executive.send("grab the blue cup")
    status, result = run.result()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.outcome == Instruct.Result.OUTCOME_REFUSED
    assert result.result.status == "not_found" and result.result.goals == []


def test_two_steps_report_each_step(node) -> None:
    graph, executive = node
    graph.show(*scenes.coffee())
    run = executive.send("grab the red cup and put it on the table")
    step = run.wait_for_stage(Instruct.Feedback.STAGE_STEP_DONE)
    assert (step.step, step.step_count) == (1, 2)
    assert not run.handle.get_result_async().done()  # waits for the robot's report
    graph.robot_done(True)
    status, result = run.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message
    assert (result.result.step, result.result.step_count) == (2, 2)
    assert "place" in list(result.result.goal_kinds)
    graph.robot_done(True)  # the robot finishes the last step (ends the node's plan)
    assert graph.wait_for_result(lambda r: r["message"] == "done: all 2 steps finished")


def test_all_the_cups_is_one_step_per_cup_with_the_robots_reports(node) -> None:
    """Issue #22: "pick up all the cups" over ~/instruct: a step per cup, each waiting for the
    robot's report, the action succeeding once the last cup's grasp is out."""
    graph, executive = node
    graph.show(*scenes.two_cups())
    try:
        run = executive.send("pick up all the cups")
        step = run.wait_for_stage(Instruct.Feedback.STAGE_STEP_DONE)
        assert (step.step, step.step_count) == (1, 2)
        assert not run.handle.get_result_async().done()
        graph.robot_done(True)
        status, result = run.result()
        assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message
        assert (result.result.step, result.result.step_count) == (2, 2)
        assert list(result.result.goal_kinds)[:1] == ["grasp"]
        graph.robot_done(True)
        assert graph.wait_for_result(lambda r: r["message"] == "done: all 2 steps finished")
    finally:
        graph.show(*scenes.coffee())


def test_the_ground_service_and_the_typed_topic(node) -> None:
    graph, executive = node
    graph.show(*scenes.coffee())
    typed = len(executive.typed)
    response = _wait(executive.ground.call_async(
        services.Ground.Request(command="grab the red cup", use_latest_frame=True)))
    assert response.result.status == "ok", response.result.message
    assert response.result.targets[0].label == "cup"
    assert response.result.goals and response.result.goal_kinds[0] in ("grasp", "pregrasp")
    rgb, _, _ = scenes.coffee()
    response = _wait(executive.ground.call_async(services.Ground.Request(
        command="grab the red cup", use_latest_frame=False,
        image=array_to_image(rgb, "rgb8", Header(frame_id="camera")))))
    assert response.result.status == "ok", response.result.message
    assert response.result.goals == []  # an image without depth: 2-D only, nothing to grasp
    bad = services.Ground.Request(command="grab the red cup", use_latest_frame=False)
    bad.image.encoding, bad.image.width, bad.image.height = "rgb8", 4, 4  # no data
    response = _wait(executive.ground.call_async(bad))
    assert response.result.status == "error" and "bad camera input" in response.result.message
    deadline = time.monotonic() + 5.0
    while len(executive.typed) < typed + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.status for m in executive.typed[typed:typed + 3]] == ["ok", "ok", "error"]


def test_deactivating_ends_a_waiting_goal_and_activating_serves_again(node) -> None:
    """Lifecycle: deactivate ends the running goal (its client hears why); while inactive a new
    goal is refused; activated again, goals are served."""
    from lifecycle_msgs.msg import Transition
    from test_node_lifecycle import _change

    graph, executive = node
    graph.show(*scenes.two_cups())
    run = executive.send("grab the cup")
    run.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CLARIFICATION)
    assert _change(graph, Transition.TRANSITION_DEACTIVATE)
    status, result = run.result(timeout_s=10.0)
    assert status == GoalStatus.STATUS_ABORTED
    assert result.outcome == Instruct.Result.OUTCOME_CANCELLED
    assert "deactivated" in result.result.message
    refused = _wait(executive.instruct.send_goal_async(Instruct.Goal(command="grab the cup")))
    assert not refused.accepted
    assert _change(graph, Transition.TRANSITION_ACTIVATE)
    graph.wait_until_linked()
    graph.show(*scenes.coffee())
    status, result = executive.send("grab the red cup").result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message
