"""MuJoCo simulation: generated tabletop scenes (scene, meshes), an RGB-D camera (render), a
floating gripper, the world that joins them, its ROS node, the demo and the evaluation.

MuJoCo picks its OpenGL backend when first imported; importing anything from this package makes
the headless OSMesa backend the default (set ``MUJOCO_GL=egl`` or ``glfw`` before to override).
"""

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
