"""The approval policy: which motions an LLM agent may start alone, which need a person's yes.

It protects against an agent that asks for the wrong thing: a forbidden action, a target outside
the workspace or too far away, a burst of goals, a motion near a person nobody approved.  It does
not replace the node's own safety gate (confidence, stale frames, keep-out zones) nor an e-stop:
it only sees the planned motion the server describes, and refuses what it cannot check.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

MOTION_ACTIONS: tuple[str, ...] = ("pick", "place", "navigate", "look", "find", "follow")
BOUNDED_ACTIONS: tuple[str, ...] = ("pick", "place", "navigate", "look")  # they have a 3D point
WORKSPACE_ACTIONS: tuple[str, ...] = ("pick", "place")  # the arm's box; a drive or look goes beyond
RATE_WINDOW_S = 60.0
_EPS = 1e-9  # 0.2 + 0.1 is 0.30000000000000004: a point on the shrunk edge still passes


class Verdict(str, enum.Enum):
    ALLOW = "allow"
    APPROVE = "approve"
    DENY = "deny"


class PolicyError(ValueError):
    """A policy file that cannot be used; the message starts with "<source> line N: "."""


@dataclass(frozen=True)
class Bounds:
    frame: str = "base_link"
    workspace_min: tuple[float, float, float] | None = None
    workspace_max: tuple[float, float, float] | None = None
    max_distance_m: float | None = None  # horizontal (x, y) distance from the frame's origin
    max_goals_per_minute: int | None = None
    # The node re-grounds on "yes" and moves only if the target moved <= its confirm_max_shift_m
    # (0.10 m by default), so the bounds are checked this much inside.
    margin_m: float = 0.10


@dataclass(frozen=True)
class Policy:
    actions: Mapping[str, Verdict]
    bounds: Bounds
    near_person_m: float | None = None
    approval_timeout_s: float = 60.0
    source: str = "<default>"
    lines: Mapping[str, int] = field(default_factory=dict)  # "actions.pick" -> line in the file


@dataclass(frozen=True)
class PlannedMotion:
    action: str
    label: str
    point: tuple[float, float, float] | None  # None: the target's position is unknown
    frame: str


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]  # the denials first, then what needs approval

    @property
    def text(self) -> str:
        if self.verdict is Verdict.ALLOW:
            return "allowed"
        prefix = "denied" if self.verdict is Verdict.DENY else "needs approval"
        return f"{prefix}: " + "; ".join(self.reasons)


STRICT_POLICY = Policy(actions=MappingProxyType({a: Verdict.APPROVE for a in MOTION_ACTIONS}),
                       bounds=Bounds(), source="<built-in strict policy>")

# --- Reading the file -------------------------------------------------------------------------

_TOP_KEYS = ("version", "actions", "approve_when", "approval", "bounds")
_BOUNDS_KEYS = ("frame", "workspace", "max_distance_m", "max_goals_per_minute", "margin_m")
_TAG = "tag:yaml.org,2002:"
_SCALARS = yaml.constructor.SafeConstructor()  # only its stateless int / float converters


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return f"a list of {len(node.value)}"
    tag = node.tag.removeprefix(_TAG)
    names = {"str": "string", "bool": "boolean", "int": "number", "float": "number"}
    return "nothing (null)" if tag == "null" else f"the {names.get(tag, tag)} {node.value!r}"


class _Reader:
    """Walks the composed YAML nodes, so that every error can name the line it comes from."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}

    def error(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(f"{self.source} line {node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, path: str, known: Sequence[str],
                what: str = "key") -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{path or 'the policy'} must be a mapping, got {_kind(node)}")
        values: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if key_node.tag == _TAG + "str" else None
            if key not in known:
                where = f" in {path}" if path and what == "key" else ""
                name = repr(key_node.value) if key is not None else _kind(key_node)
                raise self.error(key_node, f"unknown {what} {name}{where} "
                                           f"(known: {', '.join(known)})")
            if key in values:
                raise self.error(key_node, f"duplicate key {key!r}")
            values[key] = value_node
            self.lines[f"{path}.{key}" if path else key] = key_node.start_mark.line + 1
        return values

    def number(self, node: yaml.Node, name: str, *, integer: bool = False,
               low: float = -math.inf, low_ok: bool = False, high: float = math.inf) -> float:
        """A number in (low, high] ([low, high] with low_ok); quoted strings and booleans are
        refused, since a YAML typo should not silently become a limit."""
        tags = (_TAG + "int",) if integer else (_TAG + "int", _TAG + "float")
        if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
            wanted = "a whole number" if integer else "a number"
            raise self.error(node, f"{name} must be {wanted}, got {_kind(node)}")
        convert = _SCALARS.construct_yaml_int if node.tag == _TAG + "int" else \
            _SCALARS.construct_yaml_float
        value = convert(node)
        if not math.isfinite(value):
            raise self.error(node, f"{name} must be a finite number, got {node.value}")
        if not (value >= low if low_ok else value > low) or value > high:
            limits = [f"{'>=' if low_ok else '>'} {low:g}"] if low > -math.inf else []
            limits += [f"<= {high:g}"] if high < math.inf else []
            raise self.error(node, f"{name} must be {' and '.join(limits)}, got {value:g}")
        return value

    def verdict(self, node: yaml.Node, action: str) -> Verdict:
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "bool":
            raise self.error(node, f"{action}: {node.value!r} reads as a YAML boolean; "
                                   "write allow, approve or deny")
        if node.tag != _TAG + "str" or node.value not in {"allow", "approve", "deny"}:
            raise self.error(node, f"{action}: expected allow, approve or deny, got {_kind(node)}")
        return Verdict(node.value)

    def point(self, node: yaml.Node, name: str) -> tuple[float, float, float]:
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != 3:
            raise self.error(node, f"{name} must be a list of 3 numbers [x, y, z], "
                                   f"got {_kind(node)}")
        x, y, z = (float(self.number(item, name)) for item in node.value)
        return (x, y, z)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """The policy in ``text``; a :class:`PolicyError` naming the line for anything it can't use."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        words = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        problem = ", ".join(word for word in words if word) or exc
        raise PolicyError(f"{source}{line}: YAML syntax error: {problem}") from None
    if root is None:
        raise PolicyError(f"{source}: the policy is empty (it needs version: 1 and actions)")
    reader = _Reader(source)
    top = reader.mapping(root, "", _TOP_KEYS)
    if "version" not in top:
        raise reader.error(root, "missing 'version: 1'")
    if reader.number(top["version"], "version", integer=True) != 1:
        raise reader.error(top["version"], f"version must be 1, got {top['version'].value}")

    actions = dict.fromkeys(MOTION_ACTIONS, Verdict.DENY)  # an action not listed is denied
    if "actions" in top:
        listed = reader.mapping(top["actions"], "actions", MOTION_ACTIONS, what="action")
        actions.update({name: reader.verdict(node, name) for name, node in listed.items()})
    near_person_m = None
    if "approve_when" in top:
        when = reader.mapping(top["approve_when"], "approve_when", ("near_person_m",))
        if "near_person_m" in when:
            near_person_m = float(reader.number(when["near_person_m"], "near_person_m", low=0))
    timeout_s = 60.0
    if "approval" in top:
        approval = reader.mapping(top["approval"], "approval", ("timeout_s",))
        if "timeout_s" in approval:
            timeout_s = float(reader.number(approval["timeout_s"], "timeout_s", low=0, high=3600))
    bounds = _bounds(reader, top["bounds"]) if "bounds" in top else Bounds()
    return Policy(actions=MappingProxyType(actions), bounds=bounds, near_person_m=near_person_m,
                  approval_timeout_s=timeout_s, source=source,
                  lines=MappingProxyType(reader.lines))


def _bounds(reader: _Reader, node: yaml.Node) -> Bounds:
    given = reader.mapping(node, "bounds", _BOUNDS_KEYS)
    frame = "base_link"
    if "frame" in given:
        frame_node = given["frame"]
        if frame_node.tag != _TAG + "str" or not str(frame_node.value).strip():
            raise reader.error(frame_node, f"frame must be a frame name, got {_kind(frame_node)}")
        frame = frame_node.value.strip()
    margin = 0.10
    if "margin_m" in given:
        margin = float(reader.number(given["margin_m"], "margin_m", low=0, low_ok=True))
    low = high = None
    if "workspace" in given:
        box = reader.mapping(given["workspace"], "bounds.workspace", ("min", "max"))
        if "min" not in box or "max" not in box:
            raise reader.error(given["workspace"], "workspace needs both min and max")
        low, high = reader.point(box["min"], "min"), reader.point(box["max"], "max")
        for axis, lo, hi in zip("xyz", low, high):
            if lo >= hi:
                raise reader.error(box["min"], f"workspace min {axis} {lo:g} is not below "
                                               f"max {axis} {hi:g}")
            if hi - lo <= 2 * margin:  # nothing could ever pass: surely a mistake
                raise reader.error(box["min"], f"workspace is only {hi - lo:g} m wide on {axis}, "
                                               f"not more than twice margin_m {margin:g}")
    max_distance = None
    if "max_distance_m" in given:
        max_distance = float(reader.number(given["max_distance_m"], "max_distance_m", low=0))
        if max_distance <= margin:  # checked margin_m inside: nothing could ever pass
            raise reader.error(given["max_distance_m"], f"max_distance_m {max_distance:g} is not "
                                                        f"more than margin_m {margin:g}")
    rate = None
    if "max_goals_per_minute" in given:
        rate = int(reader.number(given["max_goals_per_minute"], "max_goals_per_minute",
                                 integer=True, low=1, low_ok=True))
    return Bounds(frame=frame, workspace_min=low, workspace_max=high, max_distance_m=max_distance,
                  max_goals_per_minute=rate, margin_m=margin)


def load_policy(path: str | os.PathLike) -> Policy:
    """The policy in the file at ``path``; its messages name the file by its base name."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file {os.fspath(path)}: {exc}") from None
    return parse_policy(text, source=os.path.basename(os.fspath(path)))


# --- Deciding ---------------------------------------------------------------------------------

def _where(policy: Policy, key: str) -> str:
    line = policy.lines.get(key)
    return f"{policy.source} line {line}" if line is not None else policy.source


def _finite(point: Sequence[float] | None) -> bool:
    return point is not None and all(math.isfinite(v) for v in point)


def _bound_reasons(policy: Policy, motion: PlannedMotion, what: str) -> list[str]:
    """Denials from the workspace box and the distance limit; never a guessed transform."""
    bounds, margin, point = policy.bounds, policy.bounds.margin_m, motion.point
    use_box = motion.action in WORKSPACE_ACTIONS and bounds.workspace_min is not None
    use_distance = motion.action in BOUNDED_ACTIONS and bounds.max_distance_m is not None
    if not (use_box or use_distance):
        return []
    if point is None or not _finite(point):  # a NaN from a bad depth reading is no position
        return [f"{what}: no 3D position to check against the bounds"]
    if motion.frame != bounds.frame:
        return [f"{what}: the position is in frame {motion.frame!r}, the bounds in "
                f"{bounds.frame!r} ({_where(policy, 'bounds.frame')}); it is not transformed"]
    reasons = []
    if use_box and bounds.workspace_min is not None and bounds.workspace_max is not None:
        for axis, value, low, high in zip("xyz", point, bounds.workspace_min, bounds.workspace_max):
            lo, hi = low + margin, high - margin
            if not lo - _EPS <= value <= hi + _EPS:
                reasons.append(f"{what}: {axis} {value:.2f} m is outside the workspace ({lo:.2f} "
                               f".. {hi:.2f} m with the {margin:.2f} m margin; "
                               f"{_where(policy, 'bounds.workspace')})")
    if use_distance and bounds.max_distance_m is not None:
        reach, distance = bounds.max_distance_m - margin, math.hypot(point[0], point[1])
        if distance > reach + _EPS:
            reasons.append(f"{what}: {distance:.2f} m away, farther than {reach:.2f} m "
                           f"(max_distance_m {bounds.max_distance_m} less the {margin:.2f} m "
                           f"margin; {_where(policy, 'bounds.max_distance_m')})")
    return reasons


def _person_reason(policy: Policy, motion: PlannedMotion,
                   persons: Sequence[tuple[float, float, float]] | None) -> str | None:
    """Why a person must approve because someone is (or may be) near the target, or None."""
    if policy.near_person_m is None or motion.action not in BOUNDED_ACTIONS:
        return None
    unsure = f"cannot tell whether a person is near the {motion.label or 'target'}"
    if persons is None:
        return f"{unsure} (the node could not look for people)"
    if motion.point is None or not _finite(motion.point):
        return f"{unsure} (its 3D position is unknown)"
    if not all(_finite(person) for person in persons):
        return f"{unsure} (a person's position is unknown)"
    nearest = min((math.dist(motion.point, person) for person in persons), default=math.inf)
    if nearest > policy.near_person_m:
        return None
    return (f"{motion.action} near a person ({nearest:.2f} m from it; near_person_m "
            f"{policy.near_person_m}, {_where(policy, 'approve_when.near_person_m')})")


def decide(policy: Policy, motion: PlannedMotion, *,
           persons: Sequence[tuple[float, float, float]] | None,
           recent_goals: Sequence[float], now: float) -> Decision:
    """Whether ``motion`` may start now.  ``persons``: the people seen, in ``motion.frame`` (None:
    nobody could look for people); ``recent_goals``: when earlier motions were started."""
    action = motion.action
    if action not in MOTION_ACTIONS:
        return Decision(Verdict.DENY, (f"unknown action {action!r} "
                                       f"(known: {', '.join(MOTION_ACTIONS)})",))
    what = f"{action} the {motion.label}" if motion.label else action
    verdict = policy.actions.get(action, Verdict.DENY)
    deny: list[str] = []
    if verdict is Verdict.DENY:
        listed = f"actions.{action}" in policy.lines
        note = "" if listed or not policy.lines else "not listed under actions; "
        deny.append(f"{action} is not allowed "
                    f"({note}{_where(policy, f'actions.{action}' if listed else 'actions')})")
    deny += _bound_reasons(policy, motion, what)
    limit = policy.bounds.max_goals_per_minute
    if limit is not None:
        window = sorted(t for t in recent_goals if now - RATE_WINDOW_S < t <= now)
        if len(window) >= limit:
            # The next goal fits once enough of the oldest ones have left the window.
            wait = window[len(window) - limit] + RATE_WINDOW_S - now
            deny.append(f"goal rate: {len(window)} goals in the last {RATE_WINDOW_S:.0f} s "
                        f"(max {limit}, {_where(policy, 'bounds.max_goals_per_minute')}); "
                        f"the next is possible in {wait:.1f} s")
    approve = [reason for reason in [_person_reason(policy, motion, persons)] if reason]
    if verdict is Verdict.APPROVE:
        approve.append(f"the policy asks a person to approve every {action} "
                       f"({_where(policy, f'actions.{action}')})")
    if deny:
        return Decision(Verdict.DENY, tuple(deny + approve))
    return Decision(Verdict.APPROVE, tuple(approve)) if approve else Decision(Verdict.ALLOW, ())


def describe_policy(policy: Policy) -> dict:
    """A JSON-able summary of ``policy`` for the server's status resource."""
    bounds = policy.bounds
    workspace = None
    if bounds.workspace_min is not None and bounds.workspace_max is not None:
        workspace = {"min": list(bounds.workspace_min), "max": list(bounds.workspace_max)}
    return {
        "source": policy.source,
        "actions": {name: policy.actions.get(name, Verdict.DENY).value for name in MOTION_ACTIONS},
        "bounds": {"frame": bounds.frame, "workspace": workspace,
                   "max_distance_m": bounds.max_distance_m,
                   "max_goals_per_minute": bounds.max_goals_per_minute,
                   "margin_m": bounds.margin_m},
        "near_person_m": policy.near_person_m,
        "approval_timeout_s": policy.approval_timeout_s,
    }
