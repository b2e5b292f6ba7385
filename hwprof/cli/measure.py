"""Measuring into the store: ``hwprof measure``, ``hwprof export``, ``hwprof show``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hwprof.cli import choices, command, default_store, err, out
from hwprof.cli.outputs import ForceOpt, output_file, quote
from hwprof.errors import ConfigError, HwprofError
from hwprof.measure.load import BUSY_MODES

DEFAULT_DEVICE = "cpu"
ExportFormat = choices("ExportFormat", ("csv", "parquet"))
SummaryFormat = choices("SummaryFormat", ("table", "json"))
BusyMode = choices("BusyMode", BUSY_MODES)
StoreOpt = typer.Option(None, "--store", help="SQLite store (default: $HWPROF_STORE or ./hwprof.sqlite).")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def measure(
    device: str = typer.Option(DEFAULT_DEVICE, "--device", "-d", help="Device name or TOML path."),
    space: str = typer.Option("proxylessnas", "--space", "-s", help="Search space."),
    ops: bool = typer.Option(False, "--ops", help="Measure every distinct operator of the space."),
    archs: int = typer.Option(0, "--archs", min=0, help="Measure N random architectures end to end."),
    model: Optional[List[str]] = typer.Option(
        None, "--model", help="Measure your own model end to end: a .onnx / .tflite file or torchvision:NAME (repeatable)."
    ),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", help="With --model: N,C,H,W or C,H,W for dynamic dimensions (TFLite: H,W,C)."
    ),
    kernels: bool = typer.Option(
        False, "--kernels", help="A kernel-sampling campaign (for `fit-predictor --kernels`): --n kernels and the fusion test."
    ),
    n_kernels: int = typer.Option(1000, "--n", min=2, help="With --kernels: how many kernels (half adaptive)."),
    kernel_kind: Optional[List[str]] = typer.Option(
        None, "--kernel-kind", help="With --kernels: only this kind (repeatable; conv, dwconv, gconv, se, fc, ...)."
    ),
    calibrate: int = typer.Option(
        0, "--calibrate", min=0,
        help="With --kernels: also time N networks of built-in spaces end to end, for fit-predictor to calibrate on.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the architecture sample."),
    store: Optional[Path] = StoreOpt,
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Batch size (default: the device's)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input resolution (elastic spaces)."),
    width_steps: int = typer.Option(0, "--width-steps", min=0, help="Also sweep mid channels at N points (tfnas)."),
    widths: bool = typer.Option(
        False, "--widths", help="With --archs in tfnas/spos: draw each layer's width (mid channels, multiplier) too."
    ),
    target_ci: Optional[float] = typer.Option(None, help="Target half-width of the median's 95% CI (0.01 = ±1%)."),
    max_runs: Optional[int] = typer.Option(None, help="Cap on timed runs per workload."),
    min_runs: Optional[int] = typer.Option(None, help="Timed runs before the CI target is checked."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Cap on timing seconds per workload."),
    warmup_runs: Optional[int] = typer.Option(None, help="Warm-up runs per workload."),
    rounds: Optional[int] = typer.Option(
        None, help="Passes per workload; its latency is the device's statistic over them (median, or min: the fastest run)."
    ),
    max_rounds: Optional[int] = typer.Option(
        None, help="Most rounds per workload with the extra ones: for rounds timed busy and rounds that disagree "
        "(0: none)."
    ),
    limit: Optional[int] = typer.Option(None, min=0, help="Measure at most N workloads (for a quick look)."),
    busy: BusyMode = typer.Option(
        BusyMode("wait"), "--busy", envvar="HWPROF_BUSY",
        help="When other programs use the CPU: wait (pause before a pass, up to 60 s each and 5 min in all, "
        "then go on flagging), flag (only flag the records 'busy'), ignore. Default from $HWPROF_BUSY.",
    ),
    allow_new_fingerprint: bool = typer.Option(False, help="Append although the store has this device under another environment."),
    workdir: Optional[Path] = typer.Option(None, help="Keep the exported artifacts in this folder."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Start a campaign longer than an hour without asking."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary line (and errors)."),
    fmt: SummaryFormat = typer.Option(SummaryFormat("table"), "--format", help="table, or json for scripts."),
) -> None:
    """Measure operators (--ops), random architectures (--archs N), models (--model) or kernels (--kernels) into the store."""
    import dataclasses

    from hwprof.measure.campaign import arch_workloads, op_workloads, run_campaign
    from hwprof.measure.protocol import plan_for
    from hwprof.devices import load_config, open_device
    from hwprof.spaces import space as get_space
    from hwprof.measure.store import Store

    if ops + bool(archs) + bool(model) + kernels != 1:
        raise typer.BadParameter("give exactly one of --ops, --archs N, --model FILE or --kernels")
    if input_shape is not None and not model:
        raise ConfigError("--input-shape applies to --model")
    if archs and resolution is not None:
        raise ConfigError(
            "--resolution applies to --ops; a sampled architecture carries its own resolution "
            "(r<res>: in elastic spaces), so it is refused with --archs"
        )
    if widths and not archs:
        raise ConfigError("--widths applies to --archs (sampled architectures); for --ops use --width-steps")
    if archs and width_steps:
        raise ConfigError("--width-steps applies to --ops (tfnas mid channels), not to --archs")
    if workdir is not None and workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {quote(workdir)} is a file; give a folder")
    config = load_config(device)
    if batch is not None:
        config = dataclasses.replace(config, batch=batch)
    overrides = {"target_ci": target_ci, "max_runs": max_runs, "min_runs": min_runs, "max_time_s": max_time,
                 "warmup_runs": warmup_runs, "rounds": rounds, "max_rounds": max_rounds}
    plan = plan_for(config).updated(overrides)
    sp = get_space(space)
    if kernel_kind and not kernels:
        raise ConfigError("--kernel-kind applies to --kernels")
    if kernels:
        from hwprof.devices import load_backend
        from hwprof.kernels import campaign as kc

        plan = kc.kernel_plan(plan, overrides)
        fmt_ = load_backend(config.backend).artifact_format
        work = kc.first_stage(n_kernels, seed, config.batch, fmt_, kernel_kind)[:limit]
    elif model:
        from hwprof.artifacts.model import model_workload, parse_input_shape

        shape = parse_input_shape(input_shape)
        work = [model_workload(m, config.batch, shape) for m in model]
        work = list(dict.fromkeys(work))[:limit]  # a model given twice is one workload
    elif ops:
        work = op_workloads(sp, resolution, config.batch, width_steps)
        work = work[:limit] if limit is not None else work
    else:
        work = arch_workloads(sp, archs, seed, config.batch, limit=limit, widths=widths)  # --limit before sampling
    store_path = store or default_store()
    db = Store(store_path)
    _confirm_plan(work, plan, yes)
    dev = open_device(config)
    what = (
        f"{len(work)} model(s) on {config.name}"
        if model
        else f"{n_kernels} kernels (half of them chosen after the first half)"
        + (f" and {calibrate} networks" if calibrate else "") + f" on {config.name}"
        if kernels
        else f"{len(work)} {'operators' if ops else 'architectures'} of {sp.name} on {config.name}"
    )
    err.print(f"hwprof: measuring {what} into {db.path}")
    # SIGTERM (kill, a job scheduler, a background job whose Ctrl-C is ignored) stops as cleanly as Ctrl-C
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        ) as progress:
            task = progress.add_task("measuring", total=len(work) * plan.rounds)

            def campaign(work, done: int = 0):
                return run_campaign(
                    dev,
                    work,
                    db,
                    plan,
                    workdir=workdir,
                    allow_new_fingerprint=allow_new_fingerprint,
                    on_record=lambda m, w: _advance(progress, task),
                    on_plan=lambda r: progress.update(task, completed=done + r.planned * r.rounds - r.pending),
                    busy=busy.value,
                )

            report = campaign(work)
            if kernels and not report.interrupted and limit is None:
                try:  # the fusion test and the refit run outside a campaign: Ctrl-C there stops as cleanly
                    report = _kernel_second_stage(dev, db, work, n_kernels, seed, config.batch, campaign, progress,
                                                  task, report, plan.rounds, kernel_kind)
                except KeyboardInterrupt:
                    report = dataclasses.replace(report, interrupted="interrupted by the user")
            if kernels and not report.interrupted and limit is None and calibrate:
                from hwprof.kernels.campaign import calibration_stage, merge

                nets = calibration_stage(calibrate, seed, config.batch)
                done = progress.tasks[0].total or 0
                progress.update(task, total=done + len(nets) * plan.rounds, description="calibration networks")
                report = merge(report, campaign(nets, int(done)))
    finally:
        signal.signal(signal.SIGTERM, previous)
        dev.close()
    new = len(report.records)
    summary = (
        f"{new} new records ({plan.rounds} round(s) per workload), {report.skipped} already in the store, "
        f"{len(report.failed)} failed, {report.wall_s:.1f} s"
        + (f" ({report.busy_waited_s:.0f} s waiting for a busy machine)" if report.busy_waits else "")
        + (f"; extra rounds: {', '.join(f'{n} {why}' for why, n in report.extra.items())}" if report.extra else "")
    )
    if new == 0 and not report.failed and not report.interrupted:
        summary = f"nothing new to measure: all {report.planned} workloads are already in {db.path}"
    if fmt.value == "json":
        import json

        typer.echo(json.dumps(_summary_json(report, db.path, plan.statistic)))
    else:
        if not quiet:
            _print_records(report.records, plan.statistic)
            for flag, notes in report.flagged.items():
                key, _, advice = notes[0].partition(": ")
                key = key if len(key) <= 40 else key[:37] + "..."
                err.print(f"hwprof: warning: {len(notes)} records flagged {flag}, e.g. {key}: {advice}",
                          highlight=False, markup=False)
        out.print(summary, highlight=False)
        if report.repeatability is not None:
            out.print(f"repeatability: {report.repeatability}", highlight=False)
    if report.interrupted:
        err.print(f"hwprof: stopped early ({report.interrupted}); every finished record is kept. Re-run to resume.")
        raise typer.Exit(130 if "user" in report.interrupted else 3)
    if report.failed:
        raise typer.Exit(1)


def _kernel_second_stage(dev, db, first, n, seed, batch, campaign, progress, task, report, rounds, only):
    """The fusion test (once per fingerprint) and the adaptive second half of a kernel campaign."""
    from hwprof.kernels import campaign as kc
    from hwprof.kernels.fusion import measure_fusion
    from hwprof.measure.records import fingerprint_hash

    fp_hash = fingerprint_hash(dev.fingerprint())
    if kc.fusion_rules(db, fp_hash) is None:
        progress.update(task, description="fusion test")
        found = kc.keep_fusion(db, fp_hash, measure_fusion(dev))
        fused = ", ".join(k for k, v in found.items() if v) or "none"
        apart = ", ".join(k for k, v in found.items() if not v) or "none"
        err.print(f"hwprof: {dev.config.name} fuses {fused}; runs apart {apart}", highlight=False)
    # drawn once: a re-run with more rounds times the same kernels
    note = f"kernels:second:{fp_hash}:{seed}:{n}:b{batch}:{','.join(sorted(only or []))}"
    kept = db.note(note)
    if kept is None:
        progress.update(task, description="refitting")
        second = kc.second_stage(db.records(dev.config.name, kind="kernel", fingerprint_hash=fp_hash), first, n, seed,
                                 batch, dev.artifact_format, only)
        db.set_note(note, "\n".join(w.key for w in second))
    else:
        from hwprof.artifacts.workload import Workload

        second = [Workload.of_kernel(k) for k in kept.split("\n") if k]
    done = len(first) * rounds
    progress.update(task, total=done + len(second) * rounds, description="measuring (adaptive half)")
    return kc.merge(report, campaign(second, done))


def _advance(progress, task) -> None:
    """One more record; extra rounds (busy, disagreeing) grow the bar's total rather than overflow it."""
    t = progress.tasks[task]
    if t.total is not None and t.completed + 1 > t.total:
        progress.update(task, total=t.completed + 1)
    progress.advance(task)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _confirm_plan(work, plan, yes: bool) -> None:
    """Print the plan line; ask before a campaign that may take over an hour when a person is at the terminal."""
    import sys

    from hwprof.measure.campaign import estimate_s

    bound = estimate_s(plan, len(work))
    err.print(
        f"hwprof: plan: {len(work)} workloads × {plan.rounds} round(s)"
        + (f" (up to {plan.round_cap} where rounds disagree or were timed busy)" if plan.round_cap > plan.rounds else "")
        + f", at most {_duration(bound)} of timing "
        f"(cap {plan.max_time_s * plan.round_cap / plan.rounds:g} s per workload); workloads already in the store "
        "are skipped",
        highlight=False,
    )
    if bound > 3600 and not yes and sys.stdin.isatty() and sys.stderr.isatty():
        if not typer.confirm("This campaign may take over an hour. Start it?", default=False, err=True):
            raise typer.Exit(1)


def _summary_json(report, store, statistic: str) -> dict:
    """The campaign's results for scripts: totals and one entry per new workload (``ms``: by ``statistic``)."""
    from hwprof.measure.records import latency_of, records_by_key
    from hwprof.measure.stats import combine

    by_key = records_by_key(report.records)
    return {
        "store": str(store), "planned": report.planned, "skipped": report.skipped, "new_records": len(report.records),
        "failed": [{"key": k, "error": e} for k, e in report.failed], "drift": report.drift,
        "interrupted": report.interrupted, "wall_s": report.wall_s,
        "busy_waits": report.busy_waits, "busy_waited_s": report.busy_waited_s, "extra_rounds": report.extra,
        "repeatability": report.repeatability.to_dict() if report.repeatability is not None else None,
        "flags": {flag: len(notes) for flag, notes in report.flagged.items()}, "statistic": statistic,
        "workloads": [{"key": k, "ms": latency_of(ms, statistic), "median_ms": combine([m.samples_ms for m in ms]),
                       "rounds": len(ms),
                       "flags": sorted({f for m in ms for f in m.flags})} for k, ms in by_key.items()],
    }


#: What a latency figure is, by statistic (:func:`hwprof.measure.stats.combine`).
STATISTIC_TEXT = {"median": "median over rounds", "mean": "median of round means", "p90": "median of round p90s",
                  "min": "fastest run of all rounds"}

#: Short names of the quality flags in the summary table (the warning lines below it give the full name and advice).
SHORT_FLAGS = {"ci-not-reached": "ci", "high-cv": "cv", "slow-first-run": "1st", "outliers": "out", "drift": "drift",
               "busy": "busy"}


def _compact_key(key: str) -> str:
    """An op key without its default fields (``g1``, ``se0``, ``m0``, ``b1``, ``w`` equal to ``h``), for display."""
    parts = key.split(":")
    if len(parts) < 3:
        return key
    h = next((p[1:] for p in parts if p.startswith("h") and p[1:].isdigit()), None)
    drop = {"g1", "se0", "m0", "b1", f"w{h}"}
    return ":".join(p for p in parts if p not in drop)


def _print_records(records, statistic: str = "median", limit: int = 15) -> None:
    """The slowest workloads first, the key first and shortened to fit the terminal; the rest via ``hwprof show``."""
    if not records:
        return
    from statistics import median

    from hwprof.measure.records import latency_of, records_by_key

    by_key = records_by_key(records)
    rows = sorted(((latency_of(ms, statistic), key, ms) for key, ms in by_key.items()), reverse=True)
    rounds = sorted({len(ms) for _, _, ms in rows})
    rounds_text = "/".join(map(str, rounds)) if len(rounds) < 4 else f"{rounds[0]}–{rounds[-1]}"
    table = Table(
        title=f"{len(rows)} workloads measured ({rounds_text} rounds each; ms = {STATISTIC_TEXT[statistic]}), "
        "slowest first",
        title_justify="left",
    )
    flag_width = 14
    key_width = max(16, out.width - (8 + 5 + flag_width) - 13)  # 13: borders and padding of four columns
    table.add_column("workload", no_wrap=True, overflow="ellipsis", width=key_width)
    for col, width in (("ms", 8), ("CV", 5)):
        table.add_column(col, no_wrap=True, justify="right", width=width)
    table.add_column("flags", no_wrap=True, overflow="ellipsis", width=flag_width)
    for ms_value, key, ms in rows[:limit]:
        flags = sorted({SHORT_FLAGS.get(f, f) for m in ms for f in m.flags})
        table.add_row(
            _compact_key(key), f"{ms_value:.4g}", f"{median(m.summary.cv for m in ms):.0%}", ",".join(flags),
        )
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} faster ones not shown: `hwprof show` lists them all"
        table.caption_justify = "left"
    out.print(table)


def export(
    store: Optional[Path] = StoreOpt,
    fmt: ExportFormat = typer.Option(ExportFormat("csv"), "--format", "-f", help="csv or parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    device: Optional[str] = typer.Option(None, help="Only this device's records."),
    force: bool = ForceOpt,
) -> None:
    """Export the store: one row per record with statistics, raw samples and fingerprint."""
    from hwprof.measure.store import Store

    path = store or default_store()
    if not path.exists():
        raise HwprofError(f"store {path} does not exist; measure first or pass --store")
    with Store(path) as db, output_file(output, force=force, inputs=[path]) as tmp:
        n = db.export(tmp, fmt.value, device=device)
    out.print(f"wrote {n} records to {output}")


def show(
    store: Optional[Path] = StoreOpt,
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Only this device's records."),
    fmt: SummaryFormat = typer.Option(SummaryFormat("table"), "--format", help="table, or json for scripts."),
) -> None:
    """Every workload in the store: one row each (its latency by the device's statistic), slowest first."""
    from hwprof.measure.records import latency_of
    from hwprof.measure.store import Store
    from hwprof.measure.stats import combine

    path = store or default_store()
    if not path.is_file():
        raise HwprofError(f"store {path} does not exist; measure first or pass --store")
    groups: dict[tuple[str, str, str, str], list] = {}
    with Store(path) as db:
        for m in db.iter_records(device=device):
            groups.setdefault((m.device, m.kind, m.space, m.key), []).append(m)
        stats = {d: db.statistic(d) for d, *_ in groups}
    rows = sorted(((latency_of(ms, stats[ident[0]]), ident, ms) for ident, ms in groups.items()), reverse=True)
    if fmt.value == "json":
        import json

        typer.echo(json.dumps([
            {"device": d, "kind": k, "space": sp, "key": key, "ms": v, "statistic": stats[d],
             "median_ms": combine([m.samples_ms for m in ms]), "rounds": len(ms),
             "flags": sorted({f for m in ms for f in m.flags})} for v, (d, k, sp, key), ms in rows
        ]))
        return
    shown = ", ".join(f"{d}: {STATISTIC_TEXT[s]}" for d, s in stats.items())
    table = Table(title=f"{len(rows)} workloads in {path}" + (f" (ms = {shown})" if shown else ""), title_justify="left")
    table.add_column("workload", overflow="fold", ratio=1, min_width=16)
    for col in ("ms", "rounds", "device", "space", "flags"):
        table.add_column(col, justify="right" if col in ("ms", "rounds") else "left")
    for value, (d, k, sp, key), ms in rows:
        table.add_row(key, f"{value:.4g}", str(len(ms)), d, sp or "-", ",".join(sorted({f for m in ms for f in m.flags})))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(command(measure))
    app.command()(command(export))
    app.command()(command(show))
