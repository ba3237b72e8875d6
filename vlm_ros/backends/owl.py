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
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

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

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.detections import suppress_duplicates
from vlm_ros.backends.hf import load_model, load_pretrained, to_device
from vlm_ros.core.types import Detection

DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"
EXAMPLE_LABEL = "example"  # label of boxes found by detect_by_example (there is no phrase)


@dataclass(frozen=True)
class OwlFamily:
    """What differs between OWLv2 and OWL-ViT: classes, the CLIP core's attribute, padding."""

    model_class: type
    processor_class: type
    core_attribute: str  # ForObjectDetection.<this> is the CLIP-style model with text/vision towers
    pads_to_square: bool  # OWLv2 pads bottom/right to a square; OWL-ViT stretches


# config.model_type -> family.  A new OWL generation is one entry here.
FAMILIES: dict[str, OwlFamily] = {
    "owlv2": OwlFamily(Owlv2ForObjectDetection, Owlv2Processor, "owlv2", True),
    "owlvit": OwlFamily(OwlViTForObjectDetection, OwlViTProcessor, "owlvit", False),
}


class OwlBackend(Backend):
    """OWLv2 (default) or OWL-ViT: free phrases -> boxes, plus a per-pixel relevance map."""

    name = "owl"
    vocabulary = None
    capabilities = frozenset({"relevance"})

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        score_threshold: float = 0.1,
        nms_iou: float = 0.5,
        text_cache_size: int = 4,
    ) -> None:
        # OWL's sigmoid scores are calibrated low: 0.1 is the usual operating point (0.3 misses
        # most real objects), hence the lower default than the closed-set detector's.
        if not 0.0 <= score_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise BackendError(f"nms_iou must be in (0, 1], got {nms_iou}")
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.text_cache_size = max(1, int(text_cache_size))
        self.model_id = model
        config = load_pretrained(AutoConfig, model)
        try:
            self.family = FAMILIES[config.model_type]
        except KeyError:
            raise BackendError(
                f"{model!r} is a {config.model_type!r} model; the owl backend runs "
                f"{', '.join(FAMILIES)} checkpoints") from None
        self.processor = load_pretrained(self.family.processor_class, model)
        self.model, self.device, self.dtype = load_model(
            self.family.model_class, model, device, dtype)
        self._text_cache: OrderedDict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = \
            OrderedDict()
        self._lock = threading.Lock()  # one forward at a time; the LRU is shared state

    # ------------------------------------------------------------------ towers
    @property
    def text_model(self) -> torch.nn.Module:
        """The text tower (what the cache saves running)."""
        return getattr(self.model, self.family.core_attribute).text_model

    def text_embeddings(self, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, Q, D) normalised query embeddings and (1, Q) query mask, cached per query tuple."""
        key = tuple(queries)
        cached = self._text_cache.get(key)
        if cached is not None:
            self._text_cache.move_to_end(key)
            return cached
        tokens = self.processor.tokenizer(
            list(key), padding="max_length", truncation=True, return_tensors="pt")
        tokens = to_device(tokens, self.device, self.dtype)
        core = getattr(self.model, self.family.core_attribute)
        with torch.inference_mode():
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

    def model_input(self, rgb: np.ndarray) -> np.ndarray:
        """The image handed to the processor: OWLv2 frames shrunk so the long side fits the model.

        Why: OWLv2's processor pads to a square and then anti-alias-resizes the whole padded
        float image with scipy (about 0.25 s for 1280x720 on a CPU - longer than the model on a
        GPU).  Shrinking first with OpenCV's area filter keeps the aspect ratio and makes that
        step a near no-op; the long side is scaled exactly, so boxes stay fractions of the same
        square (the short side rounds by under half a model pixel).
        """
        side = max(rgb.shape[:2])
        target = int(self.processor.image_processor.size["height"])
        if not self.family.pads_to_square or side <= target:
            return rgb
        scale = target / side
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)

    def pixel_values(self, rgb: np.ndarray) -> torch.Tensor:
        """Preprocess: the processor's resize (and OWLv2's pad) + normalisation, on the device."""
        batch = self.processor.image_processor(images=self.model_input(rgb), return_tensors="pt")
        return to_device(batch, self.device, self.dtype)["pixel_values"]

    def raw_outputs(
        self, rgb: np.ndarray, queries: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(logits (1, P, Q), pred_boxes (1, P, 4) cxcywh 0..1, patch grid (h, w)) - cached text.

        Image tower -> feature map -> class head against the cached query embeddings -> box head.
        """
        query_embeds, query_mask = self.text_embeddings(queries)
        with torch.inference_mode():
            feature_map = self.model.image_embedder(pixel_values=self.pixel_values(rgb))[0]
            batch, grid_h, grid_w, hidden = feature_map.shape
            image_feats = feature_map.reshape(batch, grid_h * grid_w, hidden)
            logits = self.model.class_predictor(image_feats, query_embeds, query_mask)[0]
            boxes = self.model.box_predictor(image_feats, feature_map)
        return logits.float(), boxes.float(), (grid_h, grid_w)

    # ------------------------------------------------------------------ detect
    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Boxes for each phrase in ``queries`` (all phrases in one pass), best first.

        Open vocabulary needs words: empty ``queries`` returns [] rather than guessing a list.
        """
        require_rgb(rgb, self.name)
        if isinstance(queries, str):
            queries = [queries]
        phrases = [q.strip() for q in queries if q and q.strip()]
        if not phrases:
            return []
        with self._lock:
            logits, boxes, _ = self.raw_outputs(rgb, phrases)
        return self._postprocess(logits, boxes, rgb.shape[:2], phrases)

    def detect_by_example(self, rgb: np.ndarray, example_rgb: np.ndarray) -> list[Detection]:
        """Boxes that look like the main object of ``example_rgb`` (one-shot, image-guided).

        Uses the model's ``image_guided_detection``: the example's most object-like patch embedding
        becomes the query.  Labels are ``"example"``.
        """
        require_rgb(rgb, self.name)
        require_rgb(example_rgb, self.name)
        with self._lock, torch.inference_mode():
            outputs = self.model.image_guided_detection(
                pixel_values=self.pixel_values(rgb),
                query_pixel_values=self.pixel_values(example_rgb))
        return self._postprocess(outputs.logits.float(), outputs.target_pred_boxes.float(),
                                 rgb.shape[:2], [EXAMPLE_LABEL])

    def _postprocess(
        self, logits: torch.Tensor, boxes: torch.Tensor, image_hw: tuple[int, int],
        phrases: Sequence[str],
    ) -> list[Detection]:
        """Sigmoid scores, best phrase per box, pixels of the input, clipped, class-wise NMS."""
        height, width = image_hw
        side = max(height, width)
        # Normalised boxes are fractions of the padded square (OWLv2) or of the image (OWL-ViT).
        target = (side, side) if self.family.pads_to_square else (height, width)
        outputs = _BoxOutputs(logits=logits.cpu(), pred_boxes=boxes.cpu())
        result = self.processor.image_processor.post_process_object_detection(
            outputs=outputs, threshold=self.score_threshold, target_sizes=[target])[0]
        xyxy = result["boxes"].numpy().astype(np.float64)
        xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0.0, width)
        xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0.0, height)
        scores = result["scores"].numpy().astype(np.float64)
        labels = result["labels"].numpy().astype(int)
        visible = (xyxy[:, 2] - xyxy[:, 0] >= 1.0) & (xyxy[:, 3] - xyxy[:, 1] >= 1.0)
        xyxy, scores, labels = xyxy[visible], scores[visible], labels[visible]
        # duplicate_iou > 1 never fires: distinct phrases may rightly box one object
        # ("a cup", "a red cup"); only same-phrase duplicates are suppressed.
        keep = suppress_duplicates(xyxy, scores, labels, self.nms_iou, duplicate_iou=1.1)
        return [
            Detection(label=phrases[labels[i]], score=float(scores[i]),
                      bbox=tuple(float(v) for v in xyxy[i]), phrase=phrases[labels[i]])
            for i in keep
        ]

    # ------------------------------------------------------------------ relevance
    def relevance_map(self, rgb: np.ndarray, phrase: str) -> np.ndarray:
        """HxW float32 0..1: the sigmoid class score of each patch for ``phrase``, upsampled."""
        require_rgb(rgb, self.name)
        if not phrase or not phrase.strip():
            raise BackendError("relevance_map needs a phrase")
        with self._lock:
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
            "model": self.model_id,
            "model_type": self.family.core_attribute,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "score_threshold": self.score_threshold,
            "cached_query_sets": len(self._text_cache),
        }


@dataclass
class _BoxOutputs:
    """The two fields the processor's post-processing reads from a model output."""

    logits: torch.Tensor
    pred_boxes: torch.Tensor
