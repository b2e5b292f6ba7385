"""``gbdt``: additive ridge base times a gradient-boosted correction on shape features.

``latency_ms = level · base(x) · (1 + trees([one-hot, shape features, base]))``:
the base (ridge on the relative error) carries the additive part; the trees
(scikit-learn ``GradientBoostingRegressor``, Huber loss so measurement
bursts do not pull the fit, early-stopped on a held-out tenth so they stop
where the interactions end and the noise begins) model the relative
interactions from FLOPs, parameters and per-stage sums; ``level`` puts the
prediction at the device's most recent speed (:func:`recent_level`). The
trees are stored as plain node arrays and evaluated by :func:`_trees_predict`,
so a saved model never depends on sklearn internals.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Mapping

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.utils._param_validation import Interval, StrOptions

from hwprof.predictors.features import archs_from_one_hot, legacy_shape_columns, shape_feature_names, shape_features
from hwprof.predictors.linear import linear_inputs, relative_additive
from hwprof.predictors.base import Predictor, recent_level


def _trees_predict(F: np.ndarray, trees: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sum of tree outputs for rows ``F`` ``[N, D]``; nodes concatenated, ``left == -1`` at leaves."""
    left, right, feat, thr, val = (trees[k] for k in ("left", "right", "feature", "threshold", "value"))
    roots = trees["roots"]
    if len(roots) == 0:
        return np.zeros(len(F))
    F32 = F.astype(np.float32).astype(np.float64)  # sklearn compares features as float32
    rows = np.arange(len(F))[None, :]
    node = np.repeat(roots[:, None], len(F), axis=1)
    for _ in range(int(trees["depth"]) + 1):
        child = left[node]
        leaf = child < 0
        if leaf.all():
            break
        go_left = F32[rows, np.where(leaf, 0, feat[node])] <= thr[node]
        node = np.where(leaf, node, np.where(go_left, child, right[node]))
    return val[node].sum(axis=0)


def _pack(model: GradientBoostingRegressor) -> dict[str, np.ndarray]:
    left, right, feat, thr, val, roots = [], [], [], [], [], []
    offset, depth = 0, 0
    for est in model.estimators_[:, 0]:
        t = est.tree_
        roots.append(offset)
        leaf = t.children_left < 0
        left.append(np.where(leaf, -1, t.children_left + offset))
        right.append(np.where(leaf, -1, t.children_right + offset))
        feat.append(np.where(leaf, 0, t.feature))
        thr.append(t.threshold)
        val.append(t.value[:, 0, 0] * model.learning_rate)
        offset += t.node_count
        depth = max(depth, t.max_depth)
    cat = np.concatenate
    return {
        "left": cat(left).astype(np.int64),
        "right": cat(right).astype(np.int64),
        "feature": cat(feat).astype(np.int64),
        "threshold": cat(thr).astype(np.float64),
        "value": cat(val).astype(np.float64),
        "roots": np.array(roots, dtype=np.int64),
        "depth": np.array(depth),
    }


class GBDTPredictor(Predictor):
    """Gradient-boosted trees correcting an additive ridge base (not differentiable).

    Parameters
    ----------
    space, device : str
    n_estimators, learning_rate, max_depth, subsample
        Of the boosted trees; ``n_estimators`` is the most that early stopping allows.
    loss : {"huber", "squared_error"}
        Tree loss on the relative residual.
    alpha : float or "auto"
        L2 penalty of the ridge base; ``"auto"`` chooses it by leave-one-out
        (:func:`~hwprof.predictors.base.choose_alpha`).
    early_stopping : bool
        Stop adding trees when 10 in a row do not improve a held-out tenth
        of the training rows (only with at least 100 rows).
    recent : float in [0, 1]
        Fraction of the most recent training rows (rows in measurement
        order) whose median ratio sets the level; 0 keeps the fitted level.
    seed : int
    """

    kind = "gbdt"
    differentiable = False
    _parameter_constraints: dict = {
        "space": [str],
        "device": [str],
        "n_estimators": [Interval(Integral, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_depth": [Interval(Integral, 1, None, closed="left")],
        "subsample": [Interval(Real, 0, 1, closed="right")],
        "loss": [StrOptions({"huber", "squared_error"})],
        "alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "early_stopping": ["boolean"],
        "recent": [Interval(Real, 0, 1, closed="both")],
        "seed": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        space: str = "proxylessnas",
        device: str = "",
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        subsample: float = 0.8,
        loss: str = "huber",
        alpha: float | str = "auto",
        early_stopping: bool = True,
        recent: float = 0.1,
        seed: int = 0,
    ):
        self.space = space
        self.device = device
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.loss = loss
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.recent = recent
        self.seed = seed

    def _features(self, X: np.ndarray, base: np.ndarray) -> np.ndarray:
        shapes = shape_features(self.space_, archs_from_one_hot(self.space_, X))[:, : self.n_shape_]
        return np.hstack([X, shapes, base[:, None] / self.base_scale_ms_])

    def fit(self, X, y):
        X, y = self._fit_start(X, y)
        self.coef_, self.intercept_, base_loo, inputs = relative_additive(self.space_, X, y, self.alpha)
        base = inputs @ self.coef_ + self.intercept_
        self.n_shape_ = len(shape_feature_names(self.space_))
        self.base_scale_ms_ = float(np.mean(y))
        F = self._features(X, base)
        self.trees_: dict[str, np.ndarray] = {"roots": np.zeros(0, dtype=np.int64)}
        self.init_ = 0.0
        if self.n_estimators > 0 and len(y) >= 10:
            stop = self.early_stopping and len(y) >= 100
            gb = GradientBoostingRegressor(
                loss=self.loss,
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                max_depth=self.max_depth,
                subsample=self.subsample,
                n_iter_no_change=10 if stop else None,
                validation_fraction=0.1,
                random_state=self.seed,
            ).fit(F, y / base - 1.0)
            self.init_ = float(np.ravel(gb.init_.constant_)[0])
            self.trees_ = _pack(gb)
        # the model's fitted values, with the base's in-sample part made leave-one-out
        self.level_ = recent_level(y, base_loo * self._correction(F), self.recent)
        return self

    def _correction(self, F: np.ndarray | None) -> np.ndarray | float:
        """The trees' relative factor ``1 + init + trees(F)`` (``F`` unused when there are no trees)."""
        if len(self.trees_["roots"]) == 0:
            return 1.0 + self.init_
        return 1.0 + self.init_ + _trees_predict(F, self.trees_)

    def _predict(self, X):
        base = linear_inputs(self.space_, X, len(self.coef_)) @ self.coef_ + self.intercept_
        F = self._features(X, base) if len(self.trees_["roots"]) > 0 else None
        return self.level_ * base * self._correction(F)

    def _state(self) -> dict[str, Any]:
        return {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "base_scale_ms": self.base_scale_ms_,
            "init": self.init_,
            "level": self.level_,
            "trees": self.trees_,
            "n_shape": self.n_shape_,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.coef_ = np.asarray(state["coef"], dtype=np.float64)
        self.intercept_ = float(state["intercept"])
        self.base_scale_ms_ = float(state["base_scale_ms"])
        self.init_ = float(state["init"])
        self.level_ = float(state["level"])
        self.trees_ = {k: np.asarray(v) for k, v in state["trees"].items()}
        self.n_shape_ = int(state.get("n_shape", legacy_shape_columns(self.space_)))


__all__ = ["GBDTPredictor"]
