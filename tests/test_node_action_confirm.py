"""The ~/instruct action under confirm-before-motion, over DDS against the built package: the
question is feedback with yes / no choices; yes succeeds with the goals, no ends the goal refused
with nothing sent."""

from __future__ import annotations

import pytest
from test_node_action import Instruct, _start

from vlm_ros import scenes

pytestmark = pytest.mark.ros

from action_msgs.msg import GoalStatus  # noqa: E402


@pytest.fixture(scope="module")
def confirming():
    graph, executive = _start(["-p", "confirm_before_motion:=true",
                               "-p", "confirm_timeout_s:=20.0"])
    yield graph, executive
    graph.close()


def test_a_confirmation_is_feedback_with_yes_and_no(confirming) -> None:
    graph, executive = confirming
    graph.show(*scenes.coffee())
    run = executive.send("grab the red cup")
    asked = run.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CONFIRMATION)
    assert "I will pick the cup" in asked.question and list(asked.choices) == ["yes", "no"]
    graph.say("yes")
    status, result = run.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.result.message
    assert result.result.goals

    declined = executive.send("grab the red cup")
    declined.wait_for_stage(Instruct.Feedback.STAGE_AWAITING_CONFIRMATION)
    graph.say("no")
    status, result = declined.result()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.outcome == Instruct.Result.OUTCOME_REFUSED
    assert result.result.goals == [] and "cancelled" in result.result.message
