"""Operator instances (:class:`OpSpec`) and their canonical keys.

An OpSpec is one operator with its full shape. Its canonical key is the
string the store and the lookup tables are indexed by. Grammar (fields in this
fixed order, joined by ``:``)::

    <kind>:h<H>:w<W>:ci<Cin>:co<Cout>:m<mid>:k<kernel>:s<stride>:g<groups>:se<SE>:<act>:b<batch>

e.g. ``mbconv:h56:w56:ci24:co24:m144:k5:s1:g1:se0:relu6:b1``.

``kind`` is one of :data:`KINDS`, ``act`` one of :data:`ACTS`; every other
field is a non-negative integer (``mid`` and ``se`` are 0 where they do not
apply). ``decode(encode(op)) == op`` for every valid op.

Kinds
-----
conv      k×k convolution (``groups``) + BatchNorm + activation
mbconv    mobile inverted bottleneck: 1×1 expansion to ``mid`` (omitted when
          ``mid == cin`` and ``groups == 1``), k×k depthwise, optional
          squeeze-excitation with ``se`` channels, 1×1 linear projection;
          residual when stride 1 and ``cin == cout``. ``groups > 1`` groups
          both 1×1 convs and shuffles channels after the expansion (FBNet
          ``_g2``, whose ``e1`` candidates keep the grouped expansion).
skip      identity (``cin == cout``, stride 1); costs nothing
maxpool   k×k max pool with stride
pool      global average pool to 1×1
fc        fully connected ``cin → cout`` on a 1×1 map, then activation
shuffle   ShuffleNetV2 unit with a k×k depthwise conv and ``mid`` channels
xception  ShuffleNetV2 Xception unit (three depthwise 3×3 + pointwise)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hwprof.errors import OpSpecError

KINDS: tuple[str, ...] = ("conv", "mbconv", "skip", "maxpool", "pool", "fc", "shuffle", "xception")
ACTS: tuple[str, ...] = ("none", "relu", "relu6", "hswish", "swish")

_INT_FIELDS: tuple[tuple[str, str], ...] = (
    ("h", "h"),
    ("w", "w"),
    ("cin", "ci"),
    ("cout", "co"),
    ("mid", "m"),
    ("kernel", "k"),
    ("stride", "s"),
    ("groups", "g"),
    ("se", "se"),
)


@dataclass(frozen=True, order=True)
class OpSpec:
    """One operator instance with its full input shape.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    h, w : int
        Input height and width (pixels).
    cin, cout : int
        Input and output channels.
    mid : int
        Expanded (hidden) channels of ``mbconv``/``shuffle``/``xception``; 0 otherwise.
    kernel, stride, groups : int
        Convolution kernel size, stride of the op, groups of its 1×1 convs.
    se : int
        Squeeze-excitation channels (0: no SE).
    act : str
        Activation, one of :data:`ACTS`.
    batch : int
        Batch size the op runs at.
    """

    kind: str
    h: int
    w: int
    cin: int
    cout: int
    mid: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    se: int = 0
    act: str = "none"
    batch: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise OpSpecError(f"unknown op kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.act not in ACTS:
            raise OpSpecError(f"unknown activation {self.act!r}; allowed: {', '.join(ACTS)}")
        for name, _ in _INT_FIELDS + (("batch", "b"),):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OpSpecError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("h", "w", "cin", "cout", "kernel", "stride", "groups", "batch"):
            if getattr(self, name) == 0:
                raise OpSpecError(f"{name} must be positive in {self.kind} op")
        if self.kind == "skip" and (self.cin != self.cout or self.stride != 1):
            raise OpSpecError("a skip op is an identity: it needs cin == cout and stride 1")
        if self.kind in ("mbconv", "shuffle", "xception") and self.mid == 0:
            raise OpSpecError(f"{self.kind} op needs mid > 0")
        self._check_shape()

    def _check_shape(self) -> None:
        """Reject field combinations the modules cannot build or that would alias another key."""
        kind, name = self.kind, f"{self.kind} op"
        # One op, one key: fields a kind does not use must keep their neutral value.
        unused = {"mid": 0, "groups": 1, "se": 0}
        if kind in ("mbconv", "shuffle", "xception"):
            del unused["mid"]
        if kind in ("conv", "mbconv"):
            del unused["groups"]
        if kind == "mbconv":
            del unused["se"]
        if kind in ("skip", "pool", "fc"):
            unused.update(kernel=1, stride=1)
        if kind in ("skip", "pool", "maxpool"):
            unused["act"] = "none"
        for field, neutral in unused.items():
            if getattr(self, field) != neutral:
                raise OpSpecError(f"{name} does not use {field}; set {field}={neutral} (got {getattr(self, field)})")
        # Modules pad k // 2, so out_hw = ceil(H / stride) holds for odd kernels only.
        if kind in ("conv", "mbconv", "maxpool", "shuffle", "xception") and self.kernel % 2 == 0:
            raise OpSpecError(f"{name} needs an odd kernel (padding kernel // 2), got kernel {self.kernel}")
        if kind in ("pool", "maxpool") and self.cout != self.cin:
            raise OpSpecError(f"{name} keeps its channels: needs cout == cin, got {self.cin} → {self.cout}")
        if kind == "fc" and (self.h, self.w) != (1, 1):
            raise OpSpecError(f"fc op runs on a 1×1 map (after a pool): needs h = w = 1, got {self.h}×{self.w}")
        g = self.groups
        chans = {"conv": ("cin", "cout"), "mbconv": ("cin", "mid", "cout")}.get(kind, ())
        for field in chans:
            if getattr(self, field) % g:
                raise OpSpecError(f"{name} with groups={g} needs {field} divisible by {g}, got {getattr(self, field)}")
        if kind in ("shuffle", "xception"):
            if self.stride == 1 and (self.cin != self.cout or self.cin % 2):
                raise OpSpecError(
                    f"stride-1 {name} splits its input in halves: needs cin == cout and even, "
                    f"got {self.cin} → {self.cout}"
                )
            if self.stride > 1 and (self.cout <= self.cin or self.cout % 2):
                raise OpSpecError(
                    f"stride-{self.stride} {name} concatenates cin channels with cout - cin new ones, then "
                    f"shuffles them in 2 groups: needs cout > cin and even, got {self.cin} → {self.cout}"
                )

    # -- shape ---------------------------------------------------------------
    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width: ``ceil(H / stride)`` (1×1 for pool and fc)."""
        if self.kind in ("pool", "fc"):
            return (1, 1)
        return ((self.h - 1) // self.stride + 1, (self.w - 1) // self.stride + 1)

    @property
    def residual(self) -> bool:
        """Whether an ``mbconv`` adds its input back (stride 1, same channels)."""
        return self.kind == "mbconv" and self.stride == 1 and self.cin == self.cout

    @property
    def has_expansion(self) -> bool:
        """Whether an ``mbconv`` has its 1×1 expansion conv (``mid != cin``, or grouped as FBNet ``_g2``)."""
        return self.kind == "mbconv" and (self.mid != self.cin or self.groups > 1)

    def with_batch(self, batch: int) -> OpSpec:
        """The same op at another batch size."""
        return dataclasses.replace(self, batch=batch)

    # -- cost ----------------------------------------------------------------
    def macs(self) -> int:
        """Multiply-accumulate operations of one forward pass (whole batch).

        Counts the convolutions and linear layers exactly (output elements ×
        ``cin / groups`` × k²), plus, for ops without any: ``pool`` counts its
        H·W·C additions and ``maxpool`` its Ho·Wo·C·k² comparisons. Not counted:
        BatchNorm, activations, the residual add, and the squeeze-excitation
        mean and rescale (SE counts only its two 1×1 convs, ``2 · mid · se``).
        """
        h, w = self.h, self.w
        ho, wo = self.out_hw
        k2 = self.kernel * self.kernel
        ci, co, m, g = self.cin, self.cout, self.mid, self.groups
        if self.kind == "conv":
            n = ho * wo * co * (ci // g) * k2
        elif self.kind == "mbconv":
            n = ho * wo * m * k2 + ho * wo * m * co // g + 2 * m * self.se
            if self.has_expansion:
                n += h * w * ci * m // g
        elif self.kind == "fc":
            n = ci * co
        elif self.kind == "pool":
            n = h * w * ci
        elif self.kind == "maxpool":
            n = ho * wo * ci * k2
        elif self.kind == "shuffle":
            if self.stride == 1:
                n = h * w * (ci // 2) * m + h * w * m * k2 + h * w * m * (co // 2)
            else:
                n = h * w * ci * m + ho * wo * m * k2 + ho * wo * m * (co - ci)
                n += ho * wo * ci * k2 + ho * wo * ci * ci
        elif self.kind == "xception":
            if self.stride == 1:
                cb = ci // 2
                n = h * w * cb * k2 + h * w * cb * m + 2 * h * w * m * k2 + h * w * m * m
                n += h * w * m * (co // 2)
            else:
                n = ho * wo * ci * k2 + ho * wo * ci * m + 2 * ho * wo * m * k2 + ho * wo * m * m
                n += ho * wo * m * (co - ci) + ho * wo * ci * k2 + ho * wo * ci * ci
        else:  # skip
            n = 0
        return int(n) * self.batch

    def params(self) -> int:
        """Number of weights (convolutions and linear layers, BatchNorm excluded)."""
        k2 = self.kernel * self.kernel
        ci, co, m, g = self.cin, self.cout, self.mid, self.groups
        if self.kind == "conv":
            return co * (ci // g) * k2
        if self.kind == "mbconv":
            n = m * k2 + m * co // g
            if self.se:  # SE reduce and expand 1×1 convs, with biases
                n += 2 * m * self.se + self.se + m
            return n + (ci * m // g if self.has_expansion else 0)
        if self.kind == "fc":
            return ci * co + co
        if self.kind == "shuffle":
            if self.stride == 1:
                return (ci // 2) * m + m * k2 + m * (co // 2)
            return ci * m + m * k2 + m * (co - ci) + ci * k2 + ci * ci
        if self.kind == "xception":
            cb = ci // 2 if self.stride == 1 else ci
            out = co // 2 if self.stride == 1 else co - ci
            n = cb * k2 + cb * m + 2 * m * k2 + m * m + m * out
            return n + (0 if self.stride == 1 else ci * k2 + ci * ci)
        return 0

    def activation_elems(self) -> int:
        """Feature-map elements the op reads and writes (whole batch): input, output, and for
        ``mbconv``/``shuffle``/``xception`` the expanded ``mid`` maps before and after the depthwise
        conv. With :meth:`params`, a proxy of the bytes an op moves (× 4 in fp32).
        """
        ho, wo = self.out_hw
        n = self.h * self.w * self.cin + ho * wo * self.cout
        if self.kind in ("mbconv", "shuffle", "xception") and self.mid:
            n += self.h * self.w * self.mid + ho * wo * self.mid
        return 0 if self.kind == "skip" else int(n) * self.batch

    # -- key -----------------------------------------------------------------
    def encode(self) -> str:
        """Canonical key of this op (see the module docstring for the grammar)."""
        return encode(self)


def encode(op: OpSpec) -> str:
    """Canonical key of ``op``; :func:`decode` inverts it."""
    parts = [op.kind] + [f"{prefix}{getattr(op, name)}" for name, prefix in _INT_FIELDS]
    return ":".join(parts + [op.act, f"b{op.batch}"])


def decode(key: str) -> OpSpec:
    """Parse a canonical key back into an :class:`OpSpec`.

    Raises
    ------
    OpSpecError
        Naming the offending token and what was expected there.
    """
    if not isinstance(key, str):
        raise OpSpecError(f"an op key is a string, got {type(key).__name__}")
    tokens = key.strip().split(":")
    expected = 1 + len(_INT_FIELDS) + 2
    if len(tokens) != expected:
        grammar = "<kind>:h:w:ci:co:m:k:s:g:se:<act>:b"
        raise OpSpecError(f"op key {key!r} has {len(tokens)} fields, expected {expected} ({grammar})")
    kind, *ints, act, batch = tokens
    if kind not in KINDS:
        raise OpSpecError(f"unknown op kind {kind!r} in key {key!r}; allowed: {', '.join(KINDS)}")
    if act not in ACTS:
        raise OpSpecError(f"unknown activation {act!r} in key {key!r}; allowed: {', '.join(ACTS)}")
    values: dict[str, int] = {}
    for token, (name, prefix) in zip(ints + [batch], _INT_FIELDS + (("batch", "b"),)):
        digits = token[len(prefix) :]
        canonical = digits.isascii() and digits.isdigit() and (digits == "0" or not digits.startswith("0"))
        if not token.startswith(prefix) or not canonical:
            raise OpSpecError(
                f"bad token {token!r} in key {key!r}; expected {prefix}<integer> for {name} "
                "(a non-negative integer without leading zeros)"
            )
        values[name] = int(digits)
    return OpSpec(kind=kind, act=act, **values)
