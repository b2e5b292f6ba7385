"""Features of architectures for predictors: one-hot, LUT sums and op-shape features.

Everything is derived from :meth:`Space.one_hot` and :meth:`Space.ops` (the
space's one stride walk); nothing here walks strides itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from hwprof.errors import PredictorError, SpaceError
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


def check_one_hot(space: Space, X) -> np.ndarray:
    """``X`` as float64 ``[N, L·K]``; raises :class:`PredictorError` on a wrong width."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    width = space.num_layers * space.max_choices
    if X.ndim != 2 or X.shape[1] != width:
        raise PredictorError(
            f"expected a one-hot matrix [N, {width}] of space {space.name} "
            f"({space.num_layers} layers × {space.max_choices} candidates, layer-major), got shape {X.shape}"
        )
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise PredictorError(f"row {bad} of the input holds NaN or infinity; features must be finite")
    return X


def archs_from_one_hot(space: Space, X) -> list[Arch]:
    """Architectures of the rows of an exact one-hot ``[N, L·K]`` (argmax per layer)."""
    X = check_one_hot(space, X).reshape(-1, space.num_layers, space.max_choices)
    if not np.allclose(X.sum(axis=2), 1.0) or not np.allclose(X.max(axis=2), 1.0):
        raise PredictorError("shape features need an exact one-hot (one 1 per layer); got soft or empty rows")
    return [space.from_indices(row) for row in X.argmax(axis=2)]


def shape_feature_names(space: Space) -> list[str]:
    """Names of the columns of :func:`shape_features`."""
    n = len(space.stages)
    return (
        ["mmacs", "mparams", "layers"]
        + [f"stage{i}_mmacs" for i in range(n)]
        + [f"stage{i}_kparams" for i in range(n)]
        + [f"stage{i}_layers" for i in range(n)]
        + [f"layer{i}_mmacs" for i in range(space.num_layers)]
    )


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
    total_macs = sum(op.macs() for op in ops) / 1e6
    total_params = sum(op.params() for op in ops) / 1e6
    return tuple(np.concatenate([[total_macs, total_params, real.sum()], st_macs, st_params, st_layers, macs]))


def shape_features(space: Space, archs: Sequence[Arch | str]) -> np.ndarray:
    """Op-shape features, float64 ``[N, F]`` (columns: :func:`shape_feature_names`).

    Whole-network MMACs and Mparams (fixed layers included), number of
    non-identity searchable layers, per-stage MMACs, kparams and layer counts,
    and per-layer MMACs; all from ``space.ops``.
    """
    rows = [_shape_row(space.name, a if isinstance(a, str) else a.encode()) for a in archs]
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def lut_sum(values: np.ndarray, constant_ms: float, X) -> np.ndarray:
    """LUT sum (ms) of one-hot rows: ``X @ values.ravel() + constant_ms``, float64 ``[N]``."""
    return np.asarray(X, dtype=np.float64) @ np.asarray(values, dtype=np.float64).ravel() + float(constant_ms)


__all__ = ["archs_from_one_hot", "as_archs", "check_one_hot", "lut_sum", "shape_feature_names", "shape_features"]
