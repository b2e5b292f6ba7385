"""The measurement protocol: how one workload is timed on one device.

Steps, in order (:func:`measure`):

1. **Warm-up by count and time.** Run ``warmup_runs`` untimed runs, then keep
   running untimed until ``warmup_s`` seconds have passed since the first
   one. Count *and* time: a slow op is warm after a few runs, a fast one needs
   the clock to settle caches, frequency and allocator state.
2. **Adaptive repeats.** Timed runs come in chunks of ``chunk`` runs (one
   device call each: on a phone, one ``benchmark_model`` invocation). After
   each chunk, once at least ``min_runs`` samples exist, stop when the 95%
   confidence interval of the median is within ±``target_ci`` of the median
   (default ±1%), or when ``max_runs`` samples or ``max_time_s`` seconds are
   reached.
3. **Quality.** Raw samples are kept as measured. Outliers by modified
   z-score (MAD) are counted, not dropped. Flags, each printed with the next
   step to take: ``ci-not-reached`` (the target was not met within the cap),
   ``high-cv`` (CV above ``cv_warn``), ``slow-first-run`` (the first timed run
   above 1.5× the median: warm-up too short), ``outliers`` (more than 5% of
   the samples).
4. **Rounds** (:mod:`hwprof.measure.campaign`). With ``rounds > 1`` a campaign times
   every workload ``rounds`` times, in separate passes over blocks of
   ``block`` workloads, each pass one record following steps 1–3 with the
   budget of :meth:`Plan.per_round`. A workload's latency is the median over
   its rounds (:func:`hwprof.measure.stats.combine`). A shared machine (a VM, a
   laptop) changes speed for spells of seconds; timed in one go, a workload
   that falls in a slow spell is wrong by the spell's factor however many
   runs it gets, and its neighbours in the campaign with it. Spread over
   passes, a spell hits one round of a workload and is outvoted. With
   ``max_rounds > rounds`` a workload gets extra rounds, up to ``max_rounds``
   in all: one for each round timed while the machine was busy (such a round
   is left out of its figures, :func:`hwprof.measure.records.usable_rounds`),
   and more while its rounds disagree (the 95% half-width of their median
   above ``target_ci``).
5. **Statistic** (``statistic``): how a workload's rounds become one
   latency (:func:`hwprof.measure.stats.combine`), kept in the store so that
   tables and predictors built from it read it the same way. ``median`` by
   default; the local CPU configs use ``min``, the fastest run of all rounds:
   on a shared machine whole rounds fall in slow spells (another tenant on
   the core's sibling, for fractions of a second), and two campaigns agree on
   their floors to a median of 0.2% where their medians differ by 3%
   (``benchmarks/bench_robust.py``).

Defaults: one thread (set by the device; single-threaded latency is the
stable, intrinsic figure); 10 warm-up runs and 0.2 s, because ONNX Runtime
and XNNPACK reach steady state within a few runs on a desktop CPU; 20 to 300
timed runs and 10 s per workload, which meets ±1% for every op of the
built-in spaces on a quiet machine. One round (``rounds = 1``) unless the
device config asks for more: the local CPU configs use 10, phones and GPUs
whose clocks are pinned need 1. All are overridable from the device TOML
``[protocol]`` table and the CLI.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Mapping


from hwprof.errors import ConfigError, MeasurementError
from hwprof.measure.stats import STATISTICS, Summary, summarize


@dataclass(frozen=True)
class Plan:
    """Protocol parameters (see the module docstring); times in seconds."""

    warmup_runs: int = 10
    warmup_s: float = 0.2
    min_runs: int = 20
    max_runs: int = 300
    chunk: int = 10
    target_ci: float = 0.01
    max_time_s: float = 10.0
    cv_warn: float = 0.10
    sentinel_every: int = 25
    drift_tolerance: float = 0.05
    rounds: int = 1
    block: int = 100
    max_rounds: int = 0
    statistic: str = "median"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConfigError(f"protocol.statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r:.100}")
        for f in fields(self):
            value = getattr(self, f.name)
            shown = repr(value)[:100]
            if f.name == "statistic":
                continue
            if isinstance(f.default, int) and not isinstance(f.default, bool):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ConfigError(f"protocol.{f.name} must be a whole number, got {shown}")
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"protocol.{f.name} must be a finite number, got {shown}")
            if value < 0:
                raise ConfigError(f"protocol.{f.name} must be non-negative, got {shown}")
        if not 0 < self.target_ci < 1:
            raise ConfigError(
                f"protocol.target_ci must be in (0, 1) (0.01 = ±1%), got {self.target_ci!r}; "
                "to time a fixed count instead, set min_runs = max_runs"
            )
        for name in ("chunk", "max_runs", "rounds", "block"):
            if getattr(self, name) < 1:
                raise ConfigError(f"protocol.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.max_rounds and self.max_rounds < self.rounds:
            raise ConfigError(
                f"protocol.max_rounds ({self.max_rounds}) is below protocol.rounds ({self.rounds}); "
                "0 means no extra rounds"
            )
        if self.min_runs > self.max_runs:
            raise ConfigError(f"protocol.min_runs ({self.min_runs}) exceeds protocol.max_runs ({self.max_runs})")

    def updated(self, overrides: Mapping[str, Any]) -> Plan:
        """A copy with ``overrides`` applied; unknown names are a :class:`ConfigError`.

        New ``rounds`` without ``max_rounds`` keep the extra rounds in proportion
        (a config's 10 rounds, up to 20, become 3 up to 6 with ``rounds = 3``).
        """
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"unknown protocol setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        clean = {k: v for k, v in overrides.items() if v is not None}
        for k, v in clean.items():
            if isinstance(getattr(self, k), int) and isinstance(v, float) and v.is_integer():
                clean[k] = int(v)
        if "rounds" in clean and "max_rounds" not in clean and self.max_rounds > self.rounds:
            clean["max_rounds"] = max(round(self.max_rounds * clean["rounds"] / self.rounds), clean["rounds"])
        return replace(self, **clean)

    def per_round(self) -> Plan:
        """The plan of one round: CI target widened by √rounds, runs and time split over the rounds.

        The median of ``rounds`` round medians, each within ±``target_ci·√rounds``,
        is about as precise as one median within ±``target_ci``.
        """
        if self.rounds == 1:
            return self
        r = self.rounds
        return replace(
            self,
            target_ci=self.target_ci * r**0.5,
            max_runs=max(self.max_runs // r, self.min_runs, 1),
            max_time_s=self.max_time_s / r,
            rounds=1,
            max_rounds=0,
        )

    @property
    def round_cap(self) -> int:
        """Most rounds one workload may get: ``max_rounds``, or ``rounds`` when it is 0 (no extra rounds)."""
        return max(self.max_rounds, self.rounds)


#: ``run(runs, warmup) -> samples_ms``: one device call.
RunFn = Callable[[int, int], list[float]]


@dataclass(frozen=True)
class Outcome:
    """Result of :func:`measure`: raw samples, warm-up count, quality flags with advice."""

    samples_ms: tuple[float, ...]
    warmup: int
    flags: tuple[str, ...]
    advice: tuple[str, ...]

    @property
    def summary(self) -> Summary:
        return summarize(self.samples_ms)


def measure(run: RunFn, plan: Plan) -> Outcome:
    """Time one prepared workload following the protocol (module docstring).

    Parameters
    ----------
    run : callable
        ``run(runs, warmup)`` performs ``warmup`` untimed then ``runs`` timed
        runs and returns the timed ones in ms.
    plan : Plan
        Protocol parameters.
    """
    start = time.perf_counter()
    warm = 0
    if plan.warmup_runs:
        run(0, plan.warmup_runs)
        warm = plan.warmup_runs
    while time.perf_counter() - start < plan.warmup_s:
        run(0, plan.chunk)
        warm += plan.chunk
    samples: list[float] = []
    t0 = time.perf_counter()
    while True:
        n = min(plan.chunk, plan.max_runs - len(samples))
        got = run(n, 0)
        if len(got) != n:
            raise MeasurementError(f"device returned {len(got)} samples for {n} requested runs")
        samples.extend(float(x) for x in got)
        if len(samples) >= max(plan.min_runs, 1):
            s = summarize(samples)
            if s.ci_rel <= plan.target_ci:
                break
        if len(samples) >= plan.max_runs or time.perf_counter() - t0 >= plan.max_time_s:
            break
    return judge(samples, warm, plan)


def judge(samples: list[float], warmup: int, plan: Plan) -> Outcome:
    """Quality flags and advice for a finished set of samples."""
    s = summarize(samples)
    flags, advice = [], []
    if s.ci_rel > plan.target_ci:
        flags.append("ci-not-reached")
        advice.append(
            f"median ±{s.ci_rel:.1%} after {s.n} runs (target ±{plan.target_ci:.0%}): "
            "raise protocol.max_runs / max_time_s, or quiet the machine"
        )
    if s.cv > plan.cv_warn:
        flags.append("high-cv")
        advice.append(f"CV {s.cv:.1%}: close other programs, pin the process to a core, or tune the device")
    if s.n > 1 and samples[0] > 1.5 * s.median_ms:
        flags.append("slow-first-run")
        advice.append(f"first run {samples[0]:.3g} ms vs median {s.median_ms:.3g} ms: raise protocol.warmup_runs")
    if s.outliers > 0.05 * s.n:
        flags.append("outliers")
        advice.append(f"{s.outliers} outliers (MAD): another process may be competing; quiet the machine")
    return Outcome(tuple(samples), warmup, tuple(flags), tuple(advice))


def plan_for(config: Any) -> Plan:
    """The plan of a device config: :class:`Plan` defaults updated by its ``[protocol]`` table.

    Raises
    ------
    ConfigError
        Naming the config file and the bad field.
    """
    try:
        return Plan().updated(dict(getattr(config, "protocol", {}) or {}))
    except ConfigError as exc:
        raise ConfigError(f"{getattr(config, 'path', None) or getattr(config, 'name', 'device')}: {exc}") from None
