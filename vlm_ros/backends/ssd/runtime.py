"""The runtimes that can execute the SSD-COCO network, behind one net-like interface.

``SsdCocoBackend`` needs only ``setInput(blob)`` and ``forward()`` returning OpenCV's
DetectionOutput rows ([image_id, class_id, score, x1, y1, x2, y2], normalised to the network
input), so its tiling, thresholds and duplicate suppression are the same whichever runtime runs:

* ``onnxruntime``: the converted ONNX model (:mod:`.convert`) + the numpy SSD head; the fastest
  on a CPU here (~35 ms against ~58 ms per detect()) and independent of the OpenCV version.
* ``opencv_onnx``: the same ONNX model through ``cv2.dnn.readNetFromONNX`` (OpenCV 4.8+ and 5).
* ``opencv_tf``: the original TensorFlow graph through ``cv2.dnn.readNetFromTensorflow``, which
  OpenCV 5.1 removed.

``auto`` takes the first of these that can run here.  All three give the same boxes (within
1e-3 px on the test photos; tests/test_ssd_runtimes.py holds them to 1 px of OpenCV 4.14's).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from vlm_ros.backends.ssd.convert import ConversionError, ConvertedModel, converted_model
from vlm_ros.backends.ssd.head import SsdHead
from vlm_ros.core.backend import BackendError

LOG = logging.getLogger(__name__)

Runtime = Literal["onnxruntime", "opencv_onnx", "opencv_tf"]
RUNTIMES: tuple[Runtime, ...] = ("onnxruntime", "opencv_onnx", "opencv_tf")
RUNTIME_CHOICES: tuple[str, ...] = ("auto", *RUNTIMES)
ONNXRUNTIME_HINT = "pip install 'onnxruntime>=1.17'"
OPENCV4_HINT = "pip install 'opencv-python-headless>=4.8,<5'"


def _output_order(names: list[str]) -> list[str]:
    """loc_0..loc_{n-1}, conf_0..conf_{n-1}, whatever order the runtime lists them in."""
    def key(name: str) -> tuple[int, int]:
        kind, _, index = name.partition("_")
        return (0 if kind == "loc" else 1, int(index))
    return sorted(names, key=key)


class OnnxSsdNet:
    """The converted SSD on onnxruntime or cv2.dnn's ONNX reader, answering like the cv2.dnn
    net of the TensorFlow graph did."""

    def __init__(self, converted: ConvertedModel, runtime: Runtime, device: str = "cpu") -> None:
        self.runtime = runtime
        self.head = SsdHead.from_metadata(converted.head)
        source: Any = str(converted.path) if converted.path is not None else converted.data
        self.device = "cpu"
        if runtime == "onnxruntime":
            import onnxruntime

            providers = ["CPUExecutionProvider"]
            if device == "cuda":
                if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                    providers.insert(0, "CUDAExecutionProvider")
                    self.device = "cuda"
                else:
                    LOG.warning("ssd_coco: device 'cuda' requested but this onnxruntime has no "
                                "CUDA provider; running on cpu")
            self._session = onnxruntime.InferenceSession(source, providers=providers)
            self._input = self._session.get_inputs()[0].name
            self._names = _output_order([o.name for o in self._session.get_outputs()])
        else:
            if isinstance(source, bytes):
                source = np.frombuffer(source, np.uint8)
            self._net = cv2.dnn.readNetFromONNX(source)
            self.device = select_opencv_device(self._net, device)
            self._names = _output_order(list(self._net.getUnconnectedOutLayersNames()))
        self._blob: np.ndarray | None = None
        # One forward at a time, as with a cv2.dnn net (the blob is per-call state).
        self._lock = threading.Lock()

    def setInput(self, blob: np.ndarray) -> None:  # noqa: N802 - cv2.dnn.Net's name
        self._blob = np.ascontiguousarray(blob, dtype=np.float32)

    def forward(self) -> np.ndarray:
        """(1, 1, K, 7) rows like OpenCV's DetectionOutput (without its zero rows)."""
        if self._blob is None:
            raise RuntimeError("setInput() first")
        blob = self._blob
        with self._lock:
            if self.runtime == "onnxruntime":
                outputs = self._session.run(self._names, {self._input: blob})
            else:
                self._net.setInput(blob)
                outputs = list(self._net.forward(self._names))
        layers = len(self.head.layers)
        rows = self.head(outputs[:layers], outputs[layers:], blob.shape[2:])
        return rows[None, None]


def select_opencv_device(net: Any, device: str) -> str:
    """Use OpenCV's CUDA backend when asked and available; otherwise say so and stay on CPU."""
    if device == "cuda":
        cuda_devices = 0
        try:
            cuda_devices = cv2.cuda.getCudaEnabledDeviceCount()
        except (AttributeError, cv2.error):
            pass
        if cuda_devices > 0:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
            return "cuda"
        LOG.warning("ssd_coco: device 'cuda' requested but this OpenCV build has no CUDA "
                    "device; running on cpu")
    # OpenCV's default backend/target is the CPU; setting the target explicitly only makes
    # OpenCV 5's new graph engine print a warning.
    return "cpu"


def _missing(runtime: Runtime) -> str | None:
    """Why ``runtime`` cannot run here (None: it can), in words that name the fix."""
    dnn = getattr(cv2, "dnn", None)
    if runtime == "onnxruntime":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return f"onnxruntime is not installed ({ONNXRUNTIME_HINT})"
        return None
    if runtime == "opencv_onnx":
        if getattr(dnn, "readNetFromONNX", None) is None:
            return f"OpenCV {cv2.__version__} has no ONNX reader"
        return None
    if getattr(dnn, "readNetFromTensorflow", None) is None:
        return (f"OpenCV {cv2.__version__} has no TensorFlow graph reader (removed in 5.1; "
                f"{OPENCV4_HINT})")
    return None


def load_net(runtime: str, weights: Path, graph: Path, device: str) -> tuple[Any, Runtime, str]:
    """(net, the runtime it runs on, the device it runs on) for ``runtime`` (or ``auto``:
    the first of :data:`RUNTIMES` that can run here); a BackendError that names the fix."""
    if runtime not in RUNTIME_CHOICES:
        raise BackendError(f"runtime must be one of {RUNTIME_CHOICES}, got {runtime!r}")
    candidates = RUNTIMES if runtime == "auto" else (runtime,)
    reasons: list[str] = []
    for candidate in candidates:
        why = _missing(candidate)
        if why is None:
            try:
                return _load(candidate, weights, graph, device)
            except (ConversionError, cv2.error, OSError, RuntimeError, ValueError) as exc:
                why = f"could not load {weights.name}: {exc}"
        reasons.append(f"{candidate}: {why}")
        if runtime == "auto":
            LOG.info("ssd_coco: runtime %s unavailable (%s)", candidate, why)
    raise BackendError("ssd_coco cannot run here: " + "; ".join(reasons))


def _load(runtime: Runtime, weights: Path, graph: Path, device: str) -> tuple[Any, Runtime, str]:
    if runtime == "opencv_tf":
        net = cv2.dnn.readNetFromTensorflow(str(weights), str(graph))
        return net, runtime, select_opencv_device(net, device)
    net = OnnxSsdNet(converted_model(weights, graph), runtime, device)
    return net, runtime, net.device
