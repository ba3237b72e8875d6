"""The default detector on every runtime this machine has, against OpenCV 4's TensorFlow reader.

tests/data/ssd_coco_reference.json holds what ``runtime=opencv_tf`` (OpenCV 4.14) found on the
real test photos (scripts/ssd_reference.py).  OpenCV 5.1 removed that reader; the ONNX runtimes
that replace it must find the same objects in the same order, boxes within 1 px and scores within
0.001 - on real weights and real photos, whichever OpenCV is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from photos import load_photo

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.ssd import convert, runtime
from vlm_ros.backends.ssd.head import SsdHead
from vlm_ros.backends.ssd_coco import SsdCocoBackend, resolve_model_files

REFERENCE = json.loads((Path(__file__).parent / "data" / "ssd_coco_reference.json").read_text())
HAS_TF_READER = hasattr(cv2.dnn, "readNetFromTensorflow")
# The runtimes this machine can run: the lock's OpenCV decides whether opencv_tf is one.
RUNTIMES = [r for r in runtime.RUNTIMES if runtime._missing(r) is None]


def test_the_onnx_runtimes_are_here() -> None:
    # onnxruntime comes with the models extra; every OpenCV the bounds allow reads ONNX.
    assert {"onnxruntime", "opencv_onnx"} <= set(RUNTIMES)


@pytest.fixture(scope="module")
def backends() -> dict[tuple[str, str], SsdCocoBackend]:
    return {(name, config): SsdCocoBackend(runtime=name, **options)
            for name in RUNTIMES for config, options in REFERENCE["configs"].items()}


def _cases() -> list[tuple[str, str]]:
    """Every recorded case on the runtime `auto` takes (onnxruntime) and on OpenCV 4's reader
    where it exists; OpenCV's ONNX reader (the fallback, ~2x slower here) on the plain config."""
    return [(name, case) for name in RUNTIMES for case in sorted(REFERENCE["detections"])
            if name != "opencv_onnx" or case.startswith("threshold_0.1:")]


@pytest.mark.parametrize("name, case", _cases())
def test_same_objects_and_boxes_as_opencv4s_tensorflow_reader(backends, name: str,
                                                              case: str) -> None:
    config, photo = case.split(":")
    backend = backends[(name, config)]
    found = backend.detect(load_photo(photo), [])
    expected = REFERENCE["detections"][case]
    assert [d.label for d in found] == [e[0] for e in expected], backend.runtime
    for detection, (_label, score, *box) in zip(found, expected, strict=True):
        assert detection.score == pytest.approx(score, abs=1e-3)
        assert np.max(np.abs(np.subtract(detection.bbox, box))) <= 1.0, (backend.runtime, box)


def test_auto_takes_onnxruntime_and_info_says_so() -> None:
    backend = SsdCocoBackend()
    assert backend.runtime == "onnxruntime"
    assert backend.info()["runtime"] == "onnxruntime"


@pytest.mark.skipif(HAS_TF_READER, reason="this OpenCV still has the TensorFlow reader")
def test_without_the_tensorflow_reader_opencv_tf_says_what_to_install() -> None:
    with pytest.raises(BackendError) as error:
        SsdCocoBackend(runtime="opencv_tf")
    message = str(error.value)
    assert f"OpenCV {cv2.__version__} has no TensorFlow graph reader" in message
    assert "opencv-python-headless>=4.8,<5" in message and "\n" not in message


def test_an_unknown_runtime_is_refused_before_loading() -> None:
    with pytest.raises(BackendError, match="runtime must be one of"):
        SsdCocoBackend(runtime="tensorrt")


def test_conversion_is_cached_once_and_reused(tmp_path: Path) -> None:
    weights, graph = resolve_model_files()
    first = convert.converted_model(weights, graph, folder=tmp_path)
    assert first.path is not None and first.path.parent == tmp_path / "ssd"
    written = first.path.stat().st_mtime_ns
    again = convert.converted_model(weights, graph, folder=tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == written
    model = onnx.load(str(first.path))
    onnx.checker.check_model(model)
    assert {node.op_type for node in model.graph.node} <= {"Conv", "Clip", "Add", "Mul", "Sub",
                                                          "Identity"}
    head = SsdHead.from_metadata(first.head)
    assert len(head.layers) == 6 and head.detection.num_classes == 91
    assert oct(first.path.stat().st_mode & 0o777) == "0o644"


def test_an_unwritable_cache_converts_in_memory(tmp_path: Path) -> None:
    weights, graph = resolve_model_files()
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    converted = convert.converted_model(weights, graph, folder=blocked)
    assert converted.path is None and converted.data is not None
    net = runtime.OnnxSsdNet(converted, "onnxruntime")
    net.setInput(cv2.dnn.blobFromImages([load_photo("coffee")], size=(300, 300)))
    rows = net.forward()[0, 0]
    assert rows.shape[1] == 7 and int(rows[0, 1]) == 47 and rows[0, 2] > 0.9  # COCO 47: cup


def test_a_graph_the_converter_does_not_handle_is_named(tmp_path: Path) -> None:
    weights, _graph = resolve_model_files()
    odd = tmp_path / "odd.pbtxt"
    odd.write_text('node { name: "image_tensor" op: "Placeholder" }\n'
                   'node { name: "warp" op: "ImageProjectiveTransformV3" input: "image_tensor" }\n')
    with pytest.raises(convert.ConversionError, match="unsupported op ImageProjectiveTransformV3"):
        convert.converted_model(weights, odd, folder=tmp_path)
    with pytest.raises(BackendError, match="ImageProjectiveTransformV3"):
        runtime.load_net("onnxruntime", weights, odd, "cpu")
