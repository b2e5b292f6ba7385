"""Predictors linear in the one-hot: ``lut``, ``lut-calibrated`` and ``ridge``."""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.utils._param_validation import Interval, StrOptions

from hwprof.errors import PredictorError, require
from hwprof.predictors.features import archs_from_one_hot, design, design_module, elastic, fold_design, lut_sum
from hwprof.tables.table import LatencyTable, load_table, table_from_dict
from hwprof.predictors.base import Predictor, relative_ridge, resolve_alpha


def linear_module(weight_ms: np.ndarray, bias_ms: float, space=None):
    """Torch module ``x @ weight + bias``: one-hot ``[..., L·K]`` → ms ``[...]`` (float32 buffers).

    With ``space`` (an elastic one, weights over :func:`~hwprof.predictors.features.design`),
    the module takes the architecture matrix ``[..., F]`` (or a bare one-hot) instead.
    """
    torch = require("torch", "torch")

    class LinearLatency(torch.nn.Module):
        """Latency in ms as a linear function of the (soft) one-hot."""

        def __init__(self, w: np.ndarray, b: float):
            super().__init__()
            self.register_buffer("weight", torch.as_tensor(np.asarray(w, dtype=np.float32).ravel()))
            self.register_buffer("bias", torch.tensor(float(b), dtype=torch.float32))

        def forward(self, x):
            return x.to(self.weight.dtype) @ self.weight + self.bias

    module = LinearLatency(weight_ms, bias_ms).eval()
    return module if space is None else on_inputs(space, module, len(np.ravel(weight_ms)))


def on_inputs(space, module, n_in: int):
    """``module`` taking ``n_in`` inputs as a module of the architecture: as it is on the one-hot
    (``n_in == L·K``), else behind :func:`design` (:func:`design_module`)."""
    return module if n_in == space.num_layers * space.max_choices else design_module(space, module)


def linear_fit(space, coef: np.ndarray) -> np.ndarray:
    """Weights to keep of a fit on :func:`design`'s columns: folded onto the one-hot ``[L·K]`` where
    that is exact (a space without elasticity), so the model stays a plain sum over layers."""
    return coef if elastic(space) else fold_design(space, coef)


def linear_inputs(space, X: np.ndarray, n_in: int) -> np.ndarray:
    """The ``n_in`` columns a model weighs: the one-hot ``[L·K]`` for folded (or hwprof 0.1) weights,
    else :func:`design`'s."""
    lk = space.num_layers * space.max_choices
    return X[:, :lk] if n_in == lk else design(space, X)


def relative_additive(space, X: np.ndarray, y: np.ndarray, alpha: float | str):
    """The additive base of ``gbdt`` and ``mlp``: :func:`relative_ridge` on :func:`design`, folded where exact.

    Returns
    -------
    coef : ndarray ``[L·K]`` or ``[design_width]``
    intercept : float
    base_loo : ndarray ``[N]``
        Leave-one-out fitted values (ms).
    inputs : ndarray ``[N, len(coef)]``
        The columns ``coef`` weighs (:func:`linear_inputs`).
    """
    coef, intercept, base_loo = relative_ridge(design(space, X), y, alpha)
    coef = linear_fit(space, coef)
    return coef, intercept, base_loo, linear_inputs(space, X, len(coef))


def _resolve_table(table: LatencyTable | str | Path | None) -> LatencyTable:
    if table is None:
        raise PredictorError("this predictor kind needs a latency table (table=LatencyTable or path; --table)")
    return table if isinstance(table, LatencyTable) else load_table(table)


class _TablePredictor(Predictor):
    def _fit_table(self) -> None:
        table = _resolve_table(self.table)
        if table.space and table.space != self.space:
            raise PredictorError(f"the table is for space {table.space!r}, the predictor for {self.space!r}")
        values, mask, constant = table.matrix(self.space_)
        self.values_ = values.ravel()
        self.constant_ms_ = float(constant)
        self.table_metadata_ = dict(table.metadata)
        # elastic spaces price a resolution or width through the table itself, so it travels along
        self.table_ = table if elastic(self.space_) else None
        if not self.device:
            self.device_ = table.device

    def _lut(self, X: np.ndarray) -> np.ndarray:
        """LUT sum (ms) of rows ``X`` ``[N, F]``; rows off the default resolution or widths read the table."""
        lk = self.space_.num_layers * self.space_.max_choices
        out = lut_sum(self.values_, self.constant_ms_, X[:, :lk])
        if self.table_ is not None:
            off = ~np.all(np.isclose(X[:, lk:], 1.0), axis=1)
            if off.any():
                archs = archs_from_one_hot(self.space_, X[off])
                out[off] = [self.table_.arch_latency(self.space_, a) for a in archs]
        return out

    def _table_state(self) -> dict[str, Any]:
        state = {"values": self.values_, "constant_ms": self.constant_ms_, "table_metadata": self.table_metadata_}
        if self.table_ is not None:
            state["table"] = self.table_.to_dict()
        return state

    def _load_table_state(self, state: Mapping[str, Any]) -> None:
        self.values_ = np.asarray(state["values"], dtype=np.float64)
        self.constant_ms_ = float(state["constant_ms"])
        self.table_metadata_ = dict(state.get("table_metadata", {}))
        self.table_ = table_from_dict(state["table"], "the predictor file") if "table" in state else None


class LUTPredictor(_TablePredictor):
    """LUT sum plus the constant of the fixed layers (no fitting on end-to-end data).

    Parameters
    ----------
    space : str
        Space name.
    table : LatencyTable or path
        The device's lookup table.
    device : str
        Device name; defaults to the table's.
    """

    kind = "lut"
    differentiable = True
    _parameter_constraints: dict = {"space": [str], "table": "no_validation", "device": [str]}

    def __init__(self, space: str = "proxylessnas", table: LatencyTable | str | None = None, device: str = ""):
        self.space = space
        self.table = table
        self.device = device

    def fit(self, X, y=None):
        """Read the table into the ``[L·K]`` weights; ``X``/``y`` only fix the training hash."""
        self._fit_start(X, y, y_required=False)
        self._fit_table()
        return self

    def _predict(self, X):
        return self._lut(X)

    def _state(self):
        return self._table_state()

    def _load_state(self, state):
        self._load_table_state(state)

    def _torch_module(self):
        return linear_module(self.values_, self.constant_ms_)


class LUTCalibratedPredictor(_TablePredictor):
    """LUT sum corrected by an affine map fitted on end-to-end measurements.

    ``latency_ms = a · lut_sum + b`` (``correction="affine"``) or ``a · lut_sum``
    (``"scale"``); least squares on the relative error, so a handful of
    measurements suffice. Linear in the one-hot, hence differentiable.

    Parameters
    ----------
    space, table, device
        As for :class:`LUTPredictor`.
    correction : {"affine", "scale"}
    """

    kind = "lut-calibrated"
    differentiable = True
    _parameter_constraints: dict = {
        "space": [str],
        "table": "no_validation",
        "device": [str],
        "correction": [StrOptions({"affine", "scale"})],
    }

    def __init__(self, space: str = "proxylessnas", table=None, device: str = "", correction: str = "affine"):
        self.space = space
        self.table = table
        self.device = device
        self.correction = correction

    def fit(self, X, y):
        X, y = self._fit_start(X, y)
        self._fit_table()
        s = self._lut(X)
        # weight rows by 1/y so the fit minimises relative (not absolute) error
        A = (s / y)[:, None] if self.correction == "scale" else np.stack([s / y, 1.0 / y], axis=1)
        if len(y) < A.shape[1]:
            raise PredictorError(f"{self.correction} calibration needs at least {A.shape[1]} measurements")
        coef, *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
        self.scale_ = float(coef[0])
        self.offset_ms_ = float(coef[1]) if self.correction == "affine" else 0.0
        return self

    def _predict(self, X):
        return self.scale_ * self._lut(X) + self.offset_ms_

    def _state(self):
        return {**self._table_state(), "scale": self.scale_, "offset_ms": self.offset_ms_}

    def _load_state(self, state):
        self._load_table_state(state)
        self.scale_ = float(state["scale"])
        self.offset_ms_ = float(state["offset_ms"])

    def _torch_module(self):
        return linear_module(self.scale_ * self.values_, self.scale_ * self.constant_ms_ + self.offset_ms_)


class RidgePredictor(Predictor):
    """Additive baseline: ridge regression of latency (ms) on the per-layer one-hot.

    The inputs are :func:`~hwprof.predictors.features.design`'s: the one-hot scaled by
    each layer's feature-map area and width (so a 128-pixel and a 224-pixel network are
    priced apart) and a MACs prior per candidate type. In a space without elasticity
    the fit folds back onto one weight per layer and candidate (``coef_`` ``[L·K]``).

    Parameters
    ----------
    space, device : str
    alpha : float or "auto"
        L2 penalty (sklearn ``Ridge``), in ms² per unit weight; ``"auto"``
        (default) takes the one of :data:`~hwprof.predictors.base.ALPHAS` with
        the lowest leave-one-out error (``alpha_`` after fitting).
    """

    kind = "ridge"
    differentiable = True
    _parameter_constraints: dict = {
        "space": [str],
        "device": [str],
        "alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(self, space: str = "proxylessnas", device: str = "", alpha: float | str = "auto"):
        self.space = space
        self.device = device
        self.alpha = alpha

    def fit(self, X, y):
        X, y = self._fit_start(X, y)
        Z = design(self.space_, X)
        self.alpha_ = resolve_alpha(self.alpha, Z, y)
        model = Ridge(alpha=self.alpha_).fit(Z, y)
        self.coef_ = linear_fit(self.space_, np.asarray(model.coef_, dtype=np.float64))
        self.intercept_ = float(model.intercept_)
        return self

    def _predict(self, X):
        return linear_inputs(self.space_, X, len(self.coef_)) @ self.coef_ + self.intercept_

    def _state(self):
        return {"coef": self.coef_, "intercept": self.intercept_}

    def _load_state(self, state):
        self.coef_ = np.asarray(state["coef"], dtype=np.float64)
        self.intercept_ = float(state["intercept"])

    def _torch_module(self):
        return linear_module(self.coef_, self.intercept_, self.space_)


__all__ = ["LUTCalibratedPredictor", "LUTPredictor", "RidgePredictor", "linear_module", "table_from_dict"]
