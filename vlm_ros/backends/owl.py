"""Open-vocabulary detection with OWLv2 / OWL-ViT (transformers): any phrase, boxes in pixels.

Why the text tower is cached: a robot grounds one command over many frames (tracking, retries,
"find" while turning), and the query phrases do not change between those frames.  The plain
``model(**inputs)`` forward re-encodes every phrase on every frame; here the phrases are encoded
once per distinct tuple (a small LRU), and each frame runs only the image tower plus the two tiny
heads (``class_predictor`` with the cached ``query_embeds``, ``box_predictor``).  The result is
the same numbers as the full forward (tests/test_backend_owl.py proves it).

Coordinate frames: OWLv2's processor pads the image at the bottom/right to a square before
resizing, so its normalised boxes are fractions of that square; OWL-ViT stretches the image to
the model's square, so its boxes are fractions of the image's own width and height.  Both end in
pixels of the input rgb, clipped to it; boxes that lie wholly in OWLv2's padding are dropped.
The image goes to the checkpoint's own image processor unchanged, so the pixel values are the
reference ones (OWLv2: pad to a square, then its anti-aliased resize).

Thresholds: text queries run at ``score_threshold`` (default 0.1, OWL's usual operating point:
its sigmoid scores are calibrated low and 0.3 misses most real objects) with per-phrase NMS 0.5.
Image-guided queries (``detect_by_example``) follow transformers'
``post_process_image_guided_detection``: NMS 0.3 over all boxes, then ``example_threshold``
(default 0.9 for OWLv2, 0.6 for OWL-ViT, the values transformers documents), then its relative
cut (boxes under a tenth of the best score are dropped).

Empty queries mean "everything you can see": the 80 COCO class names are asked for (one pass,
their embeddings cached like any query set), and one object boxed under two names is kept once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from transformers import (
    AutoConfig,
    Owlv2ForObjectDetection,
    Owlv2Processor,
    OwlViTForObjectDetection,
    OwlViTProcessor,
)

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.detections import suppress_duplicates
from vlm_ros.backends.hf import load_pretrained, to_device
from vlm_ros.backends.torch_base import DetectRequest, TorchBackend, check_fraction
from vlm_ros.core.types import Detection
from vlm_ros.core.vocabulary import COCO_LABELS

DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"
EXAMPLE_LABEL = "example"  # label of boxes found by detect_by_example (there is no phrase)
# "Everything you can see" (empty queries): the COCO class names, a household + street vocabulary
# the core already knows (they are the ssd_coco labels).
EVERYTHING_QUERIES: tuple[str, ...] = tuple(COCO_LABELS.values())
# transformers' post_process_image_guided_detection: NMS IoU, and boxes under this fraction of
# the best score get alpha 0 there (they are not returned).
EXAMPLE_NMS_IOU = 0.3
EXAMPLE_RELATIVE_FLOOR = 0.1


@dataclass(frozen=True)
class OwlFamily:
    """What differs between OWLv2 and OWL-ViT: classes, the CLIP core's attribute, padding."""

    model_class: type
    processor_class: type
    core_attribute: str  # ForObjectDetection.<this> is the CLIP-style model with text/vision towers
    pads_to_square: bool  # OWLv2 pads bottom/right to a square; OWL-ViT stretches
    example_threshold: float  # image-guided score floor transformers documents for the family


# config.model_type -> family.  A new OWL generation is one entry here.
FAMILIES: dict[str, OwlFamily] = {
    "owlv2": OwlFamily(Owlv2ForObjectDetection, Owlv2Processor, "owlv2", True, 0.9),
    "owlvit": OwlFamily(OwlViTForObjectDetection, OwlViTProcessor, "owlvit", False, 0.6),
}


class OwlBackend(TorchBackend):
    """OWLv2 (default) or OWL-ViT: free phrases -> boxes, plus a per-pixel relevance map."""

    name = "owl"
    vocabulary = None
    capabilities = frozenset({"relevance"})
    # OWL's sigmoid scores are calibrated low: 0.1 is the usual operating point (0.3 misses most
    # real objects), hence the lower default than the closed-set detector's.
    default_score_threshold = 0.1
    everything_queries = EVERYTHING_QUERIES

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float | None = None,
        nms_iou: float = 0.5,
        text_cache_size: int = 4,
        example_threshold: float | None = None,
    ) -> None:
        """``score_threshold``: text queries (None = 0.1); ``example_threshold``: image-guided
        queries (None = the family's documented 0.9 OWLv2 / 0.6 OWL-ViT)."""
        super().__init__(score_threshold)
        if not 0.0 < nms_iou <= 1.0:
            raise BackendError(f"nms_iou must be in (0, 1], got {nms_iou}")
        self.nms_iou = float(nms_iou)
        self.text_cache_size = max(1, int(text_cache_size))
        config = load_pretrained(AutoConfig, model)
        try:
            self.family = FAMILIES[config.model_type]
        except KeyError:
            raise BackendError(
                f"{model!r} is a {config.model_type!r} model; the owl backend runs "
                f"{', '.join(FAMILIES)} checkpoints") from None
        self.example_threshold = check_fraction(
            "example_threshold",
            self.family.example_threshold if example_threshold is None else example_threshold)
        self.processor = load_pretrained(self.family.processor_class, model)
        self.load(self.family.model_class, model, device, dtype)
        self._text_cache: OrderedDict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = \
            OrderedDict()

    # ------------------------------------------------------------------ towers
    @property
    def text_model(self) -> torch.nn.Module:
        """The text tower (what the cache saves running)."""
        return getattr(self.model, self.family.core_attribute).text_model

    def text_embeddings(self, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, Q, D) normalised query embeddings and (1, Q) query mask, cached per query tuple.

        Called from ``preprocess``, under the template's lock and inference mode (the LRU is
        shared state)."""
        key = tuple(queries)
        cached = self._text_cache.get(key)
        if cached is not None:
            self._text_cache.move_to_end(key)
            return cached
        tokens = self.processor.tokenizer(
            list(key), padding="max_length", truncation=True, return_tensors="pt")
        tokens = to_device(tokens, self.device, self.dtype)
        core = getattr(self.model, self.family.core_attribute)
        features = core.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        # transformers 5 returns a ModelOutput with the projected pooler output, 4.x a tensor.
        embeds = getattr(features, "pooler_output", features)
        embeds = embeds / torch.linalg.norm(embeds, ord=2, dim=-1, keepdim=True)
        # The full forward marks a query as padding when its first token id is 0.
        mask = tokens["input_ids"][:, 0] > 0
        entry = (embeds[None], mask[None])
        self._text_cache[key] = entry
        while len(self._text_cache) > self.text_cache_size:
            self._text_cache.popitem(last=False)
        return entry

    def pixel_values(self, rgb: np.ndarray) -> torch.Tensor:
        """The checkpoint's image processor on ``rgb`` as it is (OWLv2: pad to a square, then
        its anti-aliased resize; OWL-ViT: resize), normalised, on the device."""
        batch = self.processor.image_processor(images=rgb, return_tensors="pt")
        return to_device(batch, self.device, self.dtype)["pixel_values"]

    # ------------------------------------------------------------------ the stages
    def preprocess(self, rgb: np.ndarray, request: DetectRequest) -> dict[str, Any]:
        """Pixel values and the (cached) query embeddings of the request's prompts."""
        query_embeds, query_mask = self.text_embeddings(request.prompts)
        return {"pixel_values": self.pixel_values(rgb), "query_embeds": query_embeds,
                "query_mask": query_mask}

    def forward(self, inputs: dict[str, Any], request: DetectRequest
                ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Image tower -> feature map -> class head against the query embeddings -> box head:
        (logits (1, P, Q), pred_boxes (1, P, 4) cxcywh 0..1, patch grid (h, w))."""
        feature_map = self.model.image_embedder(pixel_values=inputs["pixel_values"])[0]
        batch, grid_h, grid_w, hidden = feature_map.shape
        image_feats = feature_map.reshape(batch, grid_h * grid_w, hidden)
        logits = self.model.class_predictor(image_feats, inputs["query_embeds"],
                                            inputs["query_mask"])[0]
        boxes = self.model.box_predictor(image_feats, feature_map)
        return logits.float(), boxes.float(), (grid_h, grid_w)

    def raw_outputs(
        self, rgb: np.ndarray, queries: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(logits (1, P, Q), pred_boxes (1, P, 4) cxcywh 0..1, patch grid (h, w)) - cached text."""
        request = self.request(rgb, queries)
        if request is None or request.everything:
            raise BackendError("raw_outputs needs at least one phrase")
        return self.infer(rgb, request)[1]

    def postprocess(self, outputs: tuple[torch.Tensor, torch.Tensor, tuple[int, int]],
                    inputs: dict[str, Any], request: DetectRequest) -> list[Detection]:
        """Sigmoid scores, best phrase per box, pixels of the input, clipped, per-phrase NMS
        (for "everything", one object under two class names is kept once)."""
        logits, boxes, _ = outputs
        height, width = request.image_hw
        result = self.processor.image_processor.post_process_object_detection(
            outputs=_BoxOutputs(logits=logits.cpu(), pred_boxes=boxes.cpu()),
            threshold=self.score_threshold, target_sizes=[self._target_size(request.image_hw)])[0]
        xyxy = self._clip(result["boxes"].numpy(), height, width)
        scores = result["scores"].numpy().astype(np.float64)
        labels = result["labels"].numpy().astype(int)
        visible = _visible(xyxy)
        xyxy, scores, labels = xyxy[visible], scores[visible], labels[visible]
        # Named queries: duplicate_iou > 1 never fires, distinct phrases may rightly box one
        # object ("a cup", "a red cup"); only same-phrase duplicates are suppressed.
        duplicate_iou = self.nms_iou if request.everything else 1.1
        keep = suppress_duplicates(xyxy, scores, labels, self.nms_iou, duplicate_iou)
        phrases = request.phrases
        return [
            Detection(label=phrases[labels[i]], score=float(scores[i]),
                      bbox=tuple(float(v) for v in xyxy[i]), phrase=phrases[labels[i]])
            for i in keep
        ]

    def _target_size(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """What normalised boxes are fractions of: the padded square (OWLv2) or the image."""
        height, width = image_hw
        side = max(height, width)
        return (side, side) if self.family.pads_to_square else (height, width)

    @staticmethod
    def _clip(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        xyxy = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
        xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0.0, width)
        xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0.0, height)
        return xyxy

    # ------------------------------------------------------------------ image-guided
    def detect_by_example(self, rgb: np.ndarray, example_rgb: np.ndarray) -> list[Detection]:
        """Boxes that look like the main object of ``example_rgb`` (one-shot, image-guided).

        Uses the model's ``image_guided_detection`` (the example's most object-like patch
        embedding becomes the query) and transformers' image-guided post-processing: NMS 0.3
        over all boxes, ``example_threshold``, and the drop of boxes under a tenth of the best
        score.  Labels are ``"example"``; scores are the model's sigmoid scores (transformers
        returns them rescaled to display alphas, the best box always 1.0).
        """
        self.check_image(rgb)
        self.check_image(example_rgb)
        with self.exclusive():
            outputs = self.model.image_guided_detection(
                pixel_values=self.pixel_values(rgb),
                query_pixel_values=self.pixel_values(example_rgb))
        height, width = rgb.shape[:2]
        scores, boxes = image_guided_boxes(
            outputs.logits[0].float().cpu(), outputs.target_pred_boxes[0].float().cpu(),
            self.example_threshold, EXAMPLE_NMS_IOU)
        xyxy = self._clip(boxes * np.array(self._target_size((height, width))[::-1] * 2),
                          height, width)
        visible = _visible(xyxy)
        order = np.argsort(-scores[visible], kind="stable")
        return [Detection(label=EXAMPLE_LABEL, score=float(score), phrase=EXAMPLE_LABEL,
                          bbox=tuple(float(v) for v in box))
                for score, box in zip(scores[visible][order], xyxy[visible][order])]

    # ------------------------------------------------------------------ relevance
    def relevance_map(self, rgb: np.ndarray, phrase: str) -> np.ndarray:
        """HxW float32 0..1: the sigmoid class score of each patch for ``phrase``, upsampled."""
        self.check_image(rgb)
        if not phrase or not phrase.strip():
            raise BackendError("relevance_map needs a phrase")
        logits, _, (grid_h, grid_w) = self.raw_outputs(rgb, [phrase.strip()])
        patches = torch.sigmoid(logits[0, :, 0]).reshape(grid_h, grid_w).cpu().numpy()
        height, width = rgb.shape[:2]
        if self.family.pads_to_square:
            side = max(height, width)
            square = cv2.resize(patches.astype(np.float32), (side, side),
                                interpolation=cv2.INTER_LINEAR)
            upsampled = square[:height, :width]
        else:
            upsampled = cv2.resize(patches.astype(np.float32), (width, height),
                                   interpolation=cv2.INTER_LINEAR)
        return np.clip(upsampled, 0.0, 1.0).astype(np.float32)

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "model_type": self.family.core_attribute,
            "example_threshold": self.example_threshold,
            "cached_query_sets": len(self._text_cache),
        }


def image_guided_boxes(logits: torch.Tensor, boxes: torch.Tensor, threshold: float,
                       nms_iou: float = EXAMPLE_NMS_IOU) -> tuple[np.ndarray, np.ndarray]:
    """transformers' ``post_process_image_guided_detection`` for one image, keeping the scores.

    ``logits`` (P, Q) and ``boxes`` (P, 4) cxcywh 0..1 -> (scores (K,), boxes (K, 4) x1y1x2y2
    0..1) of the boxes it returns, in patch order: greedy NMS at ``nms_iou`` on the normalised
    boxes over all patches, then ``threshold``, then the boxes whose display alpha is 0 (under
    a tenth of the best score) are dropped.  Scores are the sigmoid scores, not the alphas.
    """
    scores = torch.sigmoid(logits.max(dim=-1).values).numpy().astype(np.float64)
    cx, cy, w, h = boxes.numpy().astype(np.float64).T
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    alive = scores.copy()
    if nms_iou < 1.0:
        areas = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
        for i in np.argsort(-scores, kind="stable"):
            if not alive[i]:
                continue
            wide = np.clip(np.minimum(corners[i, 2], corners[:, 2])
                           - np.maximum(corners[i, 0], corners[:, 0]), 0, None)
            tall = np.clip(np.minimum(corners[i, 3], corners[:, 3])
                           - np.maximum(corners[i, 1], corners[:, 1]), 0, None)
            inter = wide * tall
            ious = inter / (areas[i] + areas - inter)
            ious[i] = -1.0
            alive[ious > nms_iou] = 0.0
    if not alive.any():
        return np.zeros(0), np.zeros((0, 4))
    alive[alive < threshold] = 0.0
    best = alive.max() + 1e-6
    keep = (alive - best * EXAMPLE_RELATIVE_FLOOR) / (best * (1 - EXAMPLE_RELATIVE_FLOOR)) > 0
    return scores[keep], corners[keep]


def _visible(xyxy: np.ndarray) -> np.ndarray:
    """Boxes at least a pixel wide and tall after clipping (not wholly in OWLv2's padding)."""
    return (xyxy[:, 2] - xyxy[:, 0] >= 1.0) & (xyxy[:, 3] - xyxy[:, 1] >= 1.0)


@dataclass
class _BoxOutputs:
    """The two fields the processor's post-processing reads from a model output."""

    logits: torch.Tensor
    pred_boxes: torch.Tensor
