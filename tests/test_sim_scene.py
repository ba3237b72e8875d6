"""The MuJoCo tabletop scenes: reproducible, physically sane, geometrically exact, detectable."""

from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

mujoco = pytest.importorskip("mujoco")

from vlm_ros.core.attributes import iou  # noqa: E402
from vlm_ros.core.geometry import backproject, project  # noqa: E402
from vlm_ros.sim import meshes  # noqa: E402
from vlm_ros.sim.render import SimCamera  # noqa: E402
from vlm_ros.sim.scene import (  # noqa: E402
    CATEGORIES,
    MIN_GAP,
    TABLE_HEIGHT,
    generate_scene,
    load,
)


def _volume(mesh: meshes.Mesh) -> float:
    v, f = mesh
    t = v[f]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)


@pytest.mark.parametrize("mesh", [
    meshes.cup(0.04, 0.1), meshes.mug(0.04, 0.1), meshes.bowl(0.08, 0.06),
    meshes.bottle(0.035, 0.22), meshes.can(0.033, 0.12), meshes.box(0.1, 0.06, 0.15, 0.005),
    meshes.sphere(0.04, dimple=0.2, squash=0.9),
])
def test_meshes_are_closed_outward_and_stand_on_z0(mesh):
    v, f = mesh
    assert f.min() >= 0 and f.max() < len(v)
    assert _volume(mesh) > 0  # outward winding encloses positive volume
    assert abs(v[:, 2].min()) < 1e-9
    # closed: every edge is shared by exactly two faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)


def test_cup_is_hollow():
    solid = math.pi * 0.04**2 * 0.1
    assert _volume(meshes.cup(0.04, 0.1, wall=0.005)) < 0.4 * solid


def test_same_seed_same_scene_and_different_seed_differs():
    a, b = generate_scene(7, 5), generate_scene(7, 5)
    assert a.xml == b.xml
    assert [o.position for o in a.objects] == [o.position for o in b.objects]
    c = generate_scene(8, 5)
    assert c.xml != a.xml


def test_objects_do_not_overlap_and_stand_on_the_table():
    for seed in range(10):
        spec = generate_scene(seed, 5)
        for i, a in enumerate(spec.objects):
            assert a.position[2] == TABLE_HEIGHT
            for b in spec.objects[i + 1:]:
                gap = math.dist(a.position[:2], b.position[:2])
                assert gap >= a.footprint_radius + b.footprint_radius + MIN_GAP - 1e-9


def test_layout_places_exactly_the_given_objects():
    spec = generate_scene(3, layout=[("mug", "red"), ("bowl", "blue"), ("bottle", "green")])
    assert [(o.category, o.color_name) for o in spec.objects] == [
        ("mug", "red"), ("bowl", "blue"), ("bottle", "green")]
    assert [o.detector_label for o in spec.objects] == ["cup", "bowl", "bottle"]
    with pytest.raises(ValueError):
        generate_scene(3, layout=[("spaceship", "red")])


def test_objects_rest_on_the_table_after_simulation():
    spec = generate_scene(11, layout=[(c, "red" if c != "orange" else "orange")
                                      for c in CATEGORIES[:5]])
    model, data = load(spec)
    for obj in spec.objects:  # every object has a free joint a gripper can move
        body = model.body(obj.body_name)
        assert model.jnt_type[body.jntadr[0]] == mujoco.mjtJoint.mjJNT_FREE
    mujoco.mj_step(model, data, nstep=500)
    for obj in spec.objects:
        pos = data.body(obj.body_name).xpos
        assert np.all(np.isfinite(pos))
        assert abs(pos[2] - TABLE_HEIGHT) < 0.01, obj.name
        assert math.dist(pos[:2], obj.position[:2]) < 0.01, obj.name
    spec2 = generate_scene(12, layout=[(c, "orange") for c in CATEGORIES[5:]])
    model, data = load(spec2)
    mujoco.mj_step(model, data, nstep=500)
    for obj in spec2.objects:
        assert abs(data.body(obj.body_name).xpos[2] - TABLE_HEIGHT) < 0.01, obj.name


@pytest.fixture(scope="module")
def rendered():
    spec = generate_scene(5, layout=[("mug", "red"), ("bowl", "blue"), ("bottle", "green"),
                                     ("ball", "yellow")])
    model, data = load(spec)
    with SimCamera(model, spec.camera) as cam:
        rgb, depth = cam.render(model, data)
        boxes = cam.gt_boxes(data, spec)
        masks = cam.object_masks(data, spec)
        K, T = cam.intrinsics(), cam.extrinsics()
    return spec, rgb, depth, boxes, masks, K, T


def test_closing_one_camera_leaves_another_cameras_images_intact():
    # The evaluation renders a new scene's ground truth while the previous scene's camera is
    # still open, then closes that one in the same thread.  On MuJoCo 3.x a renderer frees its
    # GL objects in whatever context is current, which was the other camera's: its images then
    # came out garbled (the SSD saw "a laptop" on a tabletop).
    first, second = generate_scene(3), generate_scene(4)
    (model_a, data_a), (model_b, data_b) = load(first), load(second)
    camera_a, camera_b = SimCamera(model_a, first.camera), SimCamera(model_b, second.camera)
    try:
        camera_a.render(model_a, data_a)
        rgb_before, depth_before = camera_b.render(model_b, data_b)  # b's context is current
        camera_a.close()
        rgb_after, depth_after = camera_b.render(model_b, data_b)
    finally:
        camera_a.close()
        camera_b.close()
    assert np.array_equal(rgb_after, rgb_before)
    assert np.allclose(depth_after, depth_before, equal_nan=True)


def test_render_shapes_and_depth_range(rendered):
    spec, rgb, depth, *_ = rendered
    assert rgb.shape == (spec.camera.height, spec.camera.width, 3) and rgb.dtype == np.uint8
    assert depth.shape == rgb.shape[:2] and depth.dtype == np.float32
    assert np.nanmin(depth) > 0.2 and np.nanmax(depth) <= 10.0


def test_camera_geometry_round_trips_object_surfaces(rendered):
    """Project each object's known centre into the image, read the rendered depth there and
    back-project it: the point must lie on the object's surface (within ~1 cm of its mesh)."""
    spec, rgb, depth, boxes, masks, K, T = rendered
    to_camera = T.inverse()
    for obj in spec.objects:
        centre = obj.center
        u, v = project(to_camera.apply(centre), K)
        iu, iv = int(round(u)), int(round(v))
        assert masks[obj.name][iv, iu], f"{obj.name}: its projected centre is not its pixel"
        z = float(depth[iv, iu])
        surface = T.apply(backproject(u, v, z, K))
        # the visible surface is between the camera and the centre, within the object's radius
        radius = 0.5 * max(obj.size[0], obj.size[1])
        assert math.dist(surface, centre) <= radius + 0.01, obj.name
        # and it is exactly where a ray through that pixel meets the geometry (MuJoCo ray cast)
        model = mujoco.MjModel.from_xml_string(spec.xml)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        eye = np.array(T.translation)
        direction = np.array(surface) - eye
        direction /= np.linalg.norm(direction)
        geom = np.zeros(1, np.int32)
        dist = mujoco.mj_ray(model, data, eye, direction, None, 1, -1, geom)
        assert abs(dist - math.dist(eye, surface)) < 0.01, obj.name


def test_depth_of_the_table_plane_matches_geometry(rendered):
    spec, rgb, depth, boxes, masks, K, T = rendered
    any_object = np.any(np.stack(list(masks.values())), axis=0)
    ys, xs = np.nonzero(~any_object[240:, :] & np.isfinite(depth[240:, :]))
    for i in range(0, len(xs), max(1, len(xs) // 50)):
        u, v = float(xs[i]), float(ys[i] + 240)
        p = T.apply(backproject(u, v, float(depth[int(v), int(u)]), K))
        if 0.3 < p[0] < 0.95 and abs(p[1]) < 0.55:  # on the table top
            assert abs(p[2] - TABLE_HEIGHT) < 0.005


def test_gt_boxes_are_inside_the_image(rendered):
    spec, rgb, depth, boxes, *_ = rendered
    assert set(boxes) == {o.name for o in spec.objects}
    for x1, y1, x2, y2 in boxes.values():
        assert 0 <= x1 < x2 <= spec.camera.width and 0 <= y1 < y2 <= spec.camera.height


@pytest.fixture(scope="module")
def ssd():
    from vlm_ros.backends.ssd_coco import SsdCocoBackend

    return SsdCocoBackend()


# Measured on seeds 0-19 of this layout: the red mug is found as "cup" on 20/20, the blue bowl
# as "bowl" on 10/20 (1, 3, 4, 5, 7, 9, 10, 13, 14, 16).  These seeds are among the successes: the
# test guards against regressions of scenes or detector; scripts/sim_detection_rates.py measures
# the rates.
@pytest.mark.parametrize("seed", [1, 3, 4])
def test_ssd_finds_the_red_mug_and_the_blue_bowl(ssd, seed):
    spec = generate_scene(seed, layout=[("mug", "red"), ("bowl", "blue")])
    model, data = load(spec)
    with SimCamera(model, spec.camera) as cam:
        rgb, _ = cam.render(data)
        boxes = cam.gt_boxes(data, spec)
    detections = ssd.detect(rgb, [])
    for obj in spec.objects:
        best = max((iou(d.bbox, boxes[obj.name]) for d in detections
                    if d.label == obj.detector_label), default=0.0)
        assert best >= 0.5, (obj.name, [(d.label, round(d.score, 2)) for d in detections])
