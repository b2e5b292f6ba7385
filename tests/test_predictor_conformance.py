"""Every registered predictor kind (``hwprof.predictors.KINDS``) against one estimator contract.

scikit-learn's full ``parametrize_with_checks`` feeds arbitrary numeric
matrices; hwprof predictors take the one-hot of a space (``[N, L·K]``), so the
data-driven checks cannot apply. This suite runs the scikit-learn checks that
need no data (parameter handling) plus the contract on a small synthetic
problem: fbnet-c100 one-hot with additive latencies drawn from a seeded
generator. A new kind is tested by being registered; one that needs extra
inputs must get an entry in ``EXTRA_PARAMS``, or the suite fails naming it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from sklearn.utils.validation import check_is_fitted

from hwprof.errors import PredictorError
from hwprof.predictors import KINDS, load_predictor, make_predictor
from hwprof.spaces import space
from hwprof.tables.table import LatencyTable

SPACE = "fbnet-c100"
N_TRAIN, N_TEST = 120, 40


class Problem:
    """Synthetic additive latencies (ms) of random fbnet-c100 architectures."""

    def __init__(self, seed: int = 0):
        self.space = space(SPACE)
        sp = self.space
        rng = np.random.default_rng(seed)
        self.cost_ms = np.where(sp.mask, rng.uniform(0.05, 0.6, sp.mask.shape), 0.0)  # [L, K]
        self.constant_ms = 2.0
        archs = sp.sample(N_TRAIN + N_TEST, seed=seed)
        self.X = sp.one_hot(archs)  # [N, L·K]
        clean = self.X @ self.cost_ms.ravel() + self.constant_ms
        self.y = clean * rng.lognormal(0.0, 0.01, len(clean))  # 1 % measurement noise
        self.Xtr, self.ytr = self.X[:N_TRAIN], self.y[:N_TRAIN]
        self.Xte = self.X[N_TRAIN:]

    def table(self) -> LatencyTable:
        """A layer-keyed table of the true costs scaled by 0.9 and without the constant (a LUT with a gap)."""
        sp = self.space
        entries = {
            f"layer{l}:{c}": float(0.9 * self.cost_ms[l, j] + 1e-3)
            for l in range(sp.num_layers)
            for j, c in enumerate(sp.candidates)
            if sp.mask[l, j]
        }
        return LatencyTable(entries, 0.0, {"keyed": "layer", "space": SPACE, "device": "synthetic"})

    def priors(self) -> list:
        """Two ridge predictors fitted on other 'devices' (the same costs, rescaled)."""
        return [
            make_predictor("ridge", space=SPACE, device=f"prior{i}").fit(self.Xtr, self.ytr * s)
            for i, s in enumerate((0.7, 1.8))
        ]


@pytest.fixture(scope="module")
def problem(tmp_path_factory) -> Problem:
    p = Problem()
    folder = tmp_path_factory.mktemp("priors")
    p.prior_paths = [prior.save(folder / f"prior{i}.json") for i, prior in enumerate(p.priors())]
    return p


#: kind → extra constructor parameters (fast settings and required inputs). Every kind needs an entry.
EXTRA_PARAMS: dict[str, Callable[[Problem], dict[str, Any]]] = {
    "lut": lambda p: {"table": p.table()},
    "lut-calibrated": lambda p: {"table": p.table()},
    "ridge": lambda p: {},
    "mlp": lambda p: {"epochs": 20, "hidden": (16, 8)},
    "gbdt": lambda p: {"n_estimators": 15},
    "transfer": lambda p: {"priors": p.prior_paths},  # files, as the CLI passes them
    "auto": lambda p: {"kinds": ("ridge", "lut-calibrated"), "table": p.table()},
}


def _params(kind: str, problem: Problem) -> dict[str, Any]:
    if kind not in EXTRA_PARAMS:
        pytest.fail(
            f"predictor kind {kind!r} is registered in hwprof.predictors.KINDS but has no entry in "
            f"EXTRA_PARAMS of {__file__}: add one (its fast settings and required inputs)"
        )
    return {"space": SPACE, "device": "synthetic", **EXTRA_PARAMS[kind](problem)}


def _make(kind: str, problem: Problem):
    return make_predictor(kind, **_params(kind, problem))


@pytest.fixture(autouse=True)
def _one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_kind_has_a_fixture():
    assert set(EXTRA_PARAMS) == set(KINDS), (
        f"kinds without a conformance entry: {sorted(set(KINDS) - set(EXTRA_PARAMS))}; "
        f"entries for kinds no longer registered: {sorted(set(EXTRA_PARAMS) - set(KINDS))}"
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sklearn_parameter_checks(kind, problem):
    cls = KINDS[kind]
    check_parameters_default_constructible(cls.__name__, cls())
    est = _make(kind, problem)
    check_no_attributes_set_in_init(cls.__name__, est)
    check_get_params_invariance(cls.__name__, est)
    check_set_params(cls.__name__, est)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fit_predict_contract(kind, problem):
    est = _make(kind, problem)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError):
        est.predict(problem.Xte)
    assert est.fit(problem.Xtr, problem.ytr) is est
    check_is_fitted(est)
    pred = est.predict(problem.Xte)
    assert pred.shape == (N_TEST,) and pred.dtype == np.float64 and np.isfinite(pred).all()
    assert est.predict(problem.Xte[0]).shape == (1,)  # one row as a vector
    assert est.kind == kind and est.n_features_in_ == problem.X.shape[1]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_same_predictions(kind, problem):
    a = _make(kind, problem).fit(problem.Xtr, problem.ytr).predict(problem.Xte)
    b = _make(kind, problem).fit(problem.Xtr, problem.ytr).predict(problem.Xte)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ext", ["json", "npz"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_save_load_round_trip_predicts_identically(kind, ext, problem, tmp_path):
    est = _make(kind, problem).fit(problem.Xtr, problem.ytr)
    back = load_predictor(est.save(tmp_path / f"m.{ext}"), space=SPACE, device="synthetic")
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.predict(problem.Xte), est.predict(problem.Xte))
    assert back.metadata["training_sha256"] == est.metadata["training_sha256"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_get_params_set_params_clone(kind, problem):
    est = _make(kind, problem)
    params = est.get_params()
    assert params["space"] == SPACE and params["device"] == "synthetic"
    assert est.set_params(device="other") is est and est.get_params()["device"] == "other"
    est.set_params(device="synthetic").fit(problem.Xtr, problem.ytr)
    twin = clone(est)
    assert type(twin) is type(est)
    assert twin.get_params(deep=False).keys() == params.keys()
    plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, tuple, type(None)))}
    assert {k: twin.get_params()[k] for k in plain} == plain
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)  # clone copies hyperparameters, not learned state
    # a clone is a working estimator: fitted on the same data it predicts the same (what CV and grid search do)
    np.testing.assert_allclose(twin.fit(problem.Xtr, problem.ytr).predict(problem.Xte), est.predict(problem.Xte))
    with pytest.raises((PredictorError, ValueError), match="nope"):
        est.set_params(nope=1)


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"lut"}))  # the plain LUT ignores y
def test_refuses_nan_targets_with_a_clear_error(kind, problem):
    y_nan = problem.ytr.copy()
    y_nan[7] = np.nan
    with pytest.raises(PredictorError, match="finite and positive"):
        _make(kind, problem).fit(problem.Xtr, y_nan)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_refuses_nan_inputs_with_a_clear_error(kind, problem):
    X_nan = problem.Xtr.copy()
    X_nan[3, 5] = np.nan
    with pytest.raises(PredictorError, match="(?i)nan|finite"):
        _make(kind, problem).fit(X_nan, problem.ytr)
    est = _make(kind, problem).fit(problem.Xtr, problem.ytr)
    X_nan = problem.Xte.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(PredictorError, match="(?i)nan|finite"):
        est.predict(X_nan)


def test_clone_of_transfer_with_in_memory_priors_fits(problem):
    """A clone shares the fitted priors (``TransferPredictor.__sklearn_clone__``), so it can fit."""
    est = make_predictor("transfer", space=SPACE, device="synthetic", priors=problem.priors())
    clone(est).fit(problem.Xtr, problem.ytr)


def test_unknown_kind_is_refused_naming_the_registry():
    with pytest.raises(PredictorError, match="unknown predictor kind 'forest'; allowed: " + ", ".join(KINDS)):
        make_predictor("forest", space=SPACE)
