"""File loading for the CLI, on a real photo and on files written the way tools write them."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import yaml
from photos import load_photo, photo_path

from vlm_ros.core.io import (
    InputError,
    intrinsics_from_fov,
    load_camera_info,
    load_depth,
    load_image,
)

# ----------------------------------------------------------------------------------- images


def test_load_image_returns_rgb_of_a_real_photo():
    rgb = load_image(photo_path("coffee"))
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert np.array_equal(rgb, load_photo("coffee"))


def test_load_image_handles_grey_alpha_and_16_bit(tmp_path):
    rgb = load_photo("coffee")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    out = load_image(tmp_path / "grey.png")
    assert out.shape == rgb.shape and np.array_equal(out[:, :, 0], grey)

    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = 128
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    assert np.array_equal(load_image(tmp_path / "alpha.png"), rgb)

    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)
    assert np.array_equal(load_image(tmp_path / "deep.png"), rgb)


def test_load_image_reads_non_ascii_paths(tmp_path):
    path = tmp_path / "杯子.png"
    cv2.imencode(".png", cv2.cvtColor(load_photo("coffee"), cv2.COLOR_RGB2BGR))[1].tofile(path)
    assert np.array_equal(load_image(path), load_photo("coffee"))


def test_load_image_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="not found") as missing:
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(InputError, match="not a readable image") as bad:
        load_image(tmp_path / "notes.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError):
        load_image(tmp_path / "empty.png")
    for err in (missing, bad):
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ depth


def _depth_mm() -> np.ndarray:
    depth = np.tile(np.linspace(500, 4000, 64, dtype=np.uint16), (48, 1))
    depth[10:20, 10:20] = 0  # no return
    return depth


def test_load_depth_16bit_png_in_mm(tmp_path):
    cv2.imwrite(str(tmp_path / "d.png"), _depth_mm())
    metres = load_depth(tmp_path / "d.png")
    assert metres.dtype == np.float32 and metres.shape == (48, 64)
    assert np.isnan(metres[10:20, 10:20]).all()
    assert metres[0, 0] == pytest.approx(0.5) and metres[0, -1] == pytest.approx(4.0)
    assert load_depth(tmp_path / "d.png", depth_scale=0.0001)[0, -1] == pytest.approx(0.4)


def test_load_depth_npy_float_and_integer(tmp_path):
    mm = _depth_mm()
    np.save(tmp_path / "mm.npy", mm)
    np.save(tmp_path / "m.npy", mm.astype(np.float64) / 1000.0)
    a, b = load_depth(tmp_path / "mm.npy"), load_depth(tmp_path / "m.npy")
    assert np.allclose(a, b, equal_nan=True)
    assert np.isnan(b[10:20, 10:20]).all()


def test_load_depth_float_tiff(tmp_path):
    metres = _depth_mm().astype(np.float32) / 1000.0
    assert cv2.imwrite(str(tmp_path / "d.tiff"), metres)
    loaded = load_depth(tmp_path / "d.tiff")
    assert np.allclose(loaded[np.isfinite(loaded)], metres[metres > 0])


def test_load_depth_refuses_8bit_colour_and_missing(tmp_path):
    cv2.imwrite(str(tmp_path / "vis.png"), np.full((10, 10), 128, np.uint8))
    with pytest.raises(InputError, match="8-bit"):
        load_depth(tmp_path / "vis.png")
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="single-channel"):
        load_depth(tmp_path / "rgb.npy")
    with pytest.raises(InputError, match="not found"):
        load_depth(tmp_path / "none.png")
    with pytest.raises(InputError, match="not found"):
        load_depth(tmp_path / "none.npy")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(InputError, match="npy"):
        load_depth(tmp_path / "junk.npy")


# ------------------------------------------------------------------------------ camera info

CALIBRATION_YAML = """\
image_width: 640
image_height: 480
camera_name: head_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [615.2, 0, 321.7, 0, 614.9, 238.4, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.2, 0, 0, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [615.2, 0, 321.7, 0, 0, 614.9, 238.4, 0, 0, 0, 1, 0]
"""

# `ros2 topic echo --once /camera/color/camera_info > info.yaml`
ECHO_YAML = """\
header:
  stamp:
    sec: 1700000000
    nanosec: 5
  frame_id: camera_color_optical_frame
height: 720
width: 1280
distortion_model: plumb_bob
d:
- 0.0
k:
- 910.5
- 0.0
- 640.2
- 0.0
- 909.8
- 360.9
- 0.0
- 0.0
- 1.0
r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
binning_x: 0
binning_y: 0
---
"""


def test_load_camera_info_calibration_format(tmp_path):
    path = tmp_path / "head_camera.yaml"
    path.write_text(CALIBRATION_YAML)
    k = load_camera_info(path)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (615.2, 614.9, 321.7, 238.4, 640, 480)


def test_load_camera_info_message_dump_format(tmp_path):
    path = tmp_path / "info.yaml"
    path.write_text(ECHO_YAML)
    k = load_camera_info(path)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (910.5, 909.8, 640.2, 360.9, 1280, 720)


@pytest.mark.parametrize(
    "text, match",
    [
        ("just a string", "mapping"),
        ("width: 10\nheight: 10\n", "camera_matrix"),
        ("width: 10\nheight: 10\nk: [1, 0, 0]\n", "9 numbers"),
        ("width: 10\nheight: 10\nk: [1, 0, 5, 0, 1, 5, 0, 0, oops]\n", "number"),
        ("k: [500, 0, 5, 0, 500, 5, 0, 0, 1]\n", "image size"),
        ("width: 10\nheight: 10\nk: [0, 0, 0, 0, 0, 0, 0, 0, 0]\n", "invalid intrinsics"),
        ("width: 10\nheight: [\n", "not valid YAML"),
        (yaml.safe_dump({"image_width": 4, "image_height": 4,
                         "camera_matrix": {"rows": 3, "cols": 4, "data": list(range(9))}}),
         "3x3"),
    ],
)
def test_load_camera_info_malformed(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        load_camera_info(path)
    assert "\n" not in str(err.value)


def test_load_camera_info_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_camera_info(tmp_path / "absent.yaml")


def test_intrinsics_from_fov():
    k = intrinsics_from_fov(640, 480, hfov_deg=90.0)
    assert k.fx == pytest.approx(320.0) and k.fy == pytest.approx(320.0)
    assert (k.cx, k.cy, k.width, k.height) == (319.5, 239.5, 640, 480)
    default = intrinsics_from_fov(1280, 720)
    assert 2 * math.degrees(math.atan(640 / default.fx)) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        intrinsics_from_fov(0, 480)
    with pytest.raises(ValueError):
        intrinsics_from_fov(640, 480, 180.0)
