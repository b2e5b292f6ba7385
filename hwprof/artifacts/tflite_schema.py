"""A minimal writer for the TFLite flatbuffer format (schema version 3).

Only the subset hwprof emits is covered: one subgraph of float32 tensors,
constant buffers, builtin operators and the option tables listed in
:data:`OPTIONS`. Field slots and enum values follow ``tensorflow/lite/schema/
schema.fbs``; they are part of the file format and never change for a given
name. The writer depends only on the ``flatbuffers`` package, so exporting a
``.tflite`` file needs neither TensorFlow nor a converter.

Usage::

    w = ModelWriter()
    x = w.tensor((1, 8, 8, 3), "input")
    k = w.constant(np.zeros((4, 3, 3, 3), np.float32), "w")
    ...
    w.op("CONV_2D", [x, k, b], [y], Options("Conv2DOptions", padding=SAME, ...))
    data = w.finish(inputs=[x], outputs=[y], description="...")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"

# TensorType
FLOAT32 = 0
INT32 = 2

# Padding
SAME = 0
VALID = 1

# ActivationFunctionType
ACT_NONE = 0
ACT_RELU = 1
ACT_RELU6 = 3

BUILTIN_OPS: dict[str, int] = {
    "ADD": 0,
    "CONCATENATION": 2,
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 4,
    "FULLY_CONNECTED": 9,
    "LOGISTIC": 14,
    "MAX_POOL_2D": 17,
    "MUL": 18,
    "RELU": 19,
    "RELU6": 21,
    "RESHAPE": 22,
    "PAD": 34,
    "TRANSPOSE": 39,
    "MEAN": 40,
    "SPLIT": 49,
    "PADV2": 60,
    "HARD_SWISH": 117,
}

# Option tables: name -> (BuiltinOptions union type, number of fields, {field: (slot, kind)}).
# kind: "i8", "i32", "bool" scalars; "vi32" an int32 vector.
OPTIONS: dict[str, tuple[int, int, dict[str, tuple[int, str]]]] = {
    "Conv2DOptions": (
        1,
        7,
        {
            "padding": (0, "i8"),
            "stride_w": (1, "i32"),
            "stride_h": (2, "i32"),
            "fused_activation_function": (3, "i8"),
            "dilation_w_factor": (4, "i32"),
            "dilation_h_factor": (5, "i32"),
        },
    ),
    "DepthwiseConv2DOptions": (
        2,
        7,
        {
            "padding": (0, "i8"),
            "stride_w": (1, "i32"),
            "stride_h": (2, "i32"),
            "depth_multiplier": (3, "i32"),
            "fused_activation_function": (4, "i8"),
            "dilation_w_factor": (5, "i32"),
            "dilation_h_factor": (6, "i32"),
        },
    ),
    "Pool2DOptions": (
        5,
        6,
        {
            "padding": (0, "i8"),
            "stride_w": (1, "i32"),
            "stride_h": (2, "i32"),
            "filter_width": (3, "i32"),
            "filter_height": (4, "i32"),
            "fused_activation_function": (5, "i8"),
        },
    ),
    "FullyConnectedOptions": (8, 5, {"fused_activation_function": (0, "i8"), "keep_num_dims": (2, "bool")}),
    "ConcatenationOptions": (10, 2, {"axis": (0, "i32"), "fused_activation_function": (1, "i8")}),
    "AddOptions": (11, 2, {"fused_activation_function": (0, "i8")}),
    "ReshapeOptions": (17, 1, {"new_shape": (0, "vi32")}),
    "MulOptions": (21, 1, {"fused_activation_function": (0, "i8")}),
    "PadOptions": (22, 0, {}),
    "TransposeOptions": (26, 0, {}),
    "ReducerOptions": (27, 1, {"keep_dims": (0, "bool")}),
    "SplitOptions": (35, 1, {"num_splits": (0, "i32")}),
    "PadV2Options": (43, 0, {}),
    "HardSwishOptions": (91, 0, {}),
}

# Constant data is aligned like the reference converter does, so kernels may map it in place.
_BUFFER_ALIGNMENT = 16


@dataclass(frozen=True)
class Options:
    """Builtin options of one operator: a table name of :data:`OPTIONS` and its field values."""

    table: str
    values: dict[str, int | bool | tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.table not in OPTIONS:
            raise ValueError(f"unknown TFLite options table {self.table!r}; known: {', '.join(OPTIONS)}")
        unknown = set(self.values) - set(OPTIONS[self.table][2])
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)} for {self.table}")


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    dtype: int
    buffer: int
    name: str


@dataclass(frozen=True)
class _Operator:
    opcode: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Options | None


class ModelWriter:
    """Collects tensors, constant buffers and operators, then serialises a ``.tflite`` model.

    Tensors are referred to by their integer index. Buffer 0 is the empty
    sentinel that every non-constant tensor points to.
    """

    def __init__(self) -> None:
        self._tensors: list[_Tensor] = []
        self._buffers: list[bytes] = [b""]
        self._ops: list[_Operator] = []
        self._opcodes: dict[tuple[str, int], int] = {}
        self._names: dict[str, int] = {}

    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return name if n == 0 else f"{name}_{n}"

    def tensor(self, shape: tuple[int, ...], name: str, dtype: int = FLOAT32) -> int:
        """Add a non-constant tensor of ``shape``; returns its index."""
        self._tensors.append(_Tensor(tuple(int(s) for s in shape), dtype, 0, self._unique(name)))
        return len(self._tensors) - 1

    def constant(self, value: np.ndarray, name: str) -> int:
        """Add a constant tensor holding ``value`` (float32 or int32); returns its index."""
        value = np.asarray(value)
        if value.dtype == np.float32 or value.dtype == np.float64:
            arr, dtype = np.ascontiguousarray(value, dtype="<f4"), FLOAT32
        elif value.dtype.kind in "iu":
            arr, dtype = np.ascontiguousarray(value, dtype="<i4"), INT32
        else:
            raise TypeError(f"constant {name!r}: unsupported dtype {value.dtype}")
        self._buffers.append(arr.tobytes())
        self._tensors.append(_Tensor(arr.shape, dtype, len(self._buffers) - 1, self._unique(name)))
        return len(self._tensors) - 1

    def rename(self, index: int, name: str) -> None:
        """Give tensor ``index`` the name ``name`` (e.g. ``"output"``)."""
        t = self._tensors[index]
        self._tensors[index] = _Tensor(t.shape, t.dtype, t.buffer, self._unique(name))

    def shape(self, index: int) -> tuple[int, ...]:
        """Shape of tensor ``index``."""
        return self._tensors[index].shape

    def op(
        self, code: str, inputs: list[int], outputs: list[int], options: Options | None = None, version: int = 1
    ) -> None:
        """Append a builtin operator ``code`` (a key of :data:`BUILTIN_OPS`).

        ``version`` is the operator version a runtime must provide (the TFLite
        converter raises it for features added later, e.g. 6 for grouped CONV_2D);
        float32 ops of the plain kind are version 1.
        """
        if code not in BUILTIN_OPS:
            raise ValueError(f"unknown TFLite builtin {code!r}; known: {', '.join(BUILTIN_OPS)}")
        opcode = self._opcodes.setdefault((code, version), len(self._opcodes))
        self._ops.append(_Operator(opcode, tuple(inputs), tuple(outputs), options))

    @property
    def op_names(self) -> list[str]:
        """Builtin names of the operators in execution order."""
        by_index = {i: name for (name, _), i in self._opcodes.items()}
        return [by_index[o.opcode] for o in self._ops]

    # -- serialisation ---------------------------------------------------------
    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        """Serialise the model with subgraph ``inputs``/``outputs``; returns the file bytes."""
        size = sum(len(b) for b in self._buffers)
        b = flatbuffers.Builder(size + 4096 + 256 * (len(self._tensors) + len(self._ops)))

        buffers = [self._buffer(b, data) for data in self._buffers]
        tensors = [self._tensor(b, t) for t in self._tensors]
        operators = [self._operator(b, o) for o in self._ops]
        codes = sorted(self._opcodes.items(), key=lambda kv: kv[1])
        opcodes = [self._opcode(b, BUILTIN_OPS[name], version) for (name, version), _ in codes]

        tensors_vec = _offsets(b, tensors)
        inputs_vec = _ints(b, inputs)
        outputs_vec = _ints(b, outputs)
        ops_vec = _offsets(b, operators)
        sg_name = b.CreateString("main")
        b.StartObject(6)
        b.PrependUOffsetTRelativeSlot(0, tensors_vec, 0)
        b.PrependUOffsetTRelativeSlot(1, inputs_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, outputs_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, ops_vec, 0)
        b.PrependUOffsetTRelativeSlot(4, sg_name, 0)
        subgraph = b.EndObject()

        opcodes_vec = _offsets(b, opcodes)
        subgraphs_vec = _offsets(b, [subgraph])
        desc = b.CreateString(description)
        buffers_vec = _offsets(b, buffers)
        b.StartObject(7)
        b.PrependUint32Slot(0, SCHEMA_VERSION, 0)
        b.PrependUOffsetTRelativeSlot(1, opcodes_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, subgraphs_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, desc, 0)
        b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
        model = b.EndObject()
        b.Finish(model, file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())

    @staticmethod
    def _buffer(b: flatbuffers.Builder, data: bytes) -> int:
        vec = None
        if data:
            b.StartVector(1, len(data), _BUFFER_ALIGNMENT)
            b.head -= len(data)
            b.Bytes[b.head : b.head + len(data)] = data
            vec = b.EndVector()
        b.StartObject(3)
        if vec is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        return b.EndObject()

    @staticmethod
    def _tensor(b: flatbuffers.Builder, t: _Tensor) -> int:
        shape = _ints(b, t.shape)
        name = b.CreateString(t.name)
        b.StartObject(11)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependInt8Slot(1, t.dtype, 0)
        b.PrependUint32Slot(2, t.buffer, 0)
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        return b.EndObject()

    @staticmethod
    def _options(b: flatbuffers.Builder, opts: Options) -> int:
        _, nfields, spec = OPTIONS[opts.table]
        vectors = {k: _ints(b, v) for k, v in opts.values.items() if spec[k][1] == "vi32"}
        b.StartObject(nfields)
        for key, value in opts.values.items():
            slot, kind = spec[key]
            if kind == "i8":
                b.PrependInt8Slot(slot, int(value), 0)
            elif kind == "i32":
                # dilation factors default to 1 in the schema; write them explicitly anyway
                b.PrependInt32Slot(slot, int(value), -(2**31))
            elif kind == "bool":
                b.PrependBoolSlot(slot, bool(value), False)
            else:
                b.PrependUOffsetTRelativeSlot(slot, vectors[key], 0)
        return b.EndObject()

    def _operator(self, b: flatbuffers.Builder, o: _Operator) -> int:
        inputs = _ints(b, o.inputs)
        outputs = _ints(b, o.outputs)
        opts = self._options(b, o.options) if o.options is not None else None
        b.StartObject(14)
        b.PrependUint32Slot(0, o.opcode, 0)
        b.PrependUOffsetTRelativeSlot(1, inputs, 0)
        b.PrependUOffsetTRelativeSlot(2, outputs, 0)
        if opts is not None:
            b.PrependUint8Slot(3, OPTIONS[o.options.table][0], 0)
            b.PrependUOffsetTRelativeSlot(4, opts, 0)
        return b.EndObject()

    @staticmethod
    def _opcode(b: flatbuffers.Builder, code: int, version: int) -> int:
        b.StartObject(4)
        # deprecated_builtin_code (int8) holds codes below 127; readers take the larger field
        b.PrependInt8Slot(0, min(code, 127), 0)
        b.PrependInt32Slot(2, version, 0)
        b.PrependInt32Slot(3, code, 0)
        return b.EndObject()


def _ints(b: flatbuffers.Builder, values) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<i4").reshape(-1))


def _offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()
