"""Export hwprof torch modules to ``.tflite`` without TensorFlow.

The writer walks the module classes of :mod:`hwprof.spaces.modules` and emits, in
NHWC layout, the operators the TF Lite converter produces for the equivalent
Keras model:

=======================  ==========================================================
module                   TFLite operators
=======================  ==========================================================
ConvBNAct                [PAD] CONV_2D | DEPTHWISE_CONV_2D (BatchNorm folded into
                         weights and bias; ReLU/ReLU6 fused), then HARD_SWISH for
                         h-swish or LOGISTIC + MUL for swish
SqueezeExcite            MEAN (keep dims), CONV_2D (ReLU fused), CONV_2D, gate
                         (LOGISTIC, or ADD(+3, ReLU6 fused) + MUL(1/6) for
                         h-sigmoid), MUL (broadcast scale)
ChannelShuffle           RESHAPE [b, h·w, g, c/g], TRANSPOSE [0, 1, 3, 2], RESHAPE
MBConv                   its convs, shuffle and SE in order, ADD for the residual
ShuffleUnit              SPLIT (stride 1) or both branches (stride 2),
                         CONCATENATION on channels, channel shuffle
GlobalPool               MEAN over H, W (keep dims)
Linear                   RESHAPE [b, c] (TRANSPOSE to NCHW first when H·W > 1;
                         nothing on a [b, c] input), FULLY_CONNECTED (ReLU/ReLU6
                         fused; other activations as for ConvBNAct)
nn.MaxPool2d             MAX_POOL_2D; where SAME would differ, after PADV2 with -inf
                         (PAD with zeros when the input is a ReLU/ReLU6 output)
nn.Identity              nothing
nn.Sequential            its children in order
nn.ReLU, ReLU6, ...      alone (not after a conv or FC): RELU, RELU6, HARD_SWISH,
                         LOGISTIC, LOGISTIC + MUL (SiLU), ADD + MUL (Hardsigmoid)
=======================  ==========================================================

Padding: torch pads ``k // 2`` on every side. Where TF's SAME padding puts
the same amount before the input (stride 1; stride 2 on odd inputs) the op
uses SAME; otherwise an explicit PAD (PADV2 with -inf for max pooling) and
VALID, as converters emit for PyTorch-origin models. Grouped (non-depthwise)
convolutions are one CONV_2D (operator version 6, as the converter marks
it) whose filter has ``cin / groups`` input channels; LiteRT 2.3 runs that in
its builtin, reference and XNNPACK kernels, so no SPLIT/CONCATENATION is needed.
Every graph hwprof's spaces produce is taken whole by XNNPACK, except PADV2,
which only appears before a max pool whose input may be negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from hwprof.spaces import modules as hm
from hwprof.artifacts.tflite_schema import (
    ACT_NONE,
    ACT_RELU,
    ACT_RELU6,
    SAME,
    VALID,
    ModelWriter,
    Options,
)
from hwprof.errors import ConfigError

_FUSABLE: dict[type, int] = {nn.ReLU: ACT_RELU, nn.ReLU6: ACT_RELU6}


def to_tflite(module: nn.Module, input_shape: tuple[int, int, int, int], description: str = "") -> bytes:
    """Serialise ``module`` (eval mode) as a ``.tflite`` flatbuffer.

    Parameters
    ----------
    module : nn.Module
        A module built from :mod:`hwprof.spaces.modules` classes.
    input_shape : tuple of int
        NCHW input shape ``(batch, c, h, w)``; the model's input is NHWC
        float32 ``[batch, h, w, c]`` named ``"input"``.
    description : str
        Stored in the model's description field.

    Returns
    -------
    bytes
        The model file; its output is NHWC ``[b, h', w', c']`` or ``[b, classes]``.

    Raises
    ------
    ConfigError
        For a module class the writer has no emitter for.
    """
    b, c, h, w = (int(v) for v in input_shape)
    g = _Graph(ModelWriter())
    x = g.w.tensor((b, h, w, c), "input")
    with torch.no_grad():
        y = g.emit(module, x)
    if y == x:  # an identity network: nothing to compute, the input is the output
        return g.w.finish([x], [x], description or "hwprof identity")
    g.w.rename(y, "output")
    return g.w.finish([x], [y], description or "hwprof model")


@dataclass(frozen=True)
class _Pad:
    """How a k×k window with torch padding ``k // 2`` maps onto TFLite padding."""

    mode: int  # SAME or VALID
    explicit: tuple[int, int] | None  # torch's (pad_h, pad_w) on both sides, for a PAD op before a VALID op


def _padding(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> _Pad:
    if pad == (0, 0):
        return _Pad(VALID, None)
    for n, k, s, p in zip(size, kernel, stride, pad):
        out = (n + 2 * p - k) // s + 1
        if out != -(-n // s):  # SAME always gives ceil(n / s) outputs
            break
        if max((out - 1) * s + k - n, 0) // 2 != p:  # TF SAME pads floor(total / 2) before
            break
    else:
        return _Pad(SAME, None)
    return _Pad(VALID, pad)


def _out_hw(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], mode: int) -> tuple[int, int]:
    if mode == SAME:
        return (-(-size[0] // stride[0]), -(-size[1] // stride[1]))
    return ((size[0] - kernel[0]) // stride[0] + 1, (size[1] - kernel[1]) // stride[1] + 1)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Graph:
    """Emits operators for torch modules into a :class:`ModelWriter`; tensors are NHWC."""

    def __init__(self, writer: ModelWriter):
        self.w = writer
        self._nonneg: set[int] = set()  # tensors known to be >= 0 (ReLU/ReLU6 outputs)
        self._emitters: dict[type, Callable[[nn.Module, int], int]] = {
            nn.Sequential: self._sequential,
            nn.Identity: lambda m, x: x,
            hm.ConvBNAct: self._conv_bn_act,
            hm.SqueezeExcite: self._squeeze_excite,
            hm.ChannelShuffle: lambda m, x: self._shuffle(x, m.groups),
            hm.MBConv: self._mbconv,
            hm.ShuffleUnit: self._shuffle_unit,
            hm.GlobalPool: lambda m, x: self._mean(x),
            hm.Linear: self._linear,
            nn.MaxPool2d: self._maxpool,
            nn.ReLU: self._activation,
            nn.ReLU6: self._activation,
            nn.Hardswish: self._activation,
            nn.SiLU: self._activation,
            nn.Sigmoid: self._activation,
            nn.Hardsigmoid: self._activation,
        }

    def emit(self, module: nn.Module, x: int) -> int:
        """Emit ``module`` applied to tensor ``x``; returns its output tensor."""
        emitter = self._emitters.get(type(module))
        if emitter is None:
            known = ", ".join(sorted(t.__name__ for t in self._emitters))
            raise ConfigError(
                f"the TFLite writer has no emitter for {type(module).__name__}; it handles {known}. "
                "Export this model to ONNX instead, or add an emitter in hwprof/artifacts/tflite.py"
            )
        return emitter(module, x)

    # -- small helpers -----------------------------------------------------------
    def _out(self, shape: tuple[int, ...], name: str) -> int:
        return self.w.tensor(shape, name)

    def _ints(self, values, name: str) -> int:
        return self.w.constant(np.asarray(values, np.int32), name)

    def _reshape(self, x: int, shape: tuple[int, ...]) -> int:
        y = self._out(shape, "reshape")
        shape_t = self._ints(shape, "reshape/shape")
        self.w.op("RESHAPE", [x, shape_t], [y], Options("ReshapeOptions", {"new_shape": tuple(shape)}))
        return y

    def _transpose(self, x: int, perm: tuple[int, ...]) -> int:
        shape = self.w.shape(x)
        y = self._out(tuple(shape[p] for p in perm), "transpose")
        self.w.op("TRANSPOSE", [x, self._ints(perm, "transpose/perm")], [y], Options("TransposeOptions"))
        return y

    def _pad(self, x: int, pad: tuple[int, int], value: float | None = None) -> int:
        """PAD (zeros) or PADV2 (``value``) of ``pad = (ph, pw)`` on both sides of H and W."""
        b, h, w, c = self.w.shape(x)
        ph, pw = pad
        paddings = self._ints([[0, 0], [ph, ph], [pw, pw], [0, 0]], "pad/paddings")
        y = self._out((b, h + 2 * ph, w + 2 * pw, c), "pad")
        if value is None:
            self.w.op("PAD", [x, paddings], [y], Options("PadOptions"))
        else:
            fill = self.w.constant(np.array(value, np.float32), "padv2/value")
            self.w.op("PADV2", [x, paddings, fill], [y], Options("PadV2Options"))
        return y

    def _binary(self, code: str, a: int, b: int, fused: int = ACT_NONE) -> int:
        sa, sb = self.w.shape(a), self.w.shape(b)
        shape = tuple(np.broadcast_shapes(sa, sb))
        y = self._out(shape, code.lower())
        table = "AddOptions" if code == "ADD" else "MulOptions"
        self.w.op(code, [a, b], [y], Options(table, {"fused_activation_function": fused}))
        return y

    def _mean(self, x: int) -> int:
        b, h, w, c = self.w.shape(x)
        y = self._out((b, 1, 1, c), "mean")
        self.w.op("MEAN", [x, self._ints([1, 2], "mean/axes")], [y], Options("ReducerOptions", {"keep_dims": True}))
        return y

    def _concat(self, xs: list[int]) -> int:
        shapes = [self.w.shape(x) for x in xs]
        y = self._out(shapes[0][:3] + (sum(s[3] for s in shapes),), "concat")
        opts = Options("ConcatenationOptions", {"axis": 3, "fused_activation_function": ACT_NONE})
        self.w.op("CONCATENATION", xs, [y], opts)
        return y

    # -- activations -------------------------------------------------------------
    def _activation(self, act: nn.Module, x: int) -> int:
        """Unfused activation ``act`` on ``x`` (identity passes ``x`` through)."""
        shape = self.w.shape(x)
        if isinstance(act, nn.Identity):
            return x
        if isinstance(act, (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Sigmoid)):
            code = {nn.ReLU: "RELU", nn.ReLU6: "RELU6", nn.Hardswish: "HARD_SWISH", nn.Sigmoid: "LOGISTIC"}[type(act)]
            y = self._out(shape, code.lower())
            self.w.op(code, [x], [y])
            if code in ("RELU", "RELU6"):
                self._nonneg.add(y)
            return y
        if isinstance(act, nn.SiLU):
            s = self._out(shape, "logistic")
            self.w.op("LOGISTIC", [x], [s])
            return self._binary("MUL", x, s)
        if isinstance(act, nn.Hardsigmoid):
            # relu6(x + 3) / 6, as the converter lowers Keras' hard_sigmoid: ADD with ReLU6 fused, MUL
            three = self.w.constant(np.array([3.0], np.float32), "hsigmoid/3")
            sixth = self.w.constant(np.array([1.0 / 6.0], np.float32), "hsigmoid/1_6")
            return self._binary("MUL", self._binary("ADD", x, three, ACT_RELU6), sixth)
        raise ConfigError(f"the TFLite writer has no emitter for activation {type(act).__name__}")

    def _with_act(self, act: nn.Module, emit_linear: Callable[[int], int]) -> int:
        """Run ``emit_linear(fused_code)`` fusing ``act`` when TFLite can, else appending it."""
        fused = _FUSABLE.get(type(act))
        if fused is not None:
            y = emit_linear(fused)
            self._nonneg.add(y)
            return y
        return self._activation(act, emit_linear(ACT_NONE))

    # -- convolutions ------------------------------------------------------------
    def _conv(
        self, conv: nn.Conv2d, weight: np.ndarray, bias: np.ndarray, x: int, fused: int
    ) -> int:
        """CONV_2D or DEPTHWISE_CONV_2D of ``conv``'s geometry with (folded) ``weight`` ``[co, ci/g, kh, kw]``."""
        b, h, w, c = self.w.shape(x)
        kernel, stride = _pair(conv.kernel_size), _pair(conv.stride)
        if _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ConfigError("the TFLite writer handles undilated convolutions with integer zero padding only")
        pad = _padding((h, w), kernel, stride, _pair(conv.padding))
        if pad.explicit is not None:
            x = self._pad(x, pad.explicit)
            h, w = self.w.shape(x)[1:3]
        cout, groups = conv.out_channels, conv.groups
        y = self._out((b, *_out_hw((h, w), kernel, stride, pad.mode), cout), "conv")
        bias_t = self.w.constant(bias.astype(np.float32), "conv/bias")
        geometry = {"padding": pad.mode, "stride_w": stride[1], "stride_h": stride[0]}
        dilation = {"dilation_w_factor": 1, "dilation_h_factor": 1, "fused_activation_function": fused}
        if groups > 1 and groups == c:
            # depthwise: torch [c·m, 1, kh, kw] -> TFLite [1, kh, kw, c·m]
            filt = self.w.constant(weight.transpose(1, 2, 3, 0), "depthwise/filter")
            opts = Options("DepthwiseConv2DOptions", {**geometry, "depth_multiplier": cout // c, **dilation})
            self.w.op("DEPTHWISE_CONV_2D", [x, filt, bias_t], [y], opts)
        else:
            # torch [co, ci/g, kh, kw] -> TFLite [co, kh, kw, ci/g]; ci/g < ci makes it grouped
            filt = self.w.constant(weight.transpose(0, 2, 3, 1), "conv/filter")
            opts = Options("Conv2DOptions", {**geometry, **dilation})
            # grouped CONV_2D is operator version 6 (TF 2.9+): older runtimes refuse it at load time
            self.w.op("CONV_2D", [x, filt, bias_t], [y], opts, version=6 if groups > 1 else 1)
        return y

    def _conv_bn_act(self, m: hm.ConvBNAct, x: int) -> int:
        weight, bias = _fold(m.conv, m.bn)
        return self._with_act(m.act, lambda fused: self._conv(m.conv, weight, bias, x, fused))

    def _plain_conv(self, conv: nn.Conv2d, x: int, fused: int) -> int:
        weight = conv.weight.detach().double().numpy()
        bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
        return self._conv(conv, weight, bias, x, fused)

    # -- composite blocks --------------------------------------------------------
    def _sequential(self, m: nn.Sequential, x: int) -> int:
        for child in m:
            x = self.emit(child, x)
        return x

    def _squeeze_excite(self, m: hm.SqueezeExcite, x: int) -> int:
        s = self._mean(x)
        s = self._with_act(m.act, lambda fused: self._plain_conv(m.reduce, s, fused))
        s = self._plain_conv(m.expand, s, ACT_NONE)
        return self._binary("MUL", x, self._activation(m.gate, s))

    def _shuffle(self, x: int, groups: int) -> int:
        b, h, w, c = self.w.shape(x)
        # channel i·(c/g) + j moves to j·g + i: a transpose of the last two axes of [b, h·w, g, c/g]
        y = self._reshape(x, (b, h * w, groups, c // groups))
        y = self._transpose(y, (0, 1, 3, 2))
        return self._reshape(y, (b, h, w, c))

    def _mbconv(self, m: hm.MBConv, x: int) -> int:
        y = x
        for part in (m.expand, m.shuffle, m.depthwise, m.se, m.project):
            if part is not None:
                y = self.emit(part, y)
        return self._binary("ADD", x, y) if m.residual else y

    def _shuffle_unit(self, m: hm.ShuffleUnit, x: int) -> int:
        if m.proj is None:
            b, h, w, c = self.w.shape(x)
            x1, x2 = self._out((b, h, w, c // 2), "split"), self._out((b, h, w, c // 2), "split")
            self.w.op("SPLIT", [self._ints(3, "split/axis"), x], [x1, x2], Options("SplitOptions", {"num_splits": 2}))
            y = self._concat([x1, self.emit(m.main, x2)])
        else:
            y = self._concat([self.emit(m.proj, x), self.emit(m.main, x)])
        return self.emit(m.shuffle, y)

    def _linear(self, m: hm.Linear, x: int) -> int:
        shape = self.w.shape(x)
        b = shape[0]
        if len(shape) == 4:  # flatten(1) of an NCHW map; on [b, c] it is a no-op
            _, h, w, c = shape
            if h * w > 1:  # torch flattens in NCHW order
                x = self._transpose(x, (0, 3, 1, 2))
            x = self._reshape(x, (b, c * h * w))
        fc = m.fc
        weight = self.w.constant(fc.weight.detach().numpy(), "fc/weights")
        bias_v = fc.bias.detach().numpy() if fc.bias is not None else np.zeros(fc.out_features, np.float32)
        bias = self.w.constant(bias_v, "fc/bias")

        def linear(fused: int) -> int:
            y = self._out((b, fc.out_features), "fc")
            opts = Options("FullyConnectedOptions", {"fused_activation_function": fused, "keep_num_dims": False})
            self.w.op("FULLY_CONNECTED", [x, weight, bias], [y], opts)
            return y

        return self._with_act(m.act, linear)

    def _maxpool(self, m: nn.MaxPool2d, x: int) -> int:
        b, h, w, c = self.w.shape(x)
        kernel, stride = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
        if m.ceil_mode or _pair(m.dilation) != (1, 1) or m.return_indices:
            raise ConfigError("the TFLite writer handles MaxPool2d without ceil_mode, dilation or indices only")
        pad = _padding((h, w), kernel, stride, _pair(m.padding))
        if pad.explicit is not None:
            # Torch pads max pooling with -inf. On a ReLU output every window holds a real value
            # >= 0, so zeros are equivalent, and PAD is delegated to XNNPACK where PADV2 is not.
            x = self._pad(x, pad.explicit, None if x in self._nonneg else -np.inf)
            h, w = self.w.shape(x)[1:3]
        y = self._out((b, *_out_hw((h, w), kernel, stride, pad.mode), c), "maxpool")
        opts = {"padding": pad.mode, "stride_w": stride[1], "stride_h": stride[0]}
        opts |= {"filter_width": kernel[1], "filter_height": kernel[0], "fused_activation_function": ACT_NONE}
        self.w.op("MAX_POOL_2D", [x], [y], Options("Pool2DOptions", opts))
        return y


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Fold eval-mode BatchNorm into the conv: weight ``[co, ci/g, kh, kw]`` and bias ``[co]`` (float64)."""
    weight = conv.weight.detach().double().numpy()
    bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
    mean, var = bn.running_mean.detach().double().numpy(), bn.running_var.detach().double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    return weight * scale[:, None, None, None], beta + (bias - mean) * scale
