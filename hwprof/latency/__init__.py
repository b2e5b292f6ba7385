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

:mod:`.load` is the one route from a file to a table or predictor;
:mod:`.objectives` holds the papers' latency losses; :mod:`.macs` the additive
MACs model. May import :mod:`hwprof.spaces`, :mod:`hwprof.tables` and
:mod:`hwprof.predictors`; imported by the CLI and by search code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hwprof.errors import ConfigError
from hwprof.latency.base import LatencyModel
from hwprof.latency.load import describe_file, load_source
from hwprof.latency.macs import macs_model
from hwprof.latency.predictor import DIFFERENTIABLE_KINDS, PredictorLatencyModel
from hwprof.latency.single_path import SinglePathRuntime
from hwprof.latency.table import TableLatencyModel
from hwprof.latency.weights import gumbel_softmax, masked_softmax, ste_indicator, straight_through
from hwprof.latency.width import WidthCurve, WidthGrid



def latency_model(
    source: Any, space: Any = None, *, resolution: int | None = None, strict: bool = True
) -> LatencyModel:
    """The latency model of a lookup table or a fitted predictor.

    Parameters
    ----------
    source : LatencyTable, fitted predictor, torch ``nn.Module``, LatencyModel, or path
        A path is read by :func:`hwprof.latency.load.load_source`: an hwprof
        table or predictor file, or a published one (ProxylessNAS/OFA YAML,
        TF-NAS pickle, LightNAS ``.pth.tar``, Single-Path NAS JSON, which
        gives a :class:`SinglePathRuntime`); the model's ``source`` then
        names the file and its sha256. A bare module maps one-hot
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
        :class:`TableLatencyModel`, :class:`SinglePathRuntime` or :class:`PredictorLatencyModel`.

    Raises
    ------
    ConfigError
        For a file neither loader reads, or a source that names no space.
    """
    if isinstance(space, str):
        from hwprof.spaces import space as get_space

        space = get_space(space)
    origin = None
    if isinstance(source, (str, os.PathLike)):
        origin = describe_file(source) if Path(source).is_file() else None
        source = load_source(source)
    model = _model(source, space, resolution, strict)
    if origin is not None:
        model.source = {"kind": _kind_name(source), **origin}
    return model


def _kind_name(source: Any) -> str:
    kind = getattr(source, "kind", None)
    if isinstance(kind, str):
        return kind
    meta = getattr(source, "metadata", None) or {}
    return "single-path-runtime" if meta.get("model") == "single-path-runtime" else "table"


def _check_space(source: Any, space: Any) -> None:
    """Refuse a table or predictor that names another space than the one asked for (as the CLI does)."""
    if space is None:
        return
    name = getattr(source, "space", None)
    if not isinstance(name, str):
        meta = getattr(source, "metadata", None)
        name = meta.get("space") if isinstance(meta, dict) else None
    if isinstance(name, str) and name and name != getattr(space, "name", space):
        from hwprof.errors import PredictorError

        raise PredictorError(
            f"the {_kind_name(source)} is for space {name[:100]!r}, not {getattr(space, 'name', space)!r}; "
            "use the file made for this space, or omit space= to use the one it names"
        )


def _model(source: Any, space: Any, resolution: int | None, strict: bool) -> LatencyModel:
    if isinstance(source, LatencyModel):
        return source
    _check_space(source, space)
    import torch

    if isinstance(source, torch.nn.Module):
        if space is None:
            raise ConfigError("a bare torch module names no space; pass space=hwprof.space(<name>)")
        return PredictorLatencyModel(module=source, space=space, strict=strict)
    if hasattr(source, "matrix"):
        space = space or _named_space(source)
        if space is None:
            raise ConfigError("the table names no space; pass space=hwprof.space(<name>)")
        if (getattr(source, "metadata", None) or {}).get("model") == "single-path-runtime":
            return SinglePathRuntime.from_table(source, space, resolution)
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
    "macs_model",
    "masked_softmax",
    "ste_indicator",
    "straight_through",
]
