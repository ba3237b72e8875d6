"""Depth sampling, back-projection, transforms and frame resolution on synthetic scenes with known
geometry: every expected number below is computed from the scene, not read back from the code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlm_ros.core.geometry import (
    OPTICAL_TO_BODY,
    FrameError,
    StaticFrameResolver,
    Transform,
    backproject,
    camera_extrinsics,
    depth_to_meters,
    object_center_3d,
    project,
    quat_from_rpy,
    quat_from_yaw,
    robust_depth,
    yaw_from_quat,
)
from vlm_ros.core.types import CameraIntrinsics, Frame

K = CameraIntrinsics(fx=525.0, fy=520.0, cx=319.5, cy=239.5, width=640, height=480)


def render_box_scene(K: CameraIntrinsics, face_center, face_size, face_z: float,
                     background_z: float) -> np.ndarray:
    """Ray-cast a fronto-parallel rectangle at ``face_z`` in front of a wall at ``background_z``."""
    u, v = np.meshgrid(np.arange(K.width), np.arange(K.height))
    x = (u - K.cx) / K.fx * face_z
    y = (v - K.cy) / K.fy * face_z
    hit = (np.abs(x - face_center[0]) <= face_size[0] / 2) & (
        np.abs(y - face_center[1]) <= face_size[1] / 2)
    depth = np.full((K.height, K.width), background_z, np.float32)
    depth[hit] = face_z
    return depth


def edge_box(K: CameraIntrinsics, center, size, z: float) -> tuple[float, float, float, float]:
    """The detector-style box (pixel-edge coordinates) of a rectangle at depth z."""
    u1, v1 = project((center[0] - size[0] / 2, center[1] - size[1] / 2, z), K)
    u2, v2 = project((center[0] + size[0] / 2, center[1] + size[1] / 2, z), K)
    return (u1 + 0.5, v1 + 0.5, u2 + 0.5, v2 + 0.5)


# ------------------------------------------------------------------------------------ depth


def test_depth_to_meters_16uc1_scales_mm_and_marks_no_return_nan():
    raw = np.array([[1000, 0], [2500, 65535]], np.uint16)
    metres = depth_to_meters(raw, "16UC1")
    assert metres.dtype == np.float32
    assert metres[0, 0] == pytest.approx(1.0)
    assert metres[1, 0] == pytest.approx(2.5)
    assert math.isnan(metres[0, 1])
    assert metres[1, 1] == pytest.approx(65.535)
    assert depth_to_meters(raw, "mono16", depth_scale=0.0001)[1, 0] == pytest.approx(0.25)


def test_depth_to_meters_32fc1_invalid_values_become_nan():
    raw = np.array([[1.25, 0.0, -1.0, np.inf, np.nan]], np.float32)
    metres = depth_to_meters(raw, "32FC1")
    assert metres[0, 0] == pytest.approx(1.25)
    assert np.isnan(metres[0, 1:]).all()


def test_depth_to_meters_rejects_unknown_encoding_and_float_16uc1():
    with pytest.raises(ValueError, match="unsupported depth encoding"):
        depth_to_meters(np.zeros((2, 2), np.uint8), "mono8")
    with pytest.raises(ValueError, match="integer"):
        depth_to_meters(np.zeros((2, 2), np.float32), "16UC1")


# --------------------------------------------------------------------------- back-projection


def test_backproject_inverts_project_exactly():
    for point in [(0.3, -0.2, 1.7), (-1.0, 0.5, 4.0), (0.0, 0.0, 0.5)]:
        u, v = project(point, K)
        assert backproject(u, v, point[2], K) == pytest.approx(point, abs=1e-9)
    assert backproject(K.cx, K.cy, 2.0, K) == (0.0, 0.0, 2.0)


def test_object_center_3d_on_a_synthetic_box_is_exact():
    center, size, z = (0.3, -0.1), (0.2, 0.16), 1.2
    depth = render_box_scene(K, center, size, z, background_z=2.0)
    frame = Frame(rgb=np.zeros((K.height, K.width, 3), np.uint8), depth_m=depth, intrinsics=K)
    point, d = object_center_3d(frame, edge_box(K, center, size, z))
    assert d == pytest.approx(z, abs=1e-6)
    assert point == pytest.approx((center[0], center[1], z), abs=1e-6)


def test_object_center_3d_with_half_resolution_depth_matches_full_resolution():
    center, size, z = (-0.25, 0.05), (0.3, 0.2), 1.5
    full = render_box_scene(K, center, size, z, background_z=3.0)
    half_K = K.scaled_to(K.width // 2, K.height // 2)
    half = render_box_scene(half_K, center, size, z, background_z=3.0)
    rgb = np.zeros((K.height, K.width, 3), np.uint8)
    box = edge_box(K, center, size, z)
    p_full, d_full = object_center_3d(Frame(rgb=rgb, depth_m=full, intrinsics=K), box)
    p_half, d_half = object_center_3d(Frame(rgb=rgb, depth_m=half, intrinsics=K), box)
    assert d_half == pytest.approx(d_full, abs=1e-6)
    assert p_half == pytest.approx(p_full, abs=1e-6)
    assert p_half == pytest.approx((center[0], center[1], z), abs=1e-6)


def test_object_center_3d_scales_intrinsics_given_for_another_resolution():
    center, size, z = (0.1, 0.1), (0.2, 0.2), 1.0
    depth = render_box_scene(K, center, size, z, background_z=2.0)
    calib_at_double = K.scaled_to(K.width * 2, K.height * 2)
    frame = Frame(rgb=np.zeros((K.height, K.width, 3), np.uint8), depth_m=depth,
                  intrinsics=calib_at_double)
    point, _ = object_center_3d(frame, edge_box(K, center, size, z))
    assert point == pytest.approx((center[0], center[1], z), abs=1e-6)


def test_object_center_3d_uses_mask_centroid_and_resizes_mask_to_depth():
    depth = np.full((K.height // 2, K.width // 2), 2.0, np.float32)
    mask = np.zeros((K.height, K.width), bool)
    mask[100:140, 200:300] = True  # only the object's pixels, at full resolution
    depth[50:70, 100:150] = 1.0  # the same region at half resolution
    frame = Frame(rgb=np.zeros((K.height, K.width, 3), np.uint8), depth_m=depth, intrinsics=K)
    point, d = object_center_3d(frame, (150.0, 50.0, 350.0, 200.0), mask)
    assert d == pytest.approx(1.0)
    assert point == pytest.approx(backproject(249.5, 119.5, 1.0, K), abs=1e-9)


def test_object_center_3d_without_depth_or_intrinsics_is_none():
    rgb = np.zeros((K.height, K.width, 3), np.uint8)
    depth = np.ones((K.height, K.width), np.float32)
    box = (10.0, 10.0, 50.0, 50.0)
    assert object_center_3d(Frame(rgb=rgb, depth_m=None, intrinsics=K), box) == (None, None)
    assert object_center_3d(Frame(rgb=rgb, depth_m=depth, intrinsics=None), box) == (None, None)
    all_nan = np.full((K.height, K.width), np.nan, np.float32)
    assert object_center_3d(Frame(rgb=rgb, depth_m=all_nan, intrinsics=K), box) == (None, None)


# ------------------------------------------------------------------------------ robust depth


def _mug_on_table(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, ...]]:
    """A 100x100 box: mug front at ~1.0 m on 60 %, the table behind it rising 1.05..1.45 m on the
    other 40 % (top rows and one side, where a handle gap shows the table), 10 % dropouts."""
    depth = np.full((200, 200), 3.0, np.float32)
    box = depth[50:150, 50:150]
    box[:] = 1.0 + rng.normal(0, 0.003, box.shape)  # curved/noisy mug surface
    table = np.linspace(1.45, 1.05, 100, dtype=np.float32)[:, None] * np.ones((1, 100))
    background = np.zeros((100, 100), bool)
    background[:30, :] = True  # table above the mug's rim
    background[30:, 85:] = True  # handle gap on the right
    assert 0.38 < background.mean() < 0.42
    box[background] = table[background]
    dropouts = rng.random(box.shape) < 0.10
    box[dropouts] = np.where(rng.random(dropouts.sum()) < 0.5, np.nan, 0.0)
    return depth_to_meters(depth, "32FC1"), (50.0, 50.0, 150.0, 150.0)


def test_robust_depth_ignores_40_percent_background_and_dropouts():
    rng = np.random.default_rng(7)
    depth, box = _mug_on_table(rng)
    assert robust_depth(depth, box) == pytest.approx(1.0, abs=0.005)


def test_robust_depth_when_background_is_most_of_the_box():
    """A thin bottle: 30 % of its box, the wall behind the other 70 % (a median picks the wall)."""
    rng = np.random.default_rng(11)
    depth = (2.5 + rng.normal(0, 0.01, (120, 100))).astype(np.float32)
    depth[:, 35:65] = 0.9 + rng.normal(0, 0.004, (120, 30))
    box = (0.0, 0.0, 100.0, 120.0)
    assert np.median(depth) > 2.4
    assert robust_depth(depth, box) == pytest.approx(0.9, abs=0.005)


def test_robust_depth_person_in_front_of_wall_in_the_box_centre():
    rng = np.random.default_rng(1)
    depth = np.full((300, 200), 3.2, np.float32) + rng.normal(0, 0.01, (300, 200)).astype(
        np.float32)
    depth[40:300, 70:130] = 2.0 + rng.normal(0, 0.02, (260, 60))  # a narrow person, wall around
    box = (40.0, 30.0, 160.0, 300.0)
    assert robust_depth(depth, box) == pytest.approx(2.0, abs=0.02)


def test_robust_depth_ignores_sparse_noise_in_front():
    rng = np.random.default_rng(3)
    depth = np.full((100, 100), 1.5, np.float32)
    speckle = rng.random((100, 100)) < 0.05
    depth[speckle] = rng.uniform(0.15, 0.6, speckle.sum())
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) == pytest.approx(1.5, abs=1e-6)


def test_robust_depth_returns_none_with_too_few_valid_pixels():
    depth = np.full((100, 100), np.nan, np.float32)
    depth[50, 50:55] = 1.0  # 5 pixels < 10
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) is None
    depth[10:20, 10:13] = 1.0  # 35 valid of 10000 = 0.35 % < 1 %
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) is None
    depth[:, :] = 1.0
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) == pytest.approx(1.0)


def test_robust_depth_respects_depth_limits_mask_and_image_bounds():
    depth = np.full((100, 100), 0.05, np.float32)  # closer than min_depth everywhere
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) is None
    depth[:, 50:] = 12.0  # beyond max_depth
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) is None
    depth[:, :50] = 2.0
    mask = np.zeros((100, 100), bool)
    mask[:, 40:60] = True  # half on the 2 m side, half on the 12 m side
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0), mask=mask) == pytest.approx(2.0)
    assert robust_depth(depth, (-50.0, -50.0, 40.0, 40.0)) == pytest.approx(2.0)
    assert robust_depth(depth, (200.0, 200.0, 300.0, 300.0)) is None
    assert robust_depth(depth, (float("nan"), 0.0, 10.0, 10.0)) is None


def test_robust_depth_falls_back_to_whole_box_when_centre_is_empty():
    depth = np.full((100, 100), np.nan, np.float32)
    depth[:, :15] = 0.8  # a thin valid strip on the box edge only (a ring-shaped object)
    assert robust_depth(depth, (0.0, 0.0, 100.0, 100.0)) == pytest.approx(0.8)


# -------------------------------------------------------------------------------- transforms


def _rot_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_from_xyz_rpy_matches_fixed_axis_rotation_matrices():
    t = Transform.from_xyz_rpy(1.0, -2.0, 0.5, 0.3, -0.7, 2.1)
    m = t.as_matrix()
    assert np.allclose(m[:3, :3], _rot_matrix(0.3, -0.7, 2.1), atol=1e-12)
    assert np.allclose(m[:3, 3], [1.0, -2.0, 0.5])
    p = np.array([0.4, 0.2, -1.0])
    assert t.apply(tuple(p)) == pytest.approx(tuple(m[:3, :3] @ p + m[:3, 3]), abs=1e-12)


def test_compose_inverse_and_matrix_agree():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = Transform.from_xyz_rpy(*rng.uniform(-3, 3, 3), *rng.uniform(-math.pi, math.pi, 3))
        b = Transform.from_xyz_rpy(*rng.uniform(-3, 3, 3), *rng.uniform(-math.pi, math.pi, 3))
        p = tuple(rng.uniform(-5, 5, 3))
        assert a.compose(b).apply(p) == pytest.approx(a.apply(b.apply(p)), abs=1e-9)
        assert np.allclose(a.compose(b).as_matrix(), a.as_matrix() @ b.as_matrix(), atol=1e-9)
        assert a.inverse().apply(a.apply(p)) == pytest.approx(p, abs=1e-9)
        back = Transform.from_matrix(a.as_matrix())
        assert np.allclose(back.as_matrix(), a.as_matrix(), atol=1e-9)


def test_yaw_helpers_round_trip():
    for yaw in (-3.0, -1.2, 0.0, 0.4, 3.1):
        assert yaw_from_quat(quat_from_yaw(yaw)) == pytest.approx(yaw)
        assert yaw_from_quat(quat_from_rpy(0.0, 0.0, yaw)) == pytest.approx(yaw)
    assert quat_from_yaw(0.7) == pytest.approx(quat_from_rpy(0, 0, 0.7))


def test_transform_rejects_non_finite_values():
    with pytest.raises(ValueError):
        Transform((0.0, float("nan"), 0.0))
    with pytest.raises(ValueError):
        Transform((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))


def test_optical_to_body_axes_follow_rep103():
    assert OPTICAL_TO_BODY.apply((0, 0, 1)) == pytest.approx((1, 0, 0))  # forward
    assert OPTICAL_TO_BODY.apply((1, 0, 0)) == pytest.approx((0, -1, 0))  # right
    assert OPTICAL_TO_BODY.apply((0, 1, 0)) == pytest.approx((0, 0, -1))  # down
    # the rpy (-pi/2, 0, -pi/2) every camera driver publishes for <camera>_optical_frame
    assert np.allclose(OPTICAL_TO_BODY.as_matrix(),
                       Transform.from_xyz_rpy(0, 0, 0, -math.pi / 2, 0, -math.pi / 2).as_matrix())


def test_camera_one_metre_up_looking_forward():
    T = camera_extrinsics(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    assert T.apply((0.0, 0.0, 2.0)) == pytest.approx((2.0, 0.0, 1.0), abs=1e-12)
    # a point to the image's right lands on the robot's right (negative y)
    assert T.apply((0.5, 0.0, 2.0)) == pytest.approx((2.0, -0.5, 1.0), abs=1e-12)


def test_camera_pitched_down_sees_the_floor_ahead():
    pitch = 0.5
    T = camera_extrinsics(0.1, 0.0, 1.2, 0.0, pitch, 0.0)
    d = 1.2 / math.sin(pitch)  # distance along the optical axis to the floor
    assert T.apply((0.0, 0.0, d)) == pytest.approx((0.1 + d * math.cos(pitch), 0.0, 0.0),
                                                   abs=1e-9)


def test_camera_yawed_left_maps_forward_to_left():
    T = camera_extrinsics(0.0, 0.0, 0.5, 0.0, 0.0, math.pi / 2)
    assert T.apply((0.0, 0.0, 1.0)) == pytest.approx((0.0, 1.0, 0.5), abs=1e-12)


# ------------------------------------------------------------------------------ frame resolver


def test_static_resolver_resolves_only_known_frames():
    T = camera_extrinsics(0.0, 0.0, 1.0)
    r = StaticFrameResolver("base_link", "camera_color_optical_frame", T)
    assert r.lookup("base_link", "camera_color_optical_frame", 0.0) is T
    assert r.lookup("/base_link", "camera_color_optical_frame", 3.0) is T
    ident = r.lookup("base_link", "base_link", 0.0)
    assert ident is not None and ident.apply((1.0, 2.0, 3.0)) == (1.0, 2.0, 3.0)
    inv = r.lookup("camera_color_optical_frame", "base_link", 0.0)
    assert inv is not None and inv.apply((2.0, 0.0, 1.0)) == pytest.approx((0.0, 0.0, 2.0))
    assert r.lookup("map", "camera_color_optical_frame", 0.0) is None
    assert r.lookup("base_link", "camera_depth_optical_frame", 0.0) is None
    assert r.lookup("odom", "odom", 0.0) is None


def test_static_resolver_needs_frame_names():
    with pytest.raises(FrameError):
        StaticFrameResolver("", "camera", Transform())
