"""`vlm-ros eval sim`: score the whole chain - words, DDS, detector, grounding, 3D, goals, gripper -
against the simulator's ground truth.

One process hosts the real :class:`~vlm_ros.ros.node.VlmRosNode`, a
:class:`~vlm_ros.sim.ros_node.SimNode` publishing the MuJoCo camera and executing grasp poses, and a
:class:`~vlm_ros.ros.teleop.CommandClient` (the wiring of :mod:`vlm_ros.sim.demo`).  For every
generated scene (:mod:`vlm_ros.sim.expressions` chooses layouts and commands with ground truth) the
client sends each command and the answer is scored:

* status right (ok / not_found / ambiguous);
* for "ok": the chosen box must overlap the meant object's GT box (visible pixels, from
  segmentation) with IoU >= ``MATCH_IOU`` and more than any other object's;
* 3D error: the result's ``point_base`` against the object's GT centre;
* pick: the physics must hold the meant body after the grasp pose was executed.

A pick moves things, so the next case gets a freshly loaded copy of the scene.  Scene clocks
continue the previous scene's time, so stamps never run backwards (depth/colour matching and
``/clock`` followers rely on it).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vlm_ros.core.attributes import iou
from vlm_ros.core.types import BBox, Vec3
from vlm_ros.sim.expressions import (
    CATEGORIES_USED,
    Case,
    cases_for_scene,
    plan_scene,
)
from vlm_ros.sim.scene import SceneSpec, generate_scene
from vlm_ros.sim.world import SimWorld

MATCH_IOU = 0.5
FRESH_FRAMES_S = 0.5  # sim frames of a new scene to publish before a command is sent
MAX_FAILURES_LISTED = 10
SIM_NODE = "vlm_ros_sim"
NO_PICK_NAMESPACE = "/vlm_ros_eval_no_pick"  # SimNode listens here when picks are off: never


@dataclass
class CaseOutcome:
    """The score of one case."""

    case: Case
    scene_seed: int
    status: str | None  # None: no answer in time
    correct: bool
    reason: str = ""  # why not, in words (failure listing)
    error_m: float | None = None
    error_xyz: Vec3 | None = None  # result point - GT centre, base frame (shows a bias)
    picked: bool | None = None  # None: no pick attempted/scored


@dataclass
class _GroundTruth:
    boxes: dict[str, BBox]
    centers: dict[str, Vec3]
    bodies: dict[str, str]


def _ground_truth(world: SimWorld) -> _GroundTruth:
    """GT boxes and centres of a world before it is handed to the SimNode (one renderer user)."""
    spec = world.spec
    return _GroundTruth(boxes=world.camera.gt_boxes(world.data, spec),
                        centers={o.name: world.object_center(o) for o in spec.objects},
                        bodies={o.name: o.body_name for o in spec.objects})


def _chosen_object(bbox: BBox, gt: _GroundTruth) -> tuple[str | None, float]:
    """The GT object the chosen box overlaps most, and that IoU."""
    scored = sorted(((iou(bbox, box), name) for name, box in gt.boxes.items()), reverse=True)
    return (scored[0][1], scored[0][0]) if scored else (None, 0.0)


def score_result(case: Case, result: dict[str, Any] | None, gt: _GroundTruth,
                 seed: int) -> CaseOutcome:
    """Status and, for "ok", the chosen object and 3D error of one result (no pick yet)."""
    if result is None:
        return CaseOutcome(case, seed, None, False, "timeout: no result")
    status = result.get("status")
    if status != case.expected:
        detail = result.get("message", "")
        if status == "ok" and result.get("targets"):
            chosen, _ = _chosen_object(tuple(result["targets"][0]["bbox"]), gt)
            detail = f"chose {chosen}"
        return CaseOutcome(case, seed, status, False,
                           f"status {status} instead of {case.expected}: {detail}")
    if case.expected != "ok":
        return CaseOutcome(case, seed, status, True)
    targets = result.get("targets") or []
    if not targets:
        return CaseOutcome(case, seed, status, False, "ok without a target")
    target = targets[0]
    chosen, overlap = _chosen_object(tuple(target["bbox"]), gt)
    if chosen != case.target_name or overlap < MATCH_IOU:
        return CaseOutcome(case, seed, status, False,
                           f"wrong object: chose {chosen} (IoU {overlap:.2f}), "
                           f"meant {case.target_name}")
    outcome = CaseOutcome(case, seed, status, True)
    point = target.get("point_base")
    if point is not None:
        center = gt.centers[case.target_name]
        delta = tuple(float(a) - float(b) for a, b in zip(point, center))
        outcome.error_xyz = delta
        outcome.error_m = sum(d * d for d in delta) ** 0.5
    return outcome


def _failure_class(outcome: CaseOutcome) -> str:
    """A short class of a failure for the tally of dominant reasons."""
    if outcome.status is None:
        return "timeout"
    if not outcome.correct:
        if outcome.reason.startswith("wrong object"):
            return f"{outcome.case.kind}: wrong object"
        return f"{outcome.case.kind}: {outcome.status} instead of {outcome.case.expected}"
    return "pick failed"


def summarize(outcomes: Sequence[CaseOutcome], scenes: int, backend: str,
              seconds: float) -> dict[str, Any]:
    """The evaluation report (the dict ``vlm-ros eval sim --json`` prints)."""
    def fraction(items: list[bool]) -> float | None:
        return round(sum(items) / len(items), 4) if items else None

    per_kind: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        entry = per_kind.setdefault(outcome.case.kind, {"cases": 0, "correct": 0})
        entry["cases"] += 1
        entry["correct"] += int(outcome.correct)
    for entry in per_kind.values():
        entry["accuracy"] = round(entry["correct"] / entry["cases"], 4)
    errors = [o.error_m for o in outcomes if o.error_m is not None]
    deltas = [o.error_xyz for o in outcomes if o.error_xyz is not None]
    bias = ([round(statistics.median(d[i] for d in deltas), 4) for i in range(3)]
            if deltas else None)
    picks = [bool(o.picked) for o in outcomes if o.picked is not None]
    failed = [o for o in outcomes if not o.correct or o.picked is False]
    return {
        "scenes": scenes,
        "cases": len(outcomes),
        "accuracy": fraction([o.correct for o in outcomes]),
        "not_found_correct": fraction([o.correct for o in outcomes
                                       if o.case.expected == "not_found"]),
        "ambiguous_correct": fraction([o.correct for o in outcomes
                                       if o.case.expected == "ambiguous"]),
        "ok_correct": fraction([o.correct for o in outcomes if o.case.expected == "ok"]),
        "median_3d_error_m": round(statistics.median(errors), 4) if errors else None,
        "max_3d_error_m": round(max(errors), 4) if errors else None,
        "median_3d_error_xyz_m": bias,
        "pick_success": fraction(picks),
        "picks": len(picks),
        "per_category": dict(sorted(per_kind.items())),
        "categories_used": list(CATEGORIES_USED),
        "backend": backend,
        "failure_reasons": dict(Counter(_failure_class(o) for o in failed).most_common()),
        "failures": [f"scene {o.scene_seed} [{o.case.kind}] {o.case.command!r}: {o.reason}"
                     for o in failed[:MAX_FAILURES_LISTED]],
        "seconds": round(seconds, 1),
    }


class _Harness:
    """The node, the simulator and a client in this process (LocalGraph); the client waits in
    the caller."""

    def __init__(self, first: SimWorld, pick: bool, backend: str | None,
                 backend_options: str = "", propose_from_depth: bool = False,
                 extra_parameters: dict[str, Any] | None = None) -> None:
        from rosgraph_msgs.msg import Clock
        from std_msgs.msg import String

        from vlm_ros.ros.convert import stamp_to_seconds
        from vlm_ros.ros.local_graph import LocalGraph
        from vlm_ros.sim.ros_node import SimNode

        parameters: dict[str, Any] = {
            "camera_pose_in_base": list(first.spec.camera.pose_in_base),
            "image_reliability": "reliable", "publish_debug_image": False,
            "use_sim_time": True}  # frames carry the sim clock
        if backend:
            parameters["backend"] = backend
        if backend_options:
            parameters["backend_options"] = backend_options
        if propose_from_depth:
            parameters["propose_from_depth"] = True
        parameters.update(extra_parameters or {})
        self.graph = LocalGraph(
            parameters,
            lambda: [SimNode(first, vlm_node="/vlm_ros" if pick else NO_PICK_NAMESPACE,
                             name=SIM_NODE)],
            client_name="vlm_ros_eval",
            # the simulated robot reports each grasp / place: a plan's next step waits for it
            remappings={"robot_status": f"/{SIM_NODE}/robot_status"})
        self.node, self.sim, self.client = self.graph.node, self.graph.feeders[0], self.graph.client
        self.client_executor = self.graph.client_executor
        self.statuses: list[dict[str, Any]] = []
        self.clock = 0.0
        self.client.create_subscription(String, f"/{SIM_NODE}/robot_status",
                                        lambda m: self.statuses.append(json.loads(m.data)), 10)

        def on_clock(msg: Any) -> None:
            self.clock = stamp_to_seconds(msg.clock)

        self.client.create_subscription(Clock, "/clock", on_clock, 10)

    @property
    def backend_name(self) -> str:
        return str(self.node.backend.name)

    def spin_until(self, done: Any, timeout_s: float) -> bool:
        return self.graph.spin_until(done, timeout_s)

    def new_world(self, spec: SceneSpec) -> tuple[SimWorld, _GroundTruth]:
        """Load ``spec`` and render its ground truth while the SimNode renders nothing."""
        with self.sim.gl_lock:  # one GL user at a time (see show)
            world = SimWorld(spec)
            return world, _ground_truth(world)

    def show(self, world: SimWorld, timeout_s: float) -> bool:
        """Swap ``world`` in (unless shown already) and wait until its frames have been flowing
        ``FRESH_FRAMES_S``, so the node's newest colour and depth frames are of this scene."""
        if self.sim.world is not world:
            self.sim.set_world(world)
        start = float(world.data.time)
        return self.spin_until(lambda: self.clock >= start + FRESH_FRAMES_S, timeout_s)

    def close(self) -> None:
        self.graph.close()
        self.sim.close()


def _run_case(harness: _Harness, case: Case, gt: _GroundTruth, seed: int, pick: bool,
              timeout_s: float) -> tuple[CaseOutcome, bool]:
    """Send one case; returns the outcome and whether the world was touched by a grasp."""
    result = harness.client.send(case.command, harness.client_executor, timeout_s=timeout_s)
    outcome = score_result(case, result, gt, seed)
    if case.destination_name is not None:
        return _run_plan_case(harness, case, result, outcome, gt, pick, timeout_s)
    grasps = [g for g in (result or {}).get("goals", []) if g.get("kind") == "grasp"]
    if not (pick and grasps):
        return outcome, False
    seen = len(harness.statuses)
    if not harness.spin_until(lambda: len(harness.statuses) > seen, timeout_s):
        if outcome.correct and case.expected == "ok":
            outcome.picked = False
            outcome.reason = "pick: no robot status in time"
        return outcome, True
    status = harness.statuses[seen]
    if outcome.correct and case.expected == "ok":
        outcome.picked = status.get("held") == gt.bodies[case.target_name]
        if not outcome.picked:
            outcome.reason = f"pick: {status.get('detail')} (meant {case.target_name})"
    return outcome, True


def _run_plan_case(harness: _Harness, case: Case, first: dict[str, Any] | None,
                   outcome: CaseOutcome, gt: _GroundTruth, pick: bool,
                   timeout_s: float) -> tuple[CaseOutcome, bool]:
    """A pick-and-place in one sentence: step 1 must choose the meant object; with picks on,
    the physics must then hold it, step 2 must place it, and it must come to rest on the meant
    destination."""
    if not outcome.correct or first is None or not pick:
        return outcome, bool(first and first.get("goals"))
    seen = len(harness.statuses)
    rest = harness.client.rest_of_plan(case.command, first, harness.client_executor,
                                       3 * timeout_s)
    harness.spin_until(lambda: len(harness.statuses) >= seen + 2, timeout_s)
    reports = harness.statuses[seen:seen + 2]
    body, destination = gt.bodies[case.target_name], gt.bodies[case.destination_name]
    done = bool(rest) and rest[-1]["message"].startswith("done:")
    held = bool(reports) and reports[0].get("held") == body
    placed = (len(reports) == 2 and reports[1].get("success") is True
              and f"released {body} on" in reports[1].get("detail", "")
              and destination in reports[1].get("detail", ""))
    outcome.picked = held and placed and done
    if not outcome.picked:
        said = [r.get("detail") for r in reports]
        last = rest[-1]["message"] if rest else "no answer after step 1"
        outcome.reason = (f"plan: {'done' if done else 'not done'} ({last}), robot said {said} "
                          f"(meant {body} into {destination})")
    return outcome, True


def run_evaluation(scenes: int = 20, seed: int = 0, kinds: Sequence[str] | None = None,
                   pick: bool = True, timeout_s: float = 30.0,
                   backend: str | None = None, backend_options: str = "",
                   propose_from_depth: bool = True) -> dict[str, Any]:
    """Evaluate ``scenes`` generated scenes (deterministic by ``seed``); see the module docstring.

    ``kinds`` restricts the case kinds (``vlm_ros.sim.expressions.KINDS``); ``pick`` executes and
    scores the grasps; ``timeout_s`` bounds every wait (a timeout is a failure, never a hang);
    ``backend`` overrides the node's default backend; ``backend_options`` and
    ``propose_from_depth`` (on: the tabletop is exactly what depth proposals are for) set the
    node's parameters of those names.
    """
    started = time.perf_counter()
    plans = [plan_scene(seed, i) for i in range(scenes)]
    outcomes: list[CaseOutcome] = []
    harness: _Harness | None = None
    world: SimWorld | None = None  # the newest world, shown or about to be
    try:
        for plan in plans:
            spec: SceneSpec = generate_scene(plan.seed, layout=list(plan.layout))
            if harness is None:  # the first world exists before any other thread renders
                world = SimWorld(spec)
                gt = _ground_truth(world)
                harness = _Harness(world, pick, backend, backend_options, propose_from_depth)
                if not harness.client.wait_for_node(harness.client_executor, timeout_s):
                    raise RuntimeError("the vlm_ros node did not come up")
            else:
                world, gt = harness.new_world(spec)
            cases = cases_for_scene(spec, gt.boxes, gt.centers, kinds, plan.template)
            touched = False
            for case in cases:
                if touched:  # the last grasp moved things: a fresh copy of the scene
                    world, _ = harness.new_world(spec)
                if not harness.show(world, timeout_s):
                    outcomes.append(CaseOutcome(case, plan.seed, None, False,
                                                "timeout: the new scene's frames never came"))
                    touched = True
                    continue
                outcome, touched = _run_case(harness, case, gt, plan.seed, pick, timeout_s)
                outcomes.append(outcome)
        backend_name = harness.backend_name if harness else (backend or "ssd_coco")
    finally:
        if harness is not None:
            harness.close()
        if world is not None:
            world.close()
    result = summarize(outcomes, scenes, backend_name, time.perf_counter() - started)
    result["propose_from_depth"] = propose_from_depth
    result["backend_options"] = backend_options
    return result


__all__ = ["run_evaluation", "score_result", "summarize", "CaseOutcome", "MATCH_IOU"]
