"""One kernel's shape (:class:`KernelSpec`), parsed from its key, and the module that times it.

Keys are those :func:`hwprof.artifacts.graph.kernels_of` gives every kernel of
a graph (``<kind>:h:w:ci:co:m:k:s:g:se:<act>:b``), so a kernel of a user's
model and a sampled kernel of a campaign share a key when they share a shape.
The kind in a key is the kernel's op family: ``conv`` covers depthwise convs
too (``g == ci``), which :attr:`KernelSpec.kind` names ``dwconv``, and grouped
ones, ``gconv``; ``pool``
with ``k1`` is a global average pool. Fields a kind does not use are 0 / 1 /
``none`` as :func:`~hwprof.artifacts.graph.kernel_key` writes them.

``copy`` is a layout op that moves data: with ``m >= 2`` a channel shuffle
in ``m`` groups (reshape, transpose, reshape), with ``m == 1`` a slice that
copies ``co`` of ``ci`` channels (a channel split's half).

The module of a kernel takes one NCHW input ``[b, ci, h, w]`` (``concat``:
its first part; ``fc``: ``[b, ci, 1, 1]``). Two-input kernels (``add``,
``mul``, ``concat``) take their other operands as constants of the same
shape, which reads and writes the same bytes as two computed maps.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwprof.errors import OpSpecError

#: Kernel kinds with a regressor (see :mod:`hwprof.artifacts.graph` for the nodes each groups).
KERNEL_KINDS: tuple[str, ...] = (
    "conv", "dwconv", "gconv", "se", "fc", "pool", "maxpool", "add", "mul", "concat", "act", "copy"
)
#: Activations a conv, fc or add kernel may fuse.
FUSED_ACTS: tuple[str, ...] = ("none", "relu", "relu6", "hswish", "swish")
#: What a standalone ``act`` kernel may compute (elementwise ops with a constant included).
ALONE_ACTS: tuple[str, ...] = (
    "relu", "relu6", "hswish", "swish", "sigmoid", "hardsigmoid", "batchnormalization", "add", "mul", "sub", "div",
    "gelu", "layernorm",
)
_FIELDS = ("h", "w", "ci", "co", "m", "k", "s", "g", "se")


def conv_kind(ci: int, groups: int) -> str:
    """``conv``, ``dwconv`` (``groups == ci > 1``) or ``gconv`` (other ``groups > 1``)."""
    return "conv" if groups <= 1 else "dwconv" if groups == ci else "gconv"


@dataclass(frozen=True)
class KernelSpec:
    """One kernel with its input shape.

    Attributes
    ----------
    family : str
        The key's first field: ``conv``, ``se``, ``fc``, ``pool``, ``maxpool``, ``add``, ``mul``, ``concat``, ``act``.
    h, w, ci, co : int
        Input height, width (pixels), input and output channels (``concat``: ``ci`` is the sum of its inputs).
    m : int
        ``concat``: number of inputs; 0 elsewhere.
    k, s, g : int
        Kernel size, stride, groups (``pool`` with ``k == 1``: global average pool).
    se : int
        Squeeze-excitation channels (``se`` kernels).
    act : str
        Fused activation, or what a standalone ``act`` kernel computes.
    b : int
        Batch size.
    """

    family: str
    h: int
    w: int
    ci: int
    co: int
    m: int = 0
    k: int = 1
    s: int = 1
    g: int = 1
    se: int = 0
    act: str = "none"
    b: int = 1

    def __post_init__(self) -> None:
        if self.family not in KERNEL_KINDS or self.family in ("dwconv", "gconv"):
            raise OpSpecError(f"unknown kernel family {self.family!r}; allowed: conv, {', '.join(KERNEL_KINDS[3:])}")
        for name in _FIELDS + ("b",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise OpSpecError(f"kernel field {name} must be a non-negative integer, got {v!r}")
        for name in ("h", "w", "ci", "co", "k", "s", "g", "b"):
            if getattr(self, name) == 0:
                raise OpSpecError(f"kernel field {name} must be positive")
        acts = ALONE_ACTS if self.family == "act" else FUSED_ACTS
        if self.act not in acts:
            raise OpSpecError(f"a {self.family} kernel cannot have activation {self.act!r}; allowed: {', '.join(acts)}")
        if self.family == "conv" and (self.ci % self.g or self.co % self.g):
            raise OpSpecError(f"conv kernel with g={self.g} needs ci and co divisible by it ({self.ci}, {self.co})")
        if self.family == "concat" and not 2 <= self.m <= self.ci:
            raise OpSpecError(f"concat kernel needs 2 <= m (inputs) <= ci, got m={self.m}, ci={self.ci}")
        if self.family == "se" and self.se == 0:
            raise OpSpecError("se kernel needs se > 0 (squeeze channels)")
        if self.family == "copy" and (self.m == 0 or (self.m > 1 and (self.ci % self.m or self.co != self.ci))
                                      or self.co > self.ci):
            raise OpSpecError(f"copy kernel: m = shuffle groups dividing ci = co, or m = 1 with co <= ci "
                              f"(got ci={self.ci}, co={self.co}, m={self.m})")

    @property
    def kind(self) -> str:
        """The regressor kind: the family, with depthwise convs (``g == ci > 1``) as ``dwconv`` and other grouped
        convs (RegNet, ResNeXt) as ``gconv``."""
        return conv_kind(self.ci, self.g) if self.family == "conv" else self.family

    def encode(self) -> str:
        """The key, exactly as :func:`hwprof.artifacts.graph.kernel_key` writes it."""
        from hwprof.artifacts.graph import kernel_key

        return kernel_key(self.family, self.h, self.w, self.ci, self.co, self.m, self.k, self.s, self.g, self.se,
                          self.act, self.b)

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width (padding ``(k - 1) // 2``; 1×1 for fc and global pools)."""
        if self.family in ("fc", "se") or (self.family == "pool" and self.k == 1):
            return (1, 1) if self.family != "se" else (self.h, self.w)
        if self.family not in ("conv", "pool", "maxpool"):
            return (self.h, self.w)
        pad = (self.k - 1) // 2 if self.family != "pool" else 0
        return tuple((x + 2 * pad - self.k) // self.s + 1 for x in (self.h, self.w))  # type: ignore[return-value]

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW shape of the module's one input."""
        if self.family == "fc":
            return (self.b, self.ci, 1, 1)
        if self.family == "concat":
            return (self.b, self.ci - (self.m - 1) * (self.ci // self.m), self.h, self.w)
        return (self.b, self.ci, self.h, self.w)

    def macs(self) -> int:
        """Multiply-accumulates of the whole batch (as :func:`~hwprof.artifacts.graph.kernels_of` counts them)."""
        ho, wo = self.out_hw
        if self.family == "conv":
            return self.b * ho * wo * self.co * (self.ci // self.g) * self.k * self.k
        if self.family == "fc":
            return self.b * self.ci * self.co
        if self.family == "se":
            return self.b * (2 * self.ci * self.se + self.ci * self.h * self.w)
        if self.family in ("pool", "add", "mul"):
            return self.b * self.ci * self.h * self.w
        return 0

    def params(self) -> int:
        """Weights and biases."""
        if self.family == "conv":
            return self.co * (self.ci // self.g) * self.k * self.k + self.co
        if self.family == "fc":
            return self.ci * self.co + self.co
        if self.family == "se":
            return 2 * self.ci * self.se + self.ci + self.se
        return 0

    def bytes_in_out(self) -> tuple[int, int]:
        """Bytes of float32 feature maps read and written (constant operands counted as read)."""
        ho, wo = self.out_hw
        read = self.b * (self.co if self.family == "copy" else self.ci) * self.h * self.w * (
            2 if self.family in ("add", "mul") else 1)
        write = self.b * self.co * ho * wo
        return 4 * read, 4 * write


def parse_kernel(key: str) -> KernelSpec:
    """The :class:`KernelSpec` of a kernel key; a clear :class:`OpSpecError` for anything else."""
    parts = key.split(":")
    if len(parts) != 12:
        raise OpSpecError(f"malformed kernel key {key!r}: want <kind>:h:w:ci:co:m:k:s:g:se:<act>:b (12 fields)")
    values: dict[str, int] = {}
    for name, part in zip(_FIELDS + ("b",), parts[1:10] + parts[11:]):
        if not part.startswith(name) or not part[len(name):].isdigit():
            raise OpSpecError(f"malformed kernel key {key!r}: field {part!r} should be {name}<integer>")
        values[name] = int(part[len(name):])
    return KernelSpec(parts[0], act=parts[10], **values)


def build_kernel(spec: KernelSpec):
    """A torch module (eval mode, random weights) computing ``spec`` on :attr:`KernelSpec.input_shape`."""
    import torch
    from torch import nn

    from hwprof.spaces.modules import ChannelShuffle, ConvBNAct, GlobalPool, Linear, SqueezeExcite, make_act

    class _WithConst(nn.Module):
        """``x ⊕ c`` for a constant ``c`` of the given shape, then ``act``."""

        def __init__(self, op: str, shape: tuple[int, ...], act: str = "none"):
            super().__init__()
            self.op = op
            self.register_buffer("c", torch.rand(shape) + 0.5)
            self.act = make_act(act)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = {"add": torch.add, "mul": torch.mul, "sub": torch.sub, "div": torch.div}[self.op](x, self.c)
            return self.act(y)

    class _Slice(nn.Module):
        def __init__(self, keep: int):
            super().__init__()
            self.keep = keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, x.shape[1] - self.keep:]

    class _LayerNorm(nn.Module):  # over channels at every pixel, as ConvNeXt does on [b, h, w, c]
        def __init__(self, c: int):
            super().__init__()
            self.norm = nn.LayerNorm(c)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x)

    class _Concat(nn.Module):
        """``x`` concatenated with ``parts`` constants along channels."""

        def __init__(self, parts: int, shape: tuple[int, ...]):
            super().__init__()
            self.consts = nn.ParameterList([nn.Parameter(torch.randn(shape), requires_grad=False) for _ in range(parts)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, *self.consts], 1)

    b, c, h, w = spec.b, spec.ci, spec.h, spec.w
    fam = spec.family
    if fam == "conv" and spec.k % 2:  # hwprof's own conv module: the TFLite writer knows it
        return ConvBNAct(c, spec.co, spec.k, spec.s, spec.g, spec.act).eval()
    if fam == "conv":  # even kernels (ConvNeXt's patchify, strided 2×2): no padding, ONNX only
        layers = [nn.Conv2d(c, spec.co, spec.k, spec.s, (spec.k - 1) // 2, groups=spec.g, bias=False),
                  nn.BatchNorm2d(spec.co), make_act(spec.act)]
        return nn.Sequential(*layers).eval()
    if fam == "se":
        return SqueezeExcite(c, spec.se).eval()
    if fam == "fc":
        return Linear(c, spec.co, spec.act).eval()
    if fam == "pool":
        return (GlobalPool() if spec.k == 1 else nn.AvgPool2d(spec.k, spec.s)).eval()
    if fam == "maxpool":
        return nn.MaxPool2d(spec.k, spec.s, (spec.k - 1) // 2).eval()
    if fam in ("add", "mul"):
        return _WithConst(fam, (b, c, h, w), spec.act).eval()
    if fam == "concat":
        return _Concat(spec.m - 1, (b, c // spec.m, h, w)).eval()
    if fam == "copy":
        return (ChannelShuffle(spec.m) if spec.m > 1 else _Slice(spec.co)).eval()
    # act
    a = spec.act
    if a in FUSED_ACTS:
        return make_act(a).eval()
    if a == "sigmoid":
        return nn.Sigmoid().eval()
    if a == "hardsigmoid":
        return nn.Hardsigmoid().eval()
    if a == "batchnormalization":
        return nn.BatchNorm2d(c).eval()
    if a == "gelu":
        return nn.GELU().eval()  # exported in its erf form: Div, Erf, Add, Mul, Mul
    if a == "layernorm":
        return _LayerNorm(w).eval()
    return _WithConst(a, (1, c, 1, 1)).eval()
