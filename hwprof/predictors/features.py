"""Features of architectures for predictors: one-hot, LUT sums and op-shape features.

Everything is derived from :meth:`Space.one_hot` and :meth:`Space.ops` (the
space's one stride walk); nothing here walks strides itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from hwprof.errors import PredictorError, SpaceError, require
from hwprof.spaces import Arch, Space, space as get_space


def as_archs(space: Space, archs: Iterable[Arch | str]) -> list[Arch]:
    """Parse and validate architectures given as text or :class:`Arch`."""
    out = []
    for a in archs:
        arch = space.parse(a) if isinstance(a, str) else a
        if not isinstance(arch, Arch):
            raise SpaceError(f"expected an architecture string or Arch, got {type(a).__name__}")
        space.validate(arch)
        out.append(arch)
    return out


def extra_columns(space: Space) -> list[str]:
    """Names of the columns after the one-hot in :func:`arch_matrix` (empty for a space without elasticity).

    ``resolution``: input resolution over the space's default (largest) one,
    and ``area<l>``: layer ``l``'s feature-map area over its area at the
    default resolution (:func:`area_ratios`), for elastic-resolution spaces;
    ``width<l>``: the width of layer ``l`` as a fraction of its candidate's
    default (:meth:`Space.width_ratio`), for elastic-width spaces.
    """
    cols = []
    if space.elastic_resolution:
        cols += ["resolution"] + [f"area{i}" for i in range(space.num_layers)]
    if space.width != "none":
        cols += [f"width{i}" for i in range(space.num_layers)]
    return cols


def matrix_width(space: Space) -> int:
    """Columns of :func:`arch_matrix`: ``L·K`` plus the :func:`extra_columns`."""
    return space.num_layers * space.max_choices + len(extra_columns(space))


@lru_cache(maxsize=64)
def _area_table(space_name: str) -> dict[int, tuple[float, ...]]:
    sp = get_space(space_name)

    def areas(res: int) -> np.ndarray:
        g = sp.geometry(res)
        return np.array([(x.h * x.h + ((x.h - 1) // x.stride + 1) ** 2) / 2 for x in g], dtype=np.float64)

    ref = areas(sp.default_resolution)
    return {r: tuple(areas(r) / ref) for r in sp.resolutions}


def area_ratios(space: Space, resolution: int | None = None) -> np.ndarray:
    """Each searchable layer's feature-map area at ``resolution`` over that at the default one, ``[L]``.

    The area is the mean of the layer's input and output areas; the ratio is
    not ``(r / r0)²``: the stride walk rounds up, so at 132 pixels the last
    stage is 5×5 where 224 gives 7×7 (0.51, not 0.35).
    """
    return np.array(_area_table(space.name)[resolution or space.default_resolution])


def resolution_columns(space: Space, weights):
    """The ``resolution`` and ``area<l>`` columns of probabilities over ``space.resolutions``.

    Parameters
    ----------
    weights : ndarray or Tensor ``[..., R]``
        One-hot (a fixed resolution) or soft weights (an expectation, as a
        searcher of the resolution has).

    Returns
    -------
    ``[..., 1 + L]``: expected resolution ratio and area ratios (differentiable in ``weights``).
    """
    table = np.array(
        [[r / space.default_resolution, *area_ratios(space, r)] for r in space.resolutions], dtype=np.float64
    )
    if isinstance(weights, np.ndarray):
        return weights @ table
    return weights @ weights.new_tensor(table)


def arch_matrix(space: Space, archs: Iterable[Arch | str]) -> np.ndarray:
    """Everything an architecture's text carries, float64 ``[N, F]`` (``F`` = :func:`matrix_width`).

    Columns: the layer-major one-hot ``[L·K]``, then the resolution and area
    ratios (elastic-resolution spaces) and the ``L`` width ratios
    (elastic-width spaces); 1.0 means the default. For every other space this
    is exactly :meth:`Space.one_hot`.
    """
    archs = as_archs(space, archs)
    X = space.one_hot(archs).astype(np.float64)
    extras = []
    if space.elastic_resolution:
        rows = [[space.input_resolution(a) / space.default_resolution, *area_ratios(space, a.resolution)] for a in archs]
        extras.append(np.array(rows, dtype=np.float64).reshape(len(archs), 1 + space.num_layers))
    if space.width != "none":
        geoms = space.geometry()
        extras.append(
            np.array(
                [
                    [space.width_ratio(g, c, w) for g, c, w in zip(geoms, a.choices, a.widths or (None,) * len(geoms))]
                    for a in archs
                ]
            ).reshape(len(archs), space.num_layers)
        )
    return np.hstack([X, *extras]) if extras else X


def check_one_hot(space: Space, X) -> np.ndarray:
    """``X`` as float64 ``[N, F]`` (:func:`arch_matrix`'s layout).

    A bare one-hot ``[N, L·K]`` is accepted for every space and completed
    with default resolution and widths (ratio 1). Raises
    :class:`PredictorError` on any other width or a non-finite entry.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    lk = space.num_layers * space.max_choices
    width = matrix_width(space)
    if X.ndim != 2 or X.shape[1] not in (lk, width):
        extra = f" or [N, {width}] with {', '.join(extra_columns(space)[:3])}..." if width != lk else ""
        raise PredictorError(
            f"expected a one-hot matrix [N, {lk}] of space {space.name} "
            f"({space.num_layers} layers × {space.max_choices} candidates, layer-major){extra}, got shape {X.shape}"
        )
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise PredictorError(f"row {bad} of the input holds NaN or infinity; features must be finite")
    if X.shape[1] < width:
        X = np.hstack([X, np.ones((len(X), width - lk))])
    return X


def archs_from_one_hot(space: Space, X) -> list[Arch]:
    """Architectures of the rows of an exact :func:`arch_matrix` ``[N, F]`` (or bare one-hot).

    The candidate is the argmax per layer; the resolution is the allowed one
    nearest the ratio, a width the one nearest its ratio.
    """
    X = check_one_hot(space, X)
    lk = space.num_layers * space.max_choices
    oh = X[:, :lk].reshape(-1, space.num_layers, space.max_choices)
    if not np.allclose(oh.sum(axis=2), 1.0) or not np.allclose(oh.max(axis=2), 1.0):
        raise PredictorError("shape features need an exact one-hot (one 1 per layer); got soft or empty rows")
    col = lk
    res = [None] * len(X)
    if space.elastic_resolution:
        allowed = np.array(space.resolutions)
        res = [int(allowed[np.argmin(np.abs(allowed - r * space.default_resolution))]) for r in X[:, col]]
        col += 1 + space.num_layers
    out = []
    for row, r, ratios in zip(oh.argmax(axis=2), res, X[:, col:]):
        arch = space.from_indices(row, r)
        if space.width != "none":
            geoms = space.geometry(r)
            widths = tuple(space.width_from_ratio(g, c, q) for g, c, q in zip(geoms, arch.choices, ratios))
            if any(w is not None for w in widths):
                arch = Arch(arch.choices, arch.resolution, widths)
        out.append(arch)
    return out


@lru_cache(maxsize=64)
def _cost_tables(space_name: str) -> np.ndarray:
    """Per layer and candidate at the default shape: MMACs, M feature-map elements, M params and the
    expanded (mid) channels, ``[4, L, K]``."""
    sp = get_space(space_name)
    table = np.zeros((4, sp.num_layers, sp.max_choices))
    for layer, row in enumerate(sp.choice_ops()):
        for k, op in enumerate(row):
            if op is not None:
                table[:, layer, k] = (op.macs() / 1e6, op.activation_elems() / 1e6, op.params() / 1e6, op.mid)
    table.setflags(write=False)
    return table


#: Channel blocks of CPU and GPU kernels: a layer whose expanded channels are not a multiple pays more per MAC.
BLOCKS = (4, 8)


def design_width(space: Space) -> int:
    """Columns of :func:`design`: ``L·K + (2 + len(BLOCKS))·K + len(BLOCKS)·L + 3``."""
    L, K = space.num_layers, space.max_choices
    return L * K + (2 + len(BLOCKS)) * K + len(BLOCKS) * L + 3


def design(space: Space, X):
    """Inputs of the additive kinds: each layer's one-hot times its scale, and a MACs prior.

    Columns:

    1. ``[L·K]`` the one-hot of layer ``l`` times ``s_l = area_l · ω_l`` (its
       feature-map area and width ratios, :func:`area_ratios`,
       :meth:`Space.width_ratio`; 1 in a space without elasticity);
    2. ``[K]`` how many layers use each candidate (a per-op overhead that does
       not scale);
    3. ``[K]`` per candidate, the MMACs of its layers (the one-hot times the
       candidate's MMACs at the default shape, times ``s_l``);
    4. for each channel block ``b`` of :data:`BLOCKS`, the MMACs of the layers
       whose expanded channels are not a multiple of ``b``, per candidate
       ``[K]`` and per layer ``[L]`` (blocked kernels pad or take a slower
       path, and how much depends on the layer: on ONNX Runtime, TF-NAS
       networks with sampled mid counts went from 6.6 % to 3.0 % MAPE with
       these columns);
    5. the network's feature-map elements (times ``s_l``) and parameters
       (times the width ratio), in millions: memory traffic MACs miss;
    6. ``ρ² − 1`` for the fixed layers' growth with the resolution ratio ``ρ``.

    A linear model on these prices each layer as ``a_k + (b_lk + c_k ·
    MMACs_lk + …) · s_l``. Columns 2–5 are few and large, so ridge's penalty
    barely touches them: with few measurements the fit starts from "latency
    follows the MACs of each candidate type" and the per-layer weights only
    correct it (on HELP's fbnet data with 50 training architectures, the
    share within ±5% goes from 63% to 90% on a 1080 Ti). Works on numpy
    arrays and torch tensors alike (differentiable in the extras too).

    Parameters
    ----------
    X : ndarray or Tensor ``[..., F]`` (:func:`arch_matrix`) or ``[..., L·K]``
        (a bare one-hot: default resolution and widths).

    Returns
    -------
    ``[..., design_width]`` (:func:`design_width`).
    """
    L, K = space.num_layers, space.max_choices
    lead = tuple(X.shape[:-1])
    one_hot = X[..., : L * K].reshape(*lead, L, K)
    col = L * K
    full = X.shape[-1] > L * K
    if space.elastic_resolution and full:
        rho2 = X[..., col : col + 1] ** 2
        scale = X[..., col + 1 : col + 1 + L]
        col += 1 + L
    else:
        rho2 = X[..., :1] * 0 + 1
        scale = X[..., :L] * 0 + 1
    width = X[..., col : col + L] if space.width != "none" and full else X[..., :L] * 0 + 1
    scaled = one_hot * (scale * width).reshape(*lead, L, 1)
    widened = one_hot * width.reshape(*lead, L, 1)
    if isinstance(X, np.ndarray):
        macs, act, params, mid0 = _cost_tables(space.name)
        cat, rnd = np.concatenate, np.round
    else:
        import torch

        macs, act, params, mid0 = X.new_tensor(_cost_tables(space.name))
        cat, rnd = torch.cat, torch.round
    mid = rnd(width.reshape(*lead, L, 1) * mid0)  # expanded channels at this width (a step: no gradient)
    off = [scaled * macs * ((mid % b != 0) & (mid0 > 0)) for b in BLOCKS]  # [..., L, K] each
    misaligned = [m.sum(-2) for m in off] + [m.sum(-1) for m in off]
    totals = [(scaled * act).sum((-2, -1))[..., None], (widened * params).sum((-2, -1))[..., None]]
    parts = [scaled.reshape(*lead, L * K), one_hot.sum(-2), (scaled * macs).sum(-2), *misaligned, *totals, rho2 - 1]
    return cat(parts, -1)


def fold_design(space: Space, coef: np.ndarray) -> np.ndarray:
    """One-hot weights ``[L·K]`` equal to weights ``coef`` ``[design_width]`` on :func:`design`'s columns.

    Exact for a bare one-hot (every scale 1): then the design is linear in
    the one-hot, so a model fitted on it is a plain LUT-like sum.
    """
    L, K = space.num_layers, space.max_choices
    coef = np.asarray(coef, dtype=np.float64)
    cost_macs, cost_act, cost_params, mid0 = _cost_tables(space.name)
    at = L * K
    per_kind = coef[at : at + (2 + len(BLOCKS)) * K].reshape(2 + len(BLOCKS), K)
    at += (2 + len(BLOCKS)) * K
    per_layer = coef[at : at + len(BLOCKS) * L].reshape(len(BLOCKS), L)
    at += len(BLOCKS) * L
    c_act, c_params = coef[at : at + 2]
    folded = coef[: L * K].reshape(L, K) + per_kind[0][None, :] + per_kind[1][None, :] * cost_macs
    for by_kind, by_layer, b in zip(per_kind[2:], per_layer, BLOCKS):
        off = cost_macs * ((mid0 % b != 0) & (mid0 > 0))
        folded += (by_kind[None, :] + by_layer[:, None]) * off
    return (folded + c_act * cost_act + c_params * cost_params).ravel()


def elastic(space: Space) -> bool:
    """Whether the space's architectures carry a resolution or widths beyond the one-hot."""
    return space.elastic_resolution or space.width != "none"


def design_module(space: Space, net):
    """Torch module ``x ↦ net(design(x))`` for ``x`` ``[..., F]`` or a bare one-hot ``[..., L·K]``
    (which :func:`design` reads at the default resolution and widths)."""
    torch = require("torch", "torch")

    class Designed(torch.nn.Module):
        """Latency (ms) of architecture inputs through the additive design and ``net``."""

        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(design(space, x))

    return Designed().eval()


def shape_feature_names(space: Space) -> list[str]:
    """Names of the columns of :func:`shape_features`."""
    n = len(space.stages)
    return (
        ["mmacs", "mparams", "layers"]
        + [f"stage{i}_mmacs" for i in range(n)]
        + [f"stage{i}_kparams" for i in range(n)]
        + [f"stage{i}_layers" for i in range(n)]
        + [f"layer{i}_mmacs" for i in range(space.num_layers)]
        + ["mact", "resolution"]
        + [f"stage{i}_mact" for i in range(n)]
        + ["misaligned4", "misaligned8"]
    )


def legacy_shape_columns(space: Space) -> int:
    """How many of :func:`shape_feature_names` hwprof 0.1 had (the leading ones: whole-network,
    per-stage MACs, params and layers, per-layer MACs); a saved model of then reads only these."""
    return 3 + 3 * len(space.stages) + space.num_layers


@lru_cache(maxsize=200_000)
def _shape_row(space_name: str, text: str) -> tuple[float, ...]:
    sp = get_space(space_name)
    arch = sp.parse(text)
    n_stem = len(sp.stem)
    ops = sp.ops(arch)
    body = ops[n_stem : n_stem + sp.num_layers]
    stages = [g.stage for g in sp.geometry(arch.resolution)]
    macs = np.array([op.macs() for op in body], dtype=np.float64) / 1e6
    params = np.array([op.params() for op in body], dtype=np.float64) / 1e3
    real = np.array([op.kind != "skip" for op in body], dtype=np.float64)
    n = len(sp.stages)
    st_macs, st_params, st_layers = np.zeros(n), np.zeros(n), np.zeros(n)
    np.add.at(st_macs, stages, macs)
    np.add.at(st_params, stages, params)
    np.add.at(st_layers, stages, real)
    act = np.array([op.activation_elems() for op in body], dtype=np.float64) / 1e6
    st_act = np.zeros(n)
    np.add.at(st_act, stages, act)
    total_macs = sum(op.macs() for op in ops) / 1e6
    total_params = sum(op.params() for op in ops) / 1e6
    total_act = sum(op.activation_elems() for op in ops) / 1e6
    # CPU kernels work on channel blocks: a mid count off a block pays for padding and slower paths
    mids = [op.mid for op in body if op.mid]
    misaligned = [sum(1 for m in mids if m % block) for block in BLOCKS]
    return tuple(
        np.concatenate(
            [[total_macs, total_params, real.sum()], st_macs, st_params, st_layers, macs,
             [total_act, sp.input_resolution(arch)], st_act, misaligned]
        )
    )


def shape_features(space: Space, archs: Sequence[Arch | str]) -> np.ndarray:
    """Op-shape features, float64 ``[N, F]`` (columns: :func:`shape_feature_names`).

    Whole-network MMACs and Mparams (fixed layers included), number of
    non-identity searchable layers, per-stage MMACs, kparams and layer counts,
    per-layer MMACs, then the feature-map elements read and written
    (millions, :meth:`OpSpec.activation_elems`: the memory traffic that MACs
    miss) of the network and per stage, the input resolution (pixels), and
    how many layers have expanded channels that are not a multiple of 4 and
    of 8 (CPU kernels work on channel blocks: on ONNX Runtime a TF-NAS network
    with odd mid counts runs up to twice as slow as its MACs say); all from
    ``space.ops``, so resolution and widths count.
    """
    rows = [_shape_row(space.name, a if isinstance(a, str) else a.encode()) for a in archs]
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def lut_sum(values: np.ndarray, constant_ms: float, X) -> np.ndarray:
    """LUT sum (ms) of one-hot rows: ``X @ values.ravel() + constant_ms``, float64 ``[N]``."""
    return np.asarray(X, dtype=np.float64) @ np.asarray(values, dtype=np.float64).ravel() + float(constant_ms)


__all__ = [
    "BLOCKS",
    "arch_matrix",
    "archs_from_one_hot",
    "area_ratios",
    "as_archs",
    "check_one_hot",
    "design",
    "design_module",
    "design_width",
    "elastic",
    "fold_design",
    "extra_columns",
    "legacy_shape_columns",
    "lut_sum",
    "matrix_width",
    "resolution_columns",
    "shape_feature_names",
    "shape_features",
]
