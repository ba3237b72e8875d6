"""Qwen2.5-VL / Qwen3-VL: a chat VLM that grounds whole referring expressions and answers questions.

Why: "the mug left of the laptop" is one phrase to Qwen-VL; it resolves colour, relations and
ordinals itself, and also captions frames and answers questions ("is the door open?").  The cost
is latency (a 3B model generates ~tens of tokens per box) and the lack of a calibrated score.

The split stays visible (the stages of vlm_ros/backends/torch_base.py): the model family's own
processor on one chat prompt per phrase (``preprocess``) -> ``generate`` and decode (``forward``)
-> parse the JSON answer (``postprocess``, ``parsing.parse_json_boxes``), or for describe / ask
the answer text (``postprocess_text``).  Everything the official processor returns goes to
``generate`` unchanged: besides ids, mask, pixels and ``image_grid_thw`` that is
``mm_token_type_ids`` (transformers >= 5), which marks the image tokens so that
``get_rope_index`` gives them M-RoPE's (t, h, w) grid positions; without it transformers falls back
to plain 1-D positions (Qwen2.5-VL) or refuses (Qwen3-VL) and localisation degrades silently.
``AutoProcessor`` also loads the video processor, which needs torchvision; where torchvision is
missing we build the same processor class without its video processor (``_still_image_processor``)
so the image path is still the official code, not a re-implementation.

Coordinates differ by generation, which ``parse`` handles from the config's model_type:
Qwen2.5-VL answers in absolute pixels of its *resized* input (the smart-resize grid:
``image_grid_thw`` x patch size), Qwen3-VL on a 0-1000 grid of the image.  Boxes come back in
pixels of the caller's image.  The model gives no per-box confidence: a box gets the ``score`` /
``confidence`` the model wrote in its JSON if any, else 1.0 (it was asked for this phrase and
named it), and the score threshold (default 0.3, ``default_score_threshold``) only filters boxes
with a written score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import transformers
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.hf import load_pretrained, resolve_device, resolve_dtype, to_device
from vlm_ros.backends.parsing import (
    extract_answer_text,
    parse_json_boxes,
)
from vlm_ros.backends.torch_base import DetectRequest, Request, TextRequest, TorchBackend
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


class QwenVlBackend(TorchBackend):
    """Qwen2.5-VL / Qwen3-VL through ``AutoModelForImageTextToText``: phrases -> boxes, Q&A."""

    name = "qwen_vl"
    vocabulary = None
    resolves_referring_expressions = True
    capabilities = frozenset({"describe", "ask"})
    # Qwen-VL writes no score; the floor applies only to boxes whose JSON carries one ("score" /
    # "confidence"), the others score 1.0.  0.3: the value this adapter has always run at.
    default_score_threshold = 0.3
    everything_pass = True  # empty queries: the detect-all prompt, not a phrase list

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float | None = None,
        max_new_tokens: int = 256,
        answer_tokens: int = 128,
        coords: str = "auto",
    ) -> None:
        super().__init__(score_threshold)
        if max_new_tokens < 1 or answer_tokens < 1:
            raise BackendError("max_new_tokens and answer_tokens must be >= 1")
        self.max_new_tokens = int(max_new_tokens)
        self.answer_tokens = int(answer_tokens)
        model_type = getattr(load_pretrained(AutoConfig, model), "model_type", "")
        self.processor = load_processor(model, model_type)
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer
        # dtype "auto" depends on the family (hf.auto_dtype: no float16 for Qwen-VL).
        precision = resolve_dtype(dtype, resolve_device(device), family=model_type)
        self.load(AutoModelForImageTextToText, model, device, str(precision).removeprefix("torch."))
        self.coords = COORDS_BY_MODEL_TYPE.get(model_type, "auto") if coords == "auto" else coords
        self.image_token = getattr(self.processor, "image_token", None) or IMAGE_TOKEN

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

    def task_texts(self, request: Request) -> list[str]:
        """What the user turn says, one generation each: the grounding prompt per phrase, the
        detect-all prompt for everything, the describe prompt, or the question."""
        if isinstance(request, TextRequest):
            return [DESCRIBE_PROMPT if request.task == "describe"
                    else request.question + ASK_SUFFIX]
        return [GROUNDING_PROMPT.format(phrase=prompt) for prompt in request.prompts] \
            or [DETECT_ALL_PROMPT]

    def encode(self, rgb: np.ndarray, text: str) -> dict[str, Any]:
        """Model kwargs for one user turn: every key the official processor returns, as it
        returns it, on the device."""
        encoded = self.processor(images=[np.ascontiguousarray(rgb)], text=[self._prompt(text)],
                                 return_tensors="pt")
        return to_device(encoded, self.device, self.dtype)

    def input_size(self, batch: dict[str, Any]) -> tuple[int, int]:
        """The (width, height) the vision tower actually saw (``image_grid_thw`` x patch)."""
        _, grid_h, grid_w = (int(v) for v in batch["image_grid_thw"][0])
        patch = int(getattr(self.image_processor, "patch_size", 14))
        return grid_w * patch, grid_h * patch

    def preprocess(self, rgb: np.ndarray, request: Request) -> list[dict[str, Any]]:
        """One chat prompt per generation (``task_texts``), through the official processor."""
        return [self.encode(rgb, text) for text in self.task_texts(request)]

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: list[dict[str, Any]], request: Request) -> list[str]:
        """Greedy ``generate`` per prompt; the new tokens decoded without special tokens."""
        budget = self.answer_tokens if isinstance(request, TextRequest) else self.max_new_tokens
        texts = []
        for batch in inputs:
            output = self.model.generate(**batch, max_new_tokens=budget, do_sample=False)
            new_tokens = output[0, batch["input_ids"].shape[1]:]
            texts.append(self.tokenizer.decode(new_tokens, skip_special_tokens=True))
        return texts

    # ------------------------------------------------------------------ post-process
    def postprocess(self, outputs: list[str], inputs: list[dict[str, Any]],
                    request: DetectRequest) -> list[Detection]:
        """Each answer's boxes in pixels of the input image, best first."""
        height, width = request.image_hw
        detections: list[Detection] = []
        for phrase, text, batch in zip(request.phrases or (None,), outputs, inputs):
            detections += self.parse(text, (width, height), self.input_size(batch), phrase)
        return sorted(detections, key=lambda d: -d.score)

    def parse(
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

    def postprocess_text(self, outputs: list[str], inputs: Any, request: TextRequest) -> str:
        """The answer without reasoning blocks, template markers or fences."""
        return extract_answer_text(outputs[0])

    def warmup(self) -> None:
        self.describe(np.zeros((64, 64, 3), np.uint8))

    def info(self) -> dict[str, object]:
        return {**super().info(), "coords": self.coords}
