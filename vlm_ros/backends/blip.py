"""BLIP: small captioning and visual question answering models that run on a CPU.

Why: a robot often needs "what do you see?" and "is the door open?" without a 3B chat VLM.  BLIP
base (ViT-B + BERT-base text model, ~250M parameters for captions, ~360M for VQA) answers in
about a second on a laptop CPU and in tens of milliseconds on a GPU.  BLIP does not localise
anything, so this backend has no ``detect``: pair it with a detector backend in a second node, or
use florence2 / qwen_vl when one model must both ground and caption.

Two models, each with its processor:

* captions (``describe``): ``BlipForConditionalGeneration``, default
  ``Salesforce/blip-image-captioning-base``; ``caption_prompt`` (e.g. "a photography of") turns
  on BLIP's conditional captioning, whose answer starts with the prompt.
* questions (``ask``): ``question_model``, default ``Salesforce/blip-vqa-base``
  (``BlipForQuestionAnswering``).  Chosen over BLIP-2 / InstructBLIP because those put a 2.7B-7B
  language model (OPT, Flan-T5-XL, Vicuna) behind the vision tower: better at open questions, but
  GPU-only in practice, while the VQA fine-tune of BLIP base answers the short questions a robot
  asks ("what colour is the cup?", "how many boxes?") on the robot's own CPU.  A BLIP-2 or
  InstructBLIP checkpoint can still be chosen (``backend_options: {question_model:
  Salesforce/blip2-opt-2.7b}``): the architecture is read from the checkpoint's config.
  ``question_model: ""`` loads no question model (captions only, half the memory).

Both models load at start-up, so a missing model is reported when the backend is created, not on
the first question.  Every call is split into ``_preprocess`` (processor -> tensors on the model's
device), ``_forward`` (``generate`` under a lock and ``torch.inference_mode``) and
``_postprocess`` (decode the new tokens).  Greedy decoding, as the model cards do.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoProcessor,
    Blip2ForConditionalGeneration,
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
    InstructBlipForConditionalGeneration,
)

from vlm_ros.backends.base import Backend, BackendError, CapabilityError, require_rgb
from vlm_ros.backends.hf import load_model, load_pretrained, to_device
from vlm_ros.core.types import Detection

DEFAULT_MODEL = "Salesforce/blip-image-captioning-base"
DEFAULT_QUESTION_MODEL = "Salesforce/blip-vqa-base"
CAPTION_ARCHITECTURES: dict[str, Any] = {"BlipForConditionalGeneration": BlipForConditionalGeneration}
# architecture -> (model class, prompt template for a question)
QUESTION_ARCHITECTURES: dict[str, tuple[Any, str]] = {
    "BlipForQuestionAnswering": (BlipForQuestionAnswering, "{question}"),
    # BLIP-2's model card prompt; its OPT/Flan-T5 models were trained on this VQA format.
    "Blip2ForConditionalGeneration": (Blip2ForConditionalGeneration,
                                      "Question: {question} Answer:"),
    "InstructBlipForConditionalGeneration": (InstructBlipForConditionalGeneration, "{question}"),
}
NO_DETECT = ("backend 'blip' cannot detect or locate objects (BLIP only captions and answers "
             "questions); use a detector backend (ssd_coco, owl, grounding_dino, florence2, "
             "qwen_vl) for commands, and blip for ~/describe and ~/ask")


@dataclass(frozen=True)
class _Model:
    """One loaded checkpoint: its processor, the model, and where its inputs must go."""

    model_id: str
    processor: Any
    model: Any
    device: torch.device
    dtype: torch.dtype
    prompt: str = "{question}"


def _looks_like_a_folder(model: str) -> bool:
    """A path, not a hub id ("owner/name"): absolute, relative with ./ or ../, or under ~."""
    return model.startswith(("/", "./", "../", "~", ".\\")) or Path(model).is_absolute()


def _architecture(model: str, allowed: Sequence[str], role: str, example: str) -> str:
    """The checkpoint's architecture, refused with advice unless it is one of ``allowed``."""
    if _looks_like_a_folder(model) and not Path(model).expanduser().exists():
        raise BackendError(f"{role} folder {model} does not exist; set `{role}` to a folder "
                           f"holding a saved checkpoint or to a hub id such as {example}")
    config = load_pretrained(AutoConfig, model)
    architectures = list(getattr(config, "architectures", None) or [])
    for name in architectures:
        if name in allowed:
            return name
    if not architectures and getattr(config, "model_type", "") == "blip":
        return allowed[0]  # a bare BLIP config: trust the role it was given for
    found = ", ".join(architectures) or f"model_type {getattr(config, 'model_type', '?')!r}"
    raise BackendError(f"{role} {model!r} is a {found} checkpoint; blip's `{role}` needs one "
                       f"of {', '.join(allowed)}, e.g. {example}")


class BlipBackend(Backend):
    """BLIP captions (``describe``) and BLIP VQA answers (``ask``); no detection."""

    name = "blip"
    vocabulary = None
    resolves_referring_expressions = False
    capabilities = frozenset({"describe", "ask"})

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        question_model: str | None = DEFAULT_QUESTION_MODEL,
        max_new_tokens: int = 30,
        answer_tokens: int = 10,
        caption_prompt: str = "",
        score_threshold: float = 0.3,
    ) -> None:
        """``score_threshold`` is taken (the node and CLI pass it to every backend) and unused:
        BLIP has no detections to threshold."""
        if not 0.0 <= score_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if int(max_new_tokens) < 1 or int(answer_tokens) < 1:
            raise BackendError(f"max_new_tokens and answer_tokens must be >= 1, got "
                               f"{max_new_tokens} and {answer_tokens}")
        if not isinstance(caption_prompt, str):
            raise BackendError(f"caption_prompt must be text, got {caption_prompt!r}")
        self.max_new_tokens = int(max_new_tokens)
        self.answer_tokens = int(answer_tokens)
        self.caption_prompt = caption_prompt.strip()
        self.captioner = self._load(model, device, dtype, CAPTION_ARCHITECTURES, "model",
                                    DEFAULT_MODEL)
        self.answerer: _Model | None = None
        if question_model:
            self.answerer = self._load(str(question_model), device, dtype,
                                       {k: v[0] for k, v in QUESTION_ARCHITECTURES.items()},
                                       "question_model", DEFAULT_QUESTION_MODEL)
        else:
            self.capabilities = frozenset({"describe"})
        self._lock = threading.Lock()  # one generation at a time, across both models

    @staticmethod
    def _load(model: str, device: str, dtype: str, classes: dict[str, Any], role: str,
              example: str) -> _Model:
        architecture = _architecture(model, list(classes), role, example)
        processor = load_pretrained(AutoProcessor, model)
        loaded, where, precision = load_model(classes[architecture], model, device, dtype)
        prompt = QUESTION_ARCHITECTURES.get(architecture, (None, "{question}"))[1]
        return _Model(model, processor, loaded, where, precision, prompt)

    # ------------------------------------------------------------------ preprocess
    def _preprocess(self, which: _Model, rgb: np.ndarray, text: str | None) -> dict[str, Any]:
        """Processor inputs for one image (a PIL image, as the model cards pass it) and an
        optional text, on the model's device and dtype."""
        require_rgb(rgb, self.name)
        image = Image.fromarray(np.ascontiguousarray(rgb))
        if text:
            batch = which.processor(images=image, text=text, return_tensors="pt")
        else:
            batch = which.processor(images=image, return_tensors="pt")
        return to_device(batch, which.device, which.dtype)

    # ------------------------------------------------------------------ forward
    def _forward(self, which: _Model, batch: dict[str, Any], max_new_tokens: int) -> torch.Tensor:
        """Greedy ``generate``: the token ids of the one answer (1-D, on the CPU)."""
        with self._lock, torch.inference_mode():
            output = which.model.generate(**batch, max_new_tokens=max_new_tokens,
                                          do_sample=False, num_beams=1)
        return output[0].cpu()

    # ------------------------------------------------------------------ post-process
    @staticmethod
    def _postprocess(which: _Model, tokens: torch.Tensor, batch: dict[str, Any]) -> str:
        """Decoded answer text.  A decoder-only language model (BLIP-2 with OPT) echoes the
        prompt first; that echo is cut off."""
        prompt_ids = batch.get("input_ids")
        if prompt_ids is not None:
            prompt_ids = prompt_ids[0].cpu()
            n = len(prompt_ids)
            if len(tokens) > n and torch.equal(tokens[:n], prompt_ids):
                tokens = tokens[n:]
        text = which.processor.decode(tokens, skip_special_tokens=True)
        return " ".join(text.split())

    def _run(self, which: _Model, rgb: np.ndarray, text: str | None, max_new_tokens: int) -> str:
        batch = self._preprocess(which, rgb, text)
        return self._postprocess(which, self._forward(which, batch, max_new_tokens), batch)

    # ------------------------------------------------------------------ interface
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        raise CapabilityError(NO_DETECT)

    def describe(self, rgb: np.ndarray) -> str:
        return self._run(self.captioner, rgb, self.caption_prompt or None, self.max_new_tokens)

    def ask(self, rgb: np.ndarray, question: str) -> str:
        if self.answerer is None:
            raise CapabilityError("backend 'blip' was started without a question_model, so it "
                                  f"cannot answer questions; set question_model (e.g. "
                                  f"{DEFAULT_QUESTION_MODEL})")
        if not isinstance(question, str) or not question.strip():
            raise BackendError("ask needs a non-empty question")
        prompt = self.answerer.prompt.format(question=question.strip())
        return self._run(self.answerer, rgb, prompt, self.answer_tokens)

    def warmup(self) -> None:
        """A caption (and an answer) on a dummy image: ``detect`` is not there to warm up."""
        dummy = np.zeros((64, 64, 3), np.uint8)
        self.describe(dummy)
        if self.answerer is not None:
            self.ask(dummy, "what is this?")

    def info(self) -> dict[str, object]:
        return {**super().info(), "model": self.captioner.model_id,
                "question_model": self.answerer.model_id if self.answerer else None,
                "device": str(self.captioner.device),
                "dtype": str(self.captioner.dtype).replace("torch.", ""),
                "max_new_tokens": self.max_new_tokens, "answer_tokens": self.answer_tokens}
