"""The MCP server's reading of the node's results (vlm_ros/agent/actions.py): which result is
about which command, what a held result would move, where a point is from the robot."""

from __future__ import annotations

import pytest

from vlm_ros.agent.actions import _for_command, planned_motion, relative_to_robot


def _said(text: str) -> dict:
    return {"instruction": {"text": text}}


@pytest.mark.parametrize("echo", [
    "grab the red cup",                   # the command, held
    "grab the red cup -> yes",            # confirmed
    "grab the cup -> grab the red cup",   # (as an answer to a question)
    "grab the cup -> grab the red cup -> yes",
])
def test_a_result_is_about_the_command_it_echoes(echo: str) -> None:
    assert _for_command(_said(echo), " grab the red cup ")


@pytest.mark.parametrize("echo", ["grab the red cup please", "grab the cup", "red cup", "",
                                  "grab the blue cup -> yes"])
def test_another_commands_result_is_not(echo: str) -> None:
    assert not _for_command(_said(echo), "grab the red cup")


def test_a_long_command_is_matched_on_what_the_node_keeps() -> None:
    command = "grab the red cup " + "x" * 250
    assert _for_command(_said(command[:200]), command)


def test_a_place_is_judged_where_it_puts_the_object() -> None:
    held = {"instruction": {"action": "place"},
            "targets": [{"label": "mug", "color": "red", "point_base": [0.5, 0.0, 0.8]}],
            "destination": {"label": "bowl", "color": "blue", "point_base": [0.6, 0.2, 0.78]}}
    motion = planned_motion(held, "base_link")
    assert (motion.action, motion.label, motion.point) == ("place", "blue bowl", (0.6, 0.2, 0.78))
    pick = planned_motion({"instruction": {"action": "pick"}, "targets": [
        {"label": "mug", "point_base": None}]}, "base_link")
    assert pick.label == "mug" and pick.point is None  # no position: the bounds deny it


def test_bearing_follows_rep_103() -> None:
    assert relative_to_robot([1.0, 1.0, 0.0], "base_link")["said"].endswith(
        "to the left (45 degrees)")
    assert "to the right" in relative_to_robot([1.0, -0.5, 0.0], "base_link")["said"]
    assert "ahead" in relative_to_robot([1.0, 0.05, 0.0], "base_link")["said"]


@pytest.mark.ros
def test_a_persons_repeated_answer_is_acknowledged_and_nothing_else() -> None:
    """A `ros2 service call` whose reply DDS dropped is made again: the same answer is
    acknowledged ("approved (already)"), the other one is not taken, and a new request
    starts afresh."""
    import rclpy
    from std_srvs.srv import SetBool

    from vlm_ros.agent.bridge import AgentBridge

    def call(bridge: AgentBridge, yes: bool) -> SetBool.Response:
        return bridge._on_approve(SetBool.Request(data=yes), SetBool.Response())

    rclpy.init()
    try:
        bridge = AgentBridge()
        try:
            assert not call(bridge, True).success  # nothing waits
            waiting = bridge.ask_person("navigate the red cup", ("approve every navigate",))
            first = call(bridge, True)
            assert first.success and first.message == "approved: navigate the red cup"
            assert waiting.decided.is_set() and waiting.approved
            bridge.settle(waiting)
            again = call(bridge, True)
            assert again.success and again.message == "approved (already): navigate the red cup"
            other = call(bridge, False)
            assert not other.success and other.message == "nothing waits for approval"
            assert waiting.approved  # the first answer stands
            fresh = bridge.ask_person("navigate the bowl", ())
            assert call(bridge, False).success and fresh.approved is False
        finally:
            bridge.destroy_node()
    finally:
        rclpy.shutdown()
