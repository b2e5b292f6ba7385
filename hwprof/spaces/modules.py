"""PyTorch modules for every :class:`~hwprof.spaces.ops.OpSpec` kind.

Modules take NCHW input ``[batch, cin, h, w]``. Their structure is fixed and
small on purpose: the TFLite writer (:mod:`hwprof.artifacts.tflite`) walks
these classes one by one, so a new module class needs a matching emitter
there.
"""

from __future__ import annotations

import torch
from torch import nn

from hwprof.spaces.ops import OpSpec


def make_act(act: str) -> nn.Module:
    """Activation module for an :data:`hwprof.spaces.ops.ACTS` name."""
    return {
        "none": nn.Identity,
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "hswish": nn.Hardswish,
        "swish": nn.SiLU,
    }[act]()


class ConvBNAct(nn.Module):
    """k×k convolution (no bias, padding ``k // 2``) + BatchNorm + activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "none"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-excitation: mean over H×W, 1×1 reduce + ReLU, 1×1 expand + gate, scale."""

    def __init__(self, channels: int, se: int, gate: str = "sigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, se, 1, bias=True)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(se, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid() if gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle with ``groups`` groups."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (see ``mbconv`` in :mod:`hwprof.spaces.ops`)."""

    def __init__(self, op: OpSpec):
        super().__init__()
        g = op.groups
        self.expand = ConvBNAct(op.cin, op.mid, 1, 1, g, op.act) if op.has_expansion else None
        self.shuffle = ChannelShuffle(g) if self.expand is not None and g > 1 else None
        self.depthwise = ConvBNAct(op.mid, op.mid, op.kernel, op.stride, op.mid, op.act)
        gate = "hsigmoid" if op.act == "hswish" else "sigmoid"
        self.se = SqueezeExcite(op.mid, op.se, gate) if op.se else None
        self.project = ConvBNAct(op.mid, op.cout, 1, 1, g, "none")
        self.residual = op.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand is not None:
            y = self.expand(y)
        if self.shuffle is not None:
            y = self.shuffle(y)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit; ``xception=True`` gives the Xception variant of SPOS.

    Stride 1: the input is split in two halves along channels; the second
    half goes through ``main``; the halves are concatenated and shuffled.
    Stride 2: ``proj`` (depthwise + pointwise) and ``main`` both see the whole
    input; their outputs (``cin`` and ``cout - cin`` channels) are concatenated.
    """

    def __init__(self, op: OpSpec, xception: bool = False):
        super().__init__()
        s, k, m = op.stride, op.kernel, op.mid
        cin = op.cin // 2 if s == 1 else op.cin
        out = op.cout // 2 if s == 1 else op.cout - op.cin
        if xception:  # SPOS's Xception unit: three k×k depthwise convs (k = 3 in the space)
            layers = [
                ConvBNAct(cin, cin, k, s, cin),
                ConvBNAct(cin, m, 1, act="relu"),
                ConvBNAct(m, m, k, 1, m),
                ConvBNAct(m, m, 1, act="relu"),
                ConvBNAct(m, m, k, 1, m),
                ConvBNAct(m, out, 1, act="relu"),
            ]
        else:
            layers = [ConvBNAct(cin, m, 1, act="relu"), ConvBNAct(m, m, k, s, m), ConvBNAct(m, out, 1, act="relu")]
        self.main = nn.Sequential(*layers)
        self.proj = (
            nn.Sequential(ConvBNAct(op.cin, op.cin, k, s, op.cin), ConvBNAct(op.cin, op.cin, 1, act="relu"))
            if s != 1
            else None
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            x1, x2 = x.chunk(2, dim=1)
            y = torch.cat([x1, self.main(x2)], dim=1)
        else:
            y = torch.cat([self.proj(x), self.main(x)], dim=1)
        return self.shuffle(y)


class GlobalPool(nn.Module):
    """Global average pool to ``[batch, c, 1, 1]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Linear(nn.Module):
    """Flatten to ``[batch, cin]``, fully connected layer with bias, activation."""

    def __init__(self, cin: int, cout: int, act: str = "none"):
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x.flatten(1)))


def build_op(op: OpSpec) -> nn.Module:
    """Torch module computing ``op`` on NCHW input of shape ``[batch, cin, h, w]``."""
    if op.kind == "conv":
        return ConvBNAct(op.cin, op.cout, op.kernel, op.stride, op.groups, op.act)
    if op.kind == "mbconv":
        return MBConv(op)
    if op.kind == "skip":
        return nn.Identity()
    if op.kind == "maxpool":
        return nn.MaxPool2d(op.kernel, op.stride, op.kernel // 2)
    if op.kind == "pool":
        return GlobalPool()
    if op.kind == "fc":
        return Linear(op.cin, op.cout, op.act)
    if op.kind in ("shuffle", "xception"):
        return ShuffleUnit(op, xception=op.kind == "xception")
    raise AssertionError(op.kind)  # OpSpec validates kind


def build_network(ops: list[OpSpec]) -> nn.Sequential:
    """A network running ``ops`` in sequence, in eval mode."""
    return nn.Sequential(*[build_op(op) for op in ops]).eval()


def input_shape(op: OpSpec) -> tuple[int, int, int, int]:
    """NCHW input shape ``(batch, cin, h, w)`` of ``op``."""
    return (op.batch, op.cin, op.h, op.w)
