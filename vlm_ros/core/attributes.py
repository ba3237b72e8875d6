"""Attribute and relation reasoning over grounding candidates: colour, size, location, ordinals
and relations to an anchor object.

Why pure functions over ``Candidate`` lists: the grounding decision (``grounding.py``) only needs to
know, per constraint, *how well* each candidate agrees and *why*; keeping the measuring here makes
every rule testable with hand-built boxes and no model.  Each kind of constraint is driven by one
table, so a new word is one entry:

* ``ORDERS``: what "leftmost", "2nd from the right", "nearest", "largest" sort by.
* ``LOCATION_ORDERS`` / ``SIZE_ORDERS`` / ``ORDINAL_ORDERS``: query words -> an ``ORDERS`` key.
* ``RELATIONS``: how "next to", "left of", "in front of", "on", "in" score a (target, anchor) pair.

Depth makes near/far and sizes physical; without it every measure falls back to a monocular proxy
(lower in the image = nearer, box area = size) and the reason string says so, because a user
debugging a choice must know whether it was measured or guessed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vlm_ros.core.color import (
    RELATED_COLORS,
    RELATED_CREDIT,
    ColorProfile,
    color_match,
    normalize_color,
)
from vlm_ros.core.geometry import backproject, robust_depth
from vlm_ros.core.types import BBox, CameraIntrinsics, Candidate, Frame

# Two positions closer than this many pixels (or this share of the image width, whichever is
# larger) are a tie: "the leftmost cup" between two boxes 2 px apart is a question, not a choice.
TIE_PIXELS = 3.0
TIE_IMAGE_FRACTION = 0.005
# Sizes and depths closer than this relative difference are a tie.
TIE_RELATIVE = 0.03
TIE_DEPTH_M = 0.02

# A directional relation ("left of") holds when the centre-to-centre direction is within ~70
# degrees of the named direction (cosine >= 0.35): objects on a table are rarely exactly level.
MIN_DIRECTION_COSINE = 0.35
# "on": the target must overlap the anchor horizontally by at least this share of its width.
MIN_ON_OVERLAP = 0.5
# "in": at least this share of the target box must lie inside the anchor box.
MIN_IN_CONTAINMENT = 0.5
# Proximity falls by 1/e every this many object sizes of centre distance.
PROXIMITY_SCALE = 2.0
# A colour must cover at least this share of an object's pixels to be named for it at all, even
# when neighbouring colours make up the rest of the evidence (a reddish-orange mug is "red").
MIN_OWN_SHARE = 0.05


# --------------------------------------------------------------------------------------------
# The scene: what a measure needs besides the boxes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """Image size and camera model (intrinsics scaled to the RGB image, None when unusable)."""

    width: int
    height: int
    intrinsics: CameraIntrinsics | None = None

    @classmethod
    def from_frame(cls, frame: Frame) -> Scene:
        intrinsics = frame.intrinsics
        if intrinsics is not None and not intrinsics.is_valid():
            intrinsics = None
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (
            frame.width, frame.height
        ):
            intrinsics = intrinsics.scaled_to(frame.width, frame.height)
        return cls(frame.width, frame.height, intrinsics)

    @property
    def pixel_tolerance(self) -> float:
        return max(TIE_PIXELS, TIE_IMAGE_FRACTION * self.width)


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def box_problem(bbox: Sequence[float], score: float, width: int, height: int) -> str | None:
    """Why a detection cannot be a candidate (NaN, zero area, outside the image), or None."""
    if len(bbox) != 4:
        return f"box has {len(bbox)} numbers, not 4"
    if not all(math.isfinite(float(v)) for v in bbox):
        return "box has non-finite coordinates"
    if not math.isfinite(float(score)):
        return "score is not a number"
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if x2 - x1 < 1.0 or y2 - y1 < 1.0:
        return "box has zero area"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return "box lies outside the image"
    return None


def clip_box(bbox: Sequence[float], width: int, height: int) -> BBox:
    """``bbox`` clipped to the image, so centres and areas describe the visible part."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two x1y1x2y2 boxes (0 for degenerate boxes)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_depth(frame: Frame, bbox: BBox, mask: np.ndarray | None = None) -> float | None:
    """Robust depth (m) of the object in ``bbox`` (RGB pixels), or None without usable depth.

    Delegates to ``geometry.robust_depth`` (central window, nearest dominant mode) after scaling the
    box into the depth image, which may have another resolution than the RGB image.
    """
    depth = frame.depth_m
    if depth is None or depth.ndim != 2:
        return None
    sx, sy = depth.shape[1] / frame.width, depth.shape[0] / frame.height
    depth_box = (bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy)
    use_mask = mask if mask is not None and mask.shape == depth.shape and mask.any() else None
    return robust_depth(depth, depth_box, use_mask)


def fill_depths(candidates: Sequence[Candidate], frame: Frame) -> None:
    """Set ``depth_m`` on candidates that lack it, when the frame has depth."""
    if frame.depth_m is None:
        return
    for cand in candidates:
        if cand.depth_m is None:
            cand.depth_m = box_depth(frame, cand.bbox, cand.mask)


def _all_have_depth(candidates: Sequence[Candidate]) -> bool:
    return bool(candidates) and all(
        c.depth_m is not None and math.isfinite(c.depth_m) and c.depth_m > 0 for c in candidates
    )


def ordinal_word(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th"."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColorVerdict:
    """Whether an object "is <colour>": ranking agreement 0..1, own-colour share, and why.

    ``agreement`` of a failing object is at most its own-colour share, so it never looks like a
    match in the reported candidates.
    """

    agreement: float
    fraction: float
    passes: bool
    reason: str


def judge_color(
    profile: ColorProfile, color: str, min_fraction: float, min_match: float
) -> ColorVerdict:
    """Judge one object's colour profile against the queried colour.

    Evidence is ``color.color_match`` (which gives half credit to neighbouring names: a
    red-and-orange mug is still "the red mug").  It passes when that evidence reaches
    ``min_match`` *and* the colour itself is really there: dominant, or ``min_fraction`` of the
    pixels, or at least ``MIN_OWN_SHARE`` with neighbours making up the rest.  A pink cup with no
    red pixel at all is not "the red cup"; a blue cup never is.

    ``agreement`` ranks the passing objects: the evidence, discounted by up to half by the share
    of it that came from neighbouring colours, so an exactly red cup clearly beats a reddish-orange
    one.  ``min_fraction`` only matters when it is below ``MIN_OWN_SHARE``.
    """
    name = normalize_color(color) or color
    fraction = profile.fraction(name)
    evidence = color_match(profile, name)
    is_dominant = profile.dominant == name
    neighbours = RELATED_CREDIT * sum(profile.fraction(n) for n in RELATED_COLORS.get(name, ()))
    exact = 1.0 if is_dominant else fraction / max(fraction + neighbours, 1e-9)
    agreement = evidence * (0.5 + 0.5 * exact)
    really_there = is_dominant or fraction >= min(min_fraction, MIN_OWN_SHARE)
    passes = evidence >= min_match and really_there
    if not passes:
        agreement = min(agreement, fraction)
    looks = "" if passes or profile.dominant is None else f", looks {profile.dominant}"
    reason = f"{name} {agreement:.2f} ({fraction:.0%} of pixels{looks})"
    return ColorVerdict(agreement, fraction, passes, reason)


# --------------------------------------------------------------------------------------------
# Measures and orders (location, size, ordinal)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Values of one measure for a candidate list, the tie tolerance, and a note on how measured."""

    values: list[float]
    tolerance: float
    note: str = ""  # e.g. "no depth: lower in image = nearer"


def _measure_x(cands: Sequence[Candidate], scene: Scene) -> Measured:
    return Measured([c.center[0] for c in cands], scene.pixel_tolerance)


def _measure_y(cands: Sequence[Candidate], scene: Scene) -> Measured:
    return Measured([c.center[1] for c in cands], scene.pixel_tolerance)


def _measure_centrality(cands: Sequence[Candidate], scene: Scene) -> Measured:
    """Horizontal distance to the middle of the group ("the middle cup" of three)."""
    xs = [c.center[0] for c in cands]
    middle = 0.5 * (min(xs) + max(xs))
    return Measured([abs(x - middle) for x in xs], scene.pixel_tolerance)


def _measure_depth(cands: Sequence[Candidate], scene: Scene) -> Measured:
    """Depth when every candidate has it; else the box bottom as a ground-plane proxy."""
    if _all_have_depth(cands):
        values = [float(c.depth_m) for c in cands]  # type: ignore[arg-type]
        return Measured(values, max(TIE_DEPTH_M, TIE_RELATIVE * min(values)))
    # Monocular proxy: on a floor or table, a nearer object's base is lower in the image.
    return Measured([-c.bbox[3] for c in cands], scene.pixel_tolerance,
                    "no depth: lower in image = nearer")


def _measure_size(cands: Sequence[Candidate], scene: Scene) -> Measured:
    """Box area, times depth squared when depth exists (physical size ~ pixels x distance^2)."""
    if _all_have_depth(cands):
        values = [c.area * float(c.depth_m) ** 2 for c in cands]  # type: ignore[operator]
        note = "area x depth^2"
    else:
        values = [c.area for c in cands]
        note = "box area"
    return Measured(values, TIE_RELATIVE * max(values, default=0.0), note)


MEASURES: dict[str, Callable[[Sequence[Candidate], Scene], Measured]] = {
    "x": _measure_x,
    "y": _measure_y,
    "centrality": _measure_centrality,
    "depth": _measure_depth,
    "size": _measure_size,
}


@dataclass(frozen=True)
class Order:
    """A sort behind a selector word: which measure, which end comes first, how to say it."""

    measure: str  # key of MEASURES
    descending: bool
    superlative: str  # "leftmost": the first in this order
    counted: str  # "from the left": how the n-th is said


ORDERS: dict[str, Order] = {
    "left": Order("x", False, "leftmost", "from the left"),
    "right": Order("x", True, "rightmost", "from the right"),
    "top": Order("y", False, "topmost", "from the top"),
    "bottom": Order("y", True, "bottommost", "from the bottom"),
    "near": Order("depth", False, "nearest", "from the front"),
    "far": Order("depth", True, "farthest", "from the back"),
    "middle": Order("centrality", False, "middle", "from the middle"),
    "large": Order("size", True, "largest", "by size"),
    "small": Order("size", False, "smallest", "by size"),
}

# ObjectQuery.location -> ORDERS key
LOCATION_ORDERS: dict[str, str] = {
    "left": "left", "right": "right", "top": "top", "bottom": "bottom", "middle": "middle",
    "center": "middle", "centre": "middle", "nearest": "near", "near": "near",
    "farthest": "far", "far": "far",
}
# ObjectQuery.size -> ORDERS key
SIZE_ORDERS: dict[str, str] = {"large": "large", "big": "large", "small": "small"}
# ObjectQuery.ordinal_from -> ORDERS key (None counts from the left, as people read)
ORDINAL_ORDERS: dict[str | None, str] = {
    None: "left", "left": "left", "right": "right", "top": "top", "bottom": "bottom",
    "near": "near", "nearest": "near", "front": "near", "far": "far", "farthest": "far",
    "back": "far",
}


@dataclass
class Selection:
    """The outcome of a selector: the chosen candidate(s) and a reason for every candidate.

    ``chosen`` holds more than one candidate only when they tie on the measure (within a few
    pixels, or 3 % in size/depth); the decision then asks which one is meant.
    """

    chosen: list[Candidate]
    ordered: list[Candidate]
    reasons: dict[int, str]
    note: str = ""


def rank(cands: Sequence[Candidate], order_name: str, scene: Scene) -> tuple[
    list[Candidate], list[float], Measured
]:
    """Candidates sorted by ``ORDERS[order_name]`` (first = the superlative), with their values.

    The values are oriented so that smaller comes first; ties keep detector order (stable sort).
    """
    order = ORDERS[order_name]
    measured = MEASURES[order.measure](cands, scene)
    sign = -1.0 if order.descending else 1.0
    pairs = sorted(zip(cands, measured.values, strict=True), key=lambda p: sign * p[1])
    return [p[0] for p in pairs], [sign * p[1] for p in pairs], measured


def select_nth(
    cands: Sequence[Candidate], order_name: str, scene: Scene, ordinal: int = 1
) -> Selection | None:
    """The ``ordinal``-th candidate (1-based, -1 = last) in ``order_name``; None if out of range.

    ``ordinal=1`` is the superlative ("leftmost", "largest", "nearest").  Candidates within the
    tie tolerance of the chosen one's value are chosen too.
    """
    if not cands:
        return None
    n = len(cands)
    index = n - 1 if ordinal == -1 else ordinal - 1
    if not 0 <= index < n:
        return None
    order = ORDERS[order_name]
    ordered, values, measured = rank(cands, order_name, scene)
    pivot = values[index]
    chosen = [c for c, v in zip(ordered, values, strict=True)
              if abs(v - pivot) <= measured.tolerance]
    note = f", {measured.note}" if measured.note else ""
    reasons: dict[int, str] = {}
    for position, cand in enumerate(ordered, start=1):
        if position == 1:
            words = order.superlative
        elif position == n and ordinal == -1:
            words = f"last counted {order.counted}"
        else:
            words = f"{ordinal_word(position)} {order.counted}"
        reasons[cand.id] = f"{words} of {n}{note}"
    return Selection(chosen, ordered, reasons, measured.note)


# --------------------------------------------------------------------------------------------
# Relations to an anchor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """How a relation word scores a (target, anchor) pair.

    ``direction`` is the image-plane unit vector from anchor to target (x right, y down) for
    left/right/above/below; ``depth_sign`` is -1 when the target must be nearer than the anchor
    (in front of) and +1 when farther (behind); ``kind`` picks the scoring rule.
    """

    phrase: str
    kind: str  # "proximity" | "direction" | "depth" | "on" | "in"
    direction: tuple[float, float] = (0.0, 0.0)
    depth_sign: int = 0


RELATIONS: dict[str, Relation] = {
    "next_to": Relation("next to", "proximity"),
    "left_of": Relation("left of", "direction", (-1.0, 0.0)),
    "right_of": Relation("right of", "direction", (1.0, 0.0)),
    "above": Relation("above", "direction", (0.0, -1.0)),
    "below": Relation("below", "direction", (0.0, 1.0)),
    "in_front_of": Relation("in front of", "depth", depth_sign=-1),
    "behind": Relation("behind", "depth", depth_sign=1),
    "on": Relation("on", "on"),
    "in": Relation("in", "in"),
}


@dataclass(frozen=True)
class RelationScore:
    """0..1 agreement of one candidate with the relation (None = the relation does not hold)."""

    score: float | None
    reason: str


def _point_3d(cand: Candidate, scene: Scene) -> tuple[float, float, float] | None:
    if cand.point_camera is not None:
        return tuple(float(v) for v in cand.point_camera)  # type: ignore[return-value]
    if scene.intrinsics is None or cand.depth_m is None or not math.isfinite(cand.depth_m):
        return None
    u, v = cand.center
    return backproject(u, v, float(cand.depth_m), scene.intrinsics)


def proximity(target: Candidate, anchor: Candidate, scene: Scene) -> tuple[float, str]:
    """exp(-distance / (PROXIMITY_SCALE x object size)): 1 at the same centre, 0.61 one size away.

    Only ratios of these scores matter to the decision, and for an exponential a ratio depends
    only on the *difference* of the normalised distances: a candidate must be nearer by about a
    third of an object size to clearly beat another (with the default 0.15 margin), however far
    both are from the anchor.

    In 3D (both depths + intrinsics) the distance is between back-projected centres and the size
    is the mean physical box size; otherwise both are in image pixels (mean sqrt of box areas).
    Normalising by size makes "next to" mean the same for mugs and buses.
    """
    p, q = _point_3d(target, scene), _point_3d(anchor, scene)
    if p is not None and q is not None and scene.intrinsics is not None:
        distance = math.dist(p, q)
        f = 0.5 * (scene.intrinsics.fx + scene.intrinsics.fy)
        size = 0.5 * (math.sqrt(target.area) * p[2] + math.sqrt(anchor.area) * q[2]) / f
        unit = f"{distance:.2f} m"
    else:
        distance = math.dist(target.center, anchor.center)
        size = 0.5 * (math.sqrt(target.area) + math.sqrt(anchor.area))
        unit = f"{distance:.0f} px"
    normalised = distance / max(size, 1e-9)
    return math.exp(-normalised / PROXIMITY_SCALE), f"{unit}, {normalised:.2f} sizes"


def _depth_order(target: Candidate, anchor: Candidate) -> tuple[float, float, str]:
    """(target, anchor) nearness values where smaller = nearer, and a note when it is a proxy."""
    if _all_have_depth([target, anchor]):
        return float(target.depth_m), float(anchor.depth_m), ""  # type: ignore[arg-type]
    return -target.bbox[3], -anchor.bbox[3], ", no depth: lower in image = nearer"


def relation_score(
    target: Candidate, anchor: Candidate, relation: str, scene: Scene, anchor_name: str = ""
) -> RelationScore:
    """How well ``target`` stands in ``relation`` to ``anchor``; None score if it does not."""
    rel = RELATIONS[relation]
    name = anchor_name or f"{anchor.label} #{anchor.id}"
    near, near_note = proximity(target, anchor, scene)
    if target.id == anchor.id:
        return RelationScore(None, f"is the {name} itself")
    if rel.kind == "proximity":
        return RelationScore(near, f"{rel.phrase} {name} ({near_note})")
    if rel.kind == "direction":
        dx = target.center[0] - anchor.center[0]
        dy = target.center[1] - anchor.center[1]
        length = math.hypot(dx, dy)
        cosine = (dx * rel.direction[0] + dy * rel.direction[1]) / length if length > 0 else 0.0
        if cosine < MIN_DIRECTION_COSINE:
            return RelationScore(None, f"not {rel.phrase} {name}")
        return RelationScore(near * (0.5 + 0.5 * cosine), f"{rel.phrase} {name} ({near_note})")
    if rel.kind == "depth":
        t, a, note = _depth_order(target, anchor)
        tolerance = TIE_DEPTH_M if not note else scene.pixel_tolerance
        if rel.depth_sign * (t - a) <= tolerance:
            return RelationScore(None, f"not {rel.phrase} {name}{note}")
        return RelationScore(near, f"{rel.phrase} {name} ({near_note}{note})")
    tx1, ty1, tx2, ty2 = target.bbox
    ax1, ay1, ax2, ay2 = anchor.bbox
    overlap_x = max(0.0, min(tx2, ax2) - max(tx1, ax1)) / max(tx2 - tx1, 1e-9)
    if rel.kind == "on":
        # Resting on: the target's base lies within the anchor's vertical extent (or just above
        # its top edge) and the two overlap horizontally.
        base_ok = ay1 - 0.25 * (ty2 - ty1) <= ty2 <= ay2 + 0.05 * (ay2 - ay1)
        if overlap_x < MIN_ON_OVERLAP or not base_ok:
            return RelationScore(None, f"not on {name}")
        return RelationScore(overlap_x, f"on {name} (overlap {overlap_x:.2f})")
    # "in": the share of the target box inside the anchor box
    inter_y = max(0.0, min(ty2, ay2) - max(ty1, ay1)) / max(ty2 - ty1, 1e-9)
    containment = overlap_x * inter_y
    if containment < MIN_IN_CONTAINMENT:
        return RelationScore(None, f"not in {name}")
    return RelationScore(containment, f"in {name} (inside {containment:.2f})")


# --------------------------------------------------------------------------------------------
# Describing candidates to a person (clarification questions)
# --------------------------------------------------------------------------------------------

# axis -> option templates for 2 and for 3 objects; "{}" is "one" or the object's label.
POSITION_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "x": (("the {} on the left", "the {} on the right"),
          ("the {} on the left", "the {} in the middle", "the {} on the right")),
    "y": (("the {} at the top", "the {} at the bottom"),
          ("the {} at the top", "the {} in the middle", "the {} at the bottom")),
}
# axis -> (first, counted, last) templates for 4 or more objects.
POSITION_SERIES: dict[str, tuple[str, str, str]] = {
    "x": ("the leftmost {}", "the {n} {{}} from the left", "the rightmost {}"),
    "y": ("the topmost {}", "the {n} {{}} from the top", "the bottommost {}"),
}


def position_phrases(cands: Sequence[Candidate]) -> list[tuple[Candidate, str]]:
    """Where each candidate is, as a template a follow-up can echo ("the {} on the left").

    Templates hold "{}" for the noun ("one", "cup").  Returned in reading order (left to right, or
    top to bottom); the axis with the larger spread of centres is used, so a stack of objects is
    described top to bottom and a row left to right.
    """
    if not cands:
        return []
    xs = [c.center[0] for c in cands]
    ys = [c.center[1] for c in cands]
    axis = "x" if (max(xs) - min(xs)) >= (max(ys) - min(ys)) else "y"
    values = xs if axis == "x" else ys
    ordered = [c for _, c in sorted(zip(values, cands, strict=True), key=lambda p: p[0])]
    n = len(ordered)
    if n == 1:
        return [(ordered[0], "the {}")]
    if n <= 3:
        return list(zip(ordered, POSITION_TEMPLATES[axis][n - 2], strict=True))
    first, middle, last = POSITION_SERIES[axis]
    templates = [first, *(middle.format(n=ordinal_word(i)) for i in range(2, n)), last]
    return list(zip(ordered, templates, strict=True))


__all__ = [
    "Scene",
    "Measured",
    "Order",
    "ORDERS",
    "MEASURES",
    "LOCATION_ORDERS",
    "SIZE_ORDERS",
    "ORDINAL_ORDERS",
    "Selection",
    "Relation",
    "RELATIONS",
    "RelationScore",
    "ColorVerdict",
    "judge_color",
    "box_problem",
    "clip_box",
    "iou",
    "box_depth",
    "fill_depths",
    "ordinal_word",
    "rank",
    "select_nth",
    "proximity",
    "relation_score",
    "position_phrases",
]
