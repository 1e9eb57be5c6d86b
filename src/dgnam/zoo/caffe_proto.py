"""The subset of Caffe's ``caffe.proto`` that holds a ``.caffemodel``'s weights, built at import time.

A ``.caffemodel`` is a serialized ``caffe.NetParameter``. Only the messages and fields needed to find each layer's name
and parameter blobs are declared here (with protobuf's ``descriptor_pb2``, so neither Caffe nor ``protoc`` is needed);
every other field of a real file is skipped by protobuf as unknown. FIELD NUMBERS are those of BVLC Caffe's
``src/caffe/proto/caffe.proto`` and must never change:

* ``BlobShape``: dim = 1 (repeated int64, packed)
* ``BlobProto``: num = 1, channels = 2, height = 3, width = 4 (legacy 4-D shape), data = 5 (packed float),
  diff = 6 (packed float), shape = 7 (BlobShape), double_data = 8 (packed double)
* ``NetParameter``: name = 1, layers = 2 (V1LayerParameter, legacy), input = 3, input_dim = 4, layer = 100
* ``LayerParameter``: name = 1, type = 2 (string), bottom = 3, top = 4, blobs = 7
* ``V1LayerParameter``: layer = 1 (V0LayerParameter), bottom = 2, top = 3, name = 4, type = 5 (enum ``LayerType``;
  declared int32 here, the same varint on the wire), blobs = 6
* ``V0LayerParameter``: name = 1, type = 2 (string), blobs = 50 (the 2013 format, nested in V1's ``layer``)

Messages live in a private descriptor pool, so a real ``caffe_pb2`` (or another package's ``caffe`` schema) loaded in the
same process never clashes with this one.
"""

from __future__ import annotations

from ..errors import DgnamError

try:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError:  # pragma: no cover - protobuf is the optional `caffe` extra
    raise DgnamError("reading Caffe files needs protobuf: pip install 'dgnam[caffe]' (or protobuf>=4)") from None

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {"string": _F.TYPE_STRING, "int32": _F.TYPE_INT32, "int64": _F.TYPE_INT64, "float": _F.TYPE_FLOAT,
          "double": _F.TYPE_DOUBLE, "message": _F.TYPE_MESSAGE}

#: message -> [(field name, number, label, type, message type name or None, packed)], from BVLC caffe.proto.
_SCHEMA: dict[str, list[tuple]] = {
    "BlobShape": [("dim", 1, _REP, "int64", None, True)],
    "BlobProto": [
        ("shape", 7, _OPT, "message", "BlobShape", False),
        ("data", 5, _REP, "float", None, True),
        ("diff", 6, _REP, "float", None, True),
        ("double_data", 8, _REP, "double", None, True),
        ("double_diff", 9, _REP, "double", None, True),
        ("num", 1, _OPT, "int32", None, False),
        ("channels", 2, _OPT, "int32", None, False),
        ("height", 3, _OPT, "int32", None, False),
        ("width", 4, _OPT, "int32", None, False),
    ],
    "NetParameter": [
        ("name", 1, _OPT, "string", None, False),
        ("input", 3, _REP, "string", None, False),
        ("input_dim", 4, _REP, "int32", None, False),
        ("layer", 100, _REP, "message", "LayerParameter", False),
        ("layers", 2, _REP, "message", "V1LayerParameter", False),
    ],
    "LayerParameter": [
        ("name", 1, _OPT, "string", None, False),
        ("type", 2, _OPT, "string", None, False),
        ("bottom", 3, _REP, "string", None, False),
        ("top", 4, _REP, "string", None, False),
        ("blobs", 7, _REP, "message", "BlobProto", False),
    ],
    "V1LayerParameter": [
        ("bottom", 2, _REP, "string", None, False),
        ("top", 3, _REP, "string", None, False),
        ("name", 4, _OPT, "string", None, False),
        ("type", 5, _OPT, "int32", None, False),
        ("blobs", 6, _REP, "message", "BlobProto", False),
        ("layer", 1, _OPT, "message", "V0LayerParameter", False),
    ],
    "V0LayerParameter": [
        ("name", 1, _OPT, "string", None, False),
        ("type", 2, _OPT, "string", None, False),
        ("blobs", 50, _REP, "message", "BlobProto", False),
    ],
}

#: V1LayerParameter.LayerType values (caffe.proto) of the layers that carry weights, and back.
V1_TYPES = {"Convolution": 4, "Deconvolution": 39, "InnerProduct": 14}
V1_TYPE_NAMES = {v: k for k, v in V1_TYPES.items()}


def _build() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name="dgnam_caffe_subset.proto", package="caffe", syntax="proto2")
    for msg_name, fields in _SCHEMA.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, label, typ, type_name, packed in fields:
            f = msg.field.add(name=name, number=number, label=label, type=_TYPES[typ])
            if type_name:
                f.type_name = f".caffe.{type_name}"
            if packed:
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}")) for name in _SCHEMA}


_CLASSES = _build()
BlobShape = _CLASSES["BlobShape"]
BlobProto = _CLASSES["BlobProto"]
NetParameter = _CLASSES["NetParameter"]
LayerParameter = _CLASSES["LayerParameter"]
V1LayerParameter = _CLASSES["V1LayerParameter"]
V0LayerParameter = _CLASSES["V0LayerParameter"]

__all__ = ["BlobShape", "BlobProto", "NetParameter", "LayerParameter", "V1LayerParameter", "V0LayerParameter",
           "V1_TYPES", "V1_TYPE_NAMES"]
