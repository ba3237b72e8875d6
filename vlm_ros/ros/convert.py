"""ROS 2 messages <-> numpy / core types, without depending on PyPI's cv-bridge.

Why our own conversion: the ``cv-bridge`` package on PyPI is a ROS 1 leftover that does not work
with ROS 2 messages, and a ROS install's ``cv_bridge`` is not there on pip-only machines.  The
numpy path below reads ``sensor_msgs/Image`` directly: one ``np.frombuffer`` view over the message
bytes, strided to skip row padding, copied only when the byte order (big-endian data) or a channel
reorder (BGR -> RGB, dropping alpha) forces it.  When the real ROS 2 ``cv_bridge`` is importable it
is used instead (``BRIDGE`` says which), after the same validation, so errors read the same.

Conventions: colour images come out as HxWx3 uint8 RGB whatever the wire encoding; mono and depth
images come out as the raw 2-D array (uint8, uint16 or float32), to be turned into metres with
:func:`vlm_ros.core.geometry.depth_to_meters`.  Arrays returned for rgb8, mono and depth may be
read-only views of the message buffer: copy before drawing on them.

sensor_msgs / geometry_msgs / builtin_interfaces are imported lazily, so the pure functions of
this module import on machines without ROS.
"""

from __future__ import annotations

import array
import math
import struct
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vlm_ros.core.calibration import Calibration, CameraInputError, intrinsics_for_image
from vlm_ros.core.types import CameraIntrinsics, Goal

DEFAULT_MAX_PIXELS = 50_000_000


class ConversionError(ValueError):
    """A message cannot be turned into an array (or back); the message says exactly why."""


@dataclass(frozen=True)
class EncodingInfo:
    """How one sensor_msgs/Image encoding lays out a pixel, and what we return for it."""

    dtype: str  # numpy dtype of one channel (native byte order)
    channels: int
    order: str  # "rgb" | "bgr" | "rgba" | "bgra" | "raw" (mono / depth: returned as is)


# The encodings we accept.  A new one is one entry (and a round-trip test).  8UC3 is generic
# 3-channel data; drivers that publish it are OpenCV programs, so it is read as BGR.
ENCODINGS: dict[str, EncodingInfo] = {
    "rgb8": EncodingInfo("u1", 3, "rgb"),
    "bgr8": EncodingInfo("u1", 3, "bgr"),
    "8UC3": EncodingInfo("u1", 3, "bgr"),
    "rgba8": EncodingInfo("u1", 4, "rgba"),
    "bgra8": EncodingInfo("u1", 4, "bgra"),
    "mono8": EncodingInfo("u1", 1, "raw"),
    "8UC1": EncodingInfo("u1", 1, "raw"),
    "mono16": EncodingInfo("u2", 1, "raw"),
    "16UC1": EncodingInfo("u2", 1, "raw"),
    "32FC1": EncodingInfo("f4", 1, "raw"),
}

# wire channel order -> the OpenCV conversion to RGB (about 10x faster than numpy fancy indexing)
_TO_RGB: dict[str, int] = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB,
                           "bgra": cv2.COLOR_BGRA2RGB}
# (channels of the caller's RGB/RGBA array, wire order) -> OpenCV conversion (None: as is)
_FROM_RGB: dict[tuple[int, str], int | None] = {
    (3, "rgb"): None, (3, "bgr"): cv2.COLOR_RGB2BGR,
    (3, "rgba"): cv2.COLOR_RGB2RGBA, (3, "bgra"): cv2.COLOR_RGB2BGRA,
    (4, "rgb"): cv2.COLOR_RGBA2RGB, (4, "bgr"): cv2.COLOR_RGBA2BGR,
    (4, "rgba"): None, (4, "bgra"): cv2.COLOR_RGBA2BGRA,
}


# --------------------------------------------------------------------------------------------
# Which bridge
# --------------------------------------------------------------------------------------------


def _ros2_cv_bridge() -> Any | None:
    """The ROS 2 cv_bridge module if one is installed, else None (never PyPI's ROS 1 copy)."""
    try:
        import cv_bridge  # type: ignore[import-not-found]
    except Exception:  # a broken install can raise anything at import; treat as absent
        return None
    location = str(getattr(cv_bridge, "__file__", "") or "")
    has_boost = False
    try:
        from cv_bridge.boost import cv_bridge_boost  # type: ignore[import-not-found]  # noqa: F401

        has_boost = True
    except Exception:
        pass
    from_ros_tree = "/opt/ros/" in location or "/install/cv_bridge/" in location
    if hasattr(cv_bridge, "CvBridge") and (from_ros_tree or has_boost):
        return cv_bridge
    return None


_CV_BRIDGE_MODULE = _ros2_cv_bridge()
BRIDGE: str = "cv_bridge" if _CV_BRIDGE_MODULE is not None else "numpy"


# --------------------------------------------------------------------------------------------
# sensor_msgs/Image
# --------------------------------------------------------------------------------------------


def _encoding_info(encoding: str) -> EncodingInfo:
    info = ENCODINGS.get(encoding)
    if info is None:
        known = ", ".join(ENCODINGS)
        raise ConversionError(f"unsupported image encoding {encoding!r}; supported: {known}")
    return info


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ConversionError(f"zero-size image ({width}x{height})")
    if width * height > max_pixels:
        raise ConversionError(
            f"image of {width}x{height} = {width * height / 1e6:.1f} MP exceeds the limit of "
            f"{max_pixels / 1e6:.1f} MP (max_pixels)"
        )


def _validated_view(msg: Any, max_pixels: int) -> tuple[np.ndarray, EncodingInfo]:
    """The message bytes as an HxWxC array in native byte order, checked against the header."""
    info = _encoding_info(msg.encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    _check_size(width, height, max_pixels)
    item = np.dtype(info.dtype).itemsize
    row_bytes = width * info.channels * item
    if step < row_bytes:
        raise ConversionError(
            f"step {step} is smaller than width*channels*bytes = {width}*{info.channels}*{item} "
            f"= {row_bytes} for {msg.encoding}"
        )
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size != step * height:
        raise ConversionError(
            f"data length {buffer.size} != step*height = {step}*{height} = {step * height}"
        )
    wire = np.dtype(info.dtype).newbyteorder(">" if msg.is_bigendian else "<")
    if step % item == 0:
        # rows as a 2-D array of items, then drop the padding with a slice: still a view
        rows = buffer.view(wire).reshape(height, step // item)
        image = rows[:, : width * info.channels].reshape(height, width, info.channels)
    else:  # padding that is not a whole number of items: rows are misaligned, so copy them
        rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
        image = np.ascontiguousarray(rows).view(wire).reshape(height, width, info.channels)
    if not wire.isnative:  # big-endian data on a little-endian host (or the reverse): copy
        image = image.astype(wire.newbyteorder("="))
    return image, info


def _to_rgb_or_raw(image: np.ndarray, info: EncodingInfo) -> np.ndarray:
    """Wire-order HxWxC pixels -> what image_to_array promises (RGB, or the raw 2-D array)."""
    if info.order == "raw":
        return image[:, :, 0] if image.ndim == 3 else image
    if info.order == "rgb":
        return image
    # BGR / alpha need a pass over the pixels anyway; the result is a fresh contiguous array
    return cv2.cvtColor(image, _TO_RGB[info.order])


def _image_to_array_numpy(msg: Any, max_pixels: int) -> tuple[np.ndarray, str]:
    image, info = _validated_view(msg, max_pixels)
    return _to_rgb_or_raw(image, info), msg.encoding


def _image_to_array_cv_bridge(msg: Any, max_pixels: int) -> tuple[np.ndarray, str]:
    """cv_bridge reads the buffer ("passthrough"); the channel order is ours, so both paths agree
    even for encodings cv_bridge will not colour-convert (8UC3)."""
    info = _validated_view(msg, max_pixels)[1]  # same errors as the numpy path
    bridge = _CV_BRIDGE_MODULE.CvBridge()  # type: ignore[union-attr]
    try:
        image = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    except Exception as exc:  # CvBridgeError and friends
        raise ConversionError(f"cv_bridge could not convert {msg.encoding}: {exc}") from exc
    return _to_rgb_or_raw(np.asarray(image), info), msg.encoding


def image_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS,
                   use_cv_bridge: bool | None = None) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (array, encoding).

    Colour encodings give HxWx3 uint8 RGB; mono/depth encodings give the raw HxW array.
    ``use_cv_bridge`` None means "if the ROS 2 cv_bridge is installed" (see ``BRIDGE``).
    """
    if use_cv_bridge is None:
        use_cv_bridge = BRIDGE == "cv_bridge"
    if use_cv_bridge:
        if _CV_BRIDGE_MODULE is None:
            raise ConversionError("the ROS 2 cv_bridge is not installed")
        return _image_to_array_cv_bridge(msg, max_pixels)
    return _image_to_array_numpy(msg, max_pixels)


def _wire_array(array_: np.ndarray, encoding: str, info: EncodingInfo) -> np.ndarray:
    """Caller's array (RGB for colour) -> HxWxC array in the encoding's channel order and dtype."""
    target = np.dtype(info.dtype)
    if info.order == "raw":
        image = array_[:, :, 0] if array_.ndim == 3 and array_.shape[2] == 1 else array_
        if image.ndim != 2:
            raise ConversionError(f"{encoding} needs a 2-D array, got shape {array_.shape}")
        if image.dtype != target:
            if target.kind == "f" and image.dtype.kind in "fiu":
                image = image.astype(target)
            elif target.kind == "u" and image.dtype.kind in "iu":
                info_t = np.iinfo(target)
                if image.size and (image.min() < info_t.min or image.max() > info_t.max):
                    raise ConversionError(f"values out of range for {encoding} ({target})")
                image = image.astype(target)
            else:
                raise ConversionError(f"{encoding} needs {target} data, got {image.dtype}")
        return image[:, :, None]
    if array_.ndim != 3 or array_.shape[2] not in (3, 4):
        raise ConversionError(f"{encoding} needs an HxWx3 RGB (or HxWx4 RGBA) array, "
                              f"got shape {array_.shape}")
    if array_.dtype != np.uint8:
        raise ConversionError(f"{encoding} needs uint8 data, got {array_.dtype}")
    code = _FROM_RGB[(array_.shape[2], info.order)]
    return array_ if code is None else cv2.cvtColor(np.ascontiguousarray(array_), code)


def array_to_image(array_: np.ndarray, encoding: str, header: Any = None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """numpy array -> sensor_msgs/Image, the inverse of :func:`image_to_array`.

    Colour encodings take an HxWx3 RGB array (HxWx4 RGBA for the alpha encodings also works) and
    reorder it for the wire, so ``image_to_array(array_to_image(rgb, "bgr8"))[0] == rgb``.
    Data is written little-endian without row padding.
    """
    from sensor_msgs.msg import Image

    info = _encoding_info(encoding)
    if array_.ndim < 2:
        raise ConversionError(f"an image needs at least 2 dimensions, got shape {array_.shape}")
    height, width = int(array_.shape[0]), int(array_.shape[1])
    _check_size(width, height, max_pixels)
    wire = np.ascontiguousarray(_wire_array(array_, encoding, info), dtype=np.dtype(info.dtype))
    if sys.byteorder != "little" and wire.dtype.itemsize > 1:
        wire = wire.astype(wire.dtype.newbyteorder("<"))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * info.channels * wire.dtype.itemsize
    data = array.array("B")
    data.frombytes(memoryview(wire).cast("B"))  # one copy, straight into the message's buffer
    msg.data = data
    return msg


# --------------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage
# --------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# compressed_depth_image_transport prepends ConfigHeader {int32 format; float depthQuantA, B}
_DEPTH_HEADER = struct.Struct("<iff")


_PNG_CHUNK = struct.Struct(">I4s")


def _check_png(data: bytes, max_pixels: int) -> None:
    """Refuse a PNG whose chunk lengths overrun the data, or whose header is too large, before
    OpenCV decodes it: its reader reserves whatever a chunk claims (a 374-byte message with one
    corrupt length byte cost 4 GB), so a bad publisher could exhaust the robot's memory."""
    if not data.startswith(_PNG_SIGNATURE):
        return
    offset = len(_PNG_SIGNATURE)
    while offset + _PNG_CHUNK.size <= len(data):
        length, kind = _PNG_CHUNK.unpack_from(data, offset)
        if length > len(data) - offset - _PNG_CHUNK.size - 4:  # 4: the chunk's CRC
            raise ConversionError(f"corrupt PNG: chunk {kind!r} claims {length} bytes, "
                                  f"the message holds {len(data)}")
        if kind == b"IHDR" and length >= 8:
            width, height = struct.unpack_from(">II", data, offset + _PNG_CHUNK.size)
            _check_size(width, height, max_pixels)
        if kind == b"IEND":
            return
        offset += _PNG_CHUNK.size + length + 4


def _decode_compressed_depth(data: bytes, fmt: str, max_pixels: int) -> np.ndarray:
    """compressedDepth: a 12-byte header, then a 16-bit PNG of mm (16UC1) or inverse depth (32FC1)."""
    start = data.find(_PNG_SIGNATURE)
    if start < 0:
        raise ConversionError(f"compressedDepth data ({fmt!r}) holds no PNG image")
    _check_png(data[start:], max_pixels)
    png = cv2.imdecode(np.frombuffer(data[start:], np.uint8), cv2.IMREAD_UNCHANGED)
    if png is None or png.dtype != np.uint16 or png.ndim != 2:
        raise ConversionError(f"compressedDepth PNG ({fmt!r}) is not a 16-bit single-channel image")
    _check_size(png.shape[1], png.shape[0], max_pixels)
    if fmt.split(";")[0].strip() == "32FC1":
        if start < _DEPTH_HEADER.size:
            raise ConversionError("compressedDepth 32FC1 data lacks its quantisation header")
        _, quant_a, quant_b = _DEPTH_HEADER.unpack_from(data, start - _DEPTH_HEADER.size)
        quantised = png.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.float32(quant_a) / (quantised - np.float32(quant_b))
        depth[png == 0] = np.nan
        return depth.astype(np.float32)
    return png


def compressed_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg / png / compressedDepth) -> array.

    The dtype and shape say what came out, so no encoding string is returned: colour images give
    HxWx3 uint8 RGB; grey ones HxW uint8; 16-bit PNGs HxW uint16 (depth units, "16UC1");
    compressedDepth 32FC1 streams HxW float32 metres with NaN for no return ("32FC1").
    """
    fmt = str(msg.format or "")
    data = bytes(msg.data)
    if not data:
        raise ConversionError("compressed image has no data")
    if "compresseddepth" in fmt.lower():
        return _decode_compressed_depth(data, fmt, max_pixels)
    _check_png(data, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ConversionError(f"could not decode compressed image (format {fmt!r})")
    _check_size(image.shape[1], image.shape[0], max_pixels)
    if image.ndim == 2:
        if image.dtype in (np.uint8, np.uint16):
            return image
        raise ConversionError(f"unsupported compressed sample type {image.dtype}")
    if image.dtype != np.uint8:
        raise ConversionError(f"unsupported compressed colour sample type {image.dtype}")
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


# --------------------------------------------------------------------------------------------
# sensor_msgs/CameraInfo
# --------------------------------------------------------------------------------------------


def camera_info_to_calibration(msg: Any) -> Calibration:
    """sensor_msgs/CameraInfo -> the ROS-free :class:`Calibration` (K, P, size, binning, roi)."""
    roi = msg.roi
    return Calibration(width=int(msg.width), height=int(msg.height),
                       k=tuple(float(v) for v in msg.k), p=tuple(float(v) for v in msg.p),
                       binning_x=int(msg.binning_x), binning_y=int(msg.binning_y),
                       roi=(int(roi.x_offset), int(roi.y_offset), int(roi.width),
                            int(roi.height)))


def camera_info_to_intrinsics(msg: Any, image_size: tuple[int, int] | None = None,
                              rectified: bool = False) -> CameraIntrinsics:
    """CameraInfo -> intrinsics of the *published* image (K, or P when ``rectified``, adjusted
    for ROI and binning; see :mod:`vlm_ros.core.calibration`).

    ``image_size`` (width, height) is the image the intrinsics are for: it must be the published
    size or an exact integer binning of it.  A zero K (an uncalibrated driver) raises, because
    every 3D point from it would be garbage; so does a calibration for another image.
    """
    calibration = camera_info_to_calibration(msg)
    size = image_size if image_size is not None else calibration.published_size()
    try:
        return intrinsics_for_image(calibration, size[0], size[1], rectified)
    except CameraInputError as exc:
        raise ConversionError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# Time and poses
# --------------------------------------------------------------------------------------------


def stamp_to_seconds(stamp_msg: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return int(stamp_msg.sec) + int(stamp_msg.nanosec) * 1e-9


def seconds_to_stamp(sec: float) -> Any:
    """Float seconds -> builtin_interfaces/Time (nanosecond rounding never yields 1e9 ns)."""
    from builtin_interfaces.msg import Time

    if not math.isfinite(sec) or sec < 0:
        raise ConversionError(f"a ROS time must be finite and >= 0, got {sec}")
    total_ns = round(sec * 1e9)
    whole, nanos = divmod(total_ns, 1_000_000_000)
    if whole > 2**31 - 1:
        raise ConversionError(f"time {sec} s does not fit builtin_interfaces/Time")
    return Time(sec=int(whole), nanosec=int(nanos))


def pose_to_msg(goal: Goal, stamp_msg: Any = None) -> Any:
    """Goal -> geometry_msgs/PoseStamped in the goal's frame; stamp from ``stamp_msg`` or the goal."""
    from geometry_msgs.msg import PoseStamped

    values = (*goal.pose.position, *goal.pose.orientation)
    if not all(math.isfinite(float(v)) for v in values):
        raise ConversionError(f"refusing to publish a non-finite {goal.kind} pose: {values}")
    msg = PoseStamped()
    msg.header.frame_id = goal.frame_id
    msg.header.stamp = stamp_msg if stamp_msg is not None else seconds_to_stamp(goal.stamp)
    p, q = goal.pose.position, goal.pose.orientation
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in p)
    (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
     msg.pose.orientation.w) = (float(v) for v in q)
    return msg
