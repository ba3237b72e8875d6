"""What may be picked up (issue #12): the category table, the measured width, and the safety gate
refusing pick / place goals on real photos grounded by the real pipeline (SSD-COCO weights).

The photos' depth is synthetic (vlm_ros/scenes.py): a plane receding from the bottom row to the
top row, with intrinsics for the photo's size, so every located object gets a 3D point and a
width.  The camera is 1 m up looking along base +x, as in the node tests, so the objects lie in
the manipulation workspace and the only refusals are the ones under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core import safety
from vlm_ros.core.geometry import StaticFrameResolver, camera_extrinsics
from vlm_ros.core.graspable import box_width_m, category_of
from vlm_ros.core.instruction import parse_instruction
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.session import CommandSession, SessionConfig
from vlm_ros.core.types import (
    CameraIntrinsics,
    Candidate,
    Frame,
    Goal,
    GroundingResult,
    Instruction,
    ObjectQuery,
    Pose,
)

BASE = "base_link"
CAMERA = "camera_color_optical_frame"
STAMP = 50.0


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    resolver = StaticFrameResolver(BASE, CAMERA, camera_extrinsics(0.0, 0.0, 1.0, 0.0, 0.0, 0.0))
    return Pipeline(SsdCocoBackend(), None, resolver)


def person_scene() -> tuple[np.ndarray, np.ndarray, CameraIntrinsics]:
    """person.jpg (a woman, her dog, a horse) about a metre away, with a 60 degree lens."""
    rgb = load_photo("person")
    h, w = rgb.shape[:2]
    return rgb, scenes.tabletop_depth(w, h, near_m=0.9, far_m=1.2), scenes.intrinsics_for(w, h)


def dog_scene() -> tuple[np.ndarray, np.ndarray, CameraIntrinsics]:
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    return rgb, scenes.tabletop_depth(w, h, near_m=0.9, far_m=1.2), scenes.intrinsics_for(w, h)


def frame_of(scene: tuple[np.ndarray, np.ndarray | None, CameraIntrinsics | None]) -> Frame:
    rgb, depth, k = scene
    return Frame(rgb=rgb, depth_m=depth, intrinsics=k, stamp=STAMP, frame_id=CAMERA)


def ground(pipeline: Pipeline, text: str, scene: tuple) -> GroundingResult:
    result = pipeline.ground(parse_instruction(text), frame_of(scene))
    assert result.status == "ok", result.message
    assert result.goals, result.message  # grounded in 3D: the gate, not the pipeline, decides
    return result


def as_pick(pipeline: Pipeline, noun: str, scene: tuple) -> GroundingResult:
    """A grounded ``noun`` with goals, as a pick would have it.  The pipeline itself never
    chooses what may not be picked up for a pick (and the session refuses the command before
    it grounds), so the object is grounded by a look and the gate is asked about a pick of it
    - what a tracker or an open-vocabulary model could hand it."""
    result = ground(pipeline, f"look at the {noun}", scene)
    result.instruction = parse_instruction(f"pick up the {noun}")
    target = result.targets[0].point_base
    result.goals = [Goal(kind="grasp", frame_id=BASE, pose=Pose(target), stamp=STAMP),
                    Goal(kind="pregrasp", frame_id=BASE,
                         pose=Pose((target[0], target[1], target[2] + 0.1)), stamp=STAMP)]
    return result


def gate(result: GroundingResult, **config: object) -> safety.GateDecision:
    return safety.check(result, SafetyConfig(**config), now=STAMP + 0.1)


# ------------------------------------------------------------------------- the category table
@pytest.mark.parametrize("label, category", [
    ("person", "person"), ("man", "person"), ("children", "person"), ("Person", "person"),
    ("dog", "animal"), ("horses", "animal"), ("puppy", "animal"), ("sheep", "animal"),
    ("car", "vehicle"), ("police car", "vehicle"), ("bus", "vehicle"), ("bicycle", "vehicle"),
    ("dining table", "furniture"), ("bench", "furniture"), ("couch", "furniture"),
    ("office chair", "furniture"), ("desk", "furniture"), ("bed", "furniture"),
    ("refrigerator", "large"), ("tv", "large"), ("fire hydrant", "large"),
    ("surfboard", "large"),
])
def test_refused_categories(label: str, category: str) -> None:
    assert category_of(label) == category


@pytest.mark.parametrize("label", [
    "cup", "bottle", "teddy bear", "hot dog", "toy car", "stuffed dog", "dog bowl", "mouse",
    "baseball bat", "record player", "table leg", "laptop", "remote", "widget", "", None,
])
def test_graspable_or_unknown_labels_are_not_refused_by_category(label: str | None) -> None:
    assert category_of(label) is None


# ------------------------------------------------------------------------- the measured width
def test_the_pipeline_records_each_located_objects_width(pipeline: Pipeline) -> None:
    rgb, depth, k = scenes.coffee()
    result = ground(pipeline, "grab the red cup", (rgb, depth, k))
    cup = result.targets[0]
    x1, _, x2, _ = cup.bbox
    assert cup.width_m == pytest.approx((x2 - x1) * cup.depth_m / k.fx)
    assert 0.05 < cup.width_m < 0.12  # an espresso cup (about 8 cm)
    assert cup.to_dict()["width_m"] == pytest.approx(cup.width_m, abs=1e-4)


def test_width_does_not_depend_on_the_camera_info_resolution(pipeline: Pipeline) -> None:
    """CameraInfo for a half-size stream (and depth at half size) measure the same width."""
    rgb, depth, k = scenes.coffee()
    full = ground(pipeline, "grab the red cup", (rgb, depth, k)).targets[0]
    half_k = k.scaled_to(k.width // 2, k.height // 2)
    half_depth = depth[::2, ::2].copy()
    half = ground(pipeline, "grab the red cup", (rgb, half_depth, half_k)).targets[0]
    assert half.width_m == pytest.approx(full.width_m, rel=0.02)


def test_no_depth_no_width(pipeline: Pipeline) -> None:
    rgb, _, k = scenes.coffee()
    result = pipeline.ground(parse_instruction("grab the red cup"), frame_of((rgb, None, k)))
    assert result.targets and result.targets[0].width_m is None and result.goals == []


def test_box_width_m() -> None:
    k = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
    assert box_width_m((100, 0, 200, 10), 2.0, k, 640, 480) == pytest.approx(0.4)
    # The same camera info for an image twice the size: pixels are half as wide.
    assert box_width_m((100, 0, 200, 10), 2.0, k, 1280, 960) == pytest.approx(0.2)
    assert box_width_m((100, 0, 200, 10), 0.0, k, 640, 480) is None
    assert box_width_m((100, 0, 200, 10), math.nan, k, 640, 480) is None
    assert box_width_m((100, 0, 200, 10), 2.0, None, 640, 480) is None


def test_a_tracked_box_is_measured_again(pipeline: Pipeline) -> None:
    rgb, depth, k = scenes.coffee()
    first = ground(pipeline, "grab the red cup", (rgb, depth, k)).targets[0]
    stale = Candidate(id=0, label="cup", score=0.9, bbox=first.bbox, width_m=5.0)
    tracked = pipeline.result_for_box(parse_instruction("grab the red cup"), stale,
                                      frame_of((rgb, depth, k)))
    assert tracked.targets[0].width_m == pytest.approx(first.width_m)


# ------------------------------------------------------------------------- the gate: pick
def test_the_red_cup_may_be_picked_up(pipeline: Pipeline) -> None:
    decision = gate(ground(pipeline, "grab the red cup", scenes.coffee()))
    assert decision.allowed, decision.reason


def test_a_person_is_never_picked_up(pipeline: Pipeline) -> None:
    # Refused with the command, before any model runs, with or without goals ...
    answer = CommandSession(pipeline, stamp_clock=lambda: STAMP + 0.1).run(
        "pick up the person", frame_of(person_scene()))
    assert answer.status == "rejected" and not answer.goals
    assert answer.message == "I won't pick up the person: a person is never grasped"
    # ... and by the gate on any result that would grasp one.
    result = as_pick(pipeline, "person", person_scene())
    assert result.targets[0].label == "person"
    # Refused for being a person, however wide the gripper opens.
    decision = gate(result, max_grasp_width_m=10.0)
    assert not decision.allowed
    assert decision.reasons == ["I won't pick up the person: a person is never grasped"]
    safety.apply(result, decision)
    assert result.status == "rejected" and result.goals == []
    assert "person" in result.message


def test_the_users_word_counts_too(pipeline: Pipeline) -> None:
    """"the woman" is grounded as a "person" box: the refusal names what was seen.  A label the
    table does not know (an open-vocabulary phrase) is refused when the user's noun is."""
    result = as_pick(pipeline, "woman", person_scene())
    assert gate(result).reasons[0] == "I won't pick up the person: a person is never grasped"
    result.targets[0].label = "small figure"
    result.instruction = Instruction(text="pick up the baby", action="pick",
                                     target=ObjectQuery(noun="baby"))
    assert gate(result).reasons[0] == "I won't pick up the baby: a person is never grasped"


def test_an_animal_is_never_picked_up(pipeline: Pipeline) -> None:
    result = as_pick(pipeline, "dog", dog_scene())
    decision = gate(result, max_grasp_width_m=10.0)
    assert decision.reasons == ["I won't pick up the dog: an animal is never grasped"]


def test_the_dining_table_is_too_large(pipeline: Pipeline) -> None:
    result = as_pick(pipeline, "dining table", scenes.coffee())
    table = result.targets[0]
    assert table.label == "dining table"
    decision = gate(result)
    assert not decision.allowed
    assert "I won't pick up the dining table: furniture is too large to grasp" in decision.reasons
    # The visible part of the table is wider than the gripper, too: both reasons are given.
    assert (f"too wide to grasp: the dining table is {table.width_m:.2f} m wide; "
            "max_grasp_width_m is 0.15 m") in decision.reasons


@pytest.mark.parametrize("text", ["go to the person", "look at the person", "find the person",
                                  "follow the person"])
def test_moving_to_or_looking_at_a_person_stays_allowed(pipeline: Pipeline, text: str) -> None:
    result = ground(pipeline, text, person_scene())
    assert {g.kind for g in result.goals}.isdisjoint({"grasp", "pregrasp", "place"})
    decision = gate(result)
    assert decision.allowed, decision.reason


# ------------------------------------------------------------------------- the gate: width
def test_an_object_wider_than_the_gripper_is_refused_with_its_width(pipeline: Pipeline) -> None:
    """The same cup pixels with the table 2.5x farther away: a 20 cm "cup"."""
    rgb, depth, k = scenes.coffee()
    result = ground(pipeline, "grab the red cup", (rgb, depth * 2.5, k))
    width = result.targets[0].width_m
    assert width > 0.15
    decision = gate(result, workspace_max=(5.0, 1.0, 1.8))  # the workspace is not under test
    assert decision.reasons == [f"too wide to grasp: the cup is {width:.2f} m wide; "
                                "max_grasp_width_m is 0.15 m"]


def test_max_grasp_width_m_is_the_limit(pipeline: Pipeline) -> None:
    result = ground(pipeline, "grab the red cup", scenes.coffee())
    width = result.targets[0].width_m
    assert gate(result, max_grasp_width_m=width + 0.005).allowed
    narrow = gate(result, max_grasp_width_m=width - 0.005)
    assert not narrow.allowed and "max_grasp_width_m" in narrow.reason


def test_width_is_not_checked_for_navigation(pipeline: Pipeline) -> None:
    result = ground(pipeline, "go to the person", person_scene())
    assert result.targets[0].width_m > 0.05
    assert gate(result, max_grasp_width_m=0.01).allowed


# ------------------------------------------------------------------------- the gate: place
def test_nothing_is_put_on_an_animal_or_a_person(pipeline: Pipeline) -> None:
    on_dog = ground(pipeline, "put it on the dog", dog_scene())
    assert on_dog.destination is not None and on_dog.destination.label == "dog"
    assert gate(on_dog).reasons == ["I won't put anything on the dog: nothing is ever put on "
                                    "an animal"]
    on_person = ground(pipeline, "put it on the person", person_scene())
    assert gate(on_person).reasons == ["I won't put anything on the person: nothing is ever "
                                       "put on a person"]


def test_furniture_is_a_fine_destination(pipeline: Pipeline) -> None:
    result = ground(pipeline, "put the cup on the table", scenes.coffee())
    assert result.destination is not None and result.destination.label == "dining table"
    decision = gate(result)
    assert decision.allowed, decision.reason


def place_result(held: str, destination: str, relation: str = "on") -> GroundingResult:
    return GroundingResult(
        status="ok",
        instruction=Instruction(text=f"put the {held} {relation} the {destination}",
                                action="place", target=ObjectQuery(noun=held),
                                destination=ObjectQuery(noun=destination),
                                destination_relation=relation),
        targets=[Candidate(id=0, label=held, score=0.9, bbox=(0, 0, 10, 10), width_m=0.5)],
        destination=Candidate(id=1, label=destination, score=0.9, bbox=(20, 0, 60, 40)),
        goals=[Goal(kind="place", frame_id=BASE, pose=Pose((0.6, 0.0, 0.8)))], stamp=STAMP)


def test_place_rules() -> None:
    assert gate(place_result("bowl", "bed")).allowed  # width is a pick check, not a place one
    assert gate(place_result("cup", "sheep", "in")).reasons == [
        "I won't put anything in the sheep: nothing is ever put in an animal"]
    assert gate(place_result("man", "chair")).reasons == [
        "I won't pick up the man: a person is never grasped"]


# ------------------------------------------------------------------------- confirm-before-motion
def test_a_refused_plan_is_never_asked_about(pipeline: Pipeline) -> None:
    session = CommandSession(pipeline, SessionConfig(confirm_before_motion=True),
                             stamp_clock=lambda: STAMP + 0.1)
    refused = session.run("pick up the person", frame_of(person_scene()))
    # Not asked about: refused with the command, nothing to confirm.
    assert refused.status == "rejected" and not refused.goals
    assert "won't pick up the person" in refused.message
    asked = session.run("pick up the red cup", frame_of(scenes.coffee()))
    assert asked.status == "awaiting_confirmation" and asked.goals == []


# ------------------------------------------------------------------------- the parameter
def test_max_grasp_width_m_parameter_reaches_the_gate() -> None:
    params = pytest.importorskip("vlm_ros.ros.params")  # imports yaml, not rclpy
    settings = params.NodeSettings.from_parameters({"max_grasp_width_m": 0.085})
    assert settings.safety_config().max_grasp_width_m == 0.085
    assert params.NodeSettings().safety_config().max_grasp_width_m == 0.15
    for bad in (0.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="max_grasp_width_m"):
            params.NodeSettings.from_parameters({"max_grasp_width_m": bad}).safety_config()
