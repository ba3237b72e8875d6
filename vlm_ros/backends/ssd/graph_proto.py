"""TensorFlow GraphDef message classes, built at import time from a hand-written descriptor.

Why: reading ``frozen_inference_graph.pb`` (and OpenCV's text graph ``.pbtxt``) needs only the
GraphDef / NodeDef / AttrValue / TensorProto / TensorShapeProto schema.  Declaring that subset here
with ``google.protobuf.descriptor_pb2`` (protobuf comes with ``onnx``) avoids TensorFlow (a 270 MB
wheel, 1.3 GB installed) and tensorboard, and needs no ``protoc``.  Field numbers and types are
those of tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape}.proto (proto3).
Fields we do not declare (versions, library, device, ...) are skipped as unknown fields, so the
binary parse is lossless for what we read.  DataType is declared with the
values of tensorflow/core/framework/types.proto that frozen graphs use, so the text format (OpenCV's
``.pbtxt``, which writes ``DT_FLOAT``) parses too; proto3 enums are open, so other values survive.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "vlm_ros_tf"  # a private package name: cannot clash with a real tensorflow in the process


def _field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, ftype: int,
           repeated: bool = False, type_name: str = "", oneof: int | None = None) -> None:
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = f".{_PKG}.{type_name}"
    if oneof is not None:
        f.oneof_index = oneof


# tensorflow/core/framework/types.proto (the non-reference values).
DATA_TYPES: dict[str, int] = {
    "DT_INVALID": 0, "DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 5,
    "DT_INT8": 6, "DT_STRING": 7, "DT_COMPLEX64": 8, "DT_INT64": 9, "DT_BOOL": 10, "DT_QINT8": 11,
    "DT_QUINT8": 12, "DT_QINT32": 13, "DT_BFLOAT16": 14, "DT_QINT16": 15, "DT_QUINT16": 16,
    "DT_UINT16": 17, "DT_COMPLEX128": 18, "DT_HALF": 19, "DT_RESOURCE": 20, "DT_VARIANT": 21,
    "DT_UINT32": 22, "DT_UINT64": 23,
}


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="vlm_ros_tf_graph.proto", package=_PKG,
                                         syntax="proto3")
    enum = fd.enum_type.add(name="DataType")
    for name, number in DATA_TYPES.items():
        enum.value.add(name=name, number=number)

    shape = fd.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    _field(dim, "size", 1, _F.TYPE_INT64)
    _field(dim, "name", 2, _F.TYPE_STRING)
    _field(shape, "dim", 2, _F.TYPE_MESSAGE, repeated=True, type_name="TensorShapeProto.Dim")
    _field(shape, "unknown_rank", 3, _F.TYPE_BOOL)

    tensor = fd.message_type.add(name="TensorProto")
    _field(tensor, "dtype", 1, _F.TYPE_ENUM, type_name="DataType")
    _field(tensor, "tensor_shape", 2, _F.TYPE_MESSAGE, type_name="TensorShapeProto")
    _field(tensor, "version_number", 3, _F.TYPE_INT32)
    _field(tensor, "tensor_content", 4, _F.TYPE_BYTES)
    _field(tensor, "float_val", 5, _F.TYPE_FLOAT, repeated=True)
    _field(tensor, "double_val", 6, _F.TYPE_DOUBLE, repeated=True)
    _field(tensor, "int_val", 7, _F.TYPE_INT32, repeated=True)
    _field(tensor, "string_val", 8, _F.TYPE_BYTES, repeated=True)
    _field(tensor, "int64_val", 10, _F.TYPE_INT64, repeated=True)
    _field(tensor, "bool_val", 11, _F.TYPE_BOOL, repeated=True)
    _field(tensor, "half_val", 13, _F.TYPE_INT32, repeated=True)

    attr = fd.message_type.add(name="AttrValue")
    attr.oneof_decl.add(name="value")
    lst = attr.nested_type.add(name="ListValue")
    _field(lst, "s", 2, _F.TYPE_BYTES, repeated=True)
    _field(lst, "i", 3, _F.TYPE_INT64, repeated=True)
    _field(lst, "f", 4, _F.TYPE_FLOAT, repeated=True)
    _field(lst, "b", 5, _F.TYPE_BOOL, repeated=True)
    _field(lst, "type", 6, _F.TYPE_ENUM, repeated=True, type_name="DataType")
    _field(lst, "shape", 7, _F.TYPE_MESSAGE, repeated=True, type_name="TensorShapeProto")
    _field(lst, "tensor", 8, _F.TYPE_MESSAGE, repeated=True, type_name="TensorProto")
    _field(attr, "list", 1, _F.TYPE_MESSAGE, type_name="AttrValue.ListValue", oneof=0)
    _field(attr, "s", 2, _F.TYPE_BYTES, oneof=0)
    _field(attr, "i", 3, _F.TYPE_INT64, oneof=0)
    _field(attr, "f", 4, _F.TYPE_FLOAT, oneof=0)
    _field(attr, "b", 5, _F.TYPE_BOOL, oneof=0)
    _field(attr, "type", 6, _F.TYPE_ENUM, type_name="DataType", oneof=0)
    _field(attr, "shape", 7, _F.TYPE_MESSAGE, type_name="TensorShapeProto", oneof=0)
    _field(attr, "tensor", 8, _F.TYPE_MESSAGE, type_name="TensorProto", oneof=0)
    _field(attr, "placeholder", 9, _F.TYPE_STRING, oneof=0)

    node = fd.message_type.add(name="NodeDef")
    entry = node.nested_type.add(name="AttrEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_MESSAGE, type_name="AttrValue")
    _field(node, "name", 1, _F.TYPE_STRING)
    _field(node, "op", 2, _F.TYPE_STRING)
    _field(node, "input", 3, _F.TYPE_STRING, repeated=True)
    _field(node, "device", 4, _F.TYPE_STRING)
    _field(node, "attr", 5, _F.TYPE_MESSAGE, repeated=True, type_name="NodeDef.AttrEntry")

    # Declared without fields: only so that OpenCV's .pbtxt, which ends with ``library {}``,
    # parses as text; their binary contents (if any) are kept as unknown fields and never read.
    fd.message_type.add(name="FunctionDefLibrary")
    fd.message_type.add(name="VersionDef")
    graph = fd.message_type.add(name="GraphDef")
    _field(graph, "node", 1, _F.TYPE_MESSAGE, repeated=True, type_name="NodeDef")
    _field(graph, "library", 2, _F.TYPE_MESSAGE, type_name="FunctionDefLibrary")
    _field(graph, "versions", 4, _F.TYPE_MESSAGE, type_name="VersionDef")
    return fd


def _message_class(name: str) -> type:
    descriptor = _POOL.FindMessageTypeByName(f"{_PKG}.{name}")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(_POOL).GetPrototype(descriptor)  # older protobuf


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build_file())
GraphDef = _message_class("GraphDef")
NodeDef = _message_class("NodeDef")
TensorProto = _message_class("TensorProto")
