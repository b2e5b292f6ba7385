"""Lookup tables: ``hwprof lut build``, ``hwprof lut export``, ``hwprof import``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from hwprof.cli import choices, command, err, out
from hwprof.cli.outputs import ForceOpt, check_output, output_file
from hwprof.errors import ConfigError
from hwprof.measure.stats import STATISTICS
from hwprof.predictors import PREDICTOR_IMPORTERS
from hwprof.tables.formats import EXPORTERS, FORMATS

Statistic = choices("Statistic", STATISTICS)
Metric = choices("Metric", ("latency", "energy"))
ImportFormat = choices("ImportFormat", [*FORMATS, *PREDICTOR_IMPORTERS])
ExportFormat = choices("ExportFormat", EXPORTERS)


def lut_build(
    store: Path = typer.Option(..., "--store", help="SQLite store with op records."),
    device: str = typer.Option(..., "--device", "-d", help="Device whose records to use."),
    space: str = typer.Option(..., "--space", "-s", help="Space whose [L, K] cells must all be present."),
    output: Path = typer.Option(..., "-o", "--output", help="Table file to write (JSON)."),
    statistic: Optional[Statistic] = typer.Option(
        None, "--statistic", help="Statistic of the raw samples (default: the one the device's campaigns kept)."
    ),
    metric: Metric = typer.Option(
        Metric("latency"), "--metric", help="latency (ms) or energy per inference (mJ; records need power_w)."
    ),
    force: bool = ForceOpt,
) -> None:
    """Build a lookup table from the op records of one device."""

    from hwprof.tables.table import build_table
    from hwprof.spaces import space as get_space
    from hwprof.measure.store import Store

    if not store.is_file():
        raise ConfigError(f"store {store} does not exist; run hwprof measure --ops first")
    check_output(output, force=force, inputs=[store])
    sp = get_space(space)
    with Store(store) as st:
        stat = statistic.value if statistic is not None else st.statistic(device)
        table = build_table(st.records(device=device, kind="op"), sp, stat, source=str(store), metric=metric.value)
    with output_file(output, force=force, inputs=[store]) as tmp:
        table.save(tmp)
    unit = "mJ" if metric.value == "energy" else "ms"
    t = Table("table", "entries", f"constant ({unit})", "device", "batch", "statistic", "runtime")
    t.add_row(str(output), str(len(table)), f"{table.constant_ms:.4g}", device, str(table.batch),
              stat if metric.value == "latency" else f"{stat} × mean power",
              str(table.metadata.get("runtime", "")))
    out.print(t)
    rep = table.metadata.get("repeatability")
    if rep:
        from hwprof.measure.repeatability import Repeatability

        out.print(f"repeatability: {Repeatability(**rep)}", highlight=False)


def lut_export(
    table_path: Path = typer.Argument(..., help="Table file (hwprof JSON)."),
    fmt: ExportFormat = typer.Option(..., "--format", help="Format to write."),
    output: Path = typer.Option(..., "-o", "--output", help="File to write."),
    force: bool = ForceOpt,
) -> None:
    """Write a table in a format papers' code reads."""

    from hwprof.tables.table import load_table

    check_output(output, force=force, inputs=[table_path])
    table = load_table(table_path)
    with output_file(output, force=force, inputs=[table_path]) as tmp:
        EXPORTERS[fmt.value](table, tmp)
    out.print(f"wrote {output} ({fmt.value})")


def import_cmd(
    fmt: ImportFormat = typer.Argument(..., help="Format of FILE."),
    file: Path = typer.Argument(..., help="Published table or predictor."),
    output: Path = typer.Option(..., "-o", "--output", help="hwprof table or predictor file to write."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device name to record."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size the table was measured at (TF-NAS GPU: 32)."),
    force: bool = ForceOpt,
) -> None:
    """Import a published latency table or predictor."""

    check_output(output, force=force, inputs=[file])
    if not file.is_file():
        raise ConfigError(f"{file} does not exist or is not a file")
    if fmt.value in PREDICTOR_IMPORTERS:
        kwargs = {"device": device} if device else {}
        pred = PREDICTOR_IMPORTERS[fmt.value](file, **kwargs)
        with output_file(output, force=force, inputs=[file]) as tmp:
            pred.save(tmp)
        out.print(f"wrote {output}: {pred.kind} predictor of space {pred.space} ({pred.metadata['device']})")
        return
    kwargs = {"device": device} if device else {}
    if fmt.value != "spnas-json":
        kwargs["batch"] = batch
    table = FORMATS[fmt.value].read(file, **kwargs)
    with output_file(output, force=force, inputs=[file]) as tmp:
        table.save(tmp)
    dropped = table.metadata.get("unrepresentable") or []
    if dropped:
        err.print(
            f"hwprof: warning: {len(dropped)} entries have no hwprof op (e.g. {str(dropped[0])[:100]}); they were left out",
            markup=False, highlight=False,
        )
    out.print(f"wrote {output}: {len(table)} entries, constant {table.constant_ms:.4g} ms, space {table.space}")


def register(app: typer.Typer) -> None:
    lut_app = typer.Typer(help="Build and export latency lookup tables.", no_args_is_help=True)
    lut_app.command("build")(command(lut_build))
    lut_app.command("export")(command(lut_export))
    app.add_typer(lut_app, name="lut")
    app.command("import")(command(import_cmd))
