"""Grasp and place geometry from an object's points: ranked grasp candidates, one place pose.

Input is an :class:`~vlm_ros.core.object_cloud.ObjectCloud` (the object's masked points in the
base frame, z up, its support height and the neighbours' points).  Output: candidates with a pose
(the gripper's tool centre point, TCP), the approach direction, the width the fingers must span
and a 0..1 score, best first; or a one-line reason why no grasp fits.  Nothing here guesses: a
candidate that would not fit the gripper or would put a finger into a neighbour or the table is
dropped with a reason, and when none is left the answer is the reasons.

Conventions (those of :mod:`vlm_ros.core.goals`): the gripper's z-axis is the approach axis,
pointing *into* the object; its x-axis is the "heading" of the hand; a parallel jaw's fingers
close along its y-axis.  A top-down grasp with heading ``yaw`` is ``rpy(pi, 0, yaw)``.

Strategies (``GraspConfig.strategy``):

* ``centroid`` - today's behaviour made explicit: the object's middle, top-down, hand heading
  from the robot to the object (no wrist twist); the width is what lies across that heading.
* ``principal_axis`` - the footprint's principal axes (PCA of the points' x, y): the fingers
  close across the narrow side (a lying bottle, a pen, a rotated box), and, where it also fits,
  a second candidate across the long side.
* ``top_plane`` - a plane fitted to the top ~1 cm of the points; the approach is its normal
  (tilted tops tilt the hand).  The grasp for a vacuum gripper; for a parallel jaw it holds the
  top part only.
* ``auto`` - all of the above, ranked by score.

Height of a parallel grasp: the TCP goes to the object's middle height, but never so low that
the finger tips come within ``table_clearance_m`` of the support, and never so high that the
fingers no longer reach ``min_contact_m`` below the top (a flat book is taken at its edges), nor
so low that the palm hits the top of a tall object.

Score (parallel jaw) = 0.45 alignment (closing across the narrow side; 1 for round things) +
0.35 fit (1 - width / max width) + 0.2 contact (pad height on the object, up to 4 cm).  A
vacuum cup scores flatness (plane residual) and the patch's size against the cup.

Place poses (:func:`place_pose`): "in" a container - the centre of its opening (the ring of its
top points), released just above the rim; "on" a surface - its largest horizontal surface (a
table's top, not the tops of the cups on it), the free spot farthest from its edge and from
whatever already stands on it, released just above it.  The
height is where the TCP must be for the carried object's bottom to clear the surface by
``place_clearance_m``, given where on the object it was grasped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from vlm_ros.core.geometry import quat_from_matrix
from vlm_ros.core.object_cloud import ObjectCloud
from vlm_ros.core.types import Quat, Vec3

GraspStrategy = Literal["centroid", "principal_axis", "top_plane", "auto"]
GRASP_STRATEGIES: tuple[str, ...] = ("centroid", "principal_axis", "top_plane", "auto")
GripperType = Literal["parallel", "vacuum"]
GRIPPER_TYPES: tuple[str, ...] = ("parallel", "vacuum")

_ROUND_RATIO = 1.2  # footprints less elongated than this have no meaningful long axis
_TOP_BAND_M = 0.012  # the top patch: points this close below the top
_MAX_TILT_RAD = math.radians(35.0)  # steeper top normals are sides, not tops
# Extents: the outermost 1 % on each side are sensor noise and flying pixels, not the object
# (trimming more would make widths too small: the unsafe direction for a gripper).
_EXTENT_PERCENTILES = (1.0, 99.0)
_SWEEP_STEP_DEG = 30.0  # other closing directions tried when a neighbour is in the way
_FROM_ABOVE_COS = math.cos(math.radians(20.0))  # "from above": approach this close to vertical
_FLAT_RMS_M = 0.0025  # a suction cup needs a top this flat (rms, m)


@dataclass(frozen=True)
class GraspConfig:
    """The gripper and the strategy.  Defaults are the simulator's parallel jaw."""

    strategy: str = "auto"
    gripper: str = "parallel"
    max_width_m: float = 0.15  # what the fingers can span (the safety gate's max_grasp_width_m)
    finger_length_m: float = 0.165  # tip to palm
    finger_width_m: float = 0.05  # a pad's extent across the closing direction
    finger_thickness_m: float = 0.012
    tcp_above_tips_m: float = 0.015  # where the TCP sits above the finger tips
    table_clearance_m: float = 0.005  # finger tips stay this far above the support
    min_contact_m: float = 0.006  # the pads must reach this far below the object's top
    suction_diameter_m: float = 0.03
    pregrasp_offset_m: float = 0.10  # pregrasp: this far back along the approach, above the top


@dataclass
class GraspCandidate:
    """One way to take the object: the TCP pose, approach direction (unit, into the object),
    the width the fingers span, a 0..1 score and why."""

    strategy: str
    position: Vec3
    orientation: Quat
    approach: Vec3
    width_m: float
    score: float
    note: str
    pregrasp_position: Vec3

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "score": round(self.score, 3),
                "width_m": round(self.width_m, 4), "note": self.note,
                "position": [round(v, 4) for v in self.position],
                "orientation": [round(v, 6) for v in self.orientation],
                "approach": [round(v, 4) for v in self.approach],
                "pregrasp_position": [round(v, 4) for v in self.pregrasp_position]}


@dataclass
class GraspPlan:
    """Candidates best first, or none and ``refusal`` saying why; ``narrowest_m`` is the smallest
    width any direction needed (for the safety gate's width check)."""

    candidates: list[GraspCandidate] = field(default_factory=list)
    refusal: str = ""
    narrowest_m: float | None = None
    rejected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Shape:
    centre_xy: np.ndarray
    major: np.ndarray  # unit xy, the long axis
    minor: np.ndarray
    length: float
    breadth: float
    top_z: float
    bottom_z: float

    @property
    def height(self) -> float:
        return self.top_z - self.bottom_z

    @property
    def elongated(self) -> bool:
        return self.length > _ROUND_RATIO * max(self.breadth, 1e-6)


def _shape(cloud: ObjectCloud) -> _Shape:
    xy = cloud.points[:, :2]
    mean = xy.mean(axis=0)
    if len(xy) >= 3:
        _, vectors = np.linalg.eigh(np.cov((xy - mean).T))
        major = vectors[:, 1]
    else:
        major = np.array([1.0, 0.0])
    minor = np.array([-major[1], major[0]])
    along = (xy - mean) @ major
    across = (xy - mean) @ minor
    lo_a, hi_a = np.percentile(along, _EXTENT_PERCENTILES)
    lo_b, hi_b = np.percentile(across, _EXTENT_PERCENTILES)
    centre = mean + major * (lo_a + hi_a) / 2 + minor * (lo_b + hi_b) / 2
    return _Shape(centre, major, minor, float(hi_a - lo_a), float(hi_b - lo_b),
                  cloud.top_z, cloud.bottom_z)


def _extent(points: np.ndarray, direction: np.ndarray) -> float:
    values = points[:, :2] @ direction
    lo, hi = np.percentile(values, _EXTENT_PERCENTILES)
    return float(hi - lo)


def _hand_quat(approach: np.ndarray, closing: np.ndarray) -> Quat:
    """Orientation with z = ``approach``, y = ``closing`` made orthogonal to it."""
    z = approach / np.linalg.norm(approach)
    y = closing - z * float(closing @ z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return quat_from_matrix(np.column_stack([x, y, z]))


def _parallel_height(shape: _Shape, config: GraspConfig, prefer: float | None = None
                     ) -> float | str:
    """The TCP height for a top-down parallel grasp (``prefer``, else the middle height,
    moved into what the fingers and the table allow), or why none fits."""
    lowest = shape.bottom_z + config.table_clearance_m + config.tcp_above_tips_m
    highest = shape.top_z + config.tcp_above_tips_m - config.min_contact_m
    palm_floor = shape.top_z - (config.finger_length_m - config.tcp_above_tips_m) + 0.01
    wanted = shape.bottom_z + 0.5 * shape.height if prefer is None else prefer
    z = max(wanted, lowest, palm_floor)
    if z > highest + 1e-9:
        return (f"only {100 * shape.height:.1f} cm tall: the finger tips cannot get "
                f"{100 * config.min_contact_m:.1f} cm below its top and stay "
                f"{100 * config.table_clearance_m:.1f} cm above the surface")
    return z


def _finger_hits(cloud: ObjectCloud, centre: np.ndarray, closing: np.ndarray, tips_z: float,
                 config: GraspConfig) -> bool:
    """Would the fingers meet or enclose a neighbour's point?  They go down fully open and
    close on the object: everything in the corridor between the open fingers' backs, as wide
    as a pad, above the tips, ends up squeezed - a neighbour there (touching the object, or
    standing between it and a finger) is hit or grasped with it."""
    env = cloud.environment
    if env.size == 0:
        return False
    env = env[env[:, 2] > tips_z + 0.003]
    if env.size == 0:
        return False
    rel = env[:, :2] - centre
    across = np.abs(rel @ closing)
    along = np.abs(rel @ np.array([closing[1], -closing[0]]))
    outer = 0.5 * config.max_width_m + config.finger_thickness_m + 0.005
    in_sweep = (across < outer) & (along < 0.5 * config.finger_width_m + 0.005)
    return bool(in_sweep.sum() >= 3)


def _parallel(cloud: ObjectCloud, shape: _Shape, closing: np.ndarray, strategy: str,
              note: str, config: GraspConfig, plan: GraspPlan, z: float | None = None
              ) -> GraspCandidate | None:
    """A top-down candidate closing along ``closing`` (unit xy), at height ``z`` if given
    (else the middle); None, with the reason in ``plan.rejected``, when it does not fit."""
    width = _extent(cloud.points, closing)
    plan.narrowest_m = width if plan.narrowest_m is None else min(plan.narrowest_m, width)
    if width > config.max_width_m:
        plan.rejected.append(f"{strategy}: {width:.3f} m across > max width "
                             f"{config.max_width_m:.3f} m")
        return None
    height = _parallel_height(shape, config, prefer=z)
    if isinstance(height, str):
        plan.rejected.append(f"{strategy}: {height}")
        return None
    z = height
    tips = z - config.tcp_above_tips_m
    if _finger_hits(cloud, shape.centre_xy, closing, tips, config):
        plan.rejected.append(f"{strategy}: a finger would hit a neighbouring object")
        return None
    alignment = 1.0 if not shape.elongated else abs(float(closing @ shape.minor))
    fit = max(0.0, 1.0 - width / config.max_width_m)
    contact = min(1.0, max(0.0, shape.top_z - tips) / 0.04)
    score = 0.45 * alignment + 0.35 * fit + 0.2 * contact
    approach = np.array([0.0, 0.0, -1.0])
    position = (float(shape.centre_xy[0]), float(shape.centre_xy[1]), float(z))
    lift = config.pregrasp_offset_m + max(0.0, shape.top_z - z)
    return GraspCandidate(strategy, position, _hand_quat(approach, np.append(closing, 0.0)),
                          (0.0, 0.0, -1.0), width, score, f"{note}, {width:.3f} m across",
                          (position[0], position[1], position[2] + lift))


def _top_patch(cloud: ObjectCloud, radius_m: float | None = None
               ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(centroid, upward unit normal, rms residual) of the top patch, or None if it is a side.

    The plane is fitted to the points of the top band within ``radius_m`` (horizontally) of the
    band's middle (what a suction cup of that radius would seal on, without the upper rim of the
    side walls that the band also holds), or to the whole band when no radius is given."""
    band = cloud.points[cloud.points[:, 2] > cloud.top_z - _TOP_BAND_M]
    if len(band) < 10:
        return None
    middle = band[:, :2].mean(axis=0)
    top = band if radius_m is None else band[
        np.linalg.norm(band[:, :2] - middle, axis=1) <= radius_m]
    if len(top) < 10:
        return None
    centroid = top.mean(axis=0)
    _, values, vectors = np.linalg.svd(top - centroid, full_matrices=False)
    normal = vectors[2] if vectors[2][2] >= 0 else -vectors[2]
    if math.acos(min(1.0, float(normal[2]))) > _MAX_TILT_RAD:
        return None
    rms = float(values[2] / math.sqrt(len(top)))
    return centroid, normal, rms


def _heading_closing(shape: _Shape, robot_xy: np.ndarray) -> np.ndarray:
    heading = shape.centre_xy - robot_xy
    if float(np.linalg.norm(heading)) < 1e-6:
        heading = np.array([1.0, 0.0])
    heading = heading / np.linalg.norm(heading)
    return np.array([-heading[1], heading[0]])


def _parallel_candidates(cloud: ObjectCloud, shape: _Shape, robot_xy: np.ndarray,
                         config: GraspConfig, plan: GraspPlan) -> list[GraspCandidate]:
    strategies = (("centroid", "principal_axis", "top_plane") if config.strategy == "auto"
                  else (config.strategy,))
    found: list[GraspCandidate | None] = []
    if "centroid" in strategies:
        found.append(_parallel(cloud, shape, _heading_closing(shape, robot_xy), "centroid",
                               "top-down at the middle, hand along the robot's heading",
                               config, plan))
    if "principal_axis" in strategies:
        found.append(_parallel(cloud, shape, shape.minor, "principal_axis",
                               "across the narrow side" if shape.elongated
                               else "across the footprint's minor axis", config, plan))
        if shape.elongated:
            found.append(_parallel(cloud, shape, shape.major, "principal_axis",
                                   "across the long side", config, plan))
    if "principal_axis" in strategies and not any(found):
        # A neighbour (or the width) rules out both axes: other closing directions, e.g. along
        # the face of a box the object touches, ranked lower by their alignment.
        for step in range(1, int(round(180.0 / _SWEEP_STEP_DEG))):
            angle = math.radians(step * _SWEEP_STEP_DEG)
            if abs(math.sin(2 * angle)) < 1e-6:
                continue  # 90 deg: the long axis, tried above
            closing = shape.minor * math.cos(angle) + shape.major * math.sin(angle)
            found.append(_parallel(cloud, shape, closing, "principal_axis",
                                   f"{step * _SWEEP_STEP_DEG:.0f} deg off the narrow side",
                                   config, plan))
    if "top_plane" in strategies:
        patch = _top_patch(cloud)
        if patch is None:
            plan.rejected.append("top_plane: no upward-facing top patch")
        else:
            z = shape.top_z - 0.03  # the top 3 cm (lifted clear of the table by the rules)
            candidate = _parallel(cloud, shape, shape.minor, "top_plane",
                                  "the top part, across the narrow side", config, plan, z=z)
            if candidate is not None and patch[1][2] < math.cos(math.radians(3.0)):
                approach = -patch[1]
                candidate.approach = tuple(float(v) for v in approach)  # type: ignore[assignment]
                candidate.orientation = _hand_quat(approach, np.append(shape.minor, 0.0))
                back = config.pregrasp_offset_m + max(0.0, shape.top_z - z)
                candidate.pregrasp_position = tuple(  # type: ignore[assignment]
                    float(v) for v in np.asarray(candidate.position) - approach * back)
                candidate.note += " (tilted top: approach along its normal)"
            found.append(candidate)
    return [c for c in found if c is not None]


def _vacuum_candidates(cloud: ObjectCloud, shape: _Shape, config: GraspConfig,
                       plan: GraspPlan) -> list[GraspCandidate]:
    patch = _top_patch(cloud, 0.5 * config.suction_diameter_m)
    if patch is None:
        plan.rejected.append("vacuum: no upward-facing top patch to seal on")
        return []
    centroid, normal, rms = patch
    if rms > _FLAT_RMS_M:
        plan.rejected.append(f"vacuum: the top is not flat ({1000 * rms:.1f} mm rms > "
                             f"{1000 * _FLAT_RMS_M:.0f} mm)")
        return []
    if shape.breadth < config.suction_diameter_m:
        plan.rejected.append(f"vacuum: the top is {shape.breadth:.3f} m across, smaller than "
                             f"the cup ({config.suction_diameter_m:.3f} m)")
        return []
    plan.narrowest_m = config.suction_diameter_m
    approach = -normal if config.strategy in ("top_plane", "auto") else np.array([0.0, 0.0, -1])
    point = centroid if config.strategy != "centroid" else np.array(
        [shape.centre_xy[0], shape.centre_xy[1], shape.top_z])
    flat = max(0.0, 1.0 - rms / _FLAT_RMS_M)
    size = min(1.0, shape.breadth / (2 * config.suction_diameter_m))
    position = tuple(float(v) for v in point)
    pre = tuple(float(v) for v in point - approach * config.pregrasp_offset_m)
    strategy = config.strategy if config.strategy != "auto" else "top_plane"
    return [GraspCandidate(strategy, position, _hand_quat(approach, np.append(shape.minor, 0.0)),
                           tuple(float(v) for v in approach), config.suction_diameter_m,
                           0.6 * flat + 0.4 * size, "suction on the top patch", pre)]


def _tally(reasons: list[str]) -> list[str]:
    """Each reason once, in order, with how often it came up ("... (x5)")."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return [reason if n == 1 else f"{reason} (x{n})" for reason, n in counts.items()]


def synthesize(cloud: ObjectCloud, robot_xy: tuple[float, float],
               config: GraspConfig, from_above: bool = False) -> GraspPlan:
    """Ranked grasp candidates for ``cloud`` (base frame), or a plan whose ``refusal`` says why
    there is none.  ``robot_xy`` is where the robot stands (the centroid strategy's heading);
    ``from_above`` ("pick it up from above") keeps only approaches within 20 deg of vertical."""
    if config.strategy not in GRASP_STRATEGIES:
        raise ValueError(f"unknown grasp strategy {config.strategy!r}; known: "
                         f"{', '.join(GRASP_STRATEGIES)}")
    if config.gripper not in GRIPPER_TYPES:
        raise ValueError(f"unknown gripper {config.gripper!r}; known: {', '.join(GRIPPER_TYPES)}")
    plan = GraspPlan()
    shape = _shape(cloud)
    if config.gripper == "vacuum":
        found = _vacuum_candidates(cloud, shape, config, plan)
    else:
        found = _parallel_candidates(cloud, shape, np.asarray(robot_xy, float), config, plan)
    plan.candidates = sorted(found, key=lambda c: -c.score)
    if from_above:
        tilted = [c for c in plan.candidates if c.approach[2] > -_FROM_ABOVE_COS]
        plan.candidates = [c for c in plan.candidates if c.approach[2] <= -_FROM_ABOVE_COS]
        if tilted:
            plan.rejected.append(f"{len(tilted)} grasp(s) not from above")
    if not plan.candidates:
        what = "no grasp from above fits: " if from_above else "no grasp fits: "
        plan.refusal = what + "; ".join(_tally(plan.rejected) or ["nothing to grasp"])
    return plan


# --------------------------------------------------------------------------------------------
# Place
# --------------------------------------------------------------------------------------------

_PLACE_CELL_M = 0.01  # coarse enough that a sampled top has no holes between points


def place_pose(destination: ObjectCloud, relation: str | None, height_above_m: float,
               carried_radius_m: float = 0.0) -> tuple[Vec3, str] | str:
    """Where the TCP releases a carried object ``in`` / ``on`` the destination (``height_above_m``
    above its rim / top surface), and why there; or why nowhere.  ``carried_radius_m`` is the
    carried object's footprint radius when known (0: any free spot)."""
    pts = destination.points
    top = destination.top_z
    rim = pts[pts[:, 2] > top - _TOP_BAND_M]
    if len(rim) < 10:
        return "the destination shows no top to place on"
    drop = height_above_m
    if relation in ("in", "into", "inside"):
        lo, hi = rim[:, :2].min(axis=0), rim[:, :2].max(axis=0)
        centre = (lo + hi) / 2
        opening = float(min(hi - lo))
        return ((float(centre[0]), float(centre[1]), float(top + drop)),
                f"the middle of its opening ({opening:.2f} m across)")
    # On: the destination's largest horizontal surface (the most-filled 1 cm height bin: a
    # book's cover, a table's top - not the tops of what stands on it), as a top-down grid;
    # what stands on it is occupied; the free cell farthest from the surface's edge and from
    # what stands there (of equally free cells, the one nearest the middle).
    z = pts[:, 2]
    bins = np.floor((z - z.min()) / 0.01).astype(int)
    level = float(np.median(z[bins == np.bincount(bins).argmax()]))
    surface_points = pts[np.abs(z - level) < 0.01]
    standing = pts[z > level + 0.015]
    if len(surface_points) < 10:
        return "the destination shows no surface to place on"
    xy = surface_points[:, :2]
    origin = xy.min(axis=0) - 2 * _PLACE_CELL_M
    cells = np.floor((xy - origin) / _PLACE_CELL_M).astype(int)
    shape = tuple(int(v) + 3 for v in cells.max(axis=0)[::-1])
    surface = np.zeros(shape, np.uint8)
    surface[cells[:, 1], cells[:, 0]] = 1
    surface = cv2.morphologyEx(surface, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    if len(standing):
        taken = np.floor((standing[:, :2] - origin) / _PLACE_CELL_M).astype(int)
        inside = (taken[:, 0] >= 0) & (taken[:, 1] >= 0) & (taken[:, 0] < shape[1]) & (
            taken[:, 1] < shape[0])
        surface[taken[inside, 1], taken[inside, 0]] = 0
    room = cv2.distanceTransform(surface, cv2.DIST_L2, 3) * _PLACE_CELL_M
    if float(room.max()) <= 0.0:
        return "no free spot on the destination's surface"
    rows, cols = np.nonzero(room >= float(room.max()) - _PLACE_CELL_M)
    middle = (xy.mean(axis=0) - origin) / _PLACE_CELL_M - 0.5
    pick = int(np.argmin((cols - middle[0]) ** 2 + (rows - middle[1]) ** 2))
    best = (int(rows[pick]), int(cols[pick]))
    free = float(room[best])
    if free + 0.01 < carried_radius_m:
        return (f"no free spot on the destination's surface for an object "
                f"{2 * carried_radius_m:.2f} m across (the largest is {2 * free:.2f} m)")
    x = origin[0] + (best[1] + 0.5) * _PLACE_CELL_M
    y = origin[1] + (best[0] + 0.5) * _PLACE_CELL_M
    z_here = float(level)
    return ((float(x), float(y), z_here + drop),
            f"the freest spot of its surface ({2 * free:.2f} m free)")
