"""What there is: ``hwprof devices``, ``hwprof spaces``, ``hwprof device show|tune``, ``hwprof kernels``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from hwprof.cli import choices, command, out
from hwprof.errors import HwprofError

KernelFormat = choices("KernelFormat", ("table", "json"))


def devices() -> None:
    """List device configs: built-in and user ones, one line each."""
    from hwprof.devices import config_files, open_device, parse_config

    table = Table()
    for col in ("device", "backend"):
        table.add_column(col, no_wrap=True)
    for col in ("batch", "threads", "status", "description", "config"):
        table.add_column(col, overflow="fold" if col != "status" else "ellipsis", max_width=None if col != "status" else 24)
    for name, path in sorted(config_files().items()):
        try:
            c = parse_config(path)
        except HwprofError as exc:
            table.add_row(name, "[red]invalid[/red]", "", "", "", str(exc), str(path))
            continue
        table.add_row(name, c.backend, str(c.batch), str(c.threads), _status(open_device, c), c.description, str(path))
    out.print(table)


def _status(open_device, config) -> str:
    """What the backend says of its device (attached, local, ...), or why it cannot be opened."""
    try:
        dev = open_device(config)
    except HwprofError as exc:
        return "unavailable: " + str(exc).split(";")[0][:36]
    try:
        text = dev.status() if hasattr(dev, "status") else "configured"
        return text.split(";")[0][:48]
    except HwprofError as exc:
        return "unavailable: " + str(exc).split(";")[0][:36]
    finally:
        dev.close()


def spaces() -> None:
    """List the built-in search spaces."""
    from hwprof.spaces import SPACES

    table = Table("space", "layers", "candidates", "legal choices", "resolution", "description")
    for name, sp in SPACES.items():
        res = f"{min(sp.resolutions)}-{max(sp.resolutions)}" if sp.elastic_resolution else str(sp.resolutions[0])
        table.add_row(name, str(sp.num_layers), str(sp.max_choices), str(int(sp.mask.sum())), res, sp.description)
    out.print(table)


def device_show(name: str = typer.Argument(..., help="Device name or TOML path.")) -> None:
    """Identity, runtime and current state of a device."""
    from hwprof.devices import load_config, open_device
    from hwprof.measure.protocol import plan_for

    config = load_config(name)
    plan_for(config)  # a bad [protocol] value is an error here too, not first at `measure`
    dev = open_device(config)
    try:
        info = dev.describe() if hasattr(dev, "describe") else {**dev.fingerprint(), **dev.environment()}
    finally:
        dev.close()
    table = Table("field", "value", title=name)
    for k, v in info.items():
        table.add_row(k, str(v))
    out.print(table)


def device_tune(name: str = typer.Argument(..., help="Device name or TOML path.")) -> None:
    """Lock what can be locked for stable timings, and say what could not be done."""
    from hwprof.devices import open_device

    dev = open_device(name)
    try:
        lines = dev.tune() if hasattr(dev, "tune") else ["this device has no tuning steps; measure with 1 thread on a quiet machine"]
    finally:
        dev.close()
    for line in lines:
        out.print(line)


def kernels(
    onnx_path: Path = typer.Argument(..., metavar="MODEL.onnx", help="An ONNX model."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="N,C,H,W for a model with dynamic dimensions."),
    layout: bool = typer.Option(False, "--layout", help="Also list layout kernels (reshape, transpose, ...)."),
    fmt: KernelFormat = typer.Option(KernelFormat("table"), "--format", help="table, or json for scripts."),
) -> None:
    """The kernels a runtime executes for an ONNX model: conv + BN + activation, SE blocks, adds, ..."""
    from hwprof.artifacts.graph import kernels_of
    from hwprof.artifacts.model import parse_input_shape

    graph = kernels_of(onnx_path, parse_input_shape(input_shape))
    shown = [k for k in graph.kernels if layout or k.kind != "layout"]
    if fmt.value == "json":
        doc = {
            "input_shape": list(graph.input_shape),
            "mmacs": graph.macs / 1e6,
            "counts": graph.counts(),
            "unknown": graph.unknown,
            "kernels": [{"kind": k.kind, "key": k.key, "mmacs": k.macs / 1e6, "nodes": list(k.op_types)} for k in shown],
        }
        typer.echo(json.dumps(doc))
        return
    table = Table("#", "kind", "key", "MMACs", "ONNX nodes", title=f"{onnx_path.name}: {len(shown)} kernels, "
                  f"{graph.macs / 1e6:.1f} MMACs, input {list(graph.input_shape)}")
    for i, k in enumerate(shown):
        table.add_row(str(i), k.kind, k.key, f"{k.macs / 1e6:.2f}", " + ".join(k.op_types))
    out.print(table)
    if graph.unknown:
        out.print("op types without a kernel kind (kept as 'other'): "
                  + ", ".join(f"{t} ×{n}" for t, n in sorted(graph.unknown.items())))


def register(app: typer.Typer) -> None:
    app.command()(command(devices))
    app.command()(command(spaces))
    app.command()(command(kernels))
    device_app = typer.Typer(help="Inspect and tune one device.", no_args_is_help=True)
    device_app.command("show")(command(device_show))
    device_app.command("tune")(command(device_tune))
    app.add_typer(device_app, name="device")
