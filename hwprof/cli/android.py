"""Android commands of the ``hwprof`` CLI: ``hwprof fake-phone`` (a stand-in phone for dry runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from hwprof.cli import command
from hwprof.cli.outputs import ForceOpt, check_output, output_file

DEMO_PORT = 15037


def fake_phone(
    port: int = typer.Option(DEMO_PORT, "--port", "-p", min=0, max=65535, help="Port of the loopback adb server (127.0.0.1)."),
    serial: str = typer.Option("HWPROF-FAKE-0001", "--serial", help="Serial the stand-in phone lists."),
    root: Optional[Path] = typer.Option(None, "--root", help="Sandbox folder (default: a temporary one, removed at exit)."),
    write_config: Optional[Path] = typer.Option(
        None, "--write-config", help="Write a device config (TOML) pointing at this phone to this path."
    ),
    client: str = typer.Option("adbutils", "--client", help="Client the written config uses: adbutils or adb."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0, help="Stop after this many seconds (default: at Ctrl-C)."),
    force: bool = ForceOpt,
) -> None:
    """Run a stand-in phone: a loopback adb server whose benchmark_model runs LiteRT on this CPU.

    For dry runs of the Android path without a phone. Its timings are this
    machine's, never a phone's. In another terminal:
    ``hwprof measure --device fake-phone --space spnas --ops`` (the built-in
    fake-phone config points at port 15037), or ``adb -P 15037 devices``.
    """
    from hwprof.testing.fake_adb import FakePhone, config_toml

    if write_config is not None:
        check_output(write_config, force=force, option="--write-config")
    if client not in ("adbutils", "adb"):
        raise typer.BadParameter(f"--client must be adbutils or adb, got {client[:100]!r}")
    phone = FakePhone(root=root, serial=serial, port=port)
    try:
        phone.start()
    except OSError as exc:
        phone.stop()
        raise typer.BadParameter(f"cannot listen on 127.0.0.1:{port}: {exc}; pick another --port") from None
    try:
        if write_config is not None:
            with output_file(write_config, force=force, option="--write-config") as tmp:
                tmp.write_text(config_toml(phone, name=write_config.stem, client=client))
        typer.echo(f"stand-in phone {phone.serial} listening on 127.0.0.1:{phone.port} (sandbox {phone.root})")
        typer.echo(f"  adb:    adb -P {phone.port} devices    adb -P {phone.port} -s {phone.serial} shell getprop")
        if write_config is not None:
            typer.echo(f"  config: {write_config}  →  hwprof measure --device {write_config} --space spnas --ops")
        elif phone.port == DEMO_PORT:
            typer.echo("  hwprof: hwprof measure --device fake-phone --space spnas --ops")
        else:
            typer.echo("  hwprof: pass --write-config PATH for a device config that points at this port")
        typer.echo("Ctrl-C stops it." if seconds is None else f"stopping after {seconds:g} s.")
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        phone.stop()
        typer.echo("stand-in phone stopped")


def register(app: typer.Typer) -> None:
    """Add the Android commands to the ``hwprof`` app."""
    app.command("fake-phone")(command(fake_phone))
