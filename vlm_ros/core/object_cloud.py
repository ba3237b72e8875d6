"""From a box (or a backend's mask) to the object's own pixels and 3D points: the input of grasp
and place geometry.

Why a mask before geometry: a box is object + table + neighbours.  A centroid or a width measured
over the box is the box's, not the object's (a lying bottle's box is mostly table; a cup touching
a box shares pixels with it).  The steps, in plain numpy:

1. **Support.** The box is widened by ``context`` on every side so the surface the object stands
   on is in view; a plane is fitted to that ring's lowest well-filled height (only points within
   ``support_radius_m`` of the object: past a table's edge the floor is in view).  When the
   object does not stand out of that plane (a flat synthetic depth, a picture of a cup), there
   is no cloud and the caller falls back to the box's centre, saying so.
2. **Mask.** A backend that segments gives the mask; it is used as it is (only its valid-depth
   pixels are lifted).  Otherwise the object is the pixels of the box that stand more than
   ``above_support_m`` above the support and are not on a depth discontinuity (flying pixels at
   silhouettes), and of those the piece whose top-down footprint holds most of the box's
   central window (a neighbour reaching into the box is another piece: objects on a table do
   not overlap on it).  **Fallback** when no support is in
   view (a cut-off box, an object held in the air): the connected piece within
   ``near_depth_m`` of the box's nearest dominant depth.
3. **The hidden back.** An object seen mostly as walls facing the camera gets its back assumed
   by symmetry (:func:`_hidden_back`), so its centre and width are not those of its front.
4. **Refusals, not guesses.** When less than ``min_depth_share`` of the object's central window
   has a depth reading (reflective or transparent surfaces, sensor holes), or fewer than
   ``min_points`` points remain, the answer is the reason, never a cloud.

:func:`object_cloud` returns either an :class:`ObjectCloud` or a :class:`CloudProblem` (a
one-line reason, and whether it refuses or allows the box-centre fallback).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vlm_ros.core.geometry import Transform, _nearest_dominant_mode, backproject_pixels
from vlm_ros.core.tabletop import depth_edges, footprint_labels, refine_plane
from vlm_ros.core.types import BBox, Frame


@dataclass(frozen=True)
class CloudConfig:
    """Tuning of the object segmentation; each number says what it guards against."""

    max_samples: int = 12000  # depth samples per widened box (the grid step adapts)
    context: float = 0.35  # the box is widened by this share of its side to see the support
    support_radius_m: float = 0.35  # the surface: ring points this close to the object's centre
    above_support_m: float = 0.006  # lower than this is the support itself (sensor noise)
    edge_jump_m: float = 0.02  # a 3x3 depth span above this is a silhouette (flying pixels)
    near_depth_m: float = 0.05  # the fallback mask: this close to the box's dominant depth
    min_depth_share: float = 0.5  # of the central window: fewer readings = holes, refuse
    central_fraction: float = 0.5  # side of the central window, share of the box side
    min_points: int = 30
    footprint_cell_m: float = 0.01  # top-down cells; objects 2+ cells apart are separate
    support_share: float = 0.15  # a 1 cm height bin of the ring holding this share is a surface
    plane_inlier_m: float = 0.015  # ring points this close to the plane are the surface
    min_edge_share: float = 0.003  # of the box's depth pixels on a silhouette (depth jump)
    wall_normal_z: float = 0.45  # |normal z| below this: a wall, not a top
    wall_share: float = 0.5  # mostly walls: complete the hidden back (see _hidden_back)
    top_band_m: float = 0.012  # the top: points this close below the highest
    open_top_share: float = 0.7  # a top this wide (share of the breadth) shows the footprint


DEFAULT_CLOUD = CloudConfig()


@dataclass(frozen=True)
class CloudProblem:
    """Why there is no cloud.  ``refuse``: the depth is unusable on the object (holes, too few
    points) - no grasp at all; otherwise the depth is fine but shows no object standing out of
    its surface (a flat depth, a sticker), and the caller may fall back to the box's centre."""

    reason: str
    refuse: bool = True

    def __str__(self) -> str:
        return self.reason


@dataclass
class ObjectCloud:
    """The object's points and pixels.

    ``points`` (N, 3) are in the base frame (z up); ``environment`` (M, 3) are the other points
    above the support in the widened box (neighbours a finger could hit); ``mask`` is HxW bool in
    RGB image pixels; ``support_z`` is the surface height (None for the fallback mask: nothing
    in view to stand on); ``depth_share`` is the share of the central window with depth.
    """

    points: np.ndarray
    environment: np.ndarray
    mask: np.ndarray
    support_z: float | None  # the surface's height under the object (base frame z)
    depth_share: float
    source: str  # "backend mask" | "depth above support" | "depth mode (no support in view)"
    completed: bool = False  # points include the assumed hidden back (see _hidden_back)

    @property
    def top_z(self) -> float:
        return float(np.percentile(self.points[:, 2], 97.0))

    @property
    def bottom_z(self) -> float:
        if self.support_z is not None:
            return self.support_z
        return float(np.percentile(self.points[:, 2], 3.0))


def _widened(bbox: BBox, scale_x: float, scale_y: float, width: int, height: int,
             context: float) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        return None
    mx, my = context * (x2 - x1), context * (y2 - y1)
    box = (max(0, math.floor((x1 - mx) * scale_x)), max(0, math.floor((y1 - my) * scale_y)),
           min(width, math.ceil((x2 + mx) * scale_x)), min(height, math.ceil((y2 + my) * scale_y)))
    return box if box[2] > box[0] and box[3] > box[1] else None


def _flying(depth: np.ndarray, jump_m: float) -> np.ndarray:
    """HxW bool: pixels between a silhouette's near and far side (a sensor's mixed returns),
    at least half a ``jump_m`` from both the nearest and the farthest depth around them.  The
    near side's own pixels (an object's rim) and the far side's stay: dropping every pixel at a
    depth jump would cut a lying bottle's neck off its body."""
    filled = np.nan_to_num(depth.astype(np.float32), nan=0.0)
    kernel = np.ones((3, 3), np.uint8)
    near, far = cv2.erode(filled, kernel), cv2.dilate(filled, kernel)
    half = 0.5 * jump_m
    return ((filled - near) > half) & ((far - filled) > half)


def _support_plane(points: np.ndarray, ring: np.ndarray, config: CloudConfig
                   ) -> np.ndarray | None:
    """(a, b, c) of the surface z = a x + b y + c around the object, from the widened box's
    ring (outside the box itself), or None when the ring shows no surface.

    The height mode of the ring is the surface (walls spread over heights, a table piles into
    one bin); a least-squares plane through its inliers absorbs a small tilt or extrinsic error.
    """
    ring_points = points[ring]
    if len(ring_points) < config.min_points:
        return None
    z = ring_points[:, 2]
    lo = float(z.min())
    bins = max(1, int(np.ceil((float(z.max()) - lo) / 0.01)))
    counts, edges = np.histogram(z, bins=bins, range=(lo, lo + bins * 0.01))
    # The lowest well-filled bin: the surface is below what stands on it.
    filled = np.flatnonzero(counts >= config.support_share * len(z))
    peak = int(filled[0]) if filled.size else int(np.argmax(counts))
    return refine_plane(ring_points, 0.5 * (edges[peak] + edges[peak + 1]),
                        config.plane_inlier_m, config.min_points)


def _footprint_piece(points: np.ndarray, candidates: np.ndarray, central: np.ndarray,
                     cell_m: float) -> np.ndarray:
    """The piece of ``candidates`` (grid bool) whose top-down footprint holds most of
    ``central``: points are joined when their (x, y) cells touch.

    Why top-down and not image connectivity: an object's own image is cut by depth jumps (a
    mug's rim against its inside, its handle), while objects on a table do not overlap on it;
    3 cm between two footprints separates them (objects that touch stay one piece: the grasp's
    finger check and width then see the neighbour).
    """
    rows, cols = np.nonzero(candidates)
    if rows.size == 0:
        return candidates
    label = footprint_labels(points[rows, cols, :2], cell_m)
    n = int(label.max()) + 1
    counts = np.bincount(label[central[rows, cols]], minlength=n)
    if counts.max() == 0:
        counts = np.bincount(label, minlength=n)
    keep = label == int(np.argmax(counts))
    piece = np.zeros_like(candidates)
    piece[rows[keep], cols[keep]] = True
    return piece


def object_cloud(frame: Frame, bbox: BBox, to_base: Transform, mask: np.ndarray | None = None,
                 min_depth: float = 0.1, max_depth: float = 10.0,
                 config: CloudConfig = DEFAULT_CLOUD, label: str = "object"
                 ) -> ObjectCloud | CloudProblem:
    """The object in ``bbox`` (RGB pixels) as points in the base frame, or why not."""
    if frame.depth_m is None:
        return CloudProblem("no depth image")
    if frame.intrinsics is None or not frame.intrinsics.is_valid():
        return CloudProblem("no camera intrinsics")
    depth = frame.depth_m
    d_h, d_w = depth.shape[:2]
    sx, sy = d_w / frame.width, d_h / frame.height
    wide = _widened(bbox, sx, sy, d_w, d_h, config.context)
    if wide is None:
        return CloudProblem(f"the {label}'s box is empty")
    x1, y1, x2, y2 = wide
    step = max(1, int(np.ceil(np.sqrt((x2 - x1) * (y2 - y1) / config.max_samples))))
    vs, us = np.mgrid[y1:y2:step, x1:x2:step]
    z = depth[vs, us].astype(np.float64)
    valid = np.isfinite(z) & (z >= min_depth) & (z <= max_depth)
    bx1, by1, bx2, by2 = bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy
    in_box = (us >= bx1) & (us < bx2) & (vs >= by1) & (vs < by2)
    cw, ch = (bx2 - bx1) * config.central_fraction / 2, (by2 - by1) * config.central_fraction / 2
    mx, my = (bx1 + bx2) / 2, (by1 + by2) / 2
    central = in_box & (np.abs(us - mx) <= cw) & (np.abs(vs - my) <= ch)
    given = None
    if mask is not None and mask.shape[:2] == (frame.height, frame.width):
        given = mask[np.clip((vs / sy).astype(int), 0, frame.height - 1),
                     np.clip((us / sx).astype(int), 0, frame.width - 1)].astype(bool) & in_box
        if given.any():
            central = central & given if (central & given).any() else given
        else:
            given = None
    share = float(valid[central].mean()) if central.any() else 0.0
    if share < config.min_depth_share:
        return CloudProblem(f"depth holes on the {label}: only {100 * share:.0f} % of its "
                            "centre has depth (reflective, transparent or too close?); "
                            f"min_depth_share {config.min_depth_share:.2f}")
    K = frame.intrinsics.scaled_to(d_w, d_h)
    points = backproject_pixels(us.astype(np.float64), vs.astype(np.float64),
                                np.where(valid, z, np.nan), K, to_base)
    support: float | None = None
    edges = depth_edges(depth, config.edge_jump_m)
    not_edge = ~_flying(depth, config.edge_jump_m)[vs, us]  # mixed returns at silhouettes
    # Only what lies near the object can be its support: a widened box past a table's edge
    # also sees the floor.
    centre = np.nanmedian(points[central & valid], axis=0)
    with np.errstate(invalid="ignore"):
        near = valid & (np.linalg.norm(points - centre, axis=-1) < config.support_radius_m)
    plane = _support_plane(points, near & ~in_box, config)
    if plane is not None:
        support = float(centre[0] * plane[0] + centre[1] * plane[1] + plane[2])
    if given is not None:
        member, source = given & valid, "backend mask"
        others = np.zeros_like(member)
    elif plane is not None:
        source = "depth above support"
        with np.errstate(invalid="ignore"):
            heights = points[..., 2] - (points[..., 0] * plane[0] + points[..., 1] * plane[1]
                                        + plane[2])
            above = valid & not_edge & (heights > config.above_support_m)
        # A thing standing on a surface has a silhouette: depth jumps around it.  A smooth
        # depth (synthetic, or a picture of a cup) has none, whatever a plane fit leaves.
        silhouette = edges[max(0, math.floor(by1)):math.ceil(by2),
                           max(0, math.floor(bx1)):math.ceil(bx2)]
        if not (above & central).any() or float(silhouette.mean()) < config.min_edge_share:
            return CloudProblem(f"the {label} does not stand out of the surface around it "
                                "in depth", refuse=False)
        member = _footprint_piece(points, above & in_box, central, config.footprint_cell_m)
        others = above & ~member
    else:
        mode = _nearest_dominant_mode(z[central & valid])
        above = valid & not_edge & (np.abs(z - mode) < config.near_depth_m)
        source = "depth mode (no support in view)"
        member = _footprint_piece(points, above & in_box, central, config.footprint_cell_m)
        others = above & ~member
    if int(member.sum()) < config.min_points:
        return CloudProblem(f"too few depth points on the {label} ({int(member.sum())}) to fit "
                            "a grasp: too small, too far or cut off")
    if given is not None:  # the backend's own pixels (inside the box), not their grid cells
        full = np.zeros((frame.height, frame.width), bool)
        x0, y0 = max(0, math.floor(bbox[0])), max(0, math.floor(bbox[1]))
        full[y0:math.ceil(bbox[3]), x0:math.ceil(bbox[2])] = \
            mask[y0:math.ceil(bbox[3]), x0:math.ceil(bbox[2])].astype(bool)
    else:
        full = _grid_mask(member, step, (x1, y1), (d_h, d_w), (frame.height, frame.width))
    observed = points[member]
    hidden = _hidden_back(points, member, to_base, config)
    return ObjectCloud(points=observed if hidden is None else np.vstack([observed, hidden]),
                       environment=_outside(points[others], observed, config.footprint_cell_m),
                       mask=full,
                       support_z=support, depth_share=share, source=source,
                       completed=hidden is not None)


def _grid_mask(member: np.ndarray, step: int, corner: tuple[int, int],
               depth_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """HxW bool in RGB pixels: each sampled grid cell of ``member`` (every ``step`` depth pixels
    from ``corner``) stands for its step x step depth pixels."""
    (x1, y1), (d_h, d_w) = corner, depth_size
    full = np.zeros((d_h, d_w), np.uint8)
    cell = cv2.resize(member.astype(np.uint8), (member.shape[1] * step, member.shape[0] * step),
                      interpolation=cv2.INTER_NEAREST)
    full[y1:y1 + cell.shape[0], x1:x1 + cell.shape[1]] = cell[:d_h - y1, :d_w - x1]
    if (d_h, d_w) != image_size:
        full = cv2.resize(full, (image_size[1], image_size[0]), interpolation=cv2.INTER_NEAREST)
    return full.astype(bool)


def _outside(others: np.ndarray, own: np.ndarray, cell_m: float) -> np.ndarray:
    """``others`` without the points over the object's own footprint (grown by a cell): a
    piece of its rim cut off from the rest is still the object, not a neighbour a finger could
    hit.  A neighbour that touches it keeps every point beyond that cell."""
    if len(others) == 0 or len(own) == 0:
        return others
    origin = own[:, :2].min(axis=0) - 2 * cell_m
    cells = np.floor((own[:, :2] - origin) / cell_m).astype(int)
    grid = np.zeros((int(cells[:, 1].max()) + 3, int(cells[:, 0].max()) + 3), np.uint8)
    grid[cells[:, 1], cells[:, 0]] = 1
    grid = cv2.dilate(grid, np.ones((3, 3), np.uint8))
    at = np.floor((others[:, :2] - origin) / cell_m).astype(int)
    inside = (at[:, 0] >= 0) & (at[:, 1] >= 0) & (at[:, 0] < grid.shape[1]) & (
        at[:, 1] < grid.shape[0])
    over = np.zeros(len(others), bool)
    over[inside] = grid[at[inside, 1], at[inside, 0]].astype(bool)
    return others[~over]


def _hidden_back(points: np.ndarray, member: np.ndarray, to_base: Transform,
                 config: CloudConfig) -> np.ndarray | None:
    """The hidden back of an object seen mostly as walls facing the camera, or None.

    A camera sees one side of a thing: an upright bottle is a front arc, a box two front faces.
    Measured as it is seen, such an object is half as deep as it is and its centre sits in front
    of the real one - and a width measured on it is too small, the unsafe direction for a
    gripper.  When most points lie on walls (normals within ~27 deg of horizontal), the object
    is assumed as deep along the camera's horizontal view direction as it is broad across it
    (round and square things), and the seen points are mirrored behind the front to stand for
    the back.  Objects seen from above (a lying bottle, a book, a cup's rim) are measured as
    seen.
    """
    grid = np.where(member[..., None], points, np.nan)
    du = grid[1:-1, 2:] - grid[1:-1, :-2]
    dv = grid[2:, 1:-1] - grid[:-2, 1:-1]
    normals = np.cross(du, dv)
    lengths = np.linalg.norm(normals, axis=-1)
    ok = np.isfinite(lengths) & (lengths > 0)
    if ok.sum() < config.min_points:
        return None
    nz = np.abs(normals[..., 2][ok] / lengths[ok])
    if float((nz < config.wall_normal_z).mean()) < config.wall_share:
        return None
    seen = points[member]
    camera_xy = np.asarray(to_base.translation[:2], float)
    view = seen[:, :2].mean(axis=0) - camera_xy
    if float(np.linalg.norm(view)) < 1e-6:
        return None
    view /= np.linalg.norm(view)
    across = np.array([-view[1], view[0]])
    depth_values = seen[:, :2] @ view
    front, back = np.percentile(depth_values, (2.0, 98.0))
    breadth = float(np.subtract(*np.percentile(seen[:, :2] @ across, (98.0, 2.0))))
    if back - front >= breadth:
        return None
    # A top seen as wide as the object (a box's lid, a mug's rim, a can's lid) already shows
    # the footprint: only things whose top is small (a bottle's neck) need their back assumed.
    top = seen[seen[:, 2] > np.percentile(seen[:, 2], 97.0) - config.top_band_m]
    if len(top) >= config.min_points:
        top_breadth = float(np.subtract(*np.percentile(top[:, :2] @ across, (98.0, 2.0))))
        if top_breadth >= config.open_top_share * breadth:
            return None
    mirror = front + 0.5 * breadth  # the assumed centre plane, across the view
    hidden = seen.copy()
    hidden[:, :2] += np.outer(2.0 * (mirror - depth_values), view)
    return hidden
