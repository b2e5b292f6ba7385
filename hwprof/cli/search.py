"""Search: ``hwprof searchers`` and ``hwprof search``.

The core never imports :mod:`searchers`; these commands find the plugins
through the ``hwprof.searchers`` entry-point group (:func:`searchers.get`).
Progress goes to stderr, results to stdout: the architecture on one line,
then ``SearchResult.summary()`` (or the whole report with ``--format json``).
"""

from __future__ import annotations

import csv
import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from hwprof.cli import choices, command, err, out
from hwprof.cli.outputs import ForceOpt, check_output, output_file
from hwprof.errors import ConfigError, HwprofError

OutputFormat = choices("SearchFormat", ("text", "json"))

#: What each latency kind of a searcher needs, and which files give it.
KIND_WORKS: dict[str, str] = {
    "differentiable": "a lookup table (hwprof .json table, ProxylessNAS/OFA .yaml, TF-NAS .pkl) or an "
    "mlp/ridge/lut predictor (e.g. LightNAS's latency_predictor.pth.tar)",
    "score": "any latency table or predictor file",
    "width": "a table with width sweeps (TF-NAS latency_gpu.pkl / latency_cpu.pkl, or an hwprof table measured "
    "at every mid-channel count)",
    "single-path-runtime": "the Single-Path NAS runtime model (pixel1_runtime_model.json) or a layer-position "
    "table of the spnas space",
    "flops": "no file: a FLOPs constraint (--constraint flops:330e6)",
}
#: Random architectures scored to estimate the latency range of a model on a space.
RANGE_SAMPLES = 2000


# -- parsing -------------------------------------------------------------------------------
def parse_constraint(text: str) -> dict:
    """``flops:330e6`` (MACs) or ``latency:80`` (ms) → ``{"kind", "limit"}``."""
    kind, sep, value = text.partition(":")
    kind = {"macs": "flops"}.get(kind.strip().lower(), kind.strip().lower())
    try:
        limit = float(value)
    except ValueError:
        limit = float("nan")
    if not sep or kind not in ("flops", "latency") or not (limit > 0 and math.isfinite(limit)):
        raise ConfigError(f"cannot read constraint {text!r}; write flops:330e6 (MACs) or latency:80 (ms)")
    return {"kind": kind, "limit": limit}


def _hyperparameter_defaults(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in list(sig.parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _convert(key: str, text: str, default: Any) -> Any:
    """``text`` as the type of ``default``; ``None`` defaults take a number, a bool, ``none`` or a string."""
    t = text.strip()
    low = t.lower()
    try:
        if isinstance(default, bool):
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            v = float(t)
            if not v.is_integer():
                raise ValueError
            return int(v)
        if isinstance(default, float):
            return float(t)
        if isinstance(default, (tuple, list)):
            items = json.loads(t) if t.startswith("[") else [s for s in t.split(",") if s.strip()]
            proto = default[0] if len(default) else ""
            return type(default)(_convert(key, str(i), proto) for i in items)
        if isinstance(default, str):
            return t
        if default is None:
            if low in ("none", "null"):
                return None
            if low in ("true", "false"):
                return low == "true"
            try:
                v = float(t)
                return int(v) if v.is_integer() and "." not in t and "e" not in low else v
            except ValueError:
                return t
    except (ValueError, TypeError, json.JSONDecodeError):
        pass
    else:
        return t
    kind = "true/false" if isinstance(default, bool) else type(default).__name__
    raise ConfigError(f"--set {key}={text}: expected {kind} (the default is {default!r})")


def parse_sets(cls: type, items: list[str] | None) -> dict[str, Any]:
    """``key=value`` items → hyperparameters typed by their defaults; unknown keys are listed."""
    from searchers.base import SearchError

    defaults = _hyperparameter_defaults(cls)
    out_: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        if key not in defaults:
            raise SearchError(
                f"{cls.name} has no hyperparameter {key!r}; known: {', '.join(defaults)}"
            )
        out_[key] = _convert(key, value, defaults[key])
    return out_


# -- latency checks ------------------------------------------------------------------------
def _offers(latency: Any, kind: str, space: Any) -> bool:
    if kind == "differentiable":
        return callable(getattr(latency, "expected", None)) and bool(getattr(latency, "differentiable", True))
    if kind == "score":
        return callable(getattr(latency, "score", None))
    if kind == "single-path-runtime":
        from hwprof.latency import SinglePathRuntime

        return isinstance(latency, SinglePathRuntime)
    if kind == "width":
        if not callable(getattr(latency, "width_curve", None)):
            return False
        found = False
        for g, row in zip(space.geometry(), space.choice_ops()):
            for cand, op in zip(space.candidates, row):
                if op is None or op.kind != "mbconv":
                    continue
                try:
                    curve = latency.width_curve(g.index, cand)
                except (HwprofError, AttributeError, TypeError, ValueError, KeyError):
                    return False
                if space.width == "mid":  # the sweep must cover the candidate's whole mid range
                    lo, hi = space.mid_range(g, cand)
                    if not (curve.lo <= lo and curve.hi >= hi):
                        return False
                found = True
        return found
    return True


def check_latency(cls: type, latency: Any, space: Any, where: str) -> Any:
    """Return ``latency`` (converted where one form gives another) or raise naming the kinds that work.

    Every kind in ``cls.latency_kinds`` except ``"flops"`` must be offered.
    A layer-position table of ``spnas`` becomes a :class:`SinglePathRuntime`.
    """
    from searchers.base import SearchError

    kinds = [k for k in cls.latency_kinds if k != "flops"]
    if "single-path-runtime" in kinds and not _offers(latency, "single-path-runtime", space):
        table = getattr(latency, "table", None)
        if table is not None and space.name == "spnas":  # the runtime model reads spnas's five columns
            from hwprof.latency import SinglePathRuntime

            try:
                latency = SinglePathRuntime.from_table(table, space)
                latency.source = getattr(table, "source", None) or {"kind": "single-path-runtime"}
            except (HwprofError, ValueError, IndexError):
                pass
    for kind in kinds:
        if not _offers(latency, kind, space):
            what = getattr(latency, "kind", None) or type(latency).__name__
            raise SearchError(
                f"{cls.name} needs a {kind} latency model; {where} is a {what} model without it. "
                f"Use {KIND_WORKS.get(kind, kind)}"
            )
    return latency


def latency_range(latency: Any, space: Any, samples: int = RANGE_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Estimated min and max latency (ms) of ``latency`` over ``space``.

    Scores ``samples`` random architectures and the per-layer extremes: the
    cheapest and most expensive legal candidate per layer by MACs and, for
    tables, by the table's own values (exact for additive tables), and every
    "same candidate everywhere" architecture.
    """
    from searchers.testing import cell_macs

    mask = np.asarray(space.mask, dtype=bool)
    res = getattr(latency, "resolution", None) if space.elastic_resolution else None
    res = res or (space.default_resolution if space.elastic_resolution else None)
    rows = [space.indices(a) for a in space.sample(samples, seed=seed)]
    extremes = [cell_macs(space)]
    values = getattr(latency, "values", None)
    if isinstance(values, np.ndarray) and values.shape == mask.shape:
        extremes.append(values)
    candidates: list[np.ndarray] = []
    for v in extremes:
        candidates.append(np.where(mask, v, np.inf).argmin(1))
        candidates.append(np.where(mask, v, -np.inf).argmax(1))
    first_legal = mask.argmax(1)
    for k in range(space.max_choices):
        candidates.append(np.where(mask[:, k], k, first_legal))
    for idx in candidates:
        try:
            space.from_indices(idx, res)
        except HwprofError:
            continue
        rows.append(np.asarray(idx, dtype=np.int64))
    ms = np.asarray(latency.score(np.stack(rows)), dtype=np.float64)
    return float(ms.min()), float(ms.max())


def check_reachable(latency: Any, space: Any, target_ms: float | None, constraint: dict | None, name: str) -> None:
    """Raise :class:`SearchError` for a target (or latency limit) the model cannot reach on ``space``."""
    from searchers.base import SearchError

    checks: list[tuple[str, float, bool]] = []
    if target_ms is not None:
        checks.append(("target", float(target_ms), True))
    if constraint is not None and constraint["kind"] == "latency":
        checks.append(("latency limit", float(constraint["limit"]), False))
    if checks and latency is not None:
        lo, hi = latency_range(latency, space)
        for label, value, two_sided in checks:
            if value < lo or (two_sided and value > hi):
                raise SearchError(
                    f"{label} {value:g} ms is outside what {name} reaches on {space.name}: ≈{lo:.1f}–{hi:.1f} ms; "
                    "pick a value in that range"
                )
    if constraint is not None and constraint["kind"] == "flops":
        from hwprof.latency import macs_model

        lo_m, _ = latency_range(macs_model(space), space)
        if constraint["limit"] < lo_m * 1e6:
            raise SearchError(
                f"FLOPs limit {constraint['limit']:.4g} is below the smallest architecture of {space.name} "
                f"(≈{lo_m * 1e6:.4g} MACs); no architecture meets it"
            )


# -- outputs -------------------------------------------------------------------------------
def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return json.dumps(v, default=str)


def write_trace_csv(trace: list[dict], path: Path) -> None:
    """One row per epoch / generation; columns = the union of the trace's keys in order of appearance."""
    columns: list[str] = []
    for row in trace:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in trace:
            w.writerow([_cell(row.get(c)) for c in columns])


def plot_trace(trace: list[dict], path: Path) -> bool:
    """Latency and loss per epoch into ``path`` (PNG); False when matplotlib is missing or nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    def series(key: str) -> list[float]:
        return [float(r[key]) if isinstance(r.get(key), (int, float)) else float("nan") for r in trace]

    keys = {k for r in trace for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    losses = sorted(k for k in keys if "loss" in k or k.endswith("_ce"))
    if "latency_ms" not in keys and not losses:
        return False
    xkey = next((k for k in ("epoch", "generation", "step") if k in keys), None)
    x = series(xkey) if xkey else list(range(len(trace)))
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    if "latency_ms" in keys:
        axes[0].plot(x, series("latency_ms"), marker=".")
    axes[0].set_ylabel("latency (ms)")
    for k in losses:
        axes[1].plot(x, series(k), marker=".", label=k)
    if losses:
        axes[1].legend()
    axes[1].set_ylabel("loss")
    axes[1].set_xlabel(xkey or "row")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


#: Files ``search --out DIR`` writes.
OUT_FILES = ("report.json", "trace.csv", "arch.txt", "latency_loss.png")


def write_outputs(result: Any, out_dir: Path, force: bool = False, inputs: tuple = ()) -> list[Path]:
    """``report.json``, ``trace.csv``, ``arch.txt`` and (with matplotlib) ``latency_loss.png`` in ``out_dir``.

    Each goes through :func:`hwprof.cli.outputs.output_file`: atomic, and an
    existing file is replaced only with ``force``.
    """
    writers = {
        "report.json": lambda p: p.write_text(result.to_json() + "\n"),
        "trace.csv": lambda p: write_trace_csv(result.trace, p),
        "arch.txt": lambda p: p.write_text(result.arch + "\n"),
        "latency_loss.png": lambda p: plot_trace(result.trace, p),
    }
    written = []
    for name in OUT_FILES:
        if name == "latency_loss.png" and not _plottable(result.trace):
            continue
        with output_file(out_dir / name, force=force, inputs=inputs) as tmp:
            writers[name](tmp)
        written.append(out_dir / name)
    return written


def _plottable(trace: list[dict]) -> bool:
    """Whether :func:`plot_trace` has matplotlib and something to plot."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    keys = {k for r in trace for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return "latency_ms" in keys or any("loss" in k or k.endswith("_ce") for k in keys)


# -- commands ------------------------------------------------------------------------------
def searchers_list() -> None:
    """List the registered searchers: name, paper, default space, latency models they take."""
    import searchers

    table = Table("searcher", "paper", "default space", "latency kinds")
    for name, cls in searchers.available().items():
        table.add_row(name, cls.paper, cls.default_space, ", ".join(cls.latency_kinds))
    for name, problem in searchers.problems().items():
        table.add_row(name, f"[red]unavailable[/red]: {problem}", "", "")
    out.print(table)


def _progress_text(event: dict) -> str:
    from searchers.testing import is_timing_key

    parts = []
    for k, v in event.items():
        if is_timing_key(k) or isinstance(v, bool):
            continue
        if isinstance(v, int):
            parts.append(f"{k} {v}")
        elif isinstance(v, float):
            parts.append(f"{k} {v:.4g}")
        if len(parts) == 5:
            break
    return " · ".join(parts)


def search(
    searcher: str = typer.Option(..., "--searcher", help="Searcher name (see hwprof searchers)."),
    space: str | None = typer.Option(None, "--space", "-s", help="Search space (default: the searcher's)."),
    latency: Path | None = typer.Option(None, "--latency", "-l", help="Latency table or predictor file."),
    target_ms: float | None = typer.Option(None, "--target-ms", help="Latency target (ms)."),
    constraint: str | None = typer.Option(
        None, "--constraint", help="Hard constraint: flops:330e6 (MACs) or latency:80 (ms)."
    ),
    task: str = typer.Option("digits", "--task", help="Proxy task: digits, npz:FILE, or stand-in (tests)."),
    resolution: int = typer.Option(32, "--resolution", help="Proxy input resolution (pixels)."),
    width_mult: float = typer.Option(0.25, "--width-mult", help="Proxy supernet channel multiplier."),
    budget: str | None = typer.Option(
        None, "--budget", help="5m, 300s, 1h (time), 20e (epochs) or 500 (steps); default: the searcher's."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the supernet and the search."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Hyperparameter key=value (typed by its default); repeatable."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Write report.json, trace.csv, arch.txt and latency_loss.png here."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat("text"), "--format", help="text or json (the report)."),
    force: bool = ForceOpt,
) -> None:
    """Search an architecture for a latency target with one of the registered searchers."""
    import hwprof
    import searchers
    from hwprof.latency import latency_model
    from searchers.base import Budget, SearchError

    cls = searchers.get(searcher)
    inputs = (latency, Path(task[4:]) if task.startswith("npz:") else None)
    if out_dir is not None:
        for name in OUT_FILES:
            check_output(out_dir / name, force=force, inputs=inputs, option="--out")
    sp = hwprof.space(space or cls.default_space)
    cons = parse_constraint(constraint) if constraint else None
    params = parse_sets(cls, set_)
    defaults = _hyperparameter_defaults(cls)
    if "width_mult" in defaults and "width_mult" not in params:
        params["width_mult"] = float(width_mult)
    elif "width_mult" not in defaults and width_mult != 0.25:
        raise SearchError(f"{cls.name} takes no width multiplier; leave out --width-mult")
    est = cls(**params)
    check = getattr(est, "_check_params", None)
    if callable(check):
        check()

    if latency is not None:
        lat = latency_model(latency, space=sp)
        lat = check_latency(cls, lat, sp, str(latency))
    elif "flops" in cls.latency_kinds and (cons is None or cons["kind"] == "flops") and target_ms is None:
        if cons is None:
            raise SearchError(f"{cls.name} without --latency needs --constraint flops:LIMIT")
        lat = None
    else:
        works = "; or ".join(KIND_WORKS.get(k, k) for k in cls.latency_kinds)
        raise SearchError(f"{cls.name} needs --latency FILE: {works}")
    if lat is not None:
        name = (getattr(lat, "source", None) or {}).get("name", type(lat).__name__)
        check_reachable(lat, sp, target_ms, cons, name)
    elif cons is not None:
        check_reachable(None, sp, None, cons, "")

    if task == "stand-in":
        from searchers.testing import StandInTask

        the_task: Any = StandInTask(sp, seed=seed)
    else:
        from searchers.data import load_task

        the_task = load_task(task, resolution, seed, width_mult=width_mult)
    the_budget = Budget.parse(budget) if budget else Budget()

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        bar = progress.add_task(f"{cls.name} on {sp.name}", total=None)

        def callback(event: dict) -> None:
            progress.update(bar, description=f"{cls.name} on {sp.name}: {_progress_text(event)}")

        result = est.fit_search(
            the_task, sp, lat, target_ms=target_ms, constraint=cons, budget=the_budget, seed=seed, callback=callback
        )
    if out_dir is not None:
        written = write_outputs(result, out_dir, force=force, inputs=inputs)
        err.print(f"wrote {', '.join(p.name for p in written)} to {out_dir}", highlight=False)
    if fmt.value == "json":
        out.print(result.to_json(), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(result.arch, markup=False, highlight=False, soft_wrap=True)
        out.print(result.summary(), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("searchers")(command(searchers_list))
    app.command("search")(command(search))


__all__ = [
    "KIND_WORKS",
    "check_latency",
    "check_reachable",
    "latency_range",
    "parse_constraint",
    "parse_sets",
    "plot_trace",
    "register",
    "search",
    "searchers_list",
    "write_outputs",
    "write_trace_csv",
]
