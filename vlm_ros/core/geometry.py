"""Depth sampling, back-projection and rigid frames: from a box in an image to a point in the base.

Conventions (REP-103 / REP-105), used everywhere in vlm_ros:

* The camera *optical* frame has x right, y down, z forward; intrinsics and depth live there.
* The camera *body* frame (and every robot frame) has x forward, y left, z up.  Users describe
  where a camera is mounted in body terms ("1.2 m up, pitched 0.5 rad down"), so
  :func:`camera_extrinsics` takes a body pose and appends the fixed optical rotation itself.
* Pixel coordinates follow OpenCV/ROS: the centre of pixel column ``i`` is at ``u = i``.  Boxes are
  continuous edge coordinates (a box covering columns 10..19 is ``x1=10, x2=20``), so the pixel
  centre of a box is ``(x1 + x2) / 2 - 0.5``.
* Quaternions are ``(x, y, z, w)``; roll/pitch/yaw are fixed-axis X, Y, Z (tf2's ``setRPY``), so a
  positive pitch tips a forward-looking x-axis *down*.

Why a robust depth estimate: the depth under a box centre is often not the object (a mug's handle
hole, a person's arm gap), and a box always includes background (the table behind a cup, the wall
behind a person).  :func:`robust_depth` takes the nearest depth mode that holds a real share of
the box's pixels, so background and sparse sensor noise do not move the object.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from vlm_ros.core.types import BBox, CameraIntrinsics, Frame, Quat, Vec3

# encoding -> metres per raw unit (None means "scale by the caller's depth_scale")
_DEPTH_ENCODINGS: dict[str, float | None] = {
    "16UC1": None,
    "mono16": None,
    "32FC1": 1.0,
}

# robust_depth tuning: see the docstring for why each exists.
_CENTRAL_FRACTION = 0.6  # side of the central sub-window, as a share of the box side
_MIN_VALID_FRACTION = 0.01  # fewer valid pixels than this share of the box -> no depth
_MIN_VALID_PIXELS = 10
_MODE_MIN_SHARE = 0.2  # the nearest mode must hold this share of valid pixels to count
_MODE_MAX_SAMPLES = 8000  # depth samples a box's mode is found from, at most
_MODE_BIN_M = 0.01  # smallest histogram bin (m)
_MODE_BIN_REL = 0.01  # bins grow with depth, as sensor noise does
_MODE_HALF_WIDTH_BINS = 3  # a mode is +-3 bins: a curved front surface, plus noise


class FrameError(Exception):
    """A transform between two frames is unknown or unusable."""


# --------------------------------------------------------------------------------------------
# Depth
# --------------------------------------------------------------------------------------------


def depth_to_meters(array: np.ndarray, encoding: str, depth_scale: float = 0.001) -> np.ndarray:
    """Raw depth image -> float32 metres with NaN wherever the sensor has no valid return.

    ``16UC1``/``mono16`` are integer millimetres by convention (``depth_scale`` converts units, e.g.
    0.001 for mm, or a RealSense's reported scale); ``32FC1`` is already metres.  Zero, negative,
    NaN and inf all mean "no return" on real sensors, so they become NaN and can never be mistaken
    for an object touching the lens.
    """
    if encoding not in _DEPTH_ENCODINGS:
        known = ", ".join(_DEPTH_ENCODINGS)
        raise ValueError(f"unsupported depth encoding {encoding!r}; expected one of {known}")
    if array.ndim != 2:
        raise ValueError(f"a depth image must be 2-D, got shape {array.shape}")
    scale = _DEPTH_ENCODINGS[encoding]
    if scale is None:
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{encoding} depth must be an integer array, got {array.dtype}")
        scale = depth_scale
    metres = array.astype(np.float32) * np.float32(scale)
    metres[~np.isfinite(metres) | (metres <= 0.0)] = np.nan
    return metres


def _clip_box(bbox: BBox, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Pixel index range [x1, x2) x [y1, y2) of ``bbox`` inside the image, or None if empty."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    ix1, iy1 = max(0, math.floor(x1)), max(0, math.floor(y1))
    ix2, iy2 = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    if ix2 <= ix1 or iy2 <= iy1:
        return None
    return ix1, iy1, ix2, iy2


def _central_window(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    mx = (x2 - x1) * (1.0 - _CENTRAL_FRACTION) / 2.0
    my = (y2 - y1) * (1.0 - _CENTRAL_FRACTION) / 2.0
    cx1, cy1 = x1 + math.floor(mx), y1 + math.floor(my)
    cx2, cy2 = x2 - math.floor(mx), y2 - math.floor(my)
    return cx1, cy1, max(cx1 + 1, cx2), max(cy1 + 1, cy2)


def _nearest_dominant_mode(values: np.ndarray) -> float:
    """Median depth of the nearest histogram mode holding >= ``_MODE_MIN_SHARE`` of ``values``.

    Why not a plain median or percentile: a box is object + background in unknown proportions,
    and the background (table, wall) is always *behind* the object.  The histogram is binned at
    1 cm per metre of depth (noise grows with depth); a window of +-``_MODE_HALF_WIDTH_BINS`` bins
    slides from near to far, and the first position holding 20 % of the pixels marks the object's
    mode.  Its peak bin is looked for a little further on (a curved front surface spreads over a
    few bins), and the answer is the median of the pixels within the window around that peak, so
    a table that continues behind a mug cannot drag the estimate backwards.  A mode smaller than
    20 % (flying pixels, a finger in front) never wins; if nothing reaches 20 % the fullest window
    does.
    """
    if values.size > _MODE_MAX_SAMPLES:
        # A regular subsample: the modes and their medians do not need every pixel of a big
        # box (a 250 x 250 px box took ~0.9 ms, now ~0.15 ms).
        values = values[:: math.ceil(values.size / _MODE_MAX_SAMPLES)]
    lo = float(np.percentile(values, 1))
    bin_w = max(_MODE_BIN_M, _MODE_BIN_REL * lo)
    index = np.floor((values - lo) / bin_w).astype(np.int64)
    index = np.maximum(index, 0)  # the nearest 1 % (possible outliers) share the first bin
    counts = np.bincount(index)
    r = _MODE_HALF_WIDTH_BINS
    window = np.convolve(counts, np.ones(2 * r + 1), mode="same")
    need = _MODE_MIN_SHARE * values.size
    above = np.nonzero(window >= need)[0]
    first = int(above[0]) if above.size else int(np.argmax(window))
    search_end = min(len(counts), first + 2 * r + 1)
    peak = first + int(np.argmax(counts[first:search_end]))
    near = np.abs(index - peak) <= r
    return float(np.median(values[near]))


def robust_depth(
    depth_m: np.ndarray,
    bbox: BBox,
    mask: np.ndarray | None = None,
    min_depth: float = 0.1,
    max_depth: float = 10.0,
) -> float | None:
    """Depth (m, along the optical axis) of the object inside ``bbox``, or None if unmeasurable.

    ``depth_m`` is float32 metres (NaN = no return); ``bbox`` and ``mask`` are in its pixels.
    With a mask only the object's own pixels count.  Without one, the central 60 % of the box is
    sampled first (objects fill box centres, backgrounds fill box corners); if that window has
    too few valid pixels the whole box is used.  Among the valid samples the nearest depth
    mode holding >= 20 % of them is the object: the background of a box is behind the object
    by definition, and a 20 % floor keeps isolated noise in front from winning.

    Returns None when fewer than max(10, 1 % of the box) valid pixels exist: a depth from a
    handful of pixels would look as trustworthy as a good one downstream.
    """
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {depth_m.shape}")
    height, width = depth_m.shape
    box = _clip_box(bbox, width, height)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    box_pixels = (x2 - x1) * (y2 - y1)
    needed = max(_MIN_VALID_PIXELS, math.ceil(_MIN_VALID_FRACTION * box_pixels))

    def valid_in(win: tuple[int, int, int, int]) -> np.ndarray:
        wx1, wy1, wx2, wy2 = win
        patch = depth_m[wy1:wy2, wx1:wx2]
        keep = np.isfinite(patch) & (patch >= min_depth) & (patch <= max_depth)
        if mask is not None:
            keep &= mask[wy1:wy2, wx1:wx2].astype(bool)
        return patch[keep].astype(np.float64)

    if mask is not None:
        if mask.shape != depth_m.shape:
            raise ValueError(f"mask shape {mask.shape} != depth shape {depth_m.shape}")
        values = valid_in(box)
    else:
        values = valid_in(_central_window(box))
        if values.size < needed:
            values = valid_in(box)
    if values.size < needed:
        return None
    return _nearest_dominant_mode(values)


def backproject(u: float, v: float, z: float, K: CameraIntrinsics) -> Vec3:
    """Pixel (u, v) at depth z (m) -> point in the camera optical frame (x right, y down, z fwd)."""
    return ((u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, float(z))


def backproject_pixels(us: np.ndarray, vs: np.ndarray, z: np.ndarray, K: CameraIntrinsics,
                       to_frame: Transform | None = None) -> np.ndarray:
    """Vectorised ``backproject``: pixel arrays + depths -> (..., 3) points in the optical frame,
    or in ``to_frame``'s target frame when a transform is given."""
    points = np.stack([(us - K.cx) * z / K.fx, (vs - K.cy) * z / K.fy, z], axis=-1)
    if to_frame is None:
        return points
    matrix = to_frame.as_matrix()
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def project(point: Vec3, K: CameraIntrinsics) -> tuple[float, float]:
    """Optical-frame point -> pixel (u, v); the inverse of :func:`backproject` for z > 0."""
    x, y, z = point
    if z <= 0:
        raise ValueError(f"cannot project a point behind the camera (z={z})")
    return (K.fx * x / z + K.cx, K.fy * y / z + K.cy)


def _box_pixel_center(bbox: BBox, mask: np.ndarray | None) -> tuple[float, float]:
    """Pixel-centre coordinates of the object: the mask centroid if any, else the box centre."""
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        return float(xs.mean()), float(ys.mean())
    x1, y1, x2, y2 = bbox
    return 0.5 * (x1 + x2) - 0.5, 0.5 * (y1 + y2) - 0.5


def object_center_3d(
    frame: Frame,
    bbox: BBox,
    mask: np.ndarray | None = None,
    min_depth: float = 0.1,
    max_depth: float = 10.0,
) -> tuple[Vec3 | None, float | None]:
    """(point in the camera optical frame, depth) of the object in ``bbox`` (RGB pixels).

    The depth image may have another resolution than the RGB image (many RGB-D cameras publish
    depth at half size): the box and mask are scaled into depth pixels for sampling only, and the
    point is back-projected from the RGB pixel with the RGB intrinsics (scaled to the RGB size if
    the camera info was for another resolution).  The point is on the visible surface, not inside
    the object.  (None, None) when there is no depth, no intrinsics, or no valid depth on the object.
    """
    if frame.depth_m is None or frame.intrinsics is None or not frame.intrinsics.is_valid():
        return None, None
    depth = frame.depth_m
    d_h, d_w = depth.shape[:2]
    sx, sy = d_w / frame.width, d_h / frame.height
    depth_box = (bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy)
    depth_mask = None
    if mask is not None:
        mask = mask.astype(bool)
        depth_mask = mask
        if mask.shape != (d_h, d_w):
            depth_mask = cv2.resize(mask.astype(np.uint8), (d_w, d_h),
                                    interpolation=cv2.INTER_NEAREST).astype(bool)
        if not depth_mask.any():
            depth_mask = None
    z = robust_depth(depth, depth_box, depth_mask, min_depth, max_depth)
    if z is None:
        return None, None
    K = frame.intrinsics
    if (K.width, K.height) != (frame.width, frame.height):
        K = K.scaled_to(frame.width, frame.height)
    u, v = _box_pixel_center(bbox, mask)
    return backproject(u, v, z, K), z


# Support-aware centre: objects rest on something (a table, the floor).  Seen from above at an
# angle, the box centre's depth lands on the rim or front wall, a few cm in front of and above
# the object's middle - too far off for a grasp.  The box's own pixels, lifted into the base
# frame, show the support surface (the lowest points) and the object above it; the object's
# centre is the middle of its above-support points' extent.
SUPPORT_PERCENTILE = 5.0  # base-frame z percentile of the box's points taken as the support
ABOVE_SUPPORT_M = 0.01  # points higher than this above the support belong to the object
NEAR_SURFACE_M = 0.25  # and lie within this distance of the visible surface point
# The support is looked for among the box's points this close to the surface point: beyond a
# table's edge the box also holds the floor, which is no support of the object.
SUPPORT_RADIUS_M = 0.5
EXTENT_PERCENTILES = (5.0, 95.0)
MIN_OBJECT_POINTS = 30
MAX_SAMPLES = 6000


def object_center_on_support(
    frame: Frame,
    bbox: BBox,
    to_base: Transform,
    surface_point: Vec3,
    min_depth: float = 0.1,
    max_depth: float = 10.0,
) -> tuple[Vec3, Vec3] | None:
    """(centre, size) in the base frame of an object resting on a support, from ``bbox``'s depth.

    ``to_base`` maps the optical frame to a base frame whose z is up; ``surface_point`` is the
    visible surface point (``object_center_3d``) in the optical frame.  None when the box holds
    too few points above a support (e.g. a floating or cut-off object): callers keep the
    surface point then.
    """
    if frame.depth_m is None or frame.intrinsics is None:
        return None
    depth = frame.depth_m
    d_h, d_w = depth.shape[:2]
    sx, sy = d_w / frame.width, d_h / frame.height
    box = _clip_box((bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy), d_w, d_h)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    step = max(1, int(np.ceil(np.sqrt((x2 - x1) * (y2 - y1) / MAX_SAMPLES))))
    vs, us = np.mgrid[y1:y2:step, x1:x2:step]
    z = depth[vs, us].astype(np.float64)
    valid = np.isfinite(z) & (z >= min_depth) & (z <= max_depth)
    if valid.sum() < MIN_OBJECT_POINTS:
        return None
    K = frame.intrinsics.scaled_to(d_w, d_h)
    points = backproject_pixels(us[valid], vs[valid], z[valid], K, to_base)
    surface = np.asarray(to_base.apply(surface_point))
    around = points[np.linalg.norm(points - surface, axis=1) < SUPPORT_RADIUS_M]
    if len(around) < MIN_OBJECT_POINTS:
        return None
    support = np.percentile(around[:, 2], SUPPORT_PERCENTILE)
    keep = (points[:, 2] > support + ABOVE_SUPPORT_M) & (
        np.linalg.norm(points - surface, axis=1) < NEAR_SURFACE_M)
    if keep.sum() < MIN_OBJECT_POINTS:
        return None
    low, high = np.percentile(points[keep], EXTENT_PERCENTILES, axis=0)
    centre = (0.5 * (low[0] + high[0]), 0.5 * (low[1] + high[1]), 0.5 * (support + high[2]))
    size = (float(high[0] - low[0]), float(high[1] - low[1]), float(high[2] - support))
    return (float(centre[0]), float(centre[1]), float(centre[2])), size


# --------------------------------------------------------------------------------------------
# Rotations
# --------------------------------------------------------------------------------------------


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> Quat:
    """Fixed-axis roll (X), pitch (Y), yaw (Z) -> unit quaternion (x, y, z, w), as tf2 setRPY."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )


def quat_from_yaw(yaw: float) -> Quat:
    """Rotation about z by ``yaw`` (a planar heading)."""
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def yaw_from_quat(q: Quat) -> float:
    """Heading (rotation about z) of ``q``, in (-pi, pi]."""
    x, y, z, w = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_multiply(a: Quat, b: Quat) -> Quat:
    """Hamilton product a * b (apply b first, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def quat_normalize(q: Quat) -> Quat:
    n = math.sqrt(sum(c * c for c in q))
    if not math.isfinite(n) or n < 1e-12:
        raise ValueError(f"not a rotation quaternion: {q}")
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


def quat_to_matrix(q: Quat) -> np.ndarray:
    x, y, z, w = quat_normalize(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quat_from_matrix(m: np.ndarray) -> Quat:
    """Rotation matrix -> quaternion (x, y, z, w) with w >= 0 (Shepperd's method, stable)."""
    m = np.asarray(m, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
    if q[3] < 0:
        q = (-q[0], -q[1], -q[2], -q[3])
    return quat_normalize(q)


# --------------------------------------------------------------------------------------------
# Rigid transforms
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """A rigid transform that maps points from a *source* frame into a *target* frame.

    Named like tf2: ``T_base_camera.apply(p_camera) == p_base``, and
    ``T_a_b.compose(T_b_c) == T_a_c``.
    """

    translation: Vec3 = (0.0, 0.0, 0.0)
    rotation: Quat = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        values = (*self.translation, *self.rotation)
        if len(self.translation) != 3 or len(self.rotation) != 4:
            raise ValueError("a transform needs a 3-vector translation and an (x,y,z,w) rotation")
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"non-finite transform: {values}")
        object.__setattr__(self, "translation", tuple(float(v) for v in self.translation))
        object.__setattr__(self, "rotation", quat_normalize(tuple(float(v) for v in self.rotation)))

    @classmethod
    def identity(cls) -> Transform:
        return cls()

    @classmethod
    def from_xyz_rpy(cls, x: float, y: float, z: float, roll: float = 0.0, pitch: float = 0.0,
                     yaw: float = 0.0) -> Transform:
        """The pose (x, y, z, roll, pitch, yaw) of a child frame in its parent, as a transform."""
        return cls((x, y, z), quat_from_rpy(roll, pitch, yaw))

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> Transform:
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"expected a 4x4 matrix, got {m.shape}")
        return cls(tuple(float(v) for v in m[:3, 3]), quat_from_matrix(m[:3, :3]))

    def as_matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = quat_to_matrix(self.rotation)
        m[:3, 3] = self.translation
        return m

    def apply(self, point: Vec3) -> Vec3:
        p = quat_to_matrix(self.rotation) @ np.asarray(point, dtype=np.float64)
        t = self.translation
        return (float(p[0] + t[0]), float(p[1] + t[1]), float(p[2] + t[2]))

    def compose(self, other: Transform) -> Transform:
        """``self`` after ``other``: (self.compose(other)).apply(p) == self.apply(other.apply(p))."""
        return Transform(self.apply(other.translation), quat_multiply(self.rotation, other.rotation))

    def inverse(self) -> Transform:
        x, y, z, w = self.rotation
        inv_rot = (-x, -y, -z, w)
        t = Transform((0.0, 0.0, 0.0), inv_rot).apply(self.translation)
        return Transform((-t[0], -t[1], -t[2]), inv_rot)


# Optical (x right, y down, z forward) -> body (x forward, y left, z up).  As a pose, the optical
# frame sits in the body frame at rpy (-pi/2, 0, -pi/2): the static transform every ROS camera
# driver publishes between <camera>_link and <camera>_optical_frame.
OPTICAL_TO_BODY: Transform = Transform((0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5))


def camera_extrinsics(x: float, y: float, z: float, roll: float = 0.0, pitch: float = 0.0,
                      yaw: float = 0.0) -> Transform:
    """Transform from the camera *optical* frame to the base frame.

    (x, y, z, roll, pitch, yaw) is the pose of the camera *body* frame (x forward, z up) in the
    base frame, which is how people measure a mount: ``camera_extrinsics(0, 0, 1.2, pitch=0.5)`` is
    a camera 1.2 m up looking forward and 0.5 rad down.
    """
    return Transform.from_xyz_rpy(x, y, z, roll, pitch, yaw).compose(OPTICAL_TO_BODY)


# --------------------------------------------------------------------------------------------
# Frame resolution
# --------------------------------------------------------------------------------------------


class FrameResolver(Protocol):
    """Looks up the transform that maps points in ``source_frame`` into ``target_frame``.

    The node implements this with tf2; tests and the CLI use :class:`StaticFrameResolver`.
    Returns None when the transform is unknown (never a guess: a wrong frame moves a robot arm).
    """

    def lookup(self, target_frame: str, source_frame: str, stamp: float) -> Transform | None:
        ...


def _frame_name(name: str) -> str:
    # tf2 rejects a leading slash, ROS 1 habits add one; both mean the same frame.
    return name.lstrip("/")


class StaticFrameResolver:
    """One fixed camera on one base: resolves camera<->base and each to itself, nothing else."""

    def __init__(self, base_frame: str, camera_frame: str, camera_to_base: Transform) -> None:
        if not base_frame or not camera_frame:
            raise FrameError("frame names must be non-empty")
        self.base_frame = _frame_name(base_frame)
        self.camera_frame = _frame_name(camera_frame)
        self.camera_to_base = camera_to_base

    def lookup(self, target_frame: str, source_frame: str, stamp: float = 0.0) -> Transform | None:
        return _one_camera(self.base_frame, self.camera_frame, target_frame, source_frame,
                           lambda: self.camera_to_base)


def _one_camera(base_frame: str, camera_frame: str, target_frame: str, source_frame: str,
                camera_to_base: Callable[[], Transform | None]) -> Transform | None:
    """A resolver of one camera on one base: camera <-> base and each to itself, else None;
    ``camera_to_base`` is asked only when the camera's pose is needed."""
    target, source = _frame_name(target_frame), _frame_name(source_frame)
    if {target, source} - {base_frame, camera_frame}:
        return None
    if target == source:
        return Transform.identity()
    pose = camera_to_base()
    if pose is None:
        return None
    return pose if target == base_frame else pose.inverse()


class CameraPoseHistory:
    """A camera that moves on the robot (a pan-tilt unit) and reports its pose, for robots
    without TF: the node's ``camera_pose_topic``.  Each pose is the camera *body* frame in the
    base frame (as ``camera_pose_in_base``) at a stamp; a lookup at an image's stamp takes the
    newest pose not after it (``tolerance_s`` of clock skew allowed), and none older than
    ``max_gap_s`` before it - an image of a camera whose pose is unknown is placed nowhere."""

    def __init__(self, base_frame: str, camera_frame: str, max_gap_s: float = 0.5,
                 tolerance_s: float = 1e-3, history: int = 400) -> None:
        if not base_frame or not camera_frame:
            raise FrameError("frame names must be non-empty")
        self.base_frame = _frame_name(base_frame)
        self.camera_frame = _frame_name(camera_frame)
        self.max_gap_s, self.tolerance_s, self.history = max_gap_s, tolerance_s, history
        self._poses: list[tuple[float, Transform]] = []  # (stamp, optical -> base), by stamp

    def add(self, stamp: float, camera_to_base: Transform) -> None:
        """The camera's optical frame -> base frame at ``stamp`` (see :func:`camera_extrinsics`)."""
        index = bisect.bisect_right([s for s, _ in self._poses], stamp)
        self._poses.insert(index, (float(stamp), camera_to_base))
        del self._poses[:-self.history]

    def lookup(self, target_frame: str, source_frame: str, stamp: float = 0.0) -> Transform | None:
        return _one_camera(self.base_frame, self.camera_frame, target_frame, source_frame,
                           lambda: self._pose_at(stamp))

    def _pose_at(self, stamp: float) -> Transform | None:
        stamps = [s for s, _ in self._poses]
        index = bisect.bisect_right(stamps, stamp + self.tolerance_s) - 1
        if index < 0 or stamp - stamps[index] > self.max_gap_s:
            return None
        return self._poses[index][1]

    def why_not(self, target_frame: str, source_frame: str) -> str:
        known = {self.base_frame, self.camera_frame}
        if {_frame_name(target_frame), _frame_name(source_frame)} - known:
            return (f"only '{self.base_frame}' <-> '{self.camera_frame}' is known (the camera "
                    f"pose topic); not '{source_frame}' -> '{target_frame}'")
        return (f"no camera pose within {self.max_gap_s:g} s before the image (camera pose "
                f"topic): where the camera looked is unknown")


def no_extrinsics_reason(base_frame: str, camera_frame: str) -> str:
    """Why nothing can be placed in the base frame when the camera's pose on the robot is
    unknown (what results say instead of inventing an identity extrinsic)."""
    return (f"no camera extrinsics: set camera_pose_in_base or provide TF "
            f"{_frame_name(base_frame) or 'base_frame'} <- "
            f"{_frame_name(camera_frame) or 'camera_frame'}")


class UnknownExtrinsics:
    """The resolver for a camera whose pose on the robot nobody gave (no TF, no
    camera_pose_in_base): every frame maps only onto itself, and :meth:`why_not` says why."""

    def __init__(self, base_frame: str) -> None:
        self.base_frame = _frame_name(base_frame)

    def lookup(self, target_frame: str, source_frame: str, stamp: float = 0.0) -> Transform | None:
        if target_frame and _frame_name(target_frame) == _frame_name(source_frame):
            return Transform.identity()
        return None

    def why_not(self, target_frame: str, source_frame: str) -> str:
        return no_extrinsics_reason(target_frame or self.base_frame, source_frame)


def unresolved_reason(frames: object, target_frame: str, source_frame: str) -> str:
    """Why ``frames`` returned no transform ``target_frame`` <- ``source_frame``: its own
    ``why_not`` when it has one, else a generic sentence."""
    why_not = getattr(frames, "why_not", None)
    if callable(why_not):
        return str(why_not(target_frame, source_frame))
    return f"cannot transform from '{source_frame}' to '{target_frame}'"
