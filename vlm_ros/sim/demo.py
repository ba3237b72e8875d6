"""`vlm-ros demo`: the closed loop in simulation - words in, the gripper moves the right object.

A MuJoCo tabletop (vlm_ros.sim.scene) is published by SimNode as an RGB-D camera; the real
vlm_ros node grounds a scripted dialogue sent over DDS and publishes grasp/place poses; SimNode's
floating gripper executes them in the physics and reports, from the physics state, what it holds.
Every step is printed; annotated images and an animated GIF of the run are written to --out.

A second scene shows the object memory and active search: a cup outside the camera's first view
is asked about ("where is …?": never seen), searched for ("find …": the camera pans view by
view until it sees it), remembered while the camera looks away ("where did you see …?") and
grasped from memory ("grab the … you saw", executed in the physics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vlm_ros.ros.convert import image_to_array
from vlm_ros.ros.local_graph import LocalGraph
from vlm_ros.ros.teleop import print_answer
from vlm_ros.sim.ros_node import SimNode
from vlm_ros.sim.scene import generate_scene
from vlm_ros.sim.world import SimWorld

LAYOUT = [("mug", "red"), ("bowl", "blue"), ("mug", "green"), ("bottle", "white")]
DIALOGUE: tuple[str, ...] = (
    "grab the mug",              # two mugs -> ambiguous, with a question
    # one sentence, two steps: the place is grounded after the robot reports the grasp done
    "grab the red mug and put it in the blue bowl",
    "抓取绿色杯子",                # Chinese: pick the green mug
    "grab the banana",           # nothing like it: not_found, no goal, no motion
    "stop",
)
# The second scene (issue #21): a yellow cup on the table, outside the camera's first view.
MEMORY_LAYOUT = [("cup", "yellow"), ("bowl", "blue"), ("mug", "red")]
MEMORY_TARGET_XY = (0.56, 0.46)  # left of the view: the camera must pan to see it
MEMORY_DIALOGUE: tuple[str, ...] = (
    "where is the yellow cup?",    # never seen: not_found, with the offer to search
    "find the yellow cup",         # an active search: the camera pans view by view, finds it
    "<look away>",                 # the operator turns the camera to the other side
    "where did you see the yellow cup?",  # answered from memory, with its age
    "grab the yellow cup you saw",  # a grasp from memory, executed in the physics
)
GIF_SIZE = (320, 240)


class _Recorder:
    """Collects downscaled frames of the world at the gripper's callback period (10 Hz sim)."""

    def __init__(self) -> None:
        self.world: SimWorld | None = None
        self.frames: list[np.ndarray] = []

    def __call__(self, model: Any, data: Any) -> None:
        # Only the world being recorded: while a new scene is swapped in, the simulator's
        # thread may still step the old one.
        if self.world is not None and model is self.world.model:
            rgb, _ = self.world.camera.render(model, data)
            self.frames.append(cv2.resize(rgb, GIF_SIZE, interpolation=cv2.INTER_AREA))


def write_gif(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> None:
    from PIL import Image as PILImage

    if not frames:
        return
    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                   duration=int(1000 / fps), optimize=True)


def run_sim_demo(out_dir: str, seed: int = 7, dialogue: tuple[str, ...] = DIALOGUE,
                 memory_scene: bool = True) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = generate_scene(seed, layout=LAYOUT)
    recorder = _Recorder()
    world = SimWorld(spec, on_step=recorder)
    recorder.world = world
    worlds = [world]

    graph = LocalGraph({"camera_pose_in_base": [0.0],
                        # the camera pans (active search): its pose comes with every frame
                        "camera_pose_topic": "camera/pose",
                        "search_height_m": spec.table_height,
                        "image_reliability": "reliable",
                        # Frames carry the sim clock (/clock from SimNode); the safety gate's
                        # frame age needs the node on the same clock.
                        "use_sim_time": True},
                       lambda: [SimNode(world)], client_name="vlm_ros_demo",
                       # the simulated robot says when a goal is done: plans go on from there
                       remappings={"robot_status": "/vlm_ros_sim/robot_status"})
    statuses: list[dict[str, Any]] = []
    debug: list[Any] = []
    graph.client.create_subscription(String, "/vlm_ros_sim/robot_status",
                                     lambda m: statuses.append(json.loads(m.data)), 10)
    graph.client.create_subscription(Image, "/vlm_ros/debug_image", debug.append, 10)
    failures = 0
    print(f"scene {seed}: " + ", ".join(f"{o.color_name} {o.category}" for o in spec.objects))
    try:
        if not graph.wait_for_node(30.0):
            print("demo: the vlm_ros node did not come up")
            return 1
        log = (out / "results.jsonl").open("w", encoding="utf-8")
        steps = [(spec, text) for text in dialogue]
        if memory_scene:
            steps += [(None, text) for text in MEMORY_DIALOGUE]
        second = generate_scene(seed + 1, layout=MEMORY_LAYOUT, pinned={0: MEMORY_TARGET_XY})
        for step, (scene, text) in enumerate(steps, start=1):
            if scene is None and graph.feeders[0].world.spec is not second:
                print(f"\nscene {seed + 1}: " + ", ".join(
                    f"{o.color_name} {o.category}" for o in second.objects)
                    + " (the yellow cup outside the camera's first view)")
                recorder.world = None  # the new world settles before it is recorded
                with graph.feeders[0].gl_lock:
                    world = SimWorld(second, on_step=recorder)
                graph.feeders[0].set_world(world)
                recorder.world = world
                worlds.append(world)
                graph.spin_until(lambda: False, 1.5)  # frames of the new scene
            seen_status, seen_debug = len(statuses), len(debug)
            print(f"\n[{step}] you: {text}")
            if text == "<look away>":
                print("    operator: turns the camera to the right")
                look_away(graph, statuses)
                continue
            result = graph.send(text, timeout_s=30.0)
            if result is None:
                print("    (no answer within 30 s)")
                failures += 1
                continue
            printed = seen_status
            later = (graph.client.rest_of_plan(text, result, graph.client_executor, 90.0)
                     or graph.client.rest_of_search(text, result, graph.client_executor, 90.0))
            for answer in [result, *later]:
                log.write(json.dumps(answer, ensure_ascii=False) + "\n")
                print_answer(answer)
                if any(g["kind"] in ("grasp", "place", "view") for g in answer["goals"]):
                    seen_status += 1  # the robot reports each grasp / place / view once
                    graph.spin_until(lambda n=seen_status: len(statuses) >= n, 30.0)
                for status in statuses[printed:seen_status]:
                    print(f"    robot (physics): {status['detail']}")
                printed = max(printed, min(seen_status, len(statuses)))
            if text != "stop":
                graph.spin_until(lambda: len(debug) > seen_debug, 30.0)
            if len(debug) > seen_debug:
                image, _ = image_to_array(debug[-1])
                cv2.imwrite(str(out / f"step{step}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        log.close()
        write_gif(recorder.frames, out / "run.gif")
        print(f"\nannotated images, results.jsonl and run.gif ({len(recorder.frames)} frames) "
              f"written to {out}/")
    finally:
        graph.close()
        for each in worlds:
            each.close()
    return 1 if failures else 0


def look_away(graph: LocalGraph, statuses: list[dict[str, Any]]) -> None:
    """Turn the camera to the right side of the table (as an operator would) and wait for the
    simulated pan unit's report and fresh frames."""
    msg = PoseStamped()
    msg.header.frame_id = "base_link"
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.6, -0.45, 0.75
    msg.pose.orientation.w = 1.0
    seen = len(statuses)
    graph.client.create_publisher(PoseStamped, "/vlm_ros/look_at", 10).publish(msg)
    graph.spin_until(lambda: len(statuses) > seen, 10.0)
    graph.spin_until(lambda: False, 1.0)
