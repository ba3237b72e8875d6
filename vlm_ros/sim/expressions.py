"""Referring expressions with ground truth, generated from a simulated scene.

Why: the evaluation (:mod:`vlm_ros.sim.evaluate`) must know, for every command it sends, what a
careful human would answer - which object is meant, or that nothing matches, or that the words
fit several objects.  Each :class:`Case` is only generated when the scene makes it unambiguous by a
margin (objects well apart in the image for left/right and ordinals, a clearly nearest object for
"next to"), so a wrong answer is the system's fault, never the test's.

Scenes are built from the categories the default SSD COCO detector actually sees on these renders
(mug and cup as "cup", ball as "sports ball", orange, bowl; see ``scripts/sim_detection_rates.py``):
an evaluation over objects the detector cannot see would only measure the detector.  Mugs and cups
are both "cup" to the detector, so a scene never mixes them.

Everything here is plain Python over the scene's ground truth (names, GT boxes, GT centres); no
MuJoCo, no ROS.  Deterministic: the same seed gives the same layouts and cases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vlm_ros.core.types import BBox, Vec3
from vlm_ros.sim.scene import DETECTOR_LABELS, SceneSpec, SimObject

Expected = str  # "ok" | "not_found" | "ambiguous"

KINDS: tuple[str, ...] = ("category", "color", "left_right", "ordinal", "relation", "absent",
                          "ambiguous", "multi_step")

# Categories a scene is built from (what the default detector can see), by role.
GROUP_CATEGORIES: tuple[str, ...] = ("mug", "cup")  # the repeated, referred-to objects
EXTRA_CATEGORIES: tuple[str, ...] = ("ball", "orange")  # unique extras ("grab the ball")
ANCHOR_CATEGORIES: tuple[str, ...] = ("bowl",)  # relation anchors / place destinations
CATEGORIES_USED: tuple[str, ...] = GROUP_CATEGORIES + EXTRA_CATEGORIES + ANCHOR_CATEGORIES

# Colours objects are painted in; the absent-colour case picks from these too.
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "white", "pink")
# Colours a person (or a colour namer) could mistake for each other under scene lighting: a group
# never holds two of them, and an "absent" colour is never confusable with a present one.
CONFUSABLE: dict[str, frozenset[str]] = {
    "red": frozenset({"pink", "orange", "brown", "purple"}),
    "pink": frozenset({"red", "purple", "white"}),
    "purple": frozenset({"blue", "pink", "red"}),
    "blue": frozenset({"purple"}),
    "yellow": frozenset({"orange", "white"}),
    "white": frozenset({"gray", "yellow", "pink"}),
    "green": frozenset(),
}
# Objects no scene contains; the detector's vocabulary knows all of them.
ABSENT_NOUNS: tuple[str, ...] = ("banana", "scissors", "book", "laptop")
# Command words by category (the noun the user says).
NOUN: dict[str, str] = {"mug": "mug", "cup": "cup", "ball": "ball", "orange": "orange",
                        "bowl": "bowl"}
ORDINAL_WORDS: dict[int, str] = {1: "first", 2: "second", 3: "third"}

# Well-definedness margins.
MIN_X_GAP_PX = 40.0  # image-x gap between neighbours for left/right and ordinal cases
RELATION_MARGIN = 1.5  # second-nearest / nearest distance for "next to"

# Scene templates: how many group objects, and which extras; the cases each template supports.
TEMPLATES: dict[str, dict[str, object]] = {
    "pair": {"group": 2, "extras": 1, "anchor": True,
             "kinds": ("color", "left_right", "ambiguous", "relation", "category", "absent",
                       "multi_step")},
    "row": {"group": 3, "extras": 0, "anchor": False,
            "kinds": ("ordinal", "color", "left_right", "ambiguous", "absent")},
    "single": {"group": 1, "extras": 1, "anchor": True,
               "kinds": ("category", "absent")},
}
TEMPLATE_ORDER: tuple[str, ...] = ("pair", "row", "single")


@dataclass(frozen=True)
class Case:
    """One command with its ground-truth outcome.

    ``target_name`` is the :class:`~vlm_ros.sim.scene.SimObject` name meant when ``expected`` is
    "ok", else None.
    """

    kind: str
    command: str
    expected: Expected
    target_name: str | None
    destination_name: str | None = None  # multi_step: where the target must end up


@dataclass(frozen=True)
class ScenePlan:
    """What to build for one evaluation scene: template, scene seed and (category, colour) list."""

    template: str
    seed: int
    layout: tuple[tuple[str, str], ...]


def scene_seed(seed: int, index: int) -> int:
    """The generate_scene seed of the ``index``-th evaluation scene of run ``seed``."""
    return int(seed) * 100_003 + int(index)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def distinct_colors(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` colours, no two confusable with each other."""
    chosen: list[str] = []
    for color in rng.permutation(list(COLORS)):
        color = str(color)
        if all(color not in CONFUSABLE.get(c, ()) and c not in CONFUSABLE.get(color, ())
               for c in chosen):
            chosen.append(color)
        if len(chosen) == n:
            return chosen
    raise ValueError(f"cannot choose {n} mutually distinct colours from {COLORS}")


def plan_scene(seed: int, index: int) -> ScenePlan:
    """The layout of the ``index``-th scene: templates take turns so every case kind appears."""
    template = TEMPLATE_ORDER[index % len(TEMPLATE_ORDER)]
    spec = TEMPLATES[template]
    s = scene_seed(seed, index)
    rng = np.random.default_rng(s)
    group_category = _pick(rng, GROUP_CATEGORIES)
    layout = [(group_category, c) for c in distinct_colors(rng, int(spec["group"]))]
    for _ in range(int(spec["extras"])):
        extra = _pick(rng, EXTRA_CATEGORIES)
        layout.append((extra, "orange" if extra == "orange" else _pick(rng, COLORS)))
    if spec["anchor"]:
        layout.append((_pick(rng, ANCHOR_CATEGORIES), _pick(rng, ("white", "blue", "green"))))
    return ScenePlan(template, s, tuple(layout))


# --------------------------------------------------------------------------------------------
# Cases from ground truth
# --------------------------------------------------------------------------------------------


def _x_center(box: BBox) -> float:
    return 0.5 * (box[0] + box[2])


def _by_label(objects: Sequence[SimObject]) -> dict[str, list[SimObject]]:
    groups: dict[str, list[SimObject]] = {}
    for obj in objects:
        groups.setdefault(DETECTOR_LABELS[obj.category], []).append(obj)
    return groups


def _sorted_left_to_right(objs: Sequence[SimObject], boxes: Mapping[str, BBox]
                          ) -> list[SimObject] | None:
    """The objects left to right in the image, or None when two neighbours are too close."""
    ordered = sorted(objs, key=lambda o: _x_center(boxes[o.name]))
    xs = [_x_center(boxes[o.name]) for o in ordered]
    if any(b - a < MIN_X_GAP_PX for a, b in zip(xs, xs[1:])):
        return None
    return ordered


def _distance_xy(a: Vec3, b: Vec3) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def cases_for_scene(spec: SceneSpec, boxes: Mapping[str, BBox], centers: Mapping[str, Vec3],
                    kinds: Sequence[str] | None = None, template: str | None = None,
                    rng: np.random.Generator | None = None) -> list[Case]:
    """Well-defined referring expressions for ``spec`` (GT ``boxes`` / ``centers`` by name).

    A case is left out when the scene does not make it well-defined: an object it involves is not
    visible (no GT box), neighbours are closer than ``MIN_X_GAP_PX`` in the image, or the nearest
    object to an anchor is not nearer than the next by ``RELATION_MARGIN``.
    """
    wanted = set(kinds or KINDS)
    if template is not None:
        wanted &= set(TEMPLATES[template]["kinds"])  # type: ignore[arg-type]
    rng = rng if rng is not None else np.random.default_rng(spec.seed)
    visible = all(o.name in boxes for o in spec.objects)
    by_label = _by_label(spec.objects)
    group = next((objs for objs in by_label.values()
                  if objs[0].category in GROUP_CATEGORIES), [])
    noun = NOUN[group[0].category] if group else None
    cases: list[Case] = []

    # "category": a category that is alone under its detector label.
    if "category" in wanted and visible:
        for objs in by_label.values():
            if len(objs) == 1 and objs[0].category not in ANCHOR_CATEGORIES:
                obj = objs[0]
                cases.append(Case("category", f"grab the {NOUN[obj.category]}", "ok", obj.name))

    if group and visible and len(group) >= 2:
        # "color": exactly one group object of that colour (colours are distinct by construction).
        if "color" in wanted:
            obj = group[int(rng.integers(len(group)))]
            if sum(o.color_name == obj.color_name for o in group) == 1:
                cases.append(Case("color", f"grab the {obj.color_name} {noun}", "ok", obj.name))
        ordered = _sorted_left_to_right(group, boxes)
        if "left_right" in wanted and ordered is not None:
            side = _pick(rng, ("left", "right"))
            obj = ordered[0] if side == "left" else ordered[-1]
            cases.append(Case("left_right", f"grab the {noun} on the {side}", "ok", obj.name))
        if "ordinal" in wanted and ordered is not None and len(ordered) >= 3:
            side = _pick(rng, ("left", "right"))
            k = int(rng.integers(1, len(ordered) + 1))
            obj = (ordered if side == "left" else ordered[::-1])[k - 1]
            cases.append(Case("ordinal", f"grab the {ORDINAL_WORDS[k]} {noun} from the {side}",
                              "ok", obj.name))
        if "relation" in wanted:
            anchors = [o for o in spec.objects if o.category in ANCHOR_CATEGORIES]
            if len(anchors) == 1:
                anchor = anchors[0]
                dist = sorted((_distance_xy(centers[o.name], centers[anchor.name]), o.name)
                              for o in group)
                if dist[1][0] >= RELATION_MARGIN * dist[0][0]:
                    cases.append(Case("relation",
                                      f"grab the {noun} next to the {NOUN[anchor.category]}",
                                      "ok", dist[0][1]))
        if "ambiguous" in wanted:
            cases.append(Case("ambiguous", f"grab the {noun}", "ambiguous", None))
        # "multi_step": pick one by colour and put it in the bowl, in one sentence.
        anchors = [o for o in spec.objects if o.category in ANCHOR_CATEGORIES]
        if "multi_step" in wanted and len(anchors) == 1:
            obj = group[int(rng.integers(len(group)))]
            if sum(o.color_name == obj.color_name for o in group) == 1:
                bowl = anchors[0]
                cases.append(Case(
                    "multi_step", f"grab the {obj.color_name} {noun} and put it in the "
                                  f"{NOUN[bowl.category]}", "ok", obj.name, bowl.name))

    if "absent" in wanted:
        present = {o.color_name for o in spec.objects}
        free = [c for c in COLORS if c not in present
                and not any(c in CONFUSABLE.get(p, ()) or p in CONFUSABLE.get(c, ())
                            for p in present)]
        if group and free and rng.random() < 0.5:
            cases.append(Case("absent", f"grab the {_pick(rng, free)} {noun}", "not_found", None))
        else:
            cases.append(Case("absent", f"grab the {_pick(rng, ABSENT_NOUNS)}", "not_found",
                              None))
    return cases


__all__ = ["Case", "ScenePlan", "KINDS", "CATEGORIES_USED", "TEMPLATES", "plan_scene",
           "scene_seed", "cases_for_scene", "distinct_colors"]
