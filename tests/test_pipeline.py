"""`Pipeline`: text + frame -> GroundingResult, with the real SSD-COCO weights on real photos.

The pipeline is what the CLI, the node and the simulator all call, so these tests pin its
promises end to end: goals only when the target is really placed in the base frame (never in an
unresolved frame, never from missing depth or intrinsics), the dialogue state (clarifications,
"it"), stop without a camera, and backend failures turned into results instead of exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from photos import load_photo

from vlm_ros import scenes
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.geometry import StaticFrameResolver, Transform, camera_extrinsics
from vlm_ros.core.pipeline import Pipeline, PipelineConfig
from vlm_ros.core.session import CommandSession
from vlm_ros.core.types import Detection, Frame, GroundingResult

BASE = "base_link"
CAMERA = "camera_color_optical_frame"
# A camera 0.6 m above the base, pitched 0.6 rad down at the table.
TABLE_CAMERA: Transform = camera_extrinsics(0.0, 0.0, 0.6, 0.0, 0.6, 0.0)


@pytest.fixture(scope="module")
def backend() -> SsdCocoBackend:
    return SsdCocoBackend()


@pytest.fixture
def resolver() -> StaticFrameResolver:
    return StaticFrameResolver(BASE, CAMERA, TABLE_CAMERA)


@pytest.fixture
def session(backend: SsdCocoBackend, resolver: StaticFrameResolver) -> CommandSession:
    return CommandSession(Pipeline(backend, None, resolver))


def coffee_frame(depth: bool = True, intrinsics: bool = True) -> Frame:
    rgb, depth_m, k = scenes.coffee()
    return Frame(rgb=rgb, depth_m=depth_m if depth else None, intrinsics=k if intrinsics else None,
                 frame_id=CAMERA)


def two_cups_frame() -> Frame:
    rgb, depth_m, k = scenes.two_cups()
    return Frame(rgb=rgb, depth_m=depth_m, intrinsics=k, frame_id=CAMERA)


def goals_by_kind(result: GroundingResult) -> dict[str, tuple[float, ...]]:
    return {g.kind: (*g.pose.position, *g.pose.orientation) for g in result.goals}


def center_x(result: GroundingResult) -> float:
    return result.targets[0].center[0]


# ---------------------------------------------------------------------------- 3D goals


def test_red_cup_grasp_and_pregrasp_in_the_base_frame(session: CommandSession,
                                                      resolver: StaticFrameResolver) -> None:
    frame = coffee_frame()
    result = session.run("grab the red cup", frame)
    assert result.status == "ok", result.message
    assert result.instruction is not None and result.instruction.action == "pick"
    target = result.targets[0]
    assert target.label == "cup"
    assert target.point_camera is not None and target.point_base is not None

    # point_base is exactly the resolver's camera->base transform of point_camera.
    transform = resolver.lookup(BASE, CAMERA, frame.stamp)
    assert transform is not None
    assert target.point_base == pytest.approx(transform.apply(target.point_camera), abs=1e-9)

    goals = goals_by_kind(result)
    assert set(goals) == {"grasp", "pregrasp"}
    assert all(g.frame_id == BASE for g in result.goals)
    assert all(math.isfinite(v) for pose in goals.values() for v in pose)
    grasp, pregrasp = goals["grasp"], goals["pregrasp"]
    assert grasp[:2] == pytest.approx(target.point_base[:2], abs=1e-9)
    assert pregrasp[:2] == pytest.approx(grasp[:2], abs=1e-9)
    assert pregrasp[2] == pytest.approx(grasp[2] + 0.10, abs=1e-9)

    assert {"parse", "model", "reasoning", "geometry", "total"} <= set(result.timing_ms)
    assert result.backend == "ssd_coco"
    assert result.image_size == (frame.width, frame.height)


def test_without_a_frame_resolver_there_is_no_goal(backend: SsdCocoBackend) -> None:
    result = CommandSession(Pipeline(backend, None, frames=None)).run("grab the red cup", coffee_frame())
    assert result.status == "ok", result.message
    assert result.targets[0].label == "cup"
    assert result.goals == []
    assert "no 3D goal" in result.message
    # The camera-frame point is still reported; only the base-frame one is unknown.
    assert result.targets[0].point_camera is not None
    assert result.targets[0].point_base is None


def test_without_depth_there_is_no_goal(session: CommandSession) -> None:
    result = session.run("grab the red cup", coffee_frame(depth=False))
    assert result.status == "ok", result.message
    assert result.goals == []
    assert "no 3D goal" in result.message and "no depth image" in result.message
    assert result.targets[0].point_camera is None


def test_without_intrinsics_there_is_no_goal(session: CommandSession) -> None:
    result = session.run("grab the red cup", coffee_frame(intrinsics=False))
    assert result.status == "ok", result.message
    assert result.goals == []
    assert "no 3D goal" in result.message and "no camera intrinsics" in result.message


def test_unresolvable_camera_frame_never_gets_a_goal(backend: SsdCocoBackend) -> None:
    # The resolver knows some other camera; the frame comes from ours.
    other = StaticFrameResolver(BASE, "wrist_camera_optical_frame", TABLE_CAMERA)
    result = CommandSession(Pipeline(backend, None, other)).run("grab the red cup", coffee_frame())
    assert result.status == "ok", result.message
    assert result.goals == []
    assert result.targets[0].point_base is None
    assert CAMERA in result.message


def test_depth_outside_the_configured_range_gives_no_goal(backend: SsdCocoBackend,
                                                        resolver: StaticFrameResolver) -> None:
    # The table in the coffee scene is 0.55 .. 0.95 m away: a 0.5 m limit excludes the cup.
    config = PipelineConfig(max_depth_m=0.5)
    result = CommandSession(Pipeline(backend, config, resolver)).run("grab the red cup", coffee_frame())
    assert result.status == "ok", result.message
    assert result.goals == []
    assert result.targets[0].point_base is None
    assert "outside" in result.message


def _far_coffee_frame() -> Frame:
    frame = coffee_frame()
    assert frame.depth_m is not None
    frame.depth_m = frame.depth_m + 20.0  # the same table, 20.55 .. 20.95 m away
    return frame


def test_depth_beyond_the_default_range_says_outside(session: CommandSession) -> None:
    result = session.run("grab the red cup", _far_coffee_frame())
    assert result.goals == []
    assert "outside" in result.message


def test_a_wider_configured_depth_range_is_honoured(backend: SsdCocoBackend,
                                                    resolver: StaticFrameResolver) -> None:
    # A look goal: 20 m away the cup is far outside the workspace (and 2 m "wide"), so the
    # safety gate the session applies would refuse a grasp there.
    config = PipelineConfig(max_depth_m=30.0)
    result = CommandSession(Pipeline(backend, config, resolver)).run("look at the red cup",
                                                                     _far_coffee_frame())
    assert result.status == "ok", result.message
    assert {g.kind for g in result.goals} == {"look"}
    assert result.targets[0].point_base[0] > 15.0


# ---------------------------------------------------------------------------- dialogue


def test_ambiguity_then_answer(session: CommandSession) -> None:
    frame = two_cups_frame()
    first = session.run("grab the cup", frame)
    assert first.status == "ambiguous"
    assert first.clarification
    assert len(first.candidates) >= 2 and first.goals == []
    assert session.pending is not None

    answer = session.run("the right one", frame)
    assert answer.status == "ok", answer.message
    assert answer.targets[0].label == "cup"
    assert center_x(answer) > frame.width / 2  # the recoloured copy on the right
    assert answer.goals
    assert session.pending is None


def test_answer_with_nothing_pending_is_rejected(session: CommandSession) -> None:
    result = session.run("the left one", two_cups_frame())
    assert result.status == "rejected"
    assert result.goals == []
    assert "pending" in result.message


def test_it_refers_to_the_last_target(session: CommandSession) -> None:
    frame = coffee_frame()
    first = session.run("grab the red cup", frame)
    assert first.status == "ok", first.message
    again = session.run("pick it up", frame)
    assert again.status == "ok", again.message
    assert again.targets[0].label == "cup"
    assert again.targets[0].bbox == pytest.approx(first.targets[0].bbox)
    assert set(goals_by_kind(again)) == {"grasp", "pregrasp"}


def test_put_it_on_the_table_is_a_place_goal_only(session: CommandSession) -> None:
    frame = coffee_frame()
    assert session.run("grab the red cup", frame).status == "ok"
    result = session.run("put it on the table", frame)
    assert result.status == "ok", result.message
    assert result.instruction is not None and result.instruction.action == "place"
    assert result.destination is not None and result.destination.label == "dining table"
    assert [g.kind for g in result.goals] == ["place"]
    assert result.goals[0].frame_id == BASE


def test_stop_clears_pending_and_needs_no_frame(session: CommandSession) -> None:
    assert session.run("grab the cup", two_cups_frame()).status == "ambiguous"
    assert session.pending is not None
    result = session.run("stop", None)
    assert result.status == "ok", result.message
    assert result.instruction is not None and result.instruction.action == "stop"
    assert result.goals == [] and result.targets == []
    assert session.pending is None
    # With the question withdrawn, an answer has nothing to answer.
    assert session.run("the right one", two_cups_frame()).status == "rejected"


def test_commands_other_than_stop_need_a_frame(session: CommandSession) -> None:
    result = session.run("grab the red cup", None)
    assert result.status == "error"
    assert "no camera frame" in result.message
    assert result.goals == []


# ---------------------------------------------------------------------------- failures


class FailingSsdBackend(SsdCocoBackend):
    """Simulates a model that loads but fails at inference (a lost GPU, a corrupt graph).

    The real weights are loaded; only ``detect`` fails, the way an adapter reports a runtime
    failure.  The pipeline is the thing under test here, not the backend.
    """

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        raise BackendError("simulated inference failure")


def test_backend_failure_is_an_error_result(resolver: StaticFrameResolver) -> None:
    result = CommandSession(Pipeline(FailingSsdBackend(), None, resolver)).run("grab the red cup",
                                                                  coffee_frame())
    assert result.status == "error"
    assert "ssd_coco" in result.message and "simulated inference failure" in result.message
    assert result.goals == [] and result.targets == []


# ---------------------------------------------------------------------------- navigation


def test_go_to_the_dog_stops_short_and_faces_it(backend: SsdCocoBackend) -> None:
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    frame = Frame(rgb=rgb, depth_m=scenes.tabletop_depth(w, h, 2.0, 8.0),
                  intrinsics=scenes.intrinsics_for(w, h), frame_id=CAMERA)
    frames = StaticFrameResolver(BASE, CAMERA, camera_extrinsics(0, 0, 1, 0, 0, 0))
    result = CommandSession(Pipeline(backend, None, frames)).run("go to the dog", frame)
    assert result.status == "ok", result.message
    assert result.targets[0].label == "dog"
    dog = result.targets[0].point_base
    assert dog is not None

    assert [g.kind for g in result.goals] == ["navigate"]
    goal = result.goals[0]
    assert goal.frame_id == BASE
    x, y, z = goal.pose.position
    qx, qy, qz, qw = goal.pose.orientation
    assert z == pytest.approx(0.0)
    assert math.hypot(dog[0] - x, dog[1] - y) == pytest.approx(0.8, abs=1e-6)
    # On the straight line from the robot (base origin) to the dog, on the robot's side of it.
    assert x * dog[1] - y * dog[0] == pytest.approx(0.0, abs=1e-6)
    assert math.hypot(x, y) == pytest.approx(math.hypot(dog[0], dog[1]) - 0.8, abs=1e-6)
    # A pure yaw that faces the dog.
    assert (qx, qy) == pytest.approx((0.0, 0.0), abs=1e-9)
    yaw = 2.0 * math.atan2(qz, qw)
    assert yaw == pytest.approx(math.atan2(dog[1] - y, dog[0] - x), abs=1e-6)
