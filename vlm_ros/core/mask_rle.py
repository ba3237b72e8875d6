"""Masks in the result JSON: uncompressed run lengths inside the mask's bounding box.

Why not COCO's compressed RLE: that needs pycocotools on the client; this is a list of integers
any language decodes in a few lines (README, "result JSON").  Row-major, the first run is of
False pixels (possibly 0 long).
"""

from __future__ import annotations

import numpy as np


def mask_rle(mask: np.ndarray) -> dict[str, object]:
    """A mask as uncompressed run lengths inside its bounding box (row-major, starting with a
    run of False): ``{"box": [x, y, w, h], "counts": [...]}`` - small enough for the result JSON.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return {"box": [0, 0, 0, 0], "counts": []}
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    flat = mask[y0:y1, x0:x1].reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"box": [x0, y0, x1 - x0, y1 - y0], "counts": [int(c) for c in counts]}


def mask_from_rle(rle: dict[str, object], width: int, height: int) -> np.ndarray:
    """The inverse of :func:`mask_rle` (for clients and tests)."""
    x0, y0, w, h = (int(v) for v in rle["box"])  # type: ignore[union-attr]
    out = np.zeros((height, width), bool)
    values, value = [], False
    for count in rle["counts"]:  # type: ignore[union-attr]
        values.append(np.full(int(count), value))
        value = not value
    if w and h:
        out[y0:y0 + h, x0:x0 + w] = np.concatenate(values)[:w * h].reshape(h, w)
    return out
