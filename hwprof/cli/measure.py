"""Measuring into the store: ``hwprof measure`` and ``hwprof export``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hwprof.cli import choices, command, default_store, err, out
from hwprof.errors import HwprofError

DEFAULT_DEVICE = "cpu"
ExportFormat = choices("ExportFormat", ("csv", "parquet"))
StoreOpt = typer.Option(None, "--store", help="SQLite store (default: $HWPROF_STORE or ./hwprof.sqlite).")


def measure(
    device: str = typer.Option(DEFAULT_DEVICE, "--device", "-d", help="Device name or TOML path."),
    space: str = typer.Option("proxylessnas", "--space", "-s", help="Search space."),
    ops: bool = typer.Option(False, "--ops", help="Measure every distinct operator of the space."),
    archs: int = typer.Option(0, "--archs", help="Measure N random architectures end to end."),
    seed: int = typer.Option(0, "--seed", help="Seed of the architecture sample."),
    store: Optional[Path] = StoreOpt,
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size (default: the device's)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input resolution (elastic spaces)."),
    width_steps: int = typer.Option(0, "--width-steps", help="Also sweep mid channels at N points (tfnas)."),
    target_ci: Optional[float] = typer.Option(None, help="Target half-width of the median's 95% CI (0.01 = ±1%)."),
    max_runs: Optional[int] = typer.Option(None, help="Cap on timed runs per workload."),
    min_runs: Optional[int] = typer.Option(None, help="Timed runs before the CI target is checked."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Cap on timing seconds per workload."),
    warmup_runs: Optional[int] = typer.Option(None, help="Warm-up runs per workload."),
    rounds: Optional[int] = typer.Option(None, help="Passes per workload; its latency is the median over them."),
    limit: Optional[int] = typer.Option(None, help="Measure at most N workloads (for a quick look)."),
    allow_new_fingerprint: bool = typer.Option(False, help="Append although the store has this device under another environment."),
    workdir: Optional[Path] = typer.Option(None, help="Keep the exported artifacts in this folder."),
) -> None:
    """Measure operators (--ops) or random architectures (--archs N) on a device into the store."""
    import dataclasses

    from hwprof.measure.campaign import arch_workloads, op_workloads, run_campaign
    from hwprof.measure.protocol import plan_for
    from hwprof.devices import load_config, open_device
    from hwprof.spaces import space as get_space
    from hwprof.measure.store import Store

    if ops == bool(archs):
        raise typer.BadParameter("give exactly one of --ops or --archs N")
    config = load_config(device)
    if batch is not None:
        config = dataclasses.replace(config, batch=batch)
    plan = plan_for(config).updated(
        {"target_ci": target_ci, "max_runs": max_runs, "min_runs": min_runs, "max_time_s": max_time, "warmup_runs": warmup_runs,
         "rounds": rounds}
    )
    sp = get_space(space)
    work = op_workloads(sp, resolution, config.batch, width_steps) if ops else arch_workloads(sp, archs, seed, config.batch)
    if limit is not None:
        work = work[:limit]
    db = Store(store or default_store())
    dev = open_device(config)
    what = f"{len(work)} {'operators' if ops else 'architectures'} of {sp.name} on {config.name}"
    err.print(f"hwprof: measuring {what} into {db.path}")
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
            report = run_campaign(
                dev,
                work,
                db,
                plan,
                workdir=workdir,
                allow_new_fingerprint=allow_new_fingerprint,
                on_record=lambda m, w: progress.advance(task),
                on_plan=lambda r: progress.update(task, completed=r.planned * r.rounds - r.pending),
            )
    finally:
        dev.close()
    _print_records(report.records)
    for line in report.flag_summary():
        err.print(f"hwprof: warning: {line}", highlight=False)
    new = len(report.records)
    summary = (
        f"{new} new records ({plan.rounds} round(s) per workload), {report.skipped} workloads already in the store, "
        f"{len(report.failed)} failed, {report.wall_s:.1f} s"
    )
    if new == 0 and not report.failed and not report.interrupted:
        summary = f"nothing new to measure: all {report.planned} workloads are already in {db.path}"
    out.print(summary)
    if report.interrupted:
        err.print(f"hwprof: stopped early ({report.interrupted}); every finished record is kept. Re-run to resume.")
        raise typer.Exit(130 if "user" in report.interrupted else 3)
    if report.failed:
        raise typer.Exit(1)


def _print_records(records, limit: int = 40) -> None:
    """One row per workload: the median over its new rounds and their spread."""
    if not records:
        return
    from statistics import median

    from hwprof.measure.stats import combine

    by_key: dict[str, list] = {}
    for m in records:
        by_key.setdefault(m.key, []).append(m)
    table = Table("median ms", "rounds", "round spread", "runs", "CV", "flags", title="new records")
    table.add_column("workload", overflow="fold")
    keys = list(by_key)
    shown = keys if len(keys) <= limit else keys[: limit // 2] + keys[-limit // 2 :]
    for key in shown:
        ms = by_key[key]
        medians = [m.median_ms for m in ms]
        flags = sorted({f for m in ms for f in m.flags})
        table.add_row(
            f"{combine([m.samples_ms for m in ms]):.4f}",
            str(len(ms)),
            f"{max(medians) / min(medians) - 1:.1%}",
            str(sum(m.summary.n for m in ms)),
            f"{median(m.summary.cv for m in ms):.1%}",
            ",".join(flags),
            key,
        )
    if len(keys) > limit:
        table.caption = f"{len(keys) - limit} rows not shown; `hwprof export` writes them all"
    out.print(table)


def export(
    store: Optional[Path] = StoreOpt,
    fmt: ExportFormat = typer.Option(ExportFormat("csv"), "--format", "-f", help="csv or parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    device: Optional[str] = typer.Option(None, help="Only this device's records."),
) -> None:
    """Export the store: one row per record with statistics, raw samples and fingerprint."""
    from hwprof.measure.store import Store

    path = store or default_store()
    if not path.exists():
        raise HwprofError(f"store {path} does not exist; measure first or pass --store")
    n = Store(path).export(output, fmt.value, device=device)
    out.print(f"wrote {n} records to {output}")


def register(app: typer.Typer) -> None:
    app.command()(command(measure))
    app.command()(command(export))
