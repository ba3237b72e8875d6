"""MuJoCo simulation: generated tabletop scenes (scene, meshes) and an RGB-D camera (render).

Import ``vlm_ros.sim.render`` only after choosing an OpenGL backend (``MUJOCO_GL=osmesa`` or
``egl`` on headless machines).
"""
