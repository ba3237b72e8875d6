"""Answers from the object memory, and the active search: the parts of the dialogue that look
beyond the current image (issue #21).  ROS-free; the command session calls them.

* :func:`recall` picks the remembered object a command means ("where did you see the red cup?",
  "go back to the banana", "the cup you saw on the table"): by noun, colour, the side it was on,
  the nearest, or where it stood relative to another remembered object.  Two that fit equally
  are a question, as in the image; a word it cannot judge from memory is named.  Whether a
  remembered object may become a goal (its age, whether the camera should see it now) is
  :func:`goal_problem`.
* :class:`SearchRun` is an active search: a fixed sequence of views (look points around the
  camera, ``SearchConfig``), each grounded once the robot reports it is looking there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from vlm_ros.core.memory import ObjectMemory, RememberedObject, View
from vlm_ros.core.types import Instruction, ObjectQuery, Vec3

RecallKind = Literal["none", "one", "ambiguous", "refused"]
# Relations a remembered object can be judged by: its position against the anchor's.
_NEAR_RELATIONS = frozenset({"on", "near", "next_to", "beside", "by", "in"})
_NEAR_M = 0.5  # "near" / "on" a remembered anchor: within this (or the anchor's half width)
SKIP_DEG = 15.0  # a search view this close to the view just grounded is not looked at again


@dataclass
class Recalled:
    """What memory says about a command's object."""

    kind: RecallKind
    message: str
    chosen: RememberedObject | None = None
    matches: list[RememberedObject] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)


def _name(query: ObjectQuery) -> str:
    what = query.noun or "object"
    return f"{query.color} {what}" if query.color else what


def recall(memory: ObjectMemory, query: ObjectQuery, now: float) -> Recalled:
    """The remembered object ``query`` describes (see the module docstring)."""
    unjudged = [name for name, value in (("size", query.size), ("ordinal", query.ordinal),
                                          ("clothing", query.color_part))
                if value is not None]
    if unjudged or query.exclusions or query.attributes:
        words = query.attributes or unjudged or ["an exclusion"]
        return Recalled("refused", f"I can't judge '{words[0]}' for an object I only remember; "
                                   f"say its name and colour, or where it was")
    matches = memory.find(ObjectQuery(noun=query.noun, color=query.color), now)
    if query.relation is not None:
        if query.relation not in _NEAR_RELATIONS or query.anchor is None:
            return Recalled("refused", f"I can't judge '{query.relation.replace('_', ' ')}' "
                                       f"for an object I only remember")
        anchors = memory.find(query.anchor, now)
        matches = [m for m in matches if any(_beside(m, a, query.relation) for a in anchors)]
    if not matches:
        return Recalled("none", f"I haven't seen {_article(_name(query))}"
                                f"{' there' if query.relation else ''}")
    if query.location is not None:
        matches = _by_location(matches, query.location)
        if not matches:
            return Recalled("refused", f"I can't judge '{query.location}' for an object I only "
                                       f"remember")
    if len(matches) > 1:
        return _ask_which(matches, query, now, memory.frame_id)
    return Recalled("one", matches[0].describe(now, memory.frame_id), matches[0], matches)


def _article(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _beside(obj: RememberedObject, anchor: RememberedObject, relation: str) -> bool:
    reach = max(_NEAR_M, 0.5 * (anchor.width_m or 0.0))
    close = math.dist(obj.position[:2], anchor.position[:2]) <= reach
    if relation == "on":
        return close and obj.position[2] >= anchor.position[2] - 0.05
    return close


def _by_location(matches: list[RememberedObject], location: str) -> list[RememberedObject]:
    """Left / right (base frame +y is left), nearest / farthest (from the base origin)."""
    if location in ("left", "leftmost"):
        return [max(matches, key=lambda m: m.position[1])]
    if location in ("right", "rightmost"):
        return [min(matches, key=lambda m: m.position[1])]
    if location in ("nearest", "closest", "near"):
        return [min(matches, key=lambda m: math.hypot(*m.position[:2]))]
    if location in ("farthest", "far"):
        return [max(matches, key=lambda m: math.hypot(*m.position[:2]))]
    return []


def _ask_which(matches: list[RememberedObject], query: ObjectQuery, now: float,
               frame_id: str) -> Recalled:
    """Several remembered objects fit: ask which, by the side they were on."""
    ordered = sorted(matches, key=lambda m: -m.position[1])  # left to right
    choices = (["the one on the left", "the one on the right"] if len(ordered) == 2 else
               ["the one on the left", "the nearest one", "the one on the right"])
    seen = "; ".join(m.describe(now, frame_id) for m in ordered)
    return Recalled("ambiguous", f"I remember {len(matches)} {_name(query)}s: {seen}", None,
                    ordered, choices)


def goal_problem(obj: RememberedObject, now: float, max_age_s: float,
                 view: View | None, in_view: bool) -> str | None:
    """Why a remembered object must not become a goal now, or None: the sighting is older than
    ``max_age_s``, or the camera should see it now and does not (it was moved)."""
    age = obj.age(now)
    if age > max_age_s:
        return (f"the {obj.label} was last seen {age:.0f} s ago, longer ago than "
                f"memory_max_age_s ({max_age_s:g} s): say 'find the {obj.label}' to look again")
    if view is not None and in_view:
        return (f"the {obj.label} should be in view where I saw it, but I don't see it there now "
                f"(it may have been moved): not going by memory")
    return None


# ------------------------------------------------------------------------- active search
@dataclass(frozen=True)
class SearchConfig:
    """Where an active search looks: points around the camera, one view each, in order."""

    enabled: bool = True
    yaws_deg: tuple[float, ...] = (0.0, 40.0, -40.0, 80.0, -80.0)  # headings in base_frame
    distance_m: float = 1.0  # the look point's distance from the camera, horizontally
    height_m: float = 0.75  # the look point's height in base_frame (a table top)
    view_timeout_s: float = 20.0  # the robot must report each view done within this

    def points(self, camera: Vec3, skip_heading: float | None = None) -> list[Vec3]:
        """The look points, in order; those within ``SKIP_DEG`` of ``skip_heading`` (rad: the
        view just grounded) are left out."""
        def away(yaw: float) -> bool:
            if skip_heading is None:
                return True
            off = (math.radians(yaw) - skip_heading + math.pi) % (2 * math.pi) - math.pi
            return abs(math.degrees(off)) > SKIP_DEG
        return [(camera[0] + self.distance_m * math.cos(math.radians(yaw)),
                 camera[1] + self.distance_m * math.sin(math.radians(yaw)), self.height_m)
                for yaw in self.yaws_deg if away(yaw)]


@dataclass
class SearchRun:
    """An active search for ``instruction``'s object; ``index`` is the view being looked at.
    ``command`` is the command it answers (the session's Command)."""

    instruction: Instruction
    command: Any
    points: list[Vec3]
    camera: Vec3 = (0.0, 0.0, 0.0)
    index: int = 0
    deadline: float | None = None  # while the robot turns to view ``index``
    seen: list[str] = field(default_factory=list)  # what each view showed instead

    @property
    def done(self) -> bool:
        return self.index >= len(self.points)

    def label(self) -> str:
        return f"view {self.index + 1} of {len(self.points)}"
