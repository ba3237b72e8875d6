"""A detector that knows the simulator's ground truth: for measuring what comes *after* detection.

`vlm-ros eval sim --pick` measures grasp geometry.  The default detector finds few of the harder
objects (a lying bottle, a book seen flat, a stick, a plate: 12-54 % with depth proposals,
scripts/sim_hard_detection.py), so with it the pick success would mostly measure detection.  The
oracle answers with the true boxes of the objects the evaluation hands it (from the simulator's
segmentation of the same, static scene), labelled with the word a person uses, score 0.9.
Everything after the boxes - masks from depth, grasp synthesis, the safety gate, the goals, the
gripper in physics - is the real code.  The evaluation also reports the default detector's
numbers (``--detector ssd``), so neither is hidden behind the other.

It is loaded by import path (``vlm_ros.sim.oracle:SimOracleBackend``), like any plugin backend;
:func:`show_objects` says what the scene holds, before each command.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from vlm_ros.backends.base import Backend, require_rgb
from vlm_ros.core.types import BBox, Detection

# The words the oracle labels objects with (a person's nouns for the sim categories).
NOUNS: dict[str, str] = {"lying_bottle": "bottle", "bottle": "bottle", "book": "book",
                         "stick": "stick", "plate": "plate", "box": "box", "mug": "mug",
                         "cup": "cup", "bowl": "bowl", "can": "can", "ball": "ball",
                         "apple": "apple", "orange": "orange"}

_lock = threading.Lock()
_objects: list[tuple[str, BBox]] = []


def show_objects(objects: Sequence[tuple[str, BBox]]) -> None:
    """What the next frames show: (noun, GT box) pairs."""
    with _lock:
        _objects[:] = list(objects)


class SimOracleBackend(Backend):
    name = "sim_oracle"
    vocabulary = frozenset(NOUNS.values())
    default_score_threshold = 0.3

    def __init__(self, score: float = 0.9) -> None:
        self.score = float(score)

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        require_rgb(rgb, self.name)
        with _lock:
            objects = list(_objects)
        wanted = set(queries)
        return [Detection(label=noun, score=self.score, bbox=box, phrase=noun)
                for noun, box in objects if not wanted or noun in wanted]

    def info(self) -> dict[str, object]:
        return {"name": self.name, "objects": len(_objects)}
