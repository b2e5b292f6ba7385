"""Architecture weights that respect a space's mask, and straight-through estimators.

Every helper here works on the last two axes ``[..., L, K]`` of a tensor of
logits and a bool mask ``[L, K]`` of legal candidates (``Space.mask``).
Illegal columns get exactly zero weight, so a latency model never reads a
price for a candidate the layer does not have.

Straight-through outputs are written ``hard + (soft - soft.detach())``: the
bracket is exactly zero in floating point, so the forward value is exactly
the hard one-hot (or indicator) and a latency model fed with it equals the
discrete table sum bit for bit, while the gradient is the soft one's.
"""

from __future__ import annotations

import numpy as np
import torch

from hwprof.errors import SpaceError


def as_mask(mask: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The bool mask ``[L, K]`` as a tensor on ``like``'s device, checked against its last two axes."""
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask, dtype=torch.bool)
    m = m.to(like.device)
    if like.shape[-2:] != m.shape:
        raise SpaceError(
            f"weights have trailing shape {tuple(like.shape[-2:])}, the mask is {tuple(m.shape)} [L, K]; "
            "pass logits of shape [..., L, K] for this space"
        )
    if not bool(m.any(-1).all()):
        raise SpaceError("every layer needs at least one legal candidate; the mask has an all-False row")
    return m


def masked_softmax(alpha: torch.Tensor, mask: np.ndarray | torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Softmax over the legal candidates of each layer.

    Parameters
    ----------
    alpha : Tensor ``[..., L, K]``
        Architecture logits.
    mask : bool array ``[L, K]``
        Legal candidates (``Space.mask``).
    tau : float
        Temperature (> 0); the logits are divided by it.

    Returns
    -------
    Tensor ``[..., L, K]``
        Rows sum to one; illegal columns are exactly 0.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    m = as_mask(mask, alpha)
    return (alpha / tau).masked_fill(~m, float("-inf")).softmax(-1)


def straight_through(soft: torch.Tensor) -> torch.Tensor:
    """Hard one-hot of ``soft.argmax(-1)`` in the forward pass, ``soft``'s gradient in the backward pass."""
    index = soft.argmax(-1, keepdim=True)
    hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return hard + (soft - soft.detach())


def gumbel_softmax(
    alpha: torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    tau: float = 1.0,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gumbel-softmax sample over the legal candidates of each layer.

    ``y = softmax((alpha + g) / tau)`` with ``g ~ Gumbel(0, 1)`` i.i.d., masked
    columns excluded. With ``hard=True`` the forward value is the exact one-hot
    of the sample's argmax and the gradient is the soft sample's
    (straight-through, as LightNAS and TF-NAS use).

    Parameters
    ----------
    alpha : Tensor ``[..., L, K]``
        Architecture logits (any real values; log-probabilities work too).
    mask : bool array ``[L, K]``
        Legal candidates.
    tau : float
        Temperature (> 0).
    hard : bool
        Straight-through one-hot output.
    generator : torch.Generator, optional
        Source of the Gumbel noise, for reproducible samples.

    Returns
    -------
    Tensor ``[..., L, K]``
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    m = as_mask(mask, alpha)
    u = torch.rand(alpha.shape, dtype=alpha.dtype, device=alpha.device, generator=generator)
    tiny = torch.finfo(alpha.dtype).tiny
    e = -torch.log(u.clamp_min(tiny))  # Exp(1) sample
    g = -torch.log(e.clamp_min(tiny))
    soft = ((alpha + g) / tau).masked_fill(~m, float("-inf")).softmax(-1)
    return straight_through(soft) if hard else soft


def ste_indicator(x: torch.Tensor) -> torch.Tensor:
    """Straight-through indicator ``1[x >= 0]``: forward exact 0/1, backward ``sigmoid'(x)``.

    The Single-Path NAS superkernel decisions (``Indicator`` in its released
    ``superkernel.py``): the hard threshold is used in the forward pass, the
    derivative of the sigmoid ``σ(x)(1 − σ(x))`` in the backward pass.
    """
    soft = torch.sigmoid(x)
    return (x >= 0).to(x.dtype) + (soft - soft.detach())


__all__ = ["as_mask", "gumbel_softmax", "masked_softmax", "ste_indicator", "straight_through"]
