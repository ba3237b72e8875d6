"""Held commands (an agent's, through the MCP server): nothing of them moves without a yes.

The session is driven by hand as in tests/test_session.py - real photos, the real SSD-COCO
weights - with ``Command.hold`` set as the ~/instruct action sets it for
``hold_for_confirmation``.  The node's own confirm_before_motion stays off: only the held
command waits.
"""

from __future__ import annotations

import pytest
from test_session import CAMERA, COFFEE, TWO_CUPS, ground, make_session, only

from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.geometry import StaticFrameResolver, camera_extrinsics
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.session import Command, CommandSession, Effect, Ground, Reply
from vlm_ros.core.types import GroundingResult


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    resolver = StaticFrameResolver("base_link", CAMERA, camera_extrinsics(0, 0, 0.6, 0, 0.6, 0))
    return Pipeline(SsdCocoBackend(), None, resolver)


def held(session: CommandSession, text: str, frame, now: float = 0.0) -> GroundingResult:
    effects = session.command(Command(text, received=now, hold=True), now)
    if any(isinstance(e, Ground) for e in effects):
        effects = ground(session, effects, frame, now)
    return only(effects, Reply).result


def answer(session: CommandSession, text: str, frame, now: float = 1.0) -> list[Effect]:
    effects = session.command(Command(text, received=now), now)
    if any(isinstance(e, Ground) for e in effects):
        effects = ground(session, effects, frame, now)
    return effects


@pytest.mark.parametrize("text", ["grab the red cup", "go to the cup", "look at the cup"])
def test_a_held_command_states_what_would_move_and_waits(pipeline: Pipeline, text: str) -> None:
    session = make_session(pipeline)  # confirm_before_motion off: only the hold asks
    asked = held(session, text, COFFEE)
    assert asked.status == "awaiting_confirmation" and asked.goals == [], asked.message
    assert asked.targets and asked.targets[0].point_base is not None  # what the policy checks
    assert session.awaiting_confirmation
    confirmed = only(answer(session, "yes", COFFEE, now=2.0), Reply).result
    assert confirmed.status == "ok" and confirmed.goals


def test_the_same_command_unheld_moves_at_once(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    effects = session.command(Command("grab the red cup"), 0.0)
    result = only(ground(session, effects, COFFEE), Reply).result
    assert result.status == "ok" and result.goals and not session.awaiting_confirmation


def test_a_no_moves_nothing(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    held(session, "grab the red cup", COFFEE)
    declined = only(answer(session, "no", COFFEE), Reply).result
    assert declined.goals == [] and declined.message.startswith("cancelled: will not pick")


def test_the_answer_to_a_held_question_is_held_too(pipeline: Pipeline) -> None:
    """"Which cup?" asked for an agent's command: "the left one", from anyone, completes it
    into a held command - the agent's policy still sees it before it moves."""
    session = make_session(pipeline)
    asked = held(session, "grab the cup", TWO_CUPS)
    assert asked.status == "ambiguous" and asked.goals == []
    completed = only(answer(session, "the left one", TWO_CUPS), Reply).result
    assert completed.status == "awaiting_confirmation" and completed.goals == []
    # A question from an unheld command is answered as before: goals at once.
    session = make_session(pipeline)
    effects = session.command(Command("grab the cup"), 0.0)
    assert only(ground(session, effects, TWO_CUPS), Reply).result.status == "ambiguous"
    direct = only(answer(session, "the left one", TWO_CUPS), Reply).result
    assert direct.status == "ok" and direct.goals


def test_a_held_typo_correction_stays_held(pipeline: Pipeline) -> None:
    session = make_session(pipeline)
    asked = held(session, "grabb the red cup", COFFEE)
    assert asked.status == "ambiguous" and asked.clarification == "Did you mean 'grab the red cup'?"
    corrected = only(answer(session, "yes", COFFEE), Reply).result
    assert corrected.status == "awaiting_confirmation" and corrected.goals == []


@pytest.mark.parametrize("text, words", [
    ("grab the red cup and put it on the table", "2 steps in one command"),
    ("pick up all the cups", "several objects in one command"),
    ("grab the red cup and the blue cup", "2 steps in one command"),
])
def test_several_steps_or_objects_are_refused_when_held(pipeline: Pipeline, text: str,
                                                         words: str) -> None:
    session = make_session(pipeline)
    effects = session.command(Command(text, hold=True), 0.0)
    refused = only(effects, Reply).result
    assert refused.status == "rejected" and words in refused.message and refused.goals == []
    assert not any(isinstance(e, Ground) for e in effects)


def test_a_held_look_answered_no_does_not_become_it(pipeline: Pipeline) -> None:
    """The MCP server asks "where is the person?" (held, answered no) before an agent's motion,
    and `ground` / `where` are held looks answered no too.  None of them may change what "it"
    means: after "go to the dog", "go to it" is still the dog - not the person looked at."""
    from photos import load_photo

    from vlm_ros import scenes
    from vlm_ros.core.types import Frame

    rgb = load_photo("person")
    height, width = rgb.shape[:2]
    frame = Frame(rgb=rgb, depth_m=scenes.tabletop_depth(width, height, 0.9, 1.2),
                  intrinsics=scenes.intrinsics_for(width, height), stamp=COFFEE.stamp,
                  frame_id=COFFEE.frame_id)
    session = make_session(pipeline)
    effects = session.command(Command("go to the dog"), 0.0)
    dog = only(ground(session, effects, frame), Reply).result
    assert dog.status == "ok" and dog.targets[0].label == "dog"
    looked = held(session, "where is the person?", frame, now=1.0)
    assert looked.status == "awaiting_confirmation" and looked.targets[0].label == "person"
    assert only(answer(session, "no", frame, now=2.0), Reply).result.goals == []
    again = only(answer(session, "go to it", frame, now=3.0), Reply).result
    assert again.status == "ok" and again.targets[0].label == "dog", again.targets
    # A held command that is confirmed does become "it".
    held(session, "go to the person", frame, now=4.0)
    only(answer(session, "yes", frame, now=5.0), Reply)
    last = only(answer(session, "look at it", frame, now=6.0), Reply).result
    assert last.targets[0].label == "person"
