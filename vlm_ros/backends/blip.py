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
the first question; a missing or incomplete folder is found before anything loads, by the check
every transformers backend shares (``hub.MODEL_FILES`` / ``hub.OPTION_MODEL_FILES``).  Every call
runs the stages of vlm_ros/backends/torch_base.py on a ``TextRequest``: its task says which model
answers (describe: the caption model, ask: the question model); ``preprocess`` (processor ->
tensors on that model's device), ``forward`` (greedy ``generate``, as the model cards do, and
decode the new tokens) and ``postprocess_text``.  ``score_threshold`` is accepted (the node and
CLI pass the user's to every backend), range-checked and unused: BLIP has no scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

from vlm_ros.backends.base import BackendError, CapabilityError
from vlm_ros.backends.hf import load_pretrained, to_device
from vlm_ros.backends.torch_base import TextRequest, TorchBackend
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


def _architecture(model: str, allowed: Sequence[str], role: str, example: str) -> str:
    """The checkpoint's architecture, refused with advice unless it is one of ``allowed``."""
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


class BlipBackend(TorchBackend):
    """BLIP captions (``describe``) and BLIP VQA answers (``ask``); no detection."""

    name = "blip"
    vocabulary = None
    resolves_referring_expressions = False
    capabilities = frozenset({"describe", "ask"})
    default_score_threshold = None  # no detections, no scores: nothing to threshold

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        question_model: str | None = DEFAULT_QUESTION_MODEL,
        max_new_tokens: int = 30,
        answer_tokens: int = 10,
        caption_prompt: str = "",
        score_threshold: float | None = None,
    ) -> None:
        """``score_threshold`` is taken (the node and CLI pass it to every backend), checked and
        unused: BLIP has no detections to threshold."""
        super().__init__(score_threshold)
        if int(max_new_tokens) < 1 or int(answer_tokens) < 1:
            raise BackendError(f"max_new_tokens and answer_tokens must be >= 1, got "
                               f"{max_new_tokens} and {answer_tokens}")
        if not isinstance(caption_prompt, str):
            raise BackendError(f"caption_prompt must be text, got {caption_prompt!r}")
        self.max_new_tokens = int(max_new_tokens)
        self.answer_tokens = int(answer_tokens)
        self.caption_prompt = caption_prompt.strip()
        architecture = _architecture(model, list(CAPTION_ARCHITECTURES), "model", DEFAULT_MODEL)
        processor = load_pretrained(AutoProcessor, model)
        self.load(CAPTION_ARCHITECTURES[architecture], model, device, dtype)
        self.captioner = _Model(model, processor, self.model, self.device, self.dtype)
        self.answerer: _Model | None = None
        if question_model:
            self.answerer = self._load_question_model(str(question_model), device, dtype)
        else:
            self.capabilities = frozenset({"describe"})

    def _load_question_model(self, model: str, device: str, dtype: str) -> _Model:
        architecture = _architecture(model, list(QUESTION_ARCHITECTURES), "question_model",
                                     DEFAULT_QUESTION_MODEL)
        model_class, prompt = QUESTION_ARCHITECTURES[architecture]
        processor = load_pretrained(AutoProcessor, model)
        loaded, where, precision = self.load_another(model_class, model, device, dtype)
        return _Model(model, processor, loaded, where, precision, prompt)

    # ------------------------------------------------------------------ the stages
    def model_for(self, request: TextRequest) -> _Model:
        """Which model answers ``request``: the caption model describes, the question model
        answers questions."""
        if request.task == "ask" and self.answerer is not None:
            return self.answerer
        return self.captioner

    def preprocess(self, rgb: np.ndarray, request: TextRequest) -> dict[str, Any]:
        """Processor inputs for one image (a PIL image, as the model cards pass it) and the
        text (describe: ``caption_prompt`` if any; ask: the question in the model's prompt), on
        the answering model's device and dtype."""
        which = self.model_for(request)
        image = Image.fromarray(np.ascontiguousarray(rgb))
        text = which.prompt.format(question=request.question) if request.task == "ask" \
            else self.caption_prompt
        if text:
            batch = which.processor(images=image, text=text, return_tensors="pt")
        else:
            batch = which.processor(images=image, return_tensors="pt")
        return to_device(batch, which.device, which.dtype)

    def forward(self, inputs: dict[str, Any], request: TextRequest) -> str:
        """Greedy ``generate`` and the decoded answer.  A decoder-only language model (BLIP-2
        with OPT) echoes the prompt first; that echo is cut off."""
        which = self.model_for(request)
        budget = self.answer_tokens if request.task == "ask" else self.max_new_tokens
        tokens = which.model.generate(**inputs, max_new_tokens=budget, do_sample=False,
                                      num_beams=1)[0].cpu()
        prompt_ids = inputs.get("input_ids")
        if prompt_ids is not None:
            prompt_ids = prompt_ids[0].cpu()
            n = len(prompt_ids)
            if len(tokens) > n and torch.equal(tokens[:n], prompt_ids):
                tokens = tokens[n:]
        return which.processor.decode(tokens, skip_special_tokens=True)

    def postprocess_text(self, outputs: str, inputs: Any, request: TextRequest) -> str:
        """The decoded answer, whitespace collapsed."""
        return " ".join(outputs.split())

    # ------------------------------------------------------------------ interface
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        raise CapabilityError(NO_DETECT)

    def ask(self, rgb: np.ndarray, question: str) -> str:
        if self.answerer is None:
            raise CapabilityError("backend 'blip' was started without a question_model, so it "
                                  f"cannot answer questions; set question_model (e.g. "
                                  f"{DEFAULT_QUESTION_MODEL})")
        return super().ask(rgb, question)

    def warmup(self) -> None:
        """A caption (and an answer) on a dummy image: ``detect`` is not there to warm up."""
        dummy = np.zeros((64, 64, 3), np.uint8)
        self.describe(dummy)
        if self.answerer is not None:
            self.ask(dummy, "what is this?")

    def info(self) -> dict[str, object]:
        return {**super().info(),
                "question_model": self.answerer.model_id if self.answerer else None,
                "max_new_tokens": self.max_new_tokens, "answer_tokens": self.answer_tokens}
