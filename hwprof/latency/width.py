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


__all__ = ["WidthCurve"]
