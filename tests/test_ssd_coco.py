"""The default backend on real weights and real photos (see scripts/fetch_test_photos.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from photos import load_photo

from vlm_ros.backends import create_backend
from vlm_ros.backends.base import BackendError
from vlm_ros.backends.ssd_coco import SsdCocoBackend, resolve_model_files, suppress_duplicates
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
