"""Several objects in one command (issue #22): "pick up all the cups", "both cups", "the red and
the blue cup" - one pick per object, in a safe order, each step waiting for the robot's report.

The session runs on a MuJoCo render with real relief in depth and the default detector; the
robot's reports are given by hand (the DDS + physics loop is tests/test_sim_grasp_eval.py)."""

from __future__ import annotations

import math

import pytest

from vlm_ros.core.geometry import StaticFrameResolver
from vlm_ros.core.plan import parse_plan
from vlm_ros.core.session import Command, CommandSession, Ground, Reply

pytest.importorskip("mujoco")

from vlm_ros.sim.scene import generate_scene  # noqa: E402
from vlm_ros.sim.world import SimWorld  # noqa: E402

LAYOUT = [("cup", "red"), ("cup", "blue"), ("cup", "green"), ("ball", "yellow")]


@pytest.fixture(scope="module")
def table():
    from vlm_ros.backends.ssd_coco import SsdCocoBackend
    from vlm_ros.core.pipeline import Pipeline, PipelineConfig

    spec = generate_scene(5, layout=LAYOUT)
    with SimWorld(spec) as world:
        frame = world.frame()
        centres = {o.color_name: world.object_center(o) for o in spec.objects}
        resolver = StaticFrameResolver("base_link", frame.frame_id, world.camera.extrinsics())
    pipeline = Pipeline(SsdCocoBackend(), PipelineConfig(propose_from_depth=True), resolver)
    return pipeline, frame, centres


def _session(pipeline, frame) -> CommandSession:
    session = CommandSession(pipeline)
    session.stamp_clock = lambda: frame.stamp  # the render is the current view
    return session


def _drive(session: CommandSession, pipeline, frame, text: str, report: bool = True):
    """Every reply to ``text``; each grasp is reported done 5 s later when ``report``."""
    effects = session.command(Command(text, received=0.0, frame=frame), 0.0)
    replies, now = [], 0.0
    while effects:
        effect = effects.pop(0)
        if isinstance(effect, Ground):
            result = pipeline.ground(effect.request.instruction, frame)
            effects[:0] = session.grounded(effect.request, result, frame, now)
        elif isinstance(effect, Reply):
            replies.append(effect.result)
            if report and effect.result.status == "ok" and effect.result.goals:
                now += 5.0
                effects.extend(session.robot_status(True, "holding it", now))
    return replies


def _grasped(result) -> tuple[float, float, float]:
    return next(g for g in result.goals if g.kind == "grasp").pose.position


@pytest.mark.parametrize("text", ["pick up all the cups", "grab every cup", "拿起所有的杯子"])
def test_all_the_cups_is_one_pick_each_nearest_first(table, text: str) -> None:
    pipeline, frame, centres = table
    replies = _drive(_session(pipeline, frame), pipeline, frame, text)
    picks = [r for r in replies if r.goals]
    assert [r.step for r in picks] == [1, 2, 3] and all(len(r.steps) == 3 for r in picks)
    cups = sorted(("red", "blue", "green"), key=lambda c: math.hypot(*centres[c][:2]))
    for result, colour in zip(picks, cups):
        assert math.dist(_grasped(result)[:2], centres[colour][:2]) < 0.02, (colour, result.message)
    assert replies[-1].message == "done: all 3 steps finished"


def test_the_next_cup_waits_for_the_robots_report(table) -> None:
    pipeline, frame, _ = table
    session = _session(pipeline, frame)
    replies = _drive(session, pipeline, frame, "pick up all the cups", report=False)
    assert len(replies) == 1 and replies[0].step == 1 and session.running_plan
    later = session.robot_status(True, "holding it", now=4.0)
    assert [type(e) for e in later] == [Ground]
    assert later[0].request.instruction.target.near_point is not None


def test_both_needs_exactly_two(table) -> None:
    pipeline, frame, _ = table
    replies = _drive(_session(pipeline, frame), pipeline, frame, "grab both cups")
    assert [r.status for r in replies] == ["rejected"] and not replies[0].goals
    assert "'both': I see 3 cups, not 2" in replies[0].message


def test_named_one_by_one_in_the_order_said(table) -> None:
    pipeline, frame, centres = table
    replies = _drive(_session(pipeline, frame), pipeline, frame,
                     "grab the green and the red cup")
    picks = [r for r in replies if r.goals]
    assert [r.targets[0].color for r in picks] == ["green", "red"]
    assert math.dist(_grasped(picks[0])[:2], centres["green"][:2]) < 0.02


def test_a_cup_gone_since_planning_is_said_not_guessed(table) -> None:
    """Step 2 looks for the cup where it was planned; taken away, it is not found there."""
    from vlm_ros.core.types import Frame

    pipeline, frame, centres = table
    session = _session(pipeline, frame)
    _drive(session, pipeline, frame, "pick up all the cups", report=False)
    effects = session.robot_status(True, "holding it", now=4.0)
    request = effects[0].request
    # The camera now sees the empty table (the depth far away): nothing where cup 2 was.
    empty = Frame(rgb=frame.rgb * 0 + 128, depth_m=frame.depth_m * 0 + 3.0,
                  intrinsics=frame.intrinsics, stamp=frame.stamp, frame_id=frame.frame_id)
    result = pipeline.ground(request.instruction, empty)
    replies = [e.result for e in session.grounded(request, result, empty, 4.1)
               if isinstance(e, Reply)]
    assert replies[-1].status == "not_found" and not replies[-1].goals
    assert "rest of the plan is cancelled" in replies[-1].message


@pytest.mark.parametrize("text, why", [
    ("go to all the cups", "only for picking"),
    ("pick up all the cups and put them in the bowl", "of its own"),
    ("grab the red and blue cup", None),  # one two-coloured cup, maybe: not split
    ("grab the cup except the red one and the blue one", None),  # two exclusions
])
def test_what_is_not_split_or_not_allowed(text: str, why: str | None) -> None:
    plan = parse_plan(text)
    if why is not None:
        assert (plan.error and why in plan.error) or len(plan.steps) > 1, plan
    else:
        assert len(plan.steps) <= 1, plan


@pytest.mark.parametrize("text, nouns", [
    ("grab the red and the blue cup", ["cup", "cup"]),
    ("pick up the red cup and then the blue one", ["cup", "cup"]),
    ("grab the cup, then grab the red one", ["cup", "cup"]),
    # "the red one" is said before any noun: it is not made a cup by the step after it
    ("grab the red one and then pick up the cup", [None, "cup"]),
    ("grab the red one, then grab the cup", [None, "cup"]),
])
def test_a_left_out_noun_comes_only_from_where_it_was_said(text: str, nouns) -> None:
    plan = parse_plan(text)
    assert [s.target.noun for s in plan.steps] == nouns, plan
