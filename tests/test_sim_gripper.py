"""The floating gripper executes our pick / place goals in MuJoCo physics.

Every outcome asserted here is read back from the physics (contacts, body positions), on a small
scene of our own: floor, a table whose top is at z = 0.75, a mug-sized cylinder, a box and a
bowl built from a base and twelve wall slabs -- all free bodies.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

mujoco = pytest.importorskip("mujoco")

from vlm_ros.core.goals import GoalConfig, make_goals  # noqa: E402
from vlm_ros.sim.gripper import (  # noqa: E402
    FINGER_TRAVEL,
    GripperController,
    gripper_mjcf,
    hand_quat,
    yaw_of_goal,
)

TABLE_TOP = 0.75
MUG_HALF_HEIGHT = 0.05
BOX_HALF_HEIGHT = 0.03
BOWL_XY = (0.55, -0.3)
BOWL_FLOOR = TABLE_TOP + 0.01


def _bowl(x: float, y: float, radius: float = 0.085, wall: float = 0.05, n: int = 12) -> str:
    walls = []
    half_width = radius * math.tan(math.pi / n) + 0.002
    for i in range(n):
        a = 2 * math.pi * i / n
        walls.append(
            f'<geom type="box" size="0.004 {half_width:.4f} {wall / 2}" '
            f'pos="{radius * math.cos(a):.4f} {radius * math.sin(a):.4f} {wall / 2}" '
            f'euler="0 0 {math.degrees(a):.3f}" mass="0.02"/>'
        )
    return (
        f'<body name="bowl" pos="{x} {y} {TABLE_TOP}"><freejoint/>'
        '<geom type="cylinder" size="0.085 0.005" pos="0 0 0.005" mass="0.2"/>'
        + "".join(walls)
        + "</body>"
    )


def _scene(mug_xy: tuple[float, float] = (0.5, 0.0), with_option: bool = True) -> str:
    g = gripper_mjcf()
    return f"""<mujoco>
  {g.option if with_option else ""}
  <worldbody>
    <geom name="floor" type="plane" size="3 3 0.1"/>
    <body name="table" pos="0.55 0 {TABLE_TOP / 2}"><geom type="box" size="0.4 0.6 {TABLE_TOP / 2}"/></body>
    <body name="mug" pos="{mug_xy[0]} {mug_xy[1]} {TABLE_TOP + MUG_HALF_HEIGHT}"><freejoint/>
      <geom type="cylinder" size="0.04 {MUG_HALF_HEIGHT}" mass="0.3" friction="0.8"/></body>
    <body name="box" pos="0.45 0.3 {TABLE_TOP + BOX_HALF_HEIGHT}"><freejoint/>
      <geom type="box" size="0.025 0.025 {BOX_HALF_HEIGHT}" mass="0.2"/></body>
    {_bowl(*BOWL_XY)}
    {g.worldbody}
  </worldbody>
  <actuator>{g.actuators}</actuator>
  <equality>{g.equality}</equality>
</mujoco>"""


def _world(**kwargs) -> tuple[mujoco.MjModel, mujoco.MjData, GripperController]:
    model = mujoco.MjModel.from_xml_string(_scene(**kwargs))
    data = mujoco.MjData(model)
    controller = GripperController(model, data)
    controller.step(100)  # objects settle on the table
    return model, data, controller


def _assert_physics_sane(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))
    for name in ("mug", "box", "bowl"):
        pos = data.body(name).xpos
        assert abs(pos[0]) < 2 and abs(pos[1]) < 2 and 0.0 < pos[2] < 2.0, (name, pos)
    assert float(np.max(np.abs(data.qvel))) < 50.0  # nothing is flying off


def test_fragments_compile_and_hand_frame_matches_goal_convention():
    model, data, controller = _world()
    # A pick goal's orientation: gripper z down, x along the heading robot -> object.
    grasp = make_goals("pick", (0.5, 0.5, 0.8), None, GoalConfig(), 0.0)[0]
    yaw = yaw_of_goal(grasp.pose.orientation)
    assert yaw == pytest.approx(math.pi / 4)
    x, y, z, w = grasp.pose.orientation
    assert abs(float(np.dot(hand_quat(yaw), (w, x, y, z)))) == pytest.approx(1.0)

    controller.step_to((0.4, 0.1, 1.0), yaw)
    hand = data.body("gripper").xmat.reshape(3, 3)
    np.testing.assert_allclose(hand[:, 2], (0, 0, -1), atol=1e-3)  # local z points down
    finger_axis = data.xaxis[model.joint("gripper_finger_l").id]
    assert abs(float(np.dot(finger_axis, hand[:, 1]))) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(controller.tcp_position, (0.4, 0.1, 1.0), atol=2e-3)
    assert controller.finger_opening == pytest.approx(2 * FINGER_TRAVEL, abs=2e-3)


def test_pick_cylinder_from_its_centre_lifts_it():
    model, data, controller = _world()
    centre = tuple(data.body("mug").xpos)
    outcome = controller.execute_pick(centre, grasp_yaw=0.3)
    assert outcome.held_body == "mug"
    assert outcome.lifted_by >= 0.10
    assert data.body("mug").xpos[2] >= centre[2] + 0.10
    assert 0.07 < outcome.finger_opening < 0.085  # the pads rest on an 8 cm mug
    assert data.body("box").xpos[2] < TABLE_TOP + BOX_HALF_HEIGHT + 0.005  # the rest stays put
    _assert_physics_sane(model, data)


def test_pick_at_empty_spot_holds_nothing():
    model, data, controller = _world()
    outcome = controller.execute_pick((0.65, -0.05, TABLE_TOP + 0.05), grasp_yaw=1.0)
    assert outcome.held_body is None
    assert outcome.touching_pads == []
    _assert_physics_sane(model, data)


def test_goal_driven_pick_and_place_on_table():
    """Poses straight from core/goals.py: grasp at the centre, place 5 cm above the spot."""
    model, data, controller = _world()
    extent = (0.08, 0.08, 2 * MUG_HALF_HEIGHT)
    grasp = make_goals("pick", tuple(data.body("mug").xpos), None, GoalConfig(), 0.0,
                       target_extent=extent)[0]
    picked = controller.execute_pick(grasp.pose.position, yaw_of_goal(grasp.pose.orientation))
    assert picked.held_body == "mug"

    spot = (0.35, 0.15, TABLE_TOP)
    place = make_goals("place", None, spot, GoalConfig(), 0.0, target_extent=extent)[0]
    placed = controller.execute_place(place.pose.position, yaw_of_goal(place.pose.orientation))
    assert placed.released_body == "mug"
    assert placed.within(0.03), placed
    assert placed.supported_by == ["table"]
    assert placed.settled
    assert placed.final_position[2] == pytest.approx(TABLE_TOP + MUG_HALF_HEIGHT, abs=0.005)
    assert controller.grasped_body() is None
    _assert_physics_sane(model, data)


def test_place_into_bowl():
    model, data, controller = _world()
    assert controller.execute_pick(tuple(data.body("box").xpos), 0.0).held_body == "box"
    target = (*BOWL_XY, BOWL_FLOOR + 0.05 + BOX_HALF_HEIGHT)
    placed = controller.execute_place(target, yaw=2.0)
    assert placed.released_body == "box"
    assert placed.supported_by == ["bowl"]
    assert placed.within(0.03), placed
    bowl = data.body("bowl").xpos
    assert bowl[2] == pytest.approx(TABLE_TOP, abs=0.005)  # the bowl stayed on the table
    _assert_physics_sane(model, data)


@pytest.mark.parametrize("seed", range(5))
def test_pick_robust_to_yaw_and_one_centimetre_errors(seed):
    rng = np.random.default_rng(seed)
    mug_xy = (rng.uniform(0.4, 0.6), rng.uniform(-0.1, 0.1))
    model, data, controller = _world(mug_xy=mug_xy, with_option=bool(seed % 2))
    grasp = data.body("mug").xpos + rng.uniform(-0.01, 0.01, 3)
    outcome = controller.execute_pick(tuple(grasp), grasp_yaw=rng.uniform(-math.pi, math.pi))
    assert outcome.held_body == "mug", outcome
    assert outcome.lifted_by >= 0.10
    _assert_physics_sane(model, data)


def test_on_step_callback_runs_at_its_period():
    model = mujoco.MjModel.from_xml_string(_scene())
    data = mujoco.MjData(model)
    stamps: list[float] = []
    controller = GripperController(model, data, on_step=lambda m, d: stamps.append(d.time),
                                   callback_period=0.1)
    controller.step_to((0.5, 0.0, 1.0), 0.0)
    assert len(stamps) == int(data.time / 0.1 + 1e-9)
    assert np.diff(stamps) == pytest.approx(0.1)


def test_unknown_gripper_name_is_a_clear_error():
    model = mujoco.MjModel.from_xml_string(_scene())
    with pytest.raises(ValueError, match="hand"):
        GripperController(model, mujoco.MjData(model), name="hand")
