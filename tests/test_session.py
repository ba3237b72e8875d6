"""`CommandSession`: the dialogue and command state machine, without DDS, threads or sleeps.

Events go in (a command, a finished grounding, a frame, a clock tick, a stop) and typed effects
come out; the tests play the owner's part by hand - they run each Ground on a real photo with the
real SSD-COCO weights - and assert what the session replies, which goals it lets out, and what
a stop voids.  Time is explicit: ``now`` values are chosen, never read.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vlm_ros import scenes
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.geometry import StaticFrameResolver, camera_extrinsics
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import (
    Command,
    CommandSession,
    Effect,
    Ground,
    Reply,
    SessionConfig,
    SignalStop,
    TrackedUpdate,
)
from vlm_ros.core.types import Frame, GroundingResult

CAMERA = "camera_color_optical_frame"
STAMP_NOW = 100.0  # the frames' clock: every frame below is stamped "just now"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    resolver = StaticFrameResolver("base_link", CAMERA, camera_extrinsics(0, 0, 0.6, 0, 0.6, 0))
    return Pipeline(SsdCocoBackend(), None, resolver)


def make_session(pipeline: Pipeline, **config: object) -> CommandSession:
    return CommandSession(pipeline, SessionConfig(**config), stamp_clock=lambda: STAMP_NOW)


def frame_of(scene: tuple, shift_px: int = 0) -> Frame:
    rgb, depth, k = scene
    if shift_px:
        rgb, depth = np.roll(rgb, shift_px, axis=1), np.roll(depth, shift_px, axis=1)
    return Frame(rgb=rgb, depth_m=depth, intrinsics=k, stamp=STAMP_NOW, frame_id=CAMERA)


COFFEE = frame_of(scenes.coffee())
TWO_CUPS = frame_of(scenes.two_cups())


def only(effects: list[Effect], kind: type) -> Effect:
    matching = [e for e in effects if isinstance(e, kind)]
    assert len(matching) == 1, effects
    return matching[0]


def ground(session: CommandSession, effects: list[Effect], frame: Frame,
           now: float = 0.0) -> list[Effect]:
    """Play the owner: run the one Ground in ``effects`` on ``frame``, return what follows."""
    request = only(effects, Ground).request
    result = session.pipeline.ground(request.instruction, frame, last_target=request.last_target)
    return session.grounded(request, result, frame, now)


def say(session: CommandSession, text: str, frame: Frame, now: float = 0.0) -> GroundingResult:
    effects = session.command(Command(text, received=now), now)
    if any(isinstance(e, Ground) for e in effects):
        effects = ground(session, effects, frame, now)
    return only(effects, Reply).result


# ------------------------------------------------------------------------- commands
def test_a_command_asks_for_a_frame_newer_than_itself_then_replies_with_goals(
        pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    effects = session.command(Command("grab the red cup", received=12.5, id=7), now=12.5)
    request = only(effects, Ground).request
    assert request.after == 12.5 and request.frame is None and not request.background
    assert request.instruction.action == "pick" and request.instruction.target.color == "red"
    reply = only(ground(session, effects, COFFEE, now=12.6), Reply)
    assert reply.command is not None and reply.command.id == 7
    assert reply.result.status == "ok" and {g.kind for g in reply.result.goals} == {
        "grasp", "pregrasp"}
    assert {"parse", "model", "total"} <= set(reply.result.timing_ms)
    assert reply.result.frame_id == CAMERA and reply.result.image_size == (COFFEE.width,
                                                                           COFFEE.height)


def test_too_long_and_unknown_commands_are_rejected_without_the_model(
        pipeline: Pipeline) -> None:
    session = make_session(pipeline, max_command_length=20)
    long = session.command(Command("grab the red cup on the left please"), now=0.0)
    assert only(long, Reply).result.status == "rejected"
    assert "longer than 20 characters" in only(long, Reply).result.message
    unknown = session.command(Command("sing a song"), now=0.0)
    assert only(unknown, Reply).result.status == "rejected"
    assert not any(isinstance(e, Ground) for e in long + unknown)


def test_a_clarification_answer_completes_the_pending_command(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    first = say(session, "grab the cup", TWO_CUPS)
    assert first.status == "ambiguous" and first.goals == [] and session.pending is not None
    effects = session.command(Command("the left one"), now=1.0)
    assert only(effects, Ground).request.instruction.text == "grab the cup -> the left one"
    answer = only(ground(session, effects, TWO_CUPS), Reply).result
    assert answer.status == "ok" and answer.goals
    assert answer.targets[0].center[0] < TWO_CUPS.width / 2 and session.pending is None


def test_an_answer_with_no_question_is_rejected(pipeline: Pipeline) -> None:
    result = say(make_session(pipeline), "the left one", TWO_CUPS)
    assert result.status == "rejected" and "no question is pending" in result.message


def test_it_is_the_last_target(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    first = say(session, "grab the red cup", COFFEE)
    again = say(session, "pick it up", COFFEE)
    assert again.status == "ok" and again.targets[0].bbox == pytest.approx(first.targets[0].bbox)


# ---------------------------------------------------------------------------- stop
def test_stop_replies_and_clears_the_question(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    assert say(session, "grab the cup", TWO_CUPS).status == "ambiguous"
    assert session.is_stop("stop") and session.is_stop("停") and not session.is_stop("go")
    stopped = only(session.command(Command("stop"), now=1.0), Reply).result
    assert stopped.status == "ok" and stopped.instruction.action == "stop"
    assert "cancelled" in stopped.message and stopped.goals == []
    assert session.pending is None
    assert say(session, "the left one", TWO_CUPS).status == "rejected"


def test_a_stop_during_a_grounding_voids_its_question(pipeline: Pipeline) -> None:
    """The race the node had: an ambiguous grounding in flight when a stop came set the
    question again afterwards, so "the left one" grounded the pre-stop command."""
    session = make_session(pipeline)
    effects = session.command(Command("grab the cup"), now=0.0)
    session.stop(Command("stop"), now=0.1)  # arrives while the model runs
    after = ground(session, effects, TWO_CUPS, now=0.2)
    assert session.pending is None
    voided = session.current(only(after, Reply))
    assert voided.result.status == "rejected" and voided.result.message == "superseded by stop"
    followup = say(session, "the left one", TWO_CUPS)
    assert followup.status == "rejected" and followup.goals == []


def test_a_stop_voids_goals_and_model_passes_issued_before_it(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    effects = session.command(Command("grab the red cup"), now=0.0)
    reply = only(ground(session, effects, COFFEE), Reply)
    assert reply.result.goals and session.current(reply) is reply
    queued_ground = only(session.command(Command("grab the red cup"), now=0.5), Ground)
    session.stop(Command("stop"), now=1.0)
    voided = session.current(reply)
    assert voided.result.goals == [] and voided.result.status == "rejected"
    unrun = session.current(queued_ground)  # never reached the model: answered all the same
    assert isinstance(unrun, Reply) and unrun.result.message == "superseded by stop"
    assert reply.result.goals, "the original result is not modified"


# ----------------------------------------------------------------- confirm-before-motion
def test_confirmation_holds_goals_until_yes_then_grounds_again(pipeline: Pipeline) -> None:
    session = make_session(pipeline, confirm_before_motion=True, confirm_timeout_s=10.0)
    asked = say(session, "grab the red cup", COFFEE, now=0.0)
    assert asked.status == "awaiting_confirmation" and asked.goals == []
    assert "I will pick the cup at (" in asked.message and session.awaiting_confirmation
    effects = session.command(Command("yes", received=2.0), now=2.0)
    request = only(effects, Ground).request
    assert request.purpose == "confirmation" and request.after == 2.0
    confirmed = only(ground(session, effects, COFFEE, now=2.1), Reply).result
    assert confirmed.status == "ok" and confirmed.goals
    assert confirmed.message.startswith("confirmed:")
    assert confirmed.instruction.text == "grab the red cup -> yes"
    assert not session.awaiting_confirmation


def test_a_command_with_its_own_image_is_confirmed_too(pipeline: Pipeline) -> None:
    """~/ground requests carry an image: they go through the same session, so confirmation
    (and the length limit, and stop) apply to them as to ~/command."""
    session = make_session(pipeline, confirm_before_motion=True)
    effects = session.command(Command("grab the red cup", frame=COFFEE), now=0.0)
    request = only(effects, Ground).request
    assert request.frame is COFFEE
    asked = only(session.grounded(request, pipeline.ground(request.instruction, COFFEE),
                                  COFFEE, 0.0), Reply).result
    assert asked.status == "awaiting_confirmation" and asked.goals == []


def test_no_timeout_and_a_new_command_cancel_a_confirmation(pipeline: Pipeline) -> None:
    session = make_session(pipeline, confirm_before_motion=True, confirm_timeout_s=5.0)
    say(session, "grab the red cup", COFFEE, now=0.0)
    no = only(session.command(Command("no"), now=1.0), Reply).result
    assert no.status == "ok" and no.message.startswith("cancelled: will not pick the cup")

    say(session, "grab the red cup", COFFEE, now=10.0)
    assert session.tick(14.0) == []
    expired = only(session.tick(15.5), Reply)
    assert expired.command is None and expired.result.status == "rejected"
    assert "no answer within 5 s" in expired.result.message
    late = only(session.command(Command("yes"), now=16.0), Reply).result
    assert late.status == "rejected" and late.message == "nothing to confirm"

    say(session, "grab the red cup", COFFEE, now=20.0)
    replaced = session.command(Command("go to the cup"), now=21.0)
    dropped = only(replaced, Reply).result
    assert dropped.status == "rejected" and "superseded by a new command" in dropped.message
    assert only(replaced, Ground).request.instruction.action == "navigate"


def test_a_target_that_moved_since_the_question_does_not_move_the_robot(
        pipeline: Pipeline) -> None:
    session = make_session(pipeline, confirm_before_motion=True, confirm_max_shift_m=0.02)
    say(session, "grab the red cup", COFFEE, now=0.0)
    effects = session.command(Command("yes"), now=1.0)
    moved = only(ground(session, effects, frame_of(scenes.coffee(), shift_px=120)), Reply)
    assert moved.result.status == "rejected" and moved.result.goals == []
    assert "moved" in moved.result.message and "nothing moved" in moved.result.message


# ------------------------------------------------------------------------- tracking
def test_a_picked_target_is_tracked_for_a_while_without_resending_goals(
        pipeline: Pipeline) -> None:
    session = make_session(pipeline, track_target_s=3.0, reground_interval_s=float("inf"))
    assert say(session, "grab the red cup", COFFEE, now=0.0).status == "ok"
    assert session.tracking and not session.following
    update = only(session.frame(frame_of(scenes.coffee(), shift_px=40), now=0.1),
                  TrackedUpdate)
    assert update.result.status == "ok" and not update.send_goals  # a lifted cup moves too
    assert update.result.targets[0].center[0] > COFFEE.width / 2 - 200
    session.tick(3.5)
    assert not session.tracking and session.frame(COFFEE, now=3.6) == []


def test_follow_resends_goals_when_the_target_moves_until_stop(pipeline: Pipeline) -> None:
    session = make_session(pipeline, reground_interval_s=float("inf"), track_goal_shift_m=0.02)
    assert say(session, "follow the cup", COFFEE, now=0.0).status == "ok"
    assert session.following
    still = only(session.frame(COFFEE, now=0.1), TrackedUpdate)
    assert not still.send_goals  # it has not moved
    moved = only(session.frame(frame_of(scenes.coffee(), shift_px=60), now=0.2), TrackedUpdate)
    assert moved.send_goals and moved.result.goals
    session.command(Command("stop"), now=0.3)
    assert not session.tracking and session.current(moved) is None


def test_a_new_command_ends_tracking(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    say(session, "follow the cup", COFFEE)
    session.command(Command("look at the cup"), now=1.0)
    assert not session.tracking


def test_a_failed_regrounding_ends_the_track_with_a_reason(pipeline: Pipeline) -> None:
    session = make_session(pipeline, reground_interval_s=0.0)
    say(session, "follow the cup", COFFEE)
    effects = session.frame(frame_of(scenes.coffee(), shift_px=10), now=0.1)
    reground = only(effects, Ground).request
    assert reground.background and reground.frame is not None
    assert only(session.frame(COFFEE, now=0.2), TrackedUpdate)  # no second pass while one runs
    ended = only(session.grounded(reground, None, reground.frame, 0.3,
                                  problem="backend ssd_coco did not answer within 1 s"), Reply)
    assert ended.command is None and ended.result.status == "error"
    assert "did not answer" in ended.result.message and not session.tracking


def test_a_regrounding_that_finds_the_target_confirms_a_follow_goal(pipeline: Pipeline) -> None:
    session = make_session(pipeline, reground_interval_s=0.0)
    say(session, "follow the cup", COFFEE)
    shifted = frame_of(scenes.coffee(), shift_px=10)
    request = only(session.frame(shifted, now=0.1), Ground).request
    confirmed = only(session.grounded(request, pipeline.ground(request.instruction, shifted),
                                      shifted, 0.2), TrackedUpdate)
    assert confirmed.send_goals and confirmed.result.goals


# ------------------------------------------------------------------ synchronous driver
def test_run_answers_one_command_on_one_frame(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    assert session.run("grab the red cup", COFFEE).status == "ok"
    no_frame = session.run("grab the red cup", None)
    assert no_frame.status == "error" and "no camera frame" in no_frame.message
    stopped = session.run("stop", None)
    assert stopped.status == "ok" and stopped.goals == []


def test_replies_without_a_command_are_never_rewritten_as_answers(pipeline: Pipeline) -> None:
    """A lost track or an expired confirmation from before a stop is simply dropped."""
    session = make_session(pipeline)
    lost = Reply(GroundingResult(status="not_found", message="lost the cup"), None, None,
                 session.epoch)
    session.stop(Command("stop"), now=0.0)
    assert session.current(lost) is None
    assert session.current(dataclasses.replace(lost, epoch=session.epoch)) is not None


# ------------------------------------------------------------------------------ plans
def test_a_plan_waits_then_places_then_says_done(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    first = session.command(Command("grab the red cup and put it on the table"), now=0.0)
    ground(session, first, COFFEE, now=0.1)
    nxt = session.robot_status(True, "holding the cup", now=5.0)
    request = only(nxt, Ground).request
    assert request.step == 1 and request.after == 5.0 and request.instruction.action == "place"
    placed = only(ground(session, nxt, COFFEE, now=5.2), Reply).result
    assert placed.status == "ok" and [g.kind for g in placed.goals] == ["place"]
    assert placed.destination.label == "dining table" and placed.step == 2
    done = only(session.robot_status(True, "released", now=9.0), Reply).result
    assert done.status == "ok" and done.message == "done: all 2 steps finished"
    assert not session.running_plan


def test_a_step_the_robot_never_finishes_ends_the_plan(pipeline: Pipeline) -> None:
    session = make_session(pipeline, step_timeout_s=20.0)
    first = session.command(Command("grab the red cup and put it on the table"), now=0.0)
    ground(session, first, COFFEE, now=0.5)
    assert session.tick(15.0) == []
    timed_out = only(session.tick(21.0), Reply).result
    assert timed_out.status == "error" and "step 1 of 2 (grab the red cup)" in timed_out.message
    assert "did not finish within 20 s" in timed_out.message and timed_out.goals == []
    assert session.robot_status(True, "", now=22.0) == []  # too late: nothing goes on


def test_a_failed_step_and_a_stop_cancel_the_rest(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    ground(session, session.command(Command("grab the red cup and put it on the table"),
                                    now=0.0), COFFEE)
    failed = only(session.robot_status(False, "the cup slipped", now=3.0), Reply).result
    assert failed.status == "error" and "the cup slipped" in failed.message
    assert "rest of the plan is cancelled" in failed.message and not session.running_plan

    ground(session, session.command(Command("grab the red cup and put it on the table"),
                                    now=4.0), COFFEE)
    session.command(Command("stop"), now=5.0)
    assert not session.running_plan and session.robot_status(True, "", now=6.0) == []


def test_a_step_not_found_ends_the_plan_without_goals(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    effects = session.command(Command("grab the banana and put it on the table"), now=0.0)
    ended = only(ground(session, effects, COFFEE), Reply).result
    assert ended.status == "not_found" and ended.goals == []
    assert "step 1 of 2" in ended.message and "rest of the plan is cancelled" in ended.message
    assert not session.running_plan


def test_a_stop_step_signals_stop_and_ends_the_plan(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    effects = session.command(Command("go to the cup, then stop"), now=0.0)
    ground(session, effects, COFFEE)
    stopped = session.robot_status(True, "arrived", now=4.0)
    assert any(isinstance(e, SignalStop) for e in stopped)
    assert "step 2 of 2" in only(stopped, Reply).result.message and not session.running_plan


def test_plans_that_could_never_finish_are_refused(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    follow = only(session.command(Command("follow the person and then grab the cup"), now=0.0),
                  Reply).result
    assert follow.status == "rejected" and "last step" in follow.message


# ------------------------------------------------- typos, negative commands, unjudged words
def test_a_typo_asks_and_yes_runs_the_corrected_command(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    asked = only(session.command(Command("grap the red cup"), now=0.0), Reply).result
    assert asked.status == "ambiguous" and asked.goals == []
    assert asked.clarification == "Did you mean 'grab the red cup'?" and "'grap'" in asked.message
    effects = session.command(Command("yes"), now=1.0)
    assert only(effects, Ground).request.instruction.action == "pick"
    assert only(ground(session, effects, COFFEE), Reply).result.status == "ok"
    session.command(Command("grap the red cup"), now=2.0)
    no = only(session.command(Command("no"), now=3.0), Reply).result
    assert no.status == "ok" and no.message.startswith("cancelled") and no.goals == []


def test_a_negative_command_sends_nothing_and_says_so(pipeline: Pipeline) -> None:
    result = say(make_session(pipeline), "don't grab the red cup", COFFEE)
    assert result.status == "rejected" and result.goals == [] and "not to pick" in result.message


def test_dont_take_the_red_one_answers_which_cup(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    assert say(session, "grab the cup", TWO_CUPS).status == "ambiguous"
    answer = say(session, "别拿红色的", TWO_CUPS)
    assert answer.status == "ok" and answer.targets[0].center[0] > TWO_CUPS.width / 2


def test_words_the_detector_cannot_judge_are_named(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    shiny = only(session.command(Command("grab the shiny cup"), now=0.0), Reply).result
    assert shiny.status == "rejected" and "'shiny'" in shiny.message and shiny.goals == []
    two = only(session.command(Command("grab the red and blue cup"), now=0.0), Reply).result
    assert two.status == "rejected" and "'blue'" in two.message


def test_the_cup_that_is_not_red_is_the_other_cup(pipeline: Pipeline) -> None:
    for text in ("grab the cup, not the red one", "grab the cup that isn't red",
                 "grab any cup but the red one"):
        result = say(make_session(pipeline), text, TWO_CUPS)
        assert result.status == "ok" and result.goals, (text, result.message)
        assert result.targets[0].center[0] > TWO_CUPS.width / 2, text  # the blue copy


def test_pattern_material_and_shade_words_are_named_with_their_kind(pipeline: Pipeline) -> None:
    for text, word, kind in (("grab the striped cup", "striped", "pattern"),
                             ("抓取塑料杯子", "塑料", "material"),
                             ("grab the dark blue cup", "dark", "shade")):
        result = only(make_session(pipeline).command(Command(text), now=0.0), Reply).result
        assert result.status == "rejected" and result.goals == [], text
        assert f"'{word}' (a {kind})" in result.message, result.message


def test_a_named_shade_is_judged_as_its_colour(pipeline: Pipeline) -> None:
    result = say(make_session(pipeline), "grab the navy cup", TWO_CUPS)
    assert result.status == "ok" and result.targets[0].center[0] > TWO_CUPS.width / 2


def test_the_session_says_whether_a_command_answered_its_question(pipeline: Pipeline) -> None:
    """last_command_continues: what the ~/instruct action uses to tell an answer from a command
    of its own (which must not become the waiting goal's result)."""
    session = make_session(pipeline, confirm_before_motion=True, confirm_timeout_s=10.0)
    say(session, "grab the cup", TWO_CUPS)
    assert session.last_command_continues is False  # a command of its own
    session.command(Command("the left one", received=1.0), now=1.0)
    assert session.last_command_continues is True  # answers "Which cup?"
    plain = make_session(pipeline)
    say(plain, "grab the cup", TWO_CUPS)
    plain.command(Command("grab the red cup", received=1.0), now=1.0)
    assert plain.last_command_continues is False  # starts over: not an answer
    confirming = make_session(pipeline, confirm_before_motion=True, confirm_timeout_s=10.0)
    assert say(confirming, "grab the red cup", COFFEE).status == "awaiting_confirmation"
    confirming.command(Command("yes", received=2.0), now=2.0)
    assert confirming.last_command_continues is True
    confirming.command(Command("yes", received=3.0), now=3.0)
    assert confirming.last_command_continues is False  # nothing left to confirm
