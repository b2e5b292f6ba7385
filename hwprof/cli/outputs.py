"""Safe output files: the one way a command writes a file.

Every command that writes a file (``-o/--output``, ``--plot``, ``--write-config``,
``search --out``) goes through :func:`check_output` (early, before any work)
and :func:`output_file` (at write time):

* an existing file is refused unless ``--force``;
* a file that is an input of the same command (the store, the model, the
  data, the table; compared as resolved paths and by inode) is refused even
  with ``--force``;
* a folder as target is refused; missing parent folders are created;
* the content goes to a temporary file in the target's folder, renamed over
  the target only when complete (:func:`os.replace` is atomic within one
  file system), so a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import typer

from hwprof.errors import ConfigError

#: The ``--force`` option every writing command takes.
ForceOpt = typer.Option(False, "--force", help="Overwrite the output file if it exists.")

#: Longest piece of a user value quoted in an error message.
QUOTE_CHARS = 100


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters, for error messages."""
    text = repr(value) if not isinstance(value, Path) else repr(str(value))
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-12:]} ({len(text)} chars)"


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: Path | str,
    *,
    force: bool = False,
    inputs: Iterable[Path | str | None] = (),
    option: str = "--output",
) -> Path:
    """Refuse an output path that would lose data or cannot be written; returns it as a Path.

    Parameters
    ----------
    path : Path or str
        The file to write.
    force : bool
        Allow replacing an existing file (never an input of the command).
    inputs : iterable of path
        Files the command reads (None entries are skipped).
    option : str
        The option's name, for messages.

    Raises
    ------
    ConfigError
        One line naming the path and what to do instead.
    """
    target = Path(path)
    if str(path) in ("", "."):
        raise ConfigError(f"{option} needs a file name")
    for src in inputs:
        if src is not None and _same(target, Path(src)):
            raise ConfigError(
                f"{option} {quote(target)} is also an input of this command; write to another file"
            )
    if target.is_dir():
        raise ConfigError(f"{option} {quote(target)} is a folder; give a file name inside it")
    if target.exists() or target.is_symlink():
        if not force:
            raise ConfigError(f"{quote(target)} exists; pass --force to overwrite it, or choose another {option}")
        if not target.is_file():
            raise ConfigError(f"{option} {quote(target)} is not a regular file; refusing to replace it")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {quote(target)}: {quote(parent)} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{option} {quote(target)}: folder {quote(parent)} is not writable")
            break
    return target


@contextmanager
def output_file(
    path: Path | str,
    *,
    force: bool = False,
    inputs: Iterable[Path | str | None] = (),
    option: str = "--output",
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary name keeps ``path``'s suffixes, so writers that choose a
    format by suffix (``.npz``, ``.png``, ``.parquet``) choose the same one.
    On an error the temporary file is removed and the target is untouched.

    Examples
    --------
    >>> with output_file("model.json", force=False) as tmp:  # doctest: +SKIP
    ...     model.save(tmp)
    """
    target = check_output(path, force=force, inputs=inputs, option=option)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of {quote(target)}: {exc.strerror or exc}") from None
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp{''.join(target.suffixes[-1:])}"
    try:
        yield tmp
        if not tmp.exists():
            raise ConfigError(f"nothing was written for {quote(target)}")
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"cannot write {quote(target)}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = ["ForceOpt", "QUOTE_CHARS", "check_output", "output_file", "quote"]
