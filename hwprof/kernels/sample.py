"""Kernel shapes that cover real CNNs, drawn at random, and more of them where a fit errs.

:func:`sample_kernels` draws each kernel's kind by :data:`KIND_SHARES`, then
its shape from distributions read off common ConvNets (MobileNets, ResNets,
EfficientNets, ShuffleNets, RegNets, DenseNets, SqueezeNet, GoogLeNet):
feature maps from 224 down to 7 pixels (odd sizes too), channels log-uniform
and mostly multiples of 8, kernel sizes 1–7, stride 1 or 2, the usual
activations. Shapes larger than :data:`MAX_MACS` or :data:`MAX_ELEMENTS` are
drawn again (no ConvNet of this size class has them).

:func:`refine` is nn-Meter's adaptive step: given the relative error of a
first fit on each measured kernel, it spends a second budget on the kinds
that err most, half on neighbours of their worst kernels (channels and
resolution perturbed) and half on fresh draws.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from hwprof.errors import ConfigError
from hwprof.artifacts.kernel import KERNEL_KINDS, KernelSpec, parse_kernel

#: Share of each kind in a sample (kinds with more shapes in real networks get more).
KIND_SHARES: dict[str, float] = {
    "conv": 0.22, "gconv": 0.08, "dwconv": 0.17, "se": 0.06, "fc": 0.05, "pool": 0.04, "maxpool": 0.04,
    "add": 0.07, "mul": 0.04, "concat": 0.05, "act": 0.12, "copy": 0.06,
}
#: Feature-map sizes of real networks at 224 px input (and the odd ones of SqueezeNet, GoogLeNet, Inception).
SIZES = np.array([7, 7, 14, 14, 28, 28, 56, 56, 112, 112, 224, 8, 13, 15, 17, 27, 35, 55, 57, 71, 113])
#: Largest kernel drawn (MACs) and largest feature map (elements).
MAX_MACS = 500e6
MAX_ELEMENTS = 3.3e6


def _channels(rng: np.random.Generator, lo: int, hi: int, aligned: float = 0.8) -> int:
    c = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    step = 8 if rng.random() < aligned else 1
    return int(max(lo, round(c / step) * step))


def _pick(rng: np.random.Generator, values: Sequence, p: Sequence[float]):
    return values[int(rng.choice(len(values), p=np.asarray(p) / np.sum(p)))]


def _draw(kind: str, rng: np.random.Generator, batch: int) -> KernelSpec:
    h = int(rng.choice(SIZES))
    if kind == "gconv":  # grouped (RegNet, ResNeXt): group width 8–64, mostly 3×3, cin == cout
        width = int(_pick(rng, [8, 16, 24, 32, 48, 64], [1] * 6))
        g = int(max(2, round(_channels(rng, 16, 1024, aligned=0) / width)))
        co = g * width if rng.random() < 0.8 else g * int(_pick(rng, [8, 16, 32, 64], [1] * 4))
        k = int(_pick(rng, [3, 1, 5], [0.85, 0.1, 0.05]))
        act = _pick(rng, ["relu", "none", "swish"], [0.7, 0.2, 0.1])
        return KernelSpec("conv", h, h, g * width, co, k=k, s=int(_pick(rng, [1, 2], [0.8, 0.2])), g=g, act=act, b=batch)
    if kind == "conv":
        k = int(_pick(rng, [1, 3, 5, 7, 2, 4], [0.45, 0.38, 0.05, 0.06, 0.03, 0.03]))
        ci = 3 if rng.random() < 0.08 else _channels(rng, 8, 1024)
        co = _channels(rng, 8, 2048)
        g = 1
        s = int(_pick(rng, [1, 2], [0.8, 0.2])) if k not in (2, 4) else k
        act = _pick(rng, ["relu", "none", "relu6", "hswish", "swish"], [0.42, 0.33, 0.09, 0.08, 0.08])
        return KernelSpec("conv", h, h, ci, co, k=k, s=s, g=g, act=act, b=batch)
    if kind == "dwconv":
        c = _channels(rng, 8, 2048)
        k = int(_pick(rng, [3, 5, 7], [0.6, 0.3, 0.1]))
        act = _pick(rng, ["relu6", "relu", "hswish", "swish", "none"], [0.3, 0.25, 0.15, 0.15, 0.15])
        return KernelSpec("conv", h, h, c, c, k=k, s=int(_pick(rng, [1, 2], [0.75, 0.25])), g=c, act=act, b=batch)
    if kind == "se":
        c = _channels(rng, 16, 2048)
        se = max(8, round(c / float(_pick(rng, [4, 16, 24], [0.5, 0.3, 0.2])) / 8) * 8)
        return KernelSpec("se", h, h, c, c, se=se, b=batch)
    if kind == "fc":
        ci = _channels(rng, 32, 4096)
        co = 1000 if rng.random() < 0.4 else _channels(rng, 8, 4096)
        return KernelSpec("fc", 1, 1, ci, co, act=_pick(rng, ["none", "relu"], [0.6, 0.4]), b=batch)
    c = _channels(rng, 8, 2048)
    if kind == "pool":
        if rng.random() < 0.75:
            return KernelSpec("pool", h, h, c, c, b=batch)
        k = int(_pick(rng, [2, 3], [0.6, 0.4]))
        return KernelSpec("pool", h, h, c, c, k=k, s=int(_pick(rng, [1, 2], [0.3, 0.7])), b=batch)
    if kind == "maxpool":
        k = int(_pick(rng, [2, 3], [0.3, 0.7]))
        return KernelSpec("maxpool", h, h, c, c, k=k, s=int(_pick(rng, [1, 2], [0.25, 0.75])), b=batch)
    if kind == "add":
        return KernelSpec("add", h, h, c, c, act=_pick(rng, ["none", "relu"], [0.75, 0.25]), b=batch)
    if kind == "mul":
        return KernelSpec("mul", h, h, c, c, b=batch)
    if kind == "concat":
        m = int(_pick(rng, [2, 3, 4], [0.6, 0.2, 0.2]))
        c = max(c, m)
        return KernelSpec("concat", h, h, c, c, m=m, b=batch)
    if kind == "copy":
        m = int(_pick(rng, [1, 2, 4], [0.4, 0.5, 0.1]))
        c = max(m, c // m * m) if m > 1 else max(c, 2)
        co = c if m > 1 else max(1, c // 2 if rng.random() < 0.7 else int(rng.integers(1, c)))
        return KernelSpec("copy", h, h, c, co, m=m, b=batch)
    act = _pick(rng, ["relu", "sigmoid", "hswish", "hardsigmoid", "relu6", "batchnormalization", "mul", "add", "gelu",
                      "layernorm"], [0.18, 0.16, 0.12, 0.08, 0.08, 0.1, 0.08, 0.04, 0.08, 0.08])
    if act == "layernorm":  # over the last axis: ConvNeXt's [b, h, w, c] after its permute
        return KernelSpec("act", h, c, h, h, act=act, b=batch)
    return KernelSpec("act", h, h, c, c, act=act, b=batch)


def _fits(spec: KernelSpec) -> bool:
    ho, wo = spec.out_hw
    if min(ho, wo) < 1:
        return False
    biggest = max(spec.ci * spec.h * spec.w, spec.co * ho * wo) * spec.b
    return spec.macs() <= MAX_MACS * spec.b and biggest <= MAX_ELEMENTS * spec.b


def draw(kind: str, rng: np.random.Generator, batch: int = 1) -> KernelSpec:
    """One kernel of ``kind`` (a :data:`KERNEL_KINDS` name) within the size limits."""
    if kind not in KERNEL_KINDS:
        raise ConfigError(f"unknown kernel kind {kind!r}; known: {', '.join(KERNEL_KINDS)}")
    while True:
        spec = _draw(kind, rng, batch)
        if _fits(spec):
            return spec


def sample_kernels(
    n: int, seed: int = 0, batch: int = 1, kinds: Sequence[str] | None = None
) -> list[KernelSpec]:
    """``n`` distinct kernels (seeded), kinds in proportion to :data:`KIND_SHARES`.

    Parameters
    ----------
    n : int
        How many.
    seed : int
    batch : int
    kinds : sequence of str, optional
        Only these kinds (a device that cannot run some), shares renormalised.
    """
    kinds = list(kinds or KIND_SHARES)
    shares = np.array([KIND_SHARES[k] for k in kinds])
    rng = np.random.default_rng(seed)
    out: dict[str, KernelSpec] = {}
    for _ in range(50 * n + 100):
        if len(out) >= n:
            break
        spec = draw(str(rng.choice(kinds, p=shares / shares.sum())), rng, batch)
        out.setdefault(spec.encode(), spec)
    return list(out.values())


def _neighbour(spec: KernelSpec, rng: np.random.Generator) -> KernelSpec:
    """A kernel near ``spec``: channels scaled by up to ×/÷ 1.5, the resolution moved to a nearby size."""
    def scale(c: int, step: int = 8) -> int:
        v = c * float(np.exp(rng.uniform(-0.4, 0.4)))
        return int(max(step, round(v / step) * step)) if c % 8 == 0 else max(1, int(round(v)))

    h = int(max(1, round(spec.h * float(np.exp(rng.uniform(-0.3, 0.3)))))) if spec.family != "fc" else 1
    ci = scale(spec.ci)
    if spec.family == "conv" and spec.g > 1:
        if spec.g == spec.ci:
            return KernelSpec("conv", h, h, ci, ci, k=spec.k, s=spec.s, g=ci, act=spec.act, b=spec.b)
        width = spec.ci // spec.g
        g = max(2, int(round(spec.g * float(np.exp(rng.uniform(-0.4, 0.4))))))
        return KernelSpec("conv", h, h, g * width, g * (spec.co // spec.g), k=spec.k, s=spec.s, g=g, act=spec.act,
                          b=spec.b)
    co = scale(spec.co) if spec.family in ("conv", "fc") else ci
    se = max(8, spec.se * ci // max(spec.ci, 1) // 8 * 8) if spec.family == "se" else 0
    m = min(spec.m, ci) if spec.family == "concat" else spec.m
    if spec.family == "copy":
        ci = max(spec.m, ci // spec.m * spec.m) if spec.m > 1 else max(2, ci)
        co = ci if spec.m > 1 else max(1, min(ci - 1, spec.co * ci // spec.ci))
    if spec.family == "act" and spec.act == "layernorm":
        return KernelSpec("act", h, spec.w, h, h, act="layernorm", b=spec.b)
    return KernelSpec(spec.family, h, h, ci, co, m=m, k=spec.k, s=spec.s, g=1, se=se, act=spec.act, b=spec.b)


def refine(
    errors: Mapping[str, float], n: int, seed: int = 0, batch: int = 1, kinds: Sequence[str] | None = None
) -> list[KernelSpec]:
    """``n`` more kernels where a first fit errs most (nn-Meter's adaptive sampling).

    Parameters
    ----------
    errors : dict of str to float
        Kernel key → relative error of the first fit on it (held out by cross-validation).
    n : int
        The second budget.
    seed : int
    batch : int
    kinds : sequence of str, optional
        Kinds allowed on the device.

    Returns
    -------
    list of KernelSpec
        Each kind gets a share of ``n`` in proportion to its count × mean error; half of a kind's
        share goes to neighbours of its worst fifth, half to fresh draws.
    """
    kinds = list(kinds or KIND_SHARES)
    by_kind: dict[str, list[tuple[float, KernelSpec]]] = {k: [] for k in kinds}
    for key, err in errors.items():
        spec = parse_kernel(key)
        if spec.kind in by_kind:
            by_kind[spec.kind].append((abs(float(err)), spec))
    weight = np.array([sum(e for e, _ in by_kind[k]) + 1e-9 for k in kinds])
    counts = np.floor(n * weight / weight.sum()).astype(int)
    counts[np.argmax(weight)] += n - counts.sum()
    rng = np.random.default_rng([seed, 1])
    seen = set(errors)
    out: dict[str, KernelSpec] = {}
    for kind, count in zip(kinds, counts):
        worst = [s for _, s in sorted(by_kind[kind], key=lambda t: -t[0])][: max(1, len(by_kind[kind]) // 5)]
        for i in range(50 * int(count) + 10):
            if sum(1 for s in out.values() if s.kind == kind) >= count:
                break
            try:
                spec = _neighbour(worst[i % len(worst)], rng) if worst and i % 2 == 0 else draw(kind, rng, batch)
            except Exception:  # a perturbed shape a kind cannot take: draw again
                continue
            if spec.kind == kind and _fits(spec) and spec.encode() not in seen:
                out.setdefault(spec.encode(), spec)
    return list(out.values())


__all__ = ["KIND_SHARES", "MAX_ELEMENTS", "MAX_MACS", "draw", "refine", "sample_kernels"]
