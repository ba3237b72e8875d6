"""Target point in the base frame -> the goal poses a planner needs for each action.

Every goal is expressed in ``GoalConfig.base_frame`` (the frame the target points were transformed
into) and built from finite numbers only: a NaN that reaches a motion planner is a crash at best.
The choices below are deliberately simple, fixed and documented, so a downstream planner can rely
on them instead of second-guessing:

* **grasp** — with a grasp candidate from :mod:`vlm_ros.core.grasp` (the object's points were
  measured): its pose exactly (position, orientation with z = approach, fingers closing along
  y).  Without one: at the object's visible centre (+ ``grasp_height_offset``), approaching from
  above: the gripper's z-axis (approach axis) points straight down, and its x-axis points
  horizontally away from the robot (orientation = yaw(heading robot->object) * roll(pi)), so the
  wrist is not twisted for an object straight ahead.
* **pregrasp** — the candidate's pregrasp (``pregrasp_offset`` back along the approach, above the
  object's top); without one, the grasp pose lifted ``pregrasp_offset`` straight up (above the
  object's top when its height is known).
* **place** — with a place position from :func:`vlm_ros.core.grasp.place_pose` (the middle of a
  container's opening, or the freest spot of a surface's top, ``place_height`` above it): there;
  without one, ``place_height`` above the destination point, when the carried object's height is
  known plus half of it.  Same top-down orientation.
* **navigate** (navigate, follow) — on the floor (z = 0), on the straight XY line from the robot to
  the target, ``standoff_distance`` short of it, facing the target.  If the target is already
  closer than the stand-off, the goal is the robot's own position, turned to face the target:
  driving *backwards* to open the distance is a decision for the navigation stack, not for us.
* **look** (look, find) — at the target point, yaw facing from the robot to the target.
* **stop** — no goals; the node publishes its stop signal separately.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from vlm_ros.core.geometry import (
    Transform,
    quat_from_rpy,
    quat_from_yaw,
    quat_multiply,
    quat_normalize,
)
from vlm_ros.core.grasp import GraspCandidate
from vlm_ros.core.types import Goal, GoalKind, Pose, Vec3


@dataclass
class GoalConfig:
    base_frame: str = "base_link"
    pregrasp_offset: float = 0.10  # m above the grasp, along the approach axis
    grasp_height_offset: float = 0.0  # added to the object's centre height
    place_height: float = 0.05  # m above the destination's top surface / centre
    standoff_distance: float = 0.8  # navigate: stop this far short of the object
    robot_frame: str = "base_link"  # where the robot is (its origin) when computing the stand-off


# Below this horizontal distance (m) the heading robot->target is undefined; yaw 0 is used.
_MIN_HEADING_DISTANCE = 1e-6


def _check_finite(name: str, values: Vec3 | None) -> None:
    if values is None:
        return
    if len(values) != 3:
        raise ValueError(f"{name} must have 3 coordinates, got {len(values)}")
    if not all(math.isfinite(float(v)) for v in values):
        raise ValueError(f"{name} is not finite: {tuple(values)}")


def _heading(source: Vec3, target: Vec3) -> float:
    dx, dy = target[0] - source[0], target[1] - source[1]
    if math.hypot(dx, dy) < _MIN_HEADING_DISTANCE:
        return 0.0
    return math.atan2(dy, dx)


def _top_down(yaw: float) -> tuple[float, float, float, float]:
    """Gripper z down (roll pi), gripper x along ``yaw``."""
    return quat_from_rpy(math.pi, 0.0, yaw)


def _half_height(extent: Vec3 | None) -> float:
    return 0.5 * float(extent[2]) if extent is not None else 0.0


@dataclass(frozen=True)
class _GoalInputs:
    target: Vec3 | None
    destination: Vec3 | None
    config: GoalConfig
    stamp: float
    robot: Vec3
    extent: Vec3 | None
    grasp: GraspCandidate | None = None
    place_position: Vec3 | None = None

    def goal(self, kind: GoalKind, position: Vec3, orientation: tuple[float, ...]) -> Goal:
        pose = Pose(tuple(float(v) for v in position), tuple(float(v) for v in orientation))
        return Goal(kind=kind, frame_id=self.config.base_frame, pose=pose, stamp=self.stamp)

    def need(self, point: Vec3 | None, what: str, action: str) -> Vec3:
        if point is None:
            raise ValueError(f"'{action}' needs a {what} position in '{self.config.base_frame}'")
        return point


def _pick(g: _GoalInputs) -> list[Goal]:
    if g.grasp is not None:
        return [g.goal("grasp", g.grasp.position, g.grasp.orientation),
                g.goal("pregrasp", g.grasp.pregrasp_position, g.grasp.orientation)]
    target = g.need(g.target, "target", "pick")
    orientation = _top_down(_heading(g.robot, target))
    grasp = (target[0], target[1], target[2] + g.config.grasp_height_offset)
    lift = g.config.pregrasp_offset + _half_height(g.extent)
    pregrasp = (grasp[0], grasp[1], grasp[2] + lift)
    return [g.goal("grasp", grasp, orientation), g.goal("pregrasp", pregrasp, orientation)]


def _place(g: _GoalInputs) -> list[Goal]:
    dest = g.need(g.destination, "destination", "place")
    orientation = _top_down(_heading(g.robot, dest))
    if g.place_position is not None:
        return [g.goal("place", g.place_position, orientation)]
    z = dest[2] + g.config.place_height + _half_height(g.extent)
    return [g.goal("place", (dest[0], dest[1], z), orientation)]


def _navigate(g: _GoalInputs) -> list[Goal]:
    target = g.need(g.target, "target", "navigate")
    dx, dy = target[0] - g.robot[0], target[1] - g.robot[1]
    distance = math.hypot(dx, dy)
    yaw = _heading(g.robot, target)
    standoff = g.config.standoff_distance
    if distance > standoff:
        scale = (distance - standoff) / distance
        xy = (g.robot[0] + dx * scale, g.robot[1] + dy * scale)
    else:  # already close enough: stay, turn to face it
        xy = (g.robot[0], g.robot[1])
    return [g.goal("navigate", (xy[0], xy[1], 0.0), quat_from_yaw(yaw))]


def _look(g: _GoalInputs) -> list[Goal]:
    target = g.need(g.target, "target", "look")
    return [g.goal("look", target, quat_from_yaw(_heading(g.robot, target)))]


def _stop(g: _GoalInputs) -> list[Goal]:
    return []


# action -> goal builder.  A new action is one entry here (plus its docstring line above).
GOAL_BUILDERS: dict[str, Callable[[_GoalInputs], list[Goal]]] = {
    "pick": _pick,
    "place": _place,
    "navigate": _navigate,
    "follow": _navigate,
    "look": _look,
    "find": _look,
    "stop": _stop,
    "ask": _stop,  # a question is answered, never acted on
}


def make_goals(
    action: str,
    target_base: Vec3 | None,
    destination_base: Vec3 | None,
    config: GoalConfig,
    stamp: float,
    robot_position: Vec3 = (0.0, 0.0, 0.0),
    target_extent: Vec3 | None = None,
    grasp: GraspCandidate | None = None,
    place_position: Vec3 | None = None,
) -> list[Goal]:
    """Goals for ``action`` from points already in ``config.base_frame``.

    ``robot_position`` is the robot's origin in the base frame (the origin itself when the base
    frame *is* the robot frame).  ``target_extent`` is the target's (x, y, z) size in metres when
    known; only its height is used (pregrasp clearance, place clearance).  ``grasp`` (the best
    candidate of :func:`vlm_ros.core.grasp.synthesize`) and ``place_position`` (from
    :func:`vlm_ros.core.grasp.place_pose`) replace the centroid rules when given.

    Raises ValueError for an unknown action, a missing point the action needs, or any non-finite
    number: the caller turns that into an error status rather than publishing a bad pose.
    """
    builder = GOAL_BUILDERS.get(action)
    if builder is None:
        raise ValueError(f"no goals for action {action!r}; known: {', '.join(GOAL_BUILDERS)}")
    _check_finite("target", target_base)
    _check_finite("destination", destination_base)
    _check_finite("robot_position", robot_position)
    _check_finite("target_extent", target_extent)
    _check_finite("place_position", place_position)
    if grasp is not None:
        _check_finite("grasp position", grasp.position)
        _check_finite("pregrasp position", grasp.pregrasp_position)
        if not all(math.isfinite(float(v)) for v in grasp.orientation):
            raise ValueError(f"grasp orientation is not finite: {grasp.orientation}")
    numbers = (config.pregrasp_offset, config.grasp_height_offset, config.place_height,
               config.standoff_distance, stamp)
    if not all(math.isfinite(float(v)) for v in numbers):
        raise ValueError(f"goal configuration or stamp is not finite: {numbers}")
    if config.standoff_distance < 0:
        raise ValueError(f"standoff_distance must be >= 0, got {config.standoff_distance}")
    inputs = _GoalInputs(
        target=_as_vec3(target_base),
        destination=_as_vec3(destination_base),
        config=config,
        stamp=float(stamp),
        robot=_as_vec3(robot_position) or (0.0, 0.0, 0.0),
        extent=_as_vec3(target_extent),
        grasp=grasp,
        place_position=_as_vec3(place_position),
    )
    return builder(inputs)


def make_view_goal(point: Vec3, camera: Vec3, config: GoalConfig, stamp: float) -> Goal:
    """Where an active search looks next: ``point`` (base frame), faced from ``camera``."""
    _check_finite("view point", point)
    _check_finite("camera", camera)
    inputs = _GoalInputs(target=_as_vec3(point), destination=None, config=config,
                         stamp=float(stamp), robot=_as_vec3(camera) or (0.0, 0.0, 0.0),
                         extent=None)
    return inputs.goal("view", point, quat_from_yaw(_heading(camera, point)))


def _as_vec3(values: Vec3 | None) -> Vec3 | None:
    return None if values is None else (float(values[0]), float(values[1]), float(values[2]))


# --------------------------------------------------------------------------------------------
# Goals in another frame (goal_frame)
# --------------------------------------------------------------------------------------------


def goal_from_camera(base_from_camera: Transform, goal_from_base: Transform) -> Transform:
    """goal_frame <- camera: what tf2 would chain from base <- camera and goal_frame <- base."""
    return goal_from_base.compose(base_from_camera)


def goal_from_base_via_camera(base_from_camera: Transform,
                              goal_from_camera: Transform) -> Transform:
    """goal_frame <- base from goal_frame <- camera (a tf2 lookup from the image frame) and
    base <- camera: goal <- camera <- base."""
    return goal_from_camera.compose(base_from_camera.inverse())


def goals_in_frame(goals: list[Goal], goal_frame: str, goal_from_base: Transform) -> list[Goal]:
    """``goals`` (built and safety-checked in the base frame) re-expressed in ``goal_frame``:
    positions moved and orientations rotated by ``goal_from_base``; kinds and stamps kept."""
    moved = []
    for goal in goals:
        position = goal_from_base.apply(goal.pose.position)
        orientation = quat_normalize(quat_multiply(goal_from_base.rotation,
                                                   goal.pose.orientation))
        if not all(math.isfinite(v) for v in (*position, *orientation)):
            raise ValueError(f"non-finite {goal.kind} goal in {goal_frame}")
        moved.append(Goal(kind=goal.kind, frame_id=goal_frame,
                          pose=Pose(position, orientation), stamp=goal.stamp))
    return moved
