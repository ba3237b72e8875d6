"""The ROS-free core: instruction parsing, grounding, reasoning, geometry and goals.

Nothing under this package imports rclpy; the CLI, the node, the simulator and the benchmarks all
call it.
"""
