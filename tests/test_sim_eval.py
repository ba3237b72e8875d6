"""`vlm-ros eval sim`: generated referring expressions are well-defined and deterministic, and the
whole chain (DDS, SSD detector, grounding, 3D, grasp in the physics) meets measured thresholds."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import pytest  # noqa: E402

pytest.importorskip("mujoco")

from vlm_ros.core.plan import parse_plan  # noqa: E402
from vlm_ros.sim.expressions import (  # noqa: E402
    CATEGORIES_USED,
    CONFUSABLE,
    KINDS,
    MIN_X_GAP_PX,
    TEMPLATE_ORDER,
    Case,
    cases_for_scene,
    distinct_colors,
    plan_scene,
)
from vlm_ros.sim.scene import DETECTOR_LABELS, generate_scene  # noqa: E402
from vlm_ros.sim.world import SimWorld  # noqa: E402


def _scene_cases(seed: int, index: int):
    plan = plan_scene(seed, index)
    spec = generate_scene(plan.seed, layout=list(plan.layout))
    with SimWorld(spec) as world:
        boxes = world.camera.gt_boxes(world.data, spec)
        centers = {o.name: world.object_center(o) for o in spec.objects}
    return plan, spec, boxes, centers, cases_for_scene(spec, boxes, centers,
                                                       template=plan.template)


@pytest.fixture(scope="module")
def scenes():
    return [_scene_cases(0, i) for i in range(6)]


def test_plans_are_deterministic_and_cycle_templates():
    assert [plan_scene(3, i) for i in range(6)] == [plan_scene(3, i) for i in range(6)]
    assert [plan_scene(0, i).template for i in range(3)] == list(TEMPLATE_ORDER)
    assert plan_scene(0, 0) != plan_scene(1, 0)
    for i in range(12):
        for category, _color in plan_scene(0, i).layout:
            assert category in CATEGORIES_USED


def test_distinct_colors_are_never_confusable():
    import numpy as np

    for s in range(20):
        colors = distinct_colors(np.random.default_rng(s), 3)
        assert len(set(colors)) == 3
        for a in colors:
            assert not set(colors) & CONFUSABLE.get(a, frozenset())


def test_cases_are_deterministic(scenes):
    plan, spec, boxes, centers, cases = scenes[0]
    again = cases_for_scene(spec, boxes, centers, template=plan.template)
    assert cases == again


def test_every_kind_but_relation_appears_and_cases_are_well_defined(scenes):
    kinds = set()
    for _plan, spec, boxes, centers, cases in scenes:
        names = {o.name for o in spec.objects}
        for case in cases:
            kinds.add(case.kind)
            assert case.kind in KINDS
            assert case.expected in ("ok", "not_found", "ambiguous")
            assert (case.target_name in names) == (case.expected == "ok")
            plan = parse_plan(case.command)
            assert plan.error is None and plan.steps[0].action == "pick", case.command
            if case.kind == "multi_step":  # pick, then place it in the destination
                assert [s.action for s in plan.steps] == ["pick", "place"]
                assert case.destination_name in names
    assert {"category", "color", "left_right", "ordinal", "absent", "ambiguous",
            "multi_step"} <= kinds


def test_case_semantics_match_ground_truth(scenes):
    for _plan, spec, boxes, centers, cases in scenes:
        for case in cases:
            if case.kind == "left_right":
                group = [o for o in spec.objects if o.category == spec.object(
                    case.target_name).category]
                xs = sorted(0.5 * (boxes[o.name][0] + boxes[o.name][2]) for o in group)
                x = 0.5 * (boxes[case.target_name][0] + boxes[case.target_name][2])
                assert x == (xs[0] if case.command.endswith("left") else xs[-1])
                assert all(b - a >= MIN_X_GAP_PX for a, b in zip(xs, xs[1:]))
            if case.kind == "color":
                target = spec.object(case.target_name)
                assert target.color_name in case.command
                same = [o for o in spec.objects if o.category == target.category
                        and o.color_name == target.color_name]
                assert same == [target]
            if case.kind == "category":
                target = spec.object(case.target_name)
                label = DETECTOR_LABELS[target.category]
                assert [o.name for o in spec.objects
                        if DETECTOR_LABELS[o.category] == label] == [target.name]
            if case.kind == "ambiguous":
                noun = case.command.split()[-1]
                assert sum(o.category == noun for o in spec.objects) >= 2
            if case.kind == "absent":
                words = case.command.split()
                assert not any(o.category == words[-1] and o.color_name == words[-2]
                               for o in spec.objects)


def test_relation_case_needs_a_clear_nearest(scenes):
    """A hand-built layout: two mugs, one right by the bowl -> "the mug next to the bowl"."""
    for seed in range(30):
        spec = generate_scene(seed, layout=[("mug", "red"), ("mug", "blue"), ("bowl", "white")])
        with SimWorld(spec) as world:
            boxes = world.camera.gt_boxes(world.data, spec)
            centers = {o.name: world.object_center(o) for o in spec.objects}
        cases = [c for c in cases_for_scene(spec, boxes, centers, kinds=["relation"])]
        if cases:
            (case,) = cases
            assert case == Case("relation", "grab the mug next to the bowl", "ok",
                                case.target_name)
            bowl = centers[spec.objects[2].name]
            d = sorted(((centers[o.name][0] - bowl[0]) ** 2 + (centers[o.name][1] - bowl[1]) ** 2)
                       ** 0.5 for o in spec.objects[:2])
            assert d[1] >= 1.5 * d[0]
            return
    pytest.fail("no relation case in 30 scenes")


@pytest.mark.ros
def test_whole_chain_in_simulation():
    """Three scenes through the real node over DDS with the default SSD detector.

    Measured (seed 0, 3 scenes, 13-16 cases): accuracy 0.81-0.88, not_found 1.0, ambiguous 1.0,
    median 3D error 0.003 m (0.037 m while targets were the visible surface's centre), pick
    success 1.0 (0.83 then).  20 scenes: accuracy 0.92, pick 0.96, 3D median 0.003 m.
    """
    from vlm_ros.sim.evaluate import run_evaluation

    report = run_evaluation(scenes=3, seed=0)
    assert report["scenes"] == 3 and report["cases"] >= 12
    assert report["backend"] == "ssd_coco"
    assert report["not_found_correct"] == 1.0
    assert report["ambiguous_correct"] >= 0.5, report["failures"]
    assert report["accuracy"] >= 0.7, report["failures"]
    assert report["median_3d_error_m"] <= 0.02, report["failures"]
    assert report["pick_success"] >= 0.8, report["failures"]
    assert report["picks"] >= 4
    plans = report["per_category"]["multi_step"]
    assert plans["cases"] >= 1 and plans["correct"] == plans["cases"], report["failures"]


@pytest.mark.ros
def test_search_and_memory_in_simulation():
    """Issue #21 in the physics: the target starts outside the camera's view; the node searches
    (the simulator pans the camera for each view goal), remembers it, grasps it from memory
    while looking away, and refuses to go by memory once the camera sees it was moved.

    Measured (`vlm-ros eval sim --memory --scenes 10`, seeds 0-9): search success 1.0, 1.4
    views needed, memory goal error median 0.0055 m (max 0.018), memory pick success 1.0, false
    memory goals 0."""
    from vlm_ros.sim.evaluate_memory import run_memory_evaluation

    report = run_memory_evaluation(scenes=2, seed=0)
    assert report["false_memory_goals"] == 0, report["cases"]
    assert report["search_success"] == 1.0, report["cases"]
    assert report["memory_goal_error_m_max"] < 0.03, report["cases"]
    assert report["memory_pick_success"] == 1.0, report["cases"]
    for case in report["cases"]:
        assert "not going by memory" in case["moved_answer"], case
