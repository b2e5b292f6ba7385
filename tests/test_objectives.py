"""Latency objectives: paper forms on floats and tensors, gradients, the LightNAS λ rule."""

from __future__ import annotations

import math

import pytest
import torch

from hwprof import objectives as obj

E, T = 92.0, 80.0


def test_values_match_the_paper_forms_on_floats():
    assert obj.log_penalty(E, lam=0.1) == pytest.approx(0.1 * math.log(E))
    assert obj.mul_log(2.3, E, target_ms=T) == pytest.approx(2.3 * (math.log(E) / math.log(T)) ** 0.6)
    assert obj.mul_log(2.3, E, target_ms=T, alpha=0.5, beta=2.0) == pytest.approx(
        0.5 * 2.3 * (math.log(E) / math.log(T)) ** 2
    )
    assert obj.add_linear(E, target_ms=T, lam=0.1) == pytest.approx(0.1 * (E - T) / T)
    assert obj.add_linear(E, target_ms=T, lam=0.1, ce=2.3) == pytest.approx(2.3 + 0.1 * (E - T) / T)
    assert obj.add_linear(E, target_ms=T) == pytest.approx(0.2 * (E - T) / T)  # ProxylessNAS default λ
    assert obj.abs_rel(70.0, target_ms=T, lam=0.5) == pytest.approx(0.5 * abs(70.0 / T - 1))
    assert obj.hinge_rel(70.0, target_ms=T, lam=0.5) == 0.0
    assert obj.hinge_rel(E, target_ms=T, lam=0.5) == pytest.approx(0.5 * (E / T - 1))
    assert obj.lagrangian(E, target_ms=T, lam=-0.3) == pytest.approx(-0.3 * (E / T - 1))
    assert obj.reinforce_reward(0.75, E, target_ms=T) == pytest.approx(0.75 * (E / T) ** -0.07)
    # ProxylessNAS RL: ACC · (T / LAT)^0.1
    assert obj.reinforce_reward(0.75, E, target_ms=T, w=-0.1) == pytest.approx(0.75 * (T / E) ** 0.1)
    # MnasNet hard constraint: no reward change below the target, ACC·(LAT/T)^-1 above
    assert obj.reinforce_reward(0.75, 60.0, target_ms=T, w=-1.0, w_below=0.0) == pytest.approx(0.75)
    assert obj.reinforce_reward(0.75, E, target_ms=T, w=-1.0, w_below=0.0) == pytest.approx(0.75 * T / E)


def test_tensor_and_float_paths_agree_and_broadcast():
    lat = torch.tensor([60.0, 80.0, 92.0, 130.0], dtype=torch.float64)
    ce = torch.tensor([2.0, 2.1, 2.2, 2.3], dtype=torch.float64)
    cases = [
        (lambda e, c: obj.log_penalty(e, lam=0.1)),
        (lambda e, c: obj.mul_log(c, e, target_ms=T)),
        (lambda e, c: obj.add_linear(e, target_ms=T, lam=0.1, ce=c)),
        (lambda e, c: obj.abs_rel(e, target_ms=T, lam=0.5)),
        (lambda e, c: obj.hinge_rel(e, target_ms=T, lam=0.5)),
        (lambda e, c: obj.lagrangian(e, target_ms=T, lam=0.4)),
        (lambda e, c: obj.reinforce_reward(c, e, target_ms=T, w=-1.0, w_below=-0.07)),
    ]
    for f in cases:
        out = f(lat, ce)
        assert isinstance(out, torch.Tensor) and out.shape == (4,)
        for i in range(4):
            assert out[i].item() == pytest.approx(f(lat[i].item(), ce[i].item()), rel=1e-12)


@pytest.mark.parametrize(
    "f",
    [
        lambda e: obj.log_penalty(e, lam=0.1),
        lambda e: obj.mul_log(torch.full_like(e, 2.2), e, target_ms=T),
        lambda e: obj.add_linear(e, target_ms=T, lam=0.1),
        lambda e: obj.abs_rel(e, target_ms=T, lam=0.5),
        lambda e: obj.hinge_rel(e, target_ms=T, lam=0.5),
        lambda e: obj.lagrangian(e, target_ms=T, lam=0.4),
        lambda e: obj.reinforce_reward(torch.full_like(e, 0.7), e, target_ms=T, w=-0.5, w_below=-0.07),
    ],
    ids=["log_penalty", "mul_log", "add_linear", "abs_rel", "hinge_rel", "lagrangian", "reinforce_reward"],
)
def test_gradcheck_every_objective(f):
    # latencies away from the kinks at E = T
    e = torch.tensor([55.0, 71.0, 93.0, 140.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (e,))


def test_gradient_signs_push_latency_toward_the_target():
    e = torch.tensor([70.0, 90.0], dtype=torch.float64, requires_grad=True)
    obj.abs_rel(e, target_ms=T, lam=1.0).sum().backward()
    assert e.grad[0] < 0 < e.grad[1]
    e.grad = None
    obj.hinge_rel(e, target_ms=T, lam=1.0).sum().backward()
    assert e.grad[0] == 0 and e.grad[1] > 0


def test_update_lambda_is_ascent_with_the_lightnas_truncation():
    # plain ascent
    assert obj.update_lambda(0.1, 88.0, target_ms=T, lr=0.01) == pytest.approx(0.1 + 0.01 * (88.0 / T - 1))
    assert obj.update_lambda(-0.1, 76.0, target_ms=T, lr=0.01) == pytest.approx(-0.1 + 0.01 * (76.0 / T - 1))
    # over the target, a negative λ is reset to 0 ...
    assert obj.update_lambda(-0.5, 88.0, target_ms=T, lr=0.01) == 0.0
    # ... under the target, a positive λ is reset to 0
    assert obj.update_lambda(0.1, 40.0, target_ms=T, lr=0.01) == 0.0
    # negative λ under the target keeps decreasing (latency may grow toward T)
    assert obj.update_lambda(-0.1, 40.0, target_ms=T, lr=0.01) == pytest.approx(-0.1 + 0.01 * (0.5 - 1))
    # without truncation it is the bare ascent
    assert obj.update_lambda(-0.5, 88.0, target_ms=T, lr=0.01, truncate=False) == pytest.approx(-0.5 + 0.001)
    # default learning rate is the released one
    assert obj.update_lambda(0.0, 2 * T, target_ms=T) == pytest.approx(5e-4)
    # a tensor latency works (LightNAS passes the predictor's output)
    assert obj.update_lambda(0.0, torch.tensor(2 * T), target_ms=T) == pytest.approx(5e-4)


def test_lambda_iteration_settles_at_the_constraint():
    # a toy latency that responds to λ: LAT(λ) = 100 − 50·λ; the multiplier rises until LAT ≈ T
    lam = 0.0
    for _ in range(4000):
        lam = obj.update_lambda(lam, 100.0 - 50.0 * lam, target_ms=T, lr=0.05)
    assert 100.0 - 50.0 * lam == pytest.approx(T, abs=0.5)


def test_bad_targets_are_rejected():
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="target_ms"):
            obj.add_linear(E, target_ms=bad, lam=0.1)
    with pytest.raises(ValueError, match="> 1 ms"):
        obj.mul_log(2.0, E, target_ms=0.5)
