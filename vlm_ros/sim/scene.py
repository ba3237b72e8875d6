"""Random, seed-reproducible MuJoCo tabletop scenes with household objects and an RGB-D camera.

World frame == the robot's ``base_link`` (x forward, y left, z up; the robot base sits on the floor
at the origin).  A table stands in front of the robot along +x with its top at ``TABLE_HEIGHT``;
objects stand on it at random non-overlapping positions and headings.  A camera on the robot's
side of the table looks down at it (``DEFAULT_CAMERA``).

Each object is one MuJoCo body with a free joint (so a gripper can pick it up) holding

* **visual geoms**: the detailed meshes from :mod:`vlm_ros.sim.meshes` (hollow mugs with handles,
  bowls, bottles with caps ...), ``contype=conaffinity=0``, ``density=0``, group 1: they are what
  the camera and the detector see and never collide;
* **collision geoms**: primitives approximating the shape (cylinders, boxes, spheres; a bowl is a
  floor disc plus a ring of wall boxes so things can be placed *in* it), group 3 (hidden in
  renders), with mass and friction for grasping.

Why: mesh-mesh contacts use convex hulls anyway (a mug's hull has no hole), are slower and
jittery; primitives rest and grasp cleanly while the camera still sees the real shape.

``HARD_CATEGORIES`` (a bottle lying on its side, a book, a pen-like stick, a small plate) are
only placed when asked for, for grasp evaluations; ``generate_scene(touching=..., yaws=...)``
puts objects against each other and turns them to given headings.

Everything random is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order, so a
seed gives the same XML, poses, colours, lighting and textures every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vlm_ros.core.geometry import camera_extrinsics, quat_to_matrix
from vlm_ros.sim import meshes

TABLE_HEIGHT = 0.75  # world z of the table top (m)
TABLE_CENTER_XY = (0.62, 0.0)
TABLE_HALF_SIZE = (0.38, 0.6)  # x, y half extents of the top (m)
TABLE_THICKNESS = 0.03
# Where objects may stand: inside the table and inside the camera's view.
PLACEMENT_X = (0.45, 0.74)
PLACEMENT_Y = (-0.24, 0.24)
MIN_GAP = 0.03  # free space between two objects' footprints (m)

# Colour name -> rgba of the object material.  Checked against vlm_ros.core.color under the scene
# lighting by tests/test_sim_scene.py and scripts/sim_detection_rates.py.
PALETTE: dict[str, tuple[float, float, float, float]] = {
    "red": (0.80, 0.07, 0.06, 1.0),
    "orange": (0.95, 0.42, 0.04, 1.0),
    "yellow": (0.92, 0.80, 0.08, 1.0),
    "green": (0.10, 0.58, 0.16, 1.0),
    "blue": (0.08, 0.25, 0.82, 1.0),
    "purple": (0.42, 0.14, 0.66, 1.0),
    "pink": (0.96, 0.48, 0.68, 1.0),
    "brown": (0.42, 0.23, 0.09, 1.0),
    "black": (0.05, 0.05, 0.05, 1.0),
    "white": (0.93, 0.93, 0.91, 1.0),
    "gray": (0.50, 0.50, 0.50, 1.0),
}

# Category -> COCO label the default detector (SSD-MobileNetV2 COCO) should give it.
# Measured with scripts/sim_detection_rates.py (see its docstring for the numbers).
DETECTOR_LABELS: dict[str, str] = {
    "mug": "cup",
    "cup": "cup",
    "bowl": "bowl",
    "bottle": "bottle",
    "can": "cup",
    "box": "book",
    "ball": "sports ball",
    "apple": "apple",
    "orange": "orange",
    # The harder categories (HARD_CATEGORIES): the label the detector gives them most often,
    # measured with scripts/sim_hard_detection.py (all are found rarely; see its docstring).
    # A lying bottle is "mouse" slightly more often (6 vs 5 of 24 with depth proposals), but
    # "bottle" is what a person asks for: the evaluation's command word.
    "lying_bottle": "bottle",
    "book": "book",
    "stick": "baseball bat",  # "knife" second
    "plate": "frisbee",
}
# The ordinary categories (random scenes draw from these; a seed's scene depends on this tuple).
CATEGORIES: tuple[str, ...] = (
    "mug", "cup", "bowl", "bottle", "can", "box", "ball", "apple", "orange")
# Harder objects for grasp evaluations, only placed when asked for (``categories`` / ``layout``):
# a bottle lying on its side, a flat book, a pen-like stick lying flat, a small flat plate.
HARD_CATEGORIES: tuple[str, ...] = ("lying_bottle", "book", "stick", "plate")
# Colours each category comes in (fruit has its own colours).
CATEGORY_COLORS: dict[str, tuple[str, ...]] = {
    "apple": ("red", "green", "yellow"),
    "orange": ("orange",),
}
ACCENT_RGBA = {
    "cap_light": (0.95, 0.95, 0.95, 1.0),
    "cap_dark": (0.08, 0.08, 0.08, 1.0),
    "stem": (0.30, 0.18, 0.06, 1.0),
    "lid": (0.75, 0.75, 0.78, 1.0),
    "glaze": (0.94, 0.94, 0.92, 1.0),
    "label": (0.95, 0.95, 0.93, 1.0),
    "pages": (0.90, 0.88, 0.80, 1.0),
    "metal": (0.72, 0.72, 0.74, 1.0),
}


@dataclass(frozen=True)
class CameraSetup:
    """An RGB-D camera: image size, vertical field of view and its body pose in the base frame.

    ``pose_in_base`` is (x, y, z, roll, pitch, yaw) of the camera *body* frame (x forward, z up),
    exactly what :func:`vlm_ros.core.geometry.camera_extrinsics` takes; positive pitch looks down.
    """

    name: str = "rgbd"
    width: int = 640
    height: int = 480
    fovy_deg: float = 55.0
    pose_in_base: tuple[float, float, float, float, float, float] = (
        0.25, 0.0, TABLE_HEIGHT + 0.37, 0.0, math.radians(47.0), 0.0)

    def mujoco_quat(self) -> tuple[float, float, float, float]:
        """(w, x, y, z) of the MuJoCo camera: our optical frame turned 180 deg about its x axis.

        MuJoCo cameras look along their local -z with +y up; an optical frame looks along +z with
        +y down.
        """
        optical = quat_to_matrix(camera_extrinsics(*self.pose_in_base).rotation)
        mj = optical @ np.diag([1.0, -1.0, -1.0])
        from vlm_ros.core.geometry import quat_from_matrix

        x, y, z, w = quat_from_matrix(mj)
        return (w, x, y, z)


DEFAULT_CAMERA = CameraSetup()


@dataclass
class SimObject:
    """One object on the table.  ``position`` is the centre of its footprint on the table top
    (world/base frame, m); ``size`` is its (width x, depth y, height z) before yaw, in metres."""

    name: str
    category: str
    color_name: str
    rgba: tuple[float, float, float, float]
    position: tuple[float, float, float]
    yaw: float
    size: tuple[float, float, float]
    body_name: str
    detector_label: str

    @property
    def center(self) -> tuple[float, float, float]:
        """The middle of the object's bounding volume (world frame), e.g. a grasp point."""
        x, y, z = self.position
        return (x, y, z + 0.5 * self.size[2])

    @property
    def footprint_radius(self) -> float:
        return 0.5 * math.hypot(self.size[0], self.size[1])


@dataclass
class SceneSpec:
    """A generated scene: the MJCF text plus what was placed where (ground truth)."""

    seed: int
    objects: list[SimObject]
    xml: str
    camera: CameraSetup
    table_height: float = TABLE_HEIGHT
    light: dict[str, object] = field(default_factory=dict)

    def object(self, name: str) -> SimObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"no object named {name!r}; have {[o.name for o in self.objects]}")


# --------------------------------------------------------------------------------------------
# Object models: category -> (visual parts, collision geoms, size)
# --------------------------------------------------------------------------------------------


@dataclass
class _Model:
    parts: list[tuple[meshes.Mesh, str]]  # (mesh, "body" | accent key)
    collision: list[str]  # MJCF geom elements (no class; a mass only to differ from the even share)
    size: tuple[float, float, float]
    mass: float


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.5g}" for v in values)


def _cyl(radius: float, z0: float, z1: float, x: float = 0.0) -> str:
    return (f'<geom type="cylinder" size="{_fmt(radius, 0.5 * (z1 - z0))}" '
            f'pos="{_fmt(x, 0, 0.5 * (z0 + z1))}"/>')


def _xcyl(radius: float, x0: float, x1: float, z: float) -> str:
    """A cylinder lying along the body x axis from ``x0`` to ``x1``, its axis at height ``z``."""
    return (f'<geom type="cylinder" size="{_fmt(radius, 0.5 * (x1 - x0))}" '
            f'pos="{_fmt(0.5 * (x0 + x1), 0, z)}" euler="0 1.5708 0"/>')


def _box(half: tuple[float, float, float], pos: tuple[float, float, float],
         yaw: float = 0.0) -> str:
    return (f'<geom type="box" size="{_fmt(*half)}" pos="{_fmt(*pos)}" '
            f'euler="0 0 {yaw:.5g}"/>')


def _mug(rng: np.random.Generator) -> _Model:
    r, h = rng.uniform(0.038, 0.046), rng.uniform(0.09, 0.11)
    outside, inside = meshes.cup_parts(r, h, wall=0.006, bottom=0.01)
    grip = meshes.mug_handle(r, h)
    reach = grip[0][:, 0].max()
    handle = _box((0.5 * (reach - r), 0.008, 0.31 * h), (0.5 * (reach + r), 0, 0.51 * h))
    parts = [(outside, "body"), (inside, "glaze"), (grip, "body")]
    return _Model(parts, [_cyl(r, 0, h), handle], (r + reach, 2 * r, h), 0.32)


def _cup(rng: np.random.Generator) -> _Model:
    r, h = rng.uniform(0.036, 0.045), rng.uniform(0.09, 0.12)
    taper = rng.uniform(0.15, 0.3)
    outside, inside = meshes.cup_parts(r, h, wall=0.004, taper=taper)
    return _Model([(outside, "body"), (inside, "glaze")], [_cyl(r * (1 - 0.5 * taper), 0, h)],
                  (2 * r, 2 * r, h), 0.12)


BOWL_INSIDE = "glaze"


def _bowl(rng: np.random.Generator) -> _Model:
    r, h = rng.uniform(0.08, 0.095), rng.uniform(0.058, 0.07)
    outside, inside = meshes.bowl_parts(r, h)
    wall = []
    n = 10
    chord = 2 * 0.8 * r * math.sin(math.pi / n)
    for k in range(n):
        a = 2 * math.pi * k / n
        wall.append(_box((0.006, 0.5 * chord, 0.5 * (h - 0.012)),
                         (0.8 * r * math.cos(a), 0.8 * r * math.sin(a), 0.5 * (h + 0.012)), a))
    floor = _cyl(0.7 * r, 0.0, 0.012)
    return _Model([(outside, "body"), (inside, BOWL_INSIDE)], [floor, *wall],
                  (2 * r, 2 * r, h + 0.002), 0.35)


def _bottle(rng: np.random.Generator) -> _Model:
    r, h = rng.uniform(0.03, 0.038), rng.uniform(0.20, 0.25)
    neck = max(0.011, 0.38 * r)
    cap = "cap_light" if rng.random() < 0.5 else "cap_dark"
    label = meshes.band(r + 0.0008, 0.30 * h, 0.48 * h)
    parts = [(meshes.bottle(r, h, neck), "body"), (meshes.bottle_cap(neck, h), cap),
             (label, "label")]
    return _Model(parts, [_cyl(r, 0, 0.72 * h), _cyl(neck * 1.2, 0.72 * h, h + 0.004)],
                  (2 * r, 2 * r, h + 0.004), 0.5)


def _can(rng: np.random.Generator) -> _Model:
    r, h = 0.033, rng.uniform(0.115, 0.125)
    mesh = meshes.can(r, h)
    lid = meshes.lathe([(0.0, h - 0.0035), (0.8 * r, h - 0.0035), (0.8 * r, h - 0.003),
                        (0.0, h - 0.003)], 32)
    return _Model([(mesh, "body"), (lid, "lid")], [_cyl(r, 0, h)], (2 * r, 2 * r, h), 0.35)


def _box_model(rng: np.random.Generator) -> _Model:
    w, d, h = rng.uniform(0.10, 0.16), rng.uniform(0.05, 0.08), rng.uniform(0.12, 0.18)
    mesh = meshes.box(w, d, h, bevel=0.004)
    return _Model([(mesh, "body")], [_box((w / 2, d / 2, h / 2), (0, 0, h / 2))], (w, d, h), 0.25)


def _ball(rng: np.random.Generator) -> _Model:
    r = rng.uniform(0.04, 0.06)
    mesh = meshes.sphere(r, rings=24, segments=36)
    return _Model([(mesh, "body")], [f'<geom type="sphere" size="{r:.5g}" pos="0 0 {r:.5g}"/>'],
                  (2 * r, 2 * r, 2 * r), 0.2)


def _fruit(dimple: float, squash: float, with_stem: bool) -> Callable[[np.random.Generator], _Model]:
    def build(rng: np.random.Generator) -> _Model:
        r = rng.uniform(0.036, 0.044)
        v, f = meshes.sphere(r, rings=24, segments=36, dimple=dimple, squash=squash)
        h = float(v[:, 2].max())
        parts = [((v, f), "body")]
        if with_stem:
            top = h - dimple * r * 0.9
            parts.append((meshes.transform(meshes.stem(0.018), (0, 0, top)), "stem"))
        collision = [f'<geom type="ellipsoid" size="{_fmt(r, r, 0.5 * h)}" '
                     f'pos="0 0 {0.5 * h:.5g}"/>']
        return _Model(parts, collision, (2 * r, 2 * r, h), 0.18)
    return build


def _lying_bottle(rng: np.random.Generator) -> _Model:
    """The bottle of :func:`_bottle` on its side: axis along body x, the cap end at +x."""
    r, h = rng.uniform(0.03, 0.036), rng.uniform(0.176, 0.216)
    neck = max(0.011, 0.38 * r)
    cap = "cap_light" if rng.random() < 0.5 else "cap_dark"
    length = h + 0.004
    label = meshes.band(r + 0.0008, 0.30 * h, 0.48 * h)
    parts = [(meshes.lay_down(m, length, r), role) for m, role in (
        (meshes.bottle(r, h, neck), "body"), (meshes.bottle_cap(neck, h), cap), (label, "label"))]
    x0 = -0.5 * length

    def shoulder(z: float) -> float:  # the radius of meshes.bottle's shoulder at height z * h
        return neck + (r - neck) * math.sqrt(max(0.0, 1.0 - ((z - 0.62) / 0.2) ** 2))

    # Stepped cylinders no thinner than the mesh (so touching footprints touch in the physics
    # too), most of the mass in the body, and a thin flat strip under it: a cylinder alone rolls
    # off at the slightest push.
    steps = (0.68, 0.72, 0.75, 0.78, 0.82)
    collision = [_xcyl(r, x0, x0 + 0.68 * h, r).replace("<geom ", '<geom mass="0.3" ', 1)]
    for z0, z1 in zip(steps[:-1], steps[1:]):
        collision.append(_xcyl(shoulder(z0), x0 + z0 * h, x0 + z1 * h, r)
                         .replace("<geom ", '<geom mass="0.02" ', 1))
    collision.append(_xcyl(neck * 1.2, x0 + 0.82 * h, x0 + length, r)
                     .replace("<geom ", '<geom mass="0.02" ', 1))
    collision.append(_box((0.3 * h, 0.3 * r, 0.002), (x0 + 0.34 * h, 0, 0.002))
                     .replace("<geom ", '<geom mass="0.05" ', 1))
    return _Model(parts, collision, (length, 2 * r, 2 * r), 0.45)


def _book(rng: np.random.Generator) -> _Model:
    """A closed book lying flat; covers in the object colour, pale page edges."""
    w, d, h = rng.uniform(0.15, 0.19), rng.uniform(0.09, 0.11), rng.uniform(0.025, 0.035)
    covers, pages = meshes.book_parts(w, d, h)
    return _Model([(covers, "body"), (pages, "pages")],
                  [_box((w / 2, d / 2, h / 2), (0, 0, h / 2))], (w, d, h), 0.35)


def _stick(rng: np.random.Generator) -> _Model:
    """A pen-like stick lying flat along body x (tip at -x); a square collision bar so it does
    not roll."""
    r, length = rng.uniform(0.009, 0.012), rng.uniform(0.15, 0.19)
    barrel, tip, cap = meshes.pen_parts(r, length)
    parts = [(meshes.lay_down(barrel, length, r), "body"),
             (meshes.lay_down(tip, length, r), "metal"),
             (meshes.lay_down(cap, length, r), "cap_dark")]
    return _Model(parts, [_box((length / 2, r, r), (0, 0, r))], (length, 2 * r, 2 * r), 0.03)


def _plate(rng: np.random.Generator) -> _Model:
    """A small flat plate / saucer with a slightly raised rim (collision: a flat cylinder)."""
    r, h = rng.uniform(0.05, 0.06), rng.uniform(0.015, 0.02)
    return _Model([(meshes.plate(r, h), "body")], [_cyl(r, 0.0, h)], (2 * r, 2 * r, h), 0.15)


BUILDERS: dict[str, Callable[[np.random.Generator], _Model]] = {
    "mug": _mug,
    "cup": _cup,
    "bowl": _bowl,
    "bottle": _bottle,
    "can": _can,
    "box": _box_model,
    "ball": _ball,
    "apple": _fruit(dimple=0.22, squash=0.88, with_stem=True),
    "orange": _fruit(dimple=0.05, squash=0.92, with_stem=False),
    "lying_bottle": _lying_bottle,
    "book": _book,
    "stick": _stick,
    "plate": _plate,
}


# --------------------------------------------------------------------------------------------
# Placement and MJCF
# --------------------------------------------------------------------------------------------


def _place(rng: np.random.Generator, radii: Sequence[float],
           pinned: dict[int, tuple[float, float]] | None = None,
           max_tries: int = 500) -> list[tuple[float, float]]:
    """Non-overlapping (x, y) positions for footprints of the given radii (rejection sampling);
    ``pinned`` objects keep their given positions."""
    pinned = pinned or {}
    for _attempt in range(20):
        placed: dict[int, tuple[float, float, float]] = {
            i: (float(x), float(y), radii[i]) for i, (x, y) in pinned.items()}
        for i, radius in enumerate(radii):
            if i in pinned:
                continue
            for _ in range(max_tries):
                x = rng.uniform(*PLACEMENT_X)
                y = rng.uniform(*PLACEMENT_Y)
                if all(math.hypot(x - px, y - py) >= radius + pr + MIN_GAP
                       for px, py, pr in placed.values()):
                    placed[i] = (x, y, radius)
                    break
            else:
                break
        if len(placed) == len(radii):
            return [(placed[i][0], placed[i][1]) for i in range(len(radii))]
    raise ValueError(f"could not place {len(radii)} objects without overlap on the table")


def _table_xml(rng: np.random.Generator) -> tuple[str, str]:
    """(assets, worldbody) of the table and floor; wood-like checker colours drawn from ``rng``."""
    base = np.array([0.55, 0.38, 0.22]) * rng.uniform(0.8, 1.15)
    rgb1 = np.clip(base, 0, 1)
    rgb2 = np.clip(base * rng.uniform(0.82, 0.92), 0, 1)
    assets = (
        f'<texture name="wood" type="2d" builtin="checker" width="256" height="256" '
        f'rgb1="{_fmt(*rgb1)}" rgb2="{_fmt(*rgb2)}" mark="random" random="0.08" '
        f'markrgb="{_fmt(*(rgb2 * 0.85))}"/>'
        f'<material name="table" texture="wood" texrepeat="6 9" specular="0.15" '
        f'shininess="0.2"/>'
        '<texture name="floor" type="2d" builtin="checker" width="512" height="512" '
        'rgb1="0.62 0.62 0.6" rgb2="0.55 0.55 0.53"/>'
        '<material name="floor" texture="floor" texrepeat="8 8" specular="0.05"/>'
        '<material name="wall" rgba="0.86 0.85 0.82 1" specular="0"/>'
    )
    cx, cy = TABLE_CENTER_XY
    hx, hy = TABLE_HALF_SIZE
    top_z = TABLE_HEIGHT - 0.5 * TABLE_THICKNESS
    legs = "".join(
        f'<geom type="box" size="0.025 0.025 {0.5 * (TABLE_HEIGHT - TABLE_THICKNESS):.5g}" '
        f'pos="{_fmt(sx * (hx - 0.05), sy * (hy - 0.05), 0.5 * (TABLE_HEIGHT - TABLE_THICKNESS))}" '
        f'material="table"/>'
        for sx in (-1, 1) for sy in (-1, 1))
    world = (
        '<geom name="floor" type="plane" size="4 4 0.1" material="floor"/>'
        '<geom name="wall" type="box" size="0.05 4 1.5" pos="2.6 0 1.5" material="wall"/>'
        f'<body name="table" pos="{_fmt(cx, cy, 0)}">'
        f'<geom name="table_top" type="box" size="{_fmt(hx, hy, 0.5 * TABLE_THICKNESS)}" '
        f'pos="0 0 {top_z:.5g}" material="table" friction="0.8 0.005 0.0001"/>'
        f'{legs}</body>'
    )
    return assets, world


def _light_xml(rng: np.random.Generator) -> tuple[str, dict[str, object]]:
    """A key light above the table at a random position/intensity, plus a weak fill."""
    pos = (rng.uniform(0.2, 1.0), rng.uniform(-0.7, 0.7), rng.uniform(2.0, 2.6))
    target = np.array([TABLE_CENTER_XY[0], 0.0, TABLE_HEIGHT])
    direction = target - np.array(pos)
    direction /= np.linalg.norm(direction)
    key = float(rng.uniform(0.55, 0.8))
    ambient = float(rng.uniform(0.25, 0.35))
    xml = (f'<light name="key" pos="{_fmt(*pos)}" dir="{_fmt(*direction)}" '
           f'diffuse="{_fmt(key, key, key)}" specular="0.2 0.2 0.2" castshadow="true"/>'
           f'<light name="fill" pos="0 0 2.5" dir="0.3 0 -1" diffuse="0.25 0.25 0.25" '
           f'specular="0 0 0" castshadow="false"/>')
    return xml, {"pos": pos, "diffuse": key, "ambient": ambient}


def _object_xml(obj: SimObject, model: _Model, index: int) -> tuple[str, str]:
    """(assets, body) MJCF of one object."""
    assets = [f'<material name="{obj.name}_mat" rgba="{_fmt(*obj.rgba)}" specular="0.3" '
              f'shininess="0.5" reflectance="0.0"/>']
    visuals = []
    for k, (mesh, role) in enumerate(model.parts):
        mesh_name = f"{obj.name}_mesh{k}"
        assets.append(meshes.mjcf_mesh(mesh_name, mesh))
        rgba = obj.rgba if role == "body" else ACCENT_RGBA[role]
        material = f'material="{obj.name}_mat"' if role == "body" else f'rgba="{_fmt(*rgba)}"'
        visuals.append(f'<geom name="{obj.name}_visual{k}" class="visual" type="mesh" '
                       f'mesh="{mesh_name}" {material}/>')
    n_col = len(model.collision)
    mass = model.mass / n_col  # shared evenly by the geoms that do not give their own
    collisions = [geom.replace("<geom ", f'<geom name="{obj.name}_collision{k}" class="collision" '
                               + ('' if ' mass="' in geom else f'mass="{mass:.4g}" '), 1)
                  for k, geom in enumerate(model.collision)]
    x, y, z = obj.position
    body = (f'<body name="{obj.body_name}" pos="{_fmt(x, y, z + 0.001)}" '
            f'euler="0 0 {obj.yaw:.6g}"><freejoint name="{obj.name}_joint"/>'
            + "".join(visuals) + "".join(collisions) + "</body>")
    return "".join(assets), body


TOUCH_GAP = 0.0015  # footprint gap of a ``touching`` pair along the drawn direction (m)
TOUCH_TRIES = 64  # directions drawn per touching pair
_SLAB = 0.015  # footprint pieces: visual-mesh triangles grouped into slabs this wide along x (m)


def _collision_points(geom: str) -> np.ndarray:
    """Points (Nx3, body frame) on the outline of one collision geom element of a ``_Model``."""
    import xml.etree.ElementTree as ET

    el = ET.fromstring(geom)
    kind = el.get("type", "sphere")
    size = [float(v) for v in el.get("size", "0").split()]
    pos = np.array([float(v) for v in el.get("pos", "0 0 0").split()])
    a = np.linspace(0.0, 2.0 * math.pi, 24, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    if kind == "box":
        local = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                         float) * size[:3]
    elif kind == "cylinder":
        r, half = size[0], size[1]
        local = np.concatenate([ring * r + [0, 0, -half], ring * r + [0, 0, half]])
    else:  # sphere / ellipsoid: three orthogonal rings bound its outline from above
        radii = np.array((size * 3)[:3]) if kind == "sphere" else np.array(size[:3])
        local = np.concatenate([ring, ring[:, [0, 2, 1]], ring[:, [2, 0, 1]]]) * radii
    rot = np.eye(3)
    for axis, angle in zip("xyz", (float(v) for v in el.get("euler", "0 0 0").split())):
        c, s = math.cos(angle), math.sin(angle)
        step = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
                "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
        rot = rot @ np.array(step)
    return local @ rot.T + pos


def _hull(points: np.ndarray):  # -> scipy.spatial.ConvexHull
    from scipy.spatial import ConvexHull

    return ConvexHull(points, qhull_options="QJ")  # joggled: flat pieces do not fail


def _footprint_pieces(model: _Model) -> list[np.ndarray]:
    """The model seen from above as a union of convex polygons (each Kx2, body frame): its
    visual meshes' triangles in slabs ``_SLAB`` wide along x (a lying bottle's neck stays thin,
    a mug's handle stays a handle) and its collision geoms."""
    pieces = []
    for (v, f), _role in model.parts:
        tri = np.asarray(v, float)[np.asarray(f)][:, :, :2]  # (M, 3, 2)
        slab = np.floor(tri.mean(axis=1)[:, 0] / _SLAB).astype(int)
        for k in np.unique(slab):
            pts = tri[slab == k].reshape(-1, 2)
            pieces.append(pts[_hull(pts).vertices])
    for geom in model.collision:
        pts = _collision_points(geom)[:, :2]
        pieces.append(pts[_hull(pts).vertices])
    return pieces


def _turn(points: np.ndarray, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return points @ np.array([[c, s], [-s, c]])


def _apart(a: list[np.ndarray], b: list[np.ndarray], margin: float) -> bool:
    """Whether no convex piece of ``a`` comes within ``margin`` of one of ``b`` (separating-axis
    test on the pieces' edge normals; conservative)."""
    for pa in a:
        for pb in b:
            separated = False
            for poly in (pa, pb):
                edges = np.roll(poly, -1, axis=0) - poly
                normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
                normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
                qa, qb = pa @ normals.T, pb @ normals.T
                gaps = np.maximum(qb.min(axis=0) - qa.max(axis=0), qa.min(axis=0) - qb.max(axis=0))
                if gaps.max() > margin:
                    separated = True
                    break
            if not separated:
                return False
    return True


def _contact_distance(a: list[np.ndarray], b: list[np.ndarray], u: np.ndarray) -> float:
    """How far along unit ``u`` footprint ``b`` (pieces around the same origin as ``a``) must be
    moved so that it just touches ``a``: the largest d with ``b + d u`` meeting ``a`` (exact for
    the convex pieces: where the line d u leaves each pieces pair's Minkowski difference)."""
    best = 0.0
    for pa in a:
        for pb in b:
            diff = (pa[:, None, :] - pb[None, :, :]).reshape(-1, 2)
            eq = _hull(diff).equations  # n . x + c <= 0 inside
            along = eq[:, :2] @ u
            limit = -eq[:, 2] / np.where(np.abs(along) < 1e-12, np.nan, along)
            if np.any((np.abs(along) < 1e-12) & (eq[:, 2] > 0)):
                continue  # the line misses this difference
            hi = np.nanmin(np.where(along > 0, limit, np.nan))
            lo = np.nanmax(np.where(along < 0, limit, np.nan))
            if lo <= hi:
                best = max(best, float(hi))
    return best


def _touch(rng: np.random.Generator, models: Sequence[_Model],
           positions: list[tuple[float, float]], headings: Sequence[float],
           i: int, j: int) -> tuple[float, float]:
    """An (x, y) for object ``j`` with its footprint ``TOUCH_GAP`` from object ``i``'s (along a
    direction drawn from ``rng``), clear of every other object and on the table; inside the
    placement area if any drawn direction allows it."""
    pieces = {k: [_turn(p, float(headings[k])) for p in _footprint_pieces(m)]
              for k, m in enumerate(models)}
    radius = {k: max(float(np.linalg.norm(p, axis=1).max()) for p in ps)
              for k, ps in pieces.items()}
    xi, yi = positions[i]
    fallback = None
    for angle in rng.uniform(-math.pi, math.pi, TOUCH_TRIES):
        u = np.array([math.cos(angle), math.sin(angle)])
        d = _contact_distance(pieces[i], pieces[j], u) + TOUCH_GAP
        x, y = xi + d * u[0], yi + d * u[1]
        if (abs(x - TABLE_CENTER_XY[0]) > TABLE_HALF_SIZE[0] - radius[j]
                or abs(y - TABLE_CENTER_XY[1]) > TABLE_HALF_SIZE[1] - radius[j]):
            continue
        moved = [p + [x, y] for p in pieces[j]]
        if not all(math.dist((x, y), positions[k]) > radius[j] + radius[k] + 0.002
                   or _apart([p + positions[k] for p in pieces[k]], moved, 0.002)
                   for k in pieces if k not in (i, j)):
            continue
        if PLACEMENT_X[0] <= x <= PLACEMENT_X[1] and PLACEMENT_Y[0] <= y <= PLACEMENT_Y[1]:
            return float(x), float(y)
        fallback = fallback or (float(x), float(y))
    if fallback is None:
        raise ValueError(f"could not put object {j} against object {i} without hitting another")
    return fallback


def _choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def generate_scene(
    seed: int,
    n_objects: int = 4,
    categories: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    layout: Sequence[tuple[str, str]] | None = None,
    camera: CameraSetup = DEFAULT_CAMERA,
    pinned: dict[int, tuple[float, float]] | None = None,
    touching: Sequence[tuple[int, int]] | None = None,
    yaws: dict[int, float] | None = None,
) -> SceneSpec:
    """A random tabletop scene, the same for the same arguments.

    Without ``layout``: ``n_objects`` objects with categories drawn from ``categories`` (default
    all of ``CATEGORIES``) and colours from ``colors`` (default the whole ``PALETTE``; fruit keeps
    its natural colours).  With ``layout`` (a list of (category, colour) pairs) exactly those
    objects are placed, at random poses.  Names are ``<colour>_<category>_<i>``.  ``pinned``
    puts object ``i`` at an (x, y) of its own (anywhere on the table, e.g. outside the camera's
    first view, for active search); the others keep clear of it.

    ``yaws`` forces object ``i``'s heading (rad about z; e.g. a box turned 45 deg from the
    camera's viewing direction +x).  ``touching`` pairs ``(i, j)``, in order, move object ``j``
    against object ``i``: their footprints (convex hulls of the visual meshes seen from above)
    end ``TOUCH_GAP`` apart in a random direction, clear of the others.  Their random draws come
    after all the others, so the same seed without them gives the same scene as before.
    """
    rng = np.random.default_rng(seed)
    if layout is None:
        cats = list(categories or CATEGORIES)
        cols = list(colors or PALETTE)
        layout = []
        for _ in range(n_objects):
            category = _choose(rng, cats)
            allowed = [c for c in cols if c in CATEGORY_COLORS.get(category, cols)]
            layout.append((category, _choose(rng, allowed or CATEGORY_COLORS[category])))
    for category, color in layout:
        if category not in BUILDERS:
            raise ValueError(f"unknown category {category!r}; known: {', '.join(BUILDERS)}")
        if color not in PALETTE:
            raise ValueError(f"unknown colour {color!r}; known: {', '.join(PALETTE)}")

    models = [BUILDERS[category](rng) for category, _ in layout]
    radii = [0.5 * math.hypot(m.size[0], m.size[1]) for m in models]
    positions = _place(rng, radii, pinned or {})
    headings = [float(h) for h in rng.uniform(-math.pi, math.pi, len(models))]
    table_assets, table_world = _table_xml(rng)
    light, light_info = _light_xml(rng)

    for i, yaw in (yaws or {}).items():
        if not 0 <= i < len(models):
            raise ValueError(f"yaws: no object {i} (have {len(models)})")
        headings[i] = float(yaw)
    for i, j in touching or ():
        if i == j or not (0 <= i < len(models) and 0 <= j < len(models)):
            raise ValueError(f"touching: bad pair ({i}, {j}) for {len(models)} objects")
        positions[j] = _touch(rng, models, positions, headings, i, j)

    objects: list[SimObject] = []
    assets, bodies = [], []
    for i, ((category, color), model, (x, y), yaw) in enumerate(
            zip(layout, models, positions, headings)):
        name = f"{color}_{category}_{i}"
        obj = SimObject(name=name, category=category, color_name=color, rgba=PALETTE[color],
                        position=(float(x), float(y), TABLE_HEIGHT), yaw=float(yaw),
                        size=tuple(float(s) for s in model.size), body_name=name,
                        detector_label=DETECTOR_LABELS[category])
        objects.append(obj)
        a, b = _object_xml(obj, model, i)
        assets.append(a)
        bodies.append(b)

    cam_x, cam_y, cam_z = camera.pose_in_base[:3]
    amb = light_info["ambient"]
    xml = (
        f'<mujoco model="tabletop_{seed}">'
        '<compiler angle="radian"/>'
        '<option timestep="0.002" integrator="implicitfast"/>'
        f'<statistic center="{_fmt(TABLE_CENTER_XY[0], 0, TABLE_HEIGHT)}" extent="1.5"/>'
        f'<visual><global offwidth="{camera.width}" offheight="{camera.height}"/>'
        f'<headlight ambient="{_fmt(amb, amb, amb)}" diffuse="0.45 0.45 0.45" specular="0 0 0"/>'
        '<quality shadowsize="4096"/><map znear="0.01" zfar="20"/></visual>'
        '<default>'
        '<default class="visual"><geom contype="0" conaffinity="0" density="0" group="1"/>'
        '</default>'
        '<default class="collision"><geom group="3" condim="4" friction="1.0 0.02 0.001" '
        'solref="0.005 1" rgba="0.5 0.5 0.5 0.3"/></default>'
        '</default>'
        f'<asset>{table_assets}{"".join(assets)}</asset>'
        '<worldbody>'
        f'{light}{table_world}'
        f'<camera name="{camera.name}" pos="{_fmt(cam_x, cam_y, cam_z)}" '
        f'quat="{_fmt(*camera.mujoco_quat())}" fovy="{camera.fovy_deg:.5g}"/>'
        f'{"".join(bodies)}'
        '</worldbody></mujoco>'
    )
    return SceneSpec(seed=seed, objects=objects, xml=xml, camera=camera,
                     table_height=TABLE_HEIGHT, light=light_info)


def load(spec: SceneSpec):  # -> tuple[mujoco.MjModel, mujoco.MjData]
    """Compile the scene and return (model, data) with forward kinematics done."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(spec.xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


__all__ = [
    "TABLE_HEIGHT", "PALETTE", "DETECTOR_LABELS", "CATEGORIES", "HARD_CATEGORIES", "CameraSetup",
    "DEFAULT_CAMERA",
    "SimObject", "SceneSpec", "generate_scene", "load",
]
