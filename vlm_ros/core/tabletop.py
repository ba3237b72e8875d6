"""Depth-based tabletop proposals: where objects stand on a support surface, found without a model.

Why: the default detector squashes a 640x480 frame to 300x300, so small tabletop objects (balls,
bowls seen edge-on) fall below what it can see.  Tiling the whole frame helps but costs ~5x and
changes answers on ordinary photos.  Depth already says *where* something sticks out of the table;
the detector then only has to say *what* it is, on a zoomed-in crop around that place.

Two steps, both plain functions:

* :func:`support_and_clusters` lifts (subsampled) depth into the base frame (z up), finds the
  dominant horizontal surface (the largest height mode, refined by a plane fit so a slightly
  tilted table or extrinsic error does not cut objects' feet off), and returns the boxes (RGB
  pixels) of connected blobs between 1 cm and 40 cm above it, inside the support's outline.
* :func:`recover_missed` runs the detector on a zoomed crop around every proposal that no existing
  detection explains, and returns the crop's detections that land on the proposal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vlm_ros.core.attributes import iou
from vlm_ros.core.backend import Backend
from vlm_ros.core.geometry import Transform, backproject_pixels
from vlm_ros.core.types import BBox, Detection, Frame


@dataclass(frozen=True)
class TabletopConfig:
    """Tuning of the support/cluster segmentation; every number says what it guards against."""

    grid_step: int = 4  # depth pixels per grid cell: 640x480 -> 160x120, ~2 ms of numpy
    min_depth_m: float = 0.1
    max_depth_m: float = 4.0  # a tabletop is near; far returns are walls and noise
    edge_jump_m: float = 0.02  # depth steps larger than this between neighbours are silhouettes
    height_bin_m: float = 0.01  # histogram bin for the support-height mode
    plane_inlier_m: float = 0.015  # points this close to the plane are support
    min_support_share: float = 0.1  # the support must cover this share of valid points
    above_min_m: float = 0.01  # lower than this above the support is the support itself
    above_max_m: float = 0.4  # higher than this is not an object on the table (a person, a wall)
    open_kernel: int = 2  # grid cells: removes 1-cell speckles and depth-edge fringes
    min_cells: int = 6  # smallest blob, in grid cells (6 * 4 * 4 = ~100 pixels at 640x480)
    footprint_cell_m: float = 0.01  # top-down grid: below the 3 cm gap between objects
    max_image_share: float = 0.5  # a blob larger than this share of the image is not one object


DEFAULT_TABLETOP = TabletopConfig()


def depth_edges(depth: np.ndarray, jump_m: float) -> np.ndarray:
    """HxW bool: pixels whose 3x3 neighbourhood spans more than ``jump_m`` of depth.

    Why: at silhouettes, sensors (and anti-aliased renderers) report "flying" depths between the
    near and the far surface; lifted, they float above the table and bridge separate objects.
    """
    filled = np.nan_to_num(depth.astype(np.float32), nan=0.0)
    kernel = np.ones((3, 3), np.uint8)
    return (cv2.dilate(filled, kernel) - cv2.erode(filled, kernel)) > jump_m


def depth_points_in_base(
    frame: Frame, to_base: Transform, step: int, min_depth: float, max_depth: float,
    edge_jump_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(grid HxWx3 base-frame points with NaN where depth is invalid, grid validity mask).

    The depth image is sampled every ``step`` pixels; grid cell (r, c) is depth pixel
    (r * step, c * step).  With ``edge_jump_m``, samples on depth discontinuities are dropped.
    None without depth or intrinsics.
    """
    if frame.depth_m is None or frame.intrinsics is None or not frame.intrinsics.is_valid():
        return None
    depth = frame.depth_m
    d_h, d_w = depth.shape[:2]
    K = frame.intrinsics.scaled_to(d_w, d_h)
    vs, us = np.mgrid[0:d_h:step, 0:d_w:step]
    z = depth[vs, us].astype(np.float64)
    valid = np.isfinite(z) & (z >= min_depth) & (z <= max_depth)
    if edge_jump_m is not None:
        valid &= ~depth_edges(depth, edge_jump_m)[vs, us]
    z = np.where(valid, z, np.nan)
    return backproject_pixels(us, vs, z, K, to_base), valid


def _support_plane(points: np.ndarray, cfg: TabletopConfig) -> np.ndarray | None:
    """(a, b, c) of the support plane z = a x + b y + c from valid (N, 3) points, or None.

    The dominant height mode is the largest horizontal surface in view (vertical surfaces spread
    over many heights, horizontal ones pile into one bin); a least-squares plane through its
    inliers, refitted once, absorbs a small tilt.
    """
    z = points[:, 2]
    lo, hi = float(z.min()), float(z.max())
    bins = max(1, int(np.ceil((hi - lo) / cfg.height_bin_m)))
    counts, edges = np.histogram(z, bins=bins, range=(lo, lo + bins * cfg.height_bin_m))
    peak = int(np.argmax(counts))
    height = 0.5 * (edges[peak] + edges[peak + 1])
    return refine_plane(points, height, cfg.plane_inlier_m,
                        int(np.ceil(cfg.min_support_share * len(z))))


def refine_plane(points: np.ndarray, height: float, inlier_m: float, min_inliers: int
                 ) -> np.ndarray | None:
    """(a, b, c) of z = a x + b y + c through the (N, 3) points within ``inlier_m`` of the
    horizontal plane at ``height``, refitted once on its own inliers; None when fewer than
    ``min_inliers`` points support it."""
    z = points[:, 2]
    plane = np.array([0.0, 0.0, height])
    for _ in range(2):
        residual = z - (points[:, 0] * plane[0] + points[:, 1] * plane[1] + plane[2])
        inliers = np.abs(residual) < inlier_m
        if inliers.sum() < min_inliers:
            return None
        design = np.column_stack([points[inliers, 0], points[inliers, 1],
                                  np.ones(int(inliers.sum()))])
        plane, *_ = np.linalg.lstsq(design, z[inliers], rcond=None)
    return plane


def footprint_labels(xy: np.ndarray, cell_m: float) -> np.ndarray:
    """A cluster label per (N, 2) base-frame point, by connectivity of their top-down footprints
    (cells of ``cell_m``, 8-connected).

    Why top-down: a near object overlaps a far one in the image, but objects resting on a table
    do not overlap on it; a top-down occupancy grid separates what the image would merge.
    """
    cells = np.floor((xy - xy.min(axis=0)) / cell_m).astype(np.int64)
    occupancy = np.zeros((int(cells[:, 1].max()) + 1, int(cells[:, 0].max()) + 1), np.uint8)
    occupancy[cells[:, 1], cells[:, 0]] = 1
    # 8-connectivity bridges single-cell holes that sparse sampling leaves in one footprint;
    # anything wider (objects stand >= ~2 cm apart) separates.
    _, labels = cv2.connectedComponents(occupancy, connectivity=8)
    return labels[cells[:, 1], cells[:, 0]]


def support_and_clusters(
    frame: Frame, to_base: Transform, config: TabletopConfig = DEFAULT_TABLETOP
) -> list[BBox]:
    """Boxes (RGB pixels, largest first) of the blobs standing on the dominant support surface.

    ``to_base`` maps the camera optical frame into a base frame whose z is up.  Returns [] when
    there is no depth, no intrinsics, or no support surface in view (never raises for a frame).
    """
    lifted = depth_points_in_base(frame, to_base, config.grid_step, config.min_depth_m,
                                  config.max_depth_m, config.edge_jump_m)
    if lifted is None:
        return []
    points, valid = lifted
    if valid.sum() < 50:
        return []
    plane = _support_plane(points[valid], config)
    if plane is None:
        return []
    with np.errstate(invalid="ignore"):
        height = points[..., 2] - (points[..., 0] * plane[0] + points[..., 1] * plane[1]
                                   + plane[2])
        support = valid & (np.abs(height) < config.plane_inlier_m)
        above = valid & (height > config.above_min_m) & (height < config.above_max_m)
    # Only what stands *on* the support counts: inside the outline (convex hull) of its largest
    # connected piece.  Objects occlude the table, so they lie inside its hull; a wall or a
    # shelf seen past the table's far edge does not.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(support.astype(np.uint8), 8)
    if n < 2:
        return []
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(labels == largest)
    hull = cv2.convexHull(np.column_stack([xs, ys]).astype(np.int32))
    outline = np.zeros(support.shape, np.uint8)
    cv2.fillConvexPoly(outline, hull, 1)
    mask = (above & outline.astype(bool)).astype(np.uint8)
    if config.open_kernel > 1:
        kernel = np.ones((config.open_kernel, config.open_kernel), np.uint8)
        # An even kernel's anchor can shift the result by a cell: keep only real above-cells.
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel) & mask
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return []
    labels = footprint_labels(points[rows, cols, :2], config.footprint_cell_m)
    d_h, d_w = frame.depth_m.shape[:2]  # type: ignore[union-attr]  # checked by the lift
    sx = config.grid_step * frame.width / d_w
    sy = config.grid_step * frame.height / d_h
    max_cells = config.max_image_share * mask.size
    boxes: list[tuple[float, BBox]] = []
    for label in np.unique(labels):
        member = labels == label
        area = int(member.sum())
        if area < config.min_cells or area > max_cells:
            continue
        r, c = rows[member], cols[member]
        # A cell stands for the step x step pixels starting at its sample.
        box = (float(c.min() * sx), float(r.min() * sy),
               float(min(frame.width, (c.max() + 1) * sx)),
               float(min(frame.height, (r.max() + 1) * sy)))
        boxes.append((float(area), box))
    boxes.sort(key=lambda item: -item[0])
    return [box for _, box in boxes]


# ---------------------------------------------------------------------------------------------
# Zoomed second look
# ---------------------------------------------------------------------------------------------

EXPLAINED_IOU = 0.3  # a detection this overlapping a proposal already accounts for it
EXPLAINER_MAX_AREA_RATIO = 4.0  # ... or contains its centre without being far larger than it
CROP_SCALE = 1.8  # context around the proposal: the detector needs to see the object's edges
MIN_CROP_PX = 160  # below this the crop is upsampled so far that textures turn to blur
MAX_CROPS = 6  # bounds the extra detector passes per frame
KEEP_IOU = 0.3  # a crop detection must overlap its proposal this much to be kept


def _area(box: BBox) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _explained(proposal: BBox, detections: Sequence[Detection]) -> bool:
    cx, cy = 0.5 * (proposal[0] + proposal[2]), 0.5 * (proposal[1] + proposal[3])
    for d in detections:
        if iou(proposal, d.bbox) >= EXPLAINED_IOU:
            return True
        x1, y1, x2, y2 = d.bbox
        if (x1 <= cx <= x2 and y1 <= cy <= y2
                and _area(d.bbox) <= EXPLAINER_MAX_AREA_RATIO * max(1.0, _area(proposal))):
            return True
    return False


def crop_around(box: BBox, width: int, height: int) -> tuple[int, int, int, int]:
    """A square crop (x1, y1, x2, y2 pixel indices) centred on ``box``, grown by ``CROP_SCALE``,
    at least ``MIN_CROP_PX``, shifted (not cut) to stay inside the image where it fits.

    Square because the detector squashes its input to a square: a square crop keeps aspect.
    """
    side = max(CROP_SCALE * max(box[2] - box[0], box[3] - box[1]), MIN_CROP_PX)
    side_x, side_y = int(round(min(side, width))), int(round(min(side, height)))
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    x1 = int(round(min(max(cx - 0.5 * side_x, 0), width - side_x)))
    y1 = int(round(min(max(cy - 0.5 * side_y, 0), height - side_y)))
    return x1, y1, x1 + side_x, y1 + side_y


def recover_missed(
    rgb: np.ndarray,
    proposals: Sequence[BBox],
    detections: Sequence[Detection],
    backend: Backend,
    queries: Sequence[str],
    max_crops: int = MAX_CROPS,
) -> list[Detection]:
    """Detections (image pixels) found by a zoomed look at proposals nothing else explains.

    Only the new detections are returned; callers append them to ``detections``.  Per proposal
    the best-scoring box of each label that overlaps it is kept, so one object does not come back
    twice under one label.  At most ``max_crops`` detector passes (proposals are taken in the
    given order: :func:`support_and_clusters` gives the largest first).
    """
    height, width = rgb.shape[:2]
    found: list[Detection] = []
    crops = 0
    for proposal in proposals:
        if crops >= max_crops:
            break
        if _explained(proposal, detections) or _explained(proposal, found):
            continue
        x1, y1, x2, y2 = crop_around(proposal, width, height)
        crops += 1
        best: dict[str, Detection] = {}
        for d in backend.detect(np.ascontiguousarray(rgb[y1:y2, x1:x2]), list(queries)):
            bx1, by1, bx2, by2 = d.bbox
            box = (bx1 + x1, by1 + y1, bx2 + x1, by2 + y1)
            if iou(box, proposal) < KEEP_IOU:
                continue
            if d.label not in best or d.score > best[d.label].score:
                mask = None
                if d.mask is not None:
                    mask = np.zeros((height, width), bool)
                    mask[y1:y2, x1:x2] = d.mask
                best[d.label] = Detection(d.label, d.score, box, d.phrase, mask)
        found.extend(best.values())
    return found
