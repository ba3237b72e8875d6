"""An RGB-D camera over a MuJoCo scene: colour, metric depth, segmentation and ground-truth boxes.

Conventions (checked by tests/test_sim_scene.py by projecting known object centres and
back-projecting rendered depth):

* ``render`` returns RGB uint8 and depth in metres *along the optical axis* (z-depth, what RGB-D
  cameras publish), NaN where nothing was hit within ``max_depth``.
* ``intrinsics`` is the pinhole model MuJoCo renders with: square pixels, fy = (h/2)/tan(fovy/2),
  principal point at the image centre in pixel-centre coordinates ((w-1)/2, (h-1)/2).
* ``extrinsics`` is the optical->base transform; the camera's *body* pose is
  ``CameraSetup.pose_in_base`` and ``camera_extrinsics(*pose)`` builds it, so the sim and a real
  robot's static TF read the same way.

MuJoCo needs an OpenGL context; on headless machines set ``MUJOCO_GL=osmesa`` (or ``egl``)
before importing mujoco.  A renderer must be closed (``close()`` or ``with SimCamera(...)``).
"""

from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np

from vlm_ros.core.geometry import Transform, camera_extrinsics
from vlm_ros.core.types import BBox, CameraIntrinsics, Frame
from vlm_ros.sim.scene import CameraSetup, SceneSpec


class SimCamera:
    """Renders one MJCF camera of a model to RGB, depth and per-pixel segmentation."""

    def __init__(self, model: mujoco.MjModel, setup: CameraSetup, max_depth: float = 10.0,
                 frame_id: str = "camera_color_optical_frame") -> None:
        self.model = model
        self.setup = setup
        self.max_depth = float(max_depth)
        self.frame_id = frame_id
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, setup.name)
        if self.camera_id < 0:
            raise ValueError(f"the model has no camera named {setup.name!r}")
        self._renderer = mujoco.Renderer(model, setup.height, setup.width)

    # -- geometry -----------------------------------------------------------------------------

    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the rendered images (square pixels, centred principal point)."""
        w, h = self.setup.width, self.setup.height
        fy = 0.5 * h / math.tan(0.5 * math.radians(self.setup.fovy_deg))
        return CameraIntrinsics(fx=fy, fy=fy, cx=0.5 * (w - 1), cy=0.5 * (h - 1), width=w, height=h)

    def pose_in_base(self) -> tuple[float, float, float, float, float, float]:
        """(x, y, z, roll, pitch, yaw) of the camera body frame in the base frame."""
        return self.setup.pose_in_base

    def extrinsics(self) -> Transform:
        """Optical frame -> base frame (``camera_extrinsics(*pose_in_base)``)."""
        return camera_extrinsics(*self.setup.pose_in_base)

    def pan_to(self, yaw: float) -> None:
        """Turn the camera about the base's z axis to heading ``yaw`` (rad), keeping its place,
        roll and pitch: a pan unit.  ``pose_in_base`` and the renders follow at once."""
        x, y, z, roll, pitch, _yaw = self.setup.pose_in_base
        self.setup = dataclasses.replace(self.setup, pose_in_base=(x, y, z, roll, pitch,
                                                                   float(yaw)))
        w, qx, qy, qz = self.setup.mujoco_quat()
        self.model.cam_quat[self.camera_id] = (w, qx, qy, qz)

    optical_pose_in_base = extrinsics

    # -- images -------------------------------------------------------------------------------

    def _check(self, model: mujoco.MjModel | None) -> None:
        if model is not None and model is not self.model:
            raise ValueError("this SimCamera renders the model it was built with")

    def render(self, *model_data: mujoco.MjModel | mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """(rgb HxWx3 uint8, depth_m HxW float32 with NaN where nothing is within max_depth).

        Call as ``render(data)`` or ``render(model, data)`` (the model must be the camera's).
        """
        *model, data = model_data
        self._check(model[0] if model else None)
        r = self._renderer
        r.update_scene(data, camera=self.camera_id)
        rgb = r.render().copy()
        r.enable_depth_rendering()
        try:
            r.update_scene(data, camera=self.camera_id)
            depth = r.render().astype(np.float32)
        finally:
            r.disable_depth_rendering()
        depth[~np.isfinite(depth) | (depth <= 0) | (depth > self.max_depth)] = np.nan
        return rgb, depth

    def frame(self, data: mujoco.MjData) -> Frame:
        """A core ``Frame`` (rgb, depth, intrinsics, sim time) ready for the grounding pipeline."""
        rgb, depth = self.render(data)
        return Frame(rgb=rgb, depth_m=depth, intrinsics=self.intrinsics(), stamp=float(data.time),
                     frame_id=self.frame_id)

    def render_segmentation(self, data: mujoco.MjData) -> np.ndarray:
        """HxW int32 geom id of the geom seen at each pixel, -1 where no geom is."""
        r = self._renderer
        r.enable_segmentation_rendering()
        try:
            r.update_scene(data, camera=self.camera_id)
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        ids = seg[..., 0].astype(np.int32)
        ids[seg[..., 1] != int(mujoco.mjtObj.mjOBJ_GEOM)] = -1
        return ids

    def object_masks(self, data: mujoco.MjData, spec: SceneSpec) -> dict[str, np.ndarray]:
        """Object name -> HxW bool mask of its visible pixels (empty mask if fully hidden)."""
        seg = self.render_segmentation(data)
        body_of_geom = np.asarray(self.model.geom_bodyid)
        geom_body = np.where(seg >= 0, body_of_geom[np.clip(seg, 0, None)], -1)
        masks = {}
        for obj in spec.objects:
            body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, obj.body_name)
            masks[obj.name] = geom_body == body
        return masks

    def gt_boxes(self, data: mujoco.MjData, spec: SceneSpec,
                 min_pixels: int = 20) -> dict[str, BBox]:
        """Object name -> tight box (x1, y1, x2, y2, edge coordinates) of its visible pixels.

        Objects with fewer than ``min_pixels`` visible pixels (hidden, out of view) are left out.
        """
        return {name: box for name, mask in self.object_masks(data, spec).items()
                if (box := mask_box(mask, min_pixels)) is not None}

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._renderer is not None:
            # MuJoCo 3.x frees a renderer's GL objects in whatever GL context is current on this
            # thread: after another camera rendered here, that camera's textures and buffers go
            # and it renders garbage from then on (4.0 makes the right context current itself).
            gl_context = getattr(self._renderer, "_gl_context", None)
            if gl_context is not None:
                gl_context.make_current()
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> SimCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mask_box(mask: np.ndarray, min_pixels: int = 1) -> BBox | None:
    """Tight edge-coordinate box of a boolean mask, or None with fewer than ``min_pixels``."""
    if int(mask.sum()) < min_pixels:
        return None
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


__all__ = ["SimCamera", "mask_box"]
