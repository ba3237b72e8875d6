"""Typed values that flow through vlm_ros, and the one JSON result schema.

Data flows one way: Frame + text -> Instruction -> Candidates -> Target -> 3D point -> Goals ->
GroundingResult.  Every stage is a plain function over these dataclasses; nothing here imports ROS.
``GroundingResult.to_dict()`` is the schema printed by ``vlm-ros ground --json`` and published on the
node's ``~/result`` topic, and ``msg/GroundingResult.msg`` mirrors it field for field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from vlm_ros.core.mask_rle import mask_rle

Action = Literal["pick", "place", "navigate", "look", "find", "follow", "stop", "ask"]
ACTIONS: tuple[str, ...] = ("pick", "place", "navigate", "look", "find", "follow", "stop", "ask")
# Actions that never move the robot: a stop, a question about the image ("is there a dog?").
MOTIONLESS_ACTIONS: frozenset[str] = frozenset({"stop", "ask"})
# What an "ask" step asks: is there one, how many, what colour.
QuestionKind = Literal["presence", "count", "color"]

Status = Literal["ok", "not_found", "ambiguous", "rejected", "error", "awaiting_confirmation",
                 "searching"]
STATUSES: tuple[str, ...] = ("ok", "not_found", "ambiguous", "rejected", "error",
                             "awaiting_confirmation",
                             "searching")

Language = Literal["en", "zh"]

BBox = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the input image
Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]  # x, y, z, w


def _mask_rle(mask: np.ndarray | None) -> dict[str, Any] | None:
    return None if mask is None or mask.ndim != 2 else mask_rle(mask)


def _round(value: float | None, ndigits: int = 4) -> float | None:
    return None if value is None else round(float(value), ndigits)


# --------------------------------------------------------------------------------------------
# Sensor side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a rectified image (sensor_msgs/CameraInfo K)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def is_valid(self) -> bool:
        return (
            np.isfinite([self.fx, self.fy, self.cx, self.cy]).all()
            and self.fx > 0
            and self.fy > 0
            and self.width > 0
            and self.height > 0
        )

    def scaled_to(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics for the same camera at another resolution (e.g. depth at half size)."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height
        )


@dataclass
class Frame:
    """One synchronised camera observation.

    ``rgb`` is HxWx3 uint8 in RGB order.  ``depth_m`` is HxW float32 metres aligned to ``rgb``
    (registered depth), with NaN where the sensor had no return; None when there is no depth.
    ``stamp`` is seconds (sim or wall time, whatever the node's clock says).
    """

    rgb: np.ndarray
    depth_m: np.ndarray | None = None
    intrinsics: CameraIntrinsics | None = None
    stamp: float = 0.0
    frame_id: str = "camera_color_optical_frame"

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


# --------------------------------------------------------------------------------------------
# Language side
# --------------------------------------------------------------------------------------------


@dataclass
class ObjectQuery:
    """A referring expression: "the second red cup from the left", "the person in the blue jacket".

    ``noun`` is the head noun in English canonical form ("cup", "person"); the backend's vocabulary
    maps it to detector labels.  ``color`` applies to the whole object unless ``color_part`` says
    which part ("upper" body for jackets/shirts, "lower" for trousers, "head" for hats).
    ``location`` is a unary selector among the matching objects; ``relation`` + ``anchor`` relate
    the object to a second grounded object; ``ordinal`` counts from ``ordinal_from``.
    """

    noun: str | None = None
    text: str = ""
    color: str | None = None
    color_part: str | None = None  # None (whole object) | "upper" | "lower" | "head"
    size: str | None = None  # "large" | "small"
    location: str | None = None  # left|right|middle|top|bottom|nearest|farthest
    ordinal: int | None = None  # 1-based; -1 means "last"
    ordinal_from: str | None = None  # left|right|top|bottom|near|far
    relation: str | None = None  # next_to|left_of|right_of|above|below|in_front_of|behind|on|in
    anchor: ObjectQuery | None = None
    attributes: list[str] = field(default_factory=list)  # words kept for open-vocab backends
    # Referents the target must not be: "not the red one", "anything except the truck".
    exclusions: list[ObjectQuery] = field(default_factory=list)
    # Several objects: "all the cups" / "every cup" / "所有的杯子" ("all"), "both cups" ("both").
    quantity: Literal["all", "both"] | None = None
    # One of several objects planned together: the one nearest this base-frame point (m).
    near_point: Vec3 | None = None

    def is_empty(self) -> bool:
        return self.noun is None and not self.has_constraints()

    def has_constraints(self) -> bool:
        return bool(self.exclusions) or any(
            v is not None
            for v in (self.color, self.size, self.location, self.ordinal, self.relation)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "noun": self.noun,
            "text": self.text,
            "color": self.color,
            "color_part": self.color_part,
            "size": self.size,
            "location": self.location,
            "ordinal": self.ordinal,
            "ordinal_from": self.ordinal_from,
            "relation": self.relation,
            "anchor": self.anchor.to_dict() if self.anchor else None,
            "attributes": list(self.attributes),
            "exclusions": [e.to_dict() for e in self.exclusions],
            "quantity": self.quantity,
            "near_point": [round(float(v), 4) for v in self.near_point]
            if self.near_point is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ObjectQuery | None:
        if data is None:
            return None
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["anchor"] = cls.from_dict(data.get("anchor"))
        kwargs["attributes"] = list(data.get("attributes") or [])
        kwargs["exclusions"] = [e for e in (cls.from_dict(x) for x in data.get("exclusions") or [])
                                if e is not None]
        near = data.get("near_point")
        kwargs["near_point"] = tuple(float(v) for v in near) if near is not None else None
        return cls(**kwargs)


@dataclass
class Instruction:
    """A parsed command.  ``action`` is None only for a follow-up answer ("the left one")."""

    text: str
    language: Language = "en"
    action: Action | None = None
    target: ObjectQuery | None = None
    destination: ObjectQuery | None = None
    destination_relation: str | None = None  # "in" | "on" for place
    is_followup: bool = False
    error: str | None = None  # why the text could not be understood (status "rejected")
    question: QuestionKind | None = None  # for action "ask": what is asked about the target
    # The target is one the robot saw before ("where did you see …", "go back to …", "the cup
    # you saw"): answered from the object memory, not from the current image.
    recall: bool = False
    # A pick's approach wish ("from above" / "从上面"): only grasps approaching from above.
    grasp_approach: Literal["top"] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "language": self.language,
            "action": self.action,
            "question": self.question,
            "recall": self.recall,
            "grasp_approach": self.grasp_approach,
            "target": self.target.to_dict() if self.target else None,
            "destination": self.destination.to_dict() if self.destination else None,
            "destination_relation": self.destination_relation,
            "is_followup": self.is_followup,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instruction:
        return cls(
            text=data.get("text", ""),
            language=data.get("language", "en"),
            action=data.get("action"),
            target=ObjectQuery.from_dict(data.get("target")),
            destination=ObjectQuery.from_dict(data.get("destination")),
            destination_relation=data.get("destination_relation"),
            is_followup=bool(data.get("is_followup", False)),
            error=data.get("error"),
            question=data.get("question"),
            recall=bool(data.get("recall", False)),
            grasp_approach=data.get("grasp_approach"),
        )


# --------------------------------------------------------------------------------------------
# Vision side
# --------------------------------------------------------------------------------------------


@dataclass
class Detection:
    """What a backend returns: one box with a label from the backend's vocabulary."""

    label: str
    score: float
    bbox: BBox
    phrase: str | None = None  # the query phrase this box answers (open-vocabulary backends)
    mask: np.ndarray | None = None  # HxW bool, when the backend segments


@dataclass
class Candidate:
    """A detection annotated by attribute reasoning and geometry.

    ``match`` is the 0..1 agreement with the query's attributes (colour, size, location ...), and
    ``reasons`` says in words why (shown in the result JSON so users can debug a choice).
    """

    id: int
    label: str
    score: float
    bbox: BBox
    color: str | None = None  # dominant colour name of the object's own pixels
    color_fraction: float | None = None  # share of object pixels that have the queried colour
    match: float = 1.0
    reasons: list[str] = field(default_factory=list)
    depth_m: float | None = None  # robust depth of the object along the optical axis
    width_m: float | None = None  # box width back-projected at depth_m (m): the object's extent
    point_camera: Vec3 | None = None  # 3D centre in the camera optical frame (m)
    point_base: Vec3 | None = None  # 3D centre in the base frame (m), when resolvable
    mask: np.ndarray | None = None  # HxW bool (backend's, or measured from depth); JSON as RLE
    # The width the gripper must span for the best grasp (vlm_ros.core.grasp), when measured;
    # the safety gate judges this rather than the box's width.
    grasp_width_m: float | None = None
    # The object's measured points in the base frame (at most ~2000; with the assumed hidden
    # back when one was added), for RViz; not serialised.
    points_base: np.ndarray | None = None

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.bbox
        return (0.5 * (x1 + x2), 0.5 * (y1 + y2))

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.bbox
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "score": _round(self.score),
            "bbox": [round(float(v), 1) for v in self.bbox],
            "color": self.color,
            "color_fraction": _round(self.color_fraction, 3),
            "match": _round(self.match, 3),
            "reasons": list(self.reasons),
            "depth_m": _round(self.depth_m),
            "width_m": _round(self.width_m),
            "point_camera": [_round(v) for v in self.point_camera] if self.point_camera else None,
            "point_base": [_round(v) for v in self.point_base] if self.point_base else None,
            "grasp_width_m": _round(self.grasp_width_m),
            "mask": _mask_rle(self.mask),
        }


# --------------------------------------------------------------------------------------------
# Goals
# --------------------------------------------------------------------------------------------


@dataclass
class Pose:
    position: Vec3
    orientation: Quat = (0.0, 0.0, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": [_round(v) for v in self.position],
            "orientation": [_round(v, 6) for v in self.orientation],
        }


# "view": where an active search turns the camera next (~/look_at), not an object's place.
GoalKind = Literal["grasp", "pregrasp", "place", "navigate", "look", "stop", "view"]


@dataclass
class Goal:
    """A pose for a downstream planner (the node's outputs map ``kind`` to its topic)."""

    kind: GoalKind
    frame_id: str
    pose: Pose
    stamp: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "frame_id": self.frame_id, "stamp": self.stamp,
                "pose": self.pose.to_dict()}


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclass
class GroundingResult:
    """The one result schema (CLI JSON == ~/result topic == msg/GroundingResult.msg)."""

    status: Status
    instruction: Instruction | None = None
    targets: list[Candidate] = field(default_factory=list)
    destination: Candidate | None = None
    candidates: list[Candidate] = field(default_factory=list)
    clarification: str | None = None
    # The answers a clarification offers ("the one on the left", or "yes" / "no"), to show as
    # buttons; each can be sent back as the answer.
    choices: list[str] = field(default_factory=list)
    message: str = ""
    goals: list[Goal] = field(default_factory=list)
    frame_id: str = ""
    stamp: float = 0.0
    image_size: tuple[int, int] | None = None  # (width, height)
    timing_ms: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    # A command of several steps: all of them, and which one (1-based) this result answers.
    steps: list[Instruction] = field(default_factory=list)
    step: int = 0
    # Why the robot will not act although the command asks for motion (no 3D point, no
    # calibration, a refusal); "" when it will, or when the command asks for none (stop, a
    # question).  ``will_act`` says it in one bit: status ok and goals to send.
    no_goal_reason: str = ""
    # A pick's grasp candidates (vlm_ros.core.grasp.GraspCandidate), best first: the best one
    # is the grasp goal.  Empty when no grasp was measured (no depth, not a pick).
    grasps: list[Any] = field(default_factory=list)

    @property
    def will_act(self) -> bool:
        """Will the robot move on this answer?  Only an ``ok`` with goals makes it move - or a
        search turning the camera to its next view (status ``searching``)."""
        return self.status in ("ok", "searching") and bool(self.goals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "instruction": self.instruction.to_dict() if self.instruction else None,
            "targets": [c.to_dict() for c in self.targets],
            "destination": self.destination.to_dict() if self.destination else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "clarification": self.clarification,
            "choices": list(self.choices),
            "goals": [g.to_dict() for g in self.goals],
            "frame_id": self.frame_id,
            "stamp": self.stamp,
            "image_size": list(self.image_size) if self.image_size else None,
            "backend": self.backend,
            "timing_ms": {k: round(float(v), 2) for k, v in self.timing_ms.items()},
            "steps": [s.to_dict() for s in self.steps],
            "step": self.step,
            "will_act": self.will_act,
            "no_goal_reason": self.no_goal_reason,
            "grasps": [g.to_dict() for g in self.grasps],
        }
