"""`vlm-ros demo --mcp`: the MuJoCo tabletop and the real vlm_ros node, served to an MCP host.

The graph of the scripted demo (vlm_ros/sim/demo.py) - SimNode publishes the simulated RGB-D
camera and executes grasp / place poses in the physics, the vlm_ros node grounds - with an MCP
server in front instead of a script (config/agent_policy.yaml by default).  With the stdio
transport an MCP host starts this very command; everything else this process prints goes to
stderr, stdout carries only the protocol.
"""

from __future__ import annotations

import argparse
import sys

from vlm_ros.agent.run import load_policy_arg, run_mcp

SIM_CAMERA_HZ = 10.0
CONFIRM_SLACK_S = 5.0  # the node keeps a held goal a little longer than a person is waited for


def run_sim_mcp(args: argparse.Namespace) -> int:
    from vlm_ros.agent.policy import PolicyError

    try:
        policy = load_policy_arg(args.policy, demo=True)  # a bad file: exit 2 before anything
    except PolicyError as exc:
        print(f"vlm-ros demo --mcp: {exc}", file=sys.stderr)
        return 2
    from vlm_ros.ros.local_graph import LocalGraph
    from vlm_ros.sim.demo import LAYOUT
    from vlm_ros.sim.ros_node import SimNode
    from vlm_ros.sim.scene import generate_scene
    from vlm_ros.sim.world import SimWorld

    spec = generate_scene(args.seed, layout=LAYOUT)
    world = SimWorld(spec)
    graph = LocalGraph({"camera_pose_in_base": list(spec.camera.pose_in_base),
                        "image_reliability": "reliable", "use_sim_time": True,
                        "confirm_timeout_s": policy.approval_timeout_s + CONFIRM_SLACK_S},
                       lambda: [SimNode(world, rate_hz=SIM_CAMERA_HZ)],
                       client_name="vlm_ros_demo",
                       remappings={"robot_status": "/vlm_ros_sim/robot_status"})
    print(f"scene {args.seed}: " + ", ".join(f"{o.color_name} {o.category}"
                                              for o in spec.objects), file=sys.stderr, flush=True)
    try:
        return run_mcp(args, node="/vlm_ros", camera_topic="/camera/image",
                       robot_status_topic="/vlm_ros_sim/robot_status", policy=policy)
    finally:
        graph.close()
        world.close()
