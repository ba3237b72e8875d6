"""The real node over real DDS: photos + depth + CameraInfo in, results and goals out."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from photos import load_photo
from ros_harness import RosGraph
from std_msgs.msg import String

from vlm_ros import scenes
from vlm_ros.ros.convert import array_to_image

pytestmark = pytest.mark.ros  # every test here runs the node over DDS

CAMERA_POSE = "[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]"  # 1 m up, looking along base +x


@pytest.fixture(scope="module")
def graph():
    # The test camera publishes reliable, as most RGB-D drivers do; best-effort readers lose
    # most large images over Fast DDS UDP, which would make these tests flaky, not stricter.
    graph = RosGraph(["-p", f"camera_pose_in_base:={CAMERA_POSE}", "-p", "follow_rate_hz:=5.0",
                      "-p", "image_reliability:=reliable"])
    yield graph
    graph.close()


def _pose(msg) -> tuple[float, ...]:
    p, q = msg.pose.position, msg.pose.orientation
    return (p.x, p.y, p.z, q.x, q.y, q.z, q.w)


def _ground_plane(width: int, height: int, near: float, far: float) -> np.ndarray:
    return scenes.tabletop_depth(width, height, near_m=near, far_m=far)


def test_red_cup_grasp_pose_from_real_photo(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    grasps = graph.listener.count("grasp_pose")
    result = graph.say("grab the red cup")
    assert result["status"] == "ok", result["message"]
    assert result["instruction"]["action"] == "pick"
    assert result["targets"][0]["label"] == "cup"
    x1, y1, x2, y2 = result["targets"][0]["bbox"]
    assert 150 < (x1 + x2) / 2 < 450 and (y1 + y2) / 2 < 250  # the cup, not the saucer/table
    assert graph.wait_for("grasp_pose", grasps + 1)
    grasp = graph.listener.received["grasp_pose"][-1]
    assert grasp.header.frame_id == "base_link"
    assert all(math.isfinite(v) for v in _pose(grasp))
    assert graph.wait_for("pregrasp_pose", 1)
    pregrasp = graph.listener.received["pregrasp_pose"][-1]
    assert pregrasp.pose.position.z == pytest.approx(grasp.pose.position.z + 0.10, abs=1e-6)
    point = result["targets"][0]["point_base"]
    assert grasp.pose.position.x == pytest.approx(point[0], abs=1e-3)
    assert graph.wait_for("markers", 1) and graph.wait_for("debug_image", 1)


def test_blue_cup_is_not_found_and_publishes_no_goal(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    before = {key: graph.listener.count(key) for key in ("grasp_pose", "goal_pose")}
    result = graph.say("grab the blue cup")
    assert result["status"] == "not_found"
    assert result["targets"] == [] and result["goals"] == []
    assert not graph.wait_for("grasp_pose", before["grasp_pose"] + 1, timeout_s=1.0)


def test_go_to_the_dog_publishes_a_finite_nav2_goal(graph: RosGraph) -> None:
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    graph.show(rgb, _ground_plane(w, h, near=2.0, far=8.0), scenes.intrinsics_for(w, h))
    goals = graph.listener.count("goal_pose")
    result = graph.say("go to the dog")
    assert result["status"] == "ok", result["message"]
    assert result["targets"][0]["label"] == "dog"
    assert graph.wait_for("goal_pose", goals + 1)
    goal = graph.listener.received["goal_pose"][-1]
    assert goal.header.frame_id == "base_link"
    values = _pose(goal)
    assert all(math.isfinite(v) for v in values)
    target = result["targets"][0]["point_base"]
    # The stand-off goal lies on the robot->dog line, 0.8 m short of the dog, facing it.
    distance_to_dog = math.hypot(target[0] - values[0], target[1] - values[1])
    assert distance_to_dog == pytest.approx(0.8, abs=1e-3)
    yaw = 2.0 * math.atan2(values[5], values[6])
    assert yaw == pytest.approx(math.atan2(target[1] - values[1], target[0] - values[0]),
                                abs=1e-3)


def test_ambiguity_then_followup_answer(graph: RosGraph) -> None:
    rgb, depth, intrinsics = scenes.two_cups()
    graph.show(rgb, depth, intrinsics)
    first = graph.say("grab the cup")
    assert first["status"] == "ambiguous"
    assert first["clarification"]
    assert len(first["candidates"]) >= 2 and first["goals"] == []
    answer = graph.say("the left one")
    assert answer["status"] == "ok", answer["message"]
    x1, _, x2, _ = answer["targets"][0]["bbox"]
    assert (x1 + x2) / 2 < rgb.shape[1] / 2
    assert answer["goals"]


def test_chinese_command(graph: RosGraph) -> None:
    rgb, depth, intrinsics = scenes.two_cups()
    graph.show(rgb, depth, intrinsics)
    result = graph.say("抓取蓝色杯子")
    assert result["status"] == "ok", result["message"]
    assert result["instruction"]["language"] == "zh"
    x1, _, x2, _ = result["targets"][0]["bbox"]
    assert (x1 + x2) / 2 > rgb.shape[1] / 2  # the recoloured (blue) cup is on the right


def test_not_the_red_one_grasps_the_other_cup(graph: RosGraph) -> None:
    rgb, depth, intrinsics = scenes.two_cups()
    graph.show(rgb, depth, intrinsics)
    grasps = graph.listener.count("grasp_pose")
    result = graph.say("grab the cup, not the red one")
    assert result["status"] == "ok", result["message"]
    x1, _, x2, _ = result["targets"][0]["bbox"]
    assert (x1 + x2) / 2 > rgb.shape[1] / 2  # the blue copy, never the red cup on the left
    assert graph.wait_for("grasp_pose", grasps + 1)
    grasp = graph.listener.received["grasp_pose"][-1]
    assert grasp.pose.position.x == pytest.approx(result["targets"][0]["point_base"][0], abs=1e-3)
    assert grasp.pose.position.y == pytest.approx(result["targets"][0]["point_base"][1], abs=1e-3)


def test_a_negative_command_publishes_nothing(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    before = {key: graph.listener.count(key) for key in ("grasp_pose", "goal_pose")}
    result = graph.say("don't grab the red cup")
    assert result["status"] == "rejected" and result["goals"] == []
    assert "not to pick" in result["message"]
    assert not graph.wait_for("grasp_pose", before["grasp_pose"] + 1, timeout_s=1.0)


def test_a_two_step_command_waits_for_the_robot(graph: RosGraph) -> None:
    """Step 2 is grounded only after the robot reports step 1 done on robot_status."""
    graph.show(*scenes.coffee())
    grasps, places = graph.listener.count("grasp_pose"), graph.listener.count("place_pose")
    text = "grab the red cup and put it on the table"
    first = graph.say(text)
    assert first["status"] == "ok" and first["step"] == 1 and len(first["steps"]) == 2
    assert graph.wait_for("grasp_pose", grasps + 1)
    assert not graph.wait_for("place_pose", places + 1, timeout_s=1.0)  # the robot is at it
    graph.robot_done(True)
    assert graph.wait_for("place_pose", places + 1, timeout_s=10.0)
    graph.robot_done(True)
    assert graph.wait_for_result(lambda r: r["message"] == "done: all 2 steps finished")


def test_without_depth_reports_2d_result_and_no_goal(graph: RosGraph) -> None:
    rgb, _, _ = scenes.coffee()
    graph.show(rgb)
    grasps = graph.listener.count("grasp_pose")
    result = graph.say("grab the red cup")
    assert result["status"] == "ok"
    assert result["targets"][0]["label"] == "cup"
    assert result["goals"] == []
    assert "no 3D goal" in result["message"]
    assert not graph.wait_for("grasp_pose", grasps + 1, timeout_s=1.0)


@pytest.mark.parametrize("text", ["", "   ", "x" * 1_000_000, "hello there",
                                  "\x01\x02\x7f binary \ufffd\ufffd"])  # NUL cannot travel in a DDS string
def test_bad_commands_are_rejected_and_node_keeps_serving(graph: RosGraph, text: str) -> None:
    graph.show(*scenes.coffee())
    result = graph.say(text)
    assert result["status"] == "rejected"
    assert result["message"]
    assert result["goals"] == []
    assert graph.alive()
    assert graph.say("grab the red cup")["status"] == "ok"


def test_bad_images_yield_error_and_node_keeps_serving(graph: RosGraph) -> None:
    rgb, depth, intrinsics = scenes.coffee()
    graph.show(rgb, depth, intrinsics)
    bad_encoding = array_to_image(rgb, "rgb8")
    bad_encoding.encoding = "yuv422_yuy2_weird"
    bad_step = array_to_image(rgb, "rgb8")
    bad_step.step = 7
    for broken in (bad_encoding, bad_step):
        graph.camera.set_image_msg(broken)
        time.sleep(0.3)
        result = graph.say("grab the red cup")
        assert result["status"] == "error"
        assert "camera" in result["message"]
        assert result["goals"] == []
        assert graph.alive()
    graph.show(rgb, depth, intrinsics)
    assert graph.say("grab the red cup")["status"] == "ok"


def test_stop_publishes_a_stop_signal(graph: RosGraph) -> None:
    stops = graph.listener.count("stop")
    result = graph.say("stop")
    assert result["status"] == "ok"
    assert result["instruction"]["action"] == "stop"
    assert result["goals"] == []
    assert graph.wait_for("stop", stops + 1)


def test_follow_reissues_goals_until_stop(graph: RosGraph) -> None:
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    graph.show(rgb, _ground_plane(w, h, near=2.0, far=8.0), scenes.intrinsics_for(w, h))
    goals = graph.listener.count("goal_pose")
    result = graph.say("follow the dog")
    assert result["status"] == "ok", result["message"]
    assert result["instruction"]["action"] == "follow"
    # Re-grounded on new frames at follow_rate_hz (5 Hz): several goals within two seconds.
    assert graph.wait_for("goal_pose", goals + 4, timeout_s=4.0)
    assert graph.say("stop")["status"] == "ok"
    time.sleep(0.5)  # a follow grounding in flight when the stop arrived is suppressed
    after_stop = graph.listener.count("goal_pose")
    time.sleep(1.5)
    assert graph.listener.count("goal_pose") == after_stop


def test_ask_on_a_detector_backend_answers_with_an_error_not_a_crash(graph: RosGraph) -> None:
    graph.show(*scenes.coffee())
    answers = graph.listener.count("answer")
    graph.client.create_publisher(String, "/vlm_ros/ask", 10).publish(
        String(data="what colour is the cup?"))
    assert graph.wait_for("answer", answers + 1, timeout_s=10.0)
    answer = json.loads(graph.listener.received["answer"][-1].data)
    assert answer["status"] == "error" and "cannot answer" in answer["message"]
    assert graph.alive()
    assert graph.say("grab the red cup")["status"] == "ok"
