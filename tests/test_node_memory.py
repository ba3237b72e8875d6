"""The object memory and active search through the node over DDS (issue #21).

The camera pans: the test publishes its pose on camera_pose_topic (no TF here) at 20 Hz while
the PhotoCamera shows what it sees.  Heading 0: the coffee cup; heading 70: a bird in the sky.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from geometry_msgs.msg import PoseStamped
from photos import load_photo
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import RosGraph, call
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vlm_ros import scenes
from vlm_ros.core.geometry import quat_from_rpy

pytestmark = [pytest.mark.ros, pytest.mark.slow]

POSE_TOPIC = "/test/camera_pose"


class PanUnit:
    """Publishes the camera's body pose (1 m up, pitched down 0.5 rad) at 20 Hz."""

    def __init__(self, graph: RosGraph) -> None:
        self.yaw = 0.0
        self.pub = graph.client.create_publisher(PoseStamped, POSE_TOPIC, 10)
        graph.client.create_timer(0.05, self.publish)
        self.clock = graph.client.get_clock()

    def publish(self) -> None:
        msg = PoseStamped()
        msg.header.stamp = self.clock.now().to_msg()
        msg.header.frame_id = "base_link"
        msg.pose.position.z = 1.0
        qx, qy, qz, qw = quat_from_rpy(0.0, 0.5, math.radians(self.yaw))
        msg.pose.orientation.x, msg.pose.orientation.y = qx, qy
        msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
        self.pub.publish(msg)


@pytest.fixture(scope="module")
def memory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memory") / "memory.json"


@pytest.fixture(scope="module")
def rig(memory_file: Path):
    graph = RosGraph(["-p", f"camera_pose_topic:={POSE_TOPIC}", "-p", "image_reliability:=reliable",
                      "-p", "follow_rate_hz:=0.0", "-p", "track_target_s:=0.0",
                      "-p", "publish_debug_image:=false", "-p", "max_frame_age_s:=10.0",
                      "-p", f"memory_file:={memory_file}",
                      "-p", "search_yaws_deg:=[0.0, 70.0]", "-p", "search_height_m:=0.0"])
    pan = PanUnit(graph)
    memories: list[dict] = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    graph.listener.create_subscription(String, "/vlm_ros/memory",
                                       lambda m: memories.append(json.loads(m.data)), latched)
    try:
        yield graph, pan, memories
    finally:
        graph.close()


def look(graph: RosGraph, pan: PanUnit, yaw: float, scene: str) -> None:
    pan.yaw = yaw
    if scene == "coffee":
        graph.show(*scenes.coffee())
    else:
        rgb = load_photo(scene)
        h, w = rgb.shape[:2]
        graph.show(rgb, scenes.tabletop_depth(w, h), scenes.intrinsics_for(w, h))
    time.sleep(0.3)  # poses of the new heading before the next command's frame


def test_seen_objects_are_remembered_and_published(rig) -> None:
    graph, pan, memories = rig
    look(graph, pan, 0.0, "coffee")
    found = graph.say("find the cup")
    assert found["status"] == "ok" and found["targets"][0]["label"] == "cup", found["message"]
    assert graph.wait_for_result(lambda r: True, 0.1)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not any(
            o["label"] == "cup" for m in memories for o in m["objects"]):
        time.sleep(0.05)
    latest = memories[-1]
    assert latest["frame_id"] == "base_link"
    cup = next(o for o in latest["objects"] if o["label"] == "cup")
    assert cup["color"] == "red" and cup["times_seen"] >= 1 and "age_s" in cup


def test_looking_away_it_answers_and_acts_from_memory(rig) -> None:
    graph, pan, _memories = rig
    look(graph, pan, 70.0, "eagle")
    where = graph.say("where did you see the red cup?")
    assert where["status"] == "ok" and where["goals"] == [] and not where["will_act"]
    assert "not in view now; from memory: the red cup was seen" in where["message"]
    grasps = graph.listener.count("grasp_pose")
    grab = graph.say("grab the red cup you saw")
    assert grab["status"] == "ok", grab["message"]
    assert "from memory (not in view now)" in grab["message"] and grab["will_act"]
    assert graph.wait_for("grasp_pose", grasps + 1)


def test_find_beyond_the_view_searches_through_look_at_and_robot_status(rig) -> None:
    graph, pan, _memories = rig
    views: list[PoseStamped] = []
    graph.listener.create_subscription(PoseStamped, "/vlm_ros/look_at", views.append, 10)
    look(graph, pan, 70.0, "eagle")
    first = graph.say("find the bicycle")
    assert first["status"] == "searching" and first["will_act"]
    assert [g["kind"] for g in first["goals"]] == ["view"]
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not views:
        time.sleep(0.05)
    assert views, "no view goal on ~/look_at"
    x, y = views[0].pose.position.x, views[0].pose.position.y
    assert math.degrees(math.atan2(y, x)) == pytest.approx(0.0, abs=1.0)
    look(graph, pan, 0.0, "dog")  # the pan unit turned there: a dog and its bicycle
    graph.robot_done(True)
    assert graph.wait_for_result(lambda r: r["status"] == "ok" and r["message"].startswith(
        "found in view 1 of 1"), 30.0), [r["message"] for r in graph.client.results[-3:]]


def test_save_and_clear_and_the_cli_shows_it(rig, memory_file: Path) -> None:
    graph, _pan, memories = rig
    saved = call(graph.client, Trigger, "/vlm_ros/save_memory", Trigger.Request())
    assert saved.success and "to " + str(memory_file) in saved.message
    on_disk = json.loads(memory_file.read_text())
    assert on_disk["format"] == "vlm_ros.memory/1" and on_disk["frame_id"] == "base_link"
    assert {o["label"] for o in on_disk["objects"]} >= {"cup"}
    shown = subprocess.run([sys.executable, "-m", "vlm_ros.cli", "memory", "--node", "vlm_ros",
                            "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert any(o["label"] == "cup" for o in json.loads(shown.stdout)["objects"])
    cleared = call(graph.client, Trigger, "/vlm_ros/clear_memory", Trigger.Request())
    assert cleared.success and cleared.message.startswith("forgot")
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and memories[-1]["objects"]:
        time.sleep(0.05)
    assert memories[-1]["objects"] == []
    never = graph.say("where did you see the red cup?")
    assert never["status"] == "not_found" and "haven't seen a red cup" in never["message"]
    assert graph.alive()
