"""Commands for tables and predictors: ``lut build|export``, ``import``, ``fit-predictor``, ``evaluate``, ``predict``.

Mounted on the main app by :func:`register`. Results go to stdout (rich
tables, or JSON with ``--format json``), warnings to stderr.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hwprof.errors import ConfigError, HwprofError, PredictorError

out = Console()
err = Console(stderr=True, soft_wrap=True)


class ImportFormat(str, Enum):
    proxylessnas_yaml = "proxylessnas-yaml"
    ofa_yaml = "ofa-yaml"
    tfnas_pkl = "tfnas-pkl"
    spnas_json = "spnas-json"
    lightnas_mlp = "lightnas-mlp"


class ExportFormat(str, Enum):
    proxylessnas_yaml = "proxylessnas-yaml"


class Statistic(str, Enum):
    median = "median"
    mean = "mean"
    min = "min"
    p90 = "p90"


class Kind(str, Enum):
    lut = "lut"
    lut_calibrated = "lut-calibrated"
    ridge = "ridge"
    mlp = "mlp"
    gbdt = "gbdt"
    transfer = "transfer"
    auto = "auto"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


# -- helpers ---------------------------------------------------------------------------------
def load_model(path: Path):
    """A latency table or a fitted predictor, whichever ``path`` holds."""
    from hwprof.lut import FORMAT as TABLE_FORMAT, load_table
    from hwprof.predictors import load_predictor

    if path.suffix == ".npz":
        return load_predictor(path)
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"model file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is neither a latency table nor a predictor (not JSON)") from None
    if isinstance(doc, dict) and doc.get("format") == TABLE_FORMAT:
        return load_table(path)
    return load_predictor(path)


def _model_space(model, space: Optional[str]):
    from hwprof.lut import LatencyTable
    from hwprof.spaces import space as get_space

    name = model.space if isinstance(model, LatencyTable) else model.space
    if space and name and space != name:
        raise PredictorError(f"the model is for space {name!r}, not {space!r}")
    if not (space or name):
        raise ConfigError("the table records no space; pass --space")
    return get_space(space or name)


def predict_with(model, sp, archs) -> np.ndarray:
    """Latency (ms) of ``archs`` from a table (LUT sum) or a predictor."""
    from hwprof.lut import LatencyTable

    if isinstance(model, LatencyTable):
        return np.array([model.arch_latency(sp, a) for a in archs], dtype=np.float64)
    return model.predict_archs(archs)


def _store_data(store: Path, device: str, sp, statistic: str = "median"):
    """Table (from op records, or None) and (archs, ms) from arch records of ``device``."""
    from hwprof.lut import build_table
    from hwprof.measurement import rounds_by_key
    from hwprof.stats import combine
    from hwprof.store import Store

    if not Path(store).is_file():
        raise ConfigError(f"store {store} does not exist; measure first (hwprof measure --store {store})")
    with Store(store) as st:
        ops = st.records(device=device, kind="op")
        arch_records = st.records(device=device, kind="arch", space=sp.name)
    table = build_table(ops, sp, statistic, source=str(store)) if ops else None
    by_key = rounds_by_key(arch_records)
    archs = [sp.parse(k) for k in by_key]
    y = np.array([combine(v, statistic) for v in by_key.values()], dtype=np.float64)
    return table, archs, y


def _metrics_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table("set", "n", "RMSE (ms)", "MAPE", "±5%", "±10%", "Spearman ρ", "Kendall τ", title=title)
    for name, m in rows:
        t.add_row(
            name, str(m.n), f"{m.rmse_ms:.4g}", f"{m.mape:.2%}", f"{m.within_5:.1%}", f"{m.within_10:.1%}",
            f"{m.spearman:.4f}", f"{m.kendall:.4f}",
        )
    return t


def _run(fn):
    """Run a command body; hwprof errors become one line on stderr and exit status 2."""
    try:
        return fn()
    except HwprofError as exc:
        err.print(f"hwprof: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None


# -- commands ------------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    """Add the table and predictor commands to ``app``."""
    lut_app = typer.Typer(help="Build and export latency lookup tables.", no_args_is_help=True)
    app.add_typer(lut_app, name="lut")

    @lut_app.command("build")
    def lut_build(
        store: Path = typer.Option(..., "--store", help="SQLite store with op records."),
        device: str = typer.Option(..., "--device", "-d", help="Device whose records to use."),
        space: str = typer.Option(..., "--space", "-s", help="Space whose [L, K] cells must all be present."),
        output: Path = typer.Option(..., "-o", "--output", help="Table file to write (JSON)."),
        statistic: Statistic = typer.Option(Statistic.median, "--statistic", help="Statistic of the raw samples."),
    ) -> None:
        """Build a lookup table from the op records of one device."""

        def body():
            from hwprof.lut import build_table
            from hwprof.spaces import space as get_space
            from hwprof.store import Store

            if not store.is_file():
                raise ConfigError(f"store {store} does not exist; run hwprof measure --ops first")
            sp = get_space(space)
            with Store(store) as st:
                table = build_table(st.records(device=device, kind="op"), sp, statistic.value, source=str(store))
            table.save(output)
            t = Table("table", "entries", "constant (ms)", "device", "batch", "statistic", "runtime")
            t.add_row(str(output), str(len(table)), f"{table.constant_ms:.4g}", device, str(table.batch),
                      statistic.value, str(table.metadata.get("runtime", "")))
            out.print(t)

        _run(body)

    @lut_app.command("export")
    def lut_export(
        table_path: Path = typer.Argument(..., help="Table file (hwprof JSON)."),
        fmt: ExportFormat = typer.Option(..., "--format", help="Format to write."),
        output: Path = typer.Option(..., "-o", "--output", help="File to write."),
    ) -> None:
        """Write a table in a format papers' code reads."""

        def body():
            from hwprof.formats import EXPORTERS
            from hwprof.lut import load_table

            EXPORTERS[fmt.value](load_table(table_path), output)
            out.print(f"wrote {output} ({fmt.value})")

        _run(body)

    @app.command("import")
    def import_cmd(
        fmt: ImportFormat = typer.Argument(..., help="Format of FILE."),
        file: Path = typer.Argument(..., help="Published table or predictor."),
        output: Path = typer.Option(..., "-o", "--output", help="hwprof table or predictor file to write."),
        device: Optional[str] = typer.Option(None, "--device", "-d", help="Device name to record."),
        batch: int = typer.Option(1, "--batch", help="Batch size the table was measured at (TF-NAS GPU: 32)."),
    ) -> None:
        """Import a published latency table or predictor."""

        def body():
            from hwprof.formats import PREDICTOR_IMPORTERS, TABLE_IMPORTERS

            if fmt.value in PREDICTOR_IMPORTERS:
                kwargs = {"device": device} if device else {}
                pred = PREDICTOR_IMPORTERS[fmt.value](file, **kwargs)
                pred.save(output)
                out.print(f"wrote {output}: {pred.kind} predictor of space {pred.space} ({pred.metadata['device']})")
                return
            kwargs = {"device": device} if device else {}
            if fmt.value != "spnas-json":
                kwargs["batch"] = batch
            table = TABLE_IMPORTERS[fmt.value](file, **kwargs)
            table.save(output)
            dropped = table.metadata.get("unrepresentable") or []
            if dropped:
                err.print(f"warning: {len(dropped)} entries have no hwprof op (e.g. {dropped[0]}); they were left out")
            out.print(f"wrote {output}: {len(table)} entries, constant {table.constant_ms:.4g} ms, space {table.space}")

        _run(body)

    @app.command("fit-predictor")
    def fit_predictor(
        space: str = typer.Option(..., "--space", "-s", help="Search space."),
        kind: Kind = typer.Option(Kind.auto, "--kind", help="Predictor kind."),
        output: Path = typer.Option(..., "-o", "--output", help="Predictor file (.json or .npz)."),
        data: Optional[Path] = typer.Option(None, "--data", help="CSV/Parquet of architectures and latencies."),
        arch_column: str = typer.Option("arch", "--arch-column", help="Column with architecture text."),
        target: Optional[str] = typer.Option(None, "--target", help="Column with latency in ms."),
        store: Optional[Path] = typer.Option(None, "--store", help="Store with arch (and op) records."),
        device: Optional[str] = typer.Option(None, "--device", "-d", help="Device (store records; recorded)."),
        table: Optional[Path] = typer.Option(None, "--table", help="Latency table for lut / lut-calibrated."),
        prior: Optional[List[Path]] = typer.Option(None, "--prior", help="Prior predictor (transfer); repeatable."),
        train_size: Optional[int] = typer.Option(None, "--train-size", help="Train on N random rows, test on the rest."),
        seed: int = typer.Option(0, "--seed", help="Seed of the train/test split and the model."),
        recent: Optional[float] = typer.Option(
            None,
            "--recent",
            help="gbdt/mlp: fraction of the latest rows (file or store order = measurement order) "
            "that sets the level; 0 = off (default 0.1).",
        ),
    ) -> None:
        """Fit a latency predictor and report its accuracy on held-out rows."""

        def body():
            from hwprof.evaluate import metrics, read_dataset
            from hwprof.lut import load_table
            from hwprof.predictors import make_predictor
            from hwprof.spaces import space as get_space

            sp = get_space(space)
            lut = load_table(table) if table else None
            if (data is None) == (store is None):
                raise ConfigError("give either --data FILE (with --target) or --store FILE --device NAME")
            if data is not None:
                if target is None:
                    raise ConfigError("--data needs --target COLUMN (latency in ms)")
                archs, y, _ = read_dataset(data, sp, arch_column, target)
                dev = device or target.removesuffix("_ms")
            else:
                if device is None:
                    raise ConfigError("--store needs --device NAME")
                store_table, archs, y = _store_data(store, device, sp)
                lut = lut or store_table
                dev = device
            if not archs:
                raise ConfigError("no architectures with latencies to fit on")
            params: dict[str, Any] = {"space": space, "device": dev}
            if kind.value in ("lut", "lut-calibrated") or (kind.value == "auto" and lut is not None):
                if lut is None:
                    raise ConfigError(f"--kind {kind.value} needs a table: --table FILE, or op records in --store")
                params["table"] = lut
            if kind.value == "auto" and lut is not None:
                params["kinds"] = ("ridge", "lut-calibrated", "gbdt", "mlp")
            if kind.value == "transfer":
                params["priors"] = [str(p) for p in (prior or [])]
            if kind.value in ("mlp", "gbdt", "auto"):
                params["seed"] = seed
            if recent is not None:
                if kind.value not in ("mlp", "gbdt"):
                    raise ConfigError("--recent applies to --kind gbdt and mlp")
                if not 0 <= recent <= 1:
                    raise ConfigError("--recent must be in [0, 1]")
                params["recent"] = recent
            X = sp.one_hot(archs)
            if train_size is not None:
                if not 0 < train_size <= len(archs):
                    raise ConfigError(f"--train-size must be in 1..{len(archs)}")
                order = np.random.default_rng(seed).permutation(len(archs))
                # both sets keep the rows' measurement order, which the level of gbdt/mlp relies on
                tr, te = np.sort(order[:train_size]), np.sort(order[train_size:])
            else:
                tr, te = np.arange(len(archs)), np.arange(0)
            model = make_predictor(kind.value, **params).fit(X[tr], y[tr])
            model.save(output)
            rows = [("train", metrics(y[tr], model.predict(X[tr])))]
            if len(te):
                rows.append(("held out", metrics(y[te], model.predict(X[te]))))
            title = f"{model.kind} on {space} / {dev} → {output}"
            if kind.value == "auto":
                title += f" (chose {model.chosen_kind_})"
            out.print(_metrics_table(title, rows))

        _run(body)

    @app.command("evaluate")
    def evaluate_cmd(
        model_path: Path = typer.Option(..., "--model", help="Predictor or table file."),
        data: Path = typer.Option(..., "--data", help="CSV/Parquet of architectures and latencies."),
        arch_column: str = typer.Option("arch", "--arch-column", help="Column with architecture text."),
        target: str = typer.Option(..., "--target", help="Column with measured latency in ms."),
        space: Optional[str] = typer.Option(None, "--space", "-s", help="Space (default: the model's)."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write a predicted-vs-measured scatter here."),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    ) -> None:
        """Accuracy of a predictor or table on labelled architectures."""

        def body():
            from hwprof.evaluate import metrics, read_dataset, scatter_plot

            model = load_model(model_path)
            sp = _model_space(model, space)
            archs, y, _ = read_dataset(data, sp, arch_column, target)
            pred = predict_with(model, sp, archs)
            m = metrics(y, pred)
            if plot is not None:
                scatter_plot(y, pred, plot, title=f"{model_path.name} on {data.name}:{target}")
            if fmt == OutputFormat.json:
                typer.echo(json.dumps({"model": str(model_path), "data": str(data), "target": target, **m.to_dict()}))
            else:
                out.print(_metrics_table(f"{model_path.name} on {data.name}:{target}", [("all", m)]))

        _run(body)

    @app.command("predict")
    def predict_cmd(
        archs: Optional[List[str]] = typer.Argument(None, help="Architectures in text form."),
        model_path: Path = typer.Option(..., "--model", help="Predictor or table file."),
        data: Optional[Path] = typer.Option(None, "--data", help="CSV/Parquet with an architecture column."),
        arch_column: str = typer.Option("arch", "--arch-column", help="Column with architecture text."),
        space: Optional[str] = typer.Option(None, "--space", "-s", help="Space (default: the model's)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write predictions as CSV."),
    ) -> None:
        """Predicted latency (ms) of architectures."""

        def body():
            import pandas as pd

            from hwprof.evaluate import read_dataset

            model = load_model(model_path)
            sp = _model_space(model, space)
            if data is not None:
                parsed, _, frame = read_dataset(data, sp, arch_column)
            elif archs:
                parsed = [sp.parse(a) for a in archs]
                frame = pd.DataFrame({arch_column: [a.encode() for a in parsed]})
            else:
                raise ConfigError("give architectures as arguments or --data FILE --arch-column NAME")
            pred = predict_with(model, sp, parsed)
            if output is not None:
                frame = frame.copy()
                frame["predicted_ms"] = pred
                frame.to_csv(output, index=False)
                out.print(f"wrote {len(pred)} predictions to {output}")
            elif data is None:
                for p in pred:
                    typer.echo(f"{p:.4f}")
            else:
                t = Table(arch_column, "predicted (ms)")
                for a, p in zip(parsed, pred):
                    t.add_row(a.encode(), f"{p:.4f}")
                out.print(t)

        _run(body)


__all__ = ["load_model", "predict_with", "register"]
