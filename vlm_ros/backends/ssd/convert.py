"""Convert the TF Object Detection API SSD (frozen graph + OpenCV's text graph) to ONNX, once.

Why: OpenCV 5.1 dropped ``cv2.dnn.readNetFromTensorflow``; OpenCV (4 and 5) and onnxruntime read
ONNX.  This converter needs neither TensorFlow nor tf2onnx: it reads the GraphDef with a
hand-declared protobuf schema (:mod:`.graph_proto`) and writes ONNX with ``onnx.helper``
(docs/dependencies.md has the measurements: 1-1.3 s, 67 MB out, boxes within 1e-3 px of
OpenCV 4's TensorFlow importer on the test photos).

What is converted, and why only that: the nodes OpenCV's own ``.pbtxt`` lists (OpenCV's importer
walks that text graph and fetches the weights by name from the ``.pb``), from ``image_tensor`` to
the box predictors' raw outputs.  The SSD head in that text graph (``PriorBox``, ``Flatten``,
``ConcatV2``, ``Sigmoid``, ``DetectionOutput``) is OpenCV-specific and has no ONNX equivalent; its
parameters are written as JSON into the model's ``metadata_props["ssd_head"]`` (and a ``.json``
beside the model, since cv2.dnn cannot read ONNX metadata) and applied in numpy by
:class:`.head.SsdHead`, which reproduces OpenCV's PriorBox/DetectionOutput arithmetic.

The ONNX graph:
* input ``image``: float32 N x 3 x H x W, exactly ``cv2.dnn.blobFromImages(..., swapRB=False)``'s
  blob of RGB pixels in 0..255 (the graph's own ``Preprocessor/mul``/``sub`` scale to [-1, 1]);
  N, H and W are dynamic (convolutions use ``auto_pad=SAME_UPPER``, TF's ``SAME``).
* outputs ``loc_<i>`` / ``conf_<i>`` for each predictor layer i, raw NCHW conv outputs.
* BatchNorm and BiasAdd are folded into the preceding convolution (as OpenCV does at load time),
  Relu6 is ``Clip(0, 6)``: only Conv, Clip, Add, Mul and Sub remain, which every ONNX runtime and
  OpenCV's ONNX importer support.

The converted model is cached (:func:`converted_model`) under a key of the source files' hashes
and :data:`CONVERTER_VERSION`; ``python -m vlm_ros.backends.ssd.convert`` fills the cache ahead
of time (scripts/bootstrap.sh does, so the first start does not pay the ~1 s).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

from vlm_ros.backends.ssd.graph_proto import GraphDef

try:  # needed to convert only: a cached conversion loads without it
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # the models extra installs it
    onnx = None
from vlm_ros.backends.ssd.head import HEAD_METADATA_KEY

LOG = logging.getLogger(__name__)

OPSET = 13          # Clip with tensor min/max needs >= 11; 13 is supported by every current runtime
IR_VERSION = 7      # the IR version that goes with opset 13: loadable by old onnxruntime too
INPUT_NAME = "image"
# Part of the cache key: bump it when the converter's output changes.
CONVERTER_VERSION = 1
CACHE_ENV = "VLM_ROS_CACHE"
ONNX_HINT = "pip install 'onnx>=1.14'"

# tensorflow/core/framework/types.proto -> numpy, for the Const tensors a frozen graph holds.
_NP_DTYPES: dict[int, type] = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64,
                               10: np.bool_, 19: np.float16}


class ConversionError(RuntimeError):
    """The graph uses something this converter does not handle; the message says what."""


def tensor_to_numpy(tensor) -> np.ndarray:
    """A TF TensorProto as a numpy array (tensor_content, or the typed *_val fields, broadcast)."""
    if tensor.dtype not in _NP_DTYPES:
        raise ConversionError(f"unsupported const dtype {tensor.dtype}")
    dtype = _NP_DTYPES[tensor.dtype]
    shape = [d.size for d in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(shape).copy()
    if tensor.dtype == 19:
        values = np.array(tensor.half_val, np.uint16).view(np.float16)
    else:
        values = {np.float32: tensor.float_val, np.float64: tensor.double_val,
                  np.int32: tensor.int_val, np.uint8: tensor.int_val,
                  np.int64: tensor.int64_val, np.bool_: tensor.bool_val}[dtype]
        values = np.array(values, dtype=dtype)
    count = int(np.prod(shape)) if shape else 1
    if values.size == count:
        return values.reshape(shape)
    # TF stores a constant filled with one value as that value once.
    return np.full(shape, values[-1] if values.size else 0, dtype=dtype)


def load_consts(pb_path: Path) -> dict[str, object]:
    """Every Const node's TensorProto in the frozen graph, by name (the weights OpenCV's .pbtxt
    refers to).  Decoded on use: the graph also holds string constants (Assert messages) of the
    post-processing we do not convert."""
    graph = GraphDef()
    graph.ParseFromString(pb_path.read_bytes())
    return {n.name: n.attr["value"].tensor for n in graph.node if n.op == "Const"}


def load_text_graph(pbtxt_path: Path):
    graph = GraphDef()
    text_format.Parse(pbtxt_path.read_text(), graph)
    return graph


def _attr_floats(node, key: str) -> list[float]:
    """A float list attribute as OpenCV's importer reads it: a tensor's float_val or a list."""
    if key not in node.attr:
        return []
    value = node.attr[key]
    if value.HasField("tensor"):
        return [float(v) for v in tensor_to_numpy(value.tensor).ravel()]
    if value.HasField("list"):
        return [float(v) for v in value.list.f]
    return [float(value.f)]


@dataclass
class ConvRecord:
    """A convolution whose following BatchNorm/BiasAdd get folded in before it is emitted."""
    name: str
    input: str
    weight: np.ndarray          # OIHW float64 while folding
    bias: np.ndarray            # O, float64
    strides: list[int]
    dilations: list[int]
    padding: str                # "SAME" | "VALID"
    group: int = 1
    loc_pred_transposed: bool = False
    closed: bool = False        # its output was consumed: nothing may be folded in any more


@dataclass
class Converter:
    consts: dict[str, object]  # name -> TF TensorProto
    nodes: list = field(default_factory=list)             # emitted onnx NodeProtos / ConvRecords
    initializers: list = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)   # TF tensor name -> ONNX tensor name
    # TF tensor name -> the conv producing it (raw, or with a BatchNorm/BiasAdd folded in).
    conv_outputs: dict[str, ConvRecord] = field(default_factory=dict)

    def tensor(self, tf_name: str) -> str:
        """The ONNX name of a TF tensor that a converted node consumes.  Consuming a conv's
        output closes that conv: folding a later BatchNorm into it would change what the
        consumer sees."""
        name = tf_name.split(":")[0]
        if name in self.alias:
            if name in self.conv_outputs:
                self.conv_outputs[name].closed = True
            return self.alias[name]
        raise ConversionError(f"input {tf_name!r} is neither converted yet nor supported")

    def const(self, tf_name: str) -> np.ndarray:
        name = tf_name.split(":")[0]
        if name not in self.consts:
            raise ConversionError(f"{tf_name!r} is not a Const in the frozen graph")
        return tensor_to_numpy(self.consts[name])

    def scalar_initializer(self, name: str, value: float) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def open_conv(self, node) -> ConvRecord:
        """The ConvRecord that produces node.input[0], if it can still absorb a BN/bias."""
        src = node.input[0].split(":")[0]
        rec = self.conv_outputs.get(src)
        if rec is None or rec.closed:
            raise ConversionError(f"{node.op} {node.name} does not directly follow a convolution "
                                  "whose output is otherwise unused")
        return rec

    def convert_node(self, node) -> None:
        op = node.op
        if op == "Placeholder":
            self.alias[node.name] = INPUT_NAME
        elif op == "Identity":
            src = node.input[0].split(":")[0]
            if src not in self.alias:
                raise ConversionError(f"Identity {node.name}: unknown input {src}")
            self.alias[node.name] = self.alias[src]
            if src in self.conv_outputs:
                self.conv_outputs[node.name] = self.conv_outputs[src]
        elif op in ("Mul", "Sub", "Add"):
            self._binary(node)
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            self._conv(node)
        elif op == "FusedBatchNorm":
            rec = self.open_conv(node)
            gamma, beta, mean, var = (self.const(n).astype(np.float64) for n in node.input[1:5])
            eps = node.attr["epsilon"].f if "epsilon" in node.attr else 1e-3
            scale = gamma / np.sqrt(var + eps)
            rec.weight = rec.weight * scale[:, None, None, None]
            rec.bias = (rec.bias - mean) * scale + beta
            self._continue_conv(node.name, rec)
        elif op == "BiasAdd":
            rec = self.open_conv(node)
            rec.bias = rec.bias + self.const(node.input[1]).astype(np.float64)
            self._continue_conv(node.name, rec)
        elif op == "Relu6":
            out = node.name
            lo = self.scalar_initializer(f"{out}/min", 0.0)
            hi = self.scalar_initializer(f"{out}/max", 6.0)
            self.nodes.append(helper.make_node("Clip", [self.tensor(node.input[0]), lo, hi], [out],
                                               name=out))
            self.alias[out] = out
        else:
            raise ConversionError(f"unsupported op {op} ({node.name})")

    def _continue_conv(self, name: str, rec: ConvRecord) -> None:
        """The folded op's output *is* the conv's output: keep the conv open under the new name."""
        self.alias[name] = rec.name
        self.conv_outputs[name] = rec

    def _binary(self, node) -> None:
        names = [n.split(":")[0] for n in node.input]
        inputs = []
        for n in names:
            if n in self.alias:
                inputs.append(self.alias[n])
            elif n in self.consts:
                value = self.const(n).astype(np.float32)
                if value.size != 1:
                    raise ConversionError(f"{node.op} {node.name}: only scalar constants supported")
                inputs.append(self.scalar_initializer(f"{node.name}/{n}", float(value.ravel()[0])))
            else:
                raise ConversionError(f"{node.op} {node.name}: unknown input {n}")
        self.nodes.append(helper.make_node(node.op, inputs, [node.name], name=node.name))
        self.alias[node.name] = node.name

    def _conv(self, node) -> None:
        weight = self.const(node.input[1]).astype(np.float64)  # HWIO, or HW,Cin,multiplier
        if "data_format" in node.attr and node.attr["data_format"].s not in (b"", b"NHWC"):
            raise ConversionError(f"{node.name}: only NHWC TF convolutions are supported")
        strides = list(node.attr["strides"].list.i)[1:3] if "strides" in node.attr else [1, 1]
        dil = list(node.attr["dilations"].list.i)[1:3] if "dilations" in node.attr else [1, 1]
        padding = node.attr["padding"].s.decode()
        if padding not in ("SAME", "VALID"):
            raise ConversionError(f"{node.name}: padding {padding} not supported")
        if node.op == "Conv2D":
            w = weight.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            group = 1
        else:
            kh, kw, cin, mult = weight.shape
            # TF depthwise output channel c*mult+m uses filter [:, :, c, m] -> ONNX group conv.
            w = weight.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None, :, :]
            group = cin
        loc = "loc_pred_transposed" in node.attr and node.attr["loc_pred_transposed"].b
        rec = ConvRecord(node.name, self.tensor(node.input[0]), w, np.zeros(w.shape[0]),
                         [int(s) for s in strides], [int(d) for d in dil], padding, group, loc)
        self.nodes.append(rec)
        self.alias[node.name] = node.name
        self.conv_outputs[node.name] = rec

    def emit_convs(self) -> list:
        """Replace every ConvRecord by its ONNX Conv (weights now final) in graph order."""
        out = []
        for item in self.nodes:
            if not isinstance(item, ConvRecord):
                out.append(item)
                continue
            w_name, b_name = f"{item.name}/W", f"{item.name}/B"
            self.initializers.append(numpy_helper.from_array(item.weight.astype(np.float32), w_name))
            self.initializers.append(numpy_helper.from_array(item.bias.astype(np.float32), b_name))
            attrs = dict(kernel_shape=list(item.weight.shape[2:]), strides=item.strides,
                         dilations=item.dilations, group=item.group)
            if item.padding == "SAME":
                attrs["auto_pad"] = "SAME_UPPER"  # TF SAME: the extra pad goes bottom/right
            else:
                attrs["pads"] = [0, 0, 0, 0]
            out.append(helper.make_node("Conv", [item.input, w_name, b_name], [item.name],
                                        name=item.name, **attrs))
        return out


# Ops of OpenCV's SSD head: handled in numpy, described by metadata.
HEAD_OPS = {"Flatten", "ConcatV2", "PriorBox", "Sigmoid", "Softmax", "DetectionOutput", "Const"}


def _head_params(graph, conv: Converter) -> tuple[dict, list[str], list[str]]:
    """(metadata dict, loc tensor names, conf tensor names) from the text graph's SSD head."""
    by_name = {n.name: n for n in graph.node}
    det = [n for n in graph.node if n.op == "DetectionOutput"]
    if len(det) != 1:
        raise ConversionError(f"expected one DetectionOutput node, found {len(det)}")
    det = det[0]
    loc_concat, conf_in, prior_concat = (by_name[i.split(":")[0]] for i in det.input[:3])
    activation = "none"
    conf_concat = conf_in
    if conf_in.op in ("Sigmoid", "Softmax"):
        activation = conf_in.op.lower()
        conf_concat = by_name[conf_in.input[0].split(":")[0]]

    def flattened_sources(concat) -> list[str]:
        srcs = []
        for name in concat.input:
            node = by_name.get(name.split(":")[0])
            if node is None or node.op == "Const":
                continue  # the axis constant
            if node.op != "Flatten":
                raise ConversionError(f"{concat.name}: expected Flatten inputs, got {node.op}")
            srcs.append(node.input[0].split(":")[0])
        return srcs

    loc_srcs, conf_srcs = flattened_sources(loc_concat), flattened_sources(conf_concat)
    priors = [by_name[n.split(":")[0]] for n in prior_concat.input
              if by_name[n.split(":")[0]].op == "PriorBox"]
    if not len(loc_srcs) == len(conf_srcs) == len(priors):
        raise ConversionError("loc/conf/prior layer counts differ")
    layers = []
    for i, (loc, prior) in enumerate(zip(loc_srcs, priors)):
        if prior.input[0].split(":")[0] != loc:
            raise ConversionError(f"{prior.name} is not computed on {loc}")
        rec = conv.conv_outputs.get(loc)
        layer = {
            "widths": _attr_floats(prior, "width"), "heights": _attr_floats(prior, "height"),
            "variance": _attr_floats(prior, "variance"),
            "clip": bool(prior.attr["clip"].b) if "clip" in prior.attr else True,
            "offset": _attr_floats(prior, "offset")[:1] or [0.5],
            "step": _attr_floats(prior, "step")[:1] or [0.0],
            # TF predicts [ty, tx, th, tw]; OpenCV swaps conv channels at import for this flag.
            "loc_pred_transposed": bool(rec.loc_pred_transposed) if rec else False,
        }
        if not layer["widths"] or "min_size" in prior.attr or "aspect_ratio" in prior.attr:
            raise ConversionError(f"{prior.name}: only explicit width/height priors supported")
        if "step_h" in prior.attr or "offset_h" in prior.attr or "normalized_bbox" in prior.attr:
            raise ConversionError(f"{prior.name}: step_h/offset_h/normalized_bbox not supported")
        layers.append(layer)

    def det_attr(key: str, kind: str, default):
        if key not in det.attr:
            return default
        value = getattr(det.attr[key], kind)
        return value.decode() if isinstance(value, bytes) else value

    detection = {
        "num_classes": det_attr("num_classes", "i", 0),
        "background_label_id": det_attr("background_label_id", "i", 0),
        "share_location": det_attr("share_location", "b", True),
        "code_type": det_attr("code_type", "s", "CENTER_SIZE").upper(),
        "confidence_threshold": det_attr("confidence_threshold", "f", 0.0),
        "nms_threshold": det_attr("nms_threshold", "f", 0.0),
        "top_k": det_attr("top_k", "i", -1),
        "keep_top_k": det_attr("keep_top_k", "i", -1),
        "variance_encoded_in_target": det_attr("variance_encoded_in_target", "b", False),
        "clip": det_attr("clip", "b", False),
        "loc_pred_transposed": det_attr("loc_pred_transposed", "b", False),
        "score_activation": activation,
        # Only the row order: OpenCV 4.14's output for this graph is sorted by score.
        "group_by_classes": det_attr("group_by_classes", "b", False),
    }
    if not detection["share_location"] or detection["code_type"] != "CENTER_SIZE":
        raise ConversionError("only share_location=true, code_type=CENTER_SIZE supported")
    return {"layers": layers, "detection_output": detection}, loc_srcs, conf_srcs


def convert(pb_path: Path, pbtxt_path: Path) -> Any:
    """The ONNX ModelProto of the backbone, with the SSD head's parameters as metadata."""
    if onnx is None:
        raise ConversionError(f"converting the SSD graph to ONNX needs the onnx package; "
                              f"{ONNX_HINT}")
    consts = load_consts(pb_path)
    graph = load_text_graph(pbtxt_path)
    conv = Converter(consts)
    for node in graph.node:
        if node.op in HEAD_OPS:
            continue
        conv.convert_node(node)
    head, loc_srcs, conf_srcs = _head_params(graph, conv)
    nodes = conv.emit_convs()
    outputs = []
    for kind, srcs in (("loc", loc_srcs), ("conf", conf_srcs)):
        for i, src in enumerate(srcs):
            out = f"{kind}_{i}"
            nodes.append(helper.make_node("Identity", [conv.alias[src]], [out], name=out))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                         ["N", None, None, None]))
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, "H", "W"])
    onnx_graph = helper.make_graph(nodes, "ssd_backbone", [image], outputs, conv.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vlm_ros convert_ssd_to_onnx")
    model.ir_version = IR_VERSION
    head["source_sha256"] = hashlib.sha256(pb_path.read_bytes()).hexdigest()
    helper.set_model_props(model, {HEAD_METADATA_KEY: json.dumps(head)})
    onnx.checker.check_model(model)
    return model


@dataclass(frozen=True)
class ConvertedModel:
    """The converted model: a cached file (``path``), or its bytes when no cache folder could be
    written (``data``), and the SSD head parameters."""

    head: dict[str, Any]
    path: Path | None = None
    data: bytes | None = None


def cache_dir() -> Path:
    """$VLM_ROS_CACHE, else $XDG_CACHE_HOME/vlm_ros, else ~/.cache/vlm_ros."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vlm_ros"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_paths(pb_path: Path, pbtxt_path: Path, folder: Path | None = None) -> tuple[Path, Path]:
    """(model .onnx, head .json) where the conversion of these two files is cached."""
    key = hashlib.sha256(f"{_sha256(pb_path)} {_sha256(pbtxt_path)} v{CONVERTER_VERSION}"
                         .encode()).hexdigest()[:16]
    base = (folder or cache_dir()) / "ssd" / f"{pb_path.parent.name}-{pb_path.stem}-{key}"
    return base.with_suffix(".onnx"), base.with_suffix(".json")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it: a reader (another process
    starting at the same time) sees the whole file or none."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def converted_model(pb_path: Path, pbtxt_path: Path, folder: Path | None = None) -> ConvertedModel:
    """The ONNX conversion of ``pb_path`` + ``pbtxt_path``: from the cache, else converted now
    (needs the ``onnx`` package) and cached; kept in memory if the cache cannot be written."""
    model_path, head_path = cached_paths(pb_path, pbtxt_path, folder)
    if model_path.is_file() and head_path.is_file():
        return ConvertedModel(json.loads(head_path.read_text()), path=model_path)
    started = time.perf_counter()
    model = convert(pb_path, pbtxt_path)
    head = json.loads({p.key: p.value for p in model.metadata_props}[HEAD_METADATA_KEY])
    data = model.SerializeToString()
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(head_path, (json.dumps(head, indent=1) + "\n").encode())
        _write_atomically(model_path, data)
    except OSError as exc:
        LOG.warning("ssd_coco: cannot cache the ONNX conversion in %s (%s); converting at every "
                    "start (set %s to a writable folder)", model_path.parent, exc, CACHE_ENV)
        return ConvertedModel(head, data=data)
    LOG.info("ssd_coco: converted %s to ONNX in %.1f s (cached: %s)", pb_path.name,
             time.perf_counter() - started, model_path)
    return ConvertedModel(head, path=model_path)


def main(argv: list[str] | None = None) -> int:
    """Fill the cache for the packaged weights (or the given .pb / folder); print its path."""
    from vlm_ros.backends.ssd_coco import resolve_model_files

    parser = argparse.ArgumentParser(
        prog="python -m vlm_ros.backends.ssd.convert",
        description="Convert the SSD-COCO graph to ONNX once, into the cache the ssd_coco "
                    "backend reads ($VLM_ROS_CACHE, else ~/.cache/vlm_ros).")
    parser.add_argument("model", nargs="?", default="",
                        help="a .pb or a folder (default: the packaged weights)")
    args = parser.parse_args(argv)
    try:
        weights, graph = resolve_model_files(args.model)
        started = time.perf_counter()
        converted = converted_model(weights, graph)
    except Exception as exc:  # one line for the user, whatever went wrong
        print(f"ssd convert: error: {exc}", file=sys.stderr)
        return 2
    where = converted.path or "memory only (the cache folder is not writable)"
    print(f"ssd convert: {where} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
