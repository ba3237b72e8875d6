"""The safety gate: the one check every answer passes before it may say ``ok``, and every goal
before any publisher may send it.

Grounding says *what* the user meant; the gate decides whether the robot may act on it now.
It refuses (never clips or "fixes") a goal that is outside the manipulation workspace, too far to
drive, inside a keep-out zone, too close to a person or an animal it approaches, grounded with
too little confidence, computed from a stale frame (older than ``max_frame_age_s``), or for an
action that is not allowed.  Every refusal names its reason; it becomes ``status: "rejected"``.
(A frame older than the command never gets here: the node grounds a command only on a frame
that arrived after it.)

What may be picked up and what may hold a placed object (:mod:`vlm_ros.core.graspable`) is
judged with the command, whether or not a goal exists: :func:`instruction_problem` before the
model runs ("pick up the person"), :func:`check` on every ``ok`` answer (the chosen object's
label, its measured width) - so an uncalibrated robot never answers ``ok`` to "grab the dog".
Navigate / follow / look / find stay allowed for people, animals and large things.

Who calls it: the command session (:mod:`vlm_ros.core.session`) on every result it answers with
- the one path the CLI, the node's topic, ~/ground and ~/instruct share - and the node's outputs
again where goals leave (the frame's age at that moment, ``goal_frame``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vlm_ros.core.graspable import (
    ANIMAL,
    PERSON,
    WHY_NOT_A_DESTINATION,
    WHY_NOT_GRASPED,
    category_of,
    destination_category,
)
from vlm_ros.core.types import (
    ACTIONS,
    MOTIONLESS_ACTIONS,
    Candidate,
    Goal,
    GroundingResult,
    Instruction,
    ObjectQuery,
)
from vlm_ros.core.vocabulary import normalize_noun

MANIPULATION_KINDS = frozenset({"grasp", "pregrasp", "place"})
GRASP_KINDS = frozenset({"grasp", "pregrasp"})
NAVIGATION_KINDS = frozenset({"navigate"})


@dataclass
class SafetyConfig:
    # Manipulation goals (grasp / pregrasp / place) must lie in this base-frame box (m).
    workspace_min: tuple[float, float, float] = (-0.2, -1.0, -0.2)
    workspace_max: tuple[float, float, float] = (1.2, 1.0, 1.8)
    # Navigation goals: at most this far from the robot (m), never inside a keep-out zone
    # (x_min, y_min, x_max, y_max) rectangles in the base frame.
    max_nav_distance: float = 10.0
    keepout_zones: list[tuple[float, float, float, float]] = field(default_factory=list)
    min_confidence: float = 0.3  # detector score of the chosen target
    max_frame_age_s: float = 2.0  # frame older than this at decision time -> refuse
    allowed_actions: frozenset[str] = frozenset(ACTIONS)
    # Grasp goals for an object measured wider than this (Candidate.width_m) are refused (m).
    max_grasp_width_m: float = 0.15
    # Labels / nouns added to (never_grasp) or taken out of (may_grasp) the table of things
    # that are never picked up (vlm_ros/core/graspable.py).
    never_grasp: frozenset[str] = frozenset()
    may_grasp: frozenset[str] = frozenset()
    # A navigate / follow goal toward a person or an animal stops at least this far from it (m).
    min_person_standoff_m: float = 0.8

    def __post_init__(self) -> None:
        # Compared with normalised labels and nouns ("Chairs" -> "chair").
        self.never_grasp = frozenset(normalize_noun(w) for w in self.never_grasp if w.strip())
        self.may_grasp = frozenset(normalize_noun(w) for w in self.may_grasp if w.strip())


@dataclass
class GateDecision:
    allowed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def _inside(point: tuple[float, ...], low: tuple[float, ...], high: tuple[float, ...]) -> bool:
    return all(lo <= v <= hi for v, lo, hi in zip(point, low, high, strict=True))


def _goal_problem(goal: Goal, config: SafetyConfig) -> str | None:
    x, y, z = goal.pose.position
    if not all(math.isfinite(v) for v in (*goal.pose.position, *goal.pose.orientation)):
        return f"{goal.kind} goal is not finite"
    if goal.kind in MANIPULATION_KINDS and not _inside((x, y, z), config.workspace_min,
                                                       config.workspace_max):
        return (f"{goal.kind} goal ({x:.2f}, {y:.2f}, {z:.2f}) m is outside the workspace "
                f"{config.workspace_min}..{config.workspace_max}")
    if goal.kind in NAVIGATION_KINDS:
        distance = math.hypot(x, y)
        if distance > config.max_nav_distance:
            return (f"navigation goal {distance:.1f} m away exceeds max_nav_distance "
                    f"{config.max_nav_distance} m")
        for x0, y0, x1, y1 in config.keepout_zones:
            if x0 <= x <= x1 and y0 <= y <= y1:
                return f"navigation goal ({x:.2f}, {y:.2f}) is inside keep-out zone " \
                       f"({x0}, {y0}, {x1}, {y1})"
    return None


def _grasp_category(name: str | None, config: SafetyConfig) -> str | None:
    return category_of(name, config.never_grasp, config.may_grasp)


def _held(candidate: Candidate | None, query: ObjectQuery | None,
          config: SafetyConfig) -> tuple[str, str] | None:
    """(category, name) of what would be picked up - its label, else the noun the user said."""
    for name in (candidate.label if candidate else None, query.noun if query else None):
        category = _grasp_category(name, config)
        if category is not None and name:
            return category, name
    return None


def _destination(candidate: Candidate | None,
                 query: ObjectQuery | None) -> tuple[str, str] | None:
    """(category, name) of a destination nothing may be put on or in."""
    for name in (candidate.label if candidate else None, query.noun if query else None):
        category = destination_category(name)
        if category is not None and name:
            return category, name
    return None


def _wont_pick(name: str, category: str) -> str:
    return f"I won't pick up the {name}: {WHY_NOT_GRASPED[category]}"


def _wont_place(name: str, category: str, relation: str | None) -> str:
    relation = relation or "on"
    if category in (PERSON, ANIMAL):
        return (f"I won't put anything {relation} the {name}: nothing is ever put {relation} "
                f"a{'n' if category == ANIMAL else ''} {category}")
    return f"I won't put anything {relation} the {name}: {WHY_NOT_A_DESTINATION[category]}"


def instruction_problem(instruction: Instruction, config: SafetyConfig) -> str | None:
    """Why a parsed step may not be carried out whatever the camera sees ("pick up the person",
    "put the cup on the dog"), or None.  Judged before the model runs."""
    action = instruction.action
    if action in ("pick", "place"):
        held = _held(None, instruction.target, config)
        if held is not None:
            return _wont_pick(held[1], held[0])
    if action == "place":
        where = _destination(None, instruction.destination)
        if where is not None:
            return _wont_place(where[1], where[0], instruction.destination_relation)
    return None


def affordance_problems(result: GroundingResult, config: SafetyConfig) -> list[str]:
    """Why an answer for a pick / place may not say ``ok``: the object chosen cannot be picked
    up (its category, or its width once 3D is known), or the destination cannot hold it.
    Judged with or without goals."""
    instruction = result.instruction
    action = instruction.action if instruction else None
    target = result.targets[0] if result.targets else None
    problems: list[str] = []
    if action in ("pick", "place") or {g.kind for g in result.goals} & MANIPULATION_KINDS:
        # Picking it up, or placing it (it was picked up): never a person, animal or large thing.
        held = _held(target, instruction.target if instruction else None, config)
        if held is not None:
            problems.append(_wont_pick(held[1], held[0]))
    # The grasp's own width when the object's points were measured (a lying bottle is long
    # but narrow across its grasp), else the box's width.
    width = None if target is None else (
        target.grasp_width_m if target.grasp_width_m is not None else target.width_m)
    if (action == "pick" or {g.kind for g in result.goals} & GRASP_KINDS) and width is not None \
            and width > config.max_grasp_width_m:
        measure = ("needs a {:.2f} m wide grasp" if target.grasp_width_m is not None
                   else "is {:.2f} m wide").format(width)
        problems.append(f"too wide to grasp: the {target.label or 'target'} {measure}; "
                        f"max_grasp_width_m is {config.max_grasp_width_m:.2f} m")
    if action == "place" or "place" in {g.kind for g in result.goals}:
        where = _destination(result.destination, instruction.destination if instruction else None)
        if where is not None:
            problems.append(_wont_place(where[1], where[0],
                                        instruction.destination_relation if instruction else None))
    return problems


def _standoff_problem(result: GroundingResult, config: SafetyConfig) -> str | None:
    """A navigate / follow goal must stay ``min_person_standoff_m`` from a person or an animal
    (a goal at the robot's own position - turn to face it - moves nothing toward it)."""
    target = result.targets[0] if result.targets else None
    if target is None or target.point_base is None:
        return None
    if category_of(target.label) not in (PERSON, ANIMAL):
        return None
    for goal in result.goals:
        if goal.kind not in NAVIGATION_KINDS:
            continue
        x, y, _z = goal.pose.position
        if math.hypot(x, y) < 1e-6:
            continue
        gap = math.hypot(target.point_base[0] - x, target.point_base[1] - y)
        if gap < config.min_person_standoff_m - 1e-3:  # the goal builder's own standoff: equal
            return (f"navigation goal {gap:.2f} m from the {target.label} is closer than "
                    f"min_person_standoff_m {config.min_person_standoff_m:.2f} m")
    return None


def check(result: GroundingResult, config: SafetyConfig, now: float) -> GateDecision:
    """May ``result`` say ``ok``, and may its goals be sent?  ``now`` is on the clock of
    ``result.stamp`` (the frame's stamp).  Answers that are not ``ok`` pass as they are."""
    reasons: list[str] = []
    if result.status != "ok" and not result.goals:
        return GateDecision(True, reasons)
    action = result.instruction.action if result.instruction else None
    if action is not None and action not in config.allowed_actions \
            and action not in MOTIONLESS_ACTIONS:  # a stop or a question moves nothing
        reasons.append(f"action '{action}' is not allowed here")
    reasons.extend(affordance_problems(result, config))
    if not result.goals:
        return GateDecision(not reasons, reasons)
    if result.targets and result.targets[0].score < config.min_confidence:
        reasons.append(f"grounding confidence {result.targets[0].score:.2f} is below "
                       f"min_confidence {config.min_confidence}")
    age = now - result.stamp
    if age > config.max_frame_age_s:
        reasons.append(f"frame is {age:.2f} s old (max_frame_age {config.max_frame_age_s} s)")
    reasons.extend(p for p in (_goal_problem(g, config) for g in result.goals) if p)
    standoff = _standoff_problem(result, config)
    if standoff:
        reasons.append(standoff)
    return GateDecision(not reasons, reasons)


def apply(result: GroundingResult, decision: GateDecision) -> GroundingResult:
    """Turn a refusal into the result users see: status rejected, the reason, no goals."""
    if not decision.allowed:
        result.status = "rejected"
        result.message = f"refused by the safety gate: {decision.reason}"
        result.goals = []
        result.no_goal_reason = result.message
    return result


def judge(result: GroundingResult, config: SafetyConfig, now: float) -> GroundingResult:
    """:func:`check` and :func:`apply` in one: the result as it may be answered."""
    return apply(result, check(result, config, now))
