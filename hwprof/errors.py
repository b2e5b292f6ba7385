"""Typed errors of hwprof.

Every error says what went wrong and what to do next. All derive from
:class:`HwprofError`, so a caller can catch the whole family at once; each
also derives from the closest builtin (``ValueError``, ``KeyError``, ...) so
generic handlers keep working.
"""

from __future__ import annotations


class HwprofError(Exception):
    """Base class of every error hwprof raises on purpose."""


class ConfigError(HwprofError, ValueError):
    """A malformed or inconsistent configuration file or option."""


class SpaceError(HwprofError, ValueError):
    """An unknown search space, or an architecture that is not legal in it."""


class OpSpecError(HwprofError, ValueError):
    """An operator key or field that cannot be decoded or is inconsistent."""


class DeviceError(HwprofError, RuntimeError):
    """A device that is unknown, unreachable, or dropped mid-run."""


class MeasurementError(HwprofError, RuntimeError):
    """A measurement that could not be taken (runtime crash, bad output)."""


class StoreError(HwprofError, RuntimeError):
    """A store file that is corrupt, foreign, or of an unknown schema."""


class FingerprintMismatchError(HwprofError, ValueError):
    """Records measured under different environments that must not be merged."""


class MissingEntryError(HwprofError, KeyError):
    """A lookup-table entry that is absent; never replaced by a default."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class PredictorError(HwprofError, ValueError):
    """A predictor file or input that does not fit (space, device, shape)."""


class MissingDependencyError(HwprofError, ImportError):
    """An optional dependency that is not installed."""


def require(module: str, extra: str):
    """Import an optional dependency or fail with the exact install line.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"onnxruntime"``.
    extra : str
        The hwprof extra that installs it, e.g. ``"onnx"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        When the import fails; the message gives ``pip install 'hwprof[extra]'``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'hwprof[{extra}]'"
        ) from exc


def nearest(word: str, known) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_keys(where: str, table: str, given, known) -> None:
    """Raise :class:`ConfigError` for keys of ``given`` not in ``known``, naming the nearest known key."""
    known = list(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        first = unknown[0]
        raise ConfigError(
            f"{where}unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(u[:60]) for u in unknown[:5])} "
            f"in [{table}]{nearest(first, known)} (known: {', '.join(known) or 'none'})"
        )


class HwprofWarning(UserWarning):
    """A measurement-quality or data warning: the result stands, but says what to check next."""


def warn(message: str) -> None:
    """The one warning channel of the library: a :class:`HwprofWarning`.

    The CLI prints each as one ``hwprof: warning: ...`` line on stderr; library
    users see them through :mod:`warnings` and can filter or escalate them.
    """
    import warnings

    warnings.warn(message, HwprofWarning, stacklevel=2)
