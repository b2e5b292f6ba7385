"""ProxylessNAS plugin: Eq. 4 and the two-path rescale exactly, E = expected(softmax α), and on the
stand-in the direction of each latency loss (SEARCHERS.md §4.4 A1–A3, B1–B3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hwprof
from searchers.base import Budget
from searchers.proxylessnas import (
    ProxylessNAS,
    eq4_alpha_grad,
    expected_latency,
    rescale_pair,
    two_mode_alpha_grad,
)
from searchers.supernet import MixedLayer, proxy_choice_ops
from searchers.testing import StandInTask

YAML = Path(__file__).parent / "data" / "proxylessnas" / "mobile_trim.yaml"


@pytest.fixture(scope="module")
def space():
    return hwprof.space("proxylessnas")


@pytest.fixture(scope="module")
def lut(space):
    return hwprof.latency_model(YAML, space=space)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _eq4_by_loops(gb: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``∂L/∂α_i = Σ_j ∂L/∂g_j · p_j (δ_ij − p_i)`` written as the paper's double sum."""
    out = np.zeros_like(p)
    for i in range(len(p)):
        for j in range(len(p)):
            out[i] += gb[j] * p[j] * ((i == j) - p[i])
    return out


# -- A1: Eq. 4 ----------------------------------------------------------------------
def test_eq4_gradient_equals_brute_force_on_a_three_candidate_edge(space):
    torch.manual_seed(0)
    specs = proxy_choice_ops(space, 0.25, 32)[2][:3]  # three MBConv candidates of one stride-1 layer
    edge = MixedLayer(specs).double()
    h = specs[0].h
    x = torch.randn(4, specs[0].cin, h, h, dtype=torch.float64)
    r = torch.randn(4, specs[0].cout, h // specs[0].stride, h // specs[0].stride, dtype=torch.float64)
    alpha = torch.randn(3, dtype=torch.float64)
    p = alpha.softmax(-1)
    for active in range(3):
        gates = F.one_hot(torch.tensor(active), 3).to(torch.float64).requires_grad_(True)
        y = edge(x, gates, compute="all")
        loss = (r * y).sum() + 0.3 * (y**2).sum()
        (gate_grad,) = torch.autograd.grad(loss, gates)
        # brute force: every candidate's output stored, ∂L/∂g_j = Σ ∇_y L ∘ o_j at the active output
        with torch.no_grad():
            outs = [edge.ops[j](x) for j in range(3)]
            grad_y = r + 0.6 * outs[active]
            gb = np.array([float((grad_y * o).sum()) for o in outs])
        np.testing.assert_allclose(gate_grad.numpy(), gb, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(eq4_alpha_grad(gate_grad, p).numpy(), _eq4_by_loops(gb, p.numpy()),
                                   rtol=1e-6, atol=1e-9)


def _fitted(space, lut, **kw) -> ProxylessNAS:
    task = StandInTask(space, seed=1, strength=1.0, noise=0.5, quality="linear", steps_per_epoch=4)
    return ProxylessNAS(batch_size=4, **kw).fit(task, space, lut, target_ms=80.0, budget=Budget(steps=4), seed=3)


@pytest.mark.parametrize("reg_loss", ["mul#log", "add#linear", "none"])
def test_arch_gradient_is_latency_gradient_plus_eq4(space, lut, reg_loss):
    s = _fitted(space, lut, reg_loss=reg_loss, reg_lambda=0.4)
    with torch.no_grad():
        for l, row in enumerate(s.rows_):  # spread p so Eq. 4 has non-trivial weights
            row.copy_(torch.linspace(-1.0, 1.0, space.max_choices, dtype=torch.float64).roll(l))
    x, y = s.task_.x_arch[:4], s.task_.y_arch[:4]
    grads, info = s.arch_gradient(x, y)
    active = info["active"]
    q = s.supernet_.quality.numpy()  # the stand-in's CE is softplus(−s), s = Σ_l q̄[l, active_l]
    score = q[np.arange(space.num_layers), active].sum()
    ce = float(np.logaddexp(0.0, -score))
    alpha = torch.stack(list(s.rows_)).detach().clone().requires_grad_(True)
    e_ms = expected_latency(lut, alpha)
    if reg_loss == "mul#log":
        factor = 0.2 * (torch.log(e_ms.detach()) / np.log(80.0)) ** 0.3
        lat_term = 0.2 * ce * (torch.log(e_ms) / np.log(80.0)) ** 0.3
    elif reg_loss == "add#linear":
        factor = 1.0
        lat_term = 0.4 * (e_ms - 80.0) / 80.0
    else:
        factor, lat_term = 1.0, 0.0 * e_ms
    (lat_grad,) = torch.autograd.grad(lat_term, alpha)
    p = lut.masked_softmax(alpha.detach()).numpy()
    skip = space.candidates.index("skip")
    gb_all = -float(factor) / (1.0 + np.exp(score)) * q  # ∂L/∂g_lj = factor · ∂CE/∂s · q̄_lj
    np.testing.assert_allclose(info["gate_grad"].numpy(), gb_all, rtol=1e-5, atol=1e-7)
    for l in range(space.num_layers):
        if active[l] == skip:
            assert grads[l] is None and not info["updated"][l]
            continue
        want = lat_grad[l].numpy() + _eq4_by_loops(gb_all[l], p[l])
        np.testing.assert_allclose(grads[l].numpy(), want, rtol=1e-5, atol=1e-7)


def test_rescale_pair_keeps_the_pairs_partition_function():
    g = torch.Generator().manual_seed(0)
    old = torch.randn(5, 7, generator=g, dtype=torch.float64)
    new = old + torch.randn(5, 7, generator=g, dtype=torch.float64)
    pair = torch.stack([torch.randperm(7, generator=g)[:2] for _ in range(5)])
    out = rescale_pair(new, old, pair)
    np.testing.assert_allclose(out.gather(1, pair).logsumexp(-1), old.gather(1, pair).logsumexp(-1), atol=1e-12)
    np.testing.assert_allclose((out.gather(1, pair)[:, 0] - out.gather(1, pair)[:, 1]).numpy(),
                               (new.gather(1, pair)[:, 0] - new.gather(1, pair)[:, 1]).numpy(), atol=1e-12)
    grad = two_mode_alpha_grad(torch.randn(5, 7, generator=g, dtype=torch.float64), old, pair)
    off_pair = torch.ones(5, 7, dtype=torch.bool).scatter(1, pair, False)
    assert (grad[off_pair] == 0).all()


# -- A2: mode two ---------------------------------------------------------------------
def test_two_mode_leaves_unsampled_probabilities_unchanged(space, lut):
    # without a latency term only the BinaryConnect gradient moves α, and it touches only the pair
    s = _fitted(space, lut, mode="two", reg_loss="add#linear", reg_lambda=0.0, arch_lr=0.05)
    x, y = s.task_.x_arch[:4], s.task_.y_arch[:4]
    moved = 0
    for _ in range(12):
        before = lut.masked_softmax(torch.stack(list(s.rows_)).detach()).numpy()
        info = s.arch_step(x, y)
        after = lut.masked_softmax(torch.stack(list(s.rows_)).detach()).numpy()
        for l in range(space.num_layers):
            others = np.setdiff1d(np.flatnonzero(space.mask[l]), info["pair"][l])
            np.testing.assert_allclose(after[l, others], before[l, others], rtol=0, atol=1e-6)
            if info["updated"][l]:
                moved += int(np.abs(after[l, info["pair"][l]] - before[l, info["pair"][l]]).max() > 1e-6)
            else:
                np.testing.assert_array_equal(after[l], before[l])
    assert moved > 0  # the pairs did move


# -- A3: E -------------------------------------------------------------------------------
def test_expected_latency_is_the_tables_expected_and_the_lut_sum_at_one_hot(space, lut):
    g = torch.Generator().manual_seed(2)
    alpha = torch.randn(space.num_layers, space.max_choices, generator=g, dtype=torch.float64)
    e = expected_latency(lut, alpha)
    p = lut.masked_softmax(alpha)
    assert float(e) == float(lut.expected(p))
    by_hand = (p.numpy() * lut.values).sum() + lut.constant_ms
    assert float(e) == pytest.approx(by_hand, rel=1e-12)
    for arch in space.sample(3, seed=4):
        idx = space.indices(arch)
        one_hot = torch.full((space.num_layers, space.max_choices), -1e4, dtype=torch.float64)
        one_hot[np.arange(space.num_layers), idx] = 0.0  # softmax is exactly one-hot in float64
        assert float(expected_latency(lut, one_hot)) == lut.arch_latency(arch)
    s = _fitted(space, lut)
    assert float(s.expected_latency()) == float(lut.expected(lut.masked_softmax(s.alpha_)))


# -- B: direction of each latency loss on the stand-in ------------------------------------
def _derived_latency(space, lut, seed: int, strength: float = 1.0, noise: float = 0.5, **kw) -> float:
    task = StandInTask(space, seed=seed, strength=strength, noise=noise, quality="linear", steps_per_epoch=40)
    s = ProxylessNAS(**kw).fit(task, space, lut, target_ms=80.0, budget=Budget(epochs=20), seed=seed)
    return s.search().latency_ms


def test_b1_derived_latency_is_non_increasing_in_lambda(space, lut):
    # α lr raised from 1e-3: 20 short epochs give ≈120 α steps instead of the paper's ≈115 000
    lats = [_derived_latency(space, lut, 0, reg_loss="add#linear", reg_lambda=v, arch_lr=0.05) for v in (0.0, 1.0, 3.0)]
    assert lats[0] >= lats[1] >= lats[2]
    assert lats[0] >= 1.5 * lats[2]


def test_b2_derived_latency_is_non_increasing_in_beta(space, lut):
    # mul#log scales the latency term by the CE: a weak task pull (small s, CE not ≈ 0) lets it act
    lats = [_derived_latency(space, lut, 0, strength=0.05, noise=0.02, reg_loss="mul#log", reg_beta=v, arch_lr=0.05)
            for v in (0.0, 0.3, 1.2)]
    assert lats[0] >= lats[1] >= lats[2]
    assert lats[2] < lats[0]


def test_b3_reinforce_reward_rises_and_the_latency_factor_lowers_latency(space, lut):
    task = StandInTask(space, seed=0, strength=1.0, noise=0.5, quality="linear", steps_per_epoch=40)
    kw = {"mode": "reinforce", "arch_lr": 0.05, "rl_update_every": 2}
    s = ProxylessNAS(**kw).fit(task, space, lut, target_ms=80.0, budget=Budget(epochs=20), seed=0)
    r = s.rewards_
    k = max(1, len(r) // 10)
    assert r[-k:].mean() > r[:k].mean()
    plain = ProxylessNAS(rl_tradeoff_ratio=0.0, **kw).fit(task, space, lut, target_ms=80.0,
                                                           budget=Budget(epochs=20), seed=0)
    assert s.search().latency_ms < plain.search().latency_ms
