"""A floating parallel-jaw gripper that executes our grasp / place goals in MuJoCo physics.

Why a floating gripper and not an arm: the thing under test is *our* output (a grasp pose at the
object's centre with a top-down approach, a place pose above a destination).  A hand that can reach
any pose isolates that question from inverse kinematics; whether the commanded object ends up in
the fingers is decided by the contact solver, not by us.

Frames (all in the sim world frame, which IS ``base_link``):

* The gripper's tool centre point (TCP) is the origin of body ``<name>``: the point between the
  finger pads, 1.5 cm above the finger tips.  A grasp pose puts the TCP at the object's centre.
* Gripper local **z points down** along the approach (out of the palm, through the fingers), local
  **x** is the horizontal heading given by the goal's yaw, and the fingers **close along local y**.
  The hand orientation for a goal yaw ``psi`` is ``Rz(psi) * Rx(pi)`` -- exactly the orientation
  ``vlm_ros.core.goals`` publishes, so ``yaw_from_quat(goal.pose.orientation)`` is all that is
  needed (:func:`yaw_of_goal`).
* A parallel jaw is symmetric under a half turn, so a yaw is executed modulo pi (whichever of
  ``psi`` / ``psi + pi`` is closer to the current heading) to avoid needless wrist turns.

Mechanics: a mocap body ``<name>_mocap`` is moved kinematically along a speed-limited path; the
hand (a free body, gravity-compensated) follows it through a soft weld equality, so a hand that
hits the table or an object is pushed back by contacts instead of tunnelling through them.  Two
finger bodies slide along local y, coupled by a joint equality (one actuator, centring grip); the
actuator is a position servo whose force limit is the grip force.

Outcomes are read from the physics state only (``data.contact``, body positions), never from what
was commanded: a pick holds a body iff that body touches both finger pads and rose with the hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from vlm_ros.core.geometry import yaw_from_quat

Vec3 = tuple[float, float, float]
StepCallback = Callable[[mujoco.MjModel, mujoco.MjData], None]

# Geometry of the hand (metres).  Opening per finger; total opening is twice this.
FINGER_TRAVEL = 0.07  # 0.14 m total opening: a mug of 8-9 cm fits with 2.5 cm to spare
FINGER_HALF_WIDTH = 0.025  # along local x: wide pads keep an off-centre cylinder from squirting out
FINGER_HALF_THICKNESS = 0.006  # along local y
FINGER_TIP_BELOW_TCP = 0.015  # the tips reach this far below the TCP (local +z)
FINGER_LENGTH = 0.165  # tip to palm: a 25 cm bottle grasped at its centre clears the palm
PALM_HALF = (0.03, 0.095, 0.02)

# Collision bits: gripper geoms have contype 2 / conaffinity 1, so they touch ordinary geoms
# (contype = conaffinity = 1, MuJoCo's default) but never each other (finger vs finger, palm).
GRIPPER_CONTYPE = 2
GRIPPER_CONAFFINITY = 1

# Motion limits of the path the mocap target follows.
DEFAULT_SPEED = 0.3  # m/s, transit
APPROACH_SPEED = 0.1  # m/s, the last centimetres to a grasp / release pose
YAW_SPEED = 2.0  # rad/s
DEFAULT_GRIP_FORCE = 25.0  # N per finger

# Below this many metres a held object counts as "not lifted".
MIN_LIFT = 0.05


@dataclass(frozen=True)
class GripperMjcf:
    """XML fragments to paste into a scene's MJCF (see :func:`gripper_mjcf` for where)."""

    worldbody: str
    actuators: str
    equality: str
    assets: str = ""
    option: str = '<option timestep="0.002" cone="elliptic" impratio="10"/>'


def _fmt(values: tuple[float, ...] | list[float]) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def hand_quat(yaw: float) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion of the hand for heading ``yaw``: Rz(yaw) * Rx(pi)."""
    rz = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    rx = np.array([0.0, 1.0, 0.0, 0.0])
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, rz, rx)
    return out


def yaw_of_goal(orientation_xyzw: tuple[float, float, float, float]) -> float:
    """The yaw to execute for a goal orientation (x, y, z, w) from ``vlm_ros.core.goals``."""
    return yaw_from_quat(orientation_xyzw)


def gripper_mjcf(
    name: str = "gripper", home: Vec3 = (0.3, 0.0, 1.2), home_yaw: float = 0.0
) -> GripperMjcf:
    """MJCF fragments of a floating parallel-jaw gripper called ``name`` parked at ``home``.

    Integration contract (what the scene generator must do):

    * ``worldbody`` goes inside ``<worldbody>`` (top level, not inside another body);
    * ``actuators`` inside ``<actuator>``, ``equality`` inside ``<equality>``;
    * ``option`` is the recommended ``<option>`` element: timestep 0.002 and an elliptic friction
      cone with ``impratio`` 10, which keeps a held object from creeping out of the pads.
      (It also works with MuJoCo's defaults, with slightly more slip.)
    * ordinary scene geoms keep MuJoCo's default ``contype="1" conaffinity="1"``, so the fingers
      collide with them; the gripper's geoms never collide with each other.
    * the worldbody needs gravity along -z (MuJoCo's default); the hand is gravity-compensated.
    """
    pos = _fmt(home)
    quat = _fmt(list(hand_quat(home_yaw)))
    contact = f'contype="{GRIPPER_CONTYPE}" conaffinity="{GRIPPER_CONAFFINITY}"'
    pad = (
        f'{contact} condim="6" friction="1.5 0.02 0.002" solref="0.004 1" '
        'solimp="0.95 0.99 0.001" priority="1"'
    )
    finger_centre_z = FINGER_TIP_BELOW_TCP - FINGER_LENGTH / 2
    palm_z = FINGER_TIP_BELOW_TCP - FINGER_LENGTH - PALM_HALF[2]
    fingers = []
    for side, sign in (("l", 1.0), ("r", -1.0)):
        fingers.append(
            f'    <body name="{name}_finger_{side}" gravcomp="1">\n'
            f'      <joint name="{name}_finger_{side}" type="slide" axis="0 {sign:g} 0" '
            f'range="0 {FINGER_TRAVEL}" damping="8" armature="0.01" limited="true"/>\n'
            f'      <geom name="{name}_pad_{side}" type="box" mass="0.05" rgba="0.2 0.2 0.22 1" '
            f'size="{FINGER_HALF_WIDTH} {FINGER_HALF_THICKNESS} {FINGER_LENGTH / 2}" '
            f'pos="0 {sign * FINGER_HALF_THICKNESS:g} {finger_centre_z:.6g}" {pad}/>\n'
            "    </body>"
        )
    worldbody = "\n".join(
        [
            f'<body name="{name}_mocap" mocap="true" pos="{pos}" quat="{quat}">',
            f'  <site name="{name}_target" size="0.006" rgba="0 1 0 0.3"/>',
            "</body>",
            f'<body name="{name}" pos="{pos}" quat="{quat}" gravcomp="1">',
            f'  <freejoint name="{name}_free"/>',
            f'  <site name="{name}_tcp" size="0.005" rgba="1 0 0 0.5"/>',
            f'  <geom name="{name}_palm" type="box" mass="0.5" rgba="0.75 0.75 0.78 1" '
            f'size="{_fmt(PALM_HALF)}" pos="0 0 {palm_z:.6g}" {contact}/>',
            f'  <geom name="{name}_wrist" type="cylinder" mass="0.1" rgba="0.75 0.75 0.78 1" '
            f'size="0.025 0.04" pos="0 0 {palm_z - PALM_HALF[2] - 0.04:.6g}" {contact}/>',
            *fingers,
            "</body>",
        ]
    )
    actuators = (
        f'<position name="{name}_fingers" joint="{name}_finger_l" kp="600" '
        f'ctrlrange="0 {FINGER_TRAVEL}" forcelimited="true" '
        f'forcerange="-{DEFAULT_GRIP_FORCE} {DEFAULT_GRIP_FORCE}"/>'
    )
    equality = "\n".join(
        [
            f'<weld name="{name}_weld" body1="{name}_mocap" body2="{name}" '
            'relpose="0 0 0 1 0 0 0" solref="0.01 1"/>',
            f'<joint name="{name}_couple" joint1="{name}_finger_r" joint2="{name}_finger_l" '
            'polycoef="0 1 0 0 0" solref="0.005 1"/>',
        ]
    )
    return GripperMjcf(worldbody=worldbody, actuators=actuators, equality=equality)


@dataclass
class PickOutcome:
    """What the physics says happened during a pick."""

    held_body: str | None  # root body touching both pads and lifted >= MIN_LIFT, else None
    lifted_by: float  # how far that body rose (m); 0 when nothing is held
    touching_pads: list[str] = field(default_factory=list)  # bodies touching any pad at the end
    finger_opening: float = 0.0  # distance between the pads at the end (m)
    object_position: Vec3 | None = None  # held body's world position at the end


@dataclass
class PlaceOutcome:
    """Where a released object came to rest; whether that is "success" is the caller's call."""

    released_body: str | None  # what was in the fingers before opening (None: nothing)
    final_position: Vec3 | None  # its world position after settling
    xy_error: float | None  # horizontal distance to the place target (m)
    supported_by: list[str] = field(default_factory=list)  # bodies it rests on after settling
    settled: bool = False  # its speed fell below 1 cm/s

    def within(self, tolerance: float) -> bool:
        return self.xy_error is not None and self.xy_error <= tolerance


class SimulationUnstable(RuntimeError):
    """The physics produced a non-finite state: the scene or gains are broken, not the goal."""


class GripperController:
    """Drives the gripper ``name`` of a model built with :func:`gripper_mjcf`.

    Every motion method steps the physics itself (``mujoco.mj_step``); ``on_step(model, data)``,
    if given, is called every ``callback_period`` seconds of sim time (e.g. 0.1 s -> 10 Hz frames
    for a GIF).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        name: str = "gripper",
        on_step: StepCallback | None = None,
        callback_period: float = 0.1,
    ) -> None:
        self.model = model
        self.data = data
        self.name = name
        self.on_step = on_step
        self._callback_every = max(1, round(callback_period / model.opt.timestep))
        self._steps = 0
        mocap_body = _id(model, mujoco.mjtObj.mjOBJ_BODY, f"{name}_mocap")
        self._mocap = int(model.body_mocapid[mocap_body])
        self._hand = _id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        self._actuator = _id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{name}_fingers")
        self._finger_qpos = [
            int(model.jnt_qposadr[_id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{name}_finger_{s}")])
            for s in ("l", "r")
        ]
        self._pads = {_id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{name}_pad_{s}") for s in ("l", "r")}
        self._own_bodies = {
            b for b in range(model.nbody) if int(model.body_rootid[b]) in (self._hand, mocap_body)
        }
        self._yaw = yaw_from_quat(_xyzw(data.mocap_quat[self._mocap]))
        self.data.ctrl[self._actuator] = FINGER_TRAVEL

    # ----------------------------------------------------------------- low-level motion
    @property
    def target_position(self) -> np.ndarray:
        return self.data.mocap_pos[self._mocap].copy()

    @property
    def tcp_position(self) -> np.ndarray:
        return self.data.xpos[self._hand].copy()

    @property
    def finger_opening(self) -> float:
        return float(sum(self.data.qpos[a] for a in self._finger_qpos))

    def step(self, n: int = 1) -> None:
        """Advance the physics ``n`` steps, calling ``on_step`` at its period."""
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)
            self._steps += 1
            if self.on_step is not None and self._steps % self._callback_every == 0:
                self.on_step(self.model, self.data)
        if not (np.all(np.isfinite(self.data.qpos)) and np.all(np.isfinite(self.data.qvel))):
            raise SimulationUnstable(f"non-finite state after {self._steps} steps")

    def step_to(
        self,
        pose_xyz: Vec3,
        yaw: float | None = None,
        steps: int | None = None,
        speed: float = DEFAULT_SPEED,
        settle: int = 25,
    ) -> None:
        """Move the mocap target to ``pose_xyz`` / ``yaw`` along a straight, smooth path.

        The duration is the larger of ``steps`` and what ``speed`` (m/s) and ``YAW_SPEED`` allow;
        the profile is smoothstep (zero velocity at both ends) so the weld never sees a jerk.
        ``settle`` extra steps let the hand catch up with the target.
        """
        start = self.data.mocap_pos[self._mocap].copy()
        goal = np.asarray(pose_xyz, dtype=float)
        yaw0 = self._yaw
        yaw1 = yaw0 if yaw is None else _nearest_equivalent_yaw(yaw, yaw0)
        dt = self.model.opt.timestep
        # smoothstep peaks at 1.5x the mean speed: size the duration for the peak.
        duration = max(
            1.5 * float(np.linalg.norm(goal - start)) / speed, 1.5 * abs(yaw1 - yaw0) / YAW_SPEED
        )
        n = max(int(steps or 0), int(math.ceil(duration / dt)), 1)
        for i in range(1, n + 1):
            s = i / n
            s = s * s * (3.0 - 2.0 * s)
            self.data.mocap_pos[self._mocap] = start + s * (goal - start)
            self.data.mocap_quat[self._mocap] = hand_quat(yaw0 + s * (yaw1 - yaw0))
            self.step()
        self._yaw = yaw1
        self.step(settle)

    def open(self, steps: int = 150) -> None:
        """Open the fingers fully and wait ``steps`` for them to get there."""
        self.data.ctrl[self._actuator] = FINGER_TRAVEL
        self.step(steps)

    def close(self, force: float = DEFAULT_GRIP_FORCE, steps: int = 200) -> None:
        """Close the fingers with at most ``force`` N per finger.

        The set-point is ramped (not stepped) to zero so the pads meet the object gently and
        squeeze it towards the centre instead of batting it away.
        """
        self.model.actuator_forcerange[self._actuator] = (-abs(force), abs(force))
        start = float(self.data.ctrl[self._actuator])
        ramp = max(1, steps // 2)
        for i in range(1, ramp + 1):
            self.data.ctrl[self._actuator] = start * (1.0 - i / ramp)
            self.step()
        self.step(steps - ramp)

    # ----------------------------------------------------------------- physics queries
    def pad_contacts(self) -> dict[int, set[int]]:
        """Root body id -> the set of pad geoms it touches (from ``data.contact``)."""
        touching: dict[int, set[int]] = {}
        for c in self.data.contact[: self.data.ncon]:
            g1, g2 = int(c.geom1), int(c.geom2)
            for pad, other in ((g1, g2), (g2, g1)):
                if pad in self._pads:
                    body = int(self.model.body_rootid[self.model.geom_bodyid[other]])
                    if body not in self._own_bodies and body != 0:
                        touching.setdefault(body, set()).add(pad)
        return touching

    def grasped_body(self) -> int | None:
        """The root body touching both pads right now (the deepest-squeezed if several)."""
        both = [b for b, pads in self.pad_contacts().items() if pads == self._pads]
        return both[0] if len(both) == 1 else (None if not both else self._closest(both))

    def supports(self, body: int) -> list[str]:
        """Names of the root bodies (or 'world') ``body`` is in contact with, gripper excluded."""
        names: set[str] = set()
        for c in self.data.contact[: self.data.ncon]:
            b1 = int(self.model.body_rootid[self.model.geom_bodyid[c.geom1]])
            b2 = int(self.model.body_rootid[self.model.geom_bodyid[c.geom2]])
            for mine, other in ((b1, b2), (b2, b1)):
                if mine == body and other != body and other not in self._own_bodies:
                    names.add(self._body_name(other))
        return sorted(names)

    # ----------------------------------------------------------------- tasks
    def execute_pick(
        self,
        grasp_xyz: Vec3,
        grasp_yaw: float,
        pregrasp_offset: float = 0.10,
        lift: float = 0.15,
        force: float = DEFAULT_GRIP_FORCE,
    ) -> PickOutcome:
        """Top-down pick at ``grasp_xyz`` (TCP at the object's centre): open, go above, descend,
        close, lift by ``lift``; then ask the physics what, if anything, came along."""
        grasp = np.asarray(grasp_xyz, dtype=float)
        pregrasp = grasp + np.array([0.0, 0.0, pregrasp_offset])
        here = self.target_position
        transit_z = max(float(here[2]), float(pregrasp[2]))
        self.open(steps=0)
        self.step_to((here[0], here[1], transit_z))
        self.step_to((pregrasp[0], pregrasp[1], transit_z), grasp_yaw)
        self.step_to(tuple(pregrasp), grasp_yaw)
        self.step(max(0, 150 - 25))  # let the fingers finish opening before going down
        self.step_to(tuple(grasp), grasp_yaw, speed=APPROACH_SPEED, settle=50)
        before = self.data.xpos.copy()
        self.close(force)
        self.step_to(tuple(grasp + np.array([0.0, 0.0, lift])), grasp_yaw, settle=100)
        return self._pick_outcome(before)

    def execute_place(
        self,
        place_xyz: Vec3,
        yaw: float,
        release_height: float | None = None,
        approach_offset: float = 0.10,
        max_descent: float = 0.10,
        retreat: float = 0.10,
    ) -> PlaceOutcome:
        """Carry whatever is held to ``place_xyz`` (TCP position), release it, back off.

        ``release_height=None`` (default) does a guarded descent: from ``place_xyz`` the hand keeps
        going down slowly, at most ``max_descent``, until the held object touches something that
        is not the gripper -- so a place goal's 5 cm clearance does not become a 5 cm drop.  A
        number instead opens the fingers that far above ``place_xyz`` without feeling for contact.
        """
        held = self.grasped_body()
        target = np.asarray(place_xyz, dtype=float)
        here = self.target_position
        transit_z = max(float(here[2]), float(target[2]) + approach_offset)
        self.step_to((here[0], here[1], transit_z))
        self.step_to((target[0], target[1], transit_z), yaw)
        if release_height is None:
            self.step_to(tuple(target), yaw, speed=APPROACH_SPEED)
            if held is not None:
                self._guarded_descent(held, max_descent)
        else:
            self.step_to((target[0], target[1], target[2] + release_height), yaw,
                         speed=APPROACH_SPEED)
        self.open(steps=200)
        up = self.target_position + np.array([0.0, 0.0, retreat])
        self.step_to(tuple(up), settle=0)
        settled = self._settle(held)
        if held is None:
            return PlaceOutcome(None, None, None, settled=settled)
        final = self.data.xpos[held].copy()
        return PlaceOutcome(
            released_body=self._body_name(held),
            final_position=_vec3(final),
            xy_error=float(np.linalg.norm(final[:2] - target[:2])),
            supported_by=self.supports(held),
            settled=settled,
        )

    # ----------------------------------------------------------------- helpers
    def _pick_outcome(self, before: np.ndarray) -> PickOutcome:
        touching = self.pad_contacts()
        body = self.grasped_body()
        lifted = 0.0 if body is None else float(self.data.xpos[body][2] - before[body][2])
        held = body if body is not None and lifted >= MIN_LIFT else None
        return PickOutcome(
            held_body=None if held is None else self._body_name(held),
            lifted_by=lifted if held is not None else 0.0,
            touching_pads=sorted(self._body_name(b) for b in touching),
            finger_opening=self.finger_opening,
            object_position=None if held is None else _vec3(self.data.xpos[held]),
        )

    def _guarded_descent(self, held: int, max_descent: float) -> None:
        step_len = APPROACH_SPEED * self.model.opt.timestep
        start = self.target_position
        for i in range(1, int(max_descent / step_len) + 1):
            if self.supports(held):
                break
            self.data.mocap_pos[self._mocap] = start - np.array([0.0, 0.0, i * step_len])
            self.step()
        self.step(50)

    def _settle(self, body: int | None, max_steps: int = 1000) -> bool:
        """Step until ``body`` (if any) is still; True when it got below 1 cm/s."""
        if body is None:
            return True
        vel = np.zeros(6)
        for i in range(max_steps):
            self.step()
            if i % 10 == 0:
                mujoco.mj_objectVelocity(
                    self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, body, vel, 0
                )
                if i > 50 and float(np.linalg.norm(vel[3:])) < 0.01:
                    return True
        return False

    def _closest(self, bodies: list[int]) -> int:
        tcp = self.data.xpos[self._hand]
        return min(bodies, key=lambda b: float(np.linalg.norm(self.data.xpos[b] - tcp)))

    def _body_name(self, body: int) -> str:
        return mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, body) or f"body{body}"


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        raise ValueError(f"model has no {kind.name.removeprefix('mjOBJ_').lower()} named {name!r}"
                         " (was it built with gripper_mjcf()?)")
    return index


def _xyzw(wxyz: np.ndarray) -> tuple[float, float, float, float]:
    return (float(wxyz[1]), float(wxyz[2]), float(wxyz[3]), float(wxyz[0]))


def _vec3(v: np.ndarray) -> Vec3:
    return (float(v[0]), float(v[1]), float(v[2]))


def _nearest_equivalent_yaw(yaw: float, current: float) -> float:
    """``yaw`` or ``yaw + k*pi`` (a parallel jaw's symmetry), whichever is nearest ``current``."""
    return current + (yaw - current + math.pi / 2) % math.pi - math.pi / 2
