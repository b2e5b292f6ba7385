"""What was observed: :class:`Measurement` records, their fingerprints and grouping by rounds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Mapping, TypeVar

from hwprof.errors import FingerprintMismatchError
from hwprof.artifacts.workload import KIND_ARCH, KIND_OP, Workload  # noqa: F401  (a record names its workload)
from hwprof.measure.stats import Summary, summarize

#: Fingerprint fields that identify the measuring environment; records whose
#: values differ must not be merged (see :func:`check_compatible`).
IDENTITY_FIELDS = ("device", "backend", "runtime", "runtime_version", "threads", "batch", "cpu", "hwprof_version")


def records_by_key(records: Iterable[Measurement]) -> dict[str, list[Measurement]]:
    """Each key's records (its rounds), keys in first-seen order: the one grouping of rounds."""
    out: dict[str, list[Measurement]] = {}
    for m in records:
        out.setdefault(m.key, []).append(m)
    return out


#: Fewest quiet rounds a key needs for its rounds timed on a busy machine to be left out of its figures.
MIN_QUIET_ROUNDS = 3


R = TypeVar("R")  # a record, or anything with its ``flags``


def usable_rounds(rounds: list[R], statistic: str = "median") -> list[R]:
    """The rounds of one key that enter its ``statistic``, oldest first (records, or anything with ``flags``).

    Rounds flagged ``busy`` (timed while other processes used the CPU) are
    left out when at least :data:`MIN_QUIET_ROUNDS` others exist: another
    process slows each kernel by its own factor (memory-bound kernels more
    than compute-bound ones), so a busy round is not a noisy round but one of
    another machine. With fewer quiet rounds every round is kept, and the
    records still carry their flag. The ``min`` statistic keeps every round:
    a slow round cannot lower the floor, and each round is one more chance to
    find it.
    """
    if statistic == "min":
        return rounds
    quiet = [m for m in rounds if "busy" not in m.flags]
    return quiet if len(quiet) >= MIN_QUIET_ROUNDS else rounds


def rounds_by_key(records: Iterable[Measurement], statistic: str = "median") -> dict[str, list[tuple[float, ...]]]:
    """Raw samples of each key's rounds usable for ``statistic`` (:func:`usable_rounds`), keys in first-seen order."""
    return {k: [m.samples_ms for m in usable_rounds(ms, statistic)] for k, ms in records_by_key(records).items()}


def latency_of(rounds: list[Measurement], statistic: str = "median") -> float:
    """One key's latency (ms): ``statistic`` combined over its usable rounds (:func:`hwprof.measure.stats.combine`)."""
    from hwprof.measure.stats import combine

    return combine([m.samples_ms for m in usable_rounds(rounds, statistic)], statistic)


def latencies_by_key(records: Iterable[Measurement], statistic: str = "median") -> dict[str, float]:
    """Each key's latency (ms): :func:`latency_of` its rounds."""
    return {k: latency_of(ms, statistic) for k, ms in records_by_key(records).items()}


def version_series(version: str) -> str:
    """``major.minor`` of a version string: the part of hwprof's version that enters a fingerprint."""
    return ".".join(str(version).split(".")[:2])


def fingerprint_hash(fingerprint: Mapping[str, str]) -> str:
    """Hash of a fingerprint's identity: equal for records that may be merged."""
    text = json.dumps({k: str(v) for k, v in sorted(fingerprint.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_compatible(a: Mapping[str, str], b: Mapping[str, str], what: str = "records") -> None:
    """Raise :class:`FingerprintMismatchError` naming every field where ``a`` and ``b`` differ."""
    diff = [k for k in sorted(set(a) | set(b)) if str(a.get(k)) != str(b.get(k))]
    if diff:
        detail = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in diff)
        raise FingerprintMismatchError(f"{what} were measured under different environments ({detail})")


@dataclass(frozen=True)
class Measurement:
    """One immutable record: raw samples of one workload on one device.

    Attributes
    ----------
    kind, key, space : str
        As in :class:`Workload`.
    device : str
        Device config name.
    samples_ms : tuple of float
        Raw timed runs in ms, in the order measured.
    warmup : int
        Untimed runs before the samples.
    fingerprint : Mapping[str, str]
        Identity of the environment (backend, runtime version, threads, batch,
        CPU model or phone build, hwprof version, ...).
    environment : Mapping[str, str]
        Volatile state recorded alongside (temperatures, frequencies, load).
    timestamp : float
        Unix time when the measurement finished.
    flags : tuple of str
        Quality notes of the protocol (``high-cv``, ``drift``, ...).
    """

    kind: str
    key: str
    space: str
    device: str
    samples_ms: tuple[float, ...]
    warmup: int
    fingerprint: Mapping[str, str]
    environment: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = 0.0
    flags: tuple[str, ...] = ()

    @cached_property
    def summary(self) -> Summary:
        return summarize(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return self.summary.median_ms

    @property
    def fingerprint_hash(self) -> str:
        return fingerprint_hash(self.fingerprint)

    @property
    def batch(self) -> int:
        return int(self.fingerprint.get("batch", 1))

    @property
    def threads(self) -> int:
        return int(self.fingerprint.get("threads", 1))
