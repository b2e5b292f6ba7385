"""The ``hwprof`` command line: one module per command group.

=================  ===================================================================
module             commands
=================  ===================================================================
:mod:`.catalog`    ``devices``, ``spaces``, ``device show``, ``device tune``, ``kernels``
:mod:`.measure`    ``measure``, ``export``, ``show``
:mod:`.tables`     ``lut build``, ``lut export``, ``import``
:mod:`.predict`    ``fit-predictor``, ``evaluate``, ``predict``
:mod:`.android`    ``fake-phone``
:mod:`.search`     ``searchers``, ``search``
=================  ===================================================================

Results go to stdout (:data:`out`), warnings and errors to stderr (:data:`err`).
One error handler (:func:`command`) turns every :class:`~hwprof.errors.HwprofError`
into one line and exit status 2; one warning channel prints every
:class:`~hwprof.errors.HwprofWarning` as ``hwprof: warning: ...``. Choices
(predictor kinds, formats, statistics) come from the registries.

The top of the data flow: may import every other hwprof package.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable

import typer
from rich.console import Console

from hwprof.errors import HwprofError, HwprofWarning

app = typer.Typer(help="Hardware latency profiling and prediction for hardware-aware NAS.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)

#: Command-group modules, each with ``register(app)``.
GROUPS = ("catalog", "measure", "tables", "predict", "android", "search")


def report_error(exc: HwprofError) -> None:
    """Print a hwprof error as the one line users see."""
    err.print(f"hwprof: error: {exc}", markup=False, highlight=False)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, HwprofWarning):
        err.print(f"hwprof: warning: {message}", markup=False, highlight=False)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: hwprof errors become one line on stderr and exit status 2; warnings print as lines."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", HwprofWarning)
            warnings.showwarning = _show_warning
            try:
                return fn(*args, **kwargs)
            except HwprofError as exc:
                report_error(exc)
                raise typer.Exit(2) from None

    return run


def choices(name: str, values: Iterable[str]) -> type[Enum]:
    """A string Enum of a registry's names, for typer options."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


def default_store() -> Path:
    """``$HWPROF_STORE`` or ``hwprof.sqlite`` in the working directory."""
    return Path(os.environ.get("HWPROF_STORE", "hwprof.sqlite"))


for _group in GROUPS:
    importlib.import_module(f"hwprof.cli.{_group}").register(app)


def main() -> None:
    """Console entry point: run the app; errors outside a command get the same one-line form."""
    try:
        code = app(standalone_mode=False)  # click returns a command's typer.Exit code here
    except HwprofError as exc:
        report_error(exc)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("hwprof: aborted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors of typer's (vendored) click show themselves and carry their exit code.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "choices", "command", "default_store", "err", "main", "out", "report_error"]
