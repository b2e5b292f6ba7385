"""Energy per inference from records: mean power over the timed window × latency.

A device that meters power stores the mean power of a record's timed runs in
its environment (``power_w``, with ``power_source``; see
:mod:`hwprof.devices.power`). The energy of one inference of that record is

    energy (mJ) = power_w (W) × statistic(samples_ms) (ms)

with the same statistic as the latency, and a workload's energy is combined
over its rounds as its latency is (:func:`hwprof.measure.stats.combine`).
"""

from __future__ import annotations

from typing import Iterable

from hwprof.errors import MissingEntryError
from hwprof.measure.records import Measurement, records_by_key, usable_rounds
from hwprof.measure.stats import statistic as stat_of

#: What a table or predictor may hold, and its unit.
METRICS = {"latency": "ms", "energy": "mJ"}


def record_energy_mj(m: Measurement, statistic: str = "median") -> float:
    """Energy per inference of one record (mJ).

    Raises
    ------
    MissingEntryError
        The record has no ``power_w`` (its device measured no power).
    """
    watts = m.environment.get("power_w")
    if watts is None:
        raise MissingEntryError(
            f"record {m.key[:60]} on {m.device} has no power measurement (environment power_w); measure on a device "
            "with a power meter (backend.power: nvml, rapl, tegrastats) to build energy tables"
        )
    return float(watts) * stat_of(m.samples_ms, statistic)


def energies_by_key(records: Iterable[Measurement], statistic: str = "median") -> dict[str, float]:
    """Each key's energy per inference (mJ): median over its rounds of each round's energy."""
    import numpy as np

    out = {}
    for key, ms in records_by_key(records).items():
        values = [record_energy_mj(m, statistic) for m in usable_rounds(ms, statistic)]
        out[key] = float(np.median(values))
    return out


__all__ = ["METRICS", "energies_by_key", "record_energy_mj"]
