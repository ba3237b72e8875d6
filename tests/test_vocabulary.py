"""The noun -> label table: the exact TF COCO label map, synonyms, plurals, closed vs open vocab."""

from __future__ import annotations

import pytest

from vlm_ros.core.vocabulary import COCO_ANIMALS, COCO_LABELS, labels_for_noun, query_phrases

COCO = frozenset(COCO_LABELS.values())


def test_label_map_is_the_90_id_tf_map_with_gaps():
    assert len(COCO_LABELS) == 80 and len(COCO) == 80
    assert max(COCO_LABELS) == 90
    assert sorted(set(range(1, 91)) - set(COCO_LABELS)) == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]
    expected = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus",
                7: "train", 8: "truck", 9: "boat", 44: "bottle", 46: "wine glass", 47: "cup",
                48: "fork", 51: "bowl", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
                67: "dining table", 72: "tv", 77: "cell phone", 89: "hair drier", 90: "toothbrush"}
    for label_id, name in expected.items():
        assert COCO_LABELS[label_id] == name


@pytest.mark.parametrize(
    ("noun", "labels"),
    [
        ("cup", {"cup"}), ("mug", {"cup"}), ("glass", {"cup", "wine glass"}),
        ("bike", {"bicycle"}), ("bicycle", {"bicycle"}), ("car", {"car", "truck"}),
        ("truck", {"car", "truck"}), ("vehicle", {"car", "truck", "bus", "motorcycle"}),
        ("pet", {"cat", "dog"}), ("animal", set(COCO_ANIMALS)), ("table", {"dining table"}),
        ("desk", {"dining table"}), ("sofa", {"couch"}), ("tv", {"tv"}),
        ("monitor", {"tv", "laptop"}),
        ("phone", {"cell phone"}), ("person", {"person"}), ("man", {"person"}),
        ("woman", {"person"}), ("people", {"person"}), ("kid", {"person"}),
        ("bag", {"backpack", "handbag", "suitcase"}), ("plant", {"potted plant"}),
        ("dining table", {"dining table"}), ("hair dryer", {"hair drier"}),
    ],
)
def test_synonyms_map_to_coco_labels(noun, labels):
    assert labels_for_noun(noun, COCO) == labels


@pytest.mark.parametrize(
    ("noun", "labels"),
    [("cups", {"cup"}), ("Cups", {"cup"}), ("MUGS", {"cup"}), ("knives", {"knife"}),
     ("buses", {"bus"}), ("benches", {"bench"}), ("glasses", {"cup", "wine glass"}),
     ("men", {"person"}), ("children", {"person"}), ("mice", {"mouse"}),
     ("wine glasses", {"wine glass"}), ("teddy bears", {"teddy bear"}), ("skis", {"skis"}),
     ("  Potted_Plants ", {"potted plant"}), ("coffee mug", {"cup"}), ("sheep", {"sheep"})],
)
def test_plurals_casing_and_compounds(noun, labels):
    assert labels_for_noun(noun, COCO) == labels


def test_every_coco_label_maps_to_itself_at_least():
    for label in COCO:
        assert label in labels_for_noun(label, COCO)


def test_noun_the_model_cannot_see_is_an_empty_set():
    assert labels_for_noun("plate", COCO) == set()
    assert labels_for_noun("screwdriver", COCO) == set()
    assert query_phrases("plate", COCO) == []


def test_no_noun_or_generic_noun_means_no_restriction():
    assert labels_for_noun(None, COCO) is None
    assert labels_for_noun("", COCO) is None
    assert labels_for_noun("thing", COCO) is None
    assert labels_for_noun("objects", None) is None


def test_open_vocabulary_gets_the_noun_itself():
    assert labels_for_noun("screwdriver", None) == {"screwdriver"}
    assert labels_for_noun("Cups", None) == {"cup"}
    assert query_phrases("mug", None) == ["mug"]


def test_closed_vocabulary_is_intersected():
    small = frozenset({"cup", "bottle", "widget"})
    assert labels_for_noun("glass", small) == {"cup"}
    assert labels_for_noun("widgets", small) == {"widget"}
    assert labels_for_noun("dog", small) == set()


def test_query_phrases_are_sorted_labels():
    assert query_phrases("vehicle", COCO) == ["bus", "car", "motorcycle", "truck"]
    assert query_phrases("cups", COCO) == ["cup"]
    assert query_phrases(None, COCO) == []
