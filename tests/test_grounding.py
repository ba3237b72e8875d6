"""Grounding referring expressions with the real SSD-MobileNetV2 COCO detector on real photos.

The photo tests assert against the boxes the detector itself returns (e.g. "the leftmost horse" is
the horse detection with the smallest centre x), so they check the reasoning, not the detector's
exact numbers.  The decision-logic tests at the end use ``FixedDetectionsBackend``, which stands
in for the *model* only: the grounding code under test is the real one.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest
from photos import load_photo

from vlm_ros.backends.base import Backend
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.attributes import Scene, proximity
from vlm_ros.core.grounding import (
    GroundingConfig,
    GroundingOutcome,
    ground_query,
    plural,
    score_floor,
)
from vlm_ros.core.types import Candidate, Detection, Frame, ObjectQuery

CONFIG = GroundingConfig()
# OpenCV's 8-bit hue runs 0..180 (2 degrees a step): +110 turns the coffee cup's red/orange
# (0..30 degrees) into blue (220..250 degrees).
HUE_SHIFT_TO_BLUE = 110


@pytest.fixture(scope="module")
def ssd() -> SsdCocoBackend:
    return SsdCocoBackend()


def hue_rotated(rgb: np.ndarray, shift: int) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


@pytest.fixture(scope="module")
def two_cups() -> np.ndarray:
    """coffee.png (red cup) on the left, the same photo with the cup turned blue on the right."""
    coffee = load_photo("coffee")
    return np.ascontiguousarray(np.concatenate([coffee, hue_rotated(coffee, HUE_SHIFT_TO_BLUE)],
                                               axis=1))


def ground(backend: Backend, rgb: np.ndarray, config: GroundingConfig = CONFIG,
           **query: object) -> GroundingOutcome:
    return ground_query(ObjectQuery(**query), Frame(rgb), backend, config)


def detections_of(backend: Backend, rgb: np.ndarray, label: str) -> list[Detection]:
    floor = score_floor(CONFIG, backend)
    return [d for d in backend.detect(rgb, []) if d.label == label and d.score >= floor]


def cx(box: Sequence[float]) -> float:
    return 0.5 * (box[0] + box[2])


def area(box: Sequence[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


# ------------------------------------------------------------------------------ coffee


def test_red_cup_on_coffee(ssd):
    rgb = load_photo("coffee")
    outcome = ground(ssd, rgb, noun="cup", color="red")
    assert outcome.status == "ok", outcome.message
    cups = detections_of(ssd, rgb, "cup")
    assert len(cups) == 1
    assert outcome.target.bbox == pytest.approx(cups[0].bbox)
    assert any(r.startswith("red") for r in outcome.target.reasons)


def test_blue_cup_on_coffee_is_not_the_red_cup(ssd):
    outcome = ground(ssd, load_photo("coffee"), noun="cup", color="blue")
    assert outcome.status == "not_found"
    assert outcome.target is None
    assert outcome.message == "I see a cup, but it is red, not blue"


@pytest.mark.parametrize("noun", ["unicorn", "dragon"])
def test_noun_the_detector_cannot_see(ssd, noun):
    outcome = ground(ssd, load_photo("coffee"), noun=noun)
    assert outcome.status == "not_found"
    assert outcome.target is None and outcome.candidates == []
    assert outcome.message == f"'{noun}' is not something the ssd_coco detector knows"


def test_known_class_that_is_not_in_the_photo(ssd):
    outcome = ground(ssd, load_photo("coffee"), noun="giraffe")
    assert outcome.status == "not_found" and outcome.target is None
    assert "giraffes" in outcome.message


# ------------------------------------------------------------------------------ two cups


def test_bare_cup_with_two_cups_asks_which(ssd, two_cups):
    outcome = ground(ssd, two_cups, noun="cup")
    assert outcome.status == "ambiguous"
    assert outcome.target is None
    assert [c.label for c in outcome.candidates[:2]] == ["cup", "cup"]
    question = outcome.clarification
    assert question.startswith("Which cup: the one on the left")
    assert "or the one on the right" in question
    # Colours are named when they tell the cups apart.
    assert question == "Which cup: the one on the left (red) or the one on the right (blue)?"


def test_colour_picks_the_matching_half_of_the_composite(ssd, two_cups):
    middle = two_cups.shape[1] / 2
    red = ground(ssd, two_cups, noun="cup", color="red")
    assert red.status == "ok", red.message
    assert cx(red.target.bbox) < middle
    blue = ground(ssd, two_cups, noun="cup", color="blue")
    assert blue.status == "ok", blue.message
    assert cx(blue.target.bbox) > middle
    assert blue.target.color == "blue"


def test_green_cup_is_not_found_in_the_composite(ssd, two_cups):
    outcome = ground(ssd, two_cups, noun="cup", color="green")
    assert outcome.status == "not_found"
    assert outcome.message.startswith("I see 2 cups, but none is green")


@pytest.mark.parametrize(
    ("query", "side"),
    [
        ({"location": "left"}, "left"),
        ({"location": "right"}, "right"),
        ({"ordinal": 2, "ordinal_from": "left"}, "right"),
        ({"ordinal": 1, "ordinal_from": "right"}, "right"),
        ({"ordinal": -1}, "right"),
    ],
)
def test_location_and_ordinal_on_the_composite(ssd, two_cups, query, side):
    outcome = ground(ssd, two_cups, noun="cup", **query)
    assert outcome.status == "ok", outcome.message
    on_left = cx(outcome.target.bbox) < two_cups.shape[1] / 2
    assert on_left == (side == "left")


def test_third_cup_when_there_are_two(ssd, two_cups):
    outcome = ground(ssd, two_cups, noun="cup", ordinal=3, ordinal_from="left")
    assert outcome.status == "not_found"
    assert outcome.message == "there are only 2 cups"


def test_cup_on_the_table_is_still_ambiguous(ssd, two_cups):
    outcome = ground(ssd, two_cups, noun="cup", relation="on",
                     anchor=ObjectQuery(noun="table"))
    assert outcome.status == "ambiguous"
    assert outcome.anchor is not None and outcome.anchor.label == "dining table"


# ------------------------------------------------------------------------------ horses


def test_horses_selectors(ssd):
    rgb = load_photo("horses")
    horses = sorted(detections_of(ssd, rgb, "horse"), key=lambda d: cx(d.bbox))
    assert len(horses) >= 3
    leftmost = ground(ssd, rgb, noun="horse", location="left")
    assert leftmost.status == "ok"
    assert leftmost.target.bbox == pytest.approx(horses[0].bbox)
    second = ground(ssd, rgb, noun="horse", ordinal=2, ordinal_from="left")
    assert second.status == "ok"
    assert second.target.bbox == pytest.approx(horses[1].bbox)
    biggest = ground(ssd, rgb, noun="horse", size="large")
    assert biggest.status == "ok"
    assert area(biggest.target.bbox) == pytest.approx(max(area(h.bbox) for h in horses))
    last = ground(ssd, rgb, noun="horse", ordinal=-1)
    assert last.target.bbox == pytest.approx(horses[-1].bbox)


def test_bare_horse_lists_three_positions(ssd):
    outcome = ground(ssd, load_photo("horses"), noun="horse")
    assert outcome.status == "ambiguous"
    # Judged on the horses' own pixels (not the grass), their colours now tell them apart too.
    assert outcome.clarification == (
        "Which horse: the one on the left (white), the one in the middle (brown) or the one on"
        " the right (black)?")


# ------------------------------------------------------------------------------ people, animals


def test_person_on_the_left_of_the_bus_photo(ssd):
    rgb = load_photo("bus")
    people = detections_of(ssd, rgb, "person")
    outcome = ground(ssd, rgb, noun="person", location="left")
    assert outcome.status == "ok"
    assert cx(outcome.target.bbox) == pytest.approx(min(cx(p.bbox) for p in people))


def test_person_next_to_the_bus(ssd):
    """Every person stands in front of the bus, so the honest answers are a person or a question;
    never "not found", and the anchor must be the bus."""
    outcome = ground(ssd, load_photo("bus"), noun="person", relation="next_to",
                     anchor=ObjectQuery(noun="bus"))
    assert outcome.status in {"ok", "ambiguous"}
    assert outcome.anchor is not None and outcome.anchor.label == "bus"
    considered = [c for c in outcome.candidates if c.match > 0]
    assert considered and all(c.label == "person" for c in considered)
    assert all(any(r.startswith("next to bus") for r in c.reasons) for c in considered)
    if outcome.status == "ambiguous":
        assert outcome.clarification.startswith("Which person:")


def test_dog_and_no_cat(ssd):
    rgb = load_photo("dog")
    dog = ground(ssd, rgb, noun="dog")
    assert dog.status == "ok" and dog.target.label == "dog"
    cat = ground(ssd, rgb, noun="cat")
    assert cat.status == "not_found"
    assert cat.target is None
    assert all(c.label == "cat" for c in cat.candidates)


def test_animal_next_to_the_person_is_the_nearer_one(ssd):
    rgb = load_photo("person")
    outcome = ground(ssd, rgb, noun="animal", relation="next_to",
                     anchor=ObjectQuery(noun="person"))
    assert outcome.status == "ok", outcome.message
    assert outcome.anchor.label == "person"
    assert outcome.target.label in {"horse", "dog"}
    # The nearer animal by the metric grounding uses (centre distance / mean box size).
    person = outcome.anchor
    animals = [Candidate(i, d.label, d.score, d.bbox) for i, d in enumerate(ssd.detect(rgb, []))
               if d.label in {"horse", "dog"}]
    assert len(animals) == 2
    scene = Scene(rgb.shape[1], rgb.shape[0])
    nearest = max(animals, key=lambda a: proximity(a, person, scene)[0])
    assert outcome.target.bbox == pytest.approx(nearest.bbox)


def test_many_kites_ask_with_ordinal_positions(ssd):
    outcome = ground(ssd, load_photo("kite"), noun="kite")
    assert outcome.status == "ambiguous"
    assert outcome.clarification.startswith("Which kite: the leftmost one")
    assert "the 2nd one from the left" in outcome.clarification


def test_two_people_in_zidane(ssd):
    rgb = load_photo("zidane")
    assert ground(ssd, rgb, noun="person").status == "ambiguous"
    right = ground(ssd, rgb, noun="man", location="right")
    people = detections_of(ssd, rgb, "person")
    assert right.status == "ok"
    assert cx(right.target.bbox) == pytest.approx(max(cx(p.bbox) for p in people))


def test_shared_detections_do_not_call_the_model_again(ssd, two_cups):
    detections = ssd.detect(two_cups, [])

    class CountingBackend(SsdCocoBackend):
        calls = 0

        def detect(self, rgb, queries):  # pragma: no cover - must not run
            CountingBackend.calls += 1
            return super().detect(rgb, queries)

    counting = CountingBackend()
    outcome = ground_query(ObjectQuery(noun="cup", location="left"), Frame(two_cups), counting,
                           CONFIG, detections)
    assert outcome.status == "ok"
    assert CountingBackend.calls == 0


# ------------------------------------------------------------------------------ decision logic


class FixedDetectionsBackend(Backend):
    """Stands in for the *model*: returns hand-built detections so the decision logic (the real
    grounding code under test) sees exact boxes and scores.  Records the queries it was asked."""

    name = "fixed"
    vocabulary = frozenset({"cup", "bowl", "person", "dining table"})

    def __init__(self, detections: list[Detection], resolves: bool = False) -> None:
        self.detections = detections
        self.resolves_referring_expressions = resolves
        self.calls: list[list[str]] = []

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        self.calls.append(list(queries))
        return list(self.detections)


COLOURS = {"red": (220, 20, 20), "blue": (20, 40, 220), "green": (20, 180, 40)}


def scene_image(*boxes: tuple[tuple[int, int, int, int], str]) -> np.ndarray:
    """A grey 480x640 image with solid coloured boxes (for the colour decisions)."""
    rgb = np.full((480, 640, 3), 128, np.uint8)
    for (x1, y1, x2, y2), colour in boxes:
        rgb[y1:y2, x1:x2] = COLOURS[colour]
    return rgb


def det(label: str, bbox: tuple[float, float, float, float], score: float = 0.9) -> Detection:
    return Detection(label=label, score=score, bbox=bbox)


BLANK = np.full((480, 640, 3), 128, np.uint8)


def test_no_detections_is_not_found():
    backend = FixedDetectionsBackend([])
    outcome = ground(backend, BLANK, noun="cup")
    assert outcome.status == "not_found"
    assert outcome.message == "I don't see any cups"
    assert backend.calls == [["cup"]]


def test_broken_detections_are_dropped_with_a_reason():
    backend = FixedDetectionsBackend([
        det("cup", (float("nan"), 10, 50, 50)),
        det("cup", (10, 10, 50, 50), score=float("nan")),
        det("cup", (100, 100, 100, 150)),
        det("cup", (700, 10, 800, 60)),
        det("cup", (300, 200, 360, 260), score=0.8),
        det("cup", (400, 200, 460, 260), score=0.1),
    ])
    outcome = ground(backend, BLANK, noun="cup")
    assert outcome.status == "ok"
    assert outcome.target.id == 4
    dropped = [c for c in outcome.candidates if c.reasons[0].startswith("dropped")]
    assert len(dropped) == 5
    assert all(np.isfinite(c.score) and np.isfinite(c.bbox).all() for c in outcome.candidates)
    all_broken = FixedDetectionsBackend(backend.detections[:4])
    assert ground(all_broken, BLANK, noun="cup").status == "not_found"


def test_unknown_noun_does_not_call_the_model():
    backend = FixedDetectionsBackend([det("cup", (10, 10, 50, 50))])
    outcome = ground(backend, BLANK, noun="unicorn")
    assert outcome.status == "not_found"
    assert "not something the fixed detector knows" in outcome.message
    assert backend.calls == []


def test_one_detect_call_covers_target_and_anchor():
    backend = FixedDetectionsBackend([det("cup", (100, 100, 150, 150)),
                                      det("bowl", (160, 100, 240, 150))])
    outcome = ground(backend, BLANK, noun="cup", relation="next_to",
                     anchor=ObjectQuery(noun="bowl"))
    assert outcome.status == "ok"
    assert backend.calls == [["cup", "bowl"]]


@pytest.mark.parametrize(("second_score", "status"), [(0.6, "ambiguous"), (0.31, "ok")])
def test_detector_confidence_only_breaks_clear_gaps(second_score, status):
    backend = FixedDetectionsBackend([det("cup", (100, 100, 150, 150), 0.95),
                                      det("cup", (400, 100, 450, 150), second_score)])
    outcome = ground(backend, BLANK, noun="cup")
    assert outcome.status == status
    if status == "ok":
        assert outcome.target.id == 0


def test_two_red_cups_are_ambiguous_and_the_blue_one_is_found():
    boxes = [((60, 200, 140, 300), "red"), ((280, 200, 360, 300), "blue"),
             ((500, 200, 580, 300), "red")]
    rgb = scene_image(*boxes)
    backend = FixedDetectionsBackend([det("cup", (x1 - 10, y1 - 10, x2 + 10, y2 + 10))
                                      for (x1, y1, x2, y2), _ in boxes])
    red = ground(backend, rgb, noun="cup", color="red")
    assert red.status == "ambiguous"
    assert red.clarification == "Which cup: the one on the left or the one on the right?"
    blue = ground(backend, rgb, noun="cup", color="blue")
    assert blue.status == "ok" and blue.target.id == 1
    assert blue.target.color == "blue"
    anything = ground(backend, rgb, noun="cup")
    assert anything.clarification == (
        "Which cup: the one on the left (red), the one in the middle (blue) or the one on the "
        "right (red)?")
    green = ground(backend, rgb, noun="cup", color="green")
    assert green.status == "not_found"
    assert green.message == "I see 3 cups, but none is green (they are blue and red)"


def test_second_red_cup_from_the_left_counts_only_red_cups():
    boxes = [((60, 200, 140, 300), "red"), ((280, 200, 360, 300), "blue"),
             ((500, 200, 580, 300), "red")]
    backend = FixedDetectionsBackend([det("cup", (x1 - 10, y1 - 10, x2 + 10, y2 + 10))
                                      for (x1, y1, x2, y2), _ in boxes])
    outcome = ground(backend, scene_image(*boxes), noun="cup", color="red", ordinal=2,
                     ordinal_from="left")
    assert outcome.status == "ok" and outcome.target.id == 2


def test_location_tie_within_pixels_is_ambiguous():
    backend = FixedDetectionsBackend([det("cup", (100, 50, 150, 100)),
                                      det("cup", (101, 300, 151, 350)),
                                      det("cup", (400, 50, 450, 100))])
    outcome = ground(backend, BLANK, noun="cup", location="left")
    assert outcome.status == "ambiguous"
    assert outcome.clarification == "Which cup: the one at the top or the one at the bottom?"


def test_ambiguous_anchor_resolved_by_the_only_pair_that_fits():
    backend = FixedDetectionsBackend([
        det("bowl", (100, 200, 200, 280)),
        det("bowl", (450, 200, 550, 280)),
        det("cup", (210, 210, 250, 270)),  # right beside bowl 0
    ])
    outcome = ground(backend, BLANK, noun="cup", relation="next_to",
                     anchor=ObjectQuery(noun="bowl"))
    assert outcome.status == "ok"
    assert outcome.target.id == 2 and outcome.anchor.id == 0


def test_ambiguous_anchor_with_a_cup_beside_each_bowl_asks_about_the_bowl():
    backend = FixedDetectionsBackend([
        det("bowl", (100, 200, 200, 280)), det("bowl", (400, 200, 500, 280)),
        det("cup", (210, 210, 250, 270)), det("cup", (510, 210, 550, 270)),
    ])
    outcome = ground(backend, BLANK, noun="cup", relation="next_to",
                     anchor=ObjectQuery(noun="bowl"))
    assert outcome.status == "ambiguous"
    assert outcome.clarification == (
        "Next to which bowl: the one on the left or the one on the right?")


def test_relation_with_a_missing_anchor_is_not_found():
    backend = FixedDetectionsBackend([det("cup", (100, 100, 150, 150))])
    outcome = ground(backend, BLANK, noun="cup", relation="left_of",
                     anchor=ObjectQuery(noun="bowl"))
    assert outcome.status == "not_found"
    assert outcome.message.startswith("I can't find the bowl the cup should be left of")


def test_anchor_is_never_the_target():
    backend = FixedDetectionsBackend([det("cup", (100, 100, 150, 150))])
    outcome = ground(backend, BLANK, noun="cup", relation="next_to",
                     anchor=ObjectQuery(noun="cup"))
    assert outcome.status == "not_found"
    two = FixedDetectionsBackend([det("cup", (100, 100, 150, 150)),
                                  det("cup", (160, 100, 210, 150)),
                                  det("cup", (500, 100, 550, 150))])
    outcome = ground(two, BLANK, noun="cup", relation="left_of",
                     anchor=ObjectQuery(noun="cup", location="right"))
    assert outcome.status == "ok"
    assert outcome.anchor.id == 2 and outcome.target.id == 1


def test_relation_that_no_candidate_satisfies():
    backend = FixedDetectionsBackend([det("cup", (400, 100, 450, 150)),
                                      det("bowl", (100, 100, 200, 150))])
    outcome = ground(backend, BLANK, noun="cup", relation="left_of",
                     anchor=ObjectQuery(noun="bowl"))
    assert outcome.status == "not_found"
    assert outcome.message == "I see a cup, but it is not left of the bowl"


def test_generic_noun_considers_every_label():
    boxes = [((60, 200, 140, 300), "red"), ((280, 200, 360, 300), "blue")]
    backend = FixedDetectionsBackend([det("cup", (50, 190, 150, 310)),
                                      det("bowl", (270, 190, 370, 310))])
    outcome = ground(backend, scene_image(*boxes), noun="thing", color="blue")
    assert outcome.status == "ok" and outcome.target.label == "bowl"
    assert backend.calls == [[]]


def test_referring_expression_backend_is_trusted_but_not_invented():
    backend = FixedDetectionsBackend([det("red cup", (300, 200, 360, 260), 0.7),
                                      det("red cup", (100, 200, 160, 260), 0.4)], resolves=True)
    outcome = ground(backend, BLANK, noun="cup", color="blue", text="the blue cup")
    # The model resolved the expression; the core does not second-guess its colour.
    assert outcome.status == "ok" and outcome.target.id == 0
    assert backend.calls == [["the blue cup"]]
    empty = FixedDetectionsBackend([], resolves=True)
    assert ground(empty, BLANK, noun="unicorn", text="the unicorn").status == "not_found"


def test_max_candidates_caps_the_report():
    backend = FixedDetectionsBackend([det("cup", (60 * i, 10, 60 * i + 40, 50))
                                      for i in range(10)])
    config = GroundingConfig(max_candidates=3)
    outcome = ground(backend, BLANK, config, noun="cup")
    assert outcome.status == "ambiguous" and len(outcome.candidates) == 3
    assert outcome.clarification.startswith("I see 10 cups. Which one do you mean, for example")


def test_plural():
    assert [plural(n) for n in ("cup", "person", "bus", "glass", "strawberry", "toy")] == [
        "cups", "people", "buses", "glasses", "strawberries", "toys"]


def test_nearest_cup_uses_the_depth_image():
    backend = FixedDetectionsBackend([det("cup", (100, 300, 160, 380)),  # low in image, far
                                      det("cup", (400, 100, 460, 180))])  # high in image, near
    depth = np.full((480, 640), 3.0, np.float32)
    depth[300:380, 100:160] = 1.5
    depth[100:180, 400:460] = 0.8
    frame = Frame(BLANK, depth_m=depth)
    outcome = ground_query(ObjectQuery(noun="cup", location="nearest"), frame, backend, CONFIG)
    assert outcome.status == "ok" and outcome.target.id == 1
    assert outcome.target.depth_m == pytest.approx(0.8, abs=0.01)
    assert "no depth" not in " ".join(outcome.target.reasons)
    # Without depth the monocular proxy (lower in the image = nearer) decides, and says so.
    guessed = ground(backend, BLANK, noun="cup", location="nearest")
    assert guessed.target.id == 0
    assert "no depth" in " ".join(guessed.target.reasons)


def test_zero_scores_with_a_zero_floor_do_not_crash():
    backend = FixedDetectionsBackend([det("cup", (100, 100, 150, 150), 0.0)])
    outcome = ground(backend, BLANK, GroundingConfig(min_score=0.0), noun="cup")
    assert outcome.status == "ok"
