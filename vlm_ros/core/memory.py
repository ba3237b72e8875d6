"""Object memory: what the robot has seen, where (in a fixed frame), and how long ago.

ROS-free and single-threaded (the command session owns it).  Every grounding the model made
offers its candidates (:meth:`ObjectMemory.observe`); an object above the safety gate's
confidence with a 3D position is remembered:

* **Merging.**  An observation of the same label and colour within ``merge_distance_m`` of a
  remembered object is the same object: its position becomes the running mean, its spread
  (``sigma_m``) the observations' standard deviation (at least ``min_sigma_m``), ``times_seen``
  counts, ``last_seen`` is the frame's stamp.
* **Gone.**  A remembered object whose position lies in the view just grounded - inside the
  image, in front of the camera, not hidden behind something nearer in the depth image - and
  that the model did not see there is missed; after ``miss_limit`` misses in a row it is dropped.
  A goal from memory therefore never points at an object the camera has since seen is gone.
* **Bounded.**  At most ``max_objects``; beyond that the one seen least recently goes.
* **Persistent on request.**  :meth:`to_json` / :meth:`load_json` (the node's ``~/save_memory``
  and ``memory_file``).

The command session owns it and calls it from its one thread; the node's ``~/save_memory`` and
``~/clear_memory`` services come from another, so every public method holds ``lock``.

Positions are in one fixed frame (``frame_id``): the frame the session's goals are made in
(``base_frame``); on a robot that drives, set that to ``odom`` or ``map`` so remembered positions
stay put while the robot moves (docs/memory.md).
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vlm_ros.core.geometry import Transform, project
from vlm_ros.core.types import BBox, CameraIntrinsics, Candidate, ObjectQuery, Vec3
from vlm_ros.core.vocabulary import labels_for_noun

FORMAT = "vlm_ros.memory/1"


@dataclass(frozen=True)
class MemoryConfig:
    enabled: bool = True
    min_confidence: float = 0.3  # the safety gate's: weaker detections are not remembered
    merge_distance_m: float = 0.15  # same label + colour this close = the same object
    miss_limit: int = 2  # in view and not seen this many times in a row: gone
    max_objects: int = 200
    min_sigma_m: float = 0.01
    # A remembered object counts as in view only if the depth image there is no nearer than its
    # expected depth minus this (otherwise something stands in front of it).
    occlusion_margin_m: float = 0.15
    max_age_s: float = 120.0  # a goal from memory needs a sighting at most this old


@dataclass
class RememberedObject:
    """One object the robot has seen (positions in ``ObjectMemory.frame_id``, metres)."""

    id: int
    label: str
    color: str | None
    position: Vec3
    sigma_m: float
    first_seen: float
    last_seen: float
    times_seen: int = 1
    misses: int = 0
    score: float = 0.0
    width_m: float | None = None
    bbox: BBox | None = None  # where it was in the image it was last seen in
    # running sums for the mean and the spread
    _sum: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0], repr=False)
    _sum_sq: float = field(default=0.0, repr=False)

    def age(self, now: float) -> float:
        return max(0.0, now - self.last_seen)

    def describe(self, now: float, frame_id: str) -> str:
        x, y, z = self.position
        what = f"{self.color} {self.label}" if self.color else self.label
        return (f"the {what} was seen {self.age(now):.0f} s ago at ({x:.2f}, {y:.2f}, {z:.2f}) m "
                f"in {frame_id} (seen {self.times_seen} time{'s' * (self.times_seen != 1)}, "
                f"±{self.sigma_m:.2f} m)")

    def as_candidate(self) -> Candidate:
        return Candidate(id=self.id, label=self.label, score=self.score,
                         bbox=self.bbox or (0.0, 0.0, 0.0, 0.0), color=self.color,
                         width_m=self.width_m, point_base=self.position,
                         reasons=[f"remembered: seen {self.times_seen}x"])

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        data["position"] = [round(float(v), 4) for v in self.position]
        data["sum"], data["sum_sq"] = list(self._sum), self._sum_sq
        if now is not None:
            data["age_s"] = round(self.age(now), 2)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RememberedObject:
        obj = cls(id=int(data["id"]), label=str(data["label"]), color=data.get("color"),
                  position=tuple(float(v) for v in data["position"]),  # type: ignore[arg-type]
                  sigma_m=float(data["sigma_m"]), first_seen=float(data["first_seen"]),
                  last_seen=float(data["last_seen"]), times_seen=int(data["times_seen"]),
                  misses=int(data.get("misses", 0)), score=float(data.get("score", 0.0)),
                  width_m=data.get("width_m"),
                  bbox=tuple(data["bbox"]) if data.get("bbox") else None)  # type: ignore[arg-type]
        obj._sum = [float(v) for v in data.get("sum", [c * obj.times_seen for c in obj.position])]
        obj._sum_sq = float(data.get("sum_sq", sum(c * c for c in obj.position) * obj.times_seen))
        return obj


@dataclass(frozen=True)
class View:
    """What the camera saw when a grounding was made: to tell which remembered objects should
    have been visible.  ``camera_from_fixed`` maps memory positions into the optical frame."""

    intrinsics: CameraIntrinsics
    camera_from_fixed: Transform
    depth_m: np.ndarray | None = None
    width: int = 0
    height: int = 0


def _locked(method):  # noqa: ANN001, ANN202 - a decorator keeps the method's own signature
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper


class ObjectMemory:
    """What was seen where.  See the module docstring."""

    def __init__(self, config: MemoryConfig | None = None, frame_id: str = "base_link") -> None:
        self.config = config or MemoryConfig()
        self.frame_id = frame_id
        self.objects: dict[int, RememberedObject] = {}
        self._next_id = 1
        # Bumped by every change: an owner republishes the memory only when it changed.
        self.version = 0
        self.lock = threading.RLock()

    # -------------------------------------------------------------------------- updates
    @_locked
    def observe(self, candidates: Sequence[Candidate], stamp: float, view: View | None = None,
                looked_for: frozenset[str] | None = None) -> list[RememberedObject]:
        """Remember what a grounding saw; count misses of what it should have seen.  Only
        objects whose label the grounding looked for (``looked_for``; None: every label) can
        be missed - the model was not asked about the rest.  Returns the objects this
        observation updated or added."""
        if not self.config.enabled:
            return []
        touched: list[RememberedObject] = []
        for cand in candidates:
            if cand.point_base is None or cand.score < self.config.min_confidence:
                continue
            if not all(math.isfinite(v) for v in cand.point_base):
                continue
            obj = self._match(cand)
            if obj is None:
                obj = self._add(cand, stamp)
            else:
                self._merge(obj, cand, stamp)
            touched.append(obj)
        before = len(self.objects)
        if view is not None:
            self._count_misses(view, {o.id for o in touched}, looked_for)
        self._bound()
        if touched or len(self.objects) != before:
            self.version += 1
        return touched

    @_locked
    def forget(self, object_id: int) -> bool:
        self.version += 1
        return self.objects.pop(object_id, None) is not None

    @_locked
    def clear(self) -> int:
        count = len(self.objects)
        self.objects.clear()
        self.version += 1
        return count

    # -------------------------------------------------------------------------- queries
    @_locked
    def find(self, query: ObjectQuery, now: float,
             max_age_s: float | None = None) -> list[RememberedObject]:
        """Remembered objects ``query`` describes (noun and colour; other attributes are the
        caller's to judge or name), most recently seen first; ``max_age_s`` drops older ones."""
        # The remembered labels are the vocabulary: "mug" finds a remembered "cup".
        remembered = frozenset(o.label for o in self.objects.values())
        labels = labels_for_noun(query.noun, remembered) if query.noun else None
        found = []
        for obj in self.objects.values():
            if labels is not None and obj.label not in labels:
                continue
            if query.color is not None and obj.color != query.color:
                continue
            if max_age_s is not None and obj.age(now) > max_age_s:
                continue
            found.append(obj)
        return sorted(found, key=lambda o: -o.last_seen)

    @_locked
    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every remembered object as JSON, most recently seen first (with its age)."""
        return [o.to_dict(now) for o in sorted(self.objects.values(), key=lambda o: -o.last_seen)]

    # ---------------------------------------------------------------------- persistence
    @_locked
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "frame_id": self.frame_id,
                           "next_id": self._next_id,
                           "objects": [o.to_dict() for o in self.objects.values()]}, indent=1)

    @_locked
    def load_json(self, text: str) -> int:
        """Replace what is remembered with a saved memory; ValueError when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a vlm_ros memory file (format {FORMAT!r})")
        if data.get("frame_id") != self.frame_id:
            raise ValueError(f"the memory was saved in frame '{data.get('frame_id')}', this node "
                             f"remembers in '{self.frame_id}'")
        objects = [RememberedObject.from_dict(o) for o in data.get("objects", [])]
        self.objects = {o.id: o for o in objects}
        self._next_id = max([int(data.get("next_id", 1)), *(o.id + 1 for o in objects)])
        self._bound()
        self.version += 1
        return len(self.objects)

    # ------------------------------------------------------------------------ internals
    def _match(self, cand: Candidate) -> RememberedObject | None:
        best, best_distance = None, self.config.merge_distance_m
        for obj in self.objects.values():
            if obj.label != cand.label or (cand.color and obj.color and cand.color != obj.color):
                continue
            distance = math.dist(obj.position, cand.point_base)  # type: ignore[arg-type]
            if distance <= best_distance:
                best, best_distance = obj, distance
        return best

    def _add(self, cand: Candidate, stamp: float) -> RememberedObject:
        position = tuple(float(v) for v in cand.point_base)  # type: ignore[union-attr]
        obj = RememberedObject(id=self._next_id, label=cand.label, color=cand.color,
                               position=position, sigma_m=self.config.min_sigma_m,
                               first_seen=stamp, last_seen=stamp, score=cand.score,
                               width_m=cand.width_m, bbox=cand.bbox)
        obj._sum = list(position)
        obj._sum_sq = sum(v * v for v in position)
        self._next_id += 1
        self.objects[obj.id] = obj
        return obj

    def _merge(self, obj: RememberedObject, cand: Candidate, stamp: float) -> None:
        point = cand.point_base
        assert point is not None
        obj.times_seen += 1
        obj._sum = [s + float(v) for s, v in zip(obj._sum, point)]
        obj._sum_sq += sum(float(v) * float(v) for v in point)
        n = obj.times_seen
        mean = tuple(s / n for s in obj._sum)
        variance = max(0.0, obj._sum_sq / n - sum(m * m for m in mean)) / 3.0
        obj.position = mean  # type: ignore[assignment]
        obj.sigma_m = max(self.config.min_sigma_m, math.sqrt(variance))
        obj.last_seen = max(obj.last_seen, stamp)
        obj.misses = 0
        obj.score = max(obj.score, cand.score)
        obj.color = obj.color or cand.color
        obj.width_m = cand.width_m if cand.width_m is not None else obj.width_m
        obj.bbox = cand.bbox

    def _count_misses(self, view: View, seen: set[int],
                      looked_for: frozenset[str] | None) -> None:
        for obj in list(self.objects.values()):
            if obj.id in seen or (looked_for is not None and obj.label not in looked_for):
                continue
            if not self.in_view(obj, view):
                continue
            obj.misses += 1
            if obj.misses >= self.config.miss_limit:
                del self.objects[obj.id]

    @_locked
    def in_view(self, obj: RememberedObject, view: View) -> bool:
        """Should the camera have seen ``obj`` in this view?"""
        point = view.camera_from_fixed.apply(obj.position)
        if point[2] <= 0.05:
            return False
        try:
            u, v = project(point, view.intrinsics)
        except ValueError:
            return False
        width = view.width or view.intrinsics.width
        height = view.height or view.intrinsics.height
        if not (0 <= u < width and 0 <= v < height):
            return False
        if view.depth_m is None:
            return True
        depth = view.depth_m
        scale_x, scale_y = depth.shape[1] / width, depth.shape[0] / height
        row, col = int(v * scale_y), int(u * scale_x)
        patch = depth[max(0, row - 2):row + 3, max(0, col - 2):col + 3]
        finite = patch[np.isfinite(patch) & (patch > 0)]
        if finite.size == 0:
            return False  # no depth there: cannot tell
        return float(np.median(finite)) >= point[2] - self.config.occlusion_margin_m

    def _bound(self) -> None:
        extra = len(self.objects) - self.config.max_objects
        if extra > 0:
            oldest = sorted(self.objects.values(), key=lambda o: (o.last_seen, o.times_seen))
            for obj in oldest[:extra]:
                del self.objects[obj.id]
