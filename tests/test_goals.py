"""Goal synthesis: positions and orientations checked against geometry worked out by hand."""

from __future__ import annotations

import math

import pytest

from vlm_ros.core.geometry import Transform, yaw_from_quat
from vlm_ros.core.goals import GOAL_BUILDERS, GoalConfig, make_goals
from vlm_ros.core.types import ACTIONS, Goal

CONFIG = GoalConfig()


def axis(goal: Goal, which: int) -> tuple[float, float, float]:
    """The goal frame's x (0), y (1) or z (2) axis expressed in the base frame."""
    unit = [0.0, 0.0, 0.0]
    unit[which] = 1.0
    return Transform((0.0, 0.0, 0.0), goal.pose.orientation).apply(tuple(unit))


def by_kind(goals: list[Goal]) -> dict[str, Goal]:
    return {g.kind: g for g in goals}


def test_every_action_has_a_goal_builder():
    assert set(ACTIONS) == set(GOAL_BUILDERS)


def test_pick_grasps_from_above_with_pregrasp_straight_up():
    goals = by_kind(make_goals("pick", (0.6, 0.2, 0.75), None, CONFIG, stamp=12.5))
    assert set(goals) == {"grasp", "pregrasp"}
    grasp, pre = goals["grasp"], goals["pregrasp"]
    assert grasp.pose.position == pytest.approx((0.6, 0.2, 0.75))
    assert pre.pose.position == pytest.approx((0.6, 0.2, 0.85))
    assert axis(grasp, 2) == pytest.approx((0.0, 0.0, -1.0), abs=1e-12)  # approach axis down
    heading = math.atan2(0.2, 0.6)
    assert axis(grasp, 0) == pytest.approx((math.cos(heading), math.sin(heading), 0.0), abs=1e-12)
    assert pre.pose.orientation == grasp.pose.orientation
    for goal in (grasp, pre):
        assert goal.frame_id == "base_link" and goal.stamp == 12.5


def test_pick_offsets_and_object_height():
    config = GoalConfig(base_frame="map", pregrasp_offset=0.15, grasp_height_offset=-0.02)
    goals = by_kind(make_goals("pick", (1.0, 0.0, 0.5), None, config, 0.0,
                               target_extent=(0.08, 0.08, 0.12)))
    assert goals["grasp"].pose.position == pytest.approx((1.0, 0.0, 0.48))
    assert goals["pregrasp"].pose.position == pytest.approx((1.0, 0.0, 0.48 + 0.06 + 0.15))
    assert goals["grasp"].frame_id == "map"


def test_place_above_destination_top_down():
    goals = make_goals("place", (0.5, 0.0, 0.8), (0.4, -0.3, 0.72), CONFIG, 1.0)
    assert [g.kind for g in goals] == ["place"]
    assert goals[0].pose.position == pytest.approx((0.4, -0.3, 0.77))
    assert axis(goals[0], 2) == pytest.approx((0.0, 0.0, -1.0), abs=1e-12)
    held = make_goals("place", None, (0.4, -0.3, 0.72), CONFIG, 1.0, target_extent=(0, 0, 0.1))
    assert held[0].pose.position[2] == pytest.approx(0.72 + 0.05 + 0.05)


def test_navigate_stops_standoff_short_facing_the_target():
    goals = make_goals("navigate", (3.0, 4.0, 0.5), None, CONFIG, 2.0)
    assert [g.kind for g in goals] == ["navigate"]
    x, y, z = goals[0].pose.position
    assert (x, y, z) == pytest.approx((3.0 * 4.2 / 5.0, 4.0 * 4.2 / 5.0, 0.0))
    assert math.hypot(3.0 - x, 4.0 - y) == pytest.approx(0.8)
    assert yaw_from_quat(goals[0].pose.orientation) == pytest.approx(math.atan2(4.0, 3.0))


def test_navigate_from_a_robot_position_in_the_map():
    config = GoalConfig(base_frame="map", standoff_distance=1.0)
    goals = make_goals("follow", (-2.0, 5.0, 1.7), None, config, 0.0, robot_position=(-2.0, 1.0, 0))
    assert goals[0].pose.position == pytest.approx((-2.0, 4.0, 0.0))
    assert yaw_from_quat(goals[0].pose.orientation) == pytest.approx(math.pi / 2)


def test_navigate_to_a_target_inside_the_standoff_turns_in_place():
    goals = make_goals("navigate", (-0.3, -0.4, 0.2), None, CONFIG, 0.0)
    assert goals[0].pose.position == pytest.approx((0.0, 0.0, 0.0))
    assert yaw_from_quat(goals[0].pose.orientation) == pytest.approx(math.atan2(-0.4, -0.3))


def test_look_and_find_face_the_target():
    for action in ("look", "find"):
        goals = make_goals(action, (1.0, -1.0, 1.2), None, CONFIG, 0.0)
        assert [g.kind for g in goals] == ["look"]
        assert goals[0].pose.position == pytest.approx((1.0, -1.0, 1.2))
        assert yaw_from_quat(goals[0].pose.orientation) == pytest.approx(-math.pi / 4)


def test_stop_has_no_goals():
    assert make_goals("stop", None, None, CONFIG, 0.0) == []


@pytest.mark.parametrize(
    "action, target, destination, kwargs",
    [
        ("pick", (float("nan"), 0.0, 0.5), None, {}),
        ("place", (0.5, 0.0, 0.5), (0.4, float("inf"), 0.7), {}),
        ("navigate", (2.0, 0.0, 0.0), None, {"robot_position": (0.0, float("nan"), 0.0)}),
        ("pick", (0.5, 0.0, 0.5), None, {"target_extent": (0.1, 0.1, float("nan"))}),
        ("look", (0.5, 0.0, 0.5), None, {"stamp": float("nan")}),
    ],
)
def test_non_finite_input_raises(action, target, destination, kwargs):
    stamp = kwargs.pop("stamp", 0.0)
    with pytest.raises(ValueError, match="finite"):
        make_goals(action, target, destination, CONFIG, stamp, **kwargs)


def test_non_finite_config_raises():
    with pytest.raises(ValueError, match="finite"):
        make_goals("pick", (0.5, 0.0, 0.5), None, GoalConfig(pregrasp_offset=math.inf), 0.0)


def test_missing_points_and_unknown_actions_raise():
    with pytest.raises(ValueError, match="target"):
        make_goals("pick", None, None, CONFIG, 0.0)
    with pytest.raises(ValueError, match="destination"):
        make_goals("place", (0.5, 0.0, 0.5), None, CONFIG, 0.0)
    with pytest.raises(ValueError, match="no goals for action"):
        make_goals("dance", (0.5, 0.0, 0.5), None, CONFIG, 0.0)
    with pytest.raises(ValueError, match="3 coordinates"):
        make_goals("look", (0.5, 0.0), None, CONFIG, 0.0)


def test_all_goals_are_finite_and_unit_quaternions():
    for action in ACTIONS:
        for goal in make_goals(action, (0.7, -0.2, 0.4), (0.3, 0.3, 0.6), CONFIG, 5.0):
            values = (*goal.pose.position, *goal.pose.orientation)
            assert all(math.isfinite(v) for v in values)
            assert sum(q * q for q in goal.pose.orientation) == pytest.approx(1.0)
            assert goal.kind in {"grasp", "pregrasp", "place", "navigate", "look"}
