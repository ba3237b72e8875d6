"""Object masks and grasp / place geometry (vlm_ros/core/object_cloud.py, core/grasp.py).

Masks and clouds are measured on MuJoCo renders against the simulator's own segmentation and
poses; the strategies' rules on point sets whose true answer is known by construction.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlm_ros import scenes
from vlm_ros.core import safety
from vlm_ros.core.geometry import StaticFrameResolver, camera_extrinsics, quat_to_matrix
from vlm_ros.core.goals import GoalConfig, make_goals
from vlm_ros.core.grasp import GraspConfig, place_pose, synthesize
from vlm_ros.core.instruction import parse_instruction
from vlm_ros.core.mask_rle import mask_from_rle, mask_rle
from vlm_ros.core.object_cloud import CloudProblem, ObjectCloud, object_cloud
from vlm_ros.core.pipeline import Pipeline
from vlm_ros.core.safety import SafetyConfig
from vlm_ros.core.types import Candidate, Frame, GroundingResult

pytest.importorskip("mujoco")

from vlm_ros.sim.scene import generate_scene  # noqa: E402
from vlm_ros.sim.world import SimWorld  # noqa: E402

LAYOUT = [("bottle", "red"), ("box", "blue"), ("mug", "green"), ("bowl", "white")]


@pytest.fixture(scope="module")
def rendered():
    """Three seeded tabletop scenes: (spec, frame, GT boxes, GT masks, camera pose, centres)."""
    out = []
    for seed in range(3):
        spec = generate_scene(seed, layout=LAYOUT)
        with SimWorld(spec) as world:
            frame = world.frame()
            out.append((spec, frame, world.camera.gt_boxes(world.data, spec),
                        world.camera.object_masks(world.data, spec), world.camera.extrinsics(),
                        {o.name: world.object_center(o) for o in spec.objects}))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# ------------------------------------------------------------------------------- masks
def test_depth_masks_match_the_simulators_segmentation(rendered) -> None:
    ious = []
    for spec, frame, boxes, masks, to_base, _ in rendered:
        for obj in spec.objects:
            cloud = object_cloud(frame, boxes[obj.name], to_base, label=obj.category)
            assert isinstance(cloud, ObjectCloud), (obj.name, cloud)
            ious.append((obj.name, _iou(cloud.mask, masks[obj.name])))
    assert min(v for _, v in ious) >= 0.8, ious


def test_a_backend_mask_is_used_as_given(rendered) -> None:
    spec, frame, boxes, masks, to_base, _ = rendered[0]
    mug = next(o for o in spec.objects if o.category == "mug")
    given = masks[mug.name].copy()
    given[: int(np.median(np.nonzero(given)[0]))] = False  # the lower half of the mug only
    cloud = object_cloud(frame, boxes[mug.name], to_base, mask=given)
    assert isinstance(cloud, ObjectCloud) and cloud.source == "backend mask"
    assert not (cloud.mask & ~given).any()


def test_mask_run_lengths_round_trip(rendered) -> None:
    _, _, _, masks, _, _ = rendered[1]
    for mask in masks.values():
        rle = mask_rle(mask)
        assert sum(rle["counts"]) == rle["box"][2] * rle["box"][3]
        assert (mask_from_rle(rle, mask.shape[1], mask.shape[0]) == mask).all()
    assert mask_rle(np.zeros((4, 4), bool)) == {"box": [0, 0, 0, 0], "counts": []}


def test_an_upright_bottle_gets_its_hidden_back(rendered) -> None:
    """Seen as a front arc, a bottle would be half as deep and its centre in front of it."""
    for spec, frame, boxes, _, to_base, centres in rendered:
        bottle = next(o for o in spec.objects if o.category == "bottle")
        cloud = object_cloud(frame, boxes[bottle.name], to_base)
        assert isinstance(cloud, ObjectCloud) and cloud.completed
        plan = synthesize(cloud, (0.0, 0.0), GraspConfig(max_width_m=0.14))
        best = plan.candidates[0]
        assert math.dist(best.position[:2], centres[bottle.name][:2]) < 0.015
        assert best.width_m >= 0.8 * bottle.size[0]  # never much narrower than it is


def test_depth_holes_on_the_object_refuse(rendered) -> None:
    spec, frame, boxes, _, to_base, _ = rendered[0]
    box = boxes[spec.objects[2].name]
    depth = frame.depth_m.copy()
    x1, y1, x2, y2 = (int(v) for v in box)
    h, w = y2 - y1, x2 - x1
    depth[y1 + h // 5:y2 - h // 5, x1 + w // 5:x2 - w // 5] = np.nan  # a shiny patch: no returns
    holed = Frame(rgb=frame.rgb, depth_m=depth, intrinsics=frame.intrinsics,
                  frame_id=frame.frame_id)
    problem = object_cloud(holed, box, to_base, label="mug")
    assert isinstance(problem, CloudProblem) and problem.refuse
    assert "depth holes on the mug" in problem.reason


def test_a_flat_depth_allows_only_the_documented_fallback() -> None:
    """The photo scenes' synthetic depth is a smooth ramp: nothing stands out of it."""
    rgb, depth, k = scenes.coffee()
    frame = Frame(rgb=rgb, depth_m=depth, intrinsics=k, frame_id="camera")
    problem = object_cloud(frame, (180.0, 60.0, 420.0, 300.0),
                           camera_extrinsics(0.0, 0.0, 1.0, 0.0, 0.0, 0.0), label="cup")
    assert isinstance(problem, CloudProblem) and not problem.refuse
    assert "does not stand out" in problem.reason


def test_the_pipeline_says_when_it_falls_back_to_the_box_centre() -> None:
    from vlm_ros.backends.ssd_coco import SsdCocoBackend

    rgb, depth, k = scenes.coffee()
    resolver = StaticFrameResolver("base_link", "camera",
                                   camera_extrinsics(0.0, 0.0, 1.0, 0.0, 0.0, 0.0))
    pipeline = Pipeline(SsdCocoBackend(), None, resolver)
    result = pipeline.ground(parse_instruction("grab the red cup"),
                             Frame(rgb=rgb, depth_m=depth, intrinsics=k, frame_id="camera"))
    assert result.status == "ok" and result.goals and not result.grasps
    assert "grasp at the box's centre (the cup does not stand out" in result.message


# ------------------------------------------------------------------------------- strategies
def _box_cloud(length: float, breadth: float, height: float, yaw: float,
               centre: tuple[float, float] = (0.6, 0.0), support: float = 0.75,
               environment: np.ndarray | None = None) -> ObjectCloud:
    """Points on the top and the sides of a box standing on a table (all of it seen)."""
    rng = np.random.default_rng(0)
    local = rng.uniform([-length / 2, -breadth / 2, 0.0], [length / 2, breadth / 2, height],
                        (4000, 3))
    local[:2000, 2] = height  # the top face; the rest on the four sides
    side = rng.integers(0, 4, 2000)
    local[2000:, 0] = np.where(side == 0, -length / 2, np.where(side == 1, length / 2,
                                                                 local[2000:, 0]))
    local[2000:, 1] = np.where(side == 2, -breadth / 2, np.where(side == 3, breadth / 2,
                                                                  local[2000:, 1]))
    c, s = math.cos(yaw), math.sin(yaw)
    points = np.column_stack([centre[0] + c * local[:, 0] - s * local[:, 1],
                              centre[1] + s * local[:, 0] + c * local[:, 1],
                              support + local[:, 2]])
    return ObjectCloud(points=points, environment=environment if environment is not None
                       else np.zeros((0, 3)), mask=np.zeros((4, 4), bool), support_z=support,
                       depth_share=1.0, source="test")


def _closing(grasp) -> np.ndarray:
    return quat_to_matrix(grasp.orientation)[:, 1]


def test_an_elongated_object_is_taken_across_its_narrow_side() -> None:
    yaw = math.radians(60.0)
    cloud = _box_cloud(0.20, 0.06, 0.07, yaw)
    plan = synthesize(cloud, (0.0, 0.0), GraspConfig(max_width_m=0.14))
    best = plan.candidates[0]
    assert best.strategy == "principal_axis"
    assert best.width_m == pytest.approx(0.06, abs=0.005)
    long_axis = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    assert abs(float(_closing(best) @ long_axis)) < 0.05  # fingers close across it
    assert np.allclose(quat_to_matrix(best.orientation)[:, 2], (0, 0, -1), atol=1e-6)
    # The centroid rule (hand along the robot's heading, +x here) spans its long side.
    centroid = synthesize(cloud, (0.0, 0.0), GraspConfig(strategy="centroid",
                                                           max_width_m=0.14))
    assert not centroid.candidates and "max width" in centroid.refusal


def test_a_flat_object_is_taken_low_without_touching_the_table() -> None:
    config = GraspConfig(max_width_m=0.14)
    cloud = _box_cloud(0.18, 0.10, 0.03, 0.2)
    best = synthesize(cloud, (0.0, 0.0), config).candidates[0]
    tips = best.position[2] - config.tcp_above_tips_m
    assert tips >= 0.75 + config.table_clearance_m - 1e-9
    assert tips <= 0.75 + 0.03 - config.min_contact_m + 1e-9
    assert best.pregrasp_position[2] > 0.75 + 0.03  # the pregrasp is above its top


def test_too_thin_to_pinch_is_refused_with_the_reason() -> None:
    cloud = _box_cloud(0.10, 0.10, 0.008, 0.0)
    plan = synthesize(cloud, (0.0, 0.0), GraspConfig(max_width_m=0.14))
    assert not plan.candidates and "finger tips cannot get" in plan.refusal


def test_a_neighbour_in_a_fingers_way_drops_that_grasp() -> None:
    """A box touching the long sides of a stick: only the grasp along the stick is left, if it
    fits; here it does not, so nothing is published and the reasons say why."""
    wall = np.array([[0.6 + dx, side * 0.075, 0.8] for dx in np.linspace(-0.05, 0.05, 20)
                     for side in (-1, 1)])
    cloud = _box_cloud(0.16, 0.03, 0.03, 0.0, environment=wall)
    plan = synthesize(cloud, (0.0, 0.0), GraspConfig(max_width_m=0.14))
    assert not plan.candidates
    assert "a finger would hit a neighbouring object" in plan.refusal
    assert "m across > max width" in plan.refusal


def test_a_vacuum_gripper_seals_on_a_flat_top_only() -> None:
    config = GraspConfig(gripper="vacuum", strategy="top_plane")
    best = synthesize(_box_cloud(0.12, 0.08, 0.05, 0.4), (0.0, 0.0), config).candidates[0]
    assert best.position[2] == pytest.approx(0.80, abs=0.002)
    assert np.allclose(best.approach, (0, 0, -1), atol=0.02)
    # A roof: two faces at 35 deg meeting in a ridge - no flat spot for a 3 cm cup.
    xy = np.random.default_rng(1).uniform((-0.05, -0.05), (0.05, 0.05), (3000, 2))
    roof = np.column_stack([xy[:, 0] + 0.6, xy[:, 1], 0.8 - np.abs(xy[:, 0]) * 0.7])
    roof_cloud = ObjectCloud(points=roof, environment=np.zeros((0, 3)),
                             mask=np.zeros((2, 2), bool), support_z=0.75, depth_share=1.0,
                             source="test")
    plan = synthesize(roof_cloud, (0.0, 0.0), config)
    assert not plan.candidates and "not flat" in plan.refusal


def test_unknown_strategy_or_gripper_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown grasp strategy"):
        synthesize(_box_cloud(0.1, 0.05, 0.05, 0.0), (0, 0), GraspConfig(strategy="magic"))
    with pytest.raises(ValueError, match="unknown gripper"):
        synthesize(_box_cloud(0.1, 0.05, 0.05, 0.0), (0, 0), GraspConfig(gripper="hand"))


# ------------------------------------------------------------------------------- place
def test_into_a_bowl_is_the_middle_of_its_opening(rendered) -> None:
    for spec, frame, boxes, _, to_base, centres in rendered:
        bowl = next(o for o in spec.objects if o.category == "bowl")
        cloud = object_cloud(frame, boxes[bowl.name], to_base)
        assert isinstance(cloud, ObjectCloud)
        place = place_pose(cloud, "in", 0.05)
        assert not isinstance(place, str), place
        (x, y, z), why = place
        assert math.dist((x, y), centres[bowl.name][:2]) < 0.02, (spec.seed, why)
        assert z == pytest.approx(cloud.top_z + 0.05)


def test_onto_a_surface_is_its_freest_spot() -> None:
    book = _box_cloud(0.20, 0.12, 0.03, 0.0)
    (x, y, z), why = place_pose(book, "on", 0.05)
    assert math.dist((x, y), (0.6, 0.0)) < 0.01 and z == pytest.approx(0.78 + 0.05, abs=0.003)
    assert "freest spot" in why
    assert "no free spot" in place_pose(book, "on", 0.05, carried_radius_m=0.2)


# ------------------------------------------------------------------------------- goals, gate
def test_the_best_candidate_is_the_grasp_goal() -> None:
    plan = synthesize(_box_cloud(0.20, 0.06, 0.07, 0.5), (0.0, 0.0), GraspConfig())
    best = plan.candidates[0]
    goals = make_goals("pick", (0.6, 0.0, 0.8), None, GoalConfig(), stamp=1.0, grasp=best)
    grasp, pregrasp = goals
    assert grasp.kind == "grasp" and grasp.pose.position == best.position
    assert grasp.pose.orientation == best.orientation
    assert pregrasp.pose.position == best.pregrasp_position


def test_the_gate_judges_the_grasps_width_not_the_boxs() -> None:
    instruction = parse_instruction("pick up the bottle")
    lying = Candidate(id=0, label="bottle", score=0.9, bbox=(0, 0, 10, 10), width_m=0.22,
                      grasp_width_m=0.07, point_base=(0.6, 0.0, 0.78))
    result = GroundingResult(status="ok", instruction=instruction, targets=[lying])
    assert safety.check(result, SafetyConfig(max_grasp_width_m=0.14), now=0.0).allowed
    lying.grasp_width_m = 0.16
    decision = safety.check(result, SafetyConfig(max_grasp_width_m=0.14), now=0.0)
    assert decision.reasons == ["too wide to grasp: the bottle needs a 0.16 m wide grasp; "
                                "max_grasp_width_m is 0.14 m"]


# ------------------------------------------------------------------------------- words
@pytest.mark.parametrize("text, approach, unsupported", [
    ("pick up the cup from above", "top", None),
    ("grab the red cup from the top", "top", None),
    ("从上面拿起杯子", "top", None),
    ("grab the cup by the handle", None, "by the handle"),
    ("pick up the bottle by its neck", None, "by its neck"),
    ("grab the cup at the handle", None, "at the handle"),
    ("grasp the box from the side", None, "from the side"),
    ("pick up the book with the suction cup", None, "with the suction cup"),
    ("抓住杯子的把手", None, "的把手"),
    ("用吸盘拿起书", None, "用吸盘"),
])
def test_grasp_wishes_are_taken_or_named(text: str, approach: str | None,
                                         unsupported: str | None) -> None:
    from vlm_ros.core.plan import parse_plan

    plan = parse_plan(text)
    if unsupported is None:
        assert plan.error is None and plan.steps[0].action == "pick", plan
        assert plan.steps[0].grasp_approach == approach
    else:
        assert not plan.steps and f"('{unsupported}')" in plan.error, plan


@pytest.mark.parametrize("text", ["grab the cup at the top", "grab the cup on the edge",
                                  "go to the cup by the handle", "grab the cup by the bowl"])
def test_places_and_relations_stay_what_they_were(text: str) -> None:
    from vlm_ros.core.plan import parse_plan

    plan = parse_plan(text)
    assert plan.error is None and plan.steps[0].grasp_approach is None, plan


def test_from_above_keeps_only_grasps_from_above(rendered) -> None:
    """A tilted top's candidate is dropped; the vertical ones stay, and none left is a refusal."""
    from vlm_ros.backends.ssd_coco import SsdCocoBackend

    spec, frame, _boxes, _, to_base, _ = rendered[0]
    resolver = StaticFrameResolver("base_link", frame.frame_id, to_base)
    pipeline = Pipeline(SsdCocoBackend(), None, resolver)
    result = pipeline.ground(parse_instruction("grab the cup"), frame)
    wished = pipeline.ground(parse_plan_step("grab the cup from above"), frame)
    assert result.status == "ok" and result.grasps, result.message
    assert wished.status == "ok" and wished.grasps
    assert all(g.approach[2] <= -math.cos(math.radians(20.0)) for g in wished.grasps)


def parse_plan_step(text: str):
    from vlm_ros.core.plan import parse_plan

    return parse_plan(text).steps[0]


@pytest.mark.parametrize("text, ordinal_from", [("grab the third mug from the right", "right"),
                                                ("grab the first cup from the top", "top"),
                                                ("grab the second cup from the left", "left")])
def test_an_ordinal_counts_from_there_it_is_no_grasp_wish(text: str, ordinal_from: str) -> None:
    from vlm_ros.core.plan import parse_plan

    step = parse_plan(text).steps[0]
    assert step.target.ordinal_from == ordinal_from and step.grasp_approach is None


def test_on_a_table_is_its_top_beside_what_stands_there_not_on_a_cup() -> None:
    """A table top (1 m x 0.6 m) with a cup standing in its middle: the place is on the top,
    away from the cup - the cup's rim is higher but is no surface to put things on."""
    rng = np.random.default_rng(3)
    top = np.column_stack([rng.uniform(0.3, 1.3, 20000), rng.uniform(-0.3, 0.3, 20000),
                           np.full(20000, 0.75)])
    angle = rng.uniform(0, 2 * math.pi, 3000)
    cup = np.column_stack([0.8 + 0.04 * np.cos(angle), 0.04 * np.sin(angle),
                           rng.uniform(0.75, 0.85, 3000)])
    table = ObjectCloud(points=np.vstack([top, cup]), environment=np.zeros((0, 3)),
                        mask=np.zeros((2, 2), bool), support_z=0.0, depth_share=1.0,
                        source="test")
    (x, y, z), _why = place_pose(table, "on", 0.05, carried_radius_m=0.04)
    assert z == pytest.approx(0.80, abs=0.003)
    assert math.dist((x, y), (0.8, 0.0)) > 0.04 + 0.04  # not on or against the cup
    assert 0.3 + 0.04 <= x <= 1.3 - 0.04 and -0.3 + 0.04 <= y <= 0.3 - 0.04  # on the table


def test_a_cut_off_piece_of_the_object_is_no_neighbour() -> None:
    """Points over the object's own footprint (a rim fragment its piece lost) are not taken for
    a neighbour in the fingers' way; a touching neighbour's points beyond it are kept."""
    from vlm_ros.core.object_cloud import _outside

    angle = np.linspace(0, 2 * math.pi, 400)
    own = np.column_stack([0.6 + 0.04 * np.cos(angle), 0.04 * np.sin(angle), np.full(400, 0.8)])
    fragment = np.array([[0.6, 0.038, 0.86], [0.605, 0.035, 0.86]])
    neighbour = np.array([[0.6, 0.07 + 0.01 * k, 0.85] for k in range(5)])
    kept = _outside(np.vstack([fragment, neighbour]), own, 0.01)
    assert len(kept) == len(neighbour) and (kept[:, 1] >= 0.07).all()
