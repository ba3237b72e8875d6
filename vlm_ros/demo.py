"""The photo demo (`vlm-ros demo`): a real photo grounded end to end through the ROS 2 node.

A PhotoCamera publishes scikit-image's coffee photo beside a recoloured copy (a red and a blue
cup, synthetic tabletop depth) as an RGB-D camera would; the real vlm_ros node grounds a short
scripted dialogue sent over DDS; each step's result, goals and annotated image are printed and
saved.  The MuJoCo demo (vlm_ros/sim/demo.py) is the main job; this one is `demo --photo`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
from sensor_msgs.msg import Image

from vlm_ros import scenes
from vlm_ros.ros.convert import image_to_array
from vlm_ros.ros.local_graph import LocalGraph
from vlm_ros.ros.photo_camera import PhotoCamera
from vlm_ros.ros.teleop import print_answer

DIALOGUE: tuple[str, ...] = (
    "grab the cup",            # two cups -> ambiguous, with a question
    "the red one",             # the answer resolves it: a grasp pose for the red cup
    "put it on the table",     # place pose above the table
    "抓取蓝色杯子",              # Chinese: pick the blue cup
    "grab the green cup",      # no green cup: not_found, no goal
    "go to the giraffe",       # nothing like it: not_found
    "stop",
)

# The demo camera: 0.6 m above base_link, pitched 0.6 rad down, looking along +x.
CAMERA_POSE = [0.0, 0.0, 0.6, 0.0, 0.6, 0.0]


def run_photo_demo(out_dir: str, dialogue: tuple[str, ...] = DIALOGUE) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb, depth, intrinsics = scenes.two_cups()
    cv2.imwrite(str(out / "scene.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    graph = LocalGraph({"camera_pose_in_base": CAMERA_POSE,
                        # The demo camera publishes reliable (see image_reliability).
                        "image_reliability": "reliable"},
                       lambda: [PhotoCamera(rgb, depth, intrinsics, rate_hz=5.0)],
                       client_name="vlm_ros_demo")
    debug: list[Any] = []
    graph.client.create_subscription(Image, "/vlm_ros/debug_image", debug.append, 10)
    failures = 0
    try:
        if not graph.wait_for_node(15.0):
            print("demo: the node did not come up")
            return 1
        log = (out / "results.jsonl").open("w", encoding="utf-8")
        for step, text in enumerate(dialogue, start=1):
            shown = len(debug)
            result = graph.send(text, timeout_s=20.0)
            print(f"\n[{step}] you: {text}")
            if result is None:
                print("    (no answer within 20 s)")
                failures += 1
                continue
            log.write(json.dumps(result, ensure_ascii=False) + "\n")
            print_answer(result)
            if text != "stop":
                graph.spin_until(lambda: len(debug) > shown, 2.0)
            if len(debug) > shown:
                image, _ = image_to_array(debug[-1])
                cv2.imwrite(str(out / f"step{step}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        log.close()
        print(f"\nannotated images and results.jsonl written to {out}/")
    finally:
        graph.close()
    return 1 if failures else 0
