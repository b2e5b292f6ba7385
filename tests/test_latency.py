"""Latency models: one-hot exactness, gradients, and the released models of the papers.

Reference data (in data/ and tests/data/, each with its source):
- Single-Path NAS Pixel 1 runtime model, Stamoulis et al. 2019,
  github.com/dstamoulis/single-path-nas, Apache-2.0.
- LightNAS latency predictor, Luo et al. DAC 2022, github.com/stepbuystep/LightNAS, Apache-2.0.
- TF-NAS latency tables, Hu et al. ECCV 2020, github.com/AberHu/TF-NAS, MIT.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hwprof
from hwprof.errors import ConfigError, MissingEntryError, PredictorError, SpaceError
from hwprof.latency import (
    PredictorLatencyModel,
    WidthGrid,
    SinglePathRuntime,
    TableLatencyModel,
    WidthCurve,
    gumbel_softmax,
    latency_model,
    masked_softmax,
    ste_indicator,
)
from hwprof.spaces import SPACES

ROOT = Path(__file__).resolve().parents[1]
SPNAS_JSON = ROOT / "data" / "single-path-nas" / "pixel1_runtime_model.json"  # shipped with the package
LIGHTNAS_PTH = ROOT / "data" / "lightnas" / "latency_predictor.pth.tar"
TFNAS_PKLS = [ROOT / "tests" / "data" / "tf-nas" / "latency_cpu.pkl"]  # the GPU table is not in the reference data


def random_table(space, seed: int = 0) -> tuple[np.ndarray, float]:
    """Positive random latencies [L, K] (0 where the mask is False) and a constant."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.05, 9.0, size=space.mask.shape) * rng.choice([1e-3, 1.0, 1e2], size=space.mask.shape)
    values[~space.mask] = 0.0
    return values, float(rng.uniform(1.0, 20.0))


def one_hot(idx: np.ndarray, k: int, dtype=torch.float64) -> torch.Tensor:
    t = torch.zeros(*idx.shape, k, dtype=dtype)
    return t.scatter_(-1, torch.from_numpy(idx)[..., None], 1.0)


class StandInTable:
    """Speaks the LatencyTable boundary this module reads: ``matrix`` and ``width_curve``."""

    def __init__(self, space, values, constant_ms, curves=None):
        self.space = space.name
        self._values, self._mask, self._constant = values, space.mask.copy(), constant_ms
        self._curves = curves or {}

    def matrix(self, space, resolution=None):
        return self._values.copy(), self._mask.copy(), self._constant

    def width_curve(self, space, layer, candidate):
        return self._curves[(layer, candidate)]


# -- tables: one-hot exactness --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPACES))
def test_one_hot_expected_score_and_table_sum_agree_exactly(name):
    space = SPACES[name]
    values, constant = random_table(space, seed=len(name))
    model = TableLatencyModel(values, space.mask, constant, space)
    archs = space.sample(64, seed=3)
    idx = np.stack([space.indices(a) for a in archs])
    by_hand = np.array([sum(values[l, i[l]] for l in range(space.num_layers)) + constant for i in idx])
    scored = model.score(idx)
    batched = model.expected(one_hot(idx, space.max_choices)).numpy()
    single = np.array([model.expected(one_hot(i, space.max_choices)).item() for i in idx[:8]])
    assert scored.dtype == np.float64 and scored.shape == (64,)
    np.testing.assert_array_equal(scored, by_hand)
    np.testing.assert_array_equal(batched, by_hand)
    np.testing.assert_array_equal(single, by_hand[:8])
    np.testing.assert_array_equal(model.score(archs), by_hand)  # Arch objects
    assert model.arch_latency(archs[0].encode()) == by_hand[0]  # text form


def test_score_over_many_chunks_and_an_illegal_row_deep_in_the_batch():
    space = hwprof.space("proxylessnas")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    rng = np.random.default_rng(0)
    legal = [np.flatnonzero(row) for row in space.mask]
    idx = np.stack([rng.choice(c, size=5000) for c in legal], axis=1)
    rows = values[np.arange(space.num_layers), idx]
    by_hand = np.cumsum(rows, axis=1)[:, -1] + constant  # np.cumsum: left to right
    np.testing.assert_array_equal(model.score(idx), by_hand)
    idx[4321, 8] = space.candidates.index("skip")  # layer 8 opens a stage: no skip there
    with pytest.raises(SpaceError, match="architecture 4321 uses skip at layer 8"):
        model.score(idx)


def test_straight_through_gumbel_one_hot_is_exact_too():
    space = hwprof.space("proxylessnas")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    alpha = torch.randn(8, space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    w = model.gumbel_softmax(alpha, tau=0.7, hard=True, generator=torch.Generator().manual_seed(0))
    idx = w.argmax(-1).numpy()
    np.testing.assert_array_equal(model.expected(w).detach().numpy(), model.score(idx))
    model.expected(w).sum().backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


def test_expected_of_softmax_is_the_weighted_mean():
    space = hwprof.space("fbnet-c100")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    alpha = torch.randn(space.num_layers, space.max_choices, dtype=torch.float64)
    w = model.masked_softmax(alpha).numpy()
    assert model.expected(torch.from_numpy(w)).item() == pytest.approx((w * values).sum() + constant, rel=1e-12)
    # float32 weights give a float32 latency on the same device
    e32 = model.expected(torch.from_numpy(w).float())
    assert e32.dtype == torch.float32 and e32.item() == pytest.approx((w * values).sum() + constant, rel=1e-5)
    archs = np.stack([space.indices(a) for a in space.sample(16, seed=0)])
    e32 = model.expected(one_hot(archs, space.max_choices, torch.float32)).numpy()
    np.testing.assert_allclose(e32, model.score(archs), rtol=1e-6)


# -- gradients --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["proxylessnas", "fbnet-c100", "ofa-mbv3"])
def test_gradcheck_table_expected(name):
    space = SPACES[name]
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    alpha = torch.randn(2, space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    f = lambda a: model.expected(model.masked_softmax(a, tau=0.5))  # noqa: E731
    assert torch.autograd.gradcheck(f, (alpha,), fast_mode=True)
    # the gradient with respect to the weights is the table itself (a linear function)
    w = model.masked_softmax(alpha).detach().requires_grad_(True)
    model.expected(w).sum().backward()
    np.testing.assert_allclose(w.grad[0].numpy(), values)


def test_gradcheck_table_expected_full_jacobian_small_space():
    space = hwprof.space("spos")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    w = torch.rand(space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model.expected, (w,))


def test_gradcheck_soft_gumbel_with_fixed_noise():
    space = hwprof.space("lightnas")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    alpha = torch.randn(space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)

    def f(a):
        return model.expected(model.gumbel_softmax(a, tau=1.5, generator=torch.Generator().manual_seed(7)))

    assert torch.autograd.gradcheck(f, (alpha,), fast_mode=True)


# -- masks ------------------------------------------------------------------------
def test_masked_helpers_give_illegal_columns_exactly_zero():
    space = hwprof.space("proxylessnas")  # skip illegal in the first layer of every stage
    alpha = torch.randn(4, space.num_layers, space.max_choices)
    mask = torch.from_numpy(space.mask)
    for w in (
        masked_softmax(alpha, space.mask),
        gumbel_softmax(alpha, space.mask, tau=0.3),
        gumbel_softmax(alpha, space.mask, hard=True),
    ):
        assert (w[..., ~mask] == 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(4, space.num_layers))
    hard = gumbel_softmax(alpha, space.mask, hard=True)
    assert set(hard.unique().tolist()) == {0.0, 1.0}


def test_weights_on_illegal_columns_are_an_error_unless_not_strict():
    space = hwprof.space("proxylessnas")
    values, constant = random_table(space)
    w = torch.full((space.num_layers, space.max_choices), 1.0 / space.max_choices, dtype=torch.float64)
    with pytest.raises(SpaceError, match="skip at layer 0"):
        TableLatencyModel(values, space.mask, constant, space).expected(w)
    lax = TableLatencyModel(values, space.mask, constant, space, strict=False)
    assert lax.expected(w).item() == pytest.approx(values.sum() / space.max_choices + constant)


def test_bad_inputs_raise_typed_errors():
    space = hwprof.space("proxylessnas")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    with pytest.raises(SpaceError, match="expected \\[L, K\\]"):
        model.expected(torch.zeros(3, 4))
    with pytest.raises(SpaceError, match="shape"):
        model.score(np.zeros((2, 5), dtype=int))
    with pytest.raises(SpaceError, match="out of range"):
        model.score(np.full((1, space.num_layers), space.max_choices))
    skip_first = np.zeros((1, space.num_layers), dtype=int)
    skip_first[0, 0] = space.candidates.index("skip")
    with pytest.raises(SpaceError, match="does not have"):
        model.score(skip_first)
    with pytest.raises(SpaceError):
        TableLatencyModel(values[:, :3], None, constant, space)
    with pytest.raises(ConfigError, match="non-finite"):
        TableLatencyModel(np.where(space.mask, np.nan, 0.0), space.mask, constant, space)


def test_elastic_resolution_model_refuses_other_resolutions():
    space = hwprof.space("ofa-mbv3")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space, resolution=160)
    arch = space.sample(1, seed=0)[0]
    text = arch.encode().split(":", 1)[1]
    assert model.arch_latency(f"r160:{text}") == model.score(space.indices(f"r160:{text}"))[0]
    with pytest.raises(SpaceError, match="resolution 160"):
        model.arch_latency(f"r224:{text}")


# -- latency_model dispatch --------------------------------------------------------
def test_latency_model_builds_from_table_like_and_module_and_refuses_others(tmp_path):
    space = hwprof.space("fbnet-c100")
    values, constant = random_table(space)
    table_model = latency_model(StandInTable(space, values, constant))
    assert isinstance(table_model, TableLatencyModel) and table_model.space is space
    assert latency_model(table_model) is table_model
    mlp = nn.Sequential(nn.Linear(space.num_layers * space.max_choices, 4), nn.ReLU(), nn.Linear(4, 1))
    assert isinstance(latency_model(mlp, space="fbnet-c100"), PredictorLatencyModel)
    with pytest.raises(ConfigError, match="space"):
        latency_model(mlp)
    with pytest.raises(ConfigError, match="no such"):
        latency_model(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="cannot build"):
        latency_model(42)


def test_latency_model_loads_a_saved_lut_and_agrees_with_its_arch_latency(tmp_path):
    lut = pytest.importorskip("hwprof.tables.table", reason="hwprof.tables.table not available")
    space = hwprof.space("proxylessnas")
    rng = np.random.default_rng(0)
    ops = {op: float(rng.uniform(0.1, 5.0)) for row in space.choice_ops() for op in row if op is not None}
    ops.update({op: float(rng.uniform(0.1, 5.0)) for op in space.fixed_ops()})
    table = lut.table_from_ops(ops, space=space.name, device="test")
    path = table.save(tmp_path / "cpu-proxyless.lut.json")
    model = latency_model(path)
    assert isinstance(model, TableLatencyModel) and model.space is space
    archs = space.sample(20, seed=0)
    want = np.array([table.arch_latency(space, a) for a in archs])
    np.testing.assert_allclose(model.score(archs), want, rtol=1e-12)
    from_table = latency_model(table).expected(one_hot(model.indices(archs), space.max_choices))
    np.testing.assert_allclose(from_table.numpy(), want, rtol=1e-12)
    bad = tmp_path / "garbage.json"
    bad.write_text("[1, 2, 3]")
    with pytest.raises(ConfigError, match="neither"):
        latency_model(bad, space="proxylessnas")


def test_width_curve_from_a_lut_width_sweep():
    lut = pytest.importorskip("hwprof.tables.table", reason="hwprof.tables.table not available")
    space = hwprof.space("tfnas")
    g = space.geometry()[3]
    lo, hi = space.mid_range(g, "k5_e6")
    mids = np.arange(lo, hi + 1, 16)
    ms = 0.02 * mids - 0.5  # negative at the narrow end, like the released TF-NAS tables
    ops = {space.candidate_op(g, "k5_e6", int(m)): float(v) for m, v in zip(mids, ms)}
    model = TableLatencyModel(np.zeros(space.mask.shape), space.mask, 1.0, space, table=lut.table_from_ops(ops))
    curve = model.width_curve(3, "k5_e6")
    np.testing.assert_array_equal(curve.breaks, mids)
    np.testing.assert_allclose(curve(mids), np.clip(ms, 0, None), atol=1e-12)
    assert model.width_curve(3, "k5_e6") is curve  # cached


# -- predictors -------------------------------------------------------------------
def small_mlp(space, seed=0, hidden=(16, 8)):
    torch.manual_seed(seed)
    sizes = (space.num_layers * space.max_choices, *hidden)
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


class StandInPredictor:
    """Speaks the predictor boundary: ``predict``, ``to_torch``, ``space``, ``kind``."""

    def __init__(self, space, module=None, kind="mlp"):
        self.space, self.kind, self._module = space, kind, module
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        if self._module is None:  # a non-differentiable stand-in: a fixed linear score
            return x @ np.linspace(0.1, 2.0, x.shape[1])
        with torch.no_grad():
            return self._module(torch.as_tensor(x, dtype=torch.float32)).squeeze(-1).double().numpy()

    def to_torch(self):
        if self._module is None:
            raise PredictorError(f"kind {self.kind} has no torch twin")
        return self._module


def test_gradcheck_predictor_expected_and_frozen_parameters():
    space = hwprof.space("proxylessnas")
    mlp = small_mlp(space)
    model = latency_model(StandInPredictor(space, mlp))
    alpha = torch.randn(3, space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: model.expected(model.masked_softmax(a)), (alpha,), fast_mode=True)
    small = hwprof.space("spos")  # full Jacobian check on a small space (20 x 4)
    small_model = PredictorLatencyModel(module=small_mlp(small, hidden=(6,)), space=small)
    w = torch.rand(small.num_layers, small.max_choices, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(small_model.expected, (w,))
    model.expected(model.masked_softmax(alpha)).sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in model.module.parameters())
    assert all(not p.requires_grad for p in mlp.parameters())


@pytest.mark.parametrize("name", ["proxylessnas", "fbnet-c100", "spos", "tfnas"])
def test_predictor_score_matches_expected_at_one_hot(name):
    space = SPACES[name]
    mlp = small_mlp(space, hidden=(32, 16))
    model = PredictorLatencyModel(module=mlp, space=space, dtype=np.float64)
    archs = space.sample(300, seed=1)
    idx = np.stack([space.indices(a) for a in archs])
    scored = model.score(idx)
    expected = model.expected(one_hot(idx, space.max_choices)).numpy()
    np.testing.assert_allclose(scored, expected, rtol=1e-11, atol=1e-12)
    fast = PredictorLatencyModel(module=mlp, space=space)  # float32 numpy path, the default
    np.testing.assert_allclose(fast.score(idx), expected, rtol=1e-5, atol=1e-6)
    # and both equal the dense one-hot forward
    dense = model.module.double()(torch.from_numpy(space.one_hot(archs)).double()).squeeze(-1).detach().numpy()
    np.testing.assert_allclose(scored, dense, rtol=1e-11, atol=1e-12)


def test_non_differentiable_predictor_scores_but_refuses_expected():
    space = hwprof.space("fbnet-c100")
    pred = StandInPredictor(space, None, kind="gbdt")
    model = latency_model(pred)
    idx = np.stack([space.indices(a) for a in space.sample(10, seed=0)])
    x = np.zeros((10, space.num_layers * space.max_choices))
    x[np.arange(10)[:, None], idx + np.arange(space.num_layers) * space.max_choices] = 1
    np.testing.assert_allclose(model.score(idx), x @ np.linspace(0.1, 2.0, x.shape[1]))
    assert pred.calls == 1 and not model.differentiable
    with pytest.raises(PredictorError, match="lut, lut-calibrated, ridge, mlp"):
        model.expected(torch.zeros(space.num_layers, space.max_choices))


def test_released_lightnas_predictor_matches_a_hand_written_forward():
    state = torch.load(LIGHTNAS_PTH, weights_only=True, map_location="cpu")
    assert sorted(state) == sorted(f"pred.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias"))
    assert tuple(state["pred.0.weight"].shape) == (128, 147) and tuple(state["pred.4.weight"].shape) == (1, 64)
    mlp = nn.Sequential(nn.Linear(147, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
    mlp.load_state_dict({k.removeprefix("pred."): v for k, v in state.items()})
    space = hwprof.space("lightnas")
    model = latency_model(mlp, space=space)  # float32 numpy scores, like the released float32 weights
    exact = PredictorLatencyModel(module=mlp, space=space, dtype=np.float64)
    w = {k: v.double().numpy() for k, v in state.items()}

    def by_hand(x):  # x: one-hot [147]; Linear → ReLU → Linear → ReLU → Linear
        h = np.maximum(w["pred.0.weight"] @ x + w["pred.0.bias"], 0)
        h = np.maximum(w["pred.2.weight"] @ h + w["pred.2.bias"], 0)
        return (w["pred.4.weight"] @ h + w["pred.4.bias"])[0]

    archs = ["k3_e3-" * 20 + "k3_e3", "k7_e6-" * 20 + "k7_e6", "skip-" * 20 + "skip"] + [
        a.encode() for a in space.sample(5, seed=2)
    ]
    hand = np.array([by_hand(x) for x in space.one_hot(archs).astype(np.float64)])
    assert ((hand > 1.0) & (hand < 200.0)).all()  # end-to-end ms on a Jetson Xavier
    assert hand[1] > hand[0] > hand[2]  # the widest architecture is the slowest
    np.testing.assert_allclose(exact.score(archs), hand, rtol=1e-12)
    np.testing.assert_allclose(model.score(archs), hand, rtol=2e-6)
    idx = np.stack([space.indices(a) for a in archs])
    np.testing.assert_allclose(model.expected(one_hot(idx, 7, torch.float64)).numpy(), hand, rtol=1e-12)
    np.testing.assert_allclose(model.expected(one_hot(idx, 7, torch.float32)).numpy(), hand, rtol=2e-6)
    for a, h in zip(archs, hand):
        assert exact.arch_latency(a) == pytest.approx(h, rel=1e-12)


# -- TF-NAS depth -----------------------------------------------------------------
def test_depth_expected_by_hand_and_at_one_hot():
    space = hwprof.space("tfnas")
    values, constant = random_table(space)
    values[:, space.candidates.index("skip")] = 0.0  # a dropped layer is an identity: 0 ms, as measured
    model = TableLatencyModel(values, space.mask, constant, space)
    sizes = [st.layers for st in space.stages]
    rng = np.random.default_rng(0)
    w = model.masked_softmax(torch.from_numpy(rng.normal(size=space.mask.shape)))
    v = [torch.from_numpy(rng.dirichlet(np.ones(n))) for n in sizes]
    lat = (w.numpy() * values).sum(-1)
    total, start = constant, 0
    for n, vs in zip(sizes, v):
        cum = np.cumsum(lat[start : start + n])
        total += float((vs.numpy() * cum).sum())
        start += n
    assert model.depth_expected(w, v).item() == pytest.approx(total, rel=1e-12)
    # batched weights and depths give the per-sample values
    w2 = torch.stack([w, w.flip(-1).masked_fill(~torch.from_numpy(space.mask), 0.0)])
    v2 = [torch.stack([vs, vs.flip(-1)]) for vs in v]
    singles = [model.depth_expected(w2[b], [vs[b] for vs in v2]).item() for b in range(2)]
    np.testing.assert_allclose(model.depth_expected(w2, v2).numpy(), singles, rtol=1e-12)
    # one-hot depths and candidates: the architecture with the dropped layers as skip
    for arch in space.sample(10, seed=4):
        idx = space.indices(arch)
        kept = [c != "skip" for c in arch.choices]
        depth, start = [], 0
        for n in sizes:
            d = sum(kept[start : start + n])
            depth.append(torch.nn.functional.one_hot(torch.tensor(d - 1), n).double())
            start += n
        cand = np.where(kept, idx, 0)  # a dropped layer's candidate weight does not matter
        got = model.depth_expected(one_hot(cand, space.max_choices), depth).item()
        assert got == pytest.approx(model.score(idx)[0], rel=1e-12)


def test_gradcheck_depth_expected_and_its_checks():
    space = hwprof.space("tfnas")
    values, constant = random_table(space)
    model = TableLatencyModel(values, space.mask, constant, space)
    sizes = [st.layers for st in space.stages]
    dmax = max(sizes)
    valid = torch.tensor([[d < n for d in range(dmax)] for n in sizes])
    alpha = torch.randn(space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(len(sizes), dmax, dtype=torch.float64, requires_grad=True)

    def f(a, b):
        return model.depth_expected(model.masked_softmax(a), b.masked_fill(~valid, float("-inf")).softmax(-1))

    assert torch.autograd.gradcheck(f, (alpha, beta), fast_mode=True)
    w = model.masked_softmax(alpha.detach())
    with pytest.raises(SpaceError, match="past a stage"):
        model.depth_expected(w, torch.full((len(sizes), dmax), 0.25, dtype=torch.float64))
    with pytest.raises(SpaceError, match="stages"):
        model.depth_expected(w, [torch.ones(2)])
    ofa = hwprof.space("ofa-mbv3")
    ovalues, oconstant = random_table(ofa)
    ofa_model = TableLatencyModel(ovalues, ofa.mask, oconstant, ofa)
    ow = ofa_model.masked_softmax(torch.zeros(ofa.num_layers, ofa.max_choices, dtype=torch.float64))
    with pytest.raises(SpaceError, match="min_depth=2"):
        ofa_model.depth_expected(ow, [torch.full((4,), 0.25, dtype=torch.float64)] * 5)
    ok = [torch.tensor([0.0, 0.2, 0.3, 0.5], dtype=torch.float64)] * 5
    assert torch.isfinite(ofa_model.depth_expected(ow, ok))


# -- Single-Path NAS --------------------------------------------------------------
def test_released_single_path_runtime_matches_the_formula_by_hand():
    raw = json.loads(SPNAS_JSON.read_text())
    space = hwprof.space("spnas")
    model = SinglePathRuntime.from_json(SPNAS_JSON, space=space)
    assert model.constant_ms == 19.5999 and model.num_layers == 20
    assert list(np.flatnonzero(~model.droppable)) == [0, 4, 8, 12, 16]

    def by_hand(choices):
        total = 19.5999
        for layer, c in enumerate(choices, start=1):  # rows 1..20 of the file
            row = raw[str(layer)]
            r33, r36, r53, r56 = (row[str(j)] for j in range(4))
            if c == "skip":
                continue
            k5, e6 = c.startswith("k5"), c.endswith("e6")
            r_e = r56 if e6 else r53
            total += r_e if k5 else r_e * r36 / r56  # k3: R_e · r; so k3_e6 = R36, k3_e3 = R53 · R36 / R56
        return total

    choices = [
        ["k5_e6"] * 20,
        ["k3_e6"] * 20,
        ["k3_e3"] * 20,
        ["k5_e3", "skip", "k3_e6", "k5_e6"] * 5,
    ]
    choices[3][0::4] = ["k3_e3", "k5_e6", "k3_e6", "k5_e3", "k3_e3"]  # first layers of stages are kept
    choices += [list(a.choices) for a in space.sample(4, seed=5)]
    hand = np.array([by_hand(c) for c in choices])
    # all-k5_e6 and all-k3_e6 read the table directly
    assert hand[0] == pytest.approx(19.5999 + sum(raw[str(i)]["3"] for i in range(1, 21)), rel=1e-12)
    assert hand[1] == pytest.approx(19.5999 + sum(raw[str(i)]["1"] for i in range(1, 21)), rel=1e-12)
    np.testing.assert_allclose(model.score(["-".join(c) for c in choices]), hand, rtol=1e-12)

    # the torch path from threshold differences x (sign = decision)
    d5, d50, d100 = model.indicators(["-".join(c) for c in choices])
    rng = np.random.default_rng(0)

    def signed(d):  # any x with the right sign: x ≥ 0 ⇔ decision 1
        return torch.from_numpy(np.where(d > 0, rng.uniform(0.0, 2.0, d.shape), -rng.uniform(0.01, 2.0, d.shape)))

    got = model.runtime(signed(d5), signed(d50), signed(d100)).numpy()
    np.testing.assert_allclose(got, hand, rtol=1e-12)


def test_single_path_straight_through_gradient_is_the_surrogate_chain_rule():
    space = hwprof.space("spnas")
    rng = np.random.default_rng(1)
    r = np.sort(rng.uniform(0.5, 9.0, size=(20, 4)), axis=1)
    model = SinglePathRuntime(r, space.mask[:, 4], constant_ms=10.0, space=space)
    # the runtime is smooth in relaxed indicators d ∈ (0, 1): gradcheck it
    d = [torch.from_numpy(rng.uniform(0.05, 0.95, 20)).requires_grad_(True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda a, b, c: model.layer_runtime_from_indicators(a, b, c).sum(), tuple(d))
    # STE: forward uses the hard decisions, backward = ∂R/∂d at the hard d times sigmoid'(x)
    x = [torch.from_numpy(rng.normal(size=20)).requires_grad_(True) for _ in range(3)]
    model.runtime(*x).backward()
    hard = [(xi.detach() >= 0).double().requires_grad_(True) for xi in x]
    model.layer_runtime_from_indicators(*hard).sum().backward()
    for xi, hi in zip(x, hard):
        s = torch.sigmoid(xi.detach())
        torch.testing.assert_close(xi.grad, hi.grad * s * (1 - s))
    # layers that cannot be skipped ignore x50
    assert (x[1].grad[~torch.from_numpy(model.droppable)] == 0).all()
    # indicator itself
    t = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    out = ste_indicator(t)
    assert out.tolist() == [0.0, 1.0, 1.0]
    out.sum().backward()
    s = torch.sigmoid(t.detach())
    torch.testing.assert_close(t.grad, s * (1 - s))


def test_single_path_refuses_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="\\[L, 4\\]"):
        SinglePathRuntime(np.ones((20, 3)), np.ones(20, bool))
    bad = tmp_path / "rt.json"
    bad.write_text(json.dumps({"1": {"0": 1.0}}))
    with pytest.raises(ConfigError, match="rows"):
        SinglePathRuntime.from_json(bad)
    model = SinglePathRuntime(np.ones((20, 4)), np.ones(20, bool))
    with pytest.raises(SpaceError, match="x5"):
        model.runtime(torch.zeros(19), torch.zeros(20), torch.zeros(20))
    with pytest.raises(ConfigError, match="runtime"):
        model.expected(torch.zeros(20, 5))


# -- TF-NAS width -----------------------------------------------------------------
class _BuiltinsOnly(pickle.Unpickler):
    """Restricted unpickler: builtin containers and numbers only (plus OrderedDict)."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a latency table")


def load_tfnas(path: Path) -> dict:
    try:
        from hwprof.tables.formats import load_tfnas_pickle  # the package's own reader, once merged
    except ImportError:
        return _BuiltinsOnly(io.BytesIO(path.read_bytes())).load()
    return load_tfnas_pickle(path)


@pytest.mark.parametrize("path", TFNAS_PKLS, ids=lambda p: p.stem)
def test_width_curves_of_released_tfnas_tables_are_monotone_and_non_negative(path):
    table = load_tfnas(path)
    assert isinstance(table["base"], float) and table["base"] > 0
    blocks = {k: v for k, v in table.items() if k != "base"}
    negative = [k for k, v in blocks.items() if min(v.values()) < 0]
    assert negative, "the released TF-NAS tables hold negative latencies at small widths"
    for key, sweep in blocks.items():
        mids = np.array(sorted(sweep), dtype=float)
        raw = np.array([sweep[m] for m in sorted(sweep)])
        curve = WidthCurve.fit(mids, raw)
        dense = curve(np.linspace(mids[0], mids[-1], 2000))
        assert (dense >= 0).all(), key
        assert (np.diff(dense) >= -1e-12).all(), key
        integers = curve(np.arange(int(mids[0]), int(mids[-1]) + 1))
        assert (integers >= 0).all() and (np.diff(integers) >= 0).all(), key
        # where the measurements are already monotone and non-negative, the curve goes through them
        if (np.diff(raw) >= 0).all():
            np.testing.assert_allclose(curve(mids), np.clip(raw, 0, None), rtol=1e-12, atol=1e-12)


def test_width_curve_repairs_non_monotone_data_and_is_differentiable():
    mids = np.array([8, 16, 24, 32, 40, 48])
    ms = np.array([-0.2, 0.5, 0.4, 0.9, 0.85, 1.6])  # negative and non-monotone
    curve = WidthCurve.fit(mids, ms)
    grid = curve(np.linspace(8, 48, 500))
    assert (grid >= 0).all() and (np.diff(grid) >= -1e-15).all()
    assert curve(20) == pytest.approx(curve(torch.tensor(20.0, dtype=torch.float64)).item())
    x = torch.tensor([9.3, 17.5, 30.1, 47.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(curve.torch, (x,))
    curve.torch(x).sum().backward()
    assert (x.grad >= 0).all()
    with pytest.raises(MissingEntryError, match="outside the measured range"):
        curve(50)
    with pytest.raises(MissingEntryError):
        curve(torch.tensor([7.0]))
    with pytest.raises(ConfigError, match="two or more"):
        WidthCurve.fit([8, 8], [1.0, 2.0])


def test_table_model_prices_elastic_widths_on_the_table_curves():
    space = hwprof.space("tfnas")
    values, constant = random_table(space)
    arch = space.sample(1, seed=0)[0]
    layer = 0
    cand = arch.choices[layer]
    g = space.geometry()[layer]
    lo, hi = space.mid_range(g, cand)
    mids = np.arange(lo, hi + 1, 8)
    ms = 0.01 * mids + 0.3
    table = StandInTable(space, values, constant, {(layer, cand): (mids, ms)})
    model = latency_model(table)
    mid = int(mids[1] + 3)
    widths = (mid,) + (None,) * (space.num_layers - 1)
    text = type(arch)(arch.choices, None, widths).encode()
    base = model.arch_latency(arch)
    idx = space.indices(arch)
    want = base - values[layer, idx[layer]] + (0.01 * mid + 0.3)
    assert model.arch_latency(text) == pytest.approx(want, rel=1e-12)
    with pytest.raises(SpaceError, match="arch_latency"):
        model.score([text])
    with pytest.raises(ConfigError, match="width"):
        TableLatencyModel(values, space.mask, constant, space).width_curve(0, cand)


def test_width_expected_over_a_tfnas_sweep():
    space = hwprof.space("tfnas")
    values, constant = random_table(space)
    skip = space.candidates.index("skip")
    values[:, skip] = 0.0
    geoms = space.geometry()
    rng = np.random.default_rng(3)
    curves = {}
    for g in geoms:
        for cand in space.candidates[:skip]:
            lo, hi = space.mid_range(g, cand)
            mids = np.unique(np.linspace(lo, hi, 7).round())
            noisy = np.sort(rng.uniform(0.1, 3.0, mids.size)) + rng.normal(0, 0.05, mids.size)  # a bit non-monotone
            curves[(g.index, cand)] = (mids, noisy)
    model = latency_model(StandInTable(space, values, constant, curves))
    mids = torch.zeros(space.num_layers, space.max_choices, dtype=torch.float64)
    for g in geoms:
        for k, cand in enumerate(space.candidates[:skip]):
            lo, hi = space.mid_range(g, cand)
            mids[g.index, k] = float(rng.uniform(lo, hi))
    w = model.masked_softmax(torch.from_numpy(rng.normal(size=space.mask.shape)))
    by_hand = constant
    for g in geoms:
        for k, cand in enumerate(space.candidates):
            if not space.mask[g.index, k]:
                continue
            ms = values[g.index, k] if cand == "skip" else model.width_curve(g.index, cand)(float(mids[g.index, k]))
            by_hand += float(w[g.index, k]) * ms
    assert model.width_expected(w, mids).item() == pytest.approx(by_hand, rel=1e-12)
    # a one-hot with integer widths equals arch_latency of the @width architecture
    arch = space.sample(1, seed=8)[0]
    idx = space.indices(arch)
    widths, int_mids = [], mids.clone()
    for g, cand in zip(geoms, arch.choices):
        if cand == "skip":
            widths.append(None)
            continue
        lo, hi = space.mid_range(g, cand)
        mid = int(rng.integers(lo, hi + 1))
        widths.append(mid)
        int_mids[g.index, space.candidates.index(cand)] = mid
    text = type(arch)(arch.choices, None, tuple(widths)).encode()
    got = model.width_expected(one_hot(idx, space.max_choices), int_mids).item()
    assert got == pytest.approx(model.arch_latency(text), rel=1e-12)
    # differentiable in the weights and in the mid counts
    alpha = torch.randn(space.num_layers, space.max_choices, dtype=torch.float64, requires_grad=True)
    m = mids.clone().requires_grad_(True)
    f = lambda a, mm: model.width_expected(model.masked_softmax(a), mm)  # noqa: E731
    assert torch.autograd.gradcheck(f, (alpha, m), fast_mode=True)
    bad = mids.clone()
    bad[0, 0] = 1.0
    with pytest.raises(MissingEntryError, match="layer 0"):
        model.width_expected(w, bad)
    assert isinstance(model._grid, WidthGrid)
