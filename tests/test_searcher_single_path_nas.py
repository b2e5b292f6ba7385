"""Single-Path NAS (SEARCHERS.md §4.1 A1–A3): runtime term, derivation, superkernel masks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F

import hwprof
from hwprof.latency import SinglePathRuntime
from searchers.base import Budget, SearchError
from searchers.single_path_nas import (
    SinglePathNAS,
    SuperKernelNet,
    TFRMSprop,
    derive_choice,
    runtime_ms,
)
from searchers.testing import StandInTask

REPO = Path(__file__).resolve().parent.parent
SPNAS_JSON = REPO / "data" / "single-path-nas" / "pixel1_runtime_model.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def space():
    return hwprof.space("spnas")


@pytest.fixture(scope="module")
def lat(space):
    model = hwprof.latency_model(SPNAS_JSON, space=space)
    assert isinstance(model, SinglePathRuntime)
    return model


def _net(space, seed=0, **kw):
    torch.manual_seed(seed)
    return SuperKernelNet(space, width_mult=0.25, resolution=16, classes=4, **kw)


# -- A1 ---------------------------------------------------------------------------------------------
def test_runtime_at_zero_thresholds(space, lat):
    net = _net(space)
    assert all(float(t.detach()) == 0.0 for t in net.thresholds())
    with torch.no_grad():
        r = float(runtime_ms(lat, net.decisions()[0]))
    assert r == pytest.approx(131.458, abs=1e-3)
    assert r == lat.arch_latency("-".join(["k5_e6"] * 20))
    task = StandInTask(space, seed=0)
    s = SinglePathNAS().fit(task, space, lat, budget=Budget(steps=1), seed=0)
    assert s.runtime_at_start_ms_ == pytest.approx(131.458, abs=1e-3)


# -- A2 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("droppable", [True, False])
def test_derivation_table(droppable):
    want = {(0, 1, 0): "k3_e3", (0, 1, 1): "k3_e6", (1, 1, 0): "k5_e3", (1, 1, 1): "k5_e6"}
    for d5, d50, d100 in itertools.product((0.0, 1.0), repeat=3):
        got = derive_choice(d5, d50, d100, droppable)
        if d50 == 0 and droppable:
            assert got == "skip"
        else:  # a layer that cannot be dropped has d50 = 1 whatever its norm says
            assert got == want[(int(d5), 1, int(d100))]
    # dropout-scaled indicators (1/keep) map like 1
    assert derive_choice(1 / 0.6, 1 / 0.6, 0.0, droppable) == "k5_e3"


def test_runtime_equals_model_of_derived_arch(space, lat):
    net = _net(space)
    rng = np.random.default_rng(0)
    seen = set()
    for trial in range(25):
        with torch.no_grad():
            dec = net.decisions()[0]
            norms = [dec.x5, dec.x50, dec.x100]  # thresholds are 0: x = norm
            for layer, l in enumerate(net.layers):
                for t, norm in zip((l.t5x5, l.t50c, l.t100c), norms):
                    t.fill_(float(norm[layer]) * rng.uniform(0.5, 1.5))
            dec = net.decisions()[0]
        d5, d50, d100 = (v.numpy() for v in (dec.d5, dec.d50, dec.d100))
        arch = "-".join(derive_choice(a, b, c, drop) for a, b, c, drop in zip(d5, d50, d100, net.droppable))
        seen.update(arch.split("-"))
        r = runtime_ms(lat, dec)
        assert r.dtype == torch.float64
        assert float(r) == lat.arch_latency(arch)  # exactly
        assert float(r) == float(lat.score([space.parse(arch)])[0])
    assert seen == {"k3_e3", "k3_e6", "k5_e3", "k5_e6", "skip"}
    assert not any(net.droppable[[0, 4, 8, 12, 16]])  # first layer of a stage is never skipped


def test_fit_search_result_latency_is_final_runtime(space, lat):
    task = StandInTask(space, seed=0)
    # a strong runtime pull from the first step, so decisions move within a few steps
    s = SinglePathNAS(warmup_fraction=0.0, runtime_lambda=1.0, base_lr=2.0, kernel_init_std=0.02)
    res = s.fit_search(task, space, lat, budget=Budget(steps=12), seed=3)
    assert res.latency_ms == s.runtime_ms_ == lat.arch_latency(res.arch)
    assert res.latency_ms < 131.458
    assert res.arch != "-".join(["k5_e6"] * 20)
    assert s.step_runtime_ms_.shape == (12,)
    again = SinglePathNAS(warmup_fraction=0.0, runtime_lambda=1.0, base_lr=2.0, kernel_init_std=0.02)
    assert again.fit_search(task, space, lat, budget=Budget(steps=12), seed=3).arch == res.arch
    assert any("kernel_init_std" in d for d in res.deviations)


def test_warmup_dropout_scales_indicators_and_runtime(space, lat):
    net = _net(space)
    gen = torch.Generator().manual_seed(0)
    values = set()
    rs = []
    for _ in range(20):
        with torch.no_grad():
            dec, _ = net.decisions(0.6, gen)
        values.update(round(float(v), 5) for v in torch.cat([dec.d5, dec.d100]))
        rs.append(float(runtime_ms(lat, dec)))
    assert values == {0.0, round(1 / 0.6, 5)}
    assert max(rs) > 131.458 > min(rs)  # the warm-up curve's spread around the all-k5_e6 value
    s = SinglePathNAS()
    assert s.keep(0.0) == 0.6 and s.keep(0.7) is None and s.lam(0.5) == 0.0 and s.lam(0.7) == 0.02
    assert s.lr(0.0) == pytest.approx(0.016 * 64 / 256) and s.lr(0.99) == pytest.approx(0.004 * 0.97**3)


# -- A3 ---------------------------------------------------------------------------------------------
def test_superkernel_masks(space):
    net = _net(space)
    layer = net.layers[1]  # droppable (stride 1, a repeat)
    assert layer.droppable
    x = torch.randn(2, layer.mid, 8, 8)
    with torch.no_grad():
        layer.t5x5.fill_(1e3)  # d5 = 0
        kernel = layer.decide()[-1]
        core = layer.weight[:, :, 1:4, 1:4]
        torch.testing.assert_close(F.conv2d(x, kernel, None, 1, 2, 1, layer.mid),
                                   F.conv2d(x, core, None, 1, 1, 1, layer.mid), rtol=1e-5, atol=1e-5)
        assert torch.all(kernel[..., 0, :] == 0) and torch.all(kernel[..., :, 4] == 0)
        layer.t5x5.fill_(0.0)
        layer.t100c.fill_(1e3)  # d100 = 0
        kernel = layer.decide()[-1]
        y = F.conv2d(x, kernel, None, 1, 2, 1, layer.mid)
        assert torch.all(y[:, layer.c50 :] == 0) and torch.any(y[:, : layer.c50] != 0)
        layer.t100c.fill_(0.0)
        layer.t50c.fill_(1e3)  # d50 = 0: nothing left
        assert torch.all(layer.decide()[-1] == 0)
        layer.t50c.fill_(0.0)


def test_threshold_gradients(space, lat):
    net = _net(space)
    layer = net.layers[1]
    with torch.no_grad():
        x5, x50, x100 = (float(v) for v in layer.decide()[:3])
        layer.t5x5.fill_(x5 - 1.5)  # |x| < 5: sigmoid'(x) is not negligible
        layer.t50c.fill_(x50 - 2.0)  # kept: with d50 = 0 the other two decisions price nothing
        layer.t100c.fill_(x100 - 0.5)
    dec, kernels = net.decisions()
    out = net(torch.randn(2, 3, 16, 16), kernels)
    loss = runtime_ms(lat, dec).float() + out.square().sum()
    loss.backward()
    for t in (layer.t5x5, layer.t50c, layer.t100c):
        assert t.grad is not None and float(t.grad) != 0.0


def test_tf_rmsprop_matches_formula():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = TFRMSprop([p], lr=0.1, decay=0.9, momentum=0.9, eps=1e-3)
    ms, mom, v = np.ones(2), np.zeros(2), np.array([1.0, -2.0])
    for g in ([0.5, -1.0], [0.2, 0.3]):
        p.grad = torch.tensor(g)
        opt.step()
        g = np.array(g)
        ms = 0.9 * ms + 0.1 * g * g
        mom = 0.9 * mom + 0.1 * g / np.sqrt(ms + 1e-3)
        v = v - mom
    np.testing.assert_allclose(p.detach().numpy(), v, rtol=1e-6)


def test_bad_inputs(space, lat):
    task = StandInTask(space, seed=0)
    with pytest.raises(SearchError, match="layer_runtime_from_indicators"):
        SinglePathNAS().fit(task, space, object(), budget=Budget(steps=1))
    with pytest.raises(SearchError, match="candidates"):
        SinglePathNAS().fit(StandInTask(hwprof.space("spos")), "spos", lat, budget=Budget(steps=1))
    with pytest.raises(SearchError, match="before search"):
        SinglePathNAS().search()
    s = SinglePathNAS().set_params(**{"lambda": 0.08})
    assert s.runtime_lambda == 0.08 and any("runtime_lambda" in d for d in s.deviations_from_paper())
