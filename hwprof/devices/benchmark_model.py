"""Parse the output of TensorFlow Lite / LiteRT ``benchmark_model`` (a pure function of text).

``benchmark_model`` prints microseconds; everything this module returns is in
milliseconds (the conversion happens once, in :func:`_us`).

Formats understood, oldest first (captured examples live in
``tests/data/benchmark_model/``):

* every version: one statistics line per phase, after a
  ``Running benchmark for at least N iterations ...`` line (warm-up first,
  then the timed runs)::

      count=50 first=32891 curr=33978 min=32641 max=34005 avg=33209.4 std=450
      count=1 curr=1357602                     # a single run ("all same" form)
      count=3 curr=120(all same)
      ... p5=1238753 median=1239807 p95=1247415   # TF 2.18 and later append these

  ``first`` is the first timed run, ``curr`` the last; ``avg`` may be printed
  in scientific notation (``1.24027e+06``); ``std`` is the population
  standard deviation, truncated to an integer by TF 1.x/2.x.
* TF 1.x summary: ``Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6``
* TF 2.x and LiteRT summary: ``Inference timings in us: Init: 855, First inference: 49060,
  Warmup (avg): 34825.1, Inference (avg): 33209.4``
* any log prefix before these (``INFO: ``, logcat's ``... I tflite  : ``, indentation).
* the LiteRT CompiledModel benchmark (``========== BENCHMARK RESULTS ==========``)
  prints ``Inference (avg): 7430.20 ms (10 runs)``, ``Inference (min|max|std)``
  and ``Warmup (first)`` directly in ms.

What the output does *not* contain is every timed run: the tool keeps running
statistics only. :meth:`RunStats.runs_ms` therefore recovers the individual
runs exactly only for ``count`` ≤ 3 (``first``, ``curr`` and, for three runs,
``3·avg − first − curr``); callers that need per-run samples invoke the tool
with at most three runs per invocation (see :mod:`hwprof.devices.android`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwprof.errors import MeasurementError

#: The most runs per invocation whose individual times the statistics line determines.
MAX_RECOVERABLE_RUNS = 3

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STATS = re.compile(r"(?:^|[\s:])count=(?P<count>\d+)(?P<rest>[^\n]*)")
_FIELD = re.compile(rf"\b(?P<name>first|curr|min|max|avg|std|p5|median|p95)=(?P<value>{_NUM})")
_SUMMARY_V2 = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<inference>{_NUM})"
)
_SUMMARY_V1 = re.compile(
    rf"Average inference timings in us: Warmup: (?P<warmup>{_NUM}), Init: (?P<init>{_NUM}), "
    rf"(?:no stats|Inference): (?P<inference>{_NUM})"
)
_INIT_SESSION = re.compile(rf"Initialized session in (?P<ms>{_NUM}) ?ms")
_GRAPH = re.compile(r"Graph: \[(?P<graph>[^\]\n]*)\]")
_THREADS = re.compile(r"Num threads: \[(?P<n>-?\d+)\]")
_COMPILED = {
    "init_ms": re.compile(rf"Model initialization:\s+(?P<v>{_NUM}) ms"),
    "first_ms": re.compile(rf"Warmup \(first\):\s+(?P<v>{_NUM}) ms"),
    "warmup_avg_ms": re.compile(rf"Warmup \(avg\):\s+(?P<v>{_NUM}) ms \((?P<n>\d+) runs\)"),
    "avg_ms": re.compile(rf"Inference \(avg\):\s+(?P<v>{_NUM}) ms \((?P<n>\d+) runs\)"),
    "min_ms": re.compile(rf"Inference \(min\):\s+(?P<v>{_NUM}) ms"),
    "max_ms": re.compile(rf"Inference \(max\):\s+(?P<v>{_NUM}) ms"),
    "std_ms": re.compile(rf"Inference \(std\):\s+(?P<v>{_NUM})"),
}
_FAILURES = (
    "Failed to",
    "failed to",
    "Could not",
    "Error:",
    "ERROR:",
    "Aborted",
    "Segmentation fault",
    "not found",
    "Benchmarking failed",
)


def _us(value: str | float) -> float:
    """benchmark_model prints microseconds; hwprof uses milliseconds."""
    return float(value) / 1000.0


@dataclass(frozen=True)
class RunStats:
    """One statistics line: ``count`` runs of one phase; times in ms.

    ``first_ms``, ``min_ms``, ``max_ms``, ``avg_ms`` equal ``last_ms`` and
    ``std_ms`` is 0 when the tool printed its "all same" form. The
    percentiles are ``None`` for versions before TF 2.18.
    """

    count: int
    first_ms: float
    last_ms: float
    min_ms: float
    max_ms: float
    avg_ms: float
    std_ms: float
    p5_ms: float | None = None
    median_ms: float | None = None
    p95_ms: float | None = None

    def runs_ms(self) -> tuple[float, ...]:
        """The individual runs in the order they ran, when the line determines them.

        ``count`` 1: ``(curr,)``; 2: ``(first, curr)``; 3: ``(first, 3·avg −
        first − curr, curr)`` — the middle run from the printed mean (six
        significant digits, so exact to well under 0.01% of the run).

        Raises
        ------
        MeasurementError
            For ``count`` 0 or above :data:`MAX_RECOVERABLE_RUNS`: the output
            holds only aggregates then; ask for fewer runs per invocation.
        """
        n = self.count
        if n == 1:
            return (self.last_ms,)
        if n == 2:
            return (self.first_ms, self.last_ms)
        if n == 3:
            middle = 3 * self.avg_ms - self.first_ms - self.last_ms
            # Rounding of the printed mean may push the middle run a hair outside [min, max].
            middle = round(min(max(middle, self.min_ms), self.max_ms), 6)
            return (self.first_ms, middle, self.last_ms)
        raise MeasurementError(
            f"benchmark_model printed only aggregates for {n} runs; individual runs are recoverable "
            f"for at most {MAX_RECOVERABLE_RUNS} runs per invocation (lower runs_per_invocation)"
        )


@dataclass(frozen=True)
class BenchmarkOutput:
    """What one ``benchmark_model`` invocation reported; all times in ms.

    Attributes
    ----------
    warmup, timed : RunStats or None
        Statistics of the warm-up and of the timed phase.
    init_ms, first_inference_ms, warmup_avg_ms, inference_avg_ms : float or None
        The summary line (``first_inference_ms`` is absent before TF 2.3).
    session_init_ms : float or None
        ``Initialized session in ...ms``.
    graph : str or None
        The ``--graph`` path the tool echoed.
    num_threads : int or None
        The ``Num threads`` it echoed.
    """

    warmup: RunStats | None
    timed: RunStats | None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_avg_ms: float | None = None
    inference_avg_ms: float | None = None
    session_init_ms: float | None = None
    graph: str | None = None
    num_threads: int | None = None

    def runs_ms(self) -> tuple[float, ...]:
        """The timed runs (see :meth:`RunStats.runs_ms`)."""
        if self.timed is None:
            raise MeasurementError("benchmark_model output has no statistics line for the timed runs")
        return self.timed.runs_ms()


def _stats(count: int, rest: str, unit: str = "us") -> RunStats:
    fields = {m["name"]: m["value"] for m in _FIELD.finditer(rest)}
    conv = _us if unit == "us" else float
    if "curr" not in fields:
        if count == 0:
            return RunStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        raise MeasurementError(f"benchmark_model statistics line without curr=: count={count}{rest.strip()}")
    last = conv(fields["curr"])
    pct = {k: conv(fields[k]) if k in fields else None for k in ("p5", "median", "p95")}
    if "avg" not in fields:  # the "all same" form: every run took `curr`
        return RunStats(count, last, last, last, last, last, 0.0, pct["p5"], pct["median"], pct["p95"])
    missing = [k for k in ("first", "min", "max", "std") if k not in fields]
    if missing:
        raise MeasurementError(f"benchmark_model statistics line lacks {', '.join(missing)}: count={count}{rest}")
    return RunStats(
        count,
        conv(fields["first"]),
        last,
        conv(fields["min"]),
        conv(fields["max"]),
        conv(fields["avg"]),
        conv(fields["std"]),
        pct["p5"],
        pct["median"],
        pct["p95"],
    )


def parse(text: str) -> BenchmarkOutput:
    """Parse one invocation's combined stdout/stderr.

    Parameters
    ----------
    text : str
        What ``benchmark_model`` printed (any version, see the module docstring).

    Returns
    -------
    BenchmarkOutput
        Times in ms.

    Raises
    ------
    MeasurementError
        When the text holds neither a statistics line nor a summary (the tool
        failed before timing); the message quotes the lines that look like
        the reason.
    """
    if "BENCHMARK RESULTS" in text and _COMPILED["avg_ms"].search(text):
        return _parse_compiled(text)
    stats: list[RunStats] = []
    lines = text.splitlines()
    for line in lines:
        if "Timings (microseconds)" in line or "[node type]" in line:
            continue  # op-profiling tables repeat count= fields per node
        m = _STATS.search(line)
        if m:
            stats.append(_stats(int(m["count"]), m["rest"]))
    out: dict = {}
    m2 = _SUMMARY_V2.search(text)
    m1 = _SUMMARY_V1.search(text)
    if m2:
        out.update(
            init_ms=_us(m2["init"]),
            first_inference_ms=_us(m2["first"]),
            warmup_avg_ms=_us(m2["warmup"]),
            inference_avg_ms=_us(m2["inference"]),
        )
    elif m1:
        out.update(init_ms=_us(m1["init"]), warmup_avg_ms=_us(m1["warmup"]), inference_avg_ms=_us(m1["inference"]))
    if not stats and not out:
        raise MeasurementError("benchmark_model produced no timings" + _reason(lines))
    if m := _INIT_SESSION.search(text):
        out["session_init_ms"] = float(m["ms"])  # printed in ms already
    if m := _GRAPH.search(text):
        out["graph"] = m["graph"]
    if m := _THREADS.search(text):
        out["num_threads"] = int(m["n"])
    # Warm-up comes first; with only one line it is the timed phase (warm-up disabled or not echoed).
    warmup = stats[-2] if len(stats) >= 2 else None
    timed = stats[-1] if stats else None
    return BenchmarkOutput(warmup=warmup, timed=timed, **out)


def _parse_compiled(text: str) -> BenchmarkOutput:
    vals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, rx in _COMPILED.items():
        if m := rx.search(text):
            vals[key] = float(m["v"])
            if "n" in rx.groupindex:
                counts[key] = int(m["n"])
    avg = vals["avg_ms"]
    timed = RunStats(
        count=counts["avg_ms"],
        first_ms=float("nan"),  # this format does not print the first timed run
        last_ms=float("nan"),
        min_ms=vals.get("min_ms", float("nan")),
        max_ms=vals.get("max_ms", float("nan")),
        avg_ms=avg,
        std_ms=vals.get("std_ms", float("nan")),
    )
    if timed.count == 1:
        timed = RunStats(1, avg, avg, avg, avg, avg, 0.0)
    return BenchmarkOutput(
        warmup=None,
        timed=timed,
        init_ms=vals.get("init_ms"),
        first_inference_ms=vals.get("first_ms"),
        warmup_avg_ms=vals.get("warmup_avg_ms"),
        inference_avg_ms=avg,
    )


def _reason(lines: list[str]) -> str:
    hits = [ln.strip() for ln in lines if any(f in ln for f in _FAILURES)]
    tail = hits[-3:] or [ln.strip() for ln in lines if ln.strip()][-3:]
    return (": " + " | ".join(tail)) if tail else " (empty output)"


__all__ = ["MAX_RECOVERABLE_RUNS", "BenchmarkOutput", "RunStats", "parse"]
