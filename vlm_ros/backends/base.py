"""The base class every model-family adapter subclasses.

It implements the core's contract (vlm_ros.core.backend.Backend, a Protocol) with defaults for
the optional capabilities.  Attribute and relation reasoning, the not-found / ambiguous decision
and 3D geometry are the core's job (vlm_ros.core.grounding), so every backend gets them for free.
Adapters stay small: load -> preprocess -> model -> post-process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from vlm_ros.core.backend import BackendError, CapabilityError
from vlm_ros.core.types import Detection

__all__ = ["Backend", "BackendError", "CapabilityError", "require_rgb"]


def require_rgb(rgb: object, backend: str) -> None:
    """Raise BackendError unless ``rgb`` is an HxWx3 uint8 RGB array (the interface's input)."""
    shape = tuple(getattr(rgb, "shape", ()))
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and len(shape) == 3
            and shape[2] == 3 and min(shape[:2]) >= 1):
        raise BackendError(f"{backend} expects an HxWx3 uint8 RGB image, got "
                           f"{getattr(rgb, 'dtype', type(rgb).__name__)} {shape}")


class Backend(ABC):
    """Image + query phrases -> detections, plus optional captioning, VQA and relevance maps.

    ``vocabulary`` is the closed label set of a fixed-class detector (COCO for the default), or
    None for open-vocabulary models that accept any phrase.  The core uses it to map command nouns
    to labels and to answer ``not_found`` for nouns the model cannot see at all.
    ``capabilities`` lists what beyond ``detect`` the backend does: "describe" (caption a frame),
    "ask" (visual question answering), "relevance" (a per-pixel map for a phrase).
    """

    name: str = "base"
    vocabulary: frozenset[str] | None = None
    # True for models that resolve a whole referring expression themselves (Qwen-VL, Florence-2);
    # the core then sends the full phrase and skips colour/location filtering it would otherwise do.
    resolves_referring_expressions: bool = False
    capabilities: frozenset[str] = frozenset()
    # The score floor the backend runs at when the user sets none (its own operating point: OWL's
    # sigmoid scores sit far lower than a closed-set detector's).  The node and CLI pass a
    # score_threshold only when the user set one, and the core's candidate floor follows the
    # backend's ``score_threshold`` in force.  None: the backend has no score floor of its own.
    default_score_threshold: float | None = None

    @abstractmethod
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Detect ``queries`` (detector labels or free phrases) in an HxWx3 uint8 RGB image.

        Boxes are in pixels of ``rgb``.  An empty ``queries`` means "everything you can see".
        """

    def describe(self, rgb: np.ndarray) -> str:
        """A one-paragraph caption of the image."""
        raise CapabilityError(f"backend {self.name!r} cannot describe images")

    def ask(self, rgb: np.ndarray, question: str) -> str:
        """A short answer to ``question`` about the image."""
        raise CapabilityError(f"backend {self.name!r} cannot answer questions")

    def relevance_map(self, rgb: np.ndarray, phrase: str) -> np.ndarray:
        """HxW float32 in [0, 1]: how much each pixel of ``rgb`` answers ``phrase``."""
        raise CapabilityError(f"backend {self.name!r} has no relevance map")

    def warmup(self) -> None:
        """Run once on a dummy image so the first real command does not pay start-up costs.

        Open-vocabulary models get a phrase: with no query they would skip the model entirely.
        """
        queries = ["object"] if self.vocabulary is None else []
        self.detect(np.zeros((64, 64, 3), np.uint8), queries)

    def info(self) -> dict[str, object]:
        return {"name": self.name, "open_vocabulary": self.vocabulary is None,
                "capabilities": sorted(self.capabilities)}
