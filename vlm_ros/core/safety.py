"""The safety gate: the one check every goal passes before any publisher may send it.

Grounding says *what* the user meant; the gate decides whether the robot may act on it now.
It refuses (never clips or "fixes") a goal that is outside the manipulation workspace, too far to
drive, inside a keep-out zone, grounded with too little confidence, computed from a stale frame
(older than ``max_frame_age_s``), or for an action that is not allowed.  Every refusal names its
reason; the node turns it into ``status: "rejected"`` on ~/result.  (A frame older than the
command never gets here: the node grounds a command only on a frame that arrived after it.)

What may be picked up (:mod:`vlm_ros.core.graspable`): grasp goals are refused for a person or
an animal (never grasped) and for a vehicle, furniture or another large thing (too large), and
for an object measured wider than ``max_grasp_width_m``; place goals are refused when the
destination is a person or an animal, or when the object to be placed is one of those refused
categories.  Navigate / follow / look / find goals are not affected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vlm_ros.core.graspable import NEVER_A_DESTINATION, WHY_NOT_GRASPED, category_of
from vlm_ros.core.types import ACTIONS, Candidate, Goal, GroundingResult, ObjectQuery

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


def _category(candidate: Candidate | None, query: ObjectQuery | None) -> tuple[str, str] | None:
    """(category, name) of what was grounded - its label, else the noun the user said."""
    for name in (candidate.label if candidate else None, query.noun if query else None):
        category = category_of(name)
        if category is not None and name:
            return category, name
    return None


def _manipulation_problems(result: GroundingResult, config: SafetyConfig) -> list[str]:
    """Why the grasp / place goals in ``result`` must not be sent: what may be picked up."""
    kinds = {g.kind for g in result.goals}
    instruction = result.instruction
    target = result.targets[0] if result.targets else None
    problems: list[str] = []
    if kinds & MANIPULATION_KINDS:
        # Picking it up, or placing it (it was picked up): never a person, animal or large thing.
        held = _category(target, instruction.target if instruction else None)
        if held is not None:
            category, name = held
            problems.append(f"I won't pick up the {name}: {WHY_NOT_GRASPED[category]}")
    if kinds & GRASP_KINDS and target is not None and target.width_m is not None \
            and target.width_m > config.max_grasp_width_m:
        problems.append(f"too wide to grasp: the {target.label or 'target'} is "
                        f"{target.width_m:.2f} m wide; max_grasp_width_m is "
                        f"{config.max_grasp_width_m:.2f} m")
    if "place" in kinds:
        where = _category(result.destination, instruction.destination if instruction else None)
        if where is not None and where[0] in NEVER_A_DESTINATION:
            category, name = where
            relation = (instruction.destination_relation if instruction else None) or "on"
            problems.append(f"I won't put anything {relation} the {name}: nothing is ever put "
                            f"{relation} a{'n' if category == 'animal' else ''} {category}")
    return problems


def check(result: GroundingResult, config: SafetyConfig, now: float) -> GateDecision:
    """May the goals in ``result`` be sent?  ``now`` is on the clock of ``result.stamp`` (the
    frame's stamp)."""
    reasons: list[str] = []
    action = result.instruction.action if result.instruction else None
    if action is not None and action not in config.allowed_actions:
        reasons.append(f"action '{action}' is not allowed here")
    if not result.goals:
        return GateDecision(not reasons, reasons)
    if result.targets and result.targets[0].score < config.min_confidence:
        reasons.append(f"grounding confidence {result.targets[0].score:.2f} is below "
                       f"min_confidence {config.min_confidence}")
    age = now - result.stamp
    if age > config.max_frame_age_s:
        reasons.append(f"frame is {age:.2f} s old (max_frame_age {config.max_frame_age_s} s)")
    reasons.extend(_manipulation_problems(result, config))
    reasons.extend(p for p in (_goal_problem(g, config) for g in result.goals) if p)
    return GateDecision(not reasons, reasons)


def apply(result: GroundingResult, decision: GateDecision) -> GroundingResult:
    """Turn a refusal into the result users see: status rejected, the reason, no goals."""
    if not decision.allowed:
        result.status = "rejected"
        result.message = f"refused by the safety gate: {decision.reason}"
        result.goals = []
    return result
