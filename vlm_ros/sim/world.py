"""A running tabletop world: scene + floating gripper + RGB-D camera, stepped by MuJoCo.

The one object the ROS sim node, the demo and the evaluation share.  The world frame is the
robot's base_link; the camera's pose in it is the scene's ``CameraSetup.pose_in_base``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mujoco

from vlm_ros.core.geometry import quat_to_matrix, yaw_from_quat
from vlm_ros.core.types import Frame, Goal
from vlm_ros.sim.gripper import GripperController, PickOutcome, PlaceOutcome, gripper_mjcf
from vlm_ros.sim.render import SimCamera
from vlm_ros.sim.scene import SceneSpec, SimObject

SETTLE_STEPS = 400  # let objects come to rest before the first frame
BIN_POSITION = (0.2, -0.9, 0.05)  # on the floor beside the table, out of the camera's view
MAX_TILT_DEG = 2.0  # grasp approaches steeper than this off vertical are not executed


def with_gripper(xml: str) -> str:
    """Insert the floating gripper's MJCF fragments into a scene's MJCF text."""
    parts = gripper_mjcf()
    xml = xml.replace("</worldbody>", parts.worldbody + "\n</worldbody>", 1)
    for section, fragment in (("actuator", parts.actuators), ("equality", parts.equality)):
        if f"</{section}>" in xml:
            xml = xml.replace(f"</{section}>", fragment + f"\n</{section}>", 1)
        else:
            xml = xml.replace("</mujoco>", f"<{section}>\n{fragment}\n</{section}>\n</mujoco>", 1)
    if "<option" not in xml:
        xml = xml.replace("<worldbody>", parts.option + "\n<worldbody>", 1)
    return xml


@dataclass
class ActionOutcome:
    """What the physics says happened after a goal was executed."""

    kind: str
    success: bool
    detail: str
    held: str | None = None
    object_position: tuple[float, float, float] | None = None


class SimWorld:
    """Scene + gripper + camera.  ``frame()`` renders; ``execute(goal)`` moves the gripper."""

    def __init__(self, spec: SceneSpec,
                 on_step: Callable[[mujoco.MjModel, mujoco.MjData], None] | None = None) -> None:
        self.spec = spec
        self.model = mujoco.MjModel.from_xml_string(with_gripper(spec.xml))
        self.data = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self.data)
        self.gripper = GripperController(self.model, self.data, on_step=on_step)
        self.gripper.step(SETTLE_STEPS)
        self.camera = SimCamera(self.model, spec.camera)
        self.held: str | None = None

    # ------------------------------------------------------------------ sensing
    def frame(self) -> Frame:
        """An RGB-D frame stamped with the sim time."""
        rgb, depth = self.camera.render(self.model, self.data)
        return Frame(rgb=rgb, depth_m=depth, intrinsics=self.camera.intrinsics(),
                     stamp=float(self.data.time), frame_id=self.camera.frame_id)

    def object_center(self, obj: SimObject) -> tuple[float, float, float]:
        """The object's current centre (its body origin sits on its footprint's centre)."""
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, obj.body_name)
        x, y, z = self.data.xpos[body]
        return (float(x), float(y), float(z) + 0.5 * obj.size[2])

    # ------------------------------------------------------------------ acting
    def execute(self, goal: Goal) -> ActionOutcome:
        """Carry out a grasp or place goal (base frame == world frame) in the physics."""
        xyz = goal.pose.position
        yaw = yaw_from_quat(goal.pose.orientation)
        if goal.kind == "grasp":
            # The floating hand approaches straight down with a yaw (gripper.py); a tilted
            # approach is not something it can execute, and it says so rather than faking one.
            down = float(-quat_to_matrix(goal.pose.orientation)[2, 2])
            tilt = math.degrees(math.acos(max(-1.0, min(1.0, down))))
            if tilt > MAX_TILT_DEG:
                return ActionOutcome("grasp", False, f"the simulated hand only approaches "
                                     f"straight down; this grasp is tilted {tilt:.0f} deg")
            if self.held is not None:
                self._stow_held()
            outcome: PickOutcome = self.gripper.execute_pick(xyz, yaw)
            self.held = outcome.held_body
            return ActionOutcome("grasp", outcome.held_body is not None,
                                 f"holding {outcome.held_body}" if outcome.held_body
                                 else "closed on nothing", held=outcome.held_body)
        if goal.kind == "place":
            placed: PlaceOutcome = self.gripper.execute_place(xyz, yaw)
            self.held = None
            if placed.released_body is None:
                return ActionOutcome("place", False, "nothing was held")
            return ActionOutcome(
                "place", bool(placed.settled), f"released {placed.released_body} on "
                f"{', '.join(placed.supported_by) or 'nothing'}", held=None,
                object_position=placed.final_position)
        if goal.kind == "view":
            return self.look_at(xyz)
        return ActionOutcome(goal.kind, False, f"the sim robot does not execute '{goal.kind}'")

    def look_at(self, point: tuple[float, float, float]) -> ActionOutcome:
        """Pan the camera to face ``point`` (base frame) horizontally."""
        x, y, *_ = self.camera.pose_in_base()
        yaw = math.atan2(point[1] - y, point[0] - x)
        self.camera.pan_to(yaw)
        # The renderer reads the camera pose from data.cam_xpos / cam_xmat (mj_camlight, after
        # the kinematics): update them now, or the next frame would show the old view under the
        # new pose.
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        return ActionOutcome("view", True, f"looking at heading {math.degrees(yaw):.0f} deg")

    def _stow_held(self) -> None:
        """A new grasp while holding something: the simulated robot first drops what it holds
        into a bin beside the table (its own executive's business, not the node's: "pick up
        all the cups" then takes one cup after the other)."""
        self.gripper.open(steps=100)
        if self.held is not None:
            self._put(self.held, BIN_POSITION)
        self.gripper.step(100)
        self.held = None

    def move_object(self, obj: SimObject, xy: tuple[float, float]) -> None:
        """Put ``obj`` somewhere else on the table (someone moved it) and let it settle."""
        self._put(obj.body_name, xy)
        self.gripper.step(200)

    def _put(self, body_name: str, position: tuple[float, ...]) -> None:
        """Set a free body's first ``len(position)`` coordinates (x, y[, z]) and stop it."""
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body_name)
        if body < 0:
            return
        joint = self.model.body_jntadr[body]
        address = self.model.jnt_qposadr[joint]
        self.data.qpos[address:address + len(position)] = position
        self.data.qvel[self.model.jnt_dofadr[joint]:self.model.jnt_dofadr[joint] + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def supports(self, body_name: str) -> list[str]:
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body_name)
        return self.gripper.supports(body)

    def step(self, n: int = 1) -> None:
        self.gripper.step(n)

    def close(self) -> None:
        self.camera.close()

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
