"""Search spaces declared as data, and their architectures.

A :class:`Space` is a stem, a list of searchable layers grouped in stages, and
a head. One stride walk (:meth:`Space.geometry`) gives the input shape of
every searchable layer; :meth:`Space.ops`, :meth:`Space.choice_ops`,
:meth:`Space.fixed_ops`, FLOPs and :meth:`Space.build` all read it.

Architecture text form
----------------------
``[r<res>:]<tok>-<tok>-...`` with one token per searchable layer; a token is a
candidate name optionally followed by ``@<width>``: an integer mid-channel
count in ``tfnas``, a channel multiplier in ``spos``. Candidate grammar:
``k<k>_e<e>[_g2][_se]`` (MBConv), ``shuffle_k<k>``, ``xception``, ``skip``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from hwprof.errors import SpaceError
from hwprof.spaces.ops import OpSpec

_MB = re.compile(r"^k(\d+)_e(\d+)(_g2)?(_se)?$")
_SHUFFLE = re.compile(r"^shuffle_k(\d+)$")
#: Channel multipliers of SPOS's channel search: 0.2 to 1.6 in steps of 0.2.
SCALES: tuple[float, ...] = tuple(round(0.2 * i, 1) for i in range(1, 9))


@dataclass(frozen=True)
class Fixed:
    """A fixed (not searched) op of a stem or head; ``cin`` and H×W come from the walk.

    ``expand`` is the MBConv expansion ratio (mid = expand · cin).
    """

    kind: str
    cout: int = 0
    kernel: int = 1
    stride: int = 1
    expand: int = 1
    se: int = 0
    act: str = "none"

    def op(self, h: int, cin: int, batch: int) -> OpSpec:
        cout = cin if self.kind in ("pool", "maxpool") else self.cout
        mid = cin * self.expand if self.kind == "mbconv" else 0
        return OpSpec(self.kind, h, h, cin, cout, mid, self.kernel, self.stride, 1, self.se, self.act, batch)


@dataclass(frozen=True)
class Stage:
    """Searchable layers sharing output channels: ``layers`` layers, stride on the first."""

    layers: int
    cout: int
    stride: int
    act: str
    se: bool = False


@dataclass(frozen=True)
class LayerGeom:
    """Where one searchable layer sits: input H (=W), channels, stride, stage."""

    index: int
    stage: int
    position: int
    h: int
    cin: int
    cout: int
    stride: int
    act: str
    se: bool

    @property
    def is_identity(self) -> bool:
        """Whether a ``skip`` here is the identity (stride 1, channels kept): it costs 0 ms."""
        return self.stride == 1 and self.cin == self.cout


@dataclass(frozen=True)
class Arch:
    """One architecture: the chosen candidate per searchable layer.

    Attributes
    ----------
    choices : tuple of str
        Candidate name per searchable layer.
    resolution : int or None
        Input resolution for spaces with elastic resolution, else None.
    widths : tuple or None
        Per-layer width override (``tfnas``: int mid channels, ``spos``: float
        multiplier; None entries mean the default), or None for all defaults.
    """

    choices: tuple[str, ...]
    resolution: int | None = None
    widths: tuple[int | float | None, ...] | None = None

    def encode(self) -> str:
        """Text form, see the module docstring."""
        toks = list(self.choices)
        if self.widths is not None:
            toks = [t if w is None else f"{t}@{w:g}" for t, w in zip(toks, self.widths)]
        prefix = f"r{self.resolution}:" if self.resolution is not None else ""
        return prefix + "-".join(toks)

    def __str__(self) -> str:
        return self.encode()


def _short(text: str, limit: int = 100) -> str:
    """``repr`` of ``text``, cut to about ``limit`` characters for messages."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 20]) + f"... ({len(text)} characters)"


@dataclass(frozen=True)
class Space:
    """A search space (see ``SPACES.md``).

    Attributes
    ----------
    name : str
        Registry name.
    resolutions : tuple of int
        Allowed input resolutions; more than one means elastic resolution and
        architectures carry an ``r<res>:`` prefix.
    candidates : tuple of str
        Global candidate list; its order is the column order ``K`` of the
        ``[L, K]`` view of the space.
    stem, head : tuple of Fixed
        Fixed ops before and after the searchable layers.
    stages : tuple of Stage
        Searchable stages.
    skip : str
        ``"identity"``: skip is legal only where it is an identity;
        ``"conv"``: elsewhere it is a 1×1 conv with that stride (+BN+act);
        ``"depth"``: skip marks a dropped layer: only from position
        ``min_depth`` of a stage on, and only followed by skip;
        ``"none"``: no skip.
    min_depth : int
        Layers always kept per stage when ``skip == "depth"``.
    se_rule : str
        SE channels: ``"ofa"`` = make_divisible(mid / 4, 8), ``"tfnas"`` =
        cin · e / 3.
    width : str
        ``"none"``, ``"mid"`` (integer mid channels, tfnas) or ``"scale"``
        (multiplier of the default mid channels, spos).
    """

    name: str
    resolutions: tuple[int, ...]
    candidates: tuple[str, ...]
    stem: tuple[Fixed, ...]
    stages: tuple[Stage, ...]
    head: tuple[Fixed, ...]
    skip: str = "identity"
    min_depth: int = 1
    se_rule: str = "ofa"
    width: str = "none"
    description: str = ""

    # -- shape of the space ---------------------------------------------------
    @property
    def num_layers(self) -> int:
        """``L``: number of searchable layers."""
        return sum(s.layers for s in self.stages)

    @property
    def max_choices(self) -> int:
        """``K``: number of candidates (columns of the ``[L, K]`` view)."""
        return len(self.candidates)

    @property
    def default_resolution(self) -> int:
        return max(self.resolutions)

    @property
    def elastic_resolution(self) -> bool:
        return len(self.resolutions) > 1

    @cached_property
    def mask(self) -> np.ndarray:
        """Legal candidates per layer, bool ``[L, K]``."""
        out = np.zeros((self.num_layers, self.max_choices), dtype=bool)
        for g in self.geometry():
            for j, cand in enumerate(self.candidates):
                out[g.index, j] = self._legal(g, cand)
        return out

    def layer_choices(self, layer: int) -> tuple[str, ...]:
        """Legal candidate names of searchable layer ``layer``."""
        return tuple(c for c, ok in zip(self.candidates, self.mask[layer]) if ok)

    def _legal(self, g: LayerGeom, cand: str) -> bool:
        if cand != "skip":
            return True
        identity = g.is_identity
        if self.skip == "identity":
            return identity
        if self.skip == "depth":
            return g.position >= self.min_depth and identity
        return self.skip == "conv"

    # -- the stride walk -------------------------------------------------------
    def geometry(self, resolution: int | None = None) -> list[LayerGeom]:
        """Input shape of every searchable layer; the one stride walk of the space."""
        res = resolution or self.default_resolution
        cache = self._geometry_cache
        if res not in cache:  # parse/validate ask for it per architecture
            cache[res] = tuple(self._walk(res, 1)[1])
        return list(cache[res])

    @cached_property
    def _geometry_cache(self) -> dict[int, tuple[LayerGeom, ...]]:
        return {}

    def _walk(self, resolution: int, batch: int) -> tuple[list[OpSpec], list[LayerGeom], list[OpSpec]]:
        h, c = resolution, 3
        stem: list[OpSpec] = []
        for f in self.stem:
            op = f.op(h, c, batch)
            stem.append(op)
            h, c = op.out_hw[0], op.cout
        geoms: list[LayerGeom] = []
        for si, st in enumerate(self.stages):
            for p in range(st.layers):
                s = st.stride if p == 0 else 1
                geoms.append(LayerGeom(len(geoms), si, p, h, c, st.cout, s, st.act, st.se))
                h, c = (h - 1) // s + 1, st.cout
        head: list[OpSpec] = []
        for f in self.head:
            op = f.op(h, c, batch)
            head.append(op)
            h, c = op.out_hw[0], op.cout
        return stem, geoms, head

    # -- candidates → ops -------------------------------------------------------
    def candidate_op(self, g: LayerGeom, cand: str, width: int | float | None = None, batch: int = 1) -> OpSpec:
        """The op of candidate ``cand`` at layer geometry ``g``.

        Raises
        ------
        SpaceError
            For an unknown candidate, an illegal skip or a width out of range.
        """
        if cand not in self.candidates:
            raise SpaceError(
                f"unknown candidate {cand!r} at layer {g.index} of {self.name}; "
                f"allowed: {', '.join(self.layer_choices(g.index))}"
            )
        if not self._legal(g, cand):
            raise SpaceError(
                f"skip is not allowed at layer {g.index} of {self.name} (stage {g.stage} position {g.position}, "
                f"{g.cin}→{g.cout} stride {g.stride}); allowed: {', '.join(self.layer_choices(g.index))}"
            )
        if width is not None and (self.width == "none" or cand == "skip"):
            raise SpaceError(f"{self.name} takes no width at layer {g.index} ({cand}@{width:g})")
        if cand == "skip":
            if g.is_identity:
                return OpSpec("skip", g.h, g.h, g.cin, g.cout, batch=batch)
            return OpSpec("conv", g.h, g.h, g.cin, g.cout, 0, 1, g.stride, 1, 0, g.act, batch)
        if cand == "xception" or _SHUFFLE.match(cand):
            mid = g.cout // 2
            if width is not None:
                scale = float(width)
                if not any(abs(scale - x) < 1e-9 for x in SCALES):
                    raise SpaceError(
                        f"channel multiplier {width!r} of {cand} at layer {g.index} of {self.name} "
                        f"must be one of {', '.join(f'{x:g}' for x in SCALES)}"
                    )
                mid = max(1, int(round(mid * scale)))
            kernel = 3 if cand == "xception" else int(_SHUFFLE.match(cand).group(1))  # type: ignore[union-attr]
            kind = "xception" if cand == "xception" else "shuffle"
            return OpSpec(kind, g.h, g.h, g.cin, g.cout, mid, kernel, g.stride, 1, 0, g.act, batch)
        m = _MB.match(cand)
        if m is None:  # a declared candidate always matches one grammar
            raise SpaceError(f"candidate {cand!r} of {self.name} matches no candidate grammar")
        k, e, g2, se_flag = int(m.group(1)), int(m.group(2)), bool(m.group(3)), bool(m.group(4))
        mid = g.cin * e
        if width is not None:
            lo, hi = self.mid_range(g, cand)
            if not float(width).is_integer() or not lo <= int(width) <= hi:
                raise SpaceError(
                    f"mid channels {width:g} of {cand} at layer {g.index} of {self.name} "
                    f"must be an integer in [{lo}, {hi}]"
                )
            mid = int(width)
        se = 0
        if se_flag or g.se:
            se = g.cin * e // 3 if self.se_rule == "tfnas" else _make_divisible(mid / 4, 8)
        return OpSpec("mbconv", g.h, g.h, g.cin, g.cout, mid, k, g.stride, 2 if g2 else 1, se, g.act, batch)

    def mid_range(self, g: LayerGeom, cand: str) -> tuple[int, int]:
        """Inclusive range of mid channels of an MBConv candidate under elastic width.

        TF-NAS: an e3 candidate takes [2·cin, 4·cin], an e6 candidate [4·cin, 8·cin].
        """
        m = _MB.match(cand)
        if m is None:
            raise SpaceError(f"{cand!r} has no mid-channel range")
        e = int(m.group(2))
        return (g.cin * e * 2 // 3, g.cin * e * 4 // 3)

    def _default_width(self, g: LayerGeom, cand: str) -> int | float | None:
        """A candidate's width when none is written: multiplier 1 (``scale``), ``cin · expansion`` mid
        channels (``mid``); None for a skip or a space or candidate without width."""
        if self.width == "none" or cand == "skip":
            return None
        if self.width == "scale":
            return 1.0
        m = _MB.match(cand)
        return g.cin * int(m.group(2)) if m else None

    def width_ratio(self, g: LayerGeom, cand: str, width: int | float | None) -> float:
        """A layer's width as a fraction of its candidate's default (1.0 for no width or a skip).

        ``mid`` spaces: mid channels over ``cin · expansion``; ``scale`` spaces:
        the channel multiplier itself.
        """
        default = self._default_width(g, cand)
        return 1.0 if width is None or default is None else float(width) / default

    def width_from_ratio(self, g: LayerGeom, cand: str, ratio: float) -> int | float | None:
        """Inverse of :meth:`width_ratio`: None for the default width (ratio 1) or a layer without width."""
        default = self._default_width(g, cand)
        if default is None or abs(ratio - 1.0) < 1e-6:
            return None
        if self.width == "scale":
            return min(SCALES, key=lambda x: abs(x - ratio))
        mid = int(round(ratio * default))
        return None if mid == default else mid

    def choice_ops(self, resolution: int | None = None, batch: int = 1) -> list[list[OpSpec | None]]:
        """``[L][K]`` ops of every candidate at every layer (None where illegal)."""
        return [
            [self.candidate_op(g, c, batch=batch) if self.mask[g.index, j] else None for j, c in enumerate(self.candidates)]
            for g in self.geometry(resolution)
        ]

    def fixed_ops(self, resolution: int | None = None, batch: int = 1) -> list[OpSpec]:
        """Stem and head ops (the constant part of every architecture)."""
        stem, _, head = self._walk(resolution or self.default_resolution, batch)
        return stem + head

    def ops(self, arch: Arch | str, batch: int = 1) -> list[OpSpec]:
        """Every op of ``arch`` in execution order, fixed layers included."""
        arch = self._coerce(arch)
        stem, geoms, head = self._walk(arch.resolution or self.default_resolution, batch)
        widths = arch.widths or (None,) * len(geoms)
        body = [self.candidate_op(g, c, w, batch) for g, c, w in zip(geoms, arch.choices, widths)]
        return stem + body + head

    def layer_ops(self, arch: Arch | str, batch: int = 1) -> list[OpSpec]:
        """The ``L`` ops of the searchable layers of ``arch`` (no stem, no head)."""
        n_stem = len(self.stem)
        return self.ops(arch, batch)[n_stem : n_stem + self.num_layers]

    # -- architectures ---------------------------------------------------------
    def parse(self, text: str) -> Arch:
        """Parse the text form; raises :class:`SpaceError` naming what is wrong."""
        if not isinstance(text, str):
            raise SpaceError(f"an architecture is a string, got {type(text).__name__}")
        limit = 64 * (self.num_layers + 2)  # generous: a candidate name with a width is under 20 characters
        if len(text) > limit:
            raise SpaceError(
                f"architecture text of {len(text)} characters ({text[:40]!r}...) is longer than any architecture "
                f"of {self.name} ({self.num_layers} layers, at most {limit} characters)"
            )
        text = text.strip()
        resolution = None
        if ":" in text:
            prefix, text = text.split(":", 1)
            if not re.fullmatch(r"r\d+", prefix):
                raise SpaceError(f"bad resolution prefix {prefix!r}; expected r<resolution>:")
            resolution = int(prefix[1:])
        toks = text.split("-") if text else []
        choices: list[str] = []
        widths: list[int | float | None] = []
        for tok in toks:
            name, at, width = tok.partition("@")
            choices.append(name)
            if not at:
                widths.append(None)
                continue
            if not re.fullmatch(r"\d+(\.\d+)?", width):  # int() and float() would also take " 4", "+4", "nan"
                raise SpaceError(f"bad width {width!r} in token {tok!r}; expected a number after @")
            try:
                widths.append(int(width) if self.width == "mid" else float(width))
            except ValueError:
                raise SpaceError(f"bad width {width!r} in token {tok!r}; expected a number after @") from None
        arch = Arch(tuple(choices), resolution, tuple(widths) if any(w is not None for w in widths) else None)
        self.validate(arch)
        return arch

    def validate(self, arch: Arch) -> None:
        """Raise :class:`SpaceError` unless ``arch`` is legal in this space."""
        if len(arch.choices) != self.num_layers:
            raise SpaceError(
                f"{self.name} has {self.num_layers} searchable layers, got {len(arch.choices)} "
                f"in {_short(arch.encode())}"
            )
        if self.elastic_resolution and arch.resolution is None:
            raise SpaceError(f"{self.name} needs a resolution prefix r<res>: (one of {_ranges(self.resolutions)})")
        if arch.resolution is not None and arch.resolution not in self.resolutions:
            raise SpaceError(
                f"resolution {arch.resolution} is not allowed in {self.name}; allowed: {_ranges(self.resolutions)}"
            )
        if arch.widths is not None and len(arch.widths) != self.num_layers:
            raise SpaceError(f"widths has {len(arch.widths)} entries, expected {self.num_layers}")
        geoms = self.geometry(arch.resolution)
        widths = arch.widths or (None,) * len(geoms)
        for g, c, w in zip(geoms, arch.choices, widths):
            legal = isinstance(c, str) and c in self.candidates and self.mask[g.index, self.candidates.index(c)]
            if w is None and legal:
                continue  # legal by the mask; building the op is only needed to check a width or word an error
            self.candidate_op(g, c, w)
        if self.skip == "depth":
            for a, b in zip(geoms, geoms[1:]):
                if a.stage == b.stage and arch.choices[a.index] == "skip" and arch.choices[b.index] != "skip":
                    raise SpaceError(
                        f"layer {b.index} of {self.name} follows a skip in its stage: a dropped layer "
                        "may only be followed by dropped layers (depth is per stage)"
                    )

    def from_indices(self, indices: Sequence[int], resolution: int | None = None) -> Arch:
        """Architecture from candidate indices (columns of the ``[L, K]`` view)."""
        indices = list(indices)
        bad = [i for i in indices if not _is_index(i, self.max_choices)]
        if bad:  # a negative index must not wrap around to the last candidate
            raise SpaceError(
                f"candidate index out of range 0..{self.max_choices - 1} in {self.name}: {bad} in {indices}"
            )
        arch = Arch(tuple(self.candidates[int(i)] for i in indices), resolution)
        self.validate(arch)
        return arch

    def indices(self, arch: Arch | str) -> np.ndarray:
        """Candidate index per layer, int ``[L]``."""
        arch = self._coerce(arch)
        return np.array([self.candidates.index(c) for c in arch.choices], dtype=np.int64)

    def one_hot(self, archs: Iterable[Arch | str]) -> np.ndarray:
        """Layer-major one-hot, float ``[N, L·K]`` (index = layer·K + candidate)."""
        rows = [self.indices(a) for a in archs]
        idx = np.stack(rows) if rows else np.zeros((0, self.num_layers), dtype=np.int64)
        out = np.zeros((len(idx), self.num_layers, self.max_choices), dtype=np.float32)
        np.put_along_axis(out, idx[:, :, None], 1.0, axis=2)
        return out.reshape(len(idx), self.num_layers * self.max_choices)

    def sample(self, n: int, seed: int | None = 0, widths: bool = False) -> list[Arch]:
        """``n`` random legal architectures.

        Each layer takes a uniform choice among its legal candidates; spaces
        with per-stage depth first draw the depth of each stage uniformly,
        then the candidates of the kept layers (as OFA samples); elastic
        resolution is drawn uniformly. With ``widths`` (elastic-width spaces),
        every non-skip layer also draws its width uniformly: an integer mid
        count in :meth:`mid_range` (``mid``) or a multiplier of ``SCALES``
        (``scale``); these draws come from a second generator, so the
        candidates of a seed do not depend on ``widths``.
        """
        if widths and self.width == "none":
            raise SpaceError(f"{self.name} has no elastic width to sample")
        width_rng = np.random.default_rng(None if seed is None else [seed, 1])
        rng = np.random.default_rng(seed)
        geoms = self.geometry()
        # legal draws per layer, computed once; rng.integers(len) is the draw rng.choice(list) makes
        legal = [
            [c for c in self.layer_choices(g.index) if c != "skip" or self.skip != "depth"] for g in geoms
        ]
        out = []
        for _ in range(n):
            res = int(self.resolutions[rng.integers(len(self.resolutions))]) if self.elastic_resolution else None
            depth = {i: int(rng.integers(self.min_depth, st.layers + 1)) for i, st in enumerate(self.stages)}
            choices = []
            for g, cands in zip(geoms, legal):
                if self.skip == "depth" and g.position >= depth[g.stage]:
                    choices.append("skip")
                else:
                    choices.append(cands[rng.integers(len(cands))])
            drawn = None
            if widths:
                drawn = tuple(self._draw_width(width_rng, g, c) for g, c in zip(geoms, choices))
                drawn = drawn if any(w is not None for w in drawn) else None
            out.append(Arch(tuple(choices), res, drawn))
        return out

    def _draw_width(self, rng: np.random.Generator, g: LayerGeom, cand: str) -> int | float | None:
        if cand == "skip":
            return None
        if self.width == "scale":
            width: int | float = SCALES[int(rng.integers(len(SCALES)))]
        else:
            lo, hi = self.mid_range(g, cand)
            width = int(rng.integers(lo, hi + 1))
        # the default width is written as no width, so one network has one text
        return None if width == self._default_width(g, cand) else width

    def _coerce(self, arch: Arch | str) -> Arch:
        if isinstance(arch, str):
            return self.parse(arch)
        self.validate(arch)
        return arch

    # -- cost and model -------------------------------------------------------
    def macs(self, arch: Arch | str) -> int:
        """Multiply-accumulates of one forward pass at batch 1."""
        return sum(op.macs() for op in self.ops(arch))

    def params(self, arch: Arch | str) -> int:
        """Number of weights (BatchNorm excluded)."""
        return sum(op.params() for op in self.ops(arch))

    def build(self, arch: Arch | str):
        """Torch ``nn.Module`` (eval mode) of ``arch``; input ``[B, 3, R, R]`` → logits ``[B, classes]``."""
        from hwprof.spaces.modules import build_network

        return build_network(self.ops(arch))

    def input_resolution(self, arch: Arch | str) -> int:
        arch = self._coerce(arch)
        return arch.resolution or self.default_resolution


def _is_index(value: object, size: int) -> bool:
    """Whether ``value`` is an integral number in ``[0, size)``."""
    try:
        return float(value).is_integer() and 0 <= float(value) < size  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _make_divisible(v: float, divisor: int) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _ranges(values: tuple[int, ...]) -> str:
    if len(values) > 3 and len({b - a for a, b in zip(values, values[1:])}) == 1:
        return f"{values[0]}..{values[-1]} step {values[1] - values[0]}"
    return ", ".join(map(str, values))



SPACES: dict[str, Space] = {}


def register(space: Space) -> Space:
    """Add ``space`` to the registry (name must be new)."""
    if space.name in SPACES:
        raise SpaceError(f"space {space.name!r} is already registered")
    SPACES[space.name] = space
    return space



def space(name: str) -> Space:
    """The registered space ``name``; the error lists the known ones."""
    try:
        return SPACES[name]
    except KeyError:
        raise SpaceError(f"unknown space {name!r}; known spaces: {', '.join(sorted(SPACES))}") from None


def list_spaces(pattern: str = "*") -> list[str]:
    """Names of registered spaces matching a shell-style ``pattern``."""
    return sorted(n for n in SPACES if fnmatch.fnmatch(n, pattern))
