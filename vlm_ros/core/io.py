"""Files -> core values for the CLI: images, depth images and camera calibrations.

Every failure is an :class:`InputError` with a one-line message naming the file and the problem,
because the CLI prints it to a user who typed a path, not a traceback.  Files are read as bytes and
decoded with ``cv2.imdecode`` so paths with non-ASCII characters work everywhere.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from vlm_ros.core.calibration import Calibration
from vlm_ros.core.geometry import depth_to_meters
from vlm_ros.core.types import CameraIntrinsics


class InputError(ValueError):
    """A user-supplied file is missing or not what it claims to be."""


def _read_bytes(path: str | Path, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        return np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read {what} file {p}: {exc.strerror or exc}") from exc


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale 16-bit or float images to uint8 so every backend sees the same 0..255 range."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.uint32) // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):  # float images are 0..1 by OpenCV convention
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise InputError(f"unsupported image sample type {image.dtype}")


def load_image(path: str | Path) -> np.ndarray:
    """An image file -> HxWx3 uint8 RGB (grey is replicated, alpha dropped, 16-bit scaled)."""
    data = _read_bytes(path, "image")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"not a readable image: {path}")
    image = _to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise InputError(f"{path}: images with {channels} channels are not supported")


def load_depth(path: str | Path, depth_scale: float = 0.001) -> np.ndarray:
    """A depth file -> HxW float32 metres, NaN where there is no return.

    Accepted: a 16-bit PNG/TIFF of integer depth units (``depth_scale`` m each; millimetres by
    default, the ROS 16UC1 convention), a ``.npy`` of float metres or integer units, or a 32-bit
    float TIFF/EXR in metres (EXR only if this OpenCV build reads it).  8-bit images are refused:
    an 8-bit "depth" is a visualisation, and reading it as millimetres would put every object
    within 25 cm of the lens.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        if not p.is_file():
            raise InputError(f"depth file not found: {p}")
        try:
            raw = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"not a readable .npy depth file: {p} ({exc})") from exc
    else:
        data = _read_bytes(p, "depth")
        raw = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH) if data.size else None
        if raw is None:
            raise InputError(f"not a readable depth image: {p}")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim != 2:
        raise InputError(f"{p}: a depth image must be single-channel, got shape {raw.shape}")
    if np.issubdtype(raw.dtype, np.floating):
        return depth_to_meters(raw.astype(np.float32), "32FC1")
    if raw.dtype == np.uint8:
        raise InputError(f"{p}: 8-bit images are not depth; save depth as 16-bit PNG (mm) or .npy")
    if np.issubdtype(raw.dtype, np.integer):
        return depth_to_meters(raw, "16UC1", depth_scale)
    raise InputError(f"{p}: unsupported depth sample type {raw.dtype}")


def _number(value: Any, name: str, path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: '{name}' must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise InputError(f"{path}: '{name}' is not finite")
    return number


def _camera_matrix(doc: dict[str, Any], path: Path) -> list[Any]:
    """The 9 row-major K entries from either calibration layout."""
    if "camera_matrix" in doc:  # camera_calibration / camera_info_manager YAML
        matrix = doc["camera_matrix"]
        data = matrix.get("data") if isinstance(matrix, dict) else matrix
        if isinstance(matrix, dict) and (matrix.get("rows", 3), matrix.get("cols", 3)) != (3, 3):
            raise InputError(f"{path}: camera_matrix must be 3x3")
    else:  # a dumped sensor_msgs/CameraInfo: 'k' (ROS 2) or 'K' (ROS 1)
        data = doc.get("k", doc.get("K"))
    if data is None:
        raise InputError(f"{path}: no 'camera_matrix' or 'k' entry; is this a camera calibration?")
    if not isinstance(data, list | tuple) or len(data) != 9:
        raise InputError(f"{path}: the camera matrix must have 9 numbers")
    return list(data)


def _projection_matrix(doc: dict[str, Any], path: Path) -> tuple[float, ...]:
    """The 12 row-major P entries, or () when the file gives none."""
    if "projection_matrix" in doc:
        matrix = doc["projection_matrix"]
        data = matrix.get("data") if isinstance(matrix, dict) else matrix
    else:
        data = doc.get("p", doc.get("P"))
    if data is None:
        return ()
    if not isinstance(data, list | tuple) or len(data) != 12:
        raise InputError(f"{path}: the projection matrix must have 12 numbers")
    return tuple(_number(v, "projection matrix entry", path) for v in data)


def _integer(doc: dict[str, Any], name: str, path: Path) -> int:
    value = doc.get(name, 0)
    number = _number(value if value is not None else 0, name, path)
    if number != int(number) or number < 0:
        raise InputError(f"{path}: '{name}' must be a whole number >= 0, got {value!r}")
    return int(number)


def _doc(path: str | Path) -> tuple[dict[str, Any], Path]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"camera info file not found: {p}")
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not docs or not isinstance(docs[0], dict):
        raise InputError(f"{p}: expected a YAML mapping with a camera calibration")
    return docs[0], p


def load_calibration(path: str | Path) -> Calibration:
    """Camera calibration YAML -> :class:`Calibration` (K, P when given, size, binning, roi).

    Reads both layouts people actually have: the camera_calibration / camera_info_manager file
    (``image_width``, ``image_height``, ``camera_matrix: {rows, cols, data}``,
    ``projection_matrix``) and a dumped CameraInfo message (``width``, ``height``, ``k``, ``p``,
    ``binning_x/y``, ``roi``), including ``ros2 topic echo --once`` output (its trailing ``---``
    document separator is fine).  A file without P gives K for both raw and rectified images.
    """
    doc, p = _doc(path)
    k = tuple(_number(v, "camera matrix entry", p) for v in _camera_matrix(doc, p))
    width = doc.get("image_width", doc.get("width"))
    height = doc.get("image_height", doc.get("height"))
    if width is None or height is None:
        raise InputError(f"{p}: missing image size ('image_width'/'image_height' or 'width'/'height')")
    roi = doc.get("roi") or {}
    if not isinstance(roi, dict):
        raise InputError(f"{p}: 'roi' must be a mapping (x_offset, y_offset, width, height)")
    return Calibration(
        width=int(_number(width, "width", p)), height=int(_number(height, "height", p)),
        k=k, p=_projection_matrix(doc, p),
        binning_x=_integer(doc, "binning_x", p), binning_y=_integer(doc, "binning_y", p),
        roi=(_integer(roi, "x_offset", p), _integer(roi, "y_offset", p),
             _integer(roi, "width", p), _integer(roi, "height", p)))


def load_camera_info(path: str | Path) -> CameraIntrinsics:
    """Camera calibration YAML -> the intrinsics (K) at the calibrated size (see
    :func:`load_calibration` for the layouts read)."""
    calibration = load_calibration(path)
    k = calibration.k
    intrinsics = CameraIntrinsics(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=calibration.width,
                                  height=calibration.height)
    if not intrinsics.is_valid():
        raise InputError(f"{path}: invalid intrinsics (fx, fy and image size must be > 0): "
                         f"{intrinsics}")
    return intrinsics


def intrinsics_from_fov(width: int, height: int, hfov_deg: float = 60.0) -> CameraIntrinsics:
    """A plausible pinhole camera when no calibration exists: square pixels, centred axis.

    60 degrees is a typical webcam/RGB-D horizontal field of view; 3D points from it are only as
    good as that guess, which is why the CLI says when it uses this.  The principal point is the
    image centre in pixel-centre coordinates, ((W - 1) / 2, (H - 1) / 2).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return CameraIntrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))
