"""Grounding DINO and MM-Grounding-DINO (transformers): free phrases in, labelled boxes out.

Why this family: it grounds arbitrary noun phrases ("red cup", "person in a blue jacket") with
boxes much tighter than CLIP-style detectors, and the open MM-Grounding-DINO checkpoints share the
same processor and output format, so one adapter serves both (``AutoModelForZeroShotObjectDetection``
picks the class from the checkpoint's config).

The model scores every box against every *token* of the prompt "red cup. person.", and the stock
``post_process_grounded_object_detection`` names a box by decoding the tokens above a threshold,
which yields sub-word fragments ("red", "cup person") the core cannot match to a query.  So the
post-processing here works at phrase level: the prompt is split back into its phrases on the "."
tokens, a box's score for a phrase is its best token probability inside that phrase, and the box
is labelled with the query phrase that scores highest - exactly the string the caller passed in.

Empty queries mean "everything you can see": the prompt is the generic phrase "object ." (Grounding
DINO's usual class-agnostic prompt), and its boxes are labelled "object".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.detections import suppress_duplicates
from vlm_ros.backends.hf import load_pretrained, to_device
from vlm_ros.backends.torch_base import DetectRequest, TorchBackend, check_fraction
from vlm_ros.core.types import Detection

try:
    import torch
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
except ImportError as exc:  # pragma: no cover - the registry turns this into install advice
    raise ImportError("transformers and torch are needed for grounding_dino", name=exc.name) from exc


DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"
PHRASE_END = "."  # Grounding DINO's phrase separator; phrases must not contain it themselves
EVERYTHING_QUERIES = ("object",)  # the prompt "object ." when the caller asks for everything


def prompt_phrase(query: str) -> str:
    """The form Grounding DINO was trained on: lowercase words, no inner "." (it ends a phrase)."""
    return " ".join(query.replace(PHRASE_END, " ").lower().split())


def phrase_token_spans(input_ids: Sequence[int], separator_id: int, special_ids: set[int]
                       ) -> list[list[int]]:
    """Token positions of each phrase in "[CLS] red cup . person . [SEP]": [[1, 2], [4]].

    Phrases are the runs of ordinary tokens between separators; a phrase the tokenizer dropped
    entirely gets an empty span (it can then never be the label of a box).
    """
    spans: list[list[int]] = [[]]
    for position, token in enumerate(input_ids):
        if token == separator_id:
            spans.append([])
        elif token not in special_ids:
            spans[-1].append(position)
    return spans[:-1] if not spans[-1] else spans


class GroundingDinoBackend(TorchBackend):
    """Open-vocabulary boxes from Grounding DINO / MM-Grounding-DINO, labelled by query phrase."""

    name = "grounding_dino"
    vocabulary = None
    capabilities = frozenset({"relevance"})
    default_score_threshold = 0.3
    everything_queries = EVERYTHING_QUERIES
    lowercase_prompts = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float | None = None,
        box_threshold: float | None = None,
        text_threshold: float = 0.25,
        nms_iou: float = 0.5,
        duplicate_iou: float = 0.85,
    ) -> None:
        """``box_threshold`` (alias of ``score_threshold``, wins when given) gates a box on its
        best token probability, as upstream; ``text_threshold`` then gates the label: the box's
        best *phrase* must score at least this much, else the box answers none of the queries.
        Both None-able thresholds default to ``default_score_threshold`` (0.3)."""
        if box_threshold is not None:
            score_threshold = check_fraction("box_threshold", box_threshold)
        super().__init__(score_threshold)
        self.text_threshold = check_fraction("text_threshold", text_threshold)
        if not 0.0 < nms_iou <= 1.0 or not 0.0 < duplicate_iou <= 1.0:
            raise BackendError(f"nms_iou/duplicate_iou must be in (0, 1], got {nms_iou}, "
                               f"{duplicate_iou}")
        self.nms_iou = float(nms_iou)
        self.duplicate_iou = float(duplicate_iou)
        self.processor = load_pretrained(AutoProcessor, model)
        self.load(AutoModelForZeroShotObjectDetection, model, device, dtype)
        tokenizer = self.processor.tokenizer
        self._separator_id = tokenizer.convert_tokens_to_ids(PHRASE_END)
        self._special_ids = set(tokenizer.all_special_ids)
        self._max_text_len = int(getattr(self.model.config, "max_text_len", 256))
        # The encoder's feature-map shapes are not in the model output; the relevance map needs
        # them to fold the per-location scores back into an image, so capture them on the way in.
        self._spatial_shapes: list[tuple[int, int]] = []
        # Per call: the template's lock keeps one forward at a time.
        self.model.model.encoder.register_forward_pre_hook(self._capture_shapes, with_kwargs=True)

    @property
    def box_threshold(self) -> float:
        """Upstream's name for the box gate: the same number as ``score_threshold``."""
        return self.score_threshold

    @box_threshold.setter
    def box_threshold(self, value: float) -> None:
        self.score_threshold = value

    def prompt_text(self, phrase: str) -> str:
        return prompt_phrase(phrase)

    def _capture_shapes(self, _module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        self._spatial_shapes = [tuple(map(int, s)) for s in kwargs.get("spatial_shapes_list") or []]

    # ---------------------------------------------------------------- the stages
    def preprocess(self, rgb: np.ndarray, request: DetectRequest) -> Any:
        """Processor on the image and the prompt "red cup. person." -> tensors on the device."""
        inputs = self.processor(images=rgb, text=[list(request.prompts)], return_tensors="pt")
        if inputs["input_ids"].shape[1] > self._max_text_len:
            raise BackendError(f"{len(request.prompts)} query phrases make a prompt of "
                               f"{inputs['input_ids'].shape[1]} tokens; this model reads at most "
                               f"{self._max_text_len}: ask for fewer or shorter phrases")
        return inputs

    def forward(self, inputs: Any, request: DetectRequest) -> tuple[Any, list[tuple[int, int]]]:
        """The model: (its output, the encoder feature-map shapes finest first)."""
        outputs = self.model(**to_device(inputs, self.device, self.dtype))
        return outputs, list(self._spatial_shapes)

    def _phrase_probs(self, token_logits: torch.Tensor, input_ids: Sequence[int],
                      n_phrases: int) -> np.ndarray:
        """(N, tokens) logits -> (N, n_phrases) probabilities: best token inside each phrase."""
        probs = token_logits.float().sigmoid().cpu().numpy()
        spans = phrase_token_spans(input_ids, self._separator_id, self._special_ids)
        scores = np.zeros((probs.shape[0], n_phrases), np.float32)
        for j, span in enumerate(spans[:n_phrases]):
            if span:
                scores[:, j] = probs[:, span].max(axis=1)
        return scores

    def postprocess(self, outputs: tuple[Any, list[tuple[int, int]]], inputs: Any,
                    request: DetectRequest) -> list[Detection]:
        """Model outputs -> phrase-labelled, clipped, de-duplicated Detections.

        Each Detection's ``label`` and ``phrase`` are the query string it answers, verbatim."""
        height, width = request.image_hw
        output = outputs[0]
        phrases = request.phrases
        input_ids = inputs["input_ids"][0].tolist()
        logits = output.logits[0]
        objectness = logits.float().sigmoid().max(dim=-1).values.cpu().numpy()
        phrase_probs = self._phrase_probs(logits, input_ids, len(phrases))
        best = phrase_probs.argmax(axis=1)
        scores = phrase_probs[np.arange(len(best)), best]
        cx, cy, w, h = output.pred_boxes[0].float().cpu().numpy().T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        boxes = np.clip(boxes, 0.0, 1.0) * np.array([width, height, width, height], np.float64)
        keep = ((objectness >= self.box_threshold) & (scores >= self.text_threshold)
                & (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0))
        index = np.flatnonzero(keep)
        kept = suppress_duplicates(boxes[index], scores[index], best[index], self.nms_iou,
                                   self.duplicate_iou)
        detections = []
        for i in index[kept]:
            phrase = phrases[int(best[i])]
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            detections.append(Detection(label=phrase, score=float(scores[i]),
                                        bbox=(x1, y1, x2, y2), phrase=phrase))
        return detections

    # ---------------------------------------------------------------- relevance
    def relevance_map(self, rgb: np.ndarray, phrase: str) -> np.ndarray:
        """HxW float32 in [0, 1]: the encoder's own text-image similarity for ``phrase``.

        Grounding DINO's two-stage head scores *every location* of the finest encoder feature map
        against every prompt token before it picks its box proposals; the map is that score
        (sigmoid, best token of the phrase), upsampled to ``rgb``.  It is the model's evidence,
        not a box-derived heat map and not attention rollout.  A checkpoint without the
        two-stage head falls back to the best phrase score of the boxes covering each pixel.
        """
        self.check_image(rgb)
        height, width = rgb.shape[:2]
        request = self.request(rgb, [phrase])
        if request is None or request.everything:
            return np.zeros((height, width), np.float32)
        inputs, (outputs, shapes) = self.infer(rgb, request)
        input_ids = inputs["input_ids"][0].tolist()
        if outputs.enc_outputs_class is None or not shapes:
            return self._box_relevance(outputs, input_ids, (height, width))
        rows, cols = shapes[0]
        per_location = self._phrase_probs(outputs.enc_outputs_class[0, : rows * cols],
                                          input_ids, 1)[:, 0].reshape(rows, cols)
        # Crop the padding the processor may add (pixel_mask) before stretching to the image.
        mask = inputs["pixel_mask"][0].numpy().astype(bool)
        valid_rows = int(np.ceil(mask.any(axis=1).sum() / mask.shape[0] * rows))
        valid_cols = int(np.ceil(mask.any(axis=0).sum() / mask.shape[1] * cols))
        per_location = per_location[: max(valid_rows, 1), : max(valid_cols, 1)]
        resized = cv2.resize(per_location, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(resized, 0.0, 1.0).astype(np.float32)

    def _box_relevance(self, outputs: Any, input_ids: list[int], image_hw: tuple[int, int]
                       ) -> np.ndarray:
        """Fallback: max phrase score over the predicted boxes covering each pixel."""
        height, width = image_hw
        scores = self._phrase_probs(outputs.logits[0], input_ids, 1)[:, 0]
        cx, cy, w, h = outputs.pred_boxes[0].float().cpu().numpy().T
        heat = np.zeros((height, width), np.float32)
        for score, x1, y1, x2, y2 in zip(scores, (cx - w / 2) * width, (cy - h / 2) * height,
                                         (cx + w / 2) * width, (cy + h / 2) * height):
            r1, r2 = int(np.clip(y1, 0, height)), int(np.clip(np.ceil(y2), 0, height))
            c1, c2 = int(np.clip(x1, 0, width)), int(np.clip(np.ceil(x2), 0, width))
            heat[r1:r2, c1:c2] = np.maximum(heat[r1:r2, c1:c2], score)
        return heat

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "model_type": getattr(self.model.config, "model_type", ""),
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
        }
