"""The photo demo (`vlm-ros demo`): a real photo grounded end to end through the ROS 2 node.

A PhotoCamera publishes scikit-image's coffee photo beside a recoloured copy (a red and a blue
cup, synthetic tabletop depth) as an RGB-D camera would; the real vlm_ros node grounds a short
scripted dialogue sent over DDS; each step's result, goals and annotated image are printed and
saved.  Issue #4's MuJoCo demo replaces this as the main job.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from vlm_ros import scenes
from vlm_ros.ros.convert import image_to_array
from vlm_ros.ros.node import VlmRosNode
from vlm_ros.ros.photo_camera import PhotoCamera
from vlm_ros.ros.teleop import CommandClient, print_answer

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

    rclpy.init()
    node = VlmRosNode(parameter_overrides=[
        Parameter("camera_pose_in_base", value=CAMERA_POSE),
        # The demo camera publishes reliable (see image_reliability in config/vlm_ros.yaml).
        Parameter("image_reliability", value="reliable")])
    camera = PhotoCamera(rgb, depth, intrinsics, rate_hz=5.0)
    client = CommandClient("/vlm_ros", name="vlm_ros_demo")
    debug: list[Any] = []
    client.create_subscription(Image, "/vlm_ros/debug_image", debug.append, 10)
    executor = MultiThreadedExecutor(num_threads=2)
    for n in (node, camera):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client_executor = SingleThreadedExecutor()
    client_executor.add_node(client)
    failures = 0
    try:
        if not client.wait_for_node(client_executor, 15.0):
            print("demo: the node did not come up")
            return 1
        log = (out / "results.jsonl").open("w", encoding="utf-8")
        for step, text in enumerate(dialogue, start=1):
            shown = len(debug)
            result = client.send(text, client_executor, timeout_s=20.0)
            print(f"\n[{step}] you: {text}")
            if result is None:
                print("    (no answer within 20 s)")
                failures += 1
                continue
            log.write(json.dumps(result, ensure_ascii=False) + "\n")
            print_answer(result)
            deadline = time.monotonic() + 2.0
            while len(debug) == shown and time.monotonic() < deadline and text != "stop":
                client_executor.spin_once(timeout_sec=0.05)
            if len(debug) > shown:
                image, _ = image_to_array(debug[-1])
                cv2.imwrite(str(out / f"step{step}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        log.close()
        print(f"\nannotated images and results.jsonl written to {out}/")
    finally:
        executor.shutdown()
        client_executor.shutdown()
        for n in (client, camera, node):
            n.destroy_node()
        rclpy.shutdown()
    return 1 if failures else 0
