"""Single-Path NAS superkernel runtime model (Stamoulis et al., 2019).

Each searchable layer is one 5×5 MBConv superkernel with expansion 6. Three
decisions, each a threshold on a weight-group norm, pick the candidate:

- ``d5 = 1[‖w_5x5 \\ 3x3‖ − t_5x5 ≥ 0]``: kernel 5 (else 3);
- ``d100 = 1[‖w_100c‖ − t_100c ≥ 0]``: expansion 6 (else 3, the first 50 % of channels);
- ``d50 = 1[‖w_50c‖ − t_50c ≥ 0]``: keep the layer (else skip). Only layers
  that may be skipped have it; the first layer of each stage always has
  ``d50 = 1`` (``superkernel.py`` sets it to 1.0 unless the stride is 1 and
  the layer is a repeat).

The layer runtime, written as in the released ``superkernel.py``::

    R_e = d50 · (R[k5,e3] + d100 · (R[k5,e6] − R[k5,e3]))
    R   = R_e · r + R_e · (1 − r) · d5,      r = R[k3,e6] / R[k5,e6]

and the network runtime is ``constant + Σ_layers R`` (the released code
starts from 19.5999 ms for stem, head, classifier and blocks 0 and 21 of the
Pixel 1 model, and never reads rows 0 and 21). Note the model prices
``k3_e3`` as ``R[k5,e3] · r``, not as its own measured column: that is the
paper's approximation, reproduced here as published.

Indicators are straight-through (:func:`~hwprof.latency.weights.ste_indicator`):
forward the exact 0/1 decision, backward ``sigmoid'(x)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hwprof.errors import ConfigError, SpaceError
from hwprof.latency.base import LatencyModel
from hwprof.latency.weights import ste_indicator
from hwprof.tables.formats.spnas_json import SPNAS_CONSTANT_MS

if TYPE_CHECKING:
    from hwprof.spaces import Space

#: Column order of the per-layer runtimes (the released JSON's "0".."3").
COLUMNS = ("k3_e3", "k3_e6", "k5_e3", "k5_e6")
#: Stem, head, classifier and fixed blocks 0 and 21 of the released Pixel 1 model, ms.
PIXEL1_CONSTANT_MS = SPNAS_CONSTANT_MS


class SinglePathRuntime(LatencyModel):
    """Differentiable Single-Path NAS runtime from per-layer decision inputs.

    Parameters
    ----------
    runtimes_ms : array ``[L, 4]``
        Per-layer runtime of k3_e3, k3_e6, k5_e3, k5_e6 in ms (k3_e3 is kept
        for reference; the formula does not read it).
    droppable : bool array ``[L]``
        Layers that may be skipped (have a ``d50`` decision).
    constant_ms : float
        Runtime of everything not searched.
    space : Space, optional
        A space whose candidates are k3_e3, k3_e6, k5_e3, k5_e6[, skip]
        (``spnas``), for architecture strings.
    """

    def __init__(
        self,
        runtimes_ms: np.ndarray,
        droppable: np.ndarray,
        constant_ms: float = PIXEL1_CONSTANT_MS,
        space: Space | None = None,
    ):
        r = np.array(runtimes_ms, dtype=np.float64)
        drop = np.asarray(droppable, dtype=bool)
        if r.ndim != 2 or r.shape[1] != 4:
            raise ConfigError(f"runtimes_ms must be [L, 4] (k3_e3, k3_e6, k5_e3, k5_e6), got {r.shape}")
        if drop.shape != (r.shape[0],):
            raise ConfigError(f"droppable must be bool [{r.shape[0]}], got shape {drop.shape}")
        if not (np.isfinite(r).all() and (r[:, 3] > 0).all()):
            raise ConfigError("runtimes must be finite and R[k5,e6] > 0 (it divides r = R[k3,e6]/R[k5,e6])")
        mask = np.ones((r.shape[0], 5), dtype=bool)
        mask[:, 4] = drop
        if space is not None and space.candidates[:4] != COLUMNS:
            raise SpaceError(f"space {space.name} does not have the Single-Path candidates {COLUMNS}")
        super().__init__(mask if space is None else space.mask, space)
        if space is not None and not np.array_equal(space.mask[:, 4], drop):
            raise SpaceError(f"droppable layers disagree with the skip column of space {space.name}")
        self.runtimes_ms = r
        self.droppable = drop
        self.constant_ms = float(constant_ms)
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}

    @classmethod
    def from_json(cls, path: str | Path, space: Space | None = None) -> SinglePathRuntime:
        """Load the released runtime model (``pixel1_runtime_model.json``) through the ``spnas-json`` reader."""
        from hwprof.spaces import space as get_space
        from hwprof.tables.formats.spnas_json import import_spnas_json

        return cls.from_table(import_spnas_json(path), space or get_space("spnas"))

    @classmethod
    def from_table(cls, table: Any, space: Space, resolution: int | None = None) -> SinglePathRuntime:
        """From a ``LatencyTable`` over the ``spnas`` space (its first four columns)."""
        values, mask, constant_ms = table.matrix(space, resolution=resolution)
        return cls(np.asarray(values)[:, :4], np.asarray(mask)[:, 4], constant_ms, space)

    def _tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = (like.dtype, like.device)
        t = self._cache.get(key)
        if t is None:
            r = torch.as_tensor(self.runtimes_ms, dtype=like.dtype, device=like.device)
            drop = torch.as_tensor(self.droppable, device=like.device)
            t = (r[:, 2], r[:, 3], r[:, 1] / r[:, 3], drop)
            self._cache[key] = t
        return t

    def layer_runtime_from_indicators(
        self, d5: torch.Tensor, d50: torch.Tensor, d100: torch.Tensor
    ) -> torch.Tensor:
        """Per-layer runtime ``[..., L]`` ms from indicator values (0/1 or relaxed in [0, 1])."""
        r53, r56, ratio, drop = self._tensors(d5)
        d50 = torch.where(drop, d50, torch.ones_like(d50))
        r_e = d50 * (r53 + d100 * (r56 - r53))
        return r_e * ratio + r_e * (1 - ratio) * d5

    def runtime(self, x5: torch.Tensor, x50: torch.Tensor, x100: torch.Tensor) -> torch.Tensor:
        """Network runtime in ms from decision inputs ``x = norm − threshold``, each ``[L]`` or ``[B, L]``.

        ``x50`` of layers that cannot be skipped is ignored (``d50 = 1``).
        Returns ``[]`` or ``[B]``.
        """
        for name, x in (("x5", x5), ("x50", x50), ("x100", x100)):
            if not isinstance(x, torch.Tensor) or x.shape[-1] != self.num_layers:
                raise SpaceError(f"{name} must be a tensor [..., {self.num_layers}] (one entry per searchable layer)")
        per_layer = self.layer_runtime_from_indicators(ste_indicator(x5), ste_indicator(x50), ste_indicator(x100))
        return per_layer.cumsum(-1)[..., -1] + self.constant_ms

    __call__ = runtime  # type: ignore[assignment]

    def expected(self, weights: torch.Tensor) -> torch.Tensor:
        raise ConfigError(
            "the Single-Path runtime takes decision inputs, not [L, K] weights: call runtime(x5, x50, x100)"
        )

    # -- numpy -------------------------------------------------------------------
    def indicators(self, archs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decisions ``(d5, d50, d100)``, each float ``[N, L]``, of discrete architectures."""
        idx = self.indices(archs)
        d5 = np.isin(idx, (2, 3)).astype(np.float64)
        d100 = np.isin(idx, (1, 3)).astype(np.float64)
        d50 = (idx != 4).astype(np.float64)
        return d5, d50, d100

    def score(self, archs) -> np.ndarray:
        """Runtime of discrete architectures by the same formula, float64 ``[N]`` ms."""
        d5, d50, d100 = self.indicators(archs)
        r = self.runtimes_ms
        d50 = np.where(self.droppable, d50, 1.0)
        ratio = r[:, 1] / r[:, 3]
        r_e = d50 * (r[:, 2] + d100 * (r[:, 3] - r[:, 2]))
        per_layer = r_e * ratio + r_e * (1 - ratio) * d5
        return np.cumsum(per_layer, axis=1)[:, -1] + self.constant_ms


__all__ = ["COLUMNS", "PIXEL1_CONSTANT_MS", "SinglePathRuntime"]
