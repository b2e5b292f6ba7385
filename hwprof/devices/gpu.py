"""A local NVIDIA GPU through PyTorch (``cuda-torch`` backend): CUDA events around every run.

The model (the TorchScript artifact, run op by op with graph optimisation
off, as on the CPU) is loaded onto the GPU in eval mode, cast to ``dtype``
(``fp32`` default, ``fp16``), and its input is allocated on the GPU once at
``prepare``: host-to-device copies are never in the timing. Each run is
timed by a pair of CUDA events recorded on the current stream around the
call, followed by a synchronise of the end event (:func:`time_with_events`,
the one place where hwprof synchronises with a GPU); the sample is the
events' elapsed time in ms. ``torch.backends.cudnn.benchmark`` is on by default
(``cudnn_benchmark``) and recorded in the fingerprint: the first runs pick
the kernels, which the protocol's warm-up absorbs.

Fingerprint: GPU name, compute capability, driver (NVML), CUDA, cuDNN and torch
versions, dtype, cudnn benchmark mode. Every record's environment has the SM
and memory clocks (MHz), temperature (°C) and power draw (W) at the start
and end of the workload (nvidia-ml-py, imported lazily; absent: not
recorded), and with ``power`` on, the mean power over the timed runs
(:mod:`hwprof.devices.power`).

Without a CUDA device the backend refuses to open with one line saying why
(a CPU build of torch, no driver), so ``hwprof devices`` lists it as
unavailable and ``hwprof measure --device gpu`` stops with that line.

Backend options (``[backend]``): ``device_index`` (0), ``dtype`` (``fp32`` |
``fp16``), ``cudnn_benchmark`` (true), ``power`` (``auto`` | ``nvml`` | ``none``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from hwprof.artifacts.record import Artifact
from hwprof.devices import HWPROF_SERIES, DeviceConfig
from hwprof.devices.power import PowerWindow, open_meter
from hwprof.errors import ConfigError, DeviceError, MeasurementError, require, unknown_keys

DEFAULTS: dict[str, Any] = {"device_index": 0, "dtype": "fp32", "cudnn_benchmark": True, "power": "auto"}
DTYPES = ("fp32", "fp16")


class Event(Protocol):
    """What :func:`time_with_events` needs of an event: ``torch.cuda.Event(enable_timing=True)`` has it."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_time(self, end: Any) -> float: ...


def time_with_events(fn: Callable[[], Any], runs: int, warmup: int, event: Callable[[], Event]) -> list[float]:
    """``warmup`` untimed calls, then ``runs`` calls each between two events; ms per call.

    After every timed call the end event is synchronised, so each sample is
    one call's device time, never a queue of them.
    """
    for _ in range(warmup):
        fn()
    if warmup:
        done = event()
        done.record()
        done.synchronize()
    out = []
    for _ in range(runs):
        start, end = event(), event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(float(start.elapsed_time(end)))  # CUDA events report ms
    return out


def cuda_unavailable_reason() -> str:
    """Why this machine has no usable CUDA device for torch, or ``""`` when it has one."""
    try:
        import torch
    except ImportError:
        return "torch is not installed; install it with: pip install 'hwprof[torch]'"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build (no CUDA); install a CUDA build of torch on the GPU machine"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: no NVIDIA driver or device here"
    return ""


def nvml_state(index: int) -> dict[str, str]:
    """SM/memory clocks (MHz), temperature (°C), power draw (W) of GPU ``index`` by NVML; empty without it."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
        return {
            "sm_clock_mhz": str(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
            "mem_clock_mhz": str(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM)),
            "temp_c": str(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
            "power_draw_w": f"{pynvml.nvmlDeviceGetPowerUsage(h) / 1000:.1f}",  # NVML reports mW
            "power_limit_w": f"{pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000:.0f}",
        }
    except pynvml.NVMLError:
        return {}


def nvml_driver() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    except ImportError:
        return "unknown (pip install 'hwprof[gpu]' for NVML)"
    except Exception:  # pynvml.NVMLError: driver without NVML
        return "unknown (NVML unavailable)"


def gpu_options(config: DeviceConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """``[backend]`` of a GPU config checked against ``defaults`` (types, dtype)."""
    where = f"{config.path}: " if config.path else ""
    unknown_keys(where, "backend", config.options, defaults)
    opts = {**defaults, **config.options}
    for k, v in opts.items():
        if type(v) is not type(defaults[k]):
            raise ConfigError(f"{where}backend.{k} must be a {type(defaults[k]).__name__}, got {v!r}")
    if opts.get("dtype", "fp32") not in DTYPES:
        raise ConfigError(f"{where}backend.dtype must be one of {', '.join(DTYPES)}, got {opts['dtype']!r}")
    return opts


def power_window(kind: str, index: int) -> PowerWindow | None:
    """The power window of ``backend.power``: ``auto`` is NVML when it can be read, else none."""
    if kind == "auto":
        try:
            meter = open_meter("nvml", index)
        except (ConfigError, ImportError):
            meter = None
    else:
        meter = open_meter(kind, index)
    return PowerWindow(meter) if meter is not None else None


@dataclass
class _Loaded:
    module: Any
    x: Any
    name: str


class CudaTorchDevice:
    """PyTorch on a local NVIDIA GPU (see the module docstring)."""

    artifact_format = "torchscript"
    OPTIONS: tuple[str, ...] = tuple(DEFAULTS)
    TUNING: tuple[str, ...] = ()

    def __init__(self, config: DeviceConfig):
        self.config = config
        self.opts = gpu_options(config, DEFAULTS)
        reason = cuda_unavailable_reason()
        if reason:
            raise DeviceError(f"{config.name}: no CUDA device: {reason}")
        self.torch = require("torch", "torch")
        self.index = self.opts["device_index"]
        if self.index >= self.torch.cuda.device_count():
            raise ConfigError(f"backend.device_index {self.index}: this machine has {self.torch.cuda.device_count()} GPU(s)")
        self.device = self.torch.device("cuda", self.index)
        self.torch.backends.cudnn.benchmark = self.opts["cudnn_benchmark"]
        self.window = power_window(self.opts["power"], self.index)
        self._start_state: dict[str, str] = {}

    def fingerprint(self) -> dict[str, str]:
        t = self.torch
        props = t.cuda.get_device_properties(self.index)
        return {
            "device": self.config.name,
            "backend": self.config.backend,
            "runtime": "torch-cuda",
            "runtime_version": t.__version__,
            "threads": str(self.config.threads),
            "batch": str(self.config.batch),
            "cpu": f"{props.name} (sm_{props.major}{props.minor})",
            "hwprof_version": HWPROF_SERIES,
            "gpu": props.name,
            "driver": nvml_driver(),
            "cuda": str(t.version.cuda),
            "cudnn": str(t.backends.cudnn.version()),
            "dtype": self.opts["dtype"],
            "cudnn_benchmark": str(self.opts["cudnn_benchmark"]).lower(),
        }

    def environment(self) -> dict[str, str]:
        now = nvml_state(self.index)
        env = {f"{k}_start": v for k, v in self._start_state.items()}
        env.update({f"{k}_end": v for k, v in now.items()})
        if self.window is not None:
            env.update(self.window.environment())
        return env

    def prepare(self, artifact: Artifact) -> _Loaded:
        if artifact.format != self.artifact_format:
            raise MeasurementError(f"{self.config.name} runs torchscript files, not {artifact.format} ({artifact.path})")
        t = self.torch
        dtype = t.float16 if self.opts["dtype"] == "fp16" else t.float32
        with warnings.catch_warnings():  # TorchScript is deprecated; see hwprof.artifacts.export
            warnings.simplefilter("ignore", DeprecationWarning)
            module = t.jit.load(str(artifact.path), map_location=self.device).eval().to(dtype)
        x = t.randn(*artifact.input_shape, device=self.device, dtype=dtype)
        self._start_state = nvml_state(self.index)
        if self.window is not None:
            self.window.reset()
        return _Loaded(module, x, artifact.name)

    def run(self, prepared: _Loaded, runs: int, warmup: int = 0) -> list[float]:
        t = self.torch

        def call() -> Any:
            with t.inference_mode(), t.jit.optimized_execution(False):
                return prepared.module(prepared.x)

        if runs and self.window is not None:
            t.cuda.synchronize(self.device)
            self.window.begin()
        try:
            return time_with_events(call, runs, warmup, lambda: t.cuda.Event(enable_timing=True))
        finally:
            if runs and self.window is not None:
                self.window.end()

    def release(self, prepared: _Loaded) -> None:
        prepared.module = prepared.x = None
        self.torch.cuda.empty_cache()

    def close(self) -> None:
        pass

    def status(self) -> str:
        return f"available: {self.torch.cuda.get_device_name(self.index)}"

    def describe(self) -> dict[str, str]:
        return {**self.fingerprint(), **nvml_state(self.index), "config": str(self.config.path or "")}


__all__ = ["CudaTorchDevice", "DEFAULTS", "cuda_unavailable_reason", "gpu_options", "nvml_driver", "nvml_state",
           "time_with_events"]
