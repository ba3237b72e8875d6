"""OpenCV's SSD head (PriorBox + DetectionOutput) in numpy, for the ONNX-converted SSD backbone.

Why numpy and why this exact arithmetic: the converted ONNX model (:mod:`.convert`) stops at the raw box-predictor outputs, because OpenCV's text graph ends in OpenCV-only layers
(``PriorBox``, ``DetectionOutput``) that ONNX has no equivalent for.  To give the *same* boxes as
``cv2.dnn.readNetFromTensorflow`` + the ``.pbtxt`` did, this module follows OpenCV's
``prior_box_layer.cpp`` and ``detection_output_layer.cpp`` step by step, in float32:

* anchors: for each predictor layer (grid h x w from its output), centre ((x + offset) * step,
  (y + offset) * step) with step = input size / grid size, and the .pbtxt's explicit widths/heights
  in *input pixels*, normalised by the input size (so a non-300 input keeps OpenCV's behaviour);
* decoding: CENTER_SIZE with the prior variances (0.1, 0.1, 0.2, 0.2 == TF's scale factors
  10, 10, 5, 5); TF predicts [ty, tx, th, tw] (OpenCV's importer swaps the conv channels for the
  ``loc_pred_transposed`` flag; we read them in that order instead);
* per class (background skipped): scores > confidence_threshold, stable sort descending, top_k,
  greedy NMS keeping a box when its IoU with every kept box is <= nms_threshold;
* keep_top_k over all classes by score; rows then sorted by score, best first (what OpenCV 4.14
  returns for this graph), or grouped by class id when ``group_by_classes`` is set.

The result has OpenCV's row layout [image_id, class_id, score, x1, y1, x2, y2] with coordinates
normalised to the network input, so the backend's existing post-processing is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

HEAD_METADATA_KEY = "ssd_head"


@dataclass(frozen=True)
class PriorLayer:
    """One OpenCV PriorBox layer with explicit anchor sizes (in input pixels)."""
    widths: tuple[float, ...]
    heights: tuple[float, ...]
    variance: tuple[float, ...]
    clip: bool
    offset: float
    step: float                 # 0: input size / grid size, as OpenCV computes it
    loc_pred_transposed: bool   # encodings are [ty, tx, th, tw] (TF) instead of [tx, ty, tw, th]

    @property
    def num_anchors(self) -> int:
        return len(self.widths)


@dataclass(frozen=True)
class DetectionParams:
    num_classes: int
    background_label_id: int
    confidence_threshold: float
    nms_threshold: float
    top_k: int
    keep_top_k: int
    variance_encoded_in_target: bool
    clip: bool
    score_activation: str       # "sigmoid" | "softmax" | "none"
    group_by_classes: bool = False  # row order only; OpenCV 4.14 sorts by score for this graph


class SsdHead:
    """Anchors, decoding and NMS for the raw per-layer outputs of the converted SSD."""

    def __init__(self, layers: Sequence[PriorLayer], detection: DetectionParams) -> None:
        self.layers = tuple(layers)
        self.detection = detection
        self._prior_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_metadata(cls, head: Mapping) -> SsdHead:
        layers = [PriorLayer(tuple(lay["widths"]), tuple(lay["heights"]), tuple(lay["variance"]),
                             bool(lay["clip"]), float(lay["offset"][0]), float(lay["step"][0]),
                             bool(lay["loc_pred_transposed"])) for lay in head["layers"]]
        d = head["detection_output"]
        detection = DetectionParams(
            int(d["num_classes"]), int(d["background_label_id"]),
            float(d["confidence_threshold"]), float(d["nms_threshold"]), int(d["top_k"]),
            int(d["keep_top_k"]), bool(d["variance_encoded_in_target"]), bool(d["clip"]),
            str(d["score_activation"]), bool(d.get("group_by_classes", False)))
        return cls(layers, detection)

    @classmethod
    def from_onnx_metadata(cls, props: Mapping[str, str]) -> SsdHead:
        """From an onnxruntime ``get_modelmeta().custom_metadata_map`` (or any name->str map)."""
        if HEAD_METADATA_KEY not in props:
            raise ValueError(f"model has no {HEAD_METADATA_KEY!r} metadata: not converted by "
                             "vlm_ros.backends.ssd.convert")
        return cls.from_metadata(json.loads(props[HEAD_METADATA_KEY]))

    # -- anchors -------------------------------------------------------------------------------

    def priors(self, grids: Sequence[tuple[int, int]], image_hw: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
        """(P, 4) anchors [x1, y1, x2, y2] normalised to the input, and (P, 4) variances, for
        per-layer grid sizes (h, w) and the network input size (H, W).  Cached per shape."""
        key = (tuple(grids), tuple(image_hw))
        if key not in self._prior_cache:
            boxes, variances = [], []
            img_h, img_w = np.float32(image_hw[0]), np.float32(image_hw[1])
            for layer, (gh, gw) in zip(self.layers, grids):
                step_x = np.float32(layer.step) if layer.step else img_w / np.float32(gw)
                step_y = np.float32(layer.step) if layer.step else img_h / np.float32(gh)
                off = np.float32(layer.offset)
                cx = (np.arange(gw, dtype=np.float32) + off) * step_x          # (w,)
                cy = (np.arange(gh, dtype=np.float32) + off) * step_y          # (h,)
                half_w = np.array(layer.widths, np.float32) * np.float32(0.5)  # (A,)
                half_h = np.array(layer.heights, np.float32) * np.float32(0.5)
                # OpenCV's loop order: h, w, anchor -> coordinates.
                cxg = np.broadcast_to(cx[None, :, None], (gh, gw, layer.num_anchors))
                cyg = np.broadcast_to(cy[:, None, None], (gh, gw, layer.num_anchors))
                layer_boxes = np.stack([(cxg - half_w) / img_w, (cyg - half_h) / img_h,
                                        (cxg + half_w) / img_w, (cyg + half_h) / img_h], axis=-1)
                layer_boxes = layer_boxes.reshape(-1, 4)
                if layer.clip:
                    layer_boxes = np.clip(layer_boxes, 0.0, 1.0)
                boxes.append(layer_boxes)
                var = np.array(layer.variance if len(layer.variance) == 4
                               else [layer.variance[0]] * 4, np.float32)
                variances.append(np.broadcast_to(var, layer_boxes.shape))
            self._prior_cache[key] = (np.concatenate(boxes).astype(np.float32),
                                      np.concatenate(variances).astype(np.float32))
        return self._prior_cache[key]

    # -- network outputs -> flat predictions ---------------------------------------------------

    def flatten_outputs(self, loc: Sequence[np.ndarray], conf: Sequence[np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """Per-layer NCHW outputs -> (N, P, 4) encodings in [tx, ty, tw, th] order, (N, P, C)
        class scores after the activation, and the grid sizes.  OpenCV's Flatten permutes NCHW
        to NHWC first, so the prior index runs over (y, x, anchor) like the anchors above."""
        num_classes = self.detection.num_classes
        encodings, logits, grids = [], [], []
        for layer, l_out, c_out in zip(self.layers, loc, conf):
            n, _, gh, gw = l_out.shape
            enc = l_out.transpose(0, 2, 3, 1).reshape(n, -1, 4)
            if layer.loc_pred_transposed:
                enc = enc[:, :, [1, 0, 3, 2]]
            encodings.append(enc)
            logits.append(c_out.transpose(0, 2, 3, 1).reshape(n, -1, num_classes))
            grids.append((gh, gw))
        enc = np.concatenate(encodings, axis=1).astype(np.float32)
        scores = np.concatenate(logits, axis=1).astype(np.float32)
        activation = self.detection.score_activation
        if activation == "sigmoid":
            scores = np.float32(1.0) / (np.float32(1.0) + np.exp(-scores))
        elif activation == "softmax":
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
        return enc, scores, grids

    def decode(self, enc: np.ndarray, priors: np.ndarray, variances: np.ndarray) -> np.ndarray:
        """CENTER_SIZE decoding of (N, P, 4) [tx, ty, tw, th] against (P, 4) anchors, float32."""
        if not self.detection.variance_encoded_in_target:
            enc = enc * variances
        prior_w = priors[:, 2] - priors[:, 0]
        prior_h = priors[:, 3] - priors[:, 1]
        prior_cx = priors[:, 0] + prior_w * np.float32(0.5)
        prior_cy = priors[:, 1] + prior_h * np.float32(0.5)
        cx = enc[..., 0] * prior_w + prior_cx
        cy = enc[..., 1] * prior_h + prior_cy
        w = np.exp(enc[..., 2]) * prior_w
        h = np.exp(enc[..., 3]) * prior_h
        half = np.float32(0.5)
        boxes = np.stack([cx - w * half, cy - h * half, cx + w * half, cy + h * half], axis=-1)
        if self.detection.clip:
            boxes = np.clip(boxes, 0.0, 1.0)
        return boxes.astype(np.float32)

    # -- NMS -----------------------------------------------------------------------------------

    def _nms_class(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """OpenCV's NMSFast_: indices kept for one class, best first."""
        det = self.detection
        cand = np.flatnonzero(scores > det.confidence_threshold)
        if cand.size == 0:
            return cand
        order = cand[np.argsort(-scores[cand], kind="stable")]
        if det.top_k > -1:
            order = order[:det.top_k]
        b = boxes[order]
        # Pairwise IoU as OpenCV's JaccardOverlap<normalized=true>: an inverted box has size 0.
        area = np.where((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]), np.float32(0),
                        (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
        ix1 = np.maximum(b[:, None, 0], b[None, :, 0])
        iy1 = np.maximum(b[:, None, 1], b[None, :, 1])
        ix2 = np.minimum(b[:, None, 2], b[None, :, 2])
        iy2 = np.minimum(b[:, None, 3], b[None, :, 3])
        inter = np.where((ix2 < ix1) | (iy2 < iy1), np.float32(0), (ix2 - ix1) * (iy2 - iy1))
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(inter > 0, inter / (area[:, None] + area[None, :] - inter), 0.0)
        # Greedy: a box survives if no *kept* better box overlaps it by more than the threshold.
        suppressed = np.zeros(len(order), bool)
        keep = []
        for i in range(len(order)):
            if suppressed[i]:
                continue
            keep.append(i)
            suppressed |= iou[i] > det.nms_threshold
        return order[keep]

    def detect_image(self, boxes: np.ndarray, scores: np.ndarray, image_id: int) -> np.ndarray:
        """(P, 4) decoded boxes + (P, C) scores of one image -> (K, 7) OpenCV-style rows."""
        det = self.detection
        kept: list[tuple[int, np.ndarray]] = []
        for c in range(det.num_classes):
            if c == det.background_label_id:
                continue
            idx = self._nms_class(boxes, scores[:, c])
            if idx.size:
                kept.append((c, idx))
        labels = np.concatenate([np.full(len(i), c) for c, i in kept]) if kept else np.zeros(0, int)
        idxs = np.concatenate([i for _, i in kept]) if kept else np.zeros(0, int)
        if det.keep_top_k > -1 and len(idxs) > det.keep_top_k:
            # Best keep_top_k over all classes (OpenCV: std::sort by score, descending), then
            # grouped by class again, each class in that score order.
            s = scores[idxs, labels]
            best = np.argsort(-s, kind="stable")[:det.keep_top_k]
            best = best[np.lexsort((np.arange(len(best)), labels[best]))]
            labels, idxs = labels[best], idxs[best]
        if not det.group_by_classes:
            best_first = np.argsort(-scores[idxs, labels], kind="stable")
            labels, idxs = labels[best_first], idxs[best_first]
        rows = np.empty((len(idxs), 7), np.float32)
        rows[:, 0] = image_id
        rows[:, 1] = labels
        rows[:, 2] = scores[idxs, labels]
        rows[:, 3:7] = boxes[idxs]
        return rows

    def __call__(self, loc: Sequence[np.ndarray], conf: Sequence[np.ndarray],
                 image_hw: tuple[int, int]) -> np.ndarray:
        """Raw per-layer outputs of a batch -> (K, 7) rows [image_id, class_id, score, x1, y1,
        x2, y2] for all images, like OpenCV's DetectionOutput (without its zero-padding rows)."""
        enc, scores, grids = self.flatten_outputs(loc, conf)
        priors, variances = self.priors(grids, image_hw)
        boxes = self.decode(enc, priors, variances)
        rows = [self.detect_image(boxes[i], scores[i], i) for i in range(len(boxes))]
        return np.concatenate(rows) if rows else np.zeros((0, 7), np.float32)
