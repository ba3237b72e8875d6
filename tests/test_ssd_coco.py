"""The default backend on real weights and real photos (see scripts/fetch_test_photos.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from photos import load_photo

from vlm_ros.backends import create_backend
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.detections import suppress_duplicates
from vlm_ros.backends.ssd_coco import SsdCocoBackend, resolve_model_files, tile_views
from vlm_ros.core.vocabulary import COCO_LABELS


@pytest.fixture(scope="module")
def backend() -> SsdCocoBackend:
    return SsdCocoBackend()


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def labels(detections) -> list[str]:
    return [d.label for d in detections]


def test_registry_builds_it_with_the_coco_vocabulary():
    backend = create_backend("ssd_coco", score_threshold=0.5)
    assert backend.name == "ssd_coco"
    assert backend.vocabulary == frozenset(COCO_LABELS.values())
    assert backend.info()["open_vocabulary"] is False


def test_coffee_cup(backend):
    image = load_photo("coffee")
    cups = [d for d in backend.detect(image, []) if d.label == "cup"]
    assert len(cups) == 1 and cups[0].score > 0.9
    # The cup (rim to the bottom of its body) fills roughly x 175..410, y 15..240.
    assert iou(cups[0].bbox, (175, 15, 410, 240)) > 0.8


def test_dog_photo_without_the_duplicate_cat(backend):
    detections = backend.detect(load_photo("dog"), [])
    found = labels(detections)
    assert {"dog", "bicycle"} <= set(found)
    assert {"car", "truck"} & set(found)
    dog = next(d for d in detections if d.label == "dog")
    assert iou(dog.bbox, (140, 209, 313, 536)) > 0.8
    # The network also calls the dog a cat (0.48) on the same box, and the car a truck: dropped.
    assert "cat" not in found
    assert len({"car", "truck"} & set(found)) == 1
    assert detections == sorted(detections, key=lambda d: -d.score)


def test_horses(backend):
    detections = backend.detect(load_photo("horses"), [])
    assert labels(detections).count("horse") >= 3
    assert "cow" not in labels(detections)  # the same box as the third horse


def test_bus_and_people_portrait_image(backend):
    image = load_photo("bus")  # 810 x 1080, portrait: boxes must map back per axis
    assert image.shape[:2] == (1080, 810)
    detections = backend.detect(image, [])
    buses = [d for d in detections if d.label == "bus"]
    people = [d for d in detections if d.label == "person"]
    assert len(buses) == 1 and len(people) >= 3
    assert iou(buses[0].bbox, (5, 213, 810, 758)) > 0.85
    # The man on the left, in the cream coat, from hair to shoes.
    assert max(iou(p.bbox, (53, 394, 228, 898)) for p in people) > 0.8


def test_landscape_image_boxes_in_original_pixels(backend):
    image = load_photo("zidane")  # 1280 x 720
    people = [d for d in backend.detect(image, []) if d.label == "person"]
    assert len(people) == 2
    expected = [(82, 203, 1093, 707), (740, 47, 1149, 698)]
    for box in expected:
        assert max(iou(p.bbox, box) for p in people) > 0.85


def test_boxes_are_clipped_to_the_image(backend):
    for name in ("bus", "zidane", "coffee", "kite"):
        image = load_photo(name)
        height, width = image.shape[:2]
        for d in backend.detect(image, []):
            x1, y1, x2, y2 = d.bbox
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert 0.3 <= d.score <= 1.0


def test_query_filtering(backend):
    image = load_photo("dog")
    assert labels(backend.detect(image, ["dog"])) == ["dog"]
    assert backend.detect(image, ["cat"]) == []  # the duplicate is gone before filtering
    assert backend.detect(image, ["toothbrush"]) == []
    both = backend.detect(image, ["bicycle", "dog"])
    assert set(labels(both)) == {"bicycle", "dog"}
    # A command noun works too, and the detection says which query it answers.
    bikes = backend.detect(image, ["bike"])
    assert labels(bikes) == ["bicycle"] and bikes[0].phrase == "bike"


def test_score_threshold(backend):
    strict = SsdCocoBackend(score_threshold=0.9)
    found = labels(strict.detect(load_photo("dog"), []))
    assert found == ["bicycle"]  # bicycle 0.98; dog 0.88 is below 0.9


def test_blank_image_finds_nothing(backend):
    assert backend.detect(np.zeros((240, 320, 3), np.uint8), []) == []
    backend.warmup()


@pytest.mark.parametrize(
    "bad",
    [np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8),
     np.zeros((64, 64, 4), np.uint8), np.zeros((0, 64, 3), np.uint8), [[1, 2, 3]]],
)
def test_bad_input_raises_backend_error(backend, bad):
    with pytest.raises(BackendError):
        backend.detect(bad, [])


def test_missing_model_files_say_what_to_do(tmp_path):
    with pytest.raises(BackendError, match="frozen_inference_graph.pb"):
        SsdCocoBackend(model=str(tmp_path))
    with pytest.raises(BackendError, match="not found"):
        resolve_model_files(str(tmp_path / "nothing.pb"))


@pytest.mark.parametrize("options", [{"device": "tpu"}, {"score_threshold": 2.0},
                                     {"input_size": 8}, {"nms_iou": 0.0}])
def test_bad_options_raise_backend_error(options):
    with pytest.raises(BackendError):
        SsdCocoBackend(**options)


def test_cuda_request_falls_back_to_cpu_or_uses_cuda():
    backend = SsdCocoBackend(device="cuda")
    assert backend.device in ("cpu", "cuda")
    assert labels(backend.detect(load_photo("coffee"), ["cup"])) == ["cup"]


def test_concurrent_detect_gives_the_same_answers(backend):
    images = [load_photo(name) for name in ("dog", "horses", "bus", "coffee")]
    expected = [labels(backend.detect(image, [])) for image in images]
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        results[i] = labels(backend.detect(images[i % 4], []))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == expected[i % 4] for i in range(8))


def test_duplicate_suppression_keeps_a_real_second_object():
    # A person (tall, narrow) on a horse (wide): overlapping boxes of different classes, IoU ~0.4.
    boxes = np.array([[100, 50, 160, 300], [60, 150, 260, 330], [61, 151, 259, 331]], float)
    scores = np.array([0.9, 0.8, 0.5])
    class_ids = np.array([1, 19, 21])  # person, horse, cow (the cow repeats the horse box)
    assert suppress_duplicates(boxes, scores, class_ids, 0.6, 0.85) == [0, 1]


# -- tiling: small objects ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiled() -> SsdCocoBackend:
    return SsdCocoBackend(tiles=2)


def test_tile_views_cover_the_image_with_the_requested_overlap():
    assert tile_views(640, 480, 1, 0.2) == [(0, 0, 640, 480)]
    views = tile_views(640, 480, 2, 0.2)
    assert views[0] == (0, 0, 640, 480) and len(views) == 5
    left, right = views[1], views[2]
    # Tile width 640 / 1.8 = 356, the second starts 80% of it in: 20% shared.
    assert left == (0, 0, 356, 267) and right[0] == 284 and right[2] == 640
    assert views[4] == (284, 213, 640, 480)
    assert (right[2] - right[0]) == pytest.approx(left[2] - left[0], abs=1)
    assert (left[2] - right[0]) / (left[2] - left[0]) == pytest.approx(0.2, abs=0.01)
    three = tile_views(600, 400, 3, 0.25)
    assert len(three) == 10 and three[-1][2:] == (600, 400)


def test_tiled_coffee_cup_matches_the_full_image_box(backend, tiled):
    image = load_photo("coffee")
    full = next(d for d in backend.detect(image, []) if d.label == "cup")
    cups = [d for d in tiled.detect(image, []) if d.label == "cup"]
    # The cup crosses the inner tile edges: the tiles' partial cups are dropped, one cup remains.
    assert len(cups) == 1 and cups[0].score > 0.9
    assert iou(cups[0].bbox, full.bbox) >= 0.7
    assert iou(cups[0].bbox, (175, 15, 410, 240)) > 0.8


def test_tiles_find_more_of_the_small_kites(backend, tiled):
    image = load_photo("kite")
    full = [d for d in backend.detect(image, []) if d.label == "kite"]
    more = [d for d in tiled.detect(image, []) if d.label == "kite"]
    assert len(more) > len(full)
    # Every kite the full image found is still there (merged, not duplicated).
    for kite in full:
        assert sum(iou(kite.bbox, k.bbox) > 0.5 for k in more) == 1
    height, width = image.shape[:2]
    for d in more:
        x1, y1, x2, y2 = d.bbox
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_tiled_detection_is_deterministic(tiled):
    image = load_photo("horses")
    assert tiled.detect(image, []) == tiled.detect(image, [])


def _row(view: int, box: tuple[float, float, float, float], score: float = 0.8) -> list[float]:
    return [view, 47, score, *box]  # 47 = cup


def test_tile_boxes_map_back_and_border_cut_ones_are_dropped(tiled):
    views = tile_views(640, 480, 2, 0.2)  # view 1 = top-left tile (0, 0, 356, 267)
    rows = np.array([
        _row(1, (0.5, 0.5, 0.75, 0.75)),   # inside the tile -> (178, 133.5, 267, 200.25)
        _row(1, (0.6, 0.2, 1.0, 0.4)),     # ends on the tile's right edge: inner -> cut, dropped
        _row(1, (0.0, 0.2, 0.3, 0.4)),     # starts on its left edge: the image border -> kept
        _row(4, (0.5, 0.5, 1.0, 1.0)),     # bottom-right tile, ends at the image corner -> kept
        _row(4, (0.005, 0.5, 0.3, 0.7)),   # ... but starts on its inner left edge -> dropped
        _row(0, (0.9, 0.0, 1.0, 0.5)),     # the full image has no inner edges -> kept
        _row(1, (0.1, 0.1, 0.2, 0.2), score=0.1),  # under the threshold -> dropped
    ], np.float32)
    boxes, kept = tiled._boxes_in_image(rows, views, 640, 480)
    assert kept[:, 0].tolist() == [1, 1, 4, 0]
    np.testing.assert_allclose(boxes[0], (178, 133.5, 267, 200.25), atol=0.01)
    np.testing.assert_allclose(boxes[1], (0, 53.4, 106.8, 106.8), atol=0.01)
    np.testing.assert_allclose(boxes[2], (462, 346.5, 640, 480), atol=0.01)
    np.testing.assert_allclose(boxes[3], (576, 0, 640, 240), atol=0.01)


def test_letterboxed_boxes_map_back_to_image_pixels():
    letterboxed = SsdCocoBackend(letterbox=True)
    image = load_photo("coffee")  # 600 x 400: the net sees it padded to 600 x 600
    cups = [d for d in letterboxed.detect(image, []) if d.label == "cup"]
    assert len(cups) == 1
    assert iou(cups[0].bbox, (175, 15, 410, 240)) > 0.7
    rows = np.array([_row(0, (0.5, 0.5, 1.0, 2 / 3))], np.float32)
    boxes, _ = letterboxed._boxes_in_image(rows, [(0, 0, 600, 400)], 600, 400)
    np.testing.assert_allclose(boxes[0], (300, 300, 600, 400), atol=0.01)


@pytest.mark.parametrize("options", [{"tiles": 0}, {"tiles": 9}, {"tile_overlap": 0.6},
                                     {"tile_overlap": -0.1}])
def test_bad_tile_options_raise_backend_error(options):
    with pytest.raises(BackendError):
        SsdCocoBackend(**options)


def test_tiling_through_the_registry_and_info():
    backend = create_backend("ssd_coco", tiles=2)
    assert backend.info()["tiles"] == 2 and backend.info()["letterbox"] is False
