"""Does this calibration describe this image?  Camera intrinsics and depth, checked before use.

One rule set for the node (sensor_msgs/CameraInfo) and the CLI (calibration files), because a
calibration that does not describe the image puts every 3D point - and every goal - in the wrong
place (a 1280x720 CameraInfo silently rescaled onto a 640x480 image moved a grasp by 0.56 m):

* **Which matrix.**  A rectified image (image_proc's ``image_rect``, a driver that rectifies on
  board) is described by P: its fx, fy, cx, cy (``P[0] P[5] P[2] P[6]``; Tx/Ty, the stereo
  baseline terms, do not matter for one camera).  A raw image (``image_raw``) is described by K.
  This is how ROS's image_geometry reads CameraInfo.  Lens distortion of a raw image is not
  removed: wide lenses want the rectified image.
* **Which size.**  K and P describe the full-resolution sensor; a driver that bins or crops
  (``binning_x/y``, ``roi`` - REP-104) publishes a smaller image, which CameraInfo's own rule
  maps K onto: ``fx' = fx / binning_x``, ``cx' = (cx - roi.x_offset) / binning_x``, and the
  image is ``roi.width / binning_x`` wide (the whole sensor when the roi is zero).  A rectified
  image with a cropping roi is refused: its rectified window is not determined by the message.
* **Size mismatch.**  The image must then be exactly that size, or an exact integer binning of
  it (both sides divided by the same whole number), in which case the intrinsics scale exactly.
  Anything else - another aspect ratio, an off-by-one, an upscaled image - is refused.
* **Depth.**  A depth image must be registered to the colour image: the same size, or an exact
  integer binning of it.  A transposed or differently-shaped depth image is refused.

Every refusal is a :class:`CameraInputError` with a one-line message.  ROS-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from vlm_ros.core.types import CameraIntrinsics


class CameraInputError(ValueError):
    """A colour image, its depth and its calibration do not fit together (one-line reason)."""


@dataclass(frozen=True)
class Calibration:
    """What a sensor_msgs/CameraInfo (or a calibration file) says about the camera.

    ``k`` has 9 row-major entries, ``p`` 12 (or none: a file that gives only K, which then
    describes the image in both modes).  ``width``/``height`` are the calibrated (full sensor)
    resolution; binning 0 or 1 means none; ``roi`` is (x_offset, y_offset, width, height) in
    full-resolution pixels, all zero for the whole sensor.
    """

    width: int
    height: int
    k: tuple[float, ...]
    p: tuple[float, ...] = ()
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)

    @classmethod
    def from_intrinsics(cls, intrinsics: CameraIntrinsics) -> Calibration:
        """The calibration of a plain pinhole camera (K == P) at ``intrinsics``' size."""
        k = (intrinsics.fx, 0.0, intrinsics.cx, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 1.0)
        p = (intrinsics.fx, 0.0, intrinsics.cx, 0.0, 0.0, intrinsics.fy, intrinsics.cy, 0.0,
             0.0, 0.0, 1.0, 0.0)
        return cls(int(intrinsics.width), int(intrinsics.height), k, p)

    def published_size(self) -> tuple[int, int]:
        """(width, height) of the image the camera publishes: the roi (or the whole sensor),
        binned."""
        bx, by = _binning(self.binning_x), _binning(self.binning_y)
        width, height = self.width, self.height
        if _crops(self.roi, self.width, self.height):
            width, height = int(self.roi[2]), int(self.roi[3])
        return width // bx, height // by


def _binning(value: int) -> int:
    return int(value) if int(value) > 1 else 1


def _crops(roi: Sequence[int], width: int, height: int) -> bool:
    """Does ``roi`` select less than the whole sensor?  (All zero: the whole sensor.)"""
    x, y, w, h = (int(v) for v in roi)
    if w <= 0 or h <= 0:
        return False
    return (x, y, w, h) != (0, 0, int(width), int(height))


def integer_binning(full: tuple[int, int], image: tuple[int, int]) -> int | None:
    """n >= 1 when ``image`` (width, height) is ``full`` with both sides divided by exactly n,
    else None."""
    (fw, fh), (w, h) = full, image
    if w <= 0 or h <= 0 or fw % w or fh % h:
        return None
    n = fw // w
    return n if n >= 1 and fh // h == n else None


def intrinsics_for_image(calibration: Calibration, image_width: int, image_height: int,
                         rectified: bool) -> CameraIntrinsics:
    """The intrinsics of the ``image_width`` x ``image_height`` image ``calibration`` is for.

    ``rectified`` chooses P (rectified image) or K (raw image).  CameraInputError when the
    calibration is missing, invalid or for another image (see the module docstring).
    """
    k = [float(v) for v in calibration.k]
    if len(k) != 9 or not any(k):
        raise CameraInputError("CameraInfo has an all-zero K: the camera is not calibrated")
    p = [float(v) for v in calibration.p]
    if rectified and p:
        if len(p) != 12 or not any(p):
            raise CameraInputError(
                "CameraInfo has an all-zero P, which a rectified image needs (image_rectified "
                "is true); if the image is raw, set image_rectified to false to use K")
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
    else:
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise CameraInputError(f"CameraInfo gives invalid intrinsics: fx={fx} fy={fy} cx={cx} "
                               f"cy={cy}")
    if calibration.width <= 0 or calibration.height <= 0:
        raise CameraInputError(f"CameraInfo gives invalid intrinsics: its size is "
                               f"{calibration.width}x{calibration.height}")
    bx, by = _binning(calibration.binning_x), _binning(calibration.binning_y)
    x_off = y_off = 0
    if _crops(calibration.roi, calibration.width, calibration.height):
        if rectified and p:
            raise CameraInputError(
                "CameraInfo has a cropping roi on a rectified image: the rectified window it "
                "selects is not given by the message; publish the whole rectified image or "
                "the raw image (image_rectified false)")
        x_off, y_off = int(calibration.roi[0]), int(calibration.roi[1])
    width, height = calibration.published_size()
    if width <= 0 or height <= 0:
        raise CameraInputError(f"CameraInfo gives invalid intrinsics: its image is "
                               f"{width}x{height}")
    published = CameraIntrinsics(fx=fx / bx, fy=fy / by, cx=(cx - x_off) / bx,
                                 cy=(cy - y_off) / by, width=width, height=height)
    n = integer_binning((width, height), (int(image_width), int(image_height)))
    if n is None:
        binned = (f" (after its binning {bx}x{by})" if (bx, by) != (1, 1) else "")
        raise CameraInputError(
            f"CameraInfo is for a {width}x{height} image{binned} but the image is "
            f"{image_width}x{image_height}: not the same size nor an exact integer binning of "
            f"it, so this calibration does not describe the image")
    if n == 1:
        return published
    return CameraIntrinsics(fx=published.fx / n, fy=published.fy / n, cx=published.cx / n,
                            cy=published.cy / n, width=width // n, height=height // n)


def check_depth_shape(depth_shape: tuple[int, ...], image_width: int, image_height: int,
                      name: str = "depth") -> None:
    """A depth image must be registered to the colour image: the same size, or an exact integer
    binning of it (half-resolution depth).  CameraInputError otherwise."""
    if len(depth_shape) != 2:
        raise CameraInputError(f"{name} must be single-channel, got shape {tuple(depth_shape)}")
    height, width = int(depth_shape[0]), int(depth_shape[1])
    if integer_binning((int(image_width), int(image_height)), (width, height)) is None:
        raise CameraInputError(
            f"{name} is {width}x{height}, not registered to the {image_width}x{image_height} "
            f"colour image (it must be the same size or an exact integer binning of it)")


def check_camera_input(image_width: int, image_height: int,
                       depth_shape: tuple[int, ...] | None,
                       calibration: Calibration | None, rectified: bool,
                       depth_name: str = "depth") -> CameraIntrinsics | None:
    """The one consistency check of the node and the CLI: depth registered to the image, and
    the calibration's intrinsics for exactly this image (None without a calibration)."""
    if depth_shape is not None:
        check_depth_shape(depth_shape, image_width, image_height, depth_name)
    if calibration is None:
        return None
    return intrinsics_for_image(calibration, image_width, image_height, rectified)
