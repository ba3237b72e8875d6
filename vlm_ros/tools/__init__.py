"""Load, soak and benchmark tools for the grounding node.

`vlm-ros bench` (bench.py) and `vlm-ros soak` (soak.py) start the node as a separate process,
exactly as a user starts it, and drive it over DDS as a robot would: a camera stream, text
commands, and the node's /diagnostics.  rig.py is the process rig they share with the tests:
the node under test as its own process with a drained log, a counting camera, the coffee scene
and readers for /diagnostics and /proc figures.

Nothing here is imported by the node itself; these modules need rclpy.
"""
