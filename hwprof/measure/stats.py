"""Statistics derived from raw latency samples (ms).

Nothing here is stored: records keep their raw samples and every figure is
recomputed from them, so a better estimator never needs a re-measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

#: Modified z-score above which a sample is flagged an outlier (Iglewicz & Hoaglin).
MAD_Z = 3.5


@dataclass(frozen=True)
class Summary:
    """Statistics of one set of samples; all times in ms.

    ``ci_low_ms``/``ci_high_ms`` bound the median at 95% confidence
    (distribution-free, from binomial order statistics); ``cv`` is std/mean.
    """

    n: int
    median_ms: float
    mean_ms: float
    std_ms: float
    iqr_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    cv: float
    ci_low_ms: float
    ci_high_ms: float
    outliers: int

    @property
    def ci_rel(self) -> float:
        """Half-width of the median's 95% confidence interval relative to the median."""
        return (self.ci_high_ms - self.ci_low_ms) / 2 / self.median_ms if self.median_ms > 0 else float("inf")

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.4g} ms ± {self.iqr_ms:.2g} (IQR), "
            f"{self.min_ms:.4g} … {self.max_ms:.4g}, {self.n} runs"
        )


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median.

    Uses the order statistics ``x[j], x[k]`` whose ranks come from the
    Binomial(n, 1/2) quantiles; needs no normality (latencies are skewed).
    With fewer than 6 samples the interval is the whole range.
    """
    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n < 6:
        return float(x[0]), float(x[-1])
    alpha = 1 - confidence
    j = int(_st.binom.ppf(alpha / 2, n, 0.5))
    k = int(_st.binom.isf(alpha / 2, n, 0.5))
    return float(x[max(j - 1, 0)]), float(x[min(k, n - 1)])


def mad_outliers(samples: Sequence[float], z: float = MAD_Z) -> np.ndarray:
    """Boolean mask of outliers by modified z-score ``0.6745·|x − median| / MAD > z``."""
    x = np.asarray(samples, dtype=float)
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad == 0:
        return np.zeros(len(x), dtype=bool)
    return 0.6745 * np.abs(x - med) / mad > z


def summarize(samples: Sequence[float]) -> Summary:
    """Summary statistics of raw samples (ms); raises ValueError when empty."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    q25, med, q75, p90 = np.percentile(x, [25, 50, 75, 90])
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    lo, hi = median_ci(x)
    return Summary(
        n=int(x.size),
        median_ms=float(med),
        mean_ms=mean,
        std_ms=std,
        iqr_ms=float(q75 - q25),
        p90_ms=float(p90),
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        cv=std / mean if mean > 0 else 0.0,
        ci_low_ms=lo,
        ci_high_ms=hi,
        outliers=int(mad_outliers(x).sum()),
    )


STATISTICS = ("median", "mean", "min", "p90")


def statistic(samples: Sequence[float], name: str = "median") -> float:
    """One named statistic of the samples (``median``, ``mean``, ``min`` or ``p90``), in ms."""
    s = summarize(samples)
    try:
        return {"median": s.median_ms, "mean": s.mean_ms, "min": s.min_ms, "p90": s.p90_ms}[name]
    except KeyError:
        raise ValueError(f"unknown statistic {name!r}; allowed: {', '.join(STATISTICS)}") from None


def combine(rounds: Sequence[Sequence[float]], name: str = "median") -> float:
    """One statistic of a workload measured in several rounds (records), in ms.

    ``median``, ``mean``, ``p90``: the statistic of each round, then the
    median across rounds: a round timed during a slow spell of the machine is
    outvoted rather than pooled (pooling a 2× slower third of the samples
    would move the median by several percent). ``min``: the fastest run of
    all rounds, the machine's floor: on a shared machine (a VM whose core's
    sibling another tenant uses in spells of a fraction of a second) whole
    rounds fall in slow spells, and only the floor is the same from one
    campaign to the next. One round gives that round's statistic.
    """
    if not rounds:
        raise ValueError("no rounds to combine")
    values = [statistic(r, name) for r in rounds]
    return float(min(values) if name == "min" else np.median(values))
