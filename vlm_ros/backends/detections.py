"""Detection post-processing the adapters share: greedy NMS that also removes one object boxed
twice (under a second label, or nested in a box of its own class)."""

from __future__ import annotations

import numpy as np

__all__ = ["NESTED_CONTAINMENT", "NESTED_MIN_IOU", "suppress_duplicates"]


def _overlaps_with(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection-over-the-smaller-box of one (4,) x1y1x2y2 box with (N, 4) boxes."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = inter / np.maximum(area + areas - inter, 1e-9)
    return iou, inter / np.maximum(np.minimum(area, areas), 1e-9)


# Same-class boxes nested this deeply (and overlapping at least NESTED_MIN_IOU) are one object
# boxed twice - a cup alone and the cup with its saucer - not two objects: a small second object
# inside a big box of its own class (a distant person "inside" a near one) overlaps far less.
NESTED_CONTAINMENT = 0.9
NESTED_MIN_IOU = 0.45


def suppress_duplicates(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, nms_iou: float,
    duplicate_iou: float,
) -> list[int]:
    """Greedy NMS, highest score first: indices of the boxes to keep.

    A box is dropped when a kept box of the same class overlaps it by IoU > ``nms_iou`` (ordinary
    per-class NMS) or is nested with it (``NESTED_CONTAINMENT``), or a kept box of any class
    overlaps it by IoU > ``duplicate_iou`` (the same object emitted under a second label).
    """
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if kept:
            ious, containment = _overlaps_with(boxes[i], boxes[kept])
            same_class = class_ids[kept] == class_ids[i]
            nested = (containment > NESTED_CONTAINMENT) & (ious > NESTED_MIN_IOU)
            if np.any((same_class & ((ious > nms_iou) | nested)) | (ious > duplicate_iou)):
                continue
        kept.append(int(i))
    return kept
