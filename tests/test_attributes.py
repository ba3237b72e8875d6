"""Unit tests of the selectors and relations in vlm_ros.core.attributes on hand-built candidates.

No model is involved: the boxes are the input here, and each test states the geometry it relies on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlm_ros.core.attributes import (
    ORDERS,
    RELATIONS,
    Scene,
    box_depth,
    box_problem,
    clip_box,
    fill_depths,
    iou,
    judge_color,
    ordinal_word,
    position_phrases,
    proximity,
    relation_score,
    select_nth,
)
from vlm_ros.core.color import ColorProfile
from vlm_ros.core.types import CameraIntrinsics, Candidate, Frame

SCENE = Scene(width=640, height=480)
K = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)


def cand(id_: int, bbox: tuple[float, float, float, float], depth: float | None = None,
         label: str = "cup") -> Candidate:
    return Candidate(id=id_, label=label, score=0.9, bbox=bbox, depth_m=depth)


def row_of_cups() -> list[Candidate]:
    """Three cups left to right; the middle one is the biggest, the right one lowest in the image."""
    return [
        cand(0, (100, 200, 160, 260)),  # centre x 130, area 3600
        cand(1, (300, 170, 400, 270)),  # centre x 350, area 10000, highest
        cand(2, (500, 230, 540, 290)),  # centre x 520, area 2400, bottom 290
    ]


# ------------------------------------------------------------------------------ boxes


@pytest.mark.parametrize(
    ("bbox", "score", "problem"),
    [
        ((10, 10, 50, 50), 0.9, None),
        ((float("nan"), 10, 50, 50), 0.9, "non-finite"),
        ((10, 10, 50, 50), float("nan"), "score"),
        ((10, 10, 10, 50), 0.9, "zero area"),
        ((50, 10, 10, 50), 0.9, "zero area"),
        ((700, 10, 800, 50), 0.9, "outside"),
        ((-80, -50, -10, -5), 0.9, "outside"),
        ((10, 10, 50), 0.9, "not 4"),
    ],
)
def test_box_problem_names_what_is_wrong(bbox, score, problem):
    found = box_problem(bbox, score, 640, 480)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_clip_box_and_iou():
    assert clip_box((-10, -5, 700, 500), 640, 480) == (0.0, 0.0, 640.0, 480.0)
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_ordinal_word():
    assert [ordinal_word(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"]


# ------------------------------------------------------------------------------ selectors


@pytest.mark.parametrize(
    ("order", "expected_id"),
    [("left", 0), ("right", 2), ("top", 1), ("bottom", 2), ("middle", 1), ("large", 1),
     ("small", 2)],
)
def test_superlatives_pick_one(order, expected_id):
    selection = select_nth(row_of_cups(), order, SCENE)
    assert selection is not None
    assert [c.id for c in selection.chosen] == [expected_id]
    assert selection.reasons[expected_id].startswith(ORDERS[order].superlative)


def test_ordinals_count_from_the_named_side():
    cups = row_of_cups()
    assert select_nth(cups, "left", SCENE, 2).chosen[0].id == 1
    assert select_nth(cups, "right", SCENE, 2).chosen[0].id == 1
    assert select_nth(cups, "right", SCENE, 1).chosen[0].id == 2
    assert select_nth(cups, "left", SCENE, -1).chosen[0].id == 2
    second = select_nth(cups, "left", SCENE, 2)
    assert second.reasons[1] == "2nd from the left of 3"
    assert second.reasons[0] == "leftmost of 3"


def test_ordinal_out_of_range_is_none():
    cups = row_of_cups()
    assert select_nth(cups, "left", SCENE, 4) is None
    assert select_nth(cups, "left", SCENE, 0) is None
    assert select_nth([], "left", SCENE) is None


def test_positions_within_a_few_pixels_tie():
    cups = [cand(0, (100, 100, 160, 160)), cand(1, (102, 300, 162, 360)),
            cand(2, (400, 100, 460, 160))]
    selection = select_nth(cups, "left", SCENE)
    assert sorted(c.id for c in selection.chosen) == [0, 1]
    # ... but 20 px apart is a clear leftmost
    cups[1] = cand(1, (120, 300, 180, 360))
    assert [c.id for c in select_nth(cups, "left", SCENE).chosen] == [0]


def test_middle_of_two_is_a_tie_and_of_three_is_the_centre_one():
    two = row_of_cups()[:2]
    assert len(select_nth(two, "middle", SCENE).chosen) == 2
    assert [c.id for c in select_nth(row_of_cups(), "middle", SCENE).chosen] == [1]


def test_size_uses_depth_when_every_candidate_has_it():
    # The small box is three times farther away: physically it is the larger object.
    near_small_obj = cand(0, (100, 100, 200, 200), depth=0.5)  # area 10000 * 0.25 = 2500
    far_big_obj = cand(1, (300, 100, 360, 160), depth=1.5)  # area 3600 * 2.25 = 8100
    assert select_nth([near_small_obj, far_big_obj], "large", SCENE).chosen[0].id == 1
    # Without depth the area decides.
    near_small_obj.depth_m = far_big_obj.depth_m = None
    selection = select_nth([near_small_obj, far_big_obj], "large", SCENE)
    assert selection.chosen[0].id == 0
    assert "box area" in selection.reasons[0]


def test_nearest_uses_depth_and_falls_back_to_the_box_bottom():
    a = cand(0, (100, 100, 200, 300), depth=2.0)  # bottom 300
    b = cand(1, (300, 100, 400, 200), depth=1.0)  # bottom 200
    selection = select_nth([a, b], "near", SCENE)
    assert selection.chosen[0].id == 1 and not selection.note
    assert select_nth([a, b], "far", SCENE).chosen[0].id == 0
    b.depth_m = None  # one candidate without depth: both use the monocular proxy
    selection = select_nth([a, b], "near", SCENE)
    assert selection.chosen[0].id == 0
    assert "no depth" in selection.reasons[0]


def test_depth_tie_within_two_centimetres():
    a = cand(0, (100, 100, 200, 200), depth=1.000)
    b = cand(1, (300, 100, 400, 200), depth=1.015)
    assert len(select_nth([a, b], "near", SCENE).chosen) == 2


def test_single_candidate_is_its_own_superlative():
    only = [cand(0, (10, 10, 50, 50))]
    selection = select_nth(only, "right", SCENE)
    assert [c.id for c in selection.chosen] == [0]
    assert selection.reasons[0] == "rightmost of 1"


# ------------------------------------------------------------------------------ relations


def test_next_to_prefers_the_nearer_object():
    bowl = cand(9, (300, 200, 400, 300), label="bowl")
    near_cup = cand(0, (410, 220, 460, 280))
    far_cup = cand(1, (10, 220, 60, 280))
    near = relation_score(near_cup, bowl, "next_to", SCENE)
    far = relation_score(far_cup, bowl, "next_to", SCENE)
    assert near.score > far.score > 0
    assert near.reason.startswith("next to bowl #9")


@pytest.mark.parametrize(
    ("relation", "holds_for"),
    [("left_of", "left"), ("right_of", "right"), ("above", "up"), ("below", "down")],
)
def test_directional_relations(relation, holds_for):
    anchor = cand(9, (300, 200, 340, 240), label="bowl")  # centre (320, 220)
    placed = {
        "left": cand(0, (200, 205, 230, 235)),
        "right": cand(1, (410, 205, 440, 235)),
        "up": cand(2, (305, 100, 335, 130)),
        "down": cand(3, (305, 320, 335, 350)),
    }
    for where, c in placed.items():
        score = relation_score(c, anchor, relation, SCENE).score
        if where == holds_for:
            assert score is not None and score > 0
        else:
            assert score is None, (relation, where)


def test_direction_tolerates_objects_that_are_not_level():
    anchor = cand(9, (300, 200, 340, 240), label="bowl")
    slightly_higher_left = cand(0, (200, 170, 230, 200))  # 100 px left, 35 px up
    assert relation_score(slightly_higher_left, anchor, "left_of", SCENE).score is not None
    mostly_above = cand(1, (290, 60, 320, 90))  # 15 px left, 145 px up
    assert relation_score(mostly_above, anchor, "left_of", SCENE).score is None


def test_in_front_of_and_behind_use_depth():
    anchor = cand(9, (300, 200, 400, 300), depth=1.0, label="box")
    front = cand(0, (420, 150, 470, 200), depth=0.7)  # higher in the image, but nearer
    back = cand(1, (180, 260, 230, 320), depth=1.4)
    assert relation_score(front, anchor, "in_front_of", SCENE).score is not None
    assert relation_score(back, anchor, "in_front_of", SCENE).score is None
    assert relation_score(back, anchor, "behind", SCENE).score is not None
    assert relation_score(front, anchor, "behind", SCENE).score is None


def test_in_front_of_without_depth_uses_the_box_bottom_and_says_so():
    anchor = cand(9, (300, 200, 400, 300), label="box")
    lower = cand(0, (420, 300, 470, 360))
    verdict = relation_score(lower, anchor, "in_front_of", SCENE)
    assert verdict.score is not None and "no depth" in verdict.reason
    assert relation_score(lower, anchor, "behind", SCENE).score is None


def test_on_and_in():
    table = cand(9, (0, 200, 640, 480), label="dining table")
    cup_on_table = cand(0, (100, 150, 160, 230))
    cup_in_air = cand(1, (100, 10, 160, 60))
    assert relation_score(cup_on_table, table, "on", SCENE).score > 0.9
    assert relation_score(cup_in_air, table, "on", SCENE).score is None
    bowl = cand(8, (200, 200, 320, 280), label="bowl")
    apple_in_bowl = cand(2, (230, 210, 270, 250), label="apple")
    apple_beside = cand(3, (330, 210, 370, 250), label="apple")
    assert relation_score(apple_in_bowl, bowl, "in", SCENE).score == pytest.approx(1.0)
    assert relation_score(apple_beside, bowl, "in", SCENE).score is None


def test_an_object_is_never_related_to_itself():
    cup = cand(0, (100, 100, 150, 150))
    for relation in RELATIONS:
        assert relation_score(cup, cup, relation, SCENE).score is None


def test_proximity_in_3d_with_depth_and_intrinsics():
    scene = Scene(640, 480, K)
    anchor = cand(9, (300, 220, 340, 260), depth=1.0, label="bowl")
    # Same pixel offset, but one is 1 m farther back: in 3D it is not next to the bowl.
    beside = cand(0, (350, 220, 390, 260), depth=1.0)
    far_behind = cand(1, (290, 225, 310, 245), depth=2.0)
    near_score, near_note = proximity(beside, anchor, scene)
    far_score, far_note = proximity(far_behind, anchor, scene)
    assert near_score > far_score
    assert near_note.endswith("sizes") and " m," in near_note
    # Without intrinsics the same pair is compared in pixels, where the far one looks closer.
    assert proximity(far_behind, anchor, SCENE)[0] > proximity(beside, anchor, SCENE)[0]


# ------------------------------------------------------------------------------ colour


def profile(dominant: str | None, **fractions: float) -> ColorProfile:
    return ColorProfile(fractions=dict(fractions), dominant=dominant)


def test_colour_dominant_passes_with_full_agreement():
    verdict = judge_color(profile("red", red=0.6, white=0.4), "red", 0.25, 0.5)
    assert verdict.passes and verdict.agreement == pytest.approx(1.0)
    assert verdict.reason.startswith("red 1.00")


def test_unrelated_colour_fails():
    verdict = judge_color(profile("red", red=0.6, white=0.4), "blue", 0.25, 0.5)
    assert not verdict.passes and verdict.agreement == 0.0
    assert "looks red" in verdict.reason


def test_neighbour_colour_alone_is_not_enough():
    # A pink cup is not "the red cup", although colour_match gives neighbours half credit.
    pink = profile("pink", pink=0.8, white=0.2)
    assert not judge_color(pink, "red", 0.25, 0.5).passes


def test_mixed_red_orange_object_is_red_but_ranks_below_a_pure_red_one():
    reddish = profile("orange", orange=0.6, red=0.2, white=0.2)
    pure = profile("red", red=0.7, white=0.3)
    mixed_verdict = judge_color(reddish, "red", 0.25, 0.5)
    pure_verdict = judge_color(pure, "red", 0.25, 0.5)
    assert mixed_verdict.passes
    assert pure_verdict.agreement - mixed_verdict.agreement > 0.15


def test_grey_alias_is_understood():
    assert judge_color(profile("gray", gray=0.7, white=0.3), "grey", 0.25, 0.5).passes


# ------------------------------------------------------------------------------ depth


def test_box_depth_ignores_nan_and_scales_to_half_resolution_depth():
    rgb = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((240, 320), 3.0, np.float32)  # half resolution, wall at 3 m
    depth[50:100, 50:100] = 0.8  # object in RGB pixels (100..200, 100..200)
    depth[60:70, 60:70] = np.nan
    frame = Frame(rgb, depth_m=depth)
    assert box_depth(frame, (100, 100, 200, 200)) == pytest.approx(0.8, abs=0.01)
    assert box_depth(Frame(rgb), (100, 100, 200, 200)) is None
    all_nan = Frame(rgb, depth_m=np.full((240, 320), np.nan, np.float32))
    assert box_depth(all_nan, (100, 100, 200, 200)) is None


def test_fill_depths_keeps_given_depths():
    rgb = np.zeros((480, 640, 3), np.uint8)
    frame = Frame(rgb, depth_m=np.full((480, 640), 2.0, np.float32))
    given = cand(0, (10, 10, 100, 100), depth=0.5)
    missing = cand(1, (200, 200, 300, 300))
    fill_depths([given, missing], frame)
    assert given.depth_m == 0.5
    assert math.isclose(missing.depth_m, 2.0, abs_tol=0.01)


# ------------------------------------------------------------------------------ wording


def test_position_phrases_for_two_three_and_many():
    two = position_phrases(row_of_cups()[:2])
    assert [(c.id, t.format("one")) for c, t in two] == [
        (0, "the one on the left"), (1, "the one on the right")]
    three = [t.format("one") for _, t in position_phrases(list(reversed(row_of_cups())))]
    assert three == ["the one on the left", "the one in the middle", "the one on the right"]
    many = [cand(i, (100 * i, 10, 100 * i + 50, 60)) for i in range(5)]
    words = [t.format("kite") for _, t in position_phrases(many)]
    assert words == ["the leftmost kite", "the 2nd kite from the left", "the 3rd kite from the left",
                     "the 4th kite from the left", "the rightmost kite"]


def test_position_phrases_describe_a_stack_top_to_bottom():
    stack = [cand(0, (100, 300, 160, 360)), cand(1, (105, 100, 165, 160))]
    assert [(c.id, t.format("one")) for c, t in position_phrases(stack)] == [
        (1, "the one at the top"), (0, "the one at the bottom")]
