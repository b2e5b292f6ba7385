"""How repeatable a table is, from the spread of its workloads' rounds.

A workload timed in ``R`` rounds has ``R`` round statistics ``m_1 … m_R``;
its latency is their median. The spread of the rounds is the best evidence a
single campaign has of how far another campaign's figure would fall: each
round is a fresh session at another moment of the machine's life. For each
workload the 95% confidence half-width of the median over rounds, relative to
it, is estimated from the MAD (robust to one round in a slow spell)::

    h = 1.96 · 1.2533 · 1.4826 · MAD(m) / √R / median(m)

(1.4826·MAD estimates σ for normal rounds; 1.2533·σ/√R is the standard error
of a median of R.) A table's repeatability is the median of ``h`` over its
workloads, with its 95th percentile. Two independent campaigns each with
standard error ``s = h / 1.96`` differ per workload by ``√2·s`` in standard
deviation, so the expected median relative difference between two tables is
``0.6745·√2·s ≈ 0.49·h``.

What this cannot see: a level shift of the whole machine between the two
campaigns (another day, another boot, a neighbour that ran during one of
them) that is constant within a campaign, nor rounds that move together. It
is therefore a lower bound of the difference to a re-measurement, not a
guarantee.
With one round per workload there is no spread over rounds; the samples'
own CI of the median is used instead and marked so, since it is blind to
session-to-session shifts.

For the ``min`` statistic (the fastest run of all rounds) there is no
spread to take a MAD of: the rounds are split in two halves (odd, even) and
each workload's figure is how far the floors of the halves differ,
``d = |min(odd)/min(even) − 1|``, expressed as a half-width ``d /
DIFF_PER_HALF_WIDTH`` so that the expected difference to a re-measurement is
``d`` itself. Half the rounds find the floor less surely than all of them:
this overstates the difference, where the MAD figure understates it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from hwprof.measure.records import Measurement, rounds_by_key
from hwprof.measure.stats import statistic, summarize

#: 1.96 (95%) · 1.2533 (SE of a median / SE of a mean, normal) · 1.4826 (σ / MAD, normal).
MAD_TO_HALF_WIDTH = 1.96 * math.sqrt(math.pi / 2) * 1.4826
#: Expected median |relative difference| of two campaigns, per unit of half-width: 0.6745·√2 / 1.96.
DIFF_PER_HALF_WIDTH = 0.6745 * math.sqrt(2) / 1.96
#: Fewest rounds whose spread is used; with fewer, the samples' CI stands in.
MIN_ROUNDS = 3
#: Most rounds the advice suggests adding; beyond it the machine, not the round count, is the problem.
MAX_ROUNDS_ADVISED = 40


@dataclass(frozen=True)
class Repeatability:
    """A table's repeatability estimate; relative figures (0.01 = 1%).

    Attributes
    ----------
    ci95_median, ci95_p95 : float
        Median and 95th percentile over workloads of the 95% CI half-width of each latency.
    expected_diff_median : float
        Expected median relative difference between this table and an independent re-measurement.
    workloads : int
        Workloads the estimate is over.
    rounds : int
        Median rounds per workload.
    method : str
        ``rounds`` (MAD of the round statistics), ``halves`` (the ``min``
        statistic: the floors of odd and even rounds compared) or ``samples``
        (one round: the CI of the median of its samples, blind to
        session-to-session shifts).
    """

    ci95_median: float
    ci95_p95: float
    expected_diff_median: float
    workloads: int
    rounds: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return (
            f"±{self.ci95_median:.2%} (95% CI, median over {self.workloads} workloads; p95 ±{self.ci95_p95:.2%}; "
            f"from {self.method}, {self.rounds} round(s)); a re-measurement should differ by a median of "
            f"~{self.expected_diff_median:.2%}"
        )

    def advice(self, target: float) -> str:
        """The next step when the estimate is worse than ``target`` (a relative half-width)."""
        if self.method == "samples":
            return (
                "raise --max-runs / --max-time or quiet the machine; on a shared machine (a desktop, a VM) measure "
                "in rounds (--rounds 10): only their spread shows how far a re-measurement falls"
            )
        needed = math.ceil(self.rounds * (self.ci95_median / target) ** 2)
        if needed > MAX_ROUNDS_ADVISED:
            return (
                f"the rounds disagree far beyond the target (reaching it would take ~{needed} rounds): the machine "
                "is too noisy; close other programs (records timed meanwhile are flagged 'busy'), then measure into "
                "a fresh store with --busy=wait"
            )
        return (
            f"re-run the same command with --rounds {needed} to add rounds to this store (the half-width shrinks "
            f"as 1/√rounds), with other programs closed and --busy=wait; or measure on a calmer machine"
        )


def round_half_width(round_stats: Sequence[float]) -> float:
    """95% CI half-width of the median of ``round_stats``, relative to it (MAD based)."""
    m = np.asarray(round_stats, dtype=float)
    med = float(np.median(m))
    if med <= 0:
        return float("inf")
    mad = float(np.median(np.abs(m - med)))
    return MAD_TO_HALF_WIDTH * mad / math.sqrt(len(m)) / med


def round_disagreement(round_stats: Sequence[float], name: str = "median") -> float:
    """How far a workload's latency may move, as a relative 95% half-width, from its round statistics.

    ``round_stats`` holds each round's ``name`` statistic (ms): the MAD
    half-width of their median (:func:`round_half_width`), or for ``min``
    the halves' floors compared (module docstring).
    """
    if name != "min":
        return round_half_width(round_stats)
    odd, even = min(round_stats[0::2]), min(round_stats[1::2])
    return abs(odd / even - 1) / DIFF_PER_HALF_WIDTH if even > 0 else float("inf")


def estimate(rounds: Mapping[str, Sequence[Sequence[float]]], name: str = "median") -> Repeatability | None:
    """Repeatability of a set of workloads from their rounds' raw samples.

    Parameters
    ----------
    rounds : mapping of str to list of sample lists
        Each workload's rounds (raw samples in ms), as :func:`hwprof.measure.records.rounds_by_key` gives.
    name : str
        Statistic of a round's samples (``median``, ``mean``, ``min``, ``p90``).

    Returns
    -------
    Repeatability or None
        None when there is nothing to judge (no workloads).
    """
    if not rounds:
        return None
    multi = {k: v for k, v in rounds.items() if len(v) >= MIN_ROUNDS}
    if multi:
        widths = [round_disagreement([statistic(r, name) for r in v], name) for v in multi.values()]
        counts = [len(v) for v in multi.values()]
        method = "halves" if name == "min" else "rounds"
    else:  # one (or two) rounds: the samples' CI of the median, pooled per workload
        widths = [summarize([x for r in v for x in r]).ci_rel for v in rounds.values()]
        counts = [len(v) for v in rounds.values()]
        method = "samples"
    w = np.asarray(widths, dtype=float)
    med = float(np.median(w))
    return Repeatability(
        ci95_median=med,
        ci95_p95=float(np.percentile(w, 95)),
        expected_diff_median=DIFF_PER_HALF_WIDTH * med,
        workloads=len(w),
        rounds=int(np.median(counts)),
        method=method,
    )


def of_records(records: Iterable[Measurement], name: str = "median") -> Repeatability | None:
    """:func:`estimate` over records (grouped by key)."""
    return estimate(rounds_by_key(records, name), name)
