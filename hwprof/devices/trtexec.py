"""Drive and parse TensorRT's ``trtexec`` (pure functions of text; no TensorRT needed).

trtexec prints milliseconds; everything here is in ms too.

**Commands.** :func:`build_command` builds an engine from an ONNX file once
(``--saveEngine``, ``--skipInference``); :func:`time_command` times a saved
engine with exact counts::

    trtexec --loadEngine=E --warmUp=<ms> --duration=0 --iterations=N --avgRuns=1
            --noDataTransfers --useSpinWait --exportTimes=T.json [extra flags]

``--warmUp=0 --duration=0 --iterations=N`` runs exactly N timed queries after
the warm-up; ``--noDataTransfers`` leaves host-to-device copies out of the
timing; ``--avgRuns=1`` makes every "Average on 1 runs" trace line one query.

**Samples** (:func:`parse`), in order of preference, and the record says which:

``exportTimes``
    The JSON written by ``--exportTimes``: one object per query with
    ``startComputeMs``, ``endComputeMs``, ``computeMs``, ``latencyMs`` ...
    It holds the warm-up queries too; the last ``Timing trace has N queries``
    of them are the timed ones (trtexec's own rule). The sample is
    ``computeMs`` (GPU compute time of the query).
``trace averages``
    The ``Average on K runs - GPU latency: X ms`` lines of the text (every
    version since 7.x; with or without ``end to end``): with ``K = 1`` each is
    one query; with ``K > 1`` each is a mean of K queries.

The ``=== Performance summary ===`` lines (``GPU Compute Time: min = ...,
max = ..., mean = ..., median = ..., percentile(99%) = ...``) are parsed into
:class:`Summary` for reports; they hold aggregates only, never samples.

Formats checked on captured outputs in ``tests/data/trtexec/`` (each with its
source): TensorRT 7.x, 8.4 (Jetson AGX Xavier), 8.5, 8.6.1, 8.6.3, 10.3
(Jetson Orin NX) and 10.16 headers.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from hwprof.errors import MeasurementError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VERSION = re.compile(r"&&&& (?P<state>RUNNING|PASSED|FAILED) TensorRT\.trtexec \[TensorRT v(?P<v>\d+)\]")
_VERSION_TEXT = re.compile(r"TensorRT version: (?P<v>\d+\.\d+(?:\.\d+)*)")
_DEVICE = re.compile(r"Selected Device: (?P<name>[^\n]+?)\s*$", re.M)
_CAPABILITY = re.compile(r"Compute Capability: (?P<cc>\d+\.\d+)")
_WARMUP = re.compile(rf"Warmup completed (?P<n>\d+) queries over (?P<ms>{_NUM}) ms")
_TIMED = re.compile(rf"Timing trace has (?P<n>\d+) queries over (?P<s>{_NUM}) s")
_AVERAGE = re.compile(
    rf"Average on (?P<k>\d+) runs - GPU latency: (?P<gpu>{_NUM}) ms - Host latency: (?P<host>{_NUM}) ms"
    rf" \((?:end to end (?P<e2e>{_NUM}) ms, )?enqueue (?P<enq>{_NUM}) ms\)"
)
_SUMMARY_LINE = re.compile(
    r"(?P<name>Latency|End-to-End Host Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency): "
    r"(?P<rest>min = [^\n]*)"
)
_STAT = re.compile(rf"(?P<name>min|max|mean|median|percentile\((?P<p>{_NUM})%\)) =? ?(?P<v>{_NUM}) ms")

SOURCE_JSON = "exportTimes"
SOURCE_TRACE = "trace averages"


def version_text(code: int | str) -> str:
    """``8601`` → ``"8.6.1"``, ``100300`` → ``"10.3.0"``: the number trtexec prints as ``[TensorRT vN]``.

    TensorRT 8 and older encode ``major·1000 + minor·100 + patch``; 10 and
    later ``major·10000 + minor·100 + patch``.
    """
    n = int(code)
    if n >= 10000:
        return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return f"{n // 1000}.{n // 100 % 10}.{n % 100}"


@dataclass(frozen=True)
class Summary:
    """One ``=== Performance summary ===`` line: statistics in ms; ``percentiles`` maps 90.0 → ms."""

    min_ms: float
    max_ms: float
    mean_ms: float
    median_ms: float
    percentiles: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrtexecRun:
    """What one trtexec output says.

    Attributes
    ----------
    version : str
        TensorRT version (``"8.6.1"``), or ``""`` when the text does not print it.
    passed : bool or None
        The ``&&&& PASSED``/``FAILED`` verdict; None when the text has neither.
    gpu : str
        ``Selected Device`` (GPU name), or ``""``.
    warmup_queries, timed_queries : int or None
        The counts of the ``Warmup completed``/``Timing trace has`` lines.
    samples_ms : tuple of float
        Timed queries in ms (see the module docstring), in the order run.
    runs_per_sample : int
        1 when every sample is one query; K when each is a mean of K.
    source : str
        ``exportTimes`` or ``trace averages`` (``""`` without samples).
    summary : dict
        Metric name (``GPU Compute Time``, ``Latency``, ...) → :class:`Summary`.
    """

    version: str = ""
    passed: bool | None = None
    gpu: str = ""
    compute_capability: str = ""
    warmup_queries: int | None = None
    timed_queries: int | None = None
    samples_ms: tuple[float, ...] = ()
    runs_per_sample: int = 1
    source: str = ""
    summary: dict[str, Summary] = field(default_factory=dict)


def _strip(text: str) -> str:
    return text.replace("\r\n", "\n")


def parse_summary(text: str) -> dict[str, Summary]:
    """The performance-summary lines of ``text`` (metric name → :class:`Summary`)."""
    out: dict[str, Summary] = {}
    for m in _SUMMARY_LINE.finditer(text):
        stats, pct = {}, {}
        for s in _STAT.finditer(m.group("rest")):
            if s.group("p") is not None:
                pct[float(s.group("p"))] = float(s.group("v"))
            else:
                stats[s.group("name")] = float(s.group("v"))
        if {"min", "max", "mean", "median"} <= set(stats):
            out[m.group("name")] = Summary(stats["min"], stats["max"], stats["mean"], stats["median"], pct)
    return out


def parse_export_times(data: str, timed: int | None = None) -> tuple[float, ...]:
    """``computeMs`` of the timed queries in an ``--exportTimes`` JSON file.

    Parameters
    ----------
    data : str
        The file's text: a JSON array of per-query objects.
    timed : int, optional
        The ``Timing trace has N queries`` count: the last ``timed`` entries
        are the timed ones (the file holds the warm-up queries first).

    Raises
    ------
    MeasurementError
        Not JSON, not an array of query objects, or fewer entries than ``timed``.
    """
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise MeasurementError(f"trtexec --exportTimes file is not JSON ({exc}); the run may have been cut short") from None
    if not isinstance(doc, list):
        raise MeasurementError("trtexec --exportTimes file is not a JSON array of queries")
    queries = [q for q in doc if isinstance(q, dict) and ("computeMs" in q or "endComputeMs" in q)]
    if timed is not None:
        if len(queries) < timed:
            raise MeasurementError(f"trtexec --exportTimes holds {len(queries)} queries, the log says {timed} were timed")
        queries = queries[len(queries) - timed :]
    out = []
    for q in queries:
        value = q["computeMs"] if "computeMs" in q else q["endComputeMs"] - q["startComputeMs"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MeasurementError(f"trtexec --exportTimes entry has a non-numeric compute time: {q!r:.120}")
        out.append(float(value))
    return tuple(out)


def parse(text: str, export_times: str | None = None) -> TrtexecRun:
    """Parse trtexec's log (and, when given, its ``--exportTimes`` JSON) into a :class:`TrtexecRun`.

    Parameters
    ----------
    text : str
        stdout+stderr of one trtexec invocation (any log prefix per line).
    export_times : str, optional
        Text of the ``--exportTimes`` file of the same invocation.
    """
    text = _strip(text)
    version, passed = "", None
    for m in _VERSION.finditer(text):
        version = version_text(m.group("v"))
        if m.group("state") != "RUNNING":
            passed = m.group("state") == "PASSED"
    if not version and (m := _VERSION_TEXT.search(text)):
        version = m.group("v")
    gpu = m.group("name") if (m := _DEVICE.search(text)) else ""
    cc = m.group("cc") if (m := _CAPABILITY.search(text)) else ""
    warm = int(m.group("n")) if (m := _WARMUP.search(text)) else None
    timed = int(m.group("n")) if (m := _TIMED.search(text)) else None
    samples: tuple[float, ...] = ()
    per, source = 1, ""
    if export_times is not None:
        samples, source = parse_export_times(export_times, timed), SOURCE_JSON
    else:
        averages = list(_AVERAGE.finditer(text))
        if averages:
            ks = {int(a.group("k")) for a in averages}
            per = max(ks)
            samples, source = tuple(float(a.group("gpu")) for a in averages if int(a.group("k")) == per), SOURCE_TRACE
    return TrtexecRun(version, passed, gpu, cc, warm, timed, samples, per, source, parse_summary(text))


def failure(text: str) -> str:
    """The lines that say why trtexec failed (``[E]`` lines, ``&&&& FAILED``), joined; ``""`` when none."""
    lines = [ln.strip() for ln in _strip(text).splitlines() if "[E]" in ln or "&&&& FAILED" in ln]
    return " | ".join(lines[-4:])


def build_command(binary: str, onnx: str, engine: str, fp16: bool = False, extra: tuple[str, ...] | list[str] = ()) -> str:
    """Shell command building ``engine`` from ``onnx`` without timing it; every argument quoted."""
    argv = [binary, f"--onnx={onnx}", f"--saveEngine={engine}", "--skipInference", *(["--fp16"] if fp16 else []), *extra]
    return " ".join(shlex.quote(a) for a in argv)


def time_command(
    binary: str,
    engine: str,
    iterations: int,
    warmup_ms: float,
    export_times: str = "",
    extra: tuple[str, ...] | list[str] = (),
) -> str:
    """Shell command timing ``iterations`` queries of a saved engine (see the module docstring); every argument quoted."""
    argv = [
        binary,
        f"--loadEngine={engine}",
        f"--warmUp={warmup_ms:g}",
        "--duration=0",
        f"--iterations={iterations}",
        "--avgRuns=1",
        "--noDataTransfers",
        "--useSpinWait",
        *([f"--exportTimes={export_times}"] if export_times else []),
        *extra,
    ]
    return " ".join(shlex.quote(a) for a in argv)


__all__ = [
    "SOURCE_JSON",
    "SOURCE_TRACE",
    "Summary",
    "TrtexecRun",
    "build_command",
    "failure",
    "parse",
    "parse_export_times",
    "parse_summary",
    "time_command",
    "version_text",
]
