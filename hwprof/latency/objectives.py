"""Latency objectives of hardware-aware NAS, in the forms the papers and their code use.

Pure functions of a latency ``E`` (ms; a torch tensor or a float) and a target
``T`` (ms). They work on tensors (differentiable, any shape, broadcasting) and
on Python floats alike, and take their coefficients as keyword arguments.

========================  ======================================  =====================
function                  value                                    used by
========================  ======================================  =====================
:func:`log_penalty`       ``λ · log E``                            Single-Path NAS
:func:`mul_log`           ``α · CE · (log E / log T)^β``           ProxylessNAS ``mul#log``
:func:`add_linear`        ``λ · (E − T) / T``                      ProxylessNAS ``add#linear``
:func:`abs_rel`           ``λ · |E / T − 1|``                      TF-NAS
:func:`hinge_rel`         ``λ · max(E / T − 1, 0)``                TF-NAS
:func:`lagrangian`        ``λ · (E / T − 1)``                      LightNAS
:func:`update_lambda`     ``λ + η · (E / T − 1)``, truncated       LightNAS
:func:`reinforce_reward`  ``ACC · (E / T)^w``                      MnasNet, ProxylessNAS (RL)
========================  ======================================  =====================

The additive ones return only the latency term: ``loss = ce + add_linear(e,
target_ms=80.0, lam=0.1)``. :func:`mul_log` multiplies the cross-entropy, so it
takes ``ce`` and returns the whole loss, as ProxylessNAS does.
"""

from __future__ import annotations

import math
from typing import Union

import torch

Number = Union[float, torch.Tensor]


def _log(x: Number) -> Number:
    return torch.log(x) if isinstance(x, torch.Tensor) else math.log(x)


def _check_target(target_ms: float) -> None:
    if not (isinstance(target_ms, (int, float)) and target_ms > 0 and math.isfinite(target_ms)):
        raise ValueError(f"target_ms must be a positive finite number of ms, got {target_ms!r}")


def log_penalty(latency_ms: Number, *, lam: float) -> Number:
    """``λ · log E`` — the Single-Path NAS runtime loss.

    The paper's objective is ``CE + λ · log R`` with ``R`` the superkernel
    runtime (ms). Its released code scales the term by a further 1e3
    (``runtime_lambda * 1e3 * log(R)``); pass ``lam=0.1 * 1e3`` to reproduce it.
    """
    return lam * _log(latency_ms)


def mul_log(ce: Number, latency_ms: Number, *, target_ms: float, alpha: float = 1.0, beta: float = 0.6) -> Number:
    """``α · CE · (log E / log T)^β`` — ProxylessNAS ``mul#log`` loss (whole loss, CE included).

    The defaults ``alpha=1``, ``beta=0.6`` are the fallbacks of the released
    ``nas_manager.py`` (used only when no coefficients are passed); the search
    script ``imagenet_arch_search.py`` passes ``alpha=0.2``, ``beta=0.3``, the
    values the ProxylessNAS searcher uses. Needs ``E > 1`` ms and ``T > 1`` ms
    so the log ratio is positive.
    """
    _check_target(target_ms)
    if target_ms <= 1.0:
        raise ValueError(f"mul_log divides by log(target_ms); target_ms must be > 1 ms, got {target_ms}")
    return alpha * ce * (_log(latency_ms) / math.log(target_ms)) ** beta


def add_linear(latency_ms: Number, *, target_ms: float, lam: float = 0.2, ce: Number | None = None) -> Number:
    """``λ · (E − T) / T`` — ProxylessNAS ``add#linear`` latency term.

    Returns only the latency term (``loss = ce + add_linear(...)``) unless
    ``ce`` is given, then ``ce + λ(E − T)/T``. The default ``lam=0.2`` is the
    fallback of the released ``nas_manager.py``; the search script
    ``imagenet_arch_search.py`` passes ``lam=0.1``, the value the ProxylessNAS
    searcher uses.
    """
    _check_target(target_ms)
    term = lam * (latency_ms - target_ms) / target_ms
    return term if ce is None else ce + term


def abs_rel(latency_ms: Number, *, target_ms: float, lam: float) -> Number:
    """``λ · |E / T − 1|`` — TF-NAS objective pulling latency to the target from both sides."""
    _check_target(target_ms)
    r = latency_ms / target_ms - 1
    return lam * (r.abs() if isinstance(r, torch.Tensor) else abs(r))


def hinge_rel(latency_ms: Number, *, target_ms: float, lam: float) -> Number:
    """``λ · max(E / T − 1, 0)`` — TF-NAS one-sided objective (no penalty below the target)."""
    _check_target(target_ms)
    r = latency_ms / target_ms - 1
    return lam * (r.clamp_min(0) if isinstance(r, torch.Tensor) else max(r, 0.0))


def lagrangian(latency_ms: Number, *, target_ms: float, lam: Number) -> Number:
    """``λ · (E / T − 1)`` — LightNAS latency term; ``λ`` follows :func:`update_lambda`."""
    _check_target(target_ms)
    return lam * (latency_ms / target_ms - 1)


def update_lambda(lam: float, latency_ms: float, *, target_ms: float, lr: float = 5e-4, truncate: bool = True) -> float:
    """One LightNAS ascent step on the multiplier: ``λ ← λ + η · (LAT / T − 1)``.

    ``latency_ms`` is the latency of the current *discrete* architecture
    (argmax of the weights). With ``truncate`` (the released default), a
    multiplier whose sign disagrees with the constraint is reset to 0 after
    the step: ``λ < 0`` while ``LAT > T``, or ``λ > 0`` while ``LAT < T``.
    So λ pushes latency down only while it is over the target, and up only
    while it is under. Default ``lr=5e-4`` as released (``tradeoff_learning_rate``).

    Returns
    -------
    float
        The new λ.
    """
    _check_target(target_ms)
    lat = float(latency_ms)
    new = float(lam) + lr * (lat / target_ms - 1)
    if truncate and ((lat > target_ms and new < 0) or (lat < target_ms and new > 0)):
        new = 0.0
    return new


def reinforce_reward(
    accuracy: Number, latency_ms: Number, *, target_ms: float, w: float = -0.07, w_below: float | None = None
) -> Number:
    """``ACC · (LAT / T)^w`` — MnasNet / ProxylessNAS REINFORCE reward.

    MnasNet uses ``w = α`` when ``LAT ≤ T`` and ``w = β`` otherwise, with
    ``α = β = −0.07`` (soft constraint; ``w_below=0, w=-1`` is its hard
    variant). ProxylessNAS's RL reward is ``ACC · (T / LAT)^0.1``, i.e.
    ``w = −0.1``. ``w_below`` defaults to ``w``.
    """
    _check_target(target_ms)
    ratio = latency_ms / target_ms
    if w_below is None or w_below == w:
        return accuracy * ratio**w
    if isinstance(ratio, torch.Tensor):
        exponent = torch.where(ratio <= 1, torch.full_like(ratio, w_below), torch.full_like(ratio, w))
        return accuracy * ratio**exponent
    return accuracy * ratio ** (w_below if ratio <= 1 else w)


__all__ = [
    "abs_rel",
    "add_linear",
    "hinge_rel",
    "lagrangian",
    "log_penalty",
    "mul_log",
    "reinforce_reward",
    "update_lambda",
]
