"""`vlm-ros demo --console`: the MuJoCo tabletop and the real vlm_ros node, driven from a browser.

The same graph as the scripted demo (vlm_ros/sim/demo.py) - SimNode publishes the simulated
RGB-D camera and executes grasp / place poses in the physics, the vlm_ros node grounds - but the
commands come from the web console instead of a script, until Ctrl-C.
"""

from __future__ import annotations

import argparse

from vlm_ros.console.args import run_from_args

SIM_CAMERA_HZ = 10.0  # the live view's rate (the scripted demo renders at 5 Hz)


def run_sim_console(args: argparse.Namespace) -> int:
    from vlm_ros.ros.local_graph import LocalGraph
    from vlm_ros.sim.demo import LAYOUT
    from vlm_ros.sim.ros_node import SimNode
    from vlm_ros.sim.scene import generate_scene
    from vlm_ros.sim.world import SimWorld

    spec = generate_scene(args.seed, layout=LAYOUT)
    world = SimWorld(spec)
    graph = LocalGraph({"camera_pose_in_base": list(spec.camera.pose_in_base),
                        "image_reliability": "reliable", "use_sim_time": True},
                       lambda: [SimNode(world, rate_hz=SIM_CAMERA_HZ)],
                       client_name="vlm_ros_demo",
                       remappings={"robot_status": "/vlm_ros_sim/robot_status"})
    print(f"scene {args.seed}: " + ", ".join(f"{o.color_name} {o.category}"
                                              for o in spec.objects), flush=True)
    print("try: grab the mug / the red one / grab the red mug and put it in the blue bowl / "
          "抓取绿色杯子 / stop", flush=True)
    try:
        return run_from_args(args, node="/vlm_ros", camera_topic="/camera/image")
    finally:
        graph.close()
        world.close()
