"""Qwen2.5-VL / Qwen3-VL: a chat VLM that grounds whole referring expressions and answers questions.

Why: "the mug left of the laptop" is one phrase to Qwen-VL; it resolves colour, relations and
ordinals itself, and also captions frames and answers questions ("is the door open?").  The cost
is latency (a 3B model generates ~tens of tokens per box) and the lack of a calibrated score.

The split stays visible: the model family's own processor (preprocess) -> ``generate`` -> parse
the JSON answer (``parsing.parse_json_boxes``).  Everything the official processor returns goes to
``generate`` unchanged: besides ids, mask, pixels and ``image_grid_thw`` that is
``mm_token_type_ids`` (transformers >= 5), which marks the image tokens so that
``get_rope_index`` gives them M-RoPE's (t, h, w) grid positions; without it transformers falls back
to plain 1-D positions (Qwen2.5-VL) or refuses (Qwen3-VL) and localisation degrades silently.
``AutoProcessor`` also loads the video processor, which needs torchvision; where torchvision is
missing we build the same processor class without its video processor (``_still_image_processor``)
so the image path is still the official code, not a re-implementation.

Coordinates differ by generation, which ``_postprocess`` handles from the config's model_type:
Qwen2.5-VL answers in absolute pixels of its *resized* input (the smart-resize grid:
``image_grid_thw`` x patch size), Qwen3-VL on a 0-1000 grid of the image.  Boxes come back in
pixels of the caller's image.  The model gives no per-box confidence: a box gets the ``score`` /
``confidence`` the model wrote in its JSON if any, else 1.0 (it was asked for this phrase and
named it), and the score threshold only filters boxes with a written score.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.hf import (
    load_model,
    load_pretrained,
    resolve_device,
    resolve_dtype,
    to_device,
)
from vlm_ros.backends.parsing import (
    extract_answer_text,
    parse_json_boxes,
)
from vlm_ros.core.types import Detection

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"
# model_type -> the coordinate system its grounding answers use (parsing.COORD_SYSTEMS).
COORDS_BY_MODEL_TYPE: dict[str, str] = {
    "qwen2_5_vl": "pixels",  # of the resized model input
    "qwen3_vl": "grid1000",
    "qwen3_vl_moe": "grid1000",
}
IMAGE_TOKEN = "<|image_pad|>"
# The grounding prompt of Qwen's spatial-understanding cookbooks, one phrase per generation.
GROUNDING_PROMPT = ('Locate every "{phrase}" in the image, output the bbox coordinates in JSON '
                    'format as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{phrase}"}}].')
DETECT_ALL_PROMPT = ("Detect all objects in the image, output their bbox coordinates and labels "
                     "in JSON format.")
DESCRIBE_PROMPT = "Describe this image in one short paragraph."
ASK_SUFFIX = " Answer briefly."


def chatml_prompt(text: str, image_token: str = IMAGE_TOKEN) -> str:
    """Qwen's ChatML turn with one image, for tokenizers saved without a chat template."""
    return (f"<|im_start|>user\n<|vision_start|>{image_token}<|vision_end|>{text}<|im_end|>\n"
            "<|im_start|>assistant\n")


def _still_image_processor(model: str, model_type: str) -> Any:
    """The family's official processor class (e.g. ``Qwen2_5_VLProcessor``) without its video
    processor, for installs without torchvision.  Its ``__call__`` - prompt expansion, tokenising,
    ``mm_token_type_ids`` - is the library's own; only the video sub-processor is left out."""
    class_name = PROCESSOR_MAPPING_NAMES.get(model_type)
    processor_class = getattr(transformers, class_name, None) if class_name else None
    if processor_class is None:
        raise BackendError(f"{model}: transformers has no processor for model_type {model_type!r}")

    class StillImageProcessor(processor_class):  # type: ignore[misc, valid-type]
        @classmethod
        def get_attributes(cls) -> list[str]:
            return ["image_processor", "tokenizer"]

    # from_pretrained loads the sub-processors get_attributes names, plus the chat template.
    return load_pretrained(StillImageProcessor, model)


def load_processor(model: str, model_type: str) -> Any:
    """``AutoProcessor`` for ``model``; without torchvision the same class minus its video part."""
    try:
        return load_pretrained(AutoProcessor, model)
    except ImportError:  # the video processor needs torchvision; still images do not
        return _still_image_processor(model, model_type)


class QwenVlBackend(Backend):
    """Qwen2.5-VL / Qwen3-VL through ``AutoModelForImageTextToText``: phrases -> boxes, Q&A."""

    name = "qwen_vl"
    vocabulary = None
    resolves_referring_expressions = True
    capabilities = frozenset({"describe", "ask"})

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float = 0.3,
        max_new_tokens: int = 256,
        answer_tokens: int = 128,
        coords: str = "auto",
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_new_tokens < 1 or answer_tokens < 1:
            raise BackendError("max_new_tokens and answer_tokens must be >= 1")
        self.model_id = model
        self.score_threshold = float(score_threshold)
        self.max_new_tokens = int(max_new_tokens)
        self.answer_tokens = int(answer_tokens)
        model_type = getattr(load_pretrained(AutoConfig, model), "model_type", "")
        self.processor = load_processor(model, model_type)
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer
        # dtype "auto" depends on the family (hf.auto_dtype: no float16 for Qwen-VL).
        precision = resolve_dtype(dtype, resolve_device(device), family=model_type)
        self.model, self.device, self.dtype = load_model(
            AutoModelForImageTextToText, model, device, str(precision).removeprefix("torch."))
        self.coords = COORDS_BY_MODEL_TYPE.get(model_type, "auto") if coords == "auto" else coords
        self.image_token = getattr(self.processor, "image_token", None) or IMAGE_TOKEN
        self._lock = threading.Lock()  # one generation at a time

    # ------------------------------------------------------------------ preprocess
    def _prompt(self, text: str) -> str:
        template = getattr(self.processor, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None)
        if template:
            messages = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": text}]}]
            return self.tokenizer.apply_chat_template(messages, chat_template=template,
                                                      add_generation_prompt=True, tokenize=False)
        return chatml_prompt(text, self.image_token)

    def _inputs(self, rgb: np.ndarray, text: str) -> tuple[dict, tuple[int, int]]:
        """Model kwargs - every key the official processor returns, as it returns it - and the
        (width, height) the vision tower actually saw."""
        encoded = self.processor(images=[np.ascontiguousarray(rgb)], text=[self._prompt(text)],
                                 return_tensors="pt")
        _, grid_h, grid_w = (int(v) for v in encoded["image_grid_thw"][0])
        patch = int(getattr(self.image_processor, "patch_size", 14))
        batch = to_device(encoded, self.device, self.dtype)
        return batch, (grid_w * patch, grid_h * patch)

    def _generate(self, rgb: np.ndarray, text: str, max_new_tokens: int) -> tuple[str, tuple]:
        require_rgb(rgb, self.name)
        batch, input_size = self._inputs(rgb, text)
        with self._lock, torch.inference_mode():
            output = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = output[0, batch["input_ids"].shape[1]:]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True), input_size

    # ------------------------------------------------------------------ post-process
    def _postprocess(
        self, text: str, image_size: tuple[int, int], input_size: tuple[int, int],
        phrase: str | None,
    ) -> list[Detection]:
        """The model's answer -> Detections in pixels of the original (width, height) image."""
        detections = []
        for box in parse_json_boxes(text, image_size, self.coords, model_input_size=input_size):
            if box.score is not None and box.score < self.score_threshold:
                continue
            detections.append(Detection(
                label=box.label or phrase or "object",
                score=1.0 if box.score is None else box.score,
                bbox=box.bbox, phrase=phrase,
            ))
        return detections

    # ------------------------------------------------------------------ interface
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """One generation per phrase (so every box knows which phrase it answers); [] -> all."""
        if isinstance(queries, str):
            queries = [queries]
        height, width = rgb.shape[:2]
        detections: list[Detection] = []
        for phrase in list(queries) or [None]:
            prompt = GROUNDING_PROMPT.format(phrase=phrase) if phrase else DETECT_ALL_PROMPT
            text, input_size = self._generate(rgb, prompt, self.max_new_tokens)
            detections += self._postprocess(text, (width, height), input_size, phrase)
        return sorted(detections, key=lambda d: -d.score)

    def describe(self, rgb: np.ndarray) -> str:
        return extract_answer_text(self._generate(rgb, DESCRIBE_PROMPT, self.answer_tokens)[0])

    def ask(self, rgb: np.ndarray, question: str) -> str:
        text, _ = self._generate(rgb, question.strip() + ASK_SUFFIX, self.answer_tokens)
        return extract_answer_text(text)

    def warmup(self) -> None:
        self.describe(np.zeros((64, 64, 3), np.uint8))

    def info(self) -> dict[str, object]:
        return {**super().info(), "model": self.model_id, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "coords": self.coords,
                "score_threshold": self.score_threshold}

