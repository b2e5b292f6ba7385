"""Latency of a block at any mid-channel count, from measurements on a grid (TF-NAS elasticity).

TF-NAS shrinks the mid (expanded) channels of each block during search and
reads the latency of the resulting width from a table measured at every
integer mid count. Measured tables are noisy: the released TF-NAS tables hold
negative latencies at small widths (a linear extrapolation gone below zero)
and flat steps. :class:`WidthCurve` makes such artefacts impossible by
construction:

1. isotonic regression (non-decreasing in mid, clipped at 0 ms) of the grid
   measurements, so the fitted points are monotone and non-negative;
2. a monotone piecewise-cubic Hermite interpolant (PCHIP) through them, which
   never overshoots monotone data, so the curve stays between its
   neighbouring grid values — non-decreasing and non-negative everywhere.

The curve evaluates at integer or real mid counts in numpy, and in torch with
the same cubic coefficients, differentiable in the mid count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hwprof.errors import ConfigError, MissingEntryError


@dataclass(frozen=True, eq=False)
class WidthCurve:
    """Monotone non-negative latency (ms) as a function of mid channels.

    Build with :meth:`fit`. Attributes are the breakpoints and the PCHIP
    coefficients in the local variable ``t = mid - breaks[i]``:
    ``ms = ((c[0]·t + c[1])·t + c[2])·t + c[3]`` on ``[breaks[i], breaks[i+1]]``.

    Attributes
    ----------
    breaks : ndarray float64 ``[n]``
        Grid mid-channel counts, strictly increasing.
    fitted_ms : ndarray float64 ``[n]``
        Isotonic (non-decreasing, ≥ 0) latencies at the breaks.
    coeffs : ndarray float64 ``[4, n - 1]``
        Cubic coefficients per interval.
    """

    breaks: np.ndarray
    fitted_ms: np.ndarray
    coeffs: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def fit(cls, mids, ms) -> WidthCurve:
        """Fit the curve to measurements ``ms`` (ms) at mid-channel counts ``mids``.

        Repeated mids are averaged (by the isotonic fit). At least two
        distinct mids are needed.

        Raises
        ------
        ConfigError
            For fewer than two distinct mids, mismatched lengths or non-finite values.
        """
        from scipy.interpolate import PchipInterpolator
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(mids, dtype=np.float64).reshape(-1)
        y = np.asarray(ms, dtype=np.float64).reshape(-1)
        if x.shape != y.shape:
            raise ConfigError(f"{x.size} mid counts but {y.size} latencies; pass one latency per mid count")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ConfigError("width sweep has non-finite mids or latencies; re-measure those entries")
        breaks = np.unique(x)
        if breaks.size < 2:
            raise ConfigError("a width curve needs measurements at two or more distinct mid channel counts")
        iso = IsotonicRegression(increasing=True, y_min=0.0).fit(x, y)
        fitted = np.maximum.accumulate(np.clip(iso.predict(breaks), 0.0, None))
        pchip = PchipInterpolator(breaks, fitted, extrapolate=False)
        return cls(breaks, fitted, np.ascontiguousarray(pchip.c))

    @property
    def lo(self) -> float:
        """Smallest mid count covered."""
        return float(self.breaks[0])

    @property
    def hi(self) -> float:
        """Largest mid count covered."""
        return float(self.breaks[-1])

    def _range_error(self, bad: float) -> MissingEntryError:
        return MissingEntryError(
            f"mid channels {bad:g} outside the measured range [{self.lo:g}, {self.hi:g}]; "
            "measure a width sweep that covers it (the curve never extrapolates)"
        )

    def __call__(self, mid):
        """Latency in ms at ``mid`` channels: numpy in, numpy out; tensor in, tensor out (differentiable)."""
        if isinstance(mid, torch.Tensor):
            return self.torch(mid)
        m = np.asarray(mid, dtype=np.float64)
        if m.size and (m.min() < self.lo or m.max() > self.hi):
            raise self._range_error(float(m.min() if m.min() < self.lo else m.max()))
        i = np.clip(np.searchsorted(self.breaks, m, side="right") - 1, 0, self.breaks.size - 2)
        t = m - self.breaks[i]
        c = self.coeffs
        out = ((c[0, i] * t + c[1, i]) * t + c[2, i]) * t + c[3, i]
        return out if out.ndim else float(out)

    def torch(self, mid: torch.Tensor) -> torch.Tensor:
        """Latency in ms at real-valued ``mid`` (any shape), differentiable in ``mid``."""
        key = (mid.dtype, mid.device)
        cached = self._cache.get(key)
        if cached is None:
            cached = (
                torch.as_tensor(self.breaks, dtype=mid.dtype, device=mid.device),
                torch.as_tensor(self.coeffs, dtype=mid.dtype, device=mid.device),
            )
            self._cache[key] = cached
        breaks, c = cached
        d = mid.detach()
        if d.numel() and (bool((d < self.lo).any()) or bool((d > self.hi).any())):
            raise self._range_error(float(d.min() if bool((d < self.lo).any()) else d.max()))
        i = (torch.searchsorted(breaks, d.contiguous(), right=True) - 1).clamp(0, breaks.numel() - 2)
        t = mid - breaks[i]
        return ((c[0, i] * t + c[1, i]) * t + c[2, i]) * t + c[3, i]




class WidthGrid:
    """Many :class:`WidthCurve` evaluated together: one curve per ``(layer, candidate)`` cell of ``[L, K]``.

    Cells without a curve (``skip``, illegal candidates, fixed-width
    candidates) keep a fixed latency from ``fixed_ms``. Evaluation is one
    batched ``searchsorted`` over all cells, differentiable in the mid counts.

    Parameters
    ----------
    curves : dict ``(layer, column) -> WidthCurve``
    fixed_ms : array ``[L, K]``
        Latency (ms) of the cells without a curve.
    """

    def __init__(self, curves: dict[tuple[int, int], WidthCurve], fixed_ms: np.ndarray):
        fixed = np.asarray(fixed_ms, dtype=np.float64)
        self.shape = fixed.shape
        n_cells = fixed.size
        width = max((c.breaks.size for c in curves.values()), default=2)
        breaks = np.full((n_cells, width), np.inf)
        coeffs = np.zeros((n_cells, 4, width - 1))
        has = np.zeros(n_cells, dtype=bool)
        count = np.full(n_cells, 2, dtype=np.int64)
        lo = np.full(n_cells, -np.inf)
        hi = np.full(n_cells, np.inf)
        for (layer, col), curve in curves.items():
            cell = layer * self.shape[1] + col
            n = curve.breaks.size
            breaks[cell, :n] = curve.breaks
            coeffs[cell, :, : n - 1] = curve.coeffs
            has[cell], count[cell], lo[cell], hi[cell] = True, n, curve.lo, curve.hi
        breaks[~has, 0] = 0.0  # cells without a curve evaluate to their fixed latency (c[3] = fixed)
        coeffs[~has, 3, 0] = fixed.reshape(-1)[~has]
        self._np = (breaks, coeffs, has, count, lo, hi)
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def torch(self, mids: torch.Tensor) -> torch.Tensor:
        """Latency ``[..., L, K]`` ms at mid counts ``mids [..., L, K]`` (ignored where a cell has no curve).

        Raises
        ------
        MissingEntryError
            For a mid count outside its cell's measured range.
        """
        if tuple(mids.shape[-2:]) != self.shape:
            raise ConfigError(f"mids have shape {tuple(mids.shape)}; expected [..., {self.shape[0]}, {self.shape[1]}]")
        key = (mids.dtype, mids.device)
        t = self._cache.get(key)
        if t is None:
            t = tuple(torch.as_tensor(a, device=mids.device, dtype=None if a.dtype.kind in "bi" else mids.dtype)
                      for a in self._np)
            self._cache[key] = t
        breaks, coeffs, has, count, lo, hi = t
        lead = mids.shape[:-2]
        m = mids.reshape(-1, breaks.shape[0]).T  # [cells, batch]
        m = torch.where(has[:, None], m, torch.zeros_like(m))
        d = m.detach()
        out_of_range = (d < lo[:, None]) | (d > hi[:, None])
        if bool(out_of_range.any()):
            cell = int(out_of_range.any(1).nonzero()[0])
            layer, col = divmod(cell, self.shape[1])
            bad = float(d[cell][out_of_range[cell]][0])
            raise MissingEntryError(
                f"mid channels {bad:g} at layer {layer}, column {col} outside the measured range "
                f"[{float(lo[cell]):g}, {float(hi[cell]):g}]; measure a width sweep that covers it"
            )
        i = torch.searchsorted(breaks, d.contiguous(), right=True) - 1
        i = torch.minimum(i.clamp_min(0), (count - 2)[:, None])
        t_local = m - breaks.gather(1, i)
        c = [coeffs[:, j, :].gather(1, i) for j in range(4)]
        ms = ((c[0] * t_local + c[1]) * t_local + c[2]) * t_local + c[3]
        return ms.T.reshape(*lead, *self.shape)


__all__ = ["WidthCurve", "WidthGrid"]
