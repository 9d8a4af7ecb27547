"""NumPy arrays <-> ``tensorflow.TensorProto`` for the two dtypes SaGIM's signatures use.

Encoding writes ``tensor_content`` (raw little-endian bytes, the compact form TF Serving
also sends). Decoding accepts ``tensor_content`` and the repeated ``float_val``/``int_val``
fields that other clients send, and reports a malformed proto as :class:`ValueError`
with a message fit to return to the caller.
"""

from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

NUMPY_TO_DTYPE = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.uint8): types_pb2.DT_UINT8}
DTYPE_TO_NUMPY = {v: k for k, v in NUMPY_TO_DTYPE.items()}
DTYPE_NAMES = {types_pb2.DT_FLOAT: "float32", types_pb2.DT_UINT8: "uint8"}


def dtype_enum(name: str) -> int:
    """The ``TensorProto`` dtype enum of a dtype name of the signature table (``"uint8"``)."""
    return NUMPY_TO_DTYPE[np.dtype(name)]


def dtype_name(enum: int) -> str:
    """A readable name of a ``TensorProto`` dtype enum (``"float32"``, ``"DT_DOUBLE"``)."""
    if enum in DTYPE_NAMES:
        return DTYPE_NAMES[enum]
    try:
        return types_pb2.DataType.Name(enum)
    except ValueError:
        return f"dtype #{enum}"


def to_tensor_proto(array) -> tensor_pb2.TensorProto:
    """Encode a float32 or uint8 array."""
    array = np.asarray(array)
    if array.dtype not in NUMPY_TO_DTYPE:
        raise TypeError(f"only float32 and uint8 arrays are sent, got {array.dtype}")
    proto = tensor_pb2.TensorProto(dtype=NUMPY_TO_DTYPE[array.dtype])
    proto.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
        )
    )
    proto.tensor_content = (
        np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    )
    return proto


def proto_shape(proto) -> tuple[int, ...]:
    """The shape a TensorProto declares; ValueError for an unknown rank or negative dim."""
    if proto.tensor_shape.unknown_rank:
        raise ValueError("tensor shape has unknown rank")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise ValueError(f"tensor shape {shape} has a negative dimension")
    return shape


def element_count(shape) -> int:
    """The number of values of ``shape``, as an exact Python int (no int64 overflow)."""
    return math.prod(int(d) for d in shape)


def from_tensor_proto(proto) -> np.ndarray:
    """Decode a float32 or uint8 TensorProto; ValueError if it is malformed.

    The values (``tensor_content`` bytes, or ``float_val``/``int_val``) must be exactly as
    many as the declared shape needs; their count is checked before anything the size of
    the declared shape is allocated.
    """
    if proto.dtype not in DTYPE_TO_NUMPY:
        raise ValueError(f"unsupported dtype {dtype_name(proto.dtype)} (use float32 or uint8)")
    dtype = DTYPE_TO_NUMPY[proto.dtype]
    shape = proto_shape(proto)
    count = element_count(shape)
    if proto.tensor_content:
        expected = count * dtype.itemsize
        if len(proto.tensor_content) != expected:
            raise ValueError(
                f"tensor_content holds {len(proto.tensor_content)} bytes but shape {shape} "
                f"of {dtype} needs {expected}"
            )
        return (
            np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
            .astype(dtype)
            .reshape(shape)
        )
    is_float = proto.dtype == types_pb2.DT_FLOAT
    field = "float_val" if is_float else "int_val"
    values = proto.float_val if is_float else proto.int_val
    if len(values) != count:
        raise ValueError(
            f"{field} holds {len(values)} value(s) but shape {shape} needs {count} "
            "(send every value: one value is not broadcast to the shape)"
        )
    values = np.asarray(values, dtype=np.float32 if is_float else np.int64)
    if dtype == np.uint8 and values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError("uint8 tensor holds values outside [0, 255]")
    return values.astype(dtype).reshape(shape)
