"""How many rounds each workload of a campaign has, and how many more it gets.

With ``plan.max_rounds > plan.rounds`` (:class:`~hwprof.measure.protocol.Plan`)
a workload is timed until it has ``rounds`` quiet rounds (a round timed while
the machine was busy does not count; median figures leave it out,
:func:`hwprof.measure.records.usable_rounds`), then for as long as its rounds
disagree: while the spread of its usable rounds' ``plan.statistic``
(:func:`hwprof.measure.repeatability.round_disagreement`, a 95% half-width)
is above ``plan.target_ci``. Never beyond ``max_rounds`` records in all.
Without extra rounds a workload simply gets ``rounds`` records, busy or not.

Everything is counted from the store, so a re-run resumes: it finishes the
planned rounds and spends what is left of the extra budget.
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

from hwprof.artifacts.workload import Workload
from hwprof.measure.protocol import Plan
from hwprof.measure.records import Measurement, usable_rounds
from hwprof.measure.repeatability import MIN_ROUNDS, round_disagreement
from hwprof.measure.stats import statistic

#: Why a round beyond the planned ones was timed.
EXTRA_BUSY = "busy"
EXTRA_DISAGREE = "disagreeing"

Identity = tuple[str, str, str]


class Round(NamedTuple):
    """What the ledger keeps of a record: its statistic (ms) and its flags."""

    ms: float
    flags: tuple[str, ...]

    @property
    def busy(self) -> bool:
        return "busy" in self.flags


def identity(w: Workload | Measurement) -> Identity:
    return (w.kind, w.space, w.key)


class Rounds:
    """The rounds ledger of one campaign (see the module docstring).

    Parameters
    ----------
    plan : Plan
        ``rounds``, ``max_rounds``, ``target_ci`` and ``statistic`` are read.
    counts : mapping of (kind, space, key) to int
        Records already in the store per workload (this device and fingerprint).
    """

    def __init__(self, plan: Plan, counts: Mapping[Identity, int]):
        self.plan = plan
        self.extra = plan.round_cap > plan.rounds
        self.counts = dict(counts)
        # each workload's rounds; filled by load() and add() with extra rounds
        self.history: dict[Identity, list[Round]] = {}
        self.failed: set[Workload] = set()

    def load(self, records: Iterable[Measurement], workloads: Iterable[Workload]) -> None:
        """Read the rounds the store holds of ``workloads`` (needed to judge extra rounds on a resume)."""
        wanted = {identity(w) for w in workloads}
        for m in records:
            if identity(m) in wanted:
                self.history.setdefault(identity(m), []).append(self._entry(m))

    def left(self, w: Workload) -> int:
        """Rounds ``w`` still gets now: the planned ones left, else 1 while its rounds disagree, else 0."""
        if w in self.failed:
            return 0
        if not self.extra:
            return max(self.plan.rounds - self.counts.get(identity(w), 0), 0)
        past = self.history.get(identity(w), [])
        room = self.plan.round_cap - len(past)
        if room <= 0:
            return 0
        planned = self.plan.rounds - sum(not r.busy for r in past)
        if planned > 0:
            return min(planned, room)
        return int(self.disagreement(w) > self.plan.target_ci)

    def disagreement(self, w: Workload) -> float:
        """How far ``w``'s latency may move (a relative 95% half-width) from its usable rounds; 0 with too few."""
        usable = [r.ms for r in usable_rounds(self.history.get(identity(w), []), self.plan.statistic)]
        return round_disagreement(usable, self.plan.statistic) if len(usable) >= MIN_ROUNDS else 0.0

    def add(self, w: Workload, m: Measurement) -> str:
        """Count a new record of ``w``; returns why it was an extra round (``busy``, ``disagreeing``) or ``""``."""
        key = identity(w)
        self.counts[key] = self.counts.get(key, 0) + 1
        if not self.extra:
            return ""
        past = self.history.setdefault(key, [])
        why = ""
        if len(past) >= self.plan.rounds:
            why = EXTRA_BUSY if sum(not r.busy for r in past) < self.plan.rounds else EXTRA_DISAGREE
        past.append(self._entry(m))
        return why

    def _entry(self, m: Measurement) -> Round:
        return Round(statistic(m.samples_ms, self.plan.statistic), tuple(m.flags))
