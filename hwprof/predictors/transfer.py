"""``transfer`` (few-shot for a new device) and ``auto`` (kind chosen on the latest rows).

Transfer: predictors fitted on other devices (the priors) already rank
architectures; on a new device only a couple of parameters can be learned
from ten measurements. So the priors are scored by the leave-one-out error
of an affine map in log space (``log y = a · log prior + c``) on the new
device's samples, the best ``top_k`` are combined in log space with weights
``∝ 1 / LOO error²``, and one affine map of that combination is fitted.
What the priors cannot know is how the new device prices compute against
memory traffic and depth, so a ridge correction of the log latency on three
standardised shape features (log of 1 + MMACs, Mparams and layer count, from
``space.ops``) follows, its penalty chosen by leave-one-out on the samples;
with few or uninformative samples it shrinks to nothing.
"""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from hwprof.errors import PredictorError
from hwprof.predictors.features import archs_from_one_hot, shape_features
from hwprof.predictors.base import Predictor

#: Shape features of the transfer correction: whole-network MMACs, Mparams, searchable layers.
_SHAPE_COLUMNS = [0, 1, 2]


def _loo_affine_error(z: np.ndarray, t: np.ndarray) -> float:
    """RMS leave-one-out residual of ``t ≈ a·z + c`` (or ``t ≈ z + c`` below 4 samples)."""
    n = len(t)
    if n < 4 or np.ptp(z) == 0:
        c = t - z
        loo = (c - c.mean()) * n / max(n - 1, 1)
        return float(np.sqrt(np.mean(loo**2)))
    A = np.stack([z, np.ones(n)], axis=1)
    H = A @ np.linalg.pinv(A)
    resid = t - H @ t
    loo = resid / np.clip(1 - np.diag(H), 1e-6, None)
    return float(np.sqrt(np.mean(loo**2)))


class TransferPredictor(Predictor):
    """Few-shot predictor: priors from other devices, a small log-affine correction.

    Parameters
    ----------
    space, device : str
        ``device`` is the new device; a prior fitted on the same device is refused.
    priors : sequence of Predictor or paths
        Fitted predictors of the same space on other devices.
    top_k : int
        How many priors (the best by leave-one-out error) are combined.
    shape_correction : bool
        Fit the ridge correction on shape features (needs at least 5 samples).
    """

    kind = "transfer"
    differentiable = False
    _parameter_constraints: dict = {
        "space": [str],
        "device": [str],
        "priors": "no_validation",
        "top_k": [Interval(Integral, 1, None, closed="left")],
        "shape_correction": ["boolean"],
    }

    def __init__(
        self,
        space: str = "proxylessnas",
        device: str = "",
        priors: Sequence = (),
        top_k: int = 2,
        shape_correction: bool = True,
    ):
        self.space = space
        self.device = device
        self.priors = priors
        self.top_k = top_k
        self.shape_correction = shape_correction

    def __sklearn_clone__(self) -> TransferPredictor:
        # The priors are fitted models of other devices: a clone shares them instead of un-fitting them.
        return type(self)(**self.get_params(deep=False))

    def _load_priors(self) -> list[Predictor]:
        from hwprof.predictors import load_predictor

        out = []
        for p in self.priors:
            prior = load_predictor(p, space=self.space) if isinstance(p, (str, Path)) else p
            check_is_fitted(prior, "training_sha256_")
            if prior.space != self.space:
                raise PredictorError(f"prior for space {prior.space!r} cannot serve space {self.space!r}")
            dev = prior.metadata["device"]
            if self.device and dev == self.device:
                raise PredictorError(f"prior was fitted on the target device {dev!r}; transfer needs other devices")
            out.append(prior)
        if not out:
            raise PredictorError("transfer needs at least one prior predictor (--prior FILE, repeatable)")
        return out

    def fit(self, X, y):
        X, y = self._fit_start(X, y)
        priors = self._load_priors()
        logp = np.log(np.clip(np.stack([p.predict(X) for p in priors], axis=1), 1e-9, None))
        t = np.log(y)
        errors = np.array([_loo_affine_error(logp[:, m], t) for m in range(len(priors))])
        order = np.argsort(errors)[: self.top_k]
        w = 1.0 / np.maximum(errors[order], 1e-6) ** 2
        w /= w.sum()
        z = logp[:, order] @ w
        if len(y) >= 4 and np.ptp(z) > 0:
            a, c = np.polyfit(z, t, 1)
        else:
            a, c = 1.0, float(np.mean(t - z))
        self.prior_errors_ = errors
        self.selected_ = [int(i) for i in order]
        self.weights_ = w
        self.slope_, self.offset_ = float(a), float(c)
        self.priors_ = [priors[i] for i in order]
        n_shape = len(_SHAPE_COLUMNS)
        self.shape_mean_, self.shape_scale_ = np.zeros(n_shape), np.ones(n_shape)
        self.shape_coef_, self.shape_intercept_ = np.zeros(n_shape), 0.0
        if self.shape_correction and len(y) >= 5:
            F = self._shape(X)
            spread = F.std(axis=0)
            self.shape_mean_, self.shape_scale_ = F.mean(axis=0), np.where(spread > 0, spread, 1.0)
            resid = t - (self.slope_ * z + self.offset_)
            ridge = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit((F - self.shape_mean_) / self.shape_scale_, resid)
            self.shape_coef_, self.shape_intercept_ = np.asarray(ridge.coef_, float), float(ridge.intercept_)
        return self

    def _shape(self, X: np.ndarray) -> np.ndarray:
        """``log(1 + shape feature)`` ``[N, 3]`` of one-hot rows."""
        F = shape_features(self.space_, archs_from_one_hot(self.space_, X))[:, _SHAPE_COLUMNS]
        return np.log1p(F)

    def _predict(self, X):
        logp = np.stack([np.log(np.clip(p.predict(X), 1e-9, None)) for p in self.priors_], axis=1)
        log_ms = self.slope_ * (logp @ self.weights_) + self.offset_
        if np.any(self.shape_coef_):
            F = (self._shape(X) - self.shape_mean_) / self.shape_scale_
            log_ms = log_ms + F @ self.shape_coef_ + self.shape_intercept_
        return np.exp(log_ms)

    def _state(self) -> dict[str, Any]:
        return {
            "priors": [p.to_document() for p in self.priors_],
            "weights": self.weights_,
            "slope": self.slope_,
            "offset": self.offset_,
            "prior_errors": self.prior_errors_,
            "selected": self.selected_,
            "shape": {
                "mean": self.shape_mean_,
                "scale": self.shape_scale_,
                "coef": self.shape_coef_,
                "intercept": self.shape_intercept_,
            },
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        from hwprof.predictors import predictor_from_document

        self.priors_ = [predictor_from_document(d) for d in state["priors"]]
        self.weights_ = np.asarray(state["weights"], dtype=np.float64)
        self.slope_, self.offset_ = float(state["slope"]), float(state["offset"])
        self.prior_errors_ = np.asarray(state["prior_errors"], dtype=np.float64)
        self.selected_ = [int(i) for i in state["selected"]]
        n_shape = len(_SHAPE_COLUMNS)
        shape = state["shape"]
        self.shape_mean_ = np.asarray(shape.get("mean", np.zeros(n_shape)), dtype=np.float64)
        self.shape_scale_ = np.asarray(shape.get("scale", np.ones(n_shape)), dtype=np.float64)
        self.shape_coef_ = np.asarray(shape.get("coef", np.zeros(n_shape)), dtype=np.float64)
        self.shape_intercept_ = float(shape.get("intercept", 0.0))


class AutoPredictor(Predictor):
    """Chooses a kind on the latest training rows, as it will be used, then refits it on all rows.

    A predictor is used on architectures measured after its training set, on
    the device as it is then; so each candidate kind is fitted on the earlier
    rows (in the order given, which should be measurement order) and scored
    on the last ``holdout`` share of them, not on shuffled folds: what
    ``gbdt`` and ``mlp`` gain by following the device's latest level shows only
    there. The kind with the lowest hold-out MAPE is refitted on every row;
    the choice and every kind's hold-out MAPE and ±5% share are kept in the
    model file.

    Parameters
    ----------
    space, device : str
    kinds : sequence of str
        Candidate kinds (``lut-calibrated`` needs ``table``).
    holdout : float in (0, 0.5]
        Share of the latest rows that validates (at least 2 rows, at most half).
    seed : int
    table : LatencyTable or path, optional
        For the table-based kinds.
    """

    kind = "auto"
    _parameter_constraints: dict = {
        "space": [str],
        "device": [str],
        "kinds": [tuple, list],
        "holdout": [Interval(Real, 0, 0.5, closed="right")],
        "seed": [Interval(Integral, 0, None, closed="left")],
        "table": "no_validation",
    }

    def __init__(self, space="proxylessnas", device="", kinds=("ridge", "gbdt", "mlp"), holdout=0.2, seed=0, table=None):
        self.space = space
        self.device = device
        self.kinds = kinds
        self.holdout = holdout
        self.seed = seed
        self.table = table

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return bool(getattr(self, "best_", None) is not None and self.best_.differentiable)

    def _make(self, kind: str) -> Predictor:
        from hwprof.predictors import make_predictor

        extra: dict[str, Any] = {"table": self.table} if kind in ("lut", "lut-calibrated") else {}
        if kind in ("gbdt", "mlp"):
            extra["seed"] = self.seed
        return make_predictor(kind, space=self.space, device=self.device, **extra)

    def fit(self, X, y):
        X, y = self._fit_start(X, y)
        if "auto" in self.kinds or "transfer" in self.kinds:
            raise PredictorError("auto chooses among ridge, lut, lut-calibrated, gbdt and mlp")
        if len(y) < 4:
            raise PredictorError(f"auto needs at least 4 measured architectures to validate on, got {len(y)}")
        n_val = int(min(max(np.ceil(self.holdout * len(y)), 2), len(y) // 2))
        fit_rows, val_rows = slice(0, len(y) - n_val), slice(len(y) - n_val, None)
        self.validation_: dict[str, dict[str, float]] = {}
        for kind in self.kinds:
            pred = self._make(kind).fit(X[fit_rows], y[fit_rows]).predict(X[val_rows])
            rel = np.abs(pred / y[val_rows] - 1.0)
            self.validation_[kind] = {"mape": float(rel.mean()), "within_5": float(np.mean(rel <= 0.05))}
        self.validation_rows_ = n_val
        self.chosen_kind_ = min(self.validation_, key=lambda k: self.validation_[k]["mape"])
        self.best_ = self._make(self.chosen_kind_).fit(X, y)
        return self

    def _predict(self, X):
        return self.best_.predict(X)

    def _torch_module(self):
        return self.best_.to_torch()

    def _state(self) -> dict[str, Any]:
        return {
            "chosen_kind": self.chosen_kind_,
            "validation": self.validation_,
            "validation_rows": self.validation_rows_,
            "best": self.best_.to_document(),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        from hwprof.predictors import predictor_from_document

        self.chosen_kind_ = str(state["chosen_kind"])
        self.validation_ = {str(k): {m: float(v) for m, v in d.items()} for k, d in state["validation"].items()}
        self.validation_rows_ = int(state.get("validation_rows", 0))
        self.best_ = predictor_from_document(state["best"])


__all__ = ["AutoPredictor", "TransferPredictor"]
