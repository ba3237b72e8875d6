"""The object memory (issue #21), ROS-free: merging, misses, bounds, queries, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlm_ros.core.geometry import Transform, camera_extrinsics
from vlm_ros.core.memory import MemoryConfig, ObjectMemory, View
from vlm_ros.core.types import CameraIntrinsics, Candidate, ObjectQuery

K = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
# The camera 1 m up, looking along base +x (optical z = base x).
BASE_FROM_CAMERA = camera_extrinsics(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


def seen(label: str, at: tuple[float, float, float], color: str | None = None,
         score: float = 0.9) -> Candidate:
    return Candidate(id=0, label=label, score=score, bbox=(0.0, 0.0, 10.0, 10.0), color=color,
                     point_base=at, width_m=0.08)


def view(depth_m: float | None = 5.0) -> View:
    depth = None if depth_m is None else np.full((480, 640), depth_m, np.float32)
    return View(K, BASE_FROM_CAMERA.inverse(), depth, 640, 480)


def test_the_same_object_seen_again_merges_and_its_spread_is_measured() -> None:
    memory = ObjectMemory()
    memory.observe([seen("cup", (1.00, 0.0, 0.8), "red")], stamp=10.0)
    memory.observe([seen("cup", (1.04, 0.0, 0.8), "red")], stamp=12.0)
    (cup,) = memory.objects.values()
    assert cup.times_seen == 2 and cup.last_seen == 12.0 and cup.first_seen == 10.0
    assert cup.position[0] == pytest.approx(1.02)
    assert 0.01 <= cup.sigma_m < 0.05


def test_other_label_colour_or_place_is_another_object() -> None:
    memory = ObjectMemory()
    memory.observe([seen("cup", (1.0, 0.0, 0.8), "red"), seen("cup", (1.0, 0.0, 0.8), "blue"),
                    seen("bowl", (1.0, 0.0, 0.8)), seen("cup", (1.5, 0.0, 0.8), "red")], 1.0)
    assert len(memory.objects) == 4


def test_weak_or_unplaced_detections_are_not_remembered() -> None:
    memory = ObjectMemory(MemoryConfig(min_confidence=0.3))
    memory.observe([seen("cup", (1.0, 0.0, 0.8), score=0.2),
                    Candidate(1, "cup", 0.9, (0, 0, 1, 1))], 1.0)
    assert memory.objects == {}


def test_an_object_in_view_but_not_seen_is_gone_after_the_miss_limit() -> None:
    memory = ObjectMemory(MemoryConfig(miss_limit=2))
    memory.observe([seen("cup", (2.0, 0.0, 1.0))], 1.0)  # straight ahead, 2 m
    memory.observe([], 2.0, view())  # the wall is 5 m away: the cup would show
    assert len(memory.objects) == 1 and next(iter(memory.objects.values())).misses == 1
    memory.observe([], 3.0, view())
    assert memory.objects == {}


def test_an_object_hidden_behind_something_nearer_or_out_of_view_is_not_missed() -> None:
    memory = ObjectMemory(MemoryConfig(miss_limit=1))
    memory.observe([seen("cup", (2.0, 0.0, 1.0)), seen("bowl", (0.0, 3.0, 1.0))], 1.0)
    memory.observe([], 2.0, view(depth_m=1.0))  # something 1 m away covers the cup
    assert {o.label for o in memory.objects.values()} == {"bowl", "cup"}
    # Without depth the cup straight ahead counts as in view: missed once, gone.  The bowl, 90
    # degrees to the side, never was in view.
    memory.observe([], 3.0, view(depth_m=None))
    assert {o.label for o in memory.objects.values()} == {"bowl"}


def test_seen_again_resets_the_misses() -> None:
    memory = ObjectMemory(MemoryConfig(miss_limit=2))
    memory.observe([seen("cup", (2.0, 0.0, 1.0))], 1.0)
    memory.observe([], 2.0, view())
    memory.observe([seen("cup", (2.01, 0.0, 1.0))], 3.0, view())
    memory.observe([], 4.0, view())
    assert len(memory.objects) == 1


def test_memory_is_bounded_and_drops_what_was_seen_least_recently() -> None:
    memory = ObjectMemory(MemoryConfig(max_objects=3))
    for i in range(5):
        memory.observe([seen("cup", (float(i), 0.0, 0.8))], stamp=float(i))
    assert sorted(o.last_seen for o in memory.objects.values()) == [2.0, 3.0, 4.0]


def test_find_by_noun_synonym_and_colour_newest_first_and_by_age() -> None:
    memory = ObjectMemory()
    memory.observe([seen("cup", (1.0, 0.0, 0.8), "red")], 10.0)
    memory.observe([seen("cup", (1.5, 0.5, 0.8), "blue")], 20.0)
    memory.observe([seen("dog", (3.0, 0.0, 0.0))], 30.0)
    mugs = memory.find(ObjectQuery(noun="mug"), now=40.0)
    assert [o.color for o in mugs] == ["blue", "red"]
    assert [o.color for o in memory.find(ObjectQuery(noun="cup", color="red"), 40.0)] == ["red"]
    assert memory.find(ObjectQuery(noun="cup"), now=40.0, max_age_s=25.0)[0].color == "blue"
    assert len(memory.find(ObjectQuery(noun="cup"), now=40.0, max_age_s=25.0)) == 1
    assert memory.find(ObjectQuery(noun="banana"), now=40.0) == []
    assert "the blue cup was seen 20 s ago at (1.50, 0.50, 0.80) m in base_link" in \
        mugs[0].describe(40.0, "base_link")


def test_saved_memory_loads_back_the_same_and_refuses_another_frame(tmp_path) -> None:
    memory = ObjectMemory(frame_id="odom")
    memory.observe([seen("cup", (1.0, 0.0, 0.8), "red"), seen("dog", (3.0, 1.0, 0.0))], 5.0)
    memory.observe([seen("cup", (1.02, 0.0, 0.8), "red")], 6.0)
    text = memory.to_json()
    again = ObjectMemory(frame_id="odom")
    assert again.load_json(text) == 2
    assert again.snapshot(10.0) == memory.snapshot(10.0)
    again.observe([seen("cup", (1.01, 0.0, 0.8), "red")], 7.0)  # merges into the loaded cup
    assert len(again.objects) == 2 and max(o.times_seen for o in again.objects.values()) == 3
    with pytest.raises(ValueError, match="saved in frame 'odom'"):
        ObjectMemory(frame_id="base_link").load_json(text)
    with pytest.raises(ValueError, match="not a vlm_ros memory"):
        ObjectMemory().load_json(json.dumps({"objects": []}))


def test_disabled_memory_remembers_nothing() -> None:
    memory = ObjectMemory(MemoryConfig(enabled=False))
    memory.observe([seen("cup", (1.0, 0.0, 0.8))], 1.0)
    assert memory.objects == {} and memory.clear() == 0


def test_a_transform_maps_memory_into_the_camera() -> None:
    camera_from_base = BASE_FROM_CAMERA.inverse()
    x, y, z = camera_from_base.apply((2.0, 0.0, 1.0))
    assert z == pytest.approx(2.0) and abs(x) < 1e-9 and abs(y) < 1e-9
    assert isinstance(camera_from_base, Transform)
