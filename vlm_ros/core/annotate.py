"""Draw a GroundingResult on its image (CLI --annotate, the node's ~/debug_image, the demo)."""

from __future__ import annotations

import cv2
import numpy as np

from vlm_ros.core.types import Candidate, GroundingResult

# RGB colours by role.
_TARGET = (40, 220, 40)
_DESTINATION = (40, 140, 255)
_OTHER = (200, 200, 200)
_STATUS = {"ok": (40, 220, 40), "ambiguous": (255, 190, 0), "not_found": (255, 80, 80),
           "rejected": (255, 80, 80), "error": (255, 80, 80)}


def _box(image: np.ndarray, candidate: Candidate, color: tuple[int, int, int], thickness: int,
         caption: str) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in candidate.bbox)
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
    scale = max(0.4, min(image.shape[:2]) / 900.0)
    (w, h), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, y1 - h - base - 2)
    cv2.rectangle(image, (x1, top), (x1 + w + 4, top + h + base + 2), color, -1)
    cv2.putText(image, caption, (x1 + 2, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), 1, cv2.LINE_AA)


def annotate(rgb: np.ndarray, result: GroundingResult) -> np.ndarray:
    """Return a copy of ``rgb`` with candidates (grey), target (green), destination (blue)."""
    image = np.ascontiguousarray(rgb.copy())
    target_ids = {t.id for t in result.targets}
    for candidate in result.candidates:
        if candidate.id not in target_ids:
            _box(image, candidate, _OTHER, 1, f"#{candidate.id} {candidate.label}")
    for candidate in (*result.targets, *([result.destination] if result.destination else [])):
        mask = candidate.mask
        if mask is not None and mask.shape[:2] == image.shape[:2]:
            # The object's own pixels (backend or depth mask): what grasp geometry measured.
            is_target = any(candidate is t for t in result.targets)
            tint = np.array(_TARGET if is_target else _DESTINATION, np.float32)
            image[mask] = (0.55 * image[mask] + 0.45 * tint).astype(image.dtype)
    for candidate in result.targets:
        depth = f" {candidate.depth_m:.2f}m" if candidate.depth_m is not None else ""
        _box(image, candidate, _TARGET, 3, f"{candidate.label} {candidate.score:.2f}{depth}")
    if result.destination is not None:
        _box(image, result.destination, _DESTINATION, 3, f"to: {result.destination.label}")
    _banner(image, result)
    return image


def _banner(image: np.ndarray, result: GroundingResult) -> None:
    """Status and command in a dark strip along the bottom edge (box captions sit at the top)."""
    text = result.instruction.text if result.instruction else ""
    banner = f"[{result.status}] {text}"[:120]
    scale = max(0.5, image.shape[1] / 1400.0)
    (_, h), base = cv2.getTextSize(banner, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    top = image.shape[0] - h - base - 8
    image[top:] = (image[top:] * 0.35).astype(image.dtype)
    cv2.putText(image, banner, (8, image.shape[0] - base - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                _STATUS.get(result.status, _OTHER), 2, cv2.LINE_AA)


def overlay_heatmap(rgb: np.ndarray, relevance: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a HxW [0, 1] relevance map (resized if needed) over ``rgb`` as a colour map."""
    height, width = rgb.shape[:2]
    heat = np.nan_to_num(np.asarray(relevance, np.float32), nan=0.0).clip(0.0, 1.0)
    if heat.shape != (height, width):
        heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(rgb, 1.0 - alpha, colored, alpha, 0.0)
