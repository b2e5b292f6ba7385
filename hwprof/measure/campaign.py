"""Measurement campaigns: many workloads on one device into one store.

A campaign (:func:`run_campaign`)

1. fingerprints the device and refuses to append to a store whose records
   for that device were taken under another fingerprint (the error names
   the fields) unless told to;
2. skips every round already in the store under the same fingerprint, so a
   re-run after an interruption resumes and never duplicates a record;
3. times the remaining workloads in blocks of ``plan.block``: passes over
   each block (alternating direction) until every workload has its rounds
   (:class:`hwprof.measure.rounds.Rounds`: ``plan.rounds``, and with
   ``plan.max_rounds`` extra ones for rounds timed busy and for rounds that
   disagree), each visit one :func:`hwprof.measure.protocol.measure` with
   :meth:`~hwprof.measure.protocol.Plan.per_round` and one record committed
   at once;
4. re-measures a sentinel workload every ``plan.sentinel_every`` records and
   flags drift (thermal throttling, a neighbour process) when its median
   moves by more than ``plan.drift_tolerance``;
5. watches competing load (:mod:`hwprof.measure.load`): before each pass
   over a block (and, with extra rounds, after each record timed busy) it
   waits while other processes use the CPU (``busy="wait"``, bounded), and
   every record keeps what was seen while it was timed in its
   ``environment`` (``busy_other_cpu``, ``steal_pct``, ...), flagged ``busy``
   when it was timed on a busy machine;
6. at the end, estimates the repeatability of what it measured from the
   spread of the rounds (:mod:`hwprof.measure.repeatability`) and warns, with
   the next step, when it is worse than ``plan.target_ci``.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hwprof.devices import Device
from hwprof.errors import ConfigError, DeviceError, FingerprintMismatchError, HwprofError
from hwprof.measure.records import Measurement, Workload, check_compatible, fingerprint_hash
from hwprof.errors import warn
from hwprof.artifacts.workload import ArtifactCache
from hwprof.measure.protocol import Outcome, Plan, measure, plan_for
from hwprof.spaces import Space
from hwprof.measure.load import LoadMonitor
from hwprof.measure.lock import StoreLock
from hwprof.measure.repeatability import Repeatability, of_records
from hwprof.measure.rounds import Rounds
from hwprof.measure.store import Store


def op_workloads(
    space: Space, resolution: int | None = None, batch: int = 1, width_steps: int = 0
) -> list[Workload]:
    """Every distinct op of ``space`` (all legal candidates of every layer, plus stem and head).

    Identity skips cost nothing and are left out. With ``width_steps > 1`` in a
    space with elastic mid channels (tfnas), each MBConv candidate is also
    measured at ``width_steps`` mid-channel counts evenly spread over its range.
    """
    ops = {op for row in space.choice_ops(resolution, batch) for op in row if op is not None}
    ops.update(space.fixed_ops(resolution, batch))
    if width_steps > 1 and space.width == "mid":
        for g in space.geometry(resolution):
            for cand in space.layer_choices(g.index):
                if cand == "skip":
                    continue
                lo, hi = space.mid_range(g, cand)
                for mid in np.unique(np.linspace(lo, hi, width_steps).round().astype(int)):
                    ops.add(space.candidate_op(g, cand, int(mid), batch))
    return [Workload.of_op(op) for op in sorted(ops, key=lambda o: o.encode()) if op.kind != "skip"]


#: Most architectures one campaign may sample (a campaign of this size takes weeks already).
MAX_ARCHS = 1_000_000


def arch_workloads(
    space: Space, n: int, seed: int = 0, batch: int = 1, limit: int | None = None, widths: bool = False
) -> list[Workload]:
    """``n`` random architectures of ``space`` (seeded), end to end; ``widths`` draws elastic widths too.

    With ``limit``, only the first ``limit`` of them are drawn: the sample is
    sequential, so they are the same architectures ``n`` would start with,
    and nothing beyond them is sampled.
    """
    if n < 0 or (limit is not None and limit < 0):
        raise ConfigError(f"the number of architectures must be non-negative, got {min(n, limit or 0)}")
    count = n if limit is None else min(n, limit)
    if count > MAX_ARCHS:
        raise ConfigError(f"{count} architectures is more than one campaign can take (at most {MAX_ARCHS}); use --limit")
    return [Workload.of_arch(space.name, a.encode(), batch) for a in space.sample(count, seed, widths)]


def estimate_s(plan: Plan, workloads: int) -> float:
    """Upper bound of a campaign's timing (s): every round of every workload, extra ones included, at the caps."""
    cap = plan.round_cap
    return workloads * (plan.max_time_s * cap / plan.rounds + cap * plan.warmup_s)


@dataclass
class CampaignReport:
    """What a campaign did; ``records`` are the new ones (one per round) in measuring order.

    ``planned`` workloads were asked for, ``skipped`` of them already had all
    their rounds in the store; ``pending`` rounds were left to measure.
    ``busy_waits`` and ``busy_waited_s`` count the pauses for competing load;
    ``extra`` counts the rounds beyond the plan by why they were timed
    (:mod:`hwprof.measure.rounds`: ``busy``, ``disagreeing``);
    ``repeatability`` is the estimate over every planned workload's rounds in
    the store (None when nothing was measured). ``flagged`` maps each quality
    flag to the advice of every record that raised it (``key: advice``), so a
    caller can summarise instead of printing one warning per record.
    """

    planned: int
    skipped: int
    rounds: int = 1
    pending: int = 0
    records: list[Measurement] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    interrupted: str = ""
    wall_s: float = 0.0
    busy_waits: int = 0
    busy_waited_s: float = 0.0
    repeatability: Repeatability | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def flag_summary(self) -> list[str]:
        """One line per quality flag: how many records, one example with its advice."""
        return [f"{len(notes)} records flagged {flag}, e.g. {notes[0]}" for flag, notes in self.flagged.items()]


def check_store_fingerprint(store: Store, device: str, fp: dict[str, str], allow_new: bool) -> None:
    """Refuse to mix records of ``device`` taken under another fingerprint (unless ``allow_new``)."""
    for other in store.fingerprints(device).values():
        try:
            check_compatible(other, fp, what=f"records of {device!r} in {store.path} and this run")
        except FingerprintMismatchError as exc:
            if not allow_new:
                raise FingerprintMismatchError(
                    f"{exc}. Use another --store, or pass --allow-new-fingerprint to keep both sets side by side."
                ) from None


def run_campaign(
    device: Device,
    workloads: Sequence[Workload],
    store: Store,
    plan: Plan | None = None,
    *,
    workdir: Path | None = None,
    allow_new_fingerprint: bool = False,
    on_record: Callable[[Measurement | None, Workload], None] | None = None,
    on_plan: Callable[[CampaignReport], None] | None = None,
    lock: bool = True,
    busy: str | LoadMonitor = "flag",
) -> CampaignReport:
    """Measure every workload not yet in ``store`` (see the module docstring).

    Parameters
    ----------
    device : Device
        An opened device.
    workloads : sequence of Workload
        What to measure, in order.
    store : Store
        Where records go (committed one by one).
    plan : Plan, optional
        Protocol parameters; defaults to the device config's.
    workdir : Path, optional
        Where artifacts are written; a temporary folder when omitted.
    allow_new_fingerprint : bool
        Append even when the store holds records of this device under another fingerprint.
    on_record : callable, optional
        Called after each round with its new record; with None for every
        round left of a workload that failed.
    on_plan : callable, optional
        Called once with the report before measuring starts (planned and skipped counts).
    lock : bool
        Take the store's writer lock (:class:`~hwprof.measure.lock.StoreLock`) for the
        whole campaign, so a second campaign on the same store stops at once
        with a message naming this one. The store is checked writable before
        the first measurement either way.
    busy : {"wait", "flag", "ignore"} or LoadMonitor
        What to do about competing load (:class:`~hwprof.measure.load.LoadMonitor`):
        ``wait`` pauses before a pass while the machine is busy (at most 60 s
        a wait, 5 min a campaign, then goes on flagging); ``flag`` (the
        library's default, which never blocks) only flags records timed while
        busy; ``ignore`` neither. The CLI defaults to ``wait``.

    Returns
    -------
    CampaignReport
        Planned, skipped, new records, failures, drift notes. A
        :class:`DeviceError` (device gone after the backend's retries) or
        Ctrl-C stops the campaign cleanly: ``interrupted`` says why and every
        finished record is already in the store.

    Raises
    ------
    StoreError
        Before any timing: another campaign holds the store, or it cannot be written.
    """
    monitor = busy if isinstance(busy, LoadMonitor) else LoadMonitor(busy)
    holder = StoreLock(store.path) if lock else None
    if holder is not None:
        holder.acquire()
    try:
        store.check_writable()
        return _run_campaign(
            device, workloads, store, plan, workdir, allow_new_fingerprint, on_record, on_plan, monitor
        )
    finally:
        if holder is not None:
            holder.release()


def _run_campaign(
    device, workloads, store, plan, workdir, allow_new_fingerprint, on_record, on_plan, monitor: LoadMonitor
) -> CampaignReport:
    plan = plan or plan_for(device.config)
    round_plan = plan.per_round()
    t0 = time.perf_counter()
    name = device.config.name
    fp = device.fingerprint()
    check_store_fingerprint(store, name, fp, allow_new_fingerprint)
    fp_hash = fingerprint_hash(fp)
    if workloads:
        store.set_statistic(name, plan.statistic)  # tables and predictors read the figures this way
    rounds = Rounds(plan, store.round_counts(name, fp_hash))
    if rounds.extra and workloads:
        rounds.load(store.iter_records(device=name, fingerprint_hash=fp_hash), workloads)
    need = {w: n for w in workloads if (n := rounds.left(w)) > 0}  # planned rounds still to measure, in order
    report = CampaignReport(len(workloads), len(workloads) - len(need), plan.rounds, sum(need.values()))
    if on_plan:
        on_plan(report)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="hwprof-")
        workdir = Path(tmp.name)

    sentinel_cache = ArtifactCache(workdir)

    def timed(w: Workload, cache: ArtifactCache, p: Plan = round_plan) -> Outcome:
        handle = device.prepare(cache.get(w, device.artifact_format))
        try:
            return measure(lambda runs, warmup: device.run(handle, runs, warmup), p)
        finally:
            device.release(handle)

    order = list(need)
    sentinel: Workload | None = order[0] if order else None
    reference_ms: float | None = None
    drifting = False
    measured = 0
    changes: list[float] = []

    def check_sentinel() -> None:
        nonlocal reference_ms, drifting
        median = timed(sentinel, sentinel_cache, plan).summary.median_ms  # the whole budget: it must be precise
        if reference_ms is None:
            reference_ms = median
            return
        change = median / reference_ms - 1
        changes.append(change)
        drifting = abs(change) > plan.drift_tolerance
        if drifting:
            report.drift.append(f"sentinel {sentinel.key} moved {change:+.1%} after {measured} records")

    try:
        for b in range(0, len(order), plan.block):
            block = order[b : b + plan.block]
            # Artifacts of a block live until its last round; a temporary folder is emptied after it.
            folder = workdir / f"block-{b // plan.block}" if tmp is not None else workdir
            cache = ArtifactCache(folder)
            for r in itertools.count():
                todo = [w for w in block if rounds.left(w)]
                if not todo:
                    break
                monitor.check(f"before pass {r + 1} over block {b // plan.block + 1}")
                monitor.record()  # the next record's window starts now, not during the wait
                for w in todo if r % 2 == 0 else todo[::-1]:
                    if w in rounds.failed:
                        continue
                    if sentinel is not None and plan.sentinel_every and measured % plan.sentinel_every == 0:
                        check_sentinel()
                    measured += 1
                    try:
                        outcome = timed(w, cache)
                    except DeviceError:
                        raise
                    except HwprofError as exc:
                        report.failed.append((w.key, str(exc)))
                        warn(f"{w.key}: {exc}")
                        for _ in range(rounds.left(w)):
                            if on_record:
                                on_record(None, w)
                        rounds.failed.add(w)
                        continue
                    seen, busy = monitor.record()
                    flags = outcome.flags + (("drift",) if drifting else ()) + (("busy",) if busy else ())
                    if busy:
                        report.flagged.setdefault("busy", []).append(
                            f"{w.key}: other processes used {seen.get('busy_other_cpu', '?')} cores while it was "
                            "timed; quiet the machine and re-measure (--busy=wait pauses while it is busy)"
                        )
                    for flag, advice in zip(outcome.flags, outcome.advice):
                        report.flagged.setdefault(flag, []).append(f"{w.key}: {advice}")
                    m = Measurement(
                        w.kind,
                        w.key,
                        w.space,
                        name,
                        outcome.samples_ms,
                        outcome.warmup,
                        fp,
                        {**device.environment(), **seen},
                        time.time(),
                        flags,
                    )
                    store.add(m)
                    report.records.append(m)
                    why = rounds.add(w, m)
                    if why:
                        report.extra[why] = report.extra.get(why, 0) + 1
                    if on_record:
                        on_record(m, w)
                    if busy and rounds.extra:  # wait now rather than time the rest of the pass on a busy machine
                        monitor.check(f"after {w.key[:40]}")
                        monitor.record()
            if tmp is not None:
                shutil.rmtree(folder, ignore_errors=True)
    except DeviceError as exc:
        report.interrupted = f"device error: {exc}"
    except KeyboardInterrupt:
        report.interrupted = "interrupted by the user"
    finally:
        if tmp is not None:
            tmp.cleanup()
        report.wall_s = time.perf_counter() - t0
        report.busy_waits, report.busy_waited_s = monitor.waits_, monitor.waited_s_
    if report.drift:  # one warning for the campaign, with the range seen, not one per sentinel check
        warn(
            f"drift: the sentinel {sentinel.key[:60]} moved beyond ±{plan.drift_tolerance:.0%} in "
            f"{len(report.drift)} of {len(changes)} checks (range {min(changes):+.1%} to {max(changes):+.1%}); "
            "records taken meanwhile are flagged 'drift': let the device cool down or quiet the machine, then re-measure"
        )
    if report.records:
        wanted = {(w.kind, w.space, w.key) for w in workloads}
        report.repeatability = of_records(
            (m for m in store.iter_records(device=name, fingerprint_hash=fp_hash) if (m.kind, m.space, m.key) in wanted),
            plan.statistic,
        )
        rep = report.repeatability
        if rep is not None and rep.ci95_median > plan.target_ci:
            warn(
                f"repeatability {rep.ci95_median:.1%} (95% CI of a workload's latency, median over {rep.workloads}) "
                f"is worse than the target ±{plan.target_ci:.0%}: {rep.advice(plan.target_ci)}"
            )
    return report
