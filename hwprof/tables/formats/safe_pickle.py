"""Reading untrusted files: a pickle reader that resolves only builtin containers and numbers."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from hwprof.errors import ConfigError

_SAFE_GLOBALS = {
    ("builtins", n)
    for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes")
} | {("collections", "OrderedDict"), ("__builtin__", "dict"), ("__builtin__", "list"), ("__builtin__", "set")}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only builtin containers and numbers.

    Any other global (``os.system``, ``builtins.eval``, numpy, torch, ...)
    raises :class:`~hwprof.errors.ConfigError` before it can be called.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise ConfigError(
            f"refused to unpickle global {module}.{name}: latency pickles may hold only dicts, lists and "
            "numbers. The file is not a plain table (or is hostile); convert it to JSON with the tool that wrote it."
        )


def safe_pickle_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except ConfigError:
        raise
    except Exception as exc:  # a truncated or non-pickle file
        raise ConfigError(f"cannot read pickle ({type(exc).__name__}: {str(exc)[:100]})") from None


def read_file(path: str | Path, mode: str = "r"):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist or is not a file")
    try:
        return path.read_bytes() if mode == "rb" else path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (binary, e.g. a pickle?); check the format name") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
