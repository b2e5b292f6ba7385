"""Every predictor kind on every built-in space, elastic resolution and widths included.

The latencies are synthetic but not additive in the one-hot: each op costs
``0.02 + 0.004 · MMACs^0.9`` ms at its real shape (so a layer's cost follows
its feature-map area and width, rounding of the stride walk included), and
the network pays a depth term ``0.002 · layers²`` that no per-layer sum holds.
The lookup tables hold the per-op costs of every op the sampled networks use,
so ``lut`` prices resolution and width through the table.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwprof.latency.predictor import PredictorLatencyModel
from hwprof.predictors import KINDS, load_predictor, make_predictor
from hwprof.predictors.evaluate import metrics
from hwprof.predictors.features import arch_matrix, archs_from_one_hot, matrix_width
from hwprof.spaces import OpSpec, list_spaces, space
from hwprof.tables.table import table_from_ops

N_TRAIN, N_TEST = 300, 60
FAST = {"mlp": {"epochs": 150, "hidden": (32, 16)}, "gbdt": {"n_estimators": 60}}


def op_ms(op: OpSpec) -> float:
    return 0.0 if op.kind == "skip" else 0.02 + 0.004 * (op.macs() / 1e6) ** 0.9


class Elastic:
    """Random architectures of one space (widths drawn where the space has them) and their latencies."""

    def __init__(self, name: str, seed: int = 0):
        self.space = sp = space(name)
        self.archs = sp.sample(N_TRAIN + N_TEST, seed=seed, widths=sp.width != "none")
        layers = np.array([sum(op.kind != "skip" for op in sp.layer_ops(a)) for a in self.archs])
        self.y = np.array([sum(op_ms(op) for op in sp.ops(a)) for a in self.archs]) + 0.002 * layers**2
        self.X = arch_matrix(sp, self.archs)
        ops = {op for a in self.archs for op in sp.ops(a)}
        for r in sp.resolutions:  # a table of an elastic space holds every candidate at every resolution
            ops |= {op for row in sp.choice_ops(r) for op in row if op is not None} | set(sp.fixed_ops(r))
        self.table = table_from_ops({op: op_ms(op) for op in ops if op.kind != "skip"}, space=name, device="synthetic")

    def params(self, kind: str) -> dict:
        extra: dict = dict(FAST.get(kind, {}))
        if kind in ("lut", "lut-calibrated"):
            extra["table"] = self.table
        if kind == "transfer":
            extra["priors"] = [
                make_predictor("ridge", space=self.space.name, device=f"prior{i}").fit(self.X[:N_TRAIN], self.y[:N_TRAIN] * s)
                for i, s in enumerate((0.6, 1.7))
            ]
        if kind == "auto":
            extra["kinds"] = ("ridge", "gbdt")
        return {"space": self.space.name, "device": "synthetic", **extra}


@pytest.fixture(scope="module", params=list_spaces())
def data(request) -> Elastic:
    return Elastic(request.param)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_matrix_round_trips_every_architecture(data):
    sp = data.space
    assert data.X.shape == (N_TRAIN + N_TEST, matrix_width(sp))
    back = archs_from_one_hot(sp, data.X.astype(np.float32))  # float32, as a torch tensor would hold it
    assert [a.encode() for a in back] == [a.encode() for a in data.archs]
    if not (sp.elastic_resolution or sp.width != "none"):
        np.testing.assert_array_equal(data.X, sp.one_hot(data.archs))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_fits_and_predicts_every_space(kind, data, tmp_path):
    model = make_predictor(kind, **data.params(kind)).fit(data.X[:N_TRAIN], data.y[:N_TRAIN])
    pred = model.predict(data.X[N_TRAIN:])
    assert pred.shape == (N_TEST,) and np.isfinite(pred).all()
    np.testing.assert_allclose(model.predict_archs(data.archs[N_TRAIN:]), pred)
    if kind != "transfer":  # transfer's priors are in memory here; the file test is the conformance suite's
        back = load_predictor(model.save(tmp_path / "m.npz"), space=data.space.name)
        np.testing.assert_allclose(back.predict(data.X[N_TRAIN:]), pred)
    if kind == "lut":  # the table's sum, resolution and widths included
        want = [data.table.arch_latency(data.space, a) for a in data.archs[N_TRAIN:]]
        np.testing.assert_allclose(pred, want, rtol=1e-9)
    if kind in ("ridge", "gbdt", "mlp", "auto", "lut-calibrated"):
        m = metrics(data.y[N_TRAIN:], pred)
        assert m.mape < 0.05, (kind, data.space.name, m)
        # the calibrated table is additive by construction: the depth term is beyond it
        assert m.spearman > (0.8 if kind == "lut-calibrated" else 0.9), (kind, data.space.name, m)


@pytest.mark.parametrize("name", [n for n in list_spaces() if space(n).elastic_resolution or space(n).width != "none"])
def test_elastic_spaces_beat_the_one_hot(name):
    """What the one-hot alone cannot see: a 128- and a 224-pixel network, or a narrow and a wide one."""
    data = Elastic(name)
    sp, tr, te = data.space, slice(0, N_TRAIN), slice(N_TRAIN, None)
    one_hot = make_predictor("ridge", space=name).fit(sp.one_hot(data.archs[tr]), data.y[tr])
    full = make_predictor("ridge", space=name).fit(data.X[tr], data.y[tr])
    blind = metrics(data.y[te], one_hot.predict(sp.one_hot(data.archs[te]))).mape
    seeing = metrics(data.y[te], full.predict(data.X[te])).mape
    assert seeing < 0.02 and seeing < blind / 3, (blind, seeing)


def test_expected_takes_resolution_weights_and_widths_and_matches_predict():
    sp = space("ofa-mbv3")
    data = Elastic("ofa-mbv3")
    model = make_predictor("ridge", space=sp.name).fit(data.X, data.y)
    lat = PredictorLatencyModel(model)
    arch = data.archs[0]
    w = torch.zeros(sp.num_layers, sp.max_choices)
    w[torch.arange(sp.num_layers), torch.as_tensor(sp.indices(arch))] = 1.0
    rw = torch.zeros(len(sp.resolutions))
    rw[sp.resolutions.index(arch.resolution)] = 1.0
    rw.requires_grad_(True)
    out = lat.expected(w, resolution_weights=rw)
    assert out.item() == pytest.approx(float(model.predict_archs([arch])[0]), rel=1e-5)
    assert lat.score([arch])[0] == pytest.approx(float(model.predict_archs([arch])[0]))
    out.backward()
    grad = rw.grad.numpy()
    # more pixels cost more: the gradient grows with the resolution
    assert grad[-1] > grad[0] > 0
    smallest = torch.zeros(len(sp.resolutions))
    smallest[0] = 1.0
    assert float(lat.expected(w, resolution_weights=smallest)) < float(lat.expected(w)) * 0.75
    with pytest.raises(Exception, match="no elastic width"):
        lat.expected(w, width_ratio=torch.ones(sp.num_layers))

    tf = Elastic("tfnas")
    model = make_predictor("mlp", space="tfnas", **FAST["mlp"]).fit(tf.X, tf.y)
    lat = PredictorLatencyModel(model)
    arch = tf.archs[1]
    w = torch.zeros(tf.space.num_layers, tf.space.max_choices)
    w[torch.arange(tf.space.num_layers), torch.as_tensor(tf.space.indices(arch))] = 1.0
    ratio = torch.as_tensor(tf.X[1, -tf.space.num_layers :], dtype=torch.float32).requires_grad_(True)
    out = lat.expected(w, width_ratio=ratio)
    assert out.item() == pytest.approx(float(model.predict_archs([arch])[0]), rel=1e-4)
    out.backward()
    assert ratio.grad is not None and float(ratio.grad.sum()) > 0  # wider costs more


@pytest.mark.parametrize("name", list_spaces())
def test_design_folds_exactly_onto_the_one_hot(name):
    """Weights on the design's columns give the same sum as their fold on a bare one-hot (and torch agrees)."""
    from hwprof.predictors.features import design, design_width, fold_design

    sp = space(name)
    X = sp.one_hot(sp.sample(20, seed=1)).astype(np.float64)
    Z = design(sp, X)
    assert Z.shape == (20, design_width(sp))
    coef = np.random.default_rng(0).standard_normal(Z.shape[1])
    np.testing.assert_allclose(X @ fold_design(sp, coef), Z @ coef, rtol=1e-10, atol=1e-9)
    full = arch_matrix(sp, sp.sample(20, seed=1, widths=sp.width != "none"))
    np.testing.assert_allclose(design(sp, torch.as_tensor(full)).numpy(), design(sp, full), rtol=1e-12)
