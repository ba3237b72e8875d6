"""Parsers for VLM answers, on the formats the models actually write (sources cited per sample)."""

from __future__ import annotations

import pytest

from vlm_ros.backends.parsing import (
    ParsedBox,
    extract_answer_text,
    parse_florence_locations,
    parse_json_boxes,
)

# Qwen grounding answers, verbatim from the Qwen3-VL fine-tuning data-format doc
# (https://github.com/SalemAlNasi/Qwen3-VL/blob/main/qwen-vl-finetune/GROUNDING_DATA_FORMAT.md,
# a copy of QwenLM/Qwen3-VL's qwen-vl-finetune docs).
QWEN_HOUSE = '{"bbox_2d": [135, 114, 1016, 672], "label": "house"}'
QWEN_POINTS = ('[{"point_2d": [346, 328], "label": "person"}, '
               '{"point_2d": [238, 158], "label": "person"}]')
# Florence-2 raw outputs, verbatim from transformers' processor tests
# (https://github.com/huggingface/transformers/blob/main/tests/models/florence2/test_processing_florence2.py).
FLORENCE_GROUNDING = ("</s><s>red car<loc_53><loc_334><loc_933><loc_775><loc_711><loc_203>"
                      "<loc_906><loc_546>sky<loc_0><loc_0><loc_1000><loc_300></s>")
FLORENCE_OD = ("</s><s>car<loc_53><loc_334><loc_933><loc_775>door handle<loc_425><loc_504>"
               "<loc_474><loc_516></s><pad>")
FLORENCE_POLYGON = ("Hello<loc_769><loc_248><loc_771><loc_234><loc_773><loc_206><loc_773>"
                    "<loc_198><loc_771><loc_193>")
FLORENCE_CAPTION = "</s><s>A green car parked in front of a yellow building.</s>"  # same file


def test_qwen_answer_in_a_json_fence_pixels_of_the_resized_input():
    # Qwen2.5-VL: absolute pixels of the image it saw (here 1288 x 728 for a 1280 x 720 photo).
    text = f"```json\n[\n\t{QWEN_HOUSE}\n]\n```"
    (box,) = parse_json_boxes(text, (1280, 720), model_input_size=(1288, 728))
    assert box.label == "house" and box.score is None
    assert box.bbox == pytest.approx((135 * 1280 / 1288, 114 * 720 / 728, 1016 * 1280 / 1288,
                                      672 * 720 / 728))


@pytest.mark.parametrize("coords", ["norm1000", "grid1000"])  # grid1000: the earlier name
def test_qwen3_grid_coordinates(coords):
    (box,) = parse_json_boxes(QWEN_HOUSE, (2000, 500), coords=coords)
    assert box.bbox == pytest.approx((270.0, 57.0, 2000.0, 336.0))


def test_a_1000_grid_answer_in_a_wide_frame():
    # Qwen3-VL's answer for a box at (640, 360)-(1280, 720) of a 1280x720 frame.
    text = '[{"bbox_2d": [500, 500, 1000, 1000], "label": "cup"}]'
    (box,) = parse_json_boxes(text, (1280, 720), coords="norm1000")
    assert box.bbox == pytest.approx((640.0, 360.0, 1280.0, 720.0))


def test_norm1000_yx_reads_every_list_y_first_and_named_corners_by_name():
    text = ('[{"bbox": [100, 200, 500, 600], "label": "a"}, '
            '{"box_2d": [100, 200, 500, 600], "label": "b"}, '
            '{"box": {"xmin": 200, "ymin": 100, "xmax": 600, "ymax": 500}, "label": "c"}]')
    boxes = parse_json_boxes(text, (1280, 720), coords="norm1000_yx")
    assert [b.label for b in boxes] == ["a", "b", "c"]
    for box in boxes:
        assert box.bbox == pytest.approx((256.0, 72.0, 768.0, 360.0))
    # Under an x-first convention only box_2d is y-first.
    a, b, _ = parse_json_boxes(text, (1000, 1000), coords="norm1000")
    assert a.bbox == (100.0, 200.0, 500.0, 600.0) and b.bbox == (200.0, 100.0, 600.0, 500.0)


@pytest.mark.parametrize("coords", ["norm1", "normalized"])  # normalized: the earlier name
def test_norm1_fractions(coords):
    (box,) = parse_json_boxes('{"bbox": [0.25, 0.5, 0.75, 1.0]}', (640, 480), coords=coords)
    assert box.bbox == pytest.approx((160.0, 240.0, 480.0, 480.0))


def test_points_are_not_boxes():
    assert parse_json_boxes(QWEN_POINTS, (640, 480)) == []


def test_gemini_style_box_2d_is_y_first_on_a_1000_grid():
    # Constructed in Gemini's documented layout: box_2d = [ymin, xmin, ymax, xmax], 0-1000.
    (box,) = parse_json_boxes('[{"box_2d": [100, 200, 500, 600], "label": "dog"}]', (1000, 500))
    assert box.bbox == pytest.approx((200.0, 50.0, 600.0, 250.0)) and box.label == "dog"


def test_normalised_floats_dict_wrapper_single_quotes_and_trailing_commas():
    text = "{'objects': [{'name': 'cup', 'box': [0.1, 0.2, 0.3, 0.4],},]}"
    assert parse_json_boxes(text, (100, 200)) == [
        ParsedBox("cup", pytest.approx((10.0, 40.0, 30.0, 80.0)))]


@pytest.mark.parametrize("text, label", [
    ('{"detections": [{"object": "mug", "bbox": [1, 2, 30, 40]}]}', "mug"),
    ('{"boxes": [{"text": "mug", "x1": 1, "y1": 2, "x2": 30, "y2": 40}]}', "mug"),
    ('[{"name": "mug", "bbox": {"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}}]', "mug"),
    ('[[1, 2, 30, 40]]', ""),
])
def test_key_variants(text, label):
    (box,) = parse_json_boxes(text, (100, 100))
    assert box.label == label and box.bbox == (1.0, 2.0, 30.0, 40.0)


def test_truncated_answer_keeps_the_complete_objects():
    text = ('```json\n[\n  {"bbox_2d": [10, 20, 30, 40], "label": "cup"},\n'
            '  {"bbox_2d": [50, 60, 70, 80], "label": "bowl"},\n  {"bbox_2d": [5, 6')
    assert [b.label for b in parse_json_boxes(text, (100, 100))] == ["cup", "bowl"]


def test_json_inside_prose_and_a_thinking_block():
    text = ("<think>the cup is on the left {maybe}</think>Sure! Here's the result: "
            '{"bbox_2d": [90, 10, 10, 50], "label": "cup", "confidence": 0.8} Hope it helps.')
    (box,) = parse_json_boxes(text, (100, 100))
    assert box.bbox == (10.0, 10.0, 90.0, 50.0) and box.score == 0.8  # corners sorted


def test_boxes_are_clipped_and_empty_ones_dropped():
    text = '[{"bbox_2d": [-20, -5, 150, 50], "label": "a"}, {"bbox_2d": [200, 0, 300, 50]}]'
    assert [b.bbox for b in parse_json_boxes(text, (100, 100))] == [(0.0, 0.0, 100.0, 50.0)]


@pytest.mark.parametrize("text", [
    "", "I cannot see a cup in this image.", "[]", "null", '{"bbox_2d": "nowhere"}',
    '[{"bbox_2d": [1, 2, "x", 4]}]', '[{"bbox_2d": [NaN, 1, 2, 3]}]', "```json\n```", "{{{{[[[",
])
def test_garbage_gives_no_boxes(text):
    assert parse_json_boxes(text, (100, 100)) == []


def test_bad_coordinate_system_is_an_error():
    with pytest.raises(ValueError, match="coords"):
        parse_json_boxes("[]", (10, 10), coords="inches")


def test_huge_inputs_are_handled():
    truncated = 'x{"a": [1, 2, 3' * 100_000
    assert parse_json_boxes(truncated, (10, 10)) == []
    many = "[" + ",".join('{"bbox_2d": [1, 2, 3, 4], "label": "a"}' for _ in range(10_000)) + "]"
    assert len(parse_json_boxes(many, (10, 10))) == 10_000
    cut = many[:-30]  # truncated: everything but the last, cut, entry
    assert len(parse_json_boxes(cut, (10, 10))) == 9_999


def test_florence_phrase_grounding_with_several_boxes_per_phrase():
    boxes = parse_florence_locations(FLORENCE_GROUNDING, (1000, 1000))
    assert [b.label for b in boxes] == ["red car", "red car", "sky"]
    # transformers' test expects [53, 334, 933, 775] etc. (ints); we keep the bin centre.
    assert boxes[0].bbox == (53.5, 334.5, 933.5, 775.5)
    assert boxes[1].bbox == (711.5, 203.5, 906.5, 546.5)
    assert boxes[2].bbox == (0.5, 0.5, 999.5, 300.5)  # <loc_1000> is clamped to the last bin


def test_florence_od_in_a_non_square_image():
    car, handle = parse_florence_locations(FLORENCE_OD, (640, 480))
    assert car.label == "car" and handle.label == "door handle"
    assert car.bbox == pytest.approx((53.5 * 0.64, 334.5 * 0.48, 933.5 * 0.64, 775.5 * 0.48))


def test_florence_polygon_gives_its_bounding_box():
    (box,) = parse_florence_locations(FLORENCE_POLYGON, (1000, 1000), shape="polygons")
    assert box.label == "Hello" and box.bbox == (769.5, 193.5, 773.5, 248.5)
    marked = "cup<poly><loc_10><loc_20><loc_30><loc_40><loc_20><loc_60></poly>"
    (box,) = parse_florence_locations(marked, (1000, 1000))  # auto: <poly> -> polygon
    assert box.bbox == (10.5, 20.5, 30.5, 60.5)


def test_florence_scores_and_phrases_without_boxes():
    text = "a table and a cup<loc_10><loc_10><loc_20><loc_20>"
    (box,) = parse_florence_locations(text, (100, 100), location_scores=[0.2, 0.4, 0.6, 0.8])
    assert box.label == "a table and a cup" and box.score == pytest.approx(0.5)
    assert parse_florence_locations(FLORENCE_CAPTION, (100, 100)) == []
    assert parse_florence_locations("cup<loc_1><loc_2>", (100, 100)) == []  # incomplete box


def test_extract_answer_text():
    assert extract_answer_text(FLORENCE_CAPTION) == "A green car parked in front of a yellow building."
    assert extract_answer_text("<think>Let me look.</think>\n\nYes, it is open.<|im_end|>") == \
        "Yes, it is open."
    assert extract_answer_text("</think>Two cups.") == "Two cups."
    assert extract_answer_text("```\nA cup\non a table\n```") == "A cup on a table"
    assert extract_answer_text("<answer> red </answer>") == "red"
    assert extract_answer_text(None) == ""  # type: ignore[arg-type]
