"""Message <-> numpy conversion with the real sensor_msgs / geometry_msgs messages (no rclpy.init)."""

from __future__ import annotations

import array
import math
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from photos import load_photo
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from vlm_ros.core.geometry import depth_to_meters
from vlm_ros.core.types import Goal, Pose
from vlm_ros.ros import convert
from vlm_ros.ros.convert import (
    BRIDGE,
    ENCODINGS,
    ConversionError,
    array_to_image,
    camera_info_to_intrinsics,
    compressed_to_array,
    image_to_array,
    pose_to_msg,
    seconds_to_stamp,
    stamp_to_seconds,
)

COLOUR = ("rgb8", "bgr8", "rgba8", "bgra8", "8UC3")
RAW_DTYPES = {"mono8": np.uint8, "8UC1": np.uint8, "mono16": np.uint16, "16UC1": np.uint16,
              "32FC1": np.float32}


def _raw_image(encoding: str, shape=(37, 53)) -> np.ndarray:
    rng = np.random.default_rng(5)
    dtype = RAW_DTYPES[encoding]
    if dtype == np.float32:
        return rng.uniform(0.2, 8.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _message(data: bytes, encoding: str, width: int, height: int, step: int,
             bigendian: bool = False) -> Image:
    msg = Image()
    msg.width, msg.height, msg.step, msg.encoding = width, height, step, encoding
    msg.is_bigendian = int(bigendian)
    msg.data = array.array("B", data)
    return msg


def test_every_accepted_encoding_has_a_round_trip_case():
    assert set(ENCODINGS) == set(COLOUR) | set(RAW_DTYPES)


@pytest.mark.parametrize("encoding", COLOUR)
def test_colour_round_trip(encoding):
    rgb = load_photo("coffee")
    header = Header(frame_id="camera_color_optical_frame")
    msg = array_to_image(rgb, encoding, header)
    assert (msg.width, msg.height, msg.encoding) == (rgb.shape[1], rgb.shape[0], encoding)
    assert msg.header.frame_id == "camera_color_optical_frame"
    out, enc = image_to_array(msg, use_cv_bridge=False)
    assert enc == encoding and out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out, rgb)


@pytest.mark.parametrize("encoding", sorted(RAW_DTYPES))
def test_raw_round_trip(encoding):
    raw = _raw_image(encoding)
    out, enc = image_to_array(array_to_image(raw, encoding), use_cv_bridge=False)
    assert enc == encoding and out.dtype == raw.dtype
    assert np.array_equal(out, raw)


def test_same_rgb_for_every_colour_encoding_of_a_real_photo():
    """The photo's bytes laid out as each encoding by hand (not by array_to_image)."""
    rgb = load_photo("coffee")
    h, w = rgb.shape[:2]
    bgr = rgb[:, :, ::-1]
    alpha = np.full((h, w, 1), 200, np.uint8)
    wire = {
        "rgb8": rgb,
        "bgr8": bgr,
        "8UC3": bgr,
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([bgr, alpha], axis=2),
    }
    results = []
    for encoding, pixels in wire.items():
        data = np.ascontiguousarray(pixels).tobytes()
        msg = _message(data, encoding, w, h, w * pixels.shape[2])
        results.append(image_to_array(msg, use_cv_bridge=False)[0])
    for out in results:
        assert np.array_equal(out, rgb)


def test_16uc1_and_32fc1_give_the_same_metres():
    mm = _raw_image("16UC1")
    mm[::7, ::5] = 0
    metres = np.where(mm > 0, mm.astype(np.float32) / 1000.0, np.nan).astype(np.float32)
    a, _ = image_to_array(array_to_image(mm, "16UC1"), use_cv_bridge=False)
    b, _ = image_to_array(array_to_image(metres, "32FC1"), use_cv_bridge=False)
    assert np.allclose(depth_to_meters(a, "16UC1"), depth_to_meters(b, "32FC1"), equal_nan=True,
                       rtol=1e-6, atol=0)


def test_unpadded_rgb8_and_depth_are_views_of_the_message_buffer():
    rgb = load_photo("coffee")
    msg = array_to_image(rgb, "rgb8")
    out, _ = image_to_array(msg, use_cv_bridge=False)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    depth_msg = array_to_image(_raw_image("16UC1"), "16UC1")
    depth, _ = image_to_array(depth_msg, use_cv_bridge=False)
    assert np.shares_memory(depth, np.frombuffer(depth_msg.data, np.uint8))


@pytest.mark.parametrize("encoding, pad", [("rgb8", 7), ("bgra8", 4), ("16UC1", 6),
                                           ("16UC1", 3), ("32FC1", 5), ("mono8", 1)])
def test_row_padding_is_skipped(encoding, pad):
    if encoding in RAW_DTYPES:
        pixels = _raw_image(encoding, (9, 11))
        expected = pixels
    else:
        expected = load_photo("coffee")[:9, :11]
        pixels = expected[:, :, ::-1] if encoding.startswith("bgr") else expected
        if ENCODINGS[encoding].channels == 4:
            pixels = np.concatenate([pixels, np.zeros((9, 11, 1), np.uint8)], axis=2)
    pixels = np.ascontiguousarray(pixels)
    row = pixels.reshape(9, -1).view(np.uint8)
    step = row.shape[1] + pad
    padded = np.full((9, step), 0xAB, np.uint8)
    padded[:, : row.shape[1]] = row
    msg = _message(padded.tobytes(), encoding, 11, 9, step)
    out, _ = image_to_array(msg, use_cv_bridge=False)
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("encoding", ["16UC1", "mono16", "32FC1"])
def test_big_endian_data(encoding):
    raw = _raw_image(encoding, (6, 10))
    data = raw.astype(raw.dtype.newbyteorder(">")).tobytes()
    msg = _message(data, encoding, 10, 6, 10 * raw.dtype.itemsize, bigendian=True)
    out, _ = image_to_array(msg, use_cv_bridge=False)
    assert out.dtype.isnative and np.array_equal(out, raw)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"encoding": "yuv422"}, "unsupported image encoding"),
        ({"step": 20}, "step 20 is smaller"),
        ({"data": bytes(30 * 4 - 1)}, "data length"),
        ({"data": bytes(30 * 4 + 30)}, "data length"),
        ({"width": 0, "step": 0, "data": b""}, "zero-size"),
        ({"height": 0, "data": b""}, "zero-size"),
    ],
)
def test_malformed_messages_raise(kwargs, match):
    fields = {"encoding": "rgb8", "width": 10, "height": 4, "step": 30, "data": bytes(120)}
    fields.update(kwargs)
    msg = _message(fields["data"], fields["encoding"], fields["width"], fields["height"],
                   fields["step"])
    with pytest.raises(ConversionError, match=match):
        image_to_array(msg, use_cv_bridge=False)


def test_huge_images_are_refused_before_touching_the_data():
    msg = _message(b"", "rgb8", 10000, 6000, 30000)
    with pytest.raises(ConversionError, match="exceeds the limit"):
        image_to_array(msg, use_cv_bridge=False)
    small = array_to_image(np.zeros((40, 50), np.uint8), "mono8")
    with pytest.raises(ConversionError, match="max_pixels"):
        image_to_array(small, max_pixels=1000, use_cv_bridge=False)


def test_array_to_image_rejects_wrong_shapes_and_types():
    with pytest.raises(ConversionError, match="HxWx3"):
        array_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ConversionError, match="uint8"):
        array_to_image(np.zeros((4, 4, 3), np.float32), "bgr8")
    with pytest.raises(ConversionError, match="2-D"):
        array_to_image(np.zeros((4, 4, 3), np.uint16), "16UC1")
    with pytest.raises(ConversionError, match="out of range"):
        array_to_image(np.full((4, 4), 70000, np.int32), "16UC1")
    with pytest.raises(ConversionError, match="unsupported"):
        array_to_image(np.zeros((4, 4), np.uint8), "bayer_rggb8")
    ok = array_to_image(np.full((4, 4), 1234, np.int64), "16UC1")
    assert image_to_array(ok, use_cv_bridge=False)[0].dtype == np.uint16


def test_rgba_input_keeps_alpha_on_the_wire():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 10, 77
    msg = array_to_image(rgba, "bgra8")
    wire = np.frombuffer(msg.data, np.uint8).reshape(2, 3, 4)
    assert (wire[..., 2] == 10).all() and (wire[..., 3] == 77).all()


@pytest.mark.skipif(BRIDGE != "cv_bridge", reason="the ROS 2 cv_bridge is not installed here; "
                    "only the numpy path exists (PyPI's cv-bridge is ROS 1 and is never used)")
def test_cv_bridge_and_numpy_paths_agree():
    for encoding in sorted(ENCODINGS):
        source = load_photo("coffee") if encoding in COLOUR else _raw_image(encoding)
        msg = array_to_image(source, encoding)
        a, _ = image_to_array(msg, use_cv_bridge=False)
        b, _ = image_to_array(msg, use_cv_bridge=True)
        assert np.array_equal(a, b), encoding


def test_bridge_choice_is_reported():
    assert BRIDGE in ("numpy", "cv_bridge")
    if BRIDGE == "numpy":
        with pytest.raises(ConversionError, match="not installed"):
            image_to_array(array_to_image(np.zeros((2, 2), np.uint8), "mono8"), use_cv_bridge=True)


def test_pure_functions_import_without_ros():
    code = (
        "import sys\n"
        "for name in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'builtin_interfaces', 'cv_bridge'):\n"
        "    sys.modules[name] = None\n"
        "from vlm_ros.ros import convert\n"
        "print(convert.BRIDGE)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "numpy"


# ---------------------------------------------------------------------------------- compressed


def _compressed(data: bytes, fmt: str) -> CompressedImage:
    msg = CompressedImage()
    msg.format = fmt
    msg.data = array.array("B", data)
    return msg


def test_compressed_png_is_exact_and_jpeg_is_close():
    rgb = load_photo("coffee")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    png = _compressed(cv2.imencode(".png", bgr)[1].tobytes(), "rgb8; png compressed bgr8")
    out = compressed_to_array(png)
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)
    jpeg = _compressed(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(),
                       "jpeg")
    out = compressed_to_array(jpeg)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 3.0


def test_compressed_16bit_png_depth_and_mono():
    mm = _raw_image("16UC1")
    out = compressed_to_array(_compressed(cv2.imencode(".png", mm)[1].tobytes(), "png"))
    assert out.dtype == np.uint16 and np.array_equal(out, mm)
    grey = _raw_image("mono8")
    out = compressed_to_array(_compressed(cv2.imencode(".png", grey)[1].tobytes(), "png"))
    assert out.dtype == np.uint8 and np.array_equal(out, grey)


def test_compressed_depth_transport_16uc1_and_32fc1():
    mm = _raw_image("16UC1")
    header = struct.pack("<iff", 0, 0.0, 0.0)
    msg = _compressed(header + cv2.imencode(".png", mm)[1].tobytes(), "16UC1; compressedDepth")
    out = compressed_to_array(msg)
    assert out.dtype == np.uint16 and np.array_equal(out, mm)

    # 32FC1 the way compressed_depth_image_transport encodes it: quantised inverse depth
    depth = np.linspace(0.3, 9.0, 40 * 30, dtype=np.float32).reshape(30, 40)
    depth[0, :5] = np.nan
    quantization, max_depth = 100.0, 10.0
    quant_a = quantization * (quantization + 1.0)
    quant_b = 1.0 - quant_a / max_depth
    inv = np.where(np.isfinite(depth), quant_a / depth + quant_b, 0).astype(np.uint16)
    header = struct.pack("<iff", 1, quant_a, quant_b)
    msg = _compressed(header + cv2.imencode(".png", inv)[1].tobytes(),
                      "32FC1; compressedDepth png")
    out = compressed_to_array(msg)
    assert out.dtype == np.float32
    assert np.isnan(out[0, :5]).all()
    valid = np.isfinite(depth)
    # quantisation error grows with depth^2 / quant_a: ~1 cm at 9 m
    assert np.allclose(out[valid], depth[valid], atol=depth[valid] ** 2 / quant_a + 1e-4)


def test_compressed_garbage_raises():
    with pytest.raises(ConversionError, match="could not decode"):
        compressed_to_array(_compressed(b"not an image at all", "jpeg"))
    with pytest.raises(ConversionError, match="no data"):
        compressed_to_array(_compressed(b"", "jpeg"))
    with pytest.raises(ConversionError, match="no PNG"):
        compressed_to_array(_compressed(bytes(40), "16UC1; compressedDepth"))


# --------------------------------------------------------------------------------- camera info


def test_camera_info_to_intrinsics():
    msg = CameraInfo(width=640, height=480)
    msg.k = [600.0, 0.0, 320.5, 0.0, 601.0, 240.5, 0.0, 0.0, 1.0]
    k = camera_info_to_intrinsics(msg)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (600.0, 601.0, 320.5, 240.5, 640, 480)


def test_camera_info_binning_and_roi_describe_the_published_image():
    msg = CameraInfo(width=1280, height=960, binning_x=2, binning_y=2)
    msg.k = [1000.0, 0.0, 640.0, 0.0, 1000.0, 480.0, 0.0, 0.0, 1.0]
    k = camera_info_to_intrinsics(msg)
    assert (k.fx, k.cx, k.width, k.height) == (500.0, 320.0, 640, 480)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 40, 800, 600
    k = camera_info_to_intrinsics(msg)
    assert (k.fx, k.cx, k.cy, k.width, k.height) == (500.0, 270.0, 220.0, 400, 300)


def test_camera_info_with_zero_k_raises():
    with pytest.raises(ConversionError, match="not calibrated"):
        camera_info_to_intrinsics(CameraInfo(width=640, height=480))
    bad = CameraInfo(width=0, height=480)
    bad.k = [600.0, 0.0, 320.0, 0.0, 600.0, 240.0, 0.0, 0.0, 1.0]
    with pytest.raises(ConversionError, match="invalid intrinsics"):
        camera_info_to_intrinsics(bad)


# ------------------------------------------------------------------------------- time and pose


def test_stamps_round_trip_without_nanosecond_overflow():
    assert stamp_to_seconds(Time(sec=12, nanosec=500_000_000)) == 12.5
    for sec in (0.0, 1.25, 1700000000.123456, 3.9999999999):
        stamp = seconds_to_stamp(sec)
        assert 0 <= stamp.nanosec < 1_000_000_000
        assert stamp_to_seconds(stamp) == pytest.approx(sec, abs=1e-6)
    assert seconds_to_stamp(3.9999999999) == Time(sec=4, nanosec=0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ConversionError):
            seconds_to_stamp(bad)


def test_pose_to_msg():
    goal = Goal("grasp", "base_link", Pose((0.5, -0.1, 0.8), (1.0, 0.0, 0.0, 0.0)), stamp=7.25)
    msg = pose_to_msg(goal, None)
    assert msg.header.frame_id == "base_link"
    assert stamp_to_seconds(msg.header.stamp) == 7.25
    assert (msg.pose.position.x, msg.pose.position.y, msg.pose.position.z) == (0.5, -0.1, 0.8)
    assert (msg.pose.orientation.x, msg.pose.orientation.w) == (1.0, 0.0)
    stamped = pose_to_msg(goal, Time(sec=3, nanosec=1))
    assert (stamped.header.stamp.sec, stamped.header.stamp.nanosec) == (3, 1)
    nan_goal = Goal("look", "base_link", Pose((math.nan, 0.0, 0.0)))
    with pytest.raises(ConversionError, match="non-finite"):
        pose_to_msg(nan_goal, None)


def test_module_exposes_bridge_name_matching_detection():
    assert convert.BRIDGE == ("cv_bridge" if convert._CV_BRIDGE_MODULE is not None else "numpy")
