"""LightNAS plugin: λ ascent with truncation, the α gradient through the straight-through Gumbel
sample, all-path freeze epochs, and landing on the target on the stand-in (SEARCHERS.md §4.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hwprof
from hwprof import objectives
from searchers.base import Budget
from searchers.data import Task
from searchers.lightnas import OFFICIAL, LightNAS, land_on_target
from searchers.testing import StandInTask

MLP = Path(__file__).resolve().parent.parent / "data" / "lightnas" / "latency_predictor.pth.tar"


@pytest.fixture(scope="module")
def space():
    return hwprof.space("lightnas")


@pytest.fixture(scope="module")
def mlp(space):
    return hwprof.latency_model(MLP, space=space)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- A1: λ ascent and truncation ---------------------------------------------------------
@pytest.mark.parametrize(
    "lam, lat_ms, want",
    [
        (0.0, 22.0, 0.1 * 0.1),  # over the target: λ rises
        (0.02, 22.0, 0.02 + 0.1 * 0.1),
        (-0.5, 22.0, 0.0),  # over, but λ would stay negative: truncated to 0
        (0.0, 18.0, -0.1 * 0.1),  # under: λ falls
        (-0.02, 18.0, -0.02 - 0.1 * 0.1),
        (0.5, 18.0, 0.0),  # under, but λ would stay positive: truncated
        (0.005, 18.0, 0.005 - 0.1 * 0.1),  # crosses zero on its own: kept
        (0.3, 20.0, 0.3),  # on the target: unchanged
    ],
)
def test_lambda_ascent_and_truncation_table(lam, lat_ms, want):
    assert objectives.update_lambda(lam, lat_ms, target_ms=20.0, lr=0.1) == pytest.approx(want, abs=1e-15)


def _quick_fit(space, mlp, target=24.0, **kw):
    task = StandInTask(space, seed=0, strength=0.0, noise=0.01, steps_per_epoch=8)
    return LightNAS(**kw).fit(task, space, mlp, target_ms=target, budget=Budget(epochs=9), seed=0)


def test_lambda_trace_follows_the_update_at_the_argmax_latency(space, mlp):
    s = _quick_fit(space, mlp, eta_lambda=0.05)
    lam_prev, T, eta = 0.0, s.target_ms_, s.eta_lambda_used_
    assert eta == pytest.approx(0.05 * 3200 / s.run_alpha_steps_)
    for lam, lat in zip(s.lambda_trace_, s.latency_trace_):
        assert lam == objectives.update_lambda(lam_prev, lat, target_ms=T, lr=eta)
        assert not (lat > T and lam < 0) and not (lat < T and lam > 0)  # truncation
        lam_prev = lam
    idx = s.alpha_.masked_fill(~torch.as_tensor(space.mask), float("-inf")).argmax(-1).numpy()
    assert s.latency_trace_[-1] == mlp.score(idx[None])[0]  # LAT of the argmax, after the last step
    r = LightNAS(**OFFICIAL).set_params(eta_lambda=0.05).fit(
        StandInTask(space, seed=0, strength=0.0, noise=0.01, steps_per_epoch=8), space, mlp, target_ms=24.0,
        budget=Budget(epochs=9), seed=0).search()
    assert r.arch == space.from_indices(idx).encode()  # same seed, same run; the paper derives argmax α
    assert r.latency_ms == mlp.arch_latency(r.arch) == r.proxy["argmax_latency_ms"]


# -- A2: the α gradient ----------------------------------------------------------------
def test_alpha_gradient_is_ce_plus_lambda_latency_through_the_gumbel_sample(space, mlp):
    task = StandInTask(space, seed=1, strength=1.0, noise=0.5)
    net = task.make_supernet(space)
    g0 = torch.Generator().manual_seed(5)
    alpha = (0.3 * torch.randn(space.num_layers, space.max_choices, generator=g0, dtype=torch.float64))
    alpha.requires_grad_(True)
    x, y = task.x_arch[:4], task.y_arch[:4]
    tau, lam, T = 1.7, 0.37, 24.0
    s = LightNAS()
    ce, lat_s, p_bar = s.alpha_loss_terms(net, mlp, alpha, x, y, tau, generator=torch.Generator().manual_seed(9))
    assert s.label_smoothing == 0.1
    loss = ce + objectives.lagrangian(lat_s, target_ms=T, lam=lam)
    (grad,) = torch.autograd.grad(loss, alpha)

    # by hand: the same Gumbel draw, soft sample, its Jacobian, and the two terms' gradients at the one-hot
    u = torch.rand(alpha.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    gumbel = -torch.log(-torch.log(u))
    soft = ((alpha.detach() + gumbel) / tau).softmax(-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
    assert torch.equal(p_bar.detach(), hard)  # forward: the exact one-hot
    idx = hard.argmax(-1).numpy()
    assert float(lat_s.detach()) == pytest.approx(float(mlp.score(idx[None])[0]), rel=1e-5)  # LAT(P̄) = the sample's latency
    q = torch.as_tensor(task.centred_)
    score = float((hard * q).sum())
    # the stand-in's logits are [s, 0] with label 0, s = Σ P̄·q̄; CE with label smoothing ε over 2 classes:
    # (1 − ε/2)·softplus(−s) + ε/2·softplus(s)
    eps = s.label_smoothing
    sig = 1.0 / (1.0 + np.exp(-score))
    d_ce = (-(1 - eps / 2) * (1 - sig) + eps / 2 * sig) * q
    one_hot = hard.clone().requires_grad_(True)
    (d_lat,) = torch.autograd.grad(mlp.expected(one_hot), one_hot)
    g_out = d_ce + lam / T * d_lat
    jac_t = (soft * (g_out - (g_out * soft).sum(-1, keepdim=True))) / tau  # J^T g of softmax((α + G)/τ)
    np.testing.assert_allclose(grad.numpy(), jac_t.numpy(), rtol=1e-6, atol=1e-9)


def test_lambda_update_uses_the_argmax_not_the_sample(space, mlp):
    task = StandInTask(space, seed=2, strength=0.0, noise=0.01)
    net = task.make_supernet(space)
    mask = torch.as_tensor(space.mask)
    alpha = torch.zeros(space.num_layers, space.max_choices, dtype=torch.float64)
    alpha[:, 0] = 3.0  # argmax: all k3_e3, far from a typical sample at τ = 5
    alpha.requires_grad_(True)
    opt = torch.optim.Adam([alpha], lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    s = LightNAS()
    _, lam, lat_now = s.alpha_step(net, mlp, alpha, opt, task.x_arch[:2], task.y_arch[:2], 5.0, 0.0, 20.0, 1e-2,
                                   mask, gen)
    argmax_lat = float(mlp.score(alpha.detach().argmax(-1).numpy()[None])[0])
    assert lat_now == argmax_lat
    assert lam == objectives.update_lambda(0.0, argmax_lat, target_ms=20.0, lr=1e-2)


# -- A3: freeze epochs train every path ---------------------------------------------------
def test_freeze_step_trains_every_candidate_of_every_layer(space):
    g = torch.Generator().manual_seed(0)

    def split(n):
        return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)

    (xw, yw), (xa, ya), (xt, yt) = split(4), split(4), split(4)
    task = Task(name="random", resolution=32, classes=10, x_weights=xw, y_weights=yw, x_arch=xa, y_arch=ya,
                x_test=xt, y_test=yt)
    from searchers.supernet import SuperNet

    torch.manual_seed(0)
    net = SuperNet(space, width_mult=0.25, resolution=32, classes=10).train()
    s = LightNAS(batch_size=4)
    alpha = torch.zeros(space.num_layers, space.max_choices, dtype=torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    s._weight_pass(task, net, opt, alpha, torch.as_tensor(space.mask), 5.0, g, freeze=True, max_steps=1)
    for l, layer in enumerate(net.layers):
        for k, op in enumerate(layer.ops):
            grads = [p.grad for p in op.parameters()]
            if not grads:  # a parameter-free skip: it ran if the layer's input got gradient through it
                continue
            assert any(gr is not None and bool(gr.abs().sum() > 0) for gr in grads), (l, space.candidates[k])


# -- B1: landing on the target on the stand-in ---------------------------------------------
def test_b1_lands_within_one_percent_on_the_stand_in(space, mlp):
    # zero-mean per-cell task pull (strength 0, noise 0.01), the released MLP, the official 90 × 40 schedule
    errors, changed = [], []
    for target in (20.0, 24.0, 28.0):
        task = StandInTask(space, seed=0, strength=0.0, noise=0.01)
        s = LightNAS().fit(task, space, mlp, target_ms=target, seed=0)
        r = s.search()
        assert s.run_alpha_steps_ == 3200 and s.eta_lambda_used_ == 5e-4
        assert r.latency_ms == mlp.arch_latency(r.arch)
        assert abs(r.latency_ms - target) <= s.landing_tolerance_ms  # the landing derivation's band
        errors.append(abs(r.error))
        changed.append(r.proxy["layers_changed_by_landing"])
        for lam, lat in zip(s.lambda_trace_, s.latency_trace_):  # λ never fights LAT − T
            assert not (lat > target and lam < 0) and not (lat < target and lam > 0)
    assert np.median(errors) <= 0.01 and max(errors) <= 0.025
    assert max(changed) <= 2  # the α loop itself ends within two layer changes of the target


def test_landing_derivation_keeps_a_landed_argmax_and_otherwise_enters_the_band(space, mlp):
    g = np.random.default_rng(0)
    log_p = np.log(g.dirichlet(np.ones(space.max_choices), size=space.num_layers))
    top = log_p.argmax(1)
    at = float(mlp.score(top[None])[0])
    np.testing.assert_array_equal(land_on_target(log_p, mlp, at + 0.1, 0.15), top)  # already inside
    for target in (at - 3.0, at + 4.0):
        idx = land_on_target(log_p, mlp, target, 0.15)
        assert abs(float(mlp.score(idx[None])[0]) - target) <= 0.15
        # no single legal change inside the band is more probable
        for l in range(space.num_layers):
            for k in range(space.max_choices):
                if k != idx[l] and log_p[l, k] > log_p[l, idx[l]]:
                    alt = idx.copy()
                    alt[l] = k
                    assert abs(float(mlp.score(alt[None])[0]) - target) > 0.15
