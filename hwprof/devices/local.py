"""Local CPU devices: ONNX Runtime, LiteRT (XNNPACK) and PyTorch eager.

Each device drives one worker subprocess (:mod:`hwprof.devices.worker`). The
worker's environment is set before it starts: the thread count for OpenMP and
MKL, and glibc's ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` so that
large tensors are not returned to the OS between runs (without them PyTorch
eager timings drift with the allocator's state). A worker that dies is
restarted at the next ``prepare``; the workload in flight fails with a
:class:`~hwprof.errors.MeasurementError`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from hwprof.artifacts.record import Artifact
from hwprof.devices import HWPROF_SERIES, DeviceConfig
from hwprof.devices.power import PowerWindow, open_meter
from hwprof.errors import ConfigError, MeasurementError, require

#: glibc malloc settings for workers (bytes): keep freed blocks in the heap.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


class WorkerDevice:
    """Base of the local devices: owns the worker subprocess.

    Subclasses set ``runtime`` (worker runtime name), ``artifact_format``
    (``"onnx"``, ``"tflite"`` or ``"torchscript"``) and ``module``/``extra``
    (the optional dependency and its hwprof extra).
    """

    runtime = ""
    artifact_format = ""
    #: Keys of ``[backend]`` (``env``: extra environment of the worker; ``power``: ``auto`` (RAPL where
    #: readable, the default), ``rapl`` or ``none``) and ``[tuning]`` this backend reads.
    OPTIONS: tuple[str, ...] = ("env", "power")
    TUNING: tuple[str, ...] = ()
    module = ""
    extra = ""

    def __init__(self, config: DeviceConfig):
        require(self.module, self.extra)
        self.config = config
        self._proc: subprocess.Popen | None = None
        self._info: dict | None = None
        kind = config.options.get("power", "auto")
        if kind not in ("auto", "rapl", "none"):
            raise ConfigError(f"backend.power of a local CPU device must be auto, rapl or none, got {kind!r}")
        meter = open_meter(kind)
        self.window = PowerWindow(meter) if meter is not None else None

    # -- worker plumbing -------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        threads = str(self.config.threads)
        env.update(MALLOC_ENV)
        env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads})
        env.update({k: str(v) for k, v in self.config.options.get("env", {}).items()})
        return env

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "hwprof.devices.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self._env(),
                text=True,
                bufsize=1,
            )
        return self._proc

    def _call(self, **req: Any) -> dict:
        proc = self._worker()
        try:
            proc.stdin.write(json.dumps(req) + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = proc.stdout.readline()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = proc.wait(timeout=10)
            self._proc = None
            raise MeasurementError(
                f"the {self.runtime} worker died (exit code {code}) during {req.get('cmd')}; "
                "the runtime crashed on this workload. It is restarted for the next one."
            )
        resp = json.loads(line)
        if "error" in resp:
            raise MeasurementError(f"{self.runtime} worker: {resp['error']}")
        return resp

    # -- Device protocol ---------------------------------------------------------
    def fingerprint(self) -> dict[str, str]:
        if self._info is None:
            self._info = self._call(cmd="info", runtime=self.runtime)
        return {
            "device": self.config.name,
            "backend": self.config.backend,
            "runtime": self.runtime,
            "runtime_version": self._info["runtime_version"],
            "threads": str(self.config.threads),
            "batch": str(self.config.batch),
            "cpu": self._info["cpu"],
            "hwprof_version": HWPROF_SERIES,
        }

    def environment(self) -> dict[str, str]:
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            return {}
        return {"loadavg_1m": f"{load1:.2f}", **(self.window.environment() if self.window is not None else {})}

    def prepare(self, artifact: Artifact) -> int:
        if artifact.format != self.artifact_format:
            raise MeasurementError(f"{self.config.name} runs {self.artifact_format} files, not {artifact.format} ({artifact.path})")
        req: dict[str, Any] = {
            "cmd": "load",
            "runtime": self.runtime,
            "threads": self.config.threads,
            "input_shape": list(artifact.input_shape),
            "path": str(artifact.path),
        }
        if self.window is not None:
            self.window.reset()
        return int(self._call(**req)["handle"])

    def run(self, prepared: int, runs: int, warmup: int = 0) -> list[float]:
        # The power window spans the worker call: a pipe round trip beside runs of milliseconds or more.
        if runs and self.window is not None:
            self.window.begin()
        try:
            return [float(x) for x in self._call(cmd="run", handle=prepared, runs=runs, warmup=warmup)["samples_ms"]]
        finally:
            if runs and self.window is not None:
                self.window.end()

    def release(self, prepared: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._call(cmd="release", handle=prepared)

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.stdin.close()  # type: ignore[union-attr]
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            self._proc = None

    def describe(self) -> dict[str, str]:
        return {**self.fingerprint(), **self.environment(), "config": str(self.config.path or "")}

    def status(self) -> str:
        return "local"


class OnnxRuntimeDevice(WorkerDevice):
    """ONNX Runtime, sequential, ``threads`` intra-op threads; ``[backend] providers`` picks the execution providers.

    ``providers`` (default ``["CPUExecutionProvider"]``) is checked against
    ``onnxruntime.get_available_providers()`` when the device opens. With CUDA or
    TensorRT first, the input and outputs are bound in GPU memory (IO binding),
    so no host-device copy is in the timing; the providers then enter the
    fingerprint (the CPU default leaves it as it was).
    """

    runtime = "onnxruntime"
    artifact_format = "onnx"
    module = "onnxruntime"
    extra = "onnx"
    OPTIONS: tuple[str, ...] = ("env", "power", "providers")

    def __init__(self, config: DeviceConfig):
        super().__init__(config)
        self.providers = check_providers(config)

    def fingerprint(self) -> dict[str, str]:
        fp = super().fingerprint()
        if self.providers != list(DEFAULT_PROVIDERS):
            fp["providers"] = ",".join(self.providers)
        return fp

    def prepare(self, artifact: Artifact) -> int:
        if artifact.format != self.artifact_format:
            raise MeasurementError(f"{self.config.name} runs onnx files, not {artifact.format} ({artifact.path})")
        if self.window is not None:
            self.window.reset()
        req: dict[str, Any] = {"cmd": "load", "runtime": self.runtime, "threads": self.config.threads,
                               "input_shape": list(artifact.input_shape), "path": str(artifact.path),
                               "providers": self.providers}
        return int(self._call(**req)["handle"])


DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def check_providers(config: DeviceConfig) -> list[str]:
    """``[backend] providers`` of an ONNX Runtime config, each one available here.

    Raises
    ------
    ConfigError
        Not a list of names, or a provider this onnxruntime build lacks (the
        message lists ``onnxruntime.get_available_providers()``).
    """
    import onnxruntime as ort

    where = f"{config.path}: " if config.path else ""
    providers = config.options.get("providers", list(DEFAULT_PROVIDERS))
    if not isinstance(providers, list) or not providers or not all(isinstance(p, str) for p in providers):
        raise ConfigError(f"{where}backend.providers must be a non-empty list of provider names, got {providers!r}")
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ConfigError(
            f"{where}execution provider(s) {', '.join(missing)} not available in onnxruntime {ort.__version__}; "
            f"available: {', '.join(available)} (GPU providers need the onnxruntime-gpu package)"
        )
    return list(providers)


class LiteRTDevice(WorkerDevice):
    """LiteRT (TFLite) interpreter with its default XNNPACK delegate."""

    runtime = "litert"
    artifact_format = "tflite"
    module = "ai_edge_litert"
    extra = "litert"


class TorchDevice(WorkerDevice):
    """PyTorch under ``inference_mode``, ``threads`` intra-op threads: a TorchScript trace run op by op.

    The worker disables TorchScript's graph optimisation, so each op runs the
    same kernel eager mode would, without fusion.
    """

    runtime = "torch"
    artifact_format = "torchscript"
    module = "torch"
    extra = "torch"
