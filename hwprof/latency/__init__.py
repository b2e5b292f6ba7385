"""Latency models for search: differentiable in torch, batched in numpy.

Three lines in a search loop::

    lat = hwprof.latency_model("cpu-proxyless.lut.json")    # a table or a fitted predictor
    e = lat.expected(lat.masked_softmax(alpha))              # ms, differentiable in alpha
    loss = ce + hwprof.objectives.add_linear(e, target_ms=80.0, lam=0.1)

and for evolutionary search ``lat.score(idx)`` prices ``int [N, L]``
architectures in numpy (``float64 [N]`` ms).

What each model offers
----------------------
:class:`TableLatencyModel`
    ``expected`` (Σ w·table + constant), ``depth_expected`` (TF-NAS
    sink-connecting depth), ``width_curve`` / ``width_expected`` (TF-NAS
    elastic width), ``score``, ``arch_latency``.
:class:`PredictorLatencyModel`
    ``expected`` through the predictor's frozen torch twin (LightNAS MLP;
    kinds ``lut``, ``lut-calibrated``, ``ridge``, ``mlp``), ``score`` for
    every kind.
:class:`SinglePathRuntime`
    The Single-Path NAS superkernel runtime from threshold decisions.
:class:`WidthCurve`, :class:`WidthGrid`
    Monotone, non-negative latency at any mid-channel count (one block, or
    every ``[L, K]`` cell at once).

Weights on illegal candidates (``space.mask`` False) are an error in
``expected`` unless the model is built with ``strict=False``; build weights
with ``model.masked_softmax`` / ``model.gumbel_softmax``, which give illegal
columns exactly zero weight.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwprof.errors import ConfigError, HwprofError
from hwprof.latency.base import LatencyModel
from hwprof.latency.predictor import DIFFERENTIABLE_KINDS, PredictorLatencyModel
from hwprof.latency.single_path import SinglePathRuntime
from hwprof.latency.table import TableLatencyModel
from hwprof.latency.weights import gumbel_softmax, masked_softmax, ste_indicator, straight_through
from hwprof.latency.width import WidthCurve, WidthGrid

_TABLE_SUFFIXES = {".yaml", ".yml", ".pkl", ".pickle", ".csv", ".lut"}
_PREDICTOR_SUFFIXES = {".npz"}
_PREDICTOR_KINDS = set(DIFFERENTIABLE_KINDS) | {"gbdt", "transfer"}


def latency_model(
    source: Any, space: Any = None, *, resolution: int | None = None, strict: bool = True
) -> LatencyModel:
    """The latency model of a lookup table or a fitted predictor.

    Parameters
    ----------
    source : LatencyTable, fitted predictor, torch ``nn.Module``, LatencyModel, or path
        A path is loaded with ``hwprof.lut.load_table`` or
        ``hwprof.predictors.load_predictor``, chosen by extension and content
        (``.npz`` and JSON with a predictor ``kind`` are predictors; YAML,
        pickle, CSV and other JSON are tables). A bare module maps one-hot
        ``[..., L·K]`` to ms and needs ``space``.
    space : Space or str, optional
        The space; defaults to the one the table or predictor names.
    resolution : int, optional
        Input resolution, for tables of elastic-resolution spaces.
    strict : bool
        Raise on weights on illegal candidates (default) instead of ignoring them.

    Returns
    -------
    LatencyModel
        :class:`TableLatencyModel` or :class:`PredictorLatencyModel`.

    Raises
    ------
    ConfigError
        For a file neither loader reads, or a source that names no space.
    """
    if isinstance(space, str):
        from hwprof.spaces import space as get_space

        space = get_space(space)
    if isinstance(source, (str, os.PathLike)):
        source = _load(Path(source))
    if isinstance(source, LatencyModel):
        return source
    import torch

    if isinstance(source, torch.nn.Module):
        if space is None:
            raise ConfigError("a bare torch module names no space; pass space=hwprof.space(<name>)")
        return PredictorLatencyModel(module=source, space=space, strict=strict)
    if hasattr(source, "matrix"):
        space = space or _named_space(source)
        if space is None:
            raise ConfigError("the table names no space; pass space=hwprof.space(<name>)")
        return TableLatencyModel.from_table(source, space, resolution, strict)
    if hasattr(source, "predict"):
        return PredictorLatencyModel(source, space, strict=strict)
    raise ConfigError(
        f"cannot build a latency model from {type(source).__name__}; pass a LatencyTable, a fitted "
        "predictor, a torch module with space=, or a path to a table or predictor file"
    )


def _named_space(obj: Any):
    name = getattr(obj, "space", None)
    if name is None:
        meta = getattr(obj, "metadata", None) or getattr(obj, "meta", None)
        if isinstance(meta, dict):
            name = meta.get("space")
    if isinstance(name, str):
        if not name:
            return None
        from hwprof.spaces import space as get_space

        return get_space(name)
    return name


def _load_table(path: Path):
    try:
        from hwprof.lut import load_table
    except ImportError as exc:
        raise ConfigError(f"cannot load table {path}: hwprof.lut is unavailable ({exc})") from exc
    return load_table(path)


def _load_predictor(path: Path):
    try:
        from hwprof.predictors import load_predictor
    except ImportError as exc:
        raise ConfigError(f"cannot load predictor {path}: hwprof.predictors is unavailable ({exc})") from exc
    return load_predictor(path)


def _load(path: Path):
    if not path.exists():
        raise ConfigError(f"no such table or predictor file: {path}")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in _PREDICTOR_SUFFIXES:
        order = (_load_predictor, _load_table)
    elif suffix in _TABLE_SUFFIXES:
        order = (_load_table, _load_predictor)
    elif suffix == ".json" and _looks_like_predictor(path):
        order = (_load_predictor, _load_table)
    else:
        order = (_load_table, _load_predictor)
    errors = []
    for loader in order:
        try:
            return loader(path)
        except HwprofError as exc:
            errors.append(f"{loader.__name__.lstrip('_').replace('_', ' ')}: {exc}")
    raise ConfigError(f"{path} is neither a latency table nor a predictor file ({'; '.join(errors)})")


def _looks_like_predictor(path: Path) -> bool:
    try:
        head = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(head, dict):
        return False
    meta = head.get("metadata") if isinstance(head.get("metadata"), dict) else {}
    kind = head.get("kind", meta.get("kind"))
    return isinstance(kind, str) and kind in _PREDICTOR_KINDS


__all__ = [
    "DIFFERENTIABLE_KINDS",
    "LatencyModel",
    "PredictorLatencyModel",
    "SinglePathRuntime",
    "TableLatencyModel",
    "WidthCurve",
    "WidthGrid",
    "gumbel_softmax",
    "latency_model",
    "masked_softmax",
    "ste_indicator",
    "straight_through",
]
