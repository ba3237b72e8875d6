"""The one backend interface every model family implements.

A backend turns an RGB image and the nouns/phrases of a command into labelled boxes.  It never knows
about ROS, the command's action, or how a target is chosen: attribute and relation reasoning, the
not-found / ambiguous decision and 3D geometry are the core's job (vlm_ros.core.grounding), so every
backend gets them for free.  Adapters stay small: load -> preprocess -> model -> post-process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from vlm_ros.core.types import Detection


class BackendError(RuntimeError):
    """A backend could not load or run; the message says what to do about it."""


class Backend(ABC):
    """Image + query phrases -> detections.

    ``vocabulary`` is the closed label set of a fixed-class detector (COCO for the default), or
    None for open-vocabulary models that accept any phrase.  The core uses it to map command nouns
    to labels and to answer ``not_found`` for nouns the model cannot see at all.
    """

    name: str = "base"
    vocabulary: frozenset[str] | None = None
    # True for models that resolve a whole referring expression themselves (Qwen-VL, Florence-2);
    # the core then skips colour/location filtering it would otherwise do.
    resolves_referring_expressions: bool = False

    @abstractmethod
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Detect ``queries`` (detector labels or free phrases) in an HxWx3 uint8 RGB image.

        Boxes are in pixels of ``rgb``.  An empty ``queries`` means "everything you can see".
        """

    def warmup(self) -> None:
        """Run once on a dummy image so the first real command does not pay start-up costs."""
        self.detect(np.zeros((64, 64, 3), np.uint8), [])

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "open_vocabulary": self.vocabulary is None}
