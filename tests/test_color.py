"""Colour naming on real photos (boxes as the SSD-COCO backend finds them) and synthetic cases."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from photos import load_photo

from vlm_ros.core.color import (
    COLOR_NAMES,
    ColorProfile,
    color_match,
    color_profile,
    normalize_color,
    part_box,
    profile_from_pixels,
)

# Boxes from SsdCocoBackend on these photos (fixed here so these tests check colour alone).
COFFEE_CUP = (173, 13, 412, 240)
CHELSEA_CAT = (9, 0, 408, 297)
BUS = (5, 213, 810, 758)
BUS_MAN_LEFT = (53, 394, 228, 898)  # cream coat, blue jeans
BUS_MAN_MIDDLE = (225, 407, 356, 862)  # black jacket, red shirt, blue jeans
ZIDANE_LEFT = (82, 203, 1093, 707)  # black suit
ZIDANE_RIGHT = (740, 47, 1149, 698)  # black suit
PERSON_RIDER = (186, 100, 271, 373)  # person.jpg: blue top, black trousers


def rotate_hue(rgb: np.ndarray, degrees: int) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # H in 0..179 (2 degrees per step)
    hsv[..., 0] = ((hsv[..., 0].astype(int) + degrees // 2) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def solid(rgb: tuple[int, int, int], size: int = 40) -> np.ndarray:
    return np.full((size, size, 3), rgb, np.uint8)


# ------------------------------------------------------------------------------ synthetic cases


@pytest.mark.parametrize(
    ("rgb", "name"),
    [((220, 20, 30), "red"), ((120, 10, 10), "red"), ((250, 140, 20), "orange"),
     ((240, 220, 30), "yellow"), ((30, 160, 50), "green"), ((30, 60, 200), "blue"),
     ((40, 180, 220), "blue"), ((120, 40, 170), "purple"), ((250, 150, 180), "pink"),
     ((120, 70, 30), "brown"), ((10, 10, 10), "black"), ((245, 245, 245), "white"),
     ((240, 225, 200), "white"), ((128, 128, 128), "gray"), ((60, 60, 60), "black")],
)
def test_pixel_names(rgb, name):
    profile = profile_from_pixels(solid(rgb))
    assert profile.dominant == name
    assert profile.fractions[name] == pytest.approx(1.0)
    assert set(profile.fractions) == set(COLOR_NAMES)


def test_object_on_background_uses_its_own_pixels():
    image = np.full((200, 200, 3), 235, np.uint8)  # white table
    image[60:140, 70:130] = (30, 60, 200)  # blue object
    box = (60, 50, 140, 150)  # a loose detector box: a third of it is table
    profile = color_profile(image, box)
    assert profile.dominant == "blue"
    assert profile.fractions["blue"] > 0.9


def test_chromatic_colour_beats_white_interior_and_highlights():
    image = np.full((100, 100, 3), 250, np.uint8)
    image[:, :30] = (200, 20, 30)  # 30% red, 70% white
    profile = color_profile(image, (0, 0, 100, 100), mask=np.ones((100, 100), bool))
    assert profile.fractions["white"] > profile.fractions["red"]
    assert profile.dominant == "red"
    image[:, 15:] = 250  # 15% red is not enough to call the object red
    whole = np.ones((100, 100), bool)
    assert color_profile(image, (0, 0, 100, 100), mask=whole).dominant == "white"


def test_mask_selects_the_object_pixels():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :] = (30, 160, 50)
    image[40:60, 40:60] = (250, 140, 20)
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    assert color_profile(image, (0, 0, 100, 100), mask=mask).dominant == "orange"
    assert color_profile(image, (0, 0, 100, 100)).dominant != "orange"


def test_parts_of_a_person_box():
    image = np.full((200, 100, 3), 128, np.uint8)
    image[0:30] = (240, 220, 30)  # yellow hat
    image[30:110] = (200, 20, 30)  # red jacket
    image[110:200] = (30, 60, 200)  # blue trousers
    box = (0, 0, 100, 200)
    assert color_profile(image, box, "head").dominant == "yellow"
    assert color_profile(image, box, "upper").dominant == "red"
    assert color_profile(image, box, "lower").dominant == "blue"
    assert part_box(box, "upper") == pytest.approx((0.0, 30.0, 100.0, 110.0))
    with pytest.raises(ValueError):
        part_box(box, "feet")


def test_degenerate_and_out_of_image_boxes_do_not_crash():
    image = np.full((50, 50, 3), (30, 60, 200), np.uint8)
    for box in [(10, 10, 10, 10), (-20, -20, 5, 5), (45, 45, 90, 90), (0, 0, 1, 1)]:
        assert color_profile(image, box).dominant == "blue"
    with pytest.raises(ValueError):
        color_profile(image.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(ValueError):
        color_profile(image, (0, 0, 10, 10), mask=np.ones((10, 10), bool))


def test_color_match_evidence():
    profile = ColorProfile({**dict.fromkeys(COLOR_NAMES, 0.0), "red": 0.3, "white": 0.7}, "red")
    assert color_match(profile, "red") == 1.0
    assert color_match(profile, "Red") == 1.0
    assert color_match(profile, "white") == 1.0  # 70% of the pixels
    assert color_match(profile, "blue") == 0.0
    assert color_match(profile, "pink") == pytest.approx(0.5)  # a neighbour: capped half credit
    assert color_match(profile, "chartreuse") == 0.0
    orange = ColorProfile({**dict.fromkeys(COLOR_NAMES, 0.0), "orange": 1.0}, "orange")
    assert color_match(orange, "red") == pytest.approx(0.5)
    assert normalize_color("grey") == "gray" and normalize_color("plaid") is None


# ------------------------------------------------------------------------------- real photos


def test_coffee_cup_is_warm_not_blue_or_green():
    # What the pixels say: the cup's opening is filled with orange crema and a cream-white
    # interior; its red side is a thin crescent at the bottom of the box (the same red as the
    # saucer).  So the dominant colour is orange, red gets partial evidence, blue/green none.
    profile = color_profile(load_photo("coffee"), COFFEE_CUP)
    # The foreground model keeps the cup's white rim (the box's centre alone did not).
    assert profile.dominant == "orange"
    warm = sum(profile.fractions[c] for c in ("red", "orange", "brown"))
    assert warm > 0.55
    assert warm + profile.fractions["white"] > 0.9
    for cold in ("blue", "green", "purple"):
        assert profile.fractions[cold] < 0.01
        assert color_match(profile, cold) == 0.0
    assert color_match(profile, "red") >= 0.5
    assert color_match(profile, "orange") == 1.0


def test_hue_rotated_coffee_cup_is_blue_and_not_red():
    # Rotating the hue by 200 degrees carries red, orange and brown into the blue band.
    profile = color_profile(rotate_hue(load_photo("coffee"), 200), COFFEE_CUP)
    assert profile.dominant == "blue"
    assert profile.fractions["blue"] > 0.55  # the rest is the cup's white rim
    for warm in ("red", "orange", "brown"):
        assert profile.fractions[warm] < 0.01
    assert color_match(profile, "red") == 0.0
    assert color_match(profile, "blue") == 1.0


def test_chelsea_the_cat_is_brown_orange():
    profile = color_profile(load_photo("chelsea"), CHELSEA_CAT)
    assert profile.dominant in ("brown", "orange")
    # The photo is dim (exposure gain 1.25): the cat's light fur reads white, not pale brown.
    assert profile.fractions["brown"] + profile.fractions["orange"] > 0.7
    assert profile.fractions["blue"] < 0.01
    assert color_match(profile, "brown") == 1.0
    assert color_match(profile, "orange") > 0.9
    assert color_match(profile, "blue") < 0.05


def test_the_bus_is_blue_not_yellow():
    # The bus in bus.jpg is a blue-and-white electric bus; the yellow is the building behind it.
    profile = color_profile(load_photo("bus"), BUS)
    assert profile.dominant == "blue"
    assert profile.fractions["yellow"] < 0.05
    assert color_match(profile, "blue") == 1.0
    assert color_match(profile, "yellow") < 0.2


def test_zidane_people_wear_black_suits():
    image = load_photo("zidane")
    for box in (ZIDANE_LEFT, ZIDANE_RIGHT):
        upper = color_profile(image, box, "upper")
        assert upper.dominant == "black"
        # The crowd behind them is red and brown: it must not take over.
        assert upper.fractions["red"] < 0.1
        assert color_match(upper, "black") == 1.0
        assert color_match(upper, "red") < 0.5
        assert color_profile(image, box, "lower").dominant == "black"


def test_bus_people_clothes_by_part():
    image = load_photo("bus")
    middle_upper = color_profile(image, BUS_MAN_MIDDLE, "upper")
    middle_lower = color_profile(image, BUS_MAN_MIDDLE, "lower")
    assert middle_upper.dominant == "black"  # black jacket
    assert middle_lower.dominant == "blue"  # jeans
    left_upper = color_profile(image, BUS_MAN_LEFT, "upper")  # cream/camel coat
    assert left_upper.dominant in ("brown", "white", "orange")
    assert left_upper.fractions["blue"] < 0.1
    assert left_upper.fractions["black"] < 0.1


def test_person_photo_rider_top_and_trousers():
    image = load_photo("person")
    assert color_profile(image, PERSON_RIDER, "upper").dominant == "blue"
    assert color_profile(image, PERSON_RIDER, "lower").dominant == "black"
