"""Devices: TOML configs, the :class:`Device` protocol and the backend registry.

A device runs model files (:class:`~hwprof.artifacts.record.Artifact`) and
knows nothing of search spaces: it imports only :mod:`hwprof.errors` and the
artifact record. Backends: :mod:`.local` (ONNX Runtime, LiteRT, torch on this
CPU, through :mod:`.worker`), :mod:`.android` (phones over :mod:`.adb_transport`,
timed by TFLite's ``benchmark_model``, parsed by :mod:`.benchmark_model`),
:mod:`.gpu` (PyTorch on a CUDA GPU), :mod:`.tensorrt` (TensorRT on a local GPU),
:mod:`.board` (boards over :mod:`.ssh_transport`, timed by ``trtexec``, parsed
by :mod:`.trtexec`, power from :mod:`.tegrastats`); power meters in :mod:`.power`;
phones and boards share retries and clean-up through :mod:`.remote`.

A device config is a TOML file::

    [device]
    name = "cpu"                      # defaults to the file stem
    description = "Local CPU, ONNX Runtime, 1 intra-op thread"
    backend = "onnxruntime"           # a name registered in the hwprof.devices entry-point group
    batch = 1
    threads = 1

    [protocol]                        # optional overrides of hwprof.measure.protocol.Plan (checked by plan_for)
    target_ci = 0.01

    [backend]                         # options the backend reads (serial, binary path, ...)

    [tuning]                          # optional steps `hwprof device tune` performs

Configs are looked up by name in, in order: the folders of ``HWPROF_DEVICE_PATH``
(``:``-separated), ``./device_configs``, ``~/.config/hwprof/devices``, and the
built-in ``device_configs/`` of this package. A path to a ``.toml`` file works too.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

from hwprof import __version__
from hwprof.artifacts.record import Artifact
from hwprof.errors import ConfigError, unknown_keys

#: hwprof's major.minor: the part of its version that enters a fingerprint (a patch release must not split a store).
HWPROF_SERIES = ".".join(__version__.split(".")[:2])
BUILTIN_DIR = Path(__file__).parents[1] / "device_configs"  # link to the top-level folder; a copy in a wheel
ENTRY_POINT_GROUP = "hwprof.devices"
#: Keys of a config's ``[device]`` table.
DEVICE_KEYS = ("name", "description", "backend", "batch", "threads")


@dataclass(frozen=True)
class DeviceConfig:
    """A device loaded from TOML (see the module docstring)."""

    name: str
    backend: str
    description: str = ""
    batch: int = 1
    threads: int = 1
    protocol: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    tuning: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None


@runtime_checkable
class Device(Protocol):
    """What a backend implements. Built by ``Backend(config)``.

    ``run`` returns the timed runs in ms; the protocol (:mod:`hwprof.measure.protocol`)
    decides how many to ask for. ``fingerprint`` returns the identity fields
    (see :data:`hwprof.measure.records.IDENTITY_FIELDS`) and may add more;
    ``environment`` returns volatile state recorded with each measurement.
    """

    config: DeviceConfig
    #: The model file format the device runs (``"onnx"``, ``"tflite"``, ``"torchscript"``).
    artifact_format: str

    def fingerprint(self) -> dict[str, str]: ...

    def environment(self) -> dict[str, str]: ...

    def prepare(self, artifact: Artifact) -> Any: ...

    def run(self, prepared: Any, runs: int, warmup: int = 0) -> list[float]: ...

    def release(self, prepared: Any) -> None: ...

    def close(self) -> None: ...


_REQUIRED = ("fingerprint", "environment", "prepare", "run", "release", "close")


def backends() -> dict[str, Any]:
    """Registered backend entry points by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_backend(name: str) -> type:
    """The backend class ``name``; rejected with a clear message when it breaks the protocol."""
    eps = backends()
    if name not in eps:
        raise ConfigError(f"unknown device backend {name!r}; registered: {', '.join(sorted(eps)) or 'none'}")
    cls = eps[name].load()
    missing = [m for m in _REQUIRED if not callable(getattr(cls, m, None))]
    if not isinstance(getattr(cls, "artifact_format", None), str):
        missing.append("artifact_format (the model file format it runs)")
    if missing:
        raise ConfigError(
            f"device backend {name!r} ({eps[name].value}) does not satisfy the Device protocol: "
            f"missing {', '.join(missing)}"
        )
    return cls


def search_path() -> list[Path]:
    """Folders searched for device configs, highest priority first."""
    dirs = [Path(p) for p in os.environ.get("HWPROF_DEVICE_PATH", "").split(":") if p]
    dirs += [Path.cwd() / "device_configs", Path.home() / ".config" / "hwprof" / "devices", BUILTIN_DIR]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def config_files() -> dict[str, Path]:
    """Device name → config file, first folder on :func:`search_path` wins."""
    found: dict[str, Path] = {}
    for d in search_path():
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def parse_config(path: Path) -> DeviceConfig:
    """Parse one TOML device config; errors name the file and line."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read device config: {exc}") from exc
    unknown = sorted(set(data) - {"device", "protocol", "backend", "tuning"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) [{'], ['.join(unknown)}]; allowed: device, protocol, backend, tuning")
    dev = data.get("device")
    if not isinstance(dev, dict) or "backend" not in dev:
        raise ConfigError(f"{path}: needs a [device] table with a backend = \"...\" key")
    unknown_keys(f"{path}: ", "device", dev, DEVICE_KEYS)
    for table in ("backend", "tuning"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"{path}: [{table}] must be a table of key = value lines")
    for key in ("batch", "threads"):
        if not isinstance(dev.get(key, 1), int) or dev.get(key, 1) < 1:
            raise ConfigError(f"{path}: device.{key} must be a positive integer, got {dev.get(key)!r}")
    protocol = data.get("protocol", {})
    if not isinstance(protocol, dict):
        raise ConfigError(f"{path}: [protocol] must be a table of Plan fields")
    return DeviceConfig(
        name=str(dev.get("name", path.stem)),
        backend=str(dev["backend"]),
        description=str(dev.get("description", "")),
        batch=int(dev.get("batch", 1)),
        threads=int(dev.get("threads", 1)),
        protocol=dict(protocol),
        options=dict(data.get("backend", {})),
        tuning=dict(data.get("tuning", {})),
        path=path,
    )


def load_config(name: str | Path) -> DeviceConfig:
    """Device config by name or path; an unknown name lists the known ones."""
    p = Path(name)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError(f"device config file {p} does not exist")
        return parse_config(p)
    files = config_files()
    if str(name) not in files:
        raise ConfigError(f"unknown device {name!r}; known devices: {', '.join(sorted(files)) or 'none'}")
    return parse_config(files[str(name)])


def check_backend_keys(config: DeviceConfig, cls: type) -> None:
    """Refuse ``[backend]`` and ``[tuning]`` keys the backend does not read (a typo would do nothing).

    A backend declares the keys it reads as class attributes ``OPTIONS`` and
    ``TUNING`` (sequences of names); a backend that declares none is not checked.
    """
    where = f"{config.path}: " if config.path else ""
    for table, given, attr in (("backend", config.options, "OPTIONS"), ("tuning", config.tuning, "TUNING")):
        known = getattr(cls, attr, None)
        if known is not None:
            unknown_keys(where, table, given, known)


def open_device(config: DeviceConfig | str | Path) -> Device:
    """Instantiate the backend of ``config``; unknown ``[backend]``/``[tuning]`` keys are a :class:`ConfigError`."""
    if not isinstance(config, DeviceConfig):
        config = load_config(config)
    cls = load_backend(config.backend)
    check_backend_keys(config, cls)
    return cls(config)


__all__ = [
    "BUILTIN_DIR",
    "Device",
    "DeviceConfig",
    "backends",
    "check_backend_keys",
    "config_files",
    "load_backend",
    "load_config",
    "open_device",
    "parse_config",
    "search_path",
]
