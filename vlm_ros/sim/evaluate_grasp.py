"""`vlm-ros eval sim --pick`: grasp geometry on harder objects, per class and per strategy, in physics.

Each seeded scene holds one hard target and one or two ordinary objects: a bottle lying on its
side, a flat book, a pen-like stick, a small plate, a box turned 30-60 deg from the camera's view,
and a mug touching a box.  The real node (default detector, the camera's calibrated pose) is
driven over DDS with "pick up the <noun>"; the simulator executes the published grasp pose -
position and yaw; a tilted approach is reported as not executable by its top-down hand and
counts as a failure - and the physics says what the fingers hold after lifting.

Which detector: ``oracle`` (default; :mod:`vlm_ros.sim.oracle` - the true boxes, so the figures
measure grasping, not detection: the default detector finds 12-54 % of these objects) or ``ssd``
(the default detector with depth proposals; the command then names the COCO label it gives the
class, e.g. "frisbee" for the plate).

Per class and strategy (``centroid`` = the grasp before #22: the object's middle, hand along the
robot's heading; ``auto`` = all candidates ranked):

* **grounded** - the answer chose the target (IoU with its GT box >= ``MATCH_IOU``);
* **picked** - the physics holds the target after the lift (share of all cases);
* **refused** - the answer said no grasp fits (width, a neighbour, too flat) instead of a goal;
* **too wide published** - grasps published whose width exceeds the gripper's opening: must be 0.

``all_cups`` (with the last strategy): "pick up all the cups" on three cups - picked when the
physics held each cup in turn, nearest first (the sim robot stows each in a bin before the next
grasp), and the plan said done.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlm_ros.core.attributes import iou
from vlm_ros.sim.gripper import FINGER_TRAVEL
from vlm_ros.sim.oracle import NOUNS, show_objects
from vlm_ros.sim.scene import DETECTOR_LABELS, SceneSpec, generate_scene
from vlm_ros.sim.world import SimWorld

MATCH_IOU = 0.5
GRIPPER_OPENING_M = 2 * FINGER_TRAVEL
HARD_CLASSES = ("lying_bottle", "book", "stick", "plate", "rotated_box", "touching")
STRATEGIES = ("centroid", "auto")
DETECTORS = ("oracle", "ssd")
ORACLE = "vlm_ros.sim.oracle:SimOracleBackend"
_OTHERS = ("bowl", "ball", "orange", "apple")  # no cup: "the mug" would be ambiguous
_COLORS = ("red", "green", "blue", "yellow", "purple")


@dataclass
class GraspCase:
    kind: str
    seed: int
    strategy: str
    command: str
    status: str = "no answer"
    grounded: bool = False
    picked: bool = False
    refused: bool = False
    published_width_m: float | None = None
    grasp_strategy: str = ""
    detail: str = ""


def plan_grasp_scene(kind: str, seed: int) -> tuple[SceneSpec, int]:
    """The scene for one case of ``kind`` and the index of its target."""
    rng = np.random.default_rng(1000 + seed)
    color = str(rng.choice(_COLORS))
    others = [(str(c), str(rng.choice(_COLORS))) for c in rng.choice(_OTHERS, 2, replace=False)]
    others = [(c, {"orange": "orange", "apple": "red"}.get(c, col)) for c, col in others]
    if kind == "rotated_box":
        # The camera looks along +x: a yaw of 30-60 deg (either way) turns the box against it.
        yaw = math.radians(float(rng.uniform(30.0, 60.0))) * (1 if rng.random() < 0.5 else -1)
        return generate_scene(seed, layout=[("box", color), *others[:1]], yaws={0: yaw}), 0
    if kind == "touching":
        return generate_scene(seed, layout=[("mug", color), ("box", str(rng.choice(_COLORS))),
                                            others[0]], touching=[(1, 0)]), 0
    return generate_scene(seed, layout=[(kind, color), *others]), 0


def _noun(spec: SceneSpec, index: int, detector: str) -> str:
    category = spec.objects[index].category
    return NOUNS[category] if detector == "oracle" else DETECTOR_LABELS[category]


def _send(harness: Any, spec: SceneSpec, case: GraspCase, timeout_s: float
          ) -> tuple[Any, int, dict[str, Any] | None]:
    """A fresh copy of ``spec`` shown (and handed to the oracle), ``case.command`` sent:
    (its ground truth, the robot reports before it, the first answer or None)."""
    from vlm_ros.sim.evaluate import _ground_truth

    world, _ = harness.new_world(spec)
    gt = _ground_truth(world)
    show_objects([(NOUNS[o.category], gt.boxes[o.name]) for o in spec.objects
                  if o.name in gt.boxes])
    if not harness.show(world, timeout_s):
        case.detail = "the scene's frames never came"
        return gt, len(harness.statuses), None
    seen = len(harness.statuses)
    result = harness.client.send(case.command, harness.client_executor, timeout_s=timeout_s)
    return gt, seen, result


def _run_case(harness: Any, kind: str, seed: int, strategy: str, detector: str,
              timeout_s: float) -> GraspCase:
    spec, index = plan_grasp_scene(kind, seed)
    target = spec.objects[index]
    case = GraspCase(kind, seed, strategy, f"pick up the {_noun(spec, index, detector)}")
    gt, seen, result = _send(harness, spec, case, timeout_s)
    if result is None:
        return case
    case.status = result["status"]
    chosen = result["targets"][0]["bbox"] if result.get("targets") else None
    box = gt.boxes.get(target.name)
    case.grounded = bool(chosen and box and iou(chosen, box) >= MATCH_IOU and all(
        iou(chosen, box) >= iou(chosen, other) for name, other in gt.boxes.items()
        if name != target.name))
    grasps = [g for g in result.get("goals", []) if g["kind"] == "grasp"]
    if result.get("grasps"):
        case.grasp_strategy = result["grasps"][0]["strategy"]
        if grasps:
            case.published_width_m = result["grasps"][0]["width_m"]
    case.refused = result["status"] == "rejected" and "no grasp" in result["message"]
    if not grasps:
        case.detail = f"{result['status']}: {result['message']}"
        return case
    if not harness.spin_until(lambda: len(harness.statuses) > seen, timeout_s):
        case.detail = "no robot status in time"
        return case
    report = harness.statuses[seen]
    case.picked = report.get("held") == target.body_name
    case.detail = str(report.get("detail"))
    return case


def run_all_cups_case(harness: Any, seed: int, timeout_s: float) -> GraspCase:
    """"pick up all the cups" on three cups: one pick per cup, nearest first, each after the
    robot's report; picked = every cup held in turn (the sim robot stows each in a bin)."""
    rng = np.random.default_rng(2000 + seed)
    colors = [str(c) for c in rng.choice(_COLORS, 3, replace=False)]
    spec = generate_scene(seed, layout=[("cup", c) for c in colors] + [("ball", "yellow")])
    case = GraspCase("all_cups", seed, "auto", "pick up all the cups")
    gt, seen, first = _send(harness, spec, case, timeout_s)
    if first is None:
        return case
    replies = [first, *harness.client.rest_of_plan(case.command, first,
                                                   harness.client_executor, 4 * timeout_s)]
    harness.spin_until(lambda: len(harness.statuses) >= seen + 3, timeout_s)
    held = [r.get("held") for r in harness.statuses[seen:]]
    cups = sorted((o for o in spec.objects if o.category == "cup"),
                  key=lambda o: math.hypot(*gt.centers[o.name][:2]))
    case.status = replies[-1]["status"]
    case.grounded = all(r["status"] == "ok" for r in replies)
    case.picked = held == [o.body_name for o in cups] and \
        replies[-1]["message"] == "done: all 3 steps finished"
    case.detail = f"held in turn {held}; last answer: {replies[-1]['message']}"
    return case


def summarize_grasps(cases: list[GraspCase], seconds: float) -> dict[str, Any]:
    """Per class and strategy: grounded / picked / refused shares, and the safety count."""
    table: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for kind in dict.fromkeys(c.kind for c in cases):
        for strategy in dict.fromkeys(c.strategy for c in cases):
            some = [c for c in cases if c.kind == kind and c.strategy == strategy]
            if not some:
                continue
            n = len(some)
            table[kind][strategy] = {
                "cases": n,
                "grounded": round(sum(c.grounded for c in some) / n, 3),
                "picked": round(sum(c.picked for c in some) / n, 3),
                "refused": round(sum(c.refused for c in some) / n, 3),
                "strategies_chosen": dict(sorted(
                    {s: sum(c.grasp_strategy == s for c in some)
                     for s in {c.grasp_strategy for c in some if c.grasp_strategy}}.items())),
            }
    overall = {}  # the harder objects only; all_cups is its own row
    for strategy in dict.fromkeys(c.strategy for c in cases):
        some = [c for c in cases if c.strategy == strategy and c.kind in HARD_CLASSES]
        if not some:
            continue
        grounded = [c for c in some if c.grounded]
        overall[strategy] = {
            "cases": len(some),
            "picked": round(sum(c.picked for c in some) / len(some), 3),
            "picked_when_grounded": round(sum(c.picked for c in grounded) / len(grounded), 3)
            if grounded else None,
        }
    too_wide = [c for c in cases if c.published_width_m is not None
                and c.published_width_m > GRIPPER_OPENING_M]
    return {
        "per_class": {k: dict(v) for k, v in table.items()},
        "overall": overall,
        "too_wide_published": len(too_wide),
        "gripper_opening_m": GRIPPER_OPENING_M,
        "failures": [f"{c.kind} seed {c.seed} [{c.strategy}] {c.command!r}: "
                     f"{'not grounded; ' if not c.grounded else ''}{c.detail}"
                     for c in cases if not c.picked][:30],
        "seconds": round(seconds, 1),
    }


def run_grasp_evaluation(scenes: int = 5, seed: int = 0, timeout_s: float = 30.0,
                         kinds: tuple[str, ...] = HARD_CLASSES,
                         strategies: tuple[str, ...] = STRATEGIES,
                         detector: str = "oracle", several: bool = True) -> dict[str, Any]:
    """Pick success on the harder objects, per class and per strategy (module docstring)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    from vlm_ros.sim.evaluate import _Harness

    started = time.perf_counter()
    cases: list[GraspCase] = []
    for strategy in strategies:
        first = SimWorld(plan_grasp_scene(kinds[0], seed)[0])
        oracle = detector == "oracle"
        # The oracle's boxes are the frame's: no zoomed second look at crops.
        harness = _Harness(first, pick=True, backend=ORACLE if oracle else None,
                           propose_from_depth=not oracle,
                           extra_parameters={"grasp_strategy": strategy,
                                             "max_grasp_width_m": GRIPPER_OPENING_M,
                                             "track_target_s": 0.0})
        try:
            if not harness.client.wait_for_node(harness.client_executor, timeout_s):
                raise RuntimeError("the vlm_ros node did not come up")
            for kind in kinds:
                for i in range(scenes):
                    cases.append(_run_case(harness, kind, seed + i, strategy, detector,
                                           timeout_s))
            if several and strategy == strategies[-1]:
                for i in range(scenes):
                    cases.append(run_all_cups_case(harness, seed + i, timeout_s))
        finally:
            harness.close()
            first.close()
    result = summarize_grasps(cases, time.perf_counter() - started)
    result["scenes_per_class"] = scenes
    result["detector"] = detector
    return result


__all__ = ["run_grasp_evaluation", "plan_grasp_scene", "summarize_grasps", "HARD_CLASSES",
           "STRATEGIES", "GraspCase"]
