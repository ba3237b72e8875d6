"""The backend contract: what the core needs from a model, as a Protocol.

A backend turns an RGB image and the nouns/phrases of a command into labelled boxes.  It never
knows about ROS, the command's action, or how a target is chosen: attribute and relation
reasoning, the not-found / ambiguous decision and 3D geometry are the core's job.  Adapters
(vlm_ros.backends) implement it, usually by subclassing ``vlm_ros.backends.base.Backend``; the
core depends only on this module, never on an adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from vlm_ros.core.types import Detection


class BackendError(RuntimeError):
    """A backend could not load or run; the message says what to do about it."""


class CapabilityError(BackendError):
    """The backend cannot do this (e.g. a closed-set detector asked to caption an image)."""


@runtime_checkable
class Backend(Protocol):
    """Image + query phrases -> detections, plus optional captioning, VQA and relevance maps.

    ``vocabulary``: the closed label set of a fixed-class detector, or None for open-vocabulary
    models.  ``resolves_referring_expressions``: the model grounds whole phrases itself (the
    core then sends the full phrase).  ``capabilities``: "describe", "ask", "relevance".
    """

    name: str
    vocabulary: frozenset[str] | None
    resolves_referring_expressions: bool
    capabilities: frozenset[str]

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Boxes in pixels of ``rgb`` (HxWx3 uint8 RGB); empty ``queries``: everything."""
        ...

    def describe(self, rgb: np.ndarray) -> str: ...

    def ask(self, rgb: np.ndarray, question: str) -> str: ...

    def relevance_map(self, rgb: np.ndarray, phrase: str) -> np.ndarray: ...

    def warmup(self) -> None: ...

    def info(self) -> dict[str, object]: ...
