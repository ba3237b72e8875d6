"""Qwen2.5-VL / Qwen3-VL: a chat VLM that grounds whole referring expressions and answers questions.

Why: "the mug left of the laptop" is one phrase to Qwen-VL; it resolves colour, relations and
ordinals itself, and also captions frames and answers questions ("is the door open?").  The cost
is latency (a 3B model generates ~tens of tokens per box) and the lack of a calibrated score.

The split stays visible: image processor + tokenizer (preprocess) -> ``generate`` -> parse the
JSON answer (``parsing.parse_json_boxes``).  We drive the image processor and tokenizer ourselves
instead of the composite ``AutoProcessor`` because transformers 5 builds the Qwen processor with
a video processor that needs torchvision even for still images; the composite does nothing else
for us than expand the one image placeholder to one token per merged patch, which is one line.

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

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.hf import load_model, load_pretrained, to_device
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
        self.image_processor = load_pretrained(AutoImageProcessor, model)
        self.tokenizer = load_pretrained(AutoTokenizer, model)
        self.model, self.device, self.dtype = load_model(
            AutoModelForImageTextToText, model, device, dtype)
        model_type = getattr(self.model.config, "model_type", "")
        self.coords = COORDS_BY_MODEL_TYPE.get(model_type, "auto") if coords == "auto" else coords
        self.image_token = getattr(self.tokenizer, "image_token", None) or IMAGE_TOKEN
        self._lock = threading.Lock()  # one generation at a time

    # ------------------------------------------------------------------ preprocess
    def _prompt(self, text: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": text}]}]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      tokenize=False)
        return chatml_prompt(text, self.image_token)

    def _inputs(self, rgb: np.ndarray, text: str) -> tuple[dict, tuple[int, int]]:
        """Model kwargs and the (width, height) the vision tower actually saw."""
        vision = self.image_processor(images=[np.ascontiguousarray(rgb)], return_tensors="pt")
        grid_t, grid_h, grid_w = (int(v) for v in vision["image_grid_thw"][0])
        merge = int(getattr(self.image_processor, "merge_size", 2))
        patch = int(getattr(self.image_processor, "patch_size", 14))
        n_tokens = grid_t * grid_h * grid_w // (merge * merge)
        prompt = self._prompt(text).replace(self.image_token, self.image_token * n_tokens, 1)
        encoded = self.tokenizer([prompt], return_tensors="pt")
        batch = to_device({**encoded, **vision}, self.device, self.dtype)
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

