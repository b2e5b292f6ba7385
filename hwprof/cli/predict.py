"""Predictors: ``hwprof fit-predictor``, ``hwprof evaluate``, ``hwprof predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer
from rich.table import Table

from hwprof.cli import choices, command, out
from hwprof.cli.outputs import ForceOpt, check_output, output_file, quote
from hwprof.errors import ConfigError, PredictorError
from hwprof.latency.load import load_source
from hwprof.predictors.evaluate import store_dataset
from hwprof.predictors import KINDS

Kind = choices("Kind", KINDS)
OutputFormat = choices("OutputFormat", ("table", "json"))


def _model_space(model, space: Optional[str]):
    from hwprof.spaces import space as get_space

    name = model.space
    if space and name and space != name:
        raise PredictorError(f"the model is for space {name!r}, not {space!r}")
    if not (space or name):
        raise ConfigError("the table records no space; pass --space")
    return get_space(space or name)


def predict_with(model, sp, archs) -> np.ndarray:
    """Latency (ms) of ``archs`` from a table or a predictor, through its latency model's ``score``
    (a kernel predictor prices each network's ONNX export)."""
    from hwprof.latency import latency_model
    from hwprof.kernels.predictor import KernelPredictor

    if isinstance(model, KernelPredictor):
        return model.predict_archs(sp, archs)

    return latency_model(model, space=sp).score(archs)


def _metrics_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table("set", "n", "RMSE (ms)", "MAPE", "±5%", "±10%", "Spearman ρ", "Kendall τ", title=title)
    for name, m in rows:
        t.add_row(
            name, str(m.n), f"{m.rmse_ms:.4g}", f"{m.mape:.2%}", f"{m.within_5:.1%}", f"{m.within_10:.1%}",
            f"{m.spearman:.4f}", f"{m.kendall:.4f}",
        )
    return t


#: Fewest training rows per kind: below them a fit is meaningless (no spread to rank, no fold to validate).
MIN_ROWS = {"lut": 1, "lut-calibrated": 2, "ridge": 2, "mlp": 10, "gbdt": 10, "transfer": 2, "auto": 10}


def check_training_rows(kind: str, y: np.ndarray, archs, rows: np.ndarray) -> None:
    """Refuse too few or non-positive rows for ``kind``; warn about rows far outside the rest and conflicting duplicates."""
    from hwprof.errors import warn

    need = MIN_ROWS.get(kind, 2)
    if len(y) < need:
        raise ConfigError(
            f"--kind {kind} needs at least {need} training rows, got {len(y)}; measure more architectures "
            "or use --kind lut with a table"
        )
    bad = np.flatnonzero(~np.isfinite(y) | (y <= 0))
    if len(bad):
        raise ConfigError(
            f"latencies must be positive and finite; {len(bad)} row(s) are not (e.g. row {int(rows[bad[0]]) + 1}: "
            f"{y[bad[0]]!r})"
        )
    if len(y) >= 5:
        logy = np.log(y)
        med = np.median(logy)
        mad = np.median(np.abs(logy - med)) or 1e-12
        far = np.flatnonzero(np.abs(logy - med) > max(10 * 1.4826 * mad, np.log(10)))
        if len(far):
            shown = ", ".join(f"row {int(rows[i]) + 1} ({y[i]:.4g} ms)" for i in far[:5])
            warn(
                f"{len(far)} training row(s) lie far outside the rest (median {np.exp(med):.4g} ms): {shown}; "
                "check them, they pull the fit"
            )
    groups: dict[str, list[int]] = {}
    for i in range(len(y)):
        groups.setdefault(archs[int(rows[i])].encode(), []).append(i)
    conflicts = [(k, g) for k, g in groups.items() if len(g) > 1 and y[g].max() > 2 * y[g].min()]
    if conflicts:
        k, g = conflicts[0]
        warn(
            f"{len(conflicts)} architecture(s) appear more than once with latencies over 2× apart, e.g. rows "
            f"{', '.join(str(int(rows[i]) + 1) for i in g[:4])} ({', '.join(f'{y[i]:.4g}' for i in g[:4])} ms)"
        )


def fit_predictor(
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Search space."),
    kernels: bool = typer.Option(
        False, "--kernels", help="Kernel regressors (one per kind) from a `measure --kernels` campaign in --store."
    ),
    kind: Kind = typer.Option(Kind("auto"), "--kind", help="Predictor kind."),
    output: Path = typer.Option(..., "-o", "--output", help="Predictor file (.json or .npz)."),
    data: Optional[Path] = typer.Option(None, "--data", help="CSV/Parquet of architectures and latencies."),
    arch_column: str = typer.Option("arch", "--arch-column", help="Column with architecture text."),
    target: Optional[str] = typer.Option(None, "--target", help="Column with latency in ms."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store with arch (and op) records."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device (store records; recorded)."),
    table: Optional[Path] = typer.Option(None, "--table", help="Latency table for lut / lut-calibrated."),
    prior: Optional[List[Path]] = typer.Option(None, "--prior", help="Prior predictor (transfer); repeatable."),
    train_size: Optional[int] = typer.Option(None, "--train-size", help="Train on N random rows, test on the rest."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the train/test split and the model."),
    recent: Optional[float] = typer.Option(
        None,
        "--recent",
        help="gbdt/mlp: fraction of the latest rows (file or store order = measurement order) "
        "that sets the level; 0 = off (default 0.1).",
    ),
    force: bool = ForceOpt,
) -> None:
    """Fit a latency predictor and report its accuracy on held-out rows."""

    from hwprof.predictors.evaluate import metrics, read_dataset
    from hwprof.tables.table import load_table
    from hwprof.predictors import make_predictor
    from hwprof.predictors.features import arch_matrix
    from hwprof.spaces import space as get_space

    inputs = [data, store, table, *(prior or [])]
    check_output(output, force=force, inputs=inputs)
    if output.suffix not in (".json", ".npz"):
        raise ConfigError(f"-o {quote(output)}: a predictor file ends in .json or .npz")
    if kernels:
        if store is None or device is None or data is not None or space is not None:
            raise ConfigError("--kernels fits on a store: give --store FILE --device NAME (and no --data, --space)")
        return _fit_kernels(store, device, output, seed, force)
    if space is None:
        raise ConfigError("give --space NAME (or --kernels)")
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
        store_table, archs, y = store_dataset(store, device, sp)
        lut = lut or store_table
        dev = device
    if not archs:
        raise ConfigError("no architectures with latencies to fit on")
    if kind.value != "transfer" and prior:
        raise ConfigError("--prior applies to --kind transfer")
    if kind.value == "transfer" and not prior:
        raise ConfigError("--kind transfer needs at least one --prior FILE (a predictor of another device)")
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
    X = arch_matrix(sp, archs)
    if train_size is not None:
        if not 0 < train_size <= len(archs):
            raise ConfigError(f"--train-size must be in 1..{len(archs)}")
        order = np.random.default_rng(seed).permutation(len(archs))
        # both sets keep the rows' measurement order, which the level of gbdt/mlp relies on
        tr, te = np.sort(order[:train_size]), np.sort(order[train_size:])
    else:
        tr, te = np.arange(len(archs)), np.arange(0)
    check_training_rows(kind.value, y[tr], archs, tr)
    model = make_predictor(kind.value, **params).fit(X[tr], y[tr])
    with output_file(output, force=force, inputs=inputs) as tmp:
        model.save(tmp)
    rows = [("train", metrics(y[tr], model.predict(X[tr])))]
    if len(te):
        rows.append(("held out", metrics(y[te], model.predict(X[te]))))
    title = f"{model.kind} on {space} / {dev} → {output}"
    if kind.value == "auto":
        scores = ", ".join(f"{k} {v['mape']:.2%}" for k, v in model.validation_.items())
        title += f" (chose {model.chosen_kind_}; MAPE on the latest {model.validation_rows_} rows: {scores})"
    out.print(_metrics_table(title, rows))


def _fit_kernels(store: Path, device: str, output: Path, seed: int, force: bool) -> None:
    """``fit-predictor --kernels``: one regressor per kernel kind, with its cross-validated accuracy."""
    from hwprof.errors import warn
    from hwprof.kernels.campaign import fusion_rules
    from hwprof.kernels.predictor import KernelPredictor, kernel_latencies
    from hwprof.measure.store import Store

    if not store.is_file():
        raise ConfigError(f"store {quote(store)} does not exist")
    db = Store(store)
    fps = {h: fp for h, fp in db.fingerprints(device).items()
           if any(True for _ in db.iter_records(device, "kernel", None, h))}
    if not fps:
        raise ConfigError(f"no kernel records of device {device!r} in {quote(store)}: run `hwprof measure --kernels`")
    if len(fps) > 1:
        raise ConfigError(f"kernel records of {device!r} under {len(fps)} environments in {quote(store)}; "
                          "fit one: measure into a store of its own")
    fp_hash, fp = next(iter(fps.items()))
    rules = fusion_rules(db, fp_hash)
    if rules is None:
        warn(f"no fusion test of {device} in the store: every pair is taken as fused")
    from hwprof.kernels.campaign import calibration_graphs

    stat = db.statistic(device)
    model, errors = KernelPredictor.fit(kernel_latencies(db.records(device, "kernel", None, fp_hash), stat), device,
                                        rules, fp, seed)
    graphs, measured = calibration_graphs(db.records(device, "arch", None, fp_hash), rules, model.batch, stat)
    calibration = model.calibrate(graphs, measured) if graphs else None
    with output_file(output, force=force, inputs=[store]) as tmp:
        model.save(tmp)
    t = Table("kind", "kernels", "MAPE (5-fold)", "±10%", "±20%",
              title=f"kernel regressors of {device} → {output} (floor {model.floor_ms * 1000:.1f} µs a call)")
    for kind in sorted(errors):
        e = np.abs(errors[kind][np.isfinite(errors[kind])])
        t.add_row(kind, str(model.kinds[kind].n_train), f"{e.mean():.2%}" if len(e) else "-",
                  f"{(e <= 0.1).mean():.1%}" if len(e) else "-", f"{(e <= 0.2).mean():.1%}" if len(e) else "-")
    out.print(t)
    if calibration is None:
        out.print("not calibrated: no networks measured end to end in the store (measure --kernels --calibrate N)")
    else:
        scales = ", ".join(f"{k} ×{v:.2f}" for k, v in model.scale.items())
        out.print(f"calibrated on {len(graphs)} networks: MAPE {calibration['mape_before']:.2%} → "
                  f"{calibration['mape_after']:.2%} (on those networks); {scales}")


def _predict_onnx(predictor, onnx: Path, input_shape: Optional[str], fmt: str) -> None:
    """``predict --onnx``: a model's total and its per-kernel breakdown."""
    from hwprof.artifacts.model import parse_input_shape

    pred = predictor.predict_model(onnx, parse_input_shape(input_shape))
    if fmt == "json":
        typer.echo(json.dumps({"model": str(onnx), "device": predictor.device, **pred.to_dict()}))
        return
    t = Table("#", "kind", "key", "ms", "share", title=f"{onnx.name} on {predictor.device}: {pred.total_ms:.3f} ms "
              f"(floor {pred.floor_ms:.3f} ms + {len(pred.kernels)} kernels)", title_justify="left")
    for i, r in enumerate(pred.kernels):
        if r.kind != "layout":
            share = f"{r.ms / pred.total_ms:.1%}" if r.priced else "unpriced"
            t.add_row(str(i), r.kind, r.key, f"{r.ms:.4f}", share)
    out.print(t)
    if pred.unpriced:
        out.print("unpriced: " + ", ".join(f"{k} ×{v}" for k, v in sorted(pred.unpriced.items())))
    typer.echo(f"{pred.total_ms:.4f}")


def evaluate_cmd(
    model_path: Path = typer.Option(..., "--model", help="Predictor or table file."),
    data: Path = typer.Option(..., "--data", help="CSV/Parquet of architectures and latencies."),
    arch_column: str = typer.Option("arch", "--arch-column", help="Column with architecture text."),
    target: str = typer.Option(..., "--target", help="Column with measured latency in ms."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Space (default: the model's)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a predicted-vs-measured scatter here."),
    fmt: OutputFormat = typer.Option(OutputFormat("table"), "--format", help="table or json."),
    force: bool = ForceOpt,
) -> None:
    """Accuracy of a predictor or table on labelled architectures."""

    from hwprof.predictors.evaluate import check_plot_path, metrics, read_dataset, scatter_plot

    if plot is not None:
        check_output(plot, force=force, inputs=[model_path, data], option="--plot")
        check_plot_path(plot)
    model = load_source(model_path)
    sp = _model_space(model, space)
    archs, y, _ = read_dataset(data, sp, arch_column, target)
    pred = predict_with(model, sp, archs)
    m = metrics(y, pred)
    if plot is not None:
        with output_file(plot, force=force, inputs=[model_path, data], option="--plot") as tmp:
            scatter_plot(y, pred, tmp, title=f"{model_path.name} on {data.name}:{target}")
    if fmt.value == "json":
        typer.echo(json.dumps({"model": str(model_path), "data": str(data), "target": target, **m.to_dict()}))
    else:
        out.print(_metrics_table(f"{model_path.name} on {data.name}:{target}", [("all", m)]))


def predict_cmd(
    archs: Optional[List[str]] = typer.Argument(None, help="Architectures in text form."),
    model_path: Path = typer.Option(..., "--model", help="Predictor, table or kernel predictor file."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="With a kernel predictor: an ONNX model to price."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="With --onnx: N,C,H,W for dynamic dimensions."),
    fmt: OutputFormat = typer.Option(OutputFormat("table"), "--format", help="With --onnx: table or json."),
    data: Optional[Path] = typer.Option(None, "--data", help="CSV/Parquet with an architecture column."),
    arch_column: str = typer.Option("arch", "--arch-column", help="Column with architecture text."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Space (default: the model's)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write predictions as CSV."),
    force: bool = ForceOpt,
) -> None:
    """Predicted latency (ms) of architectures."""

    import pandas as pd

    from hwprof.predictors.evaluate import read_dataset

    from hwprof.kernels.predictor import is_kernel_predictor, KernelPredictor

    if output is not None:
        check_output(output, force=force, inputs=[model_path, data])
    if data is not None and archs:
        raise ConfigError("give architectures as arguments or --data FILE, not both")
    kernel = is_kernel_predictor(model_path)
    if onnx is not None:
        if not kernel:
            raise ConfigError(f"--onnx needs a kernel predictor (`fit-predictor --kernels`); {quote(model_path)} is not one")
        return _predict_onnx(KernelPredictor.load(model_path), onnx, input_shape, fmt.value)
    if kernel:
        if space is None:
            raise ConfigError("a kernel predictor prices --onnx FILE, or architectures of --space NAME")
        from hwprof.spaces import space as get_space

        model: Any = KernelPredictor.load(model_path)
        sp = get_space(space)
    else:
        model = load_source(model_path)
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
        with output_file(output, force=force, inputs=[model_path, data]) as tmp:
            frame.to_csv(tmp, index=False)
        out.print(f"wrote {len(pred)} predictions to {output}")
    elif data is None:
        for p in pred:
            typer.echo(f"{p:.4f}")
    else:
        t = Table(arch_column, "predicted (ms)")
        for a, p in zip(parsed, pred):
            t.add_row(a.encode(), f"{p:.4f}")
        out.print(t)


def register(app: typer.Typer) -> None:
    app.command("fit-predictor")(command(fit_predictor))
    app.command("evaluate")(command(evaluate_cmd))
    app.command("predict")(command(predict_cmd))
