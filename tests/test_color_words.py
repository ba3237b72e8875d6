"""The colour vocabulary: every colour word maps to a colour the model judges, typical swatches of
named shades are judged as the colour they map to, and the table of attributes the default backend
cannot judge is well formed and disjoint from the other word tables."""

from __future__ import annotations

import numpy as np
import pytest

from vlm_ros.core import lexicon
from vlm_ros.core.color import COLOR_NAMES, normalize_color, profile_from_pixels
from vlm_ros.core.instruction import parse_instruction

# Typical sRGB swatches of the named shades (CSS / common usage; olive = olive drab, tan = tan
# leather, khaki = the darker khaki cloth, lavender = floral lavender: the colours people mean).
SWATCHES: dict[str, tuple[int, int, int]] = {
    "navy": (0, 0, 128), "cyan": (0, 255, 255), "teal": (0, 128, 128),
    "turquoise": (64, 224, 208), "aqua": (0, 255, 255), "crimson": (220, 20, 60),
    "scarlet": (255, 36, 0), "maroon": (128, 0, 0), "burgundy": (128, 0, 32),
    "magenta": (255, 0, 255), "fuchsia": (255, 0, 255), "beige": (245, 245, 220),
    "cream": (255, 253, 208), "ivory": (255, 255, 240), "tan": (140, 100, 60),
    "khaki": (140, 110, 60), "olive": (107, 142, 35), "lime": (50, 205, 50),
    "gold": (255, 215, 0), "silver": (160, 160, 160), "charcoal": (45, 45, 45),
    "indigo": (75, 0, 130), "violet": (143, 0, 255), "lavender": (181, 126, 220),
}


@pytest.mark.parametrize("word", sorted(SWATCHES))
def test_swatch_is_judged_as_the_colour_its_word_maps_to(word):
    judged = profile_from_pixels(np.full((8, 8, 3), SWATCHES[word], np.uint8)).dominant
    assert lexicon.COLORS[word] == judged
    assert normalize_color(word) == judged


def test_tan_sits_on_the_orange_brown_border():
    # A lighter tan is judged orange, which "brown" credits as a neighbour (half evidence).
    lighter = profile_from_pixels(np.full((8, 8, 3), (170, 120, 70), np.uint8))
    assert lexicon.COLORS["tan"] == "brown" and lighter.dominant == "orange"


def test_every_colour_word_maps_to_a_judged_colour():
    assert set(lexicon.COLORS.values()) <= set(COLOR_NAMES)
    for word, name in lexicon.COLORS.items():
        assert normalize_color(word) == name


@pytest.mark.parametrize(
    ("command", "color", "attributes"),
    [("grab the navy cup", "blue", []), ("grab the crimson cup", "red", []),
     ("grab the teal mug", "blue", []), ("find the golden kite", "yellow", []),
     ("grab the dark blue cup", "blue", ["dark"]), ("grab the light green cup", "green", ["light"]),
     ("抓取深蓝色的杯子", "blue", []), ("拿浅绿色杯子", "green", []), ("拿天蓝色的杯子", "blue", []),
     ("拿藏青色的杯子", "blue", []), ("拿酒红色的杯子", "red", []), ("拿米色的杯子", "white", []),
     ("拿金色的杯子", "yellow", []), ("拿银色的杯子", "gray", []), ("拿青色的杯子", "blue", []),
     ("拿紫红色的杯子", "pink", [])],
)
def test_parser_understands_colour_words(command, color, attributes):
    target = parse_instruction(command).target
    assert target is not None and target.noun in ("cup", "mug", "kite")
    assert target.color == color
    assert target.attributes == attributes


def test_gold_is_not_read_inside_metal():
    # "金属" (metal) must not become gold + "属": only "金色"/"金黄" are colours.
    assert all(not k.startswith("金") or k in ("金色", "金黄色", "金黄") for k in lexicon.COLORS)
    assert parse_instruction("抓取金属杯子").target.color is None


def test_unjudged_attributes_are_well_formed_and_disjoint():
    table = lexicon.UNJUDGED_ATTRIBUTES
    assert set(table.values()) == {"pattern", "material", "state", "shade"}
    for word in table:
        assert word == word.strip().lower() and word
    nouns = (set(lexicon.EN_KNOWN_NOUNS) | set(lexicon.ZH_NOUNS) | set(lexicon.EN_NOUN_SYNONYMS)
             | set(lexicon.EN_MULTIWORD_NOUNS))
    for other in (lexicon.COLORS, lexicon.SIZES, nouns, lexicon.GARMENTS,
                  lexicon.EN_LOCATIONS, lexicon.ZH_LOCATIONS):
        assert not set(table) & set(other), set(table) & set(other)
    for kind, words in [("pattern", ("striped", "plaid", "条纹")),
                        ("material", ("plastic", "wooden", "塑料", "玻璃", "金属", "木头")),
                        ("state", ("broken", "empty", "破的", "坏的", "空的", "满的", "脏的")),
                        ("shade", ("dark", "light"))]:
        for word in words:
            assert table[word] == kind
