"""The template every torch (transformers) adapter follows: preprocess -> forward -> postprocess.

What all torch adapters share lives here once, so an adapter holds only what is specific to its
model family:

* input checks (``check_image``) and query normalisation (strip, collapse spaces, drop empties,
  de-duplicate; the family's ``prompt_text`` says how a phrase is written for the model, e.g.
  lowercase without "." for Grounding DINO);
* "everything you can see" for an empty query list: the family's ``everything_queries``;
* the score threshold: ``default_score_threshold`` (the family's operating point, used when the
  user sets none) and ``score_threshold`` (the one in force, range-checked, live-settable);
* one forward at a time (``self._lock``: caches and captured tensors are shared state) and
  ``torch.inference_mode`` around preprocess + forward;
* loading (``load``; ``load_another`` for a family that runs a second model) and ``info``;
* ``describe`` / ``ask`` for the families that list them in ``capabilities``: the same stages on
  a ``TextRequest``, ended by ``postprocess_text`` instead of ``postprocess``.

The stages follow transformers' pipelines.  A detector (OWL, Grounding DINO) implements
``preprocess`` (processor -> tensors on the device), ``forward`` (the model) and ``postprocess``
(scores, boxes in pixels of the input, NMS).  A generative model (Florence-2, Qwen-VL, BLIP) fits
the same shape: ``preprocess`` builds the prompt(s) and the processor inputs, ``forward`` calls
``model.generate`` and decodes the text, ``postprocess`` parses that text into Detections (a
``DetectRequest``) or ``postprocess_text`` makes it the answer (a ``TextRequest``: describe/ask).
A family whose "everything" is a pass of its own rather than a phrase list (Florence-2's
``<OD>`` task, Qwen-VL's detect-all prompt) sets ``everything_pass``: its everything-request
then carries no phrases.

Anything else an adapter runs on the model (OWL's image-guided query) goes through
``check_image`` and ``exclusive`` (the lock and ``torch.inference_mode``), so the template stays
the one place these live (tests/test_torch_template.py checks the adapters' source for it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.hf import load_model
from vlm_ros.core.types import Detection

__all__ = ["DetectRequest", "Request", "TextRequest", "TorchBackend", "check_fraction"]


def check_fraction(name: str, value: float) -> float:
    """``value`` as a float in [0, 1], or BackendError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BackendError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise BackendError(f"{name} must be in [0, 1], got {value}")
    return number


@dataclass(frozen=True)
class DetectRequest:
    """One detect call as the stages see it.

    ``phrases`` are the caller's phrases (stripped; they become the Detections' labels verbatim),
    ``prompts`` the same phrases written for the model (``prompt_text``), ``everything`` is True
    when the caller asked for everything and the phrases are the family's ``everything_queries``.
    """

    image_hw: tuple[int, int]
    phrases: tuple[str, ...]
    prompts: tuple[str, ...]
    everything: bool = False


@dataclass(frozen=True)
class TextRequest:
    """One describe / ask call as the stages see it: ``task`` is "describe" or "ask",
    ``question`` the caller's question, stripped ("" for describe)."""

    image_hw: tuple[int, int]
    task: str
    question: str = ""


Request = DetectRequest | TextRequest


class TorchBackend(Backend):
    """Base of the torch adapters: the stages, the lock, the thresholds and the query handling.

    Subclasses set ``name``, ``default_score_threshold`` and (optionally) ``everything_queries``,
    ``everything_pass`` and ``lowercase_prompts``, call ``super().__init__(score_threshold)`` and
    ``self.load(...)``, and implement ``preprocess``, ``forward`` and ``postprocess`` (and
    ``postprocess_text`` when ``capabilities`` holds "describe" or "ask").
    """

    # None: the family has no scores to threshold (BLIP); ``score_threshold`` is then None unless
    # the caller gives one, which is range-checked and kept (the node and CLI pass the user's).
    default_score_threshold: float | None = 0.3
    # Phrases asked for when the caller passes no query ("the red thing": everything).  Empty =
    # the family has no sensible "everything" and returns no detections (unless everything_pass).
    everything_queries: tuple[str, ...] = ()
    # The family has a pass of its own for "everything" (a task token or prompt, not a phrase
    # list): an empty query list makes a request with no phrases and ``everything`` True.
    everything_pass: bool = False
    # Write prompts in lowercase (families trained on lowercase text).
    lowercase_prompts: bool = False

    def __init__(self, score_threshold: float | None = None) -> None:
        self._lock = threading.Lock()  # one forward at a time
        if score_threshold is None and self.default_score_threshold is None:
            self._score_threshold: float | None = None
        else:
            self.score_threshold = (self.default_score_threshold if score_threshold is None
                                    else score_threshold)

    # ------------------------------------------------------------------ thresholds
    @property
    def score_threshold(self) -> float | None:
        """The score floor in force: the user's, or ``default_score_threshold`` when unset."""
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = check_fraction("score_threshold", value)

    # ------------------------------------------------------------------ loading
    def load(self, loader: Any, model: str, device: str, dtype: str, **kwargs: Any) -> Any:
        """Load ``model`` with ``loader`` (through vlm_ros.backends.hf) and place it; sets
        ``model_id``, ``model``, ``device`` and ``dtype`` (as they really are after loading)."""
        self.model_id = model
        self.model, self.device, self.dtype = load_model(loader, model, device, dtype, **kwargs)
        return self.model

    def load_another(self, loader: Any, model: str, device: str, dtype: str, **kwargs: Any
                     ) -> tuple[Any, torch.device, torch.dtype]:
        """A further model the family runs besides its own (BLIP's question model), loaded and
        placed as ``load`` does: (model, device, dtype) as they really are.  ``model_id``,
        ``model``, ``device`` and ``dtype`` stay those of the backend's own model."""
        return load_model(loader, model, device, dtype, **kwargs)

    # ------------------------------------------------------------------ queries
    def prompt_text(self, phrase: str) -> str:
        """How the family writes ``phrase`` for its model ("" = nothing left to ask)."""
        text = " ".join(phrase.split())
        return text.lower() if self.lowercase_prompts else text

    def normalize_queries(self, queries: Sequence[str] | str) -> list[str]:
        """The caller's phrases, stripped, without empties (also after ``prompt_text``) and
        without repeats, in their order."""
        if isinstance(queries, str):
            queries = [queries]
        phrases: dict[str, None] = {}
        for query in queries:
            if not isinstance(query, str):
                raise BackendError(f"{self.name}: queries must be strings, got {query!r}")
            phrase = query.strip()
            if phrase and self.prompt_text(phrase):
                phrases.setdefault(phrase)
        return list(phrases)

    def check_image(self, rgb: object) -> None:
        """BackendError unless ``rgb`` is an HxWx3 uint8 RGB array (the interface's input)."""
        require_rgb(rgb, self.name)

    def request(self, rgb: np.ndarray, queries: Sequence[str] | str) -> DetectRequest | None:
        """Checked input and normalised queries as one request; None when there is nothing to
        ask (no phrase, no ``everything_queries`` and no ``everything_pass``)."""
        self.check_image(rgb)
        phrases = self.normalize_queries(queries)
        everything = not phrases
        if everything:
            phrases = [] if self.everything_pass else list(self.everything_queries)
            if not phrases and not self.everything_pass:
                return None
        height, width = rgb.shape[:2]
        return DetectRequest((int(height), int(width)), tuple(phrases),
                             tuple(self.prompt_text(p) for p in phrases), everything)

    # ------------------------------------------------------------------ the stages
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Boxes for ``queries`` in pixels of ``rgb``, best first; empty queries: everything
        (the family's ``everything_queries``)."""
        request = self.request(rgb, queries)
        if request is None:
            return []
        inputs, outputs = self.infer(rgb, request)
        return self.postprocess(outputs, inputs, request)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One forward at a time, under ``torch.inference_mode``: what ``infer`` runs the stages
        in, for a family's other model calls (OWL's image-guided query).  Not re-entrant."""
        with self._lock, torch.inference_mode():
            yield

    def infer(self, rgb: np.ndarray, request: Request) -> tuple[Any, Any]:
        """preprocess -> forward under ``exclusive`` (the lock, ``torch.inference_mode``):
        (inputs, outputs)."""
        with self.exclusive():
            inputs = self.preprocess(rgb, request)
            return inputs, self.forward(inputs, request)

    def preprocess(self, rgb: np.ndarray, request: Request) -> Any:
        """Image and prompts -> model inputs on the device."""
        raise NotImplementedError

    def forward(self, inputs: Any, request: Request) -> Any:
        """Model inputs -> raw outputs (a generative family: the generated text)."""
        raise NotImplementedError

    def postprocess(self, outputs: Any, inputs: Any, request: DetectRequest) -> list[Detection]:
        """Raw outputs -> Detections in pixels of the input image, best first."""
        raise NotImplementedError

    # ------------------------------------------------------------------ describe / ask
    def describe(self, rgb: np.ndarray) -> str:
        """A caption, through the stages (families with "describe" in ``capabilities``)."""
        if "describe" not in self.capabilities:
            return super().describe(rgb)
        return self.generate_text(rgb, "describe")

    def ask(self, rgb: np.ndarray, question: str) -> str:
        """A short answer to ``question``, through the stages (families with "ask")."""
        if "ask" not in self.capabilities:
            return super().ask(rgb, question)
        if not isinstance(question, str) or not question.strip():
            raise BackendError("ask needs a non-empty question")
        return self.generate_text(rgb, "ask", question.strip())

    def generate_text(self, rgb: np.ndarray, task: str, question: str = "") -> str:
        """check_image -> preprocess -> forward (under ``exclusive``) -> postprocess_text on a
        ``TextRequest``: the answer text."""
        self.check_image(rgb)
        height, width = rgb.shape[:2]
        request = TextRequest((int(height), int(width)), task, question)
        inputs, outputs = self.infer(rgb, request)
        return self.postprocess_text(outputs, inputs, request)

    def postprocess_text(self, outputs: Any, inputs: Any, request: TextRequest) -> str:
        """Raw outputs of a describe / ask request -> the answer text."""
        raise NotImplementedError

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "model": getattr(self, "model_id", ""),
            "device": str(getattr(self, "device", "")),
            "dtype": str(getattr(self, "dtype", "")).removeprefix("torch."),
            "score_threshold": self.score_threshold,
        }
