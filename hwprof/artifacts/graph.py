"""An ONNX graph as the kernels a runtime executes: conv + BN + activation, SE blocks, adds, ...

:func:`kernels_of` reads a model with onnx's shape inference, walks its nodes
in order and groups each node with the ones a CPU runtime fuses into it:

==========  ==============================================================
kind        nodes
==========  ==============================================================
conv        Conv [+ BatchNormalization] [+ activation]; ``groups == cin``
            is a depthwise conv (``dwconv``), other ``groups > 1`` ``gconv``
se          GlobalAveragePool / ReduceMean → Conv [+ act] → Conv →
            Sigmoid / HardSigmoid → Mul with the block's input
fc          Gemm, or MatMul [+ Add], [+ activation]
pool        GlobalAveragePool, AveragePool, ReduceMean over H, W
maxpool     MaxPool
add         Add / Sum of two feature maps [+ activation]
mul         Mul of two feature maps
concat      Concat
act         an activation, BatchNormalization, LayerNormalization or GELU on its own
copy        Transpose, Slice, Split, ... of a feature map (:data:`COPYING_OPS`: data moved)
layout      Reshape, Flatten, shape arithmetic, ... (views: nothing moved)
other       anything else, listed by op type in :attr:`KernelGraph.unknown`
==========  ==============================================================

Activations: Relu, Clip(0, 6) → relu6, HardSwish (or x · HardSigmoid(x)) →
hswish, x · Sigmoid(x) → swish. These are the usual fusions of ONNX Runtime
and XNNPACK; which of them a device really performs is for measurement to say
(issue 13), so every kernel keeps the ONNX nodes it groups.

Each kernel gets a key in the op-key grammar of :mod:`hwprof.spaces.ops`
(``<kind>:h:w:ci:co:m:k:s:g:se:<act>:b``) with its input shape, so equal
kernels of different networks share a key.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwprof.artifacts.kernel import conv_kind
from hwprof.errors import ConfigError, require

LAYOUT_OPS = frozenset(
    {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Shape", "Gather",
     "Constant", "ConstantOfShape", "Cast", "Slice", "Split", "Expand", "Pad", "Concat"}
)
#: Layout ops that copy their data when they act on a feature map (``copy`` kernels); the others are views.
COPYING_OPS = frozenset({"Transpose", "Split", "Slice", "Pad", "Expand", "Gather", "Concat"})
ACTIVATIONS = {"Relu": "relu", "HardSwish": "hswish", "Clip": "relu6", "LeakyRelu": "relu"}


@dataclass(frozen=True)
class Kernel:
    """One kernel: the ONNX nodes a runtime runs as one, with its shape.

    Attributes
    ----------
    kind : str
        See the module docstring.
    key : str
        Op-key grammar with the kernel's input shape (``h``, ``w``, ``ci``) and output channels.
    nodes : tuple of str
        Names (or ``op_type#index``) of the ONNX nodes grouped here.
    op_types : tuple of str
        Their op types.
    macs : int
        Multiply-accumulates (whole batch); 0 for kernels without arithmetic.
    """

    kind: str
    key: str
    nodes: tuple[str, ...]
    op_types: tuple[str, ...]
    macs: int = 0


@dataclass(frozen=True)
class KernelGraph:
    """The kernels of a model in execution order.

    Attributes
    ----------
    kernels : list of Kernel
    unknown : dict of str to int
        Op types hwprof has no kernel kind for, with their counts (never dropped silently).
    input_shape : tuple of int
        The shape the kernels were computed for.
    """

    kernels: list[Kernel]
    unknown: dict[str, int] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    @property
    def macs(self) -> int:
        return sum(k.macs for k in self.kernels)

    def counts(self) -> dict[str, int]:
        """Kernels per kind."""
        return dict(Counter(k.kind for k in self.kernels))


def kernel_key(kind: str, h: int, w: int, ci: int, co: int, mid: int = 0, k: int = 1, s: int = 1, g: int = 1,
               se: int = 0, act: str = "none", batch: int = 1) -> str:
    """A key in :mod:`hwprof.spaces.ops`' grammar for any kernel kind."""
    return f"{kind}:h{h}:w{w}:ci{ci}:co{co}:m{mid}:k{k}:s{s}:g{g}:se{se}:{act}:b{batch}"


class _Graph:
    """Shapes, producers, consumers and constants of an inferred ONNX graph, and the fusion rules to group by."""

    def __init__(self, model: Any, onnx: Any, fusion: Mapping[str, bool] | None = None):
        self.fusion = dict(fusion or {})
        g = model.graph
        self.nodes = list(g.node)
        self.consts = {t.name: t for t in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[n.output[0]] = a.t
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        for name, t in self.consts.items():
            self.shapes.setdefault(name, tuple(t.dims))
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for x in n.input:
                self.consumers.setdefault(x, []).append(i)
        self.onnx = onnx

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name, ())

    def only_consumer(self, tensor: str) -> int | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 else None

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    def fuses(self, first: str, second: str) -> bool:
        """Whether the device runs ``second`` inside ``first`` (``conv+relu6``); unmeasured pairs: yes."""
        return second == "none" or bool(self.fusion.get(f"{first}+{second}", True))

    def is_map(self, name: str) -> bool:
        """A feature map (a computed tensor), not a constant."""
        return name not in self.consts and name != ""

    def maps(self, node: Any) -> int:
        """Inputs of ``node`` that are feature maps, or constants as large as its output (the same traffic)."""
        size = int(np.prod(self.shape(node.output[0]) or (0,)))
        return sum(self.is_map(x) or int(np.prod(self.shape(x) or (-1,))) == size for x in node.input if x)


def _nchw(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    b, c, h, w = (list(shape) + [1, 1, 1, 1])[:4]
    return max(b, 1), max(c, 1), max(h, 1), max(w, 1)


def kernels_of(
    model: str | Path | Any, input_shape: tuple[int, ...] | None = None, fusion: Mapping[str, bool] | None = None
) -> KernelGraph:
    """The kernels of an ONNX model (a path or a loaded ``ModelProto``).

    Parameters
    ----------
    model : str, Path or onnx.ModelProto
    input_shape : tuple of int, optional
        Concrete NCHW input for a model with dynamic dimensions.
    fusion : dict of str to bool, optional
        Which pairs the device fuses (``{"conv+swish": False, ...}``, measured by
        :func:`hwprof.kernels.fusion.measure_fusion`); a pair it does not fuse stays two kernels.
        Pairs not named are fused.

    Raises
    ------
    ConfigError
        When the file is not an ONNX model, or shapes stay unknown.
    """
    onnx = require("onnx", "onnx")
    if isinstance(model, (str, Path)):
        try:
            model = onnx.load(str(model))
        except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a file that is not a model
            raise ConfigError(f"{model} is not an ONNX model ({type(exc).__name__}: {str(exc)[:80]})") from None
    if input_shape is not None:
        model = _with_input_shape(model, input_shape, onnx)
    model = _infer_shapes(model, onnx)
    g = _Graph(model, onnx, fusion)
    first = [i for i in model.graph.input if i.name not in g.consts][0]
    shape = g.shape(first.name)
    if not shape or any(d <= 0 for d in shape):
        raise ConfigError(f"the model's input {first.name!r} has a dynamic shape {shape}; pass input_shape")
    used: set[int] = set()
    kernels: list[Kernel] = []
    unknown: Counter = Counter()
    for i, node in enumerate(g.nodes):
        if i in used:
            continue
        kernel, members = _group(g, i)
        used.update(members)
        if kernel.kind == "other":
            unknown[node.op_type] += 1
        if kernel.kind != "layout" or node.op_type not in ("Constant", "Shape"):
            kernels.append(kernel)
    return KernelGraph(kernels, dict(unknown), tuple(shape))


def _infer_shapes(model: Any, onnx: Any) -> Any:
    """Shapes of every tensor: ONNX Runtime's symbolic inference (it folds the shape arithmetic of a
    channel split or shuffle), else onnx's own."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        # On a graph it cannot finish, it saves the graph into the working directory before it raises.
        with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
            return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # not installed, or a graph it cannot follow: onnx's inference below
        pass
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # inference errors come as several onnx exception types
        raise ConfigError(f"onnx shape inference failed ({type(exc).__name__}: {str(exc)[:100]})") from None


def _with_input_shape(model: Any, shape: tuple[int, ...], onnx: Any) -> Any:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ConfigError(f"input_shape {shape} has {len(shape)} dimensions, the model's input {len(dims)}")
    for d, v in zip(dims, shape):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    return model


def _name(node: Any, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def _activation(g: _Graph, tensor: str, into: str = "") -> tuple[str, list[int], str]:
    """An activation applied to ``tensor`` alone that the device fuses into a kernel of family ``into``:
    (act, node indices, output tensor); ("none", [], tensor) if none."""
    act, nodes, out = _any_activation(g, tensor)
    return (act, nodes, out) if not into or g.fuses(into, act) else ("none", [], tensor)


def _any_activation(g: _Graph, tensor: str) -> tuple[str, list[int], str]:
    users = g.consumers.get(tensor, [])
    if len(users) == 1:
        j = users[0]
        n = g.nodes[j]
        if n.op_type in ("Relu", "HardSwish", "LeakyRelu"):
            return ACTIVATIONS[n.op_type], [j], n.output[0]
        if n.op_type == "Clip":
            hi = g.consts.get(n.input[2]) if len(n.input) > 2 else None
            top = float(g.onnx.numpy_helper.to_array(hi)) if hi is not None else float(g.attr(n, "max", 0.0) or 0.0)
            return ("relu6" if abs(top - 6.0) < 1e-6 else "relu"), [j], n.output[0]
    if len(users) == 2:  # x · sigmoid(x) (swish) or x · hardsigmoid(x) (hswish)
        a, b = (g.nodes[j] for j in users)
        gate, mul = (a, b) if a.op_type in ("Sigmoid", "HardSigmoid") else (b, a)
        gi, mi = (users[0], users[1]) if gate is a else (users[1], users[0])
        if gate.op_type in ("Sigmoid", "HardSigmoid") and mul.op_type == "Mul" and gate.output[0] in mul.input:
            return ("swish" if gate.op_type == "Sigmoid" else "hswish"), [gi, mi], mul.output[0]
    return "none", [], tensor


def _group(g: _Graph, i: int) -> tuple[Kernel, list[int]]:
    node = g.nodes[i]
    op = node.op_type
    out = node.output[0] if node.output else ""
    members = [i]
    if op == "Conv":
        b, ci, h, w = _nchw(g.shape(node.input[0]))
        wshape = g.shape(node.input[1])
        co, k = (wshape[0], wshape[2]) if len(wshape) == 4 else (_nchw(g.shape(out))[1], 1)
        groups = int(g.attr(node, "group", 1))
        stride = int((g.attr(node, "strides", [1]) or [1])[0])
        tail = out
        j = g.only_consumer(tail)
        if j is not None and g.nodes[j].op_type == "BatchNormalization" and g.fuses("conv", "bn"):  # any conv
            members.append(j)
            tail = g.nodes[j].output[0]
        kind = conv_kind(ci, groups)
        act, nodes, tail = _activation(g, tail, "dwconv" if kind == "dwconv" else "conv")
        members += nodes
        _, _, ho, wo = _nchw(g.shape(tail))
        macs = b * ho * wo * co * (ci // max(groups, 1)) * k * k
        key = kernel_key("conv", h, w, ci, co, k=k, s=stride, g=groups, act=act, batch=b)
        return _kernel(g, kind, key, members, macs), members
    if op in ("GlobalAveragePool", "ReduceMean"):
        se = _se_block(g, i)
        if se is not None:
            return se
        b, c, h, w = _nchw(g.shape(node.input[0]))
        return _kernel(g, "pool", kernel_key("pool", h, w, c, c, batch=b), members, b * c * h * w), members
    if op in ("Gemm", "MatMul"):
        shape_in, weight = g.shape(node.input[0]), g.shape(node.input[1])
        ci = shape_in[-1] if shape_in else 1
        if len(weight) == 2:  # the weight says it even where inference did not reach the output
            co = weight[0] if op == "Gemm" and g.attr(node, "transB", 0) else weight[1]
        else:
            co = (g.shape(out) or (1,))[-1]
        b = shape_in[0] if len(shape_in) > 1 else 1
        tail = out
        j = g.only_consumer(tail)
        if op == "MatMul" and j is not None and g.nodes[j].op_type == "Add":
            members.append(j)
            tail = g.nodes[j].output[0]
        act, nodes, tail = _activation(g, tail, "fc")
        members += nodes
        if len(shape_in) > 2:  # a linear layer over every pixel ([b, h, w, c] or [b, n, c]): a 1×1 conv's work
            h, w = (shape_in[1], shape_in[2]) if len(shape_in) == 4 else (shape_in[1], 1)
            key = kernel_key("conv", h, w, ci, co, act=act, batch=b)
            return _kernel(g, "conv", key, members, b * h * w * ci * co), members
        return _kernel(g, "fc", kernel_key("fc", 1, 1, ci, co, act=act, batch=b), members, b * ci * co), members
    if op in ("MaxPool", "AveragePool"):
        b, c, h, w = _nchw(g.shape(node.input[0]))
        k = int((g.attr(node, "kernel_shape", [1]) or [1])[0])
        s = int((g.attr(node, "strides", [1]) or [1])[0])
        kind = "maxpool" if op == "MaxPool" else "pool"
        macs = b * c * h * w if kind == "pool" else 0
        return _kernel(g, kind, kernel_key(kind, h, w, c, c, k=k, s=s, batch=b), members, macs), members
    if op in ("Add", "Sum") and g.maps(node) >= 2:
        b, c, h, w = _nchw(g.shape(out))
        act, nodes, _ = _activation(g, out, "add")
        members += nodes
        return _kernel(g, "add", kernel_key("add", h, w, c, c, act=act, batch=b), members, b * c * h * w), members
    if op == "Mul" and g.maps(node) >= 2:
        b, c, h, w = _nchw(g.shape(out))
        return _kernel(g, "mul", kernel_key("mul", h, w, c, c, batch=b), members, b * c * h * w), members
    if op == "Concat" and sum(1 for x in node.input if x) >= 2 and len(g.shape(out)) == 4:
        b, c, h, w = _nchw(g.shape(out))
        ci = sum(_nchw(g.shape(x))[1] for x in node.input)
        return _kernel(g, "concat", kernel_key("concat", h, w, ci, c, mid=len(node.input), batch=b), members, 0), members
    if op in COPYING_OPS and len(g.shape(node.input[0])) in (4, 5) and len(g.shape(out)) in (4, 5):
        return _copy(g, i)
    if op in LAYOUT_OPS or len(g.shape(out)) < 2:  # shape arithmetic (a channel split's sizes) is layout too
        return _kernel(g, "layout", f"layout:{op}", members, 0), members
    if op == "Div":
        gelu = _gelu(g, i)
        if gelu is not None:
            return gelu
    if op in ACTIVATIONS or op in ("BatchNormalization", "Sigmoid", "HardSigmoid", "Add", "Mul", "Sub", "Div",
                                   "LayerNormalization"):
        b, c, h, w = _nchw(g.shape(out))
        act = ACTIVATIONS.get(op, {"LayerNormalization": "layernorm"}.get(op, op.lower()))
        return _kernel(g, "act", kernel_key("act", h, w, c, c, act=act, batch=b), members, 0), members
    b, c, h, w = _nchw(g.shape(node.input[0]) if node.input else ())
    return _kernel(g, "other", f"other:{op}:h{h}:w{w}:c{c}:b{b}", members, 0), members


def _copy(g: _Graph, i: int) -> tuple[Kernel, list[int]]:
    """A layout op that moves data: a transpose as a channel shuffle (``m`` groups), a slice or split as a
    copy of ``co`` of ``ci`` channels (``m = 1``); keys of :mod:`hwprof.artifacts.kernel`'s ``copy``."""
    node = g.nodes[i]
    shape = g.shape(node.input[0])
    if len(shape) == 5:  # [b, groups, c / groups, h, w] of a channel shuffle
        b, m, cg, h, w = shape
        c = m * cg
    else:
        b, c, h, w = _nchw(shape)
        m = 2 if node.op_type == "Transpose" and c % 2 == 0 else 1
    if m == 1:
        written = sum(_nchw(g.shape(o))[1] for o in node.output if o) if len(shape) == 4 else c
        co = max(1, min(written, c - 1)) if c > 1 else 1
    else:
        co = c
    key = kernel_key("copy", h, w, c, co, mid=m, batch=b)
    return _kernel(g, "copy", key, [i], 0), [i]


def _gelu(g: _Graph, i: int) -> tuple[Kernel, list[int]] | None:
    """GELU in its erf form, as torch exports it: Div → Erf → Add → Mul(x, ·) [→ Mul(·, 0.5)]."""
    chain = [i]
    for want in ("Erf", "Add", "Mul"):
        j = g.only_consumer(g.nodes[chain[-1]].output[0])
        if j is None or g.nodes[j].op_type != want:
            return None
        chain.append(j)
    j = g.only_consumer(g.nodes[chain[-1]].output[0])
    if j is not None and g.nodes[j].op_type == "Mul" and not all(g.is_map(x) for x in g.nodes[j].input):
        chain.append(j)
    b, c, h, w = _nchw(g.shape(g.nodes[i].input[0]))
    return _kernel(g, "act", kernel_key("act", h, w, c, c, act="gelu", batch=b), chain, 0), chain


def _se_block(g: _Graph, i: int) -> tuple[Kernel, list[int]] | None:
    """Squeeze-excitation starting at the pooling node ``i``, or None when the pattern does not match."""
    pool = g.nodes[i]
    x = pool.input[0]
    chain = [i]
    j = g.only_consumer(pool.output[0])
    if j is None or g.nodes[j].op_type != "Conv":
        return None
    reduce = g.nodes[j]
    chain.append(j)
    _, nodes, tail = _activation(g, reduce.output[0])
    chain += nodes
    j = g.only_consumer(tail)
    if j is None or g.nodes[j].op_type != "Conv":
        return None
    chain.append(j)
    j = g.only_consumer(g.nodes[j].output[0])
    if j is None:
        return None
    gate = g.nodes[j]
    if gate.op_type in ("Sigmoid", "HardSigmoid"):
        chain.append(j)
        j = g.only_consumer(gate.output[0])
        if j is None:
            return None
    mul = g.nodes[j]
    if mul.op_type != "Mul" or x not in mul.input:
        return None
    chain.append(j)
    b, c, h, w = _nchw(g.shape(x))
    se = g.shape(reduce.input[1])[0] if g.shape(reduce.input[1]) else 0
    macs = b * 2 * c * se + b * c * h * w
    return _kernel(g, "se", kernel_key("se", h, w, c, c, se=se, batch=b), chain, macs), chain


def _kernel(g: _Graph, kind: str, key: str, members: list[int], macs: int) -> Kernel:
    return Kernel(
        kind, key, tuple(_name(g.nodes[m], m) for m in members), tuple(g.nodes[m].op_type for m in members), int(macs)
    )


__all__ = ["Kernel", "KernelGraph", "kernel_key", "kernels_of"]
