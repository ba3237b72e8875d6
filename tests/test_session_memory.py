"""Memory and active search in the command session (issue #21), on real photos with the real
detector: "where is / where did you see", "go back to", "the cup you saw", "find" beyond the view,
stop, and never a goal for an object the camera saw was moved away.

The camera pans: each view is a photo with a tabletop depth, taken with the camera turned to a
heading (CameraPoseHistory holds the camera's pose per stamp, as the node's camera_pose_topic
does).  Looking at heading -40 deg the camera sees the coffee cup; at 0 deg a dog, at 40 deg a
bird in the sky.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.geometry import CameraPoseHistory, camera_extrinsics
from vlm_ros.core.memory import MemoryConfig, ObjectMemory
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.recall import SearchConfig
from vlm_ros.core.session import Command, CommandSession, Ground, Reply, SessionConfig
from vlm_ros.core.types import Frame, GroundingResult

CAMERA = "camera_color_optical_frame"
HEIGHT = 1.0
PITCH = 0.5  # looking down at the table


class PanCamera:
    """A camera on a pan unit: ``look(yaw)`` turns it, ``frame()`` takes the photo it sees."""

    def __init__(self, poses: CameraPoseHistory, scenes_by_yaw: dict[int, str]) -> None:
        self.poses, self.scenes, self.yaw, self.stamp = poses, scenes_by_yaw, 0, 0.0

    def look(self, yaw_deg: float) -> None:
        self.yaw = int(round(yaw_deg))

    def frame(self) -> Frame:
        self.stamp += 1.0
        self.poses.add(self.stamp, camera_extrinsics(0.0, 0.0, HEIGHT, 0.0, PITCH,
                                                     math.radians(self.yaw)))
        name = self.scenes.get(self.yaw, "eagle")
        if name == "coffee":
            rgb, depth, intrinsics = scenes.coffee()
        else:
            rgb = load_photo(name)
            h, w = rgb.shape[:2]
            depth, intrinsics = scenes.tabletop_depth(w, h), scenes.intrinsics_for(w, h)
        return Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics, stamp=self.stamp,
                     frame_id=CAMERA)


@pytest.fixture(scope="module")
def backend() -> SsdCocoBackend:
    return SsdCocoBackend()


def make(backend, scenes_by_yaw: dict[int, str], **config) -> tuple[CommandSession, PanCamera]:
    poses = CameraPoseHistory("base_link", CAMERA)
    camera = PanCamera(poses, scenes_by_yaw)
    settings = SessionConfig(track_target_s=0.0, search=SearchConfig(
        yaws_deg=(0.0, 40.0, -40.0), distance_m=1.0, height_m=0.0), **config)
    session = CommandSession(Pipeline(backend, None, poses), settings,
                             stamp_clock=lambda: camera.stamp,
                             memory=ObjectMemory(MemoryConfig(miss_limit=1)))
    return session, camera


def drive(session: CommandSession, camera: PanCamera, text: str,
          turn: bool = True, hold: bool = False) -> list[GroundingResult]:
    """Every reply to ``text``; a search's views are turned to as the robot would, reporting
    each one done (``turn=False``: the robot never reports)."""
    replies: list[GroundingResult] = []
    effects = session.command(Command(text, received=0.0, hold=hold), 0.0)
    while effects:
        effect = effects.pop(0)
        if isinstance(effect, Ground):
            frame = camera.frame()
            grounded = session.pipeline.ground(effect.request.instruction, frame,
                                               last_target=effect.request.last_target)
            effects[:0] = session.grounded(effect.request, grounded, frame, 0.0)
        elif isinstance(effect, Reply) and effect.command is not None:
            replies.append(effect.result)
            views = [g for g in effect.result.goals if g.kind == "view"]
            if views and turn:
                x, y, _z = views[0].pose.position
                camera.look(math.degrees(math.atan2(y, x)))
                effects.extend(session.robot_status(True, "", 0.0))
    return replies


def test_find_searches_the_views_in_order_and_answers_where_it_found_it(backend) -> None:
    session, camera = make(backend, {0: "dog", 40: "eagle", -40: "coffee"})
    replies = drive(session, camera, "find the cup")
    statuses = [r.status for r in replies]
    # Heading 0 was the view the command was grounded on: the search looks at the other two.
    assert statuses == ["searching", "searching", "ok"], [r.message for r in replies]
    assert [g.kind for r in replies[:2] for g in r.goals] == ["view", "view"]
    assert all(r.will_act for r in replies[:2])
    found = replies[-1]
    assert found.targets[0].label == "cup" and "found in view 2 of 2" in found.message
    assert [g.kind for g in found.goals] == ["look"]
    assert not session.searching


def test_a_held_find_starts_no_search(backend) -> None:
    """An agent's (held) "find": each view would turn the camera unchecked, so no search -
    the cup out of view is not found, and nothing moves."""
    session, camera = make(backend, {0: "dog", 40: "eagle", -40: "coffee"})
    replies = drive(session, camera, "find the cup", hold=True)
    assert [r.status for r in replies] == ["not_found"] and not replies[0].goals
    assert "starts no search" in replies[0].message and not session.searching


def test_a_search_that_finds_nothing_says_what_it_searched(backend) -> None:
    session, camera = make(backend, {0: "dog", 40: "eagle", -40: "eagle"})
    replies = drive(session, camera, "find the banana")
    assert replies[-1].status == "not_found"
    assert "searched 2 views and did not find the banana" in replies[-1].message
    assert not replies[-1].goals and not session.searching


def test_where_is_answers_from_memory_and_offers_a_search_when_never_seen(backend) -> None:
    session, camera = make(backend, {0: "coffee", 40: "eagle"})
    assert drive(session, camera, "find the cup")[-1].status == "ok"  # seen at heading 0
    camera.look(40)
    answer = drive(session, camera, "where is the cup?")[-1]
    assert answer.status == "ok" and answer.goals == [] and not answer.will_act
    assert "not in view now; from memory: the red cup was seen" in answer.message
    for said in ("where did you see the cup?", "你在哪里看到杯子"):
        again = drive(session, camera, said)[-1]
        assert again.status == "ok" and "from memory" in again.message, again.message
    never = drive(session, camera, "where is the banana?")[-1]
    assert never.status == "not_found" and not never.goals
    assert "I haven't seen a banana - say 'find the banana' to look around for it" in \
        never.message


@pytest.mark.parametrize("text", ["go back to the cup", "grab the cup you saw", "回到杯子那里",
                                  "拿你刚才看到的杯子"])
def test_a_goal_from_memory_says_so_and_passes_the_gate(backend, text) -> None:
    session, camera = make(backend, {0: "coffee", 40: "eagle"})
    seen = drive(session, camera, "find the cup")[-1]
    cup = seen.targets[0].point_base
    camera.look(40)
    result = drive(session, camera, text)[-1]
    assert result.status == "ok" and result.goals and result.will_act, result.message
    assert "from memory (not in view now): the red cup was seen" in result.message
    remembered = result.targets[0].point_base
    assert math.dist(remembered, cup) < 0.01  # the one sighting


def test_an_old_sighting_is_no_goal(backend) -> None:
    session, camera = make(backend, {0: "coffee", 40: "eagle"}, memory_max_age_s=5.0)
    drive(session, camera, "find the cup")
    camera.look(40)
    camera.stamp += 10.0
    result = drive(session, camera, "go back to the cup")[-1]
    assert result.status == "rejected" and not result.goals
    assert "longer ago than memory_max_age_s (5 s)" in result.message


def test_an_object_the_camera_sees_is_gone_is_never_a_goal_from_memory(backend) -> None:
    # Seen at heading 0; then the camera looks at the same place and the cup is not there.
    session, camera = make(backend, {0: "coffee"})
    drive(session, camera, "find the cup")
    camera.scenes[0] = "dog"  # someone took the cup away
    first = drive(session, camera, "grab the cup you saw")[-1]
    assert not first.goals
    assert first.status in ("rejected", "not_found")
    again = drive(session, camera, "grab the cup you saw")[-1]
    assert again.status == "not_found" and not again.goals
    assert "I haven't seen a cup" in again.message
    assert session.memory.find(again.instruction.target, camera.stamp) == []


def test_two_remembered_cups_are_a_question_and_the_answer_chooses(backend) -> None:
    session, camera = make(backend, {0: "two_cups", 40: "eagle"})
    camera.scenes[0] = "coffee"
    drive(session, camera, "find the cup")
    # A second red cup, seen from another heading, far from the first.
    camera.scenes[-40] = "coffee"
    camera.look(-40)
    drive(session, camera, "look at the cup")
    camera.look(40)
    asked = drive(session, camera, "go back to the cup")[-1]
    assert asked.status == "ambiguous" and asked.choices == ["the one on the left",
                                                             "the one on the right"]
    chosen = drive(session, camera, "the one on the right")[-1]
    assert chosen.status == "ok" and chosen.goals, chosen.message
    assert chosen.targets[0].point_base[1] < 0  # the right one: -y in base_link


def test_stop_ends_a_search_and_nothing_of_it_moves(backend) -> None:
    session, camera = make(backend, {0: "dog", 40: "eagle", -40: "coffee"})
    replies = drive(session, camera, "find the cup", turn=False)
    assert [r.status for r in replies] == ["searching"] and session.searching
    stopped = drive(session, camera, "stop")
    assert stopped[-1].status == "ok" and not session.searching
    assert session.robot_status(True, "", 0.0) == []  # a late report starts nothing


def test_a_search_without_robot_status_ends_with_an_error(backend) -> None:
    session, camera = make(backend, {0: "dog"})
    drive(session, camera, "find the cup", turn=False)
    effects = session.tick(1000.0)
    assert len(effects) == 1 and effects[0].result.status == "error"
    assert "did not report view 1 of 2 done" in effects[0].result.message
    assert not session.searching


def test_unjudged_words_about_a_remembered_object_are_named(backend) -> None:
    session, camera = make(backend, {0: "coffee", 40: "eagle"})
    drive(session, camera, "find the cup")
    camera.look(40)
    result = drive(session, camera, "go back to the biggest cup")[-1]
    assert result.status == "rejected" and "can't judge 'size'" in result.message


def test_no_camera_pose_means_no_search(backend) -> None:
    session = CommandSession(Pipeline(backend, None, None), SessionConfig(track_target_s=0.0))
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    frame = Frame(rgb=rgb, depth_m=scenes.tabletop_depth(w, h),
                  intrinsics=scenes.intrinsics_for(w, h), frame_id=CAMERA)
    result = session.run("find the cup", frame)
    assert result.status == "not_found" and not session.searching
    assert np.isfinite(frame.stamp)


def test_a_command_with_its_own_image_never_searches(backend) -> None:
    # `vlm-ros ground` and ~/ground with an image: a still image, no camera to turn.
    session, camera = make(backend, {0: "dog"})
    result = session.run("find the cup", camera.frame())
    assert result.status == "not_found" and not result.goals and not session.searching
