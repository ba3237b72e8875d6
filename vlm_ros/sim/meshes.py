"""Household-object meshes generated in code: (vertices Nx3 float, faces Mx3 int) in metres.

Why generated meshes and not MuJoCo primitives: the offline detector (SSD-MobileNetV2 COCO) was
trained on photos, and a plain cylinder does not look like a cup to it.  A lathed profile with a
rim, a hollow interior and a handle does.  Every object's local frame has its origin at the centre
of its footprint on the table (z = 0 is the bottom), z up, so placing an object is placing a point
on the table top.  Faces are counter-clockwise seen from outside (MuJoCo computes normals from
that winding).

All generators are pure numpy and deterministic: the same arguments give the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]  # (vertices float64 Nx3, faces int32 Mx3)


def lathe(profile: Sequence[tuple[float, float]], segments: int = 40) -> Mesh:
    """Revolve a 2D profile of (radius, z) points about the z axis.

    The profile is walked in order; walking it so the solid is on the left-hand side when r is to
    the right and z is up (e.g. outer wall bottom->top, then inner wall top->bottom) makes faces
    point outwards.  Points with radius 0 become single pole vertices, closing the surface there.
    """
    pts = [(float(r), float(z)) for r, z in profile]
    angles = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    vertices: list[np.ndarray] = []
    rings: list[int | list[int]] = []  # a pole index or the ring's vertex indices
    count = 0
    for r, z in pts:
        if r <= 1e-9:
            vertices.append(np.array([[0.0, 0.0, z]]))
            rings.append(count)
            count += 1
        else:
            vertices.append(np.stack([r * cos, r * sin, np.full(segments, z)], axis=1))
            rings.append(list(range(count, count + segments)))
            count += segments
    faces: list[tuple[int, int, int]] = []
    for a, b in zip(rings[:-1], rings[1:]):
        for i in range(segments):
            j = (i + 1) % segments
            if isinstance(a, int) and isinstance(b, int):
                continue
            if isinstance(a, int):  # pole -> ring
                faces.append((a, b[j], b[i]))
            elif isinstance(b, int):  # ring -> pole
                faces.append((a[i], a[j], b))
            else:
                faces.append((a[i], b[j], b[i]))
                faces.append((a[i], a[j], b[j]))
    return np.concatenate(vertices), np.asarray(faces, np.int32)


def merge(*meshes: Mesh) -> Mesh:
    """One mesh holding all the given meshes (vertex indices shifted)."""
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces).astype(np.int32)


def transform(mesh: Mesh, translation: Sequence[float] = (0, 0, 0), yaw: float = 0.0) -> Mesh:
    """The mesh rotated by ``yaw`` about z, then translated."""
    v, f = mesh
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return v @ rot.T + np.asarray(translation, float), f


def cup(radius: float, height: float, wall: float = 0.006, bottom: float = 0.008,
        taper: float = 0.0, segments: int = 48) -> Mesh:
    """A hollow cup: outer wall, rounded rim of thickness ``wall``, inner wall, inner floor.

    ``taper`` shrinks the base radius (a paper cup is ~0.25); a mug is ~0.
    """
    base = radius * (1.0 - taper)
    lip = min(wall * 0.5, 0.003)
    profile = [
        (0.0, 0.0), (base - 0.004, 0.0), (base, 0.004),
        (radius, height - lip),
        (radius - wall * 0.5, height),  # rounded rim
        (radius - wall, height - lip),
        (base - wall, bottom + 0.004), (base - wall - 0.004, bottom), (0.0, bottom),
    ]
    return lathe(profile, segments)


def cup_parts(radius: float, height: float, wall: float = 0.006, bottom: float = 0.008,
              taper: float = 0.0, segments: int = 48) -> tuple[Mesh, Mesh]:
    """(outside, inside) of :func:`cup` as two meshes, so the inside can be glazed differently
    (most mugs are white inside; the contrast is a strong "this is a cup" cue from above)."""
    base = radius * (1.0 - taper)
    lip = min(wall * 0.5, 0.003)
    outside = [(0.0, 0.0), (base - 0.004, 0.0), (base, 0.004), (radius, height - lip),
               (radius - wall * 0.5, height)]
    inside = [(radius - wall * 0.5, height), (radius - wall, height - lip),
              (base - wall, bottom + 0.004), (base - wall - 0.004, bottom), (0.0, bottom)]
    return lathe(outside, segments), lathe(inside, segments)


def band(radius: float, z0: float, z1: float, segments: int = 40) -> Mesh:
    """An open tube (a bottle's paper label, a can's print) from ``z0`` to ``z1``."""
    return lathe([(radius, z0), (radius, z1)], segments)


def handle(radius: float, height: float, reach: float, thickness: float,
           segments: int = 20, sides: int = 10) -> Mesh:
    """A C-shaped handle: a tube swept along half an ellipse in the x-z plane.

    The arc starts and ends at x = ``radius`` (the mug wall), centred at z = ``height`` / 2, and
    reaches ``reach`` beyond the wall; the tube's cross-section is an ellipse ``thickness`` wide
    (y) and 0.6 * ``thickness`` deep, like a moulded mug handle.
    """
    half = 0.5 * height
    t = np.linspace(-np.pi / 2, np.pi / 2, segments)
    centre = np.stack([radius - 0.003 + reach * np.cos(t), np.zeros_like(t),
                       half + half * np.sin(t)], axis=1)
    tangent = np.stack([-reach * np.sin(t), np.zeros_like(t), half * np.cos(t)], axis=1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    binormal = np.array([0.0, 1.0, 0.0])
    normal = np.cross(binormal, tangent)  # in the x-z plane, pointing away from the arc centre
    phi = np.linspace(0.0, 2.0 * np.pi, sides, endpoint=False)
    a, b = 0.3 * thickness, 0.5 * thickness
    vertices = (centre[:, None, :]
                + a * np.cos(phi)[None, :, None] * normal[:, None, :]
                + b * np.sin(phi)[None, :, None] * binormal[None, None, :]).reshape(-1, 3)
    faces = []
    for i in range(segments - 1):
        for k in range(sides):
            k2 = (k + 1) % sides
            p, q = i * sides + k, i * sides + k2
            r, s = (i + 1) * sides + k, (i + 1) * sides + k2
            faces += [(p, r, s), (p, s, q)]
    # cap the two ends (they sit inside the mug wall, but closed meshes shade cleanly)
    n = len(vertices)
    ends = np.array([centre[0], centre[-1]])
    vertices = np.concatenate([vertices, ends])
    for k in range(sides):
        k2 = (k + 1) % sides
        faces.append((n, k2, k))
        last = (segments - 1) * sides
        faces.append((n + 1, last + k, last + k2))
    return _outward(vertices, np.asarray(faces, np.int32), centre)


def _outward(vertices: np.ndarray, faces: np.ndarray, spine: np.ndarray) -> np.ndarray | Mesh:
    """Flip faces whose normal points towards the nearest spine point (tube meshes)."""
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centroid = tri.mean(axis=1)
    nearest = spine[np.argmin(np.linalg.norm(centroid[:, None] - spine[None], axis=2), axis=1)]
    inward = np.einsum("ij,ij->i", normal, centroid - nearest) < 0
    faces = faces.copy()
    faces[inward] = faces[inward][:, ::-1]
    return vertices, faces


def mug_handle(radius: float, height: float) -> Mesh:
    """The handle of :func:`mug` alone, on the +x side."""
    grip = handle(radius, 0.62 * height, reach=0.45 * radius + 0.012,
                  thickness=0.45 * radius * 0.5 + 0.008)
    return transform(grip, (0.0, 0.0, 0.2 * height))


def mug(radius: float, height: float, wall: float = 0.006, segments: int = 48) -> Mesh:
    """A mug: a straight hollow cup plus a handle on its +x side."""
    body = cup(radius, height, wall=wall, bottom=0.01, taper=0.0, segments=segments)
    return merge(body, mug_handle(radius, height))


def _bowl_profiles(radius: float, height: float, wall: float
                   ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(outside, inside) lathe profiles of a bowl; they share the rim point."""
    foot = 0.45 * radius
    n = 10
    t = np.linspace(0.0, 1.0, n)
    # outer wall: from the foot up to the rim following a quarter-ellipse
    outer = [(foot + (radius - foot) * np.sin(0.5 * np.pi * ti),
              0.012 + (height - 0.012) * (1 - np.cos(0.5 * np.pi * ti))) for ti in t]
    inner = [(max(0.0, (foot + (radius - foot) * np.sin(0.5 * np.pi * ti)) - wall),
              0.012 + wall + (height - 0.012 - wall) * (1 - np.cos(0.5 * np.pi * ti)))
             for ti in t[::-1]]
    outside = ([(0.0, 0.004), (foot - 0.006, 0.004), (foot - 0.004, 0.0), (foot, 0.0)]
               + outer + [(radius - wall * 0.5, height + 0.002)])
    inside = [(radius - wall * 0.5, height + 0.002)] + inner[:-1] + [(0.0, inner[-1][1])]
    return outside, inside


def bowl_parts(radius: float, height: float, wall: float = 0.006,
               segments: int = 56) -> tuple[Mesh, Mesh]:
    """(outside, inside) of :func:`bowl`, so the inside can be glazed differently."""
    outside, inside = _bowl_profiles(radius, height, wall)
    return lathe(outside, segments), lathe(inside, segments)


def bowl(radius: float, height: float, wall: float = 0.006, segments: int = 56) -> Mesh:
    """A bowl: a foot ring, a rounded outer wall flaring to the rim, a matching inner surface."""
    outside, inside = _bowl_profiles(radius, height, wall)
    return lathe(outside + inside[1:], segments)


def bottle(radius: float, height: float, neck_radius: float | None = None,
           segments: int = 40) -> Mesh:
    """A closed bottle: body, rounded shoulder, neck, lip (the cap is a separate mesh)."""
    neck = neck_radius or max(0.011, 0.38 * radius)
    body_top = 0.62 * height
    neck_start = 0.82 * height
    shoulder = []
    for ti in np.linspace(0.0, 1.0, 8)[1:]:
        shoulder.append((neck + (radius - neck) * np.cos(0.5 * np.pi * ti),
                         body_top + (neck_start - body_top) * np.sin(0.5 * np.pi * ti)))
    profile = ([(0.0, 0.0), (radius - 0.004, 0.0), (radius, 0.005), (radius, body_top)]
               + shoulder + [(neck, height * 0.93), (neck * 1.12, height * 0.94),
                             (neck * 1.12, height * 0.95), (neck, height * 0.955),
                             (neck, height), (0.0, height)])
    return lathe(profile, segments)


def bottle_cap(neck_radius: float, bottle_height: float, segments: int = 24) -> Mesh:
    """A screw cap covering the top 5 % of a bottle's neck."""
    r = neck_radius * 1.18
    z0, z1 = bottle_height * 0.955, bottle_height + 0.004
    return lathe([(0.0, z0), (r, z0), (r, z1 - 0.002), (r - 0.002, z1), (0.0, z1)], segments)


def can(radius: float, height: float, segments: int = 40) -> Mesh:
    """A drink can: necked-in bottom and top, recessed lid."""
    profile = [(0.0, 0.004), (radius * 0.8, 0.0), (radius, 0.01), (radius, height - 0.012),
               (radius * 0.85, height - 0.002), (radius * 0.86, height), (radius * 0.8, height - 0.004),
               (0.0, height - 0.004)]
    return lathe(profile, segments)


def sphere(radius: float, rings: int = 20, segments: int = 32, dimple: float = 0.0,
           squash: float = 1.0) -> Mesh:
    """A UV sphere resting on z = 0, optionally an apple: dimples at the poles, squashed height.

    ``dimple`` (0..0.4) pulls the poles in as a share of the radius; ``squash`` scales the height.
    """
    theta = np.linspace(0.0, np.pi, rings + 1)  # 0 at the top pole
    # pole dimples: the radius drops near both poles, most at the top (apple stem well)
    pull = dimple * (np.exp(-(theta / 0.45) ** 2) + 0.5 * np.exp(-((np.pi - theta) / 0.45) ** 2))
    r = radius * (1.0 - pull)
    z = r * np.cos(theta) * squash
    rho = r * np.sin(theta)
    profile = list(zip(rho[::-1].tolist(), z[::-1].tolist()))  # bottom -> top
    profile[0] = (0.0, profile[0][1])
    profile[-1] = (0.0, profile[-1][1])
    v, f = lathe(profile, segments)
    v[:, 2] -= v[:, 2].min()
    return v, f


def stem(height: float, radius: float = 0.003, lean: float = 0.2, segments: int = 8) -> Mesh:
    """A short leaning cylinder (a fruit stem) rising from the origin."""
    v, f = lathe([(0.0, 0.0), (radius, 0.0), (radius * 0.8, height), (0.0, height)], segments)
    v = v.copy()
    v[:, 0] += lean * v[:, 2]
    return v, f


def box(width: float, depth: float, height: float, bevel: float = 0.0) -> Mesh:
    """A box of size (width x, depth y, height z) standing on z = 0, edges chamfered by ``bevel``.

    The chamfered box is the convex hull of three boxes each shrunk by ``bevel`` along one axis.
    """
    from scipy.spatial import ConvexHull

    hx, hy, hz = width / 2, depth / 2, height / 2
    b = min(bevel, 0.45 * min(width, depth, height))
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    if b <= 0:
        points = corners * [hx, hy, hz]
    else:
        points = np.concatenate([corners * [hx - b, hy - b, hz], corners * [hx - b, hy, hz - b],
                                 corners * [hx, hy - b, hz - b]])
    hull = ConvexHull(points)
    faces = hull.simplices.astype(np.int32).copy()
    tri = points[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("ij,ij->i", normal, tri.mean(axis=1)) < 0
    faces[inward] = faces[inward][:, ::-1]
    used = np.unique(faces)
    remap = np.full(len(points), -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    vertices = points[used] + [0.0, 0.0, hz]
    return vertices, remap[faces]


def lay_down(mesh: Mesh, length: float, radius: float) -> Mesh:
    """An upright lathed mesh (axis z, bottom at z = 0, ``length`` tall) laid on its side.

    Its axis becomes the x axis (the old bottom at x = -``length`` / 2), centred on the origin
    in x, its lowest ``radius`` touching z = 0.  A proper rotation, so the winding stays outward.
    """
    v, f = mesh
    rot = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +z -> +x
    return v @ rot.T + [-0.5 * length, 0.0, radius], f


def book_parts(width: float, depth: float, height: float, cover: float = 0.0025,
               inset: float = 0.003) -> tuple[Mesh, Mesh]:
    """(covers, pages) of a closed book lying flat: size (width x, depth y, height z).

    Hard covers top and bottom joined by a spine on the -y side; the page block between them is
    set back by ``inset`` on the three open sides (the pale page edges a camera sees).
    """
    c = cover
    top = transform(box(width, depth, c, bevel=0.0008), (0.0, 0.0, height - c))
    bottom = box(width, depth, c, bevel=0.0008)
    spine = transform(box(width, c, height, bevel=0.0008), (0.0, -0.5 * depth + 0.5 * c, 0.0))
    page_depth = depth - c - inset
    pages = transform(box(width - 2 * inset, page_depth, height - 2 * c),
                      (0.0, -0.5 * depth + c + 0.5 * page_depth, c))
    return merge(top, bottom, spine), pages


def pen_parts(radius: float, length: float, segments: int = 20) -> tuple[Mesh, Mesh, Mesh]:
    """(barrel, tip, end cap) of a pen standing on its tip (axis z, ``length`` tall); lay it down
    with :func:`lay_down`."""
    tip_len = 0.12 * length
    cap_len = 0.05 * length
    tip = lathe([(0.0, 0.0), (0.2 * radius, 0.0), (0.9 * radius, tip_len), (0.0, tip_len)],
                segments)
    barrel = lathe([(0.0, tip_len), (0.9 * radius, tip_len), (radius, tip_len + 0.003),
                    (radius, length - cap_len), (0.0, length - cap_len)], segments)
    cap = lathe([(0.0, length - cap_len), (0.96 * radius, length - cap_len),
                 (0.96 * radius, length - 0.002), (0.7 * radius, length), (0.0, length)],
                segments)
    return barrel, tip, cap


def plate(radius: float, height: float, segments: int = 56) -> Mesh:
    """A small plate / saucer: a foot ring, a shallow well and a slightly raised rim."""
    well = min(0.006, 0.35 * height)
    outside = [(0.0, 0.002), (0.5 * radius - 0.003, 0.002), (0.5 * radius - 0.001, 0.0),
               (0.5 * radius + 0.002, 0.0), (0.62 * radius, 0.003),
               (0.9 * radius, 0.55 * height), (radius, height - 0.0015),
               (radius - 0.002, height)]
    inside = [(radius - 0.0045, height - 0.001), (0.9 * radius - 0.002, 0.55 * height + well),
              (0.62 * radius, well), (0.0, well)]
    return lathe(outside + inside, segments)


def mjcf_mesh(name: str, mesh: Mesh, precision: int = 5) -> str:
    """An MJCF ``<mesh>`` asset element with the vertices and faces inline."""
    v, f = mesh
    verts = " ".join(f"{x:.{precision}g}" for x in np.asarray(v, float).ravel())
    faces = " ".join(str(int(i)) for i in np.asarray(f).ravel())
    return f'<mesh name="{name}" vertex="{verts}" face="{faces}"/>'


__all__ = [
    "Mesh", "lathe", "merge", "transform", "cup", "cup_parts", "band", "handle", "mug_handle", "mug", "bowl", "bowl_parts", "bottle",
    "bottle_cap", "can", "sphere", "stem", "box", "lay_down", "book_parts", "pen_parts", "plate",
    "mjcf_mesh",
]
