"""What every latency model shares: the space's ``[L, K]`` view and input checks.

A latency model is deliberately *not* an ``nn.Module``: a searcher may hold it
inside its supernet, and its frozen tables or predictor weights must not show
up in the supernet's ``parameters()`` or ``state_dict()``. Its tensors follow
the dtype and device of the weights it is given (cached per dtype/device).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import torch

from hwprof.errors import SpaceError
from hwprof.latency.weights import gumbel_softmax, masked_softmax

if TYPE_CHECKING:
    from hwprof.spaces import Arch, Space


#: How far below 0 a weight may be (straight-through estimators can leave round-off of this size).
WEIGHT_TOL = 1e-6


class LatencyModel:
    """Base class: expected latency of architecture weights, latency of discrete architectures.

    Attributes
    ----------
    space : Space or None
        The space whose ``[L, K]`` view the model reads (None for a model
        built from bare arrays).
    mask : ndarray of bool ``[L, K]``
        Legal candidates per layer.
    strict : bool
        When True (default), :meth:`expected` raises if weights are non-zero
        on an illegal column; when False such weights are ignored (priced at
        0 ms by a table) — a silent bias, so only for callers that mask
        themselves. The check reads one boolean back from the weights'
        device per call (a synchronisation on a GPU).
    """

    space: Space | None
    mask: np.ndarray
    strict: bool

    def __init__(self, mask: np.ndarray, space: Space | None = None, strict: bool = True):
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise SpaceError(f"mask must be bool [L, K], got shape {mask.shape}")
        if space is not None and mask.shape != (space.num_layers, space.max_choices):
            raise SpaceError(
                f"the table is {mask.shape[0]}x{mask.shape[1]} but space {space.name} is "
                f"{space.num_layers}x{space.max_choices} [L, K]; build the table for this space"
            )
        self.mask = mask
        self.space = space
        self.strict = strict
        self._mask_flat = np.ascontiguousarray(mask.reshape(-1))
        self._all_legal = bool(mask.all())
        self._shape = torch.Size(mask.shape)
        self._illegal_cache: dict[tuple, torch.Tensor] = {}

    # -- shape -------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """``L``."""
        return self.mask.shape[0]

    @property
    def max_choices(self) -> int:
        """``K``."""
        return self.mask.shape[1]

    # -- weights helpers ---------------------------------------------------------
    def masked_softmax(self, alpha: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """Softmax of logits ``[..., L, K]`` over each layer's legal candidates (see :func:`masked_softmax`)."""
        return masked_softmax(alpha, self.mask, tau)

    def gumbel_softmax(
        self, alpha: torch.Tensor, tau: float = 1.0, hard: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Gumbel-softmax sample ``[..., L, K]`` over legal candidates (see :func:`gumbel_softmax`)."""
        return gumbel_softmax(alpha, self.mask, tau, hard, generator)

    def __call__(self, weights: torch.Tensor) -> torch.Tensor:
        return self.expected(weights)

    def expected(self, weights: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, archs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def arch_latency(self, arch: Arch | str) -> float:
        """Latency (ms) of one architecture given as an :class:`Arch` or its text form."""
        return float(self.score([arch])[0])

    # -- checks ------------------------------------------------------------------
    def _check_weights(self, weights: torch.Tensor) -> None:
        # runs on every expected() call: one fused check and one read-back when all is well
        if not isinstance(weights, torch.Tensor):
            raise TypeError(f"weights must be a torch.Tensor [..., L, K], got {type(weights).__name__}")
        if weights.dim() not in (2, 3) or weights.shape[-2:] != self._shape:
            raise SpaceError(
                f"weights have shape {tuple(weights.shape)}; expected [L, K] or [B, L, K] with "
                f"[L, K] = {list(self.mask.shape)}"
            )
        w = weights.detach()
        # weights are probabilities or indicators: finite and >= 0 (a tolerance for straight-through round-off)
        wrong = (~(w >= -WEIGHT_TOL) | torch.isinf(w)).any()
        if self.strict and not self._all_legal:
            wrong = wrong | (torch.nan_to_num(w) * self._illegal_like(weights)).any()
        if not bool(wrong):  # the one read-back per call
            return
        arr = w.reshape(-1, *self.mask.shape).cpu().numpy()
        if not np.isfinite(arr).all() or (arr < -WEIGHT_TOL).any():
            _, layer, col = np.argwhere(~np.isfinite(arr) | (arr < -WEIGHT_TOL))[0]
            value = arr.reshape(-1, *self.mask.shape)[:, layer, col]
            value = value[~np.isfinite(value) | (value < -WEIGHT_TOL)][0]
            raise SpaceError(
                f"weights must be finite and non-negative (probabilities or indicators); layer {layer}, "
                f"column {col} holds {float(value)!r}. Build them with model.masked_softmax / model.gumbel_softmax"
            )
        _, layer, col = np.argwhere((arr != 0) & ~self.mask)[0]
        name = self.space.candidates[col] if self.space is not None else f"column {col}"
        raise SpaceError(
            f"weights put mass on {name} at layer {layer}, which the layer does not have; "
            "build weights with model.masked_softmax / model.gumbel_softmax (or mask the logits), "
            "or construct the model with strict=False to ignore illegal columns"
        )

    def _illegal_like(self, weights: torch.Tensor) -> torch.Tensor:
        key = (weights.dtype, weights.device)
        t = self._illegal_cache.get(key)
        if t is None:
            t = torch.as_tensor(~self.mask, dtype=weights.dtype, device=weights.device)
            self._illegal_cache[key] = t
        return t

    def indices(self, archs: np.ndarray | Sequence[Arch | str] | Iterable, check_mask: bool = True) -> np.ndarray:
        """Candidate indices ``int64 [N, L]`` of ``archs``, checked against the mask.

        ``archs`` is an integer array ``[N, L]`` (or ``[L]`` for one), or a
        sequence of :class:`Arch` / architecture strings (needs ``space``).

        Raises
        ------
        SpaceError
            For a wrong shape, an index out of range or an illegal candidate.
        """
        if isinstance(archs, torch.Tensor):
            idx = archs.detach().cpu().numpy()
        elif isinstance(archs, np.ndarray):
            idx = archs
        else:
            items = [archs] if isinstance(archs, str) or hasattr(archs, "choices") else list(archs)
            if items and (isinstance(items[0], str) or hasattr(items[0], "choices")):
                if self.space is None:
                    raise SpaceError("this latency model has no space; pass candidate indices int [N, L]")
                self._check_resolution(items)
                idx = np.stack([self.space.indices(a) for a in items])
            else:
                idx = np.asarray(items, dtype=np.int64) if items else np.zeros((0, self.num_layers), np.int64)
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise SpaceError(f"architecture indices must be integers, got dtype {idx.dtype}")
        if idx.ndim == 1:
            idx = idx[None, :]
        if idx.ndim != 2 or idx.shape[1] != self.num_layers:
            raise SpaceError(f"architecture indices have shape {idx.shape}; expected [N, {self.num_layers}]")
        idx = idx.astype(np.int64, copy=False)
        # one pass: negative int64 values are huge as uint64
        if idx.size and int(idx.view(np.uint64).max()) >= self.max_choices:
            raise SpaceError(f"candidate index out of range 0..{self.max_choices - 1}")
        if check_mask and not self._all_legal:
            self._check_legal(idx)
        return idx

    def _check_legal(self, idx: np.ndarray) -> None:
        """Raise, naming the first offender, unless every candidate of ``idx [N, L]`` is legal."""
        ok = self._mask_flat[idx + np.arange(self.num_layers, dtype=np.int64) * self.max_choices]
        if not ok.all():
            row, layer = np.argwhere(~ok)[0]
            col = idx[row, layer]
            name = self.space.candidates[col] if self.space is not None else f"column {col}"
            raise SpaceError(f"architecture {row} uses {name} at layer {layer}, which the layer does not have")

    def _check_resolution(self, archs: Sequence) -> None:
        """Hook for models built for one resolution; the base model has none."""


__all__ = ["LatencyModel"]
