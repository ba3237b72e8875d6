"""`vlm-ros eval sim --memory`: active search and the object memory, closed loop in MuJoCo.

Each seeded scene puts the target (a cup or a mug of a random colour) on the table outside the
camera's first view, with two other objects in view.  The real node (SSD-COCO, the camera's pose
from ``camera/pose``: the camera pans) is driven over DDS:

1. "find the <colour> <noun>": the node turns the camera through its search views (the
   simulator executes each ``~/look_at`` and reports it done) until it finds the object.
   **search success** (the found object within ``MATCH_M`` of the target's true centre) and
   **views needed**.
2. The camera looks away; "grab the <colour> <noun> you saw": a grasp from memory.  **memory
   goal error** (the remembered point against the true centre, m) and **memory pick success**
   (the gripper holds it, per the physics).
3. On a fresh copy of the scene, after the search found it, the object is moved to the other
   side of the table and the camera looks at where it was; "grab the <colour> <noun> you saw"
   again.  A goal there is a **false memory goal** (farther than ``MATCH_M`` from where the
   object now is); there must be none.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlm_ros.sim.scene import DETECTOR_LABELS, TABLE_HEIGHT, SceneSpec, generate_scene
from vlm_ros.sim.world import SimWorld

MATCH_M = 0.1
TARGETS = ("cup", "mug")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
OTHERS = ("bowl", "ball", "orange", "bottle")
SEARCH_YAWS = [0.0, 40.0, -40.0, 80.0, -80.0]


@dataclass
class MemoryCase:
    seed: int
    target: str  # "red cup"
    found: bool = False
    views: int = 0
    memory_error_m: float | None = None
    memory_picked: bool = False
    false_memory_goal: bool = False
    moved_answer: str = ""  # what the node said to the grasp from memory after the move
    notes: str = ""


def plan_memory_scene(seed: int) -> tuple[SceneSpec, int]:
    """The scene and the index of its target (pinned outside the first view, left or right)."""
    rng = np.random.default_rng(seed)
    target = (str(rng.choice(TARGETS)), str(rng.choice(COLORS)))
    others = [(str(c), "white" if c in ("bowl", "bottle") else str(rng.choice(COLORS)))
              for c in rng.choice(OTHERS, size=2, replace=False)]
    others = [(c, col if c != "orange" else "orange") for c, col in others]
    side = 1.0 if rng.random() < 0.5 else -1.0
    xy = (float(rng.uniform(0.50, 0.62)), side * float(rng.uniform(0.42, 0.5)))
    return generate_scene(seed, layout=[target, *others], pinned={0: xy}), 0


def _noun(spec: SceneSpec, index: int) -> str:
    obj = spec.objects[index]
    return f"{obj.color_name} {obj.category}"


class _Session:
    """The node and the simulator (the sim evaluation's harness), with a panning camera."""

    def __init__(self, first: SimWorld) -> None:
        from geometry_msgs.msg import PoseStamped

        from vlm_ros.sim.evaluate import _Harness

        self.harness = _Harness(first, pick=True, backend=None, extra_parameters={
            "camera_pose_topic": "camera/pose", "camera_pose_in_base": [0.0],
            "search_yaws_deg": SEARCH_YAWS, "search_height_m": TABLE_HEIGHT,
            "memory_max_age_s": 600.0, "track_target_s": 0.0})
        self.look_pub = self.harness.client.create_publisher(PoseStamped, "/vlm_ros/look_at", 10)

    def forget(self) -> None:
        """A new scene: nothing of the last one is remembered (the node's ~/clear_memory)."""
        self.harness.node.session.memory.clear()

    def look_at(self, x: float, y: float, timeout_s: float) -> bool:
        """Turn the camera (as an operator would) and wait for the simulator's report."""
        from geometry_msgs.msg import PoseStamped

        msg = PoseStamped()
        msg.header.frame_id = "base_link"
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, TABLE_HEIGHT
        msg.pose.orientation.w = 1.0
        seen = len(self.harness.statuses)
        self.look_pub.publish(msg)
        turned = self.harness.spin_until(lambda: len(self.harness.statuses) > seen, timeout_s)
        start = self.harness.clock  # fresh frames of the new view before the next command
        self.harness.spin_until(lambda: self.harness.clock >= start + 0.6, timeout_s)
        return turned

    def ask(self, text: str, timeout_s: float) -> list[dict[str, Any]]:
        """Every result ``text`` gets, a search's views included."""
        client, executor = self.harness.client, self.harness.client_executor
        first = client.send(text, executor, timeout_s=timeout_s)
        if first is None:
            return []
        return [first, *client.rest_of_search(text, first, executor, 6 * timeout_s)]


def _run_scene(session: _Session, spec: SceneSpec, index: int, seed: int,
               timeout_s: float) -> MemoryCase:
    harness = session.harness
    name = _noun(spec, index)
    case = MemoryCase(seed, name)
    world, _gt = harness.new_world(spec)
    harness.show(world, timeout_s)
    session.look_at(0.6, 0.0, timeout_s)  # the first view: straight ahead
    session.forget()
    obj = spec.objects[index]
    replies = session.ask(f"find the {name}", timeout_s)
    final = replies[-1] if replies else None
    case.views = sum(1 for r in replies if r["status"] == "searching")
    truth = world.object_center(obj)
    if final and final["status"] == "ok" and final["targets"]:
        point = final["targets"][0].get("point_base")
        case.found = point is not None and math.dist(point, truth) <= MATCH_M and \
            final["targets"][0]["label"] == DETECTOR_LABELS[obj.category]
    if not case.found:
        where = (final or {}).get("targets") or [{}]
        case.notes = (f"search: {final['status'] + ' ' + final['message'] if final else 'no answer'}"
                      f" (at {where[0].get('point_base')}, truth {[round(v, 3) for v in truth]})")
        return case
    # 2. look away, then pick it up from memory, in the physics
    session.look_at(truth[0], -truth[1], timeout_s)
    seen = len(harness.statuses)
    grab = session.ask(f"grab the {name} you saw", timeout_s)
    result = grab[-1] if grab else None
    grasps = [g for g in (result or {}).get("goals", []) if g["kind"] == "grasp"]
    if result and result["status"] == "ok" and grasps and result["targets"]:
        case.memory_error_m = round(math.dist(result["targets"][0]["point_base"], truth), 4)
        if harness.spin_until(lambda: len(harness.statuses) > seen, timeout_s):
            case.memory_picked = harness.statuses[seen].get("held") == obj.body_name
    else:
        case.notes = f"memory grasp: {result['status'] + ' ' + result['message'] if result else '-'}"
    # 3. a fresh copy; found again; then moved away while the camera looks there
    world, _gt = harness.new_world(spec)
    harness.show(world, timeout_s)
    session.look_at(0.6, 0.0, timeout_s)
    session.forget()
    session.ask(f"find the {name}", timeout_s)
    elsewhere = (truth[0], -truth[1])
    with harness.sim.gl_lock:
        world.move_object(obj, elsewhere)
    session.look_at(truth[0], truth[1], timeout_s)  # where it was: not there any more
    moved = session.ask(f"grab the {name} you saw", timeout_s)
    if moved:
        case.moved_answer = f"{moved[-1]['status']}: {moved[-1]['message']}"
    now_at = world.object_center(obj)
    for reply in moved:
        for goal in reply.get("goals", []):
            if goal["kind"] == "grasp" and math.dist(goal["pose"]["position"][:2],
                                                     now_at[:2]) > MATCH_M:
                case.false_memory_goal = True
    return case


def run_memory_evaluation(scenes: int = 5, seed: int = 0, timeout_s: float = 30.0
                          ) -> dict[str, Any]:
    """Search and memory metrics over ``scenes`` seeded scenes (see the module docstring)."""
    started = time.perf_counter()
    plans = [plan_memory_scene(seed + i) for i in range(scenes)]
    cases: list[MemoryCase] = []
    first = SimWorld(plans[0][0])
    session = _Session(first)
    try:
        if not session.harness.client.wait_for_node(session.harness.client_executor, timeout_s):
            raise RuntimeError("the vlm_ros node did not come up")
        for i, (spec, index) in enumerate(plans):
            cases.append(_run_scene(session, spec, index, seed + i, timeout_s))
    finally:
        session.harness.close()
        first.close()
    found = [c for c in cases if c.found]
    errors = [c.memory_error_m for c in cases if c.memory_error_m is not None]
    return {
        "scenes": scenes,
        "search_success": round(len(found) / len(cases), 3) if cases else None,
        "views_needed_mean": round(float(np.mean([c.views for c in found])), 2) if found else None,
        "memory_goals": len(errors),
        "memory_goal_error_m_median": round(float(np.median(errors)), 4) if errors else None,
        "memory_goal_error_m_max": round(float(np.max(errors)), 4) if errors else None,
        "memory_pick_success": (round(sum(c.memory_picked for c in found) / len(found), 3)
                                if found else None),
        "false_memory_goals": sum(c.false_memory_goal for c in cases),
        "cases": [c.__dict__ for c in cases],
        "seconds": round(time.perf_counter() - started, 1),
    }
