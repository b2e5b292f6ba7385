"""TensorRT on a local NVIDIA GPU (``tensorrt`` backend): the Python API where importable, else ``trtexec``.

Routes (``backend.route``: ``auto`` picks the first that is here):

``api``
    The ``tensorrt`` Python package (8.5 or later: named I/O tensors and
    ``execute_async_v3``): the engine is built from the ONNX artifact with
    ``OnnxParser``, inputs and outputs are preallocated on the GPU with torch
    (no host-device copies in the timing), and each run is timed by CUDA events
    (:func:`hwprof.devices.gpu.time_with_events`).
``trtexec``
    The ``trtexec`` tool, driven exactly as on a board
    (:class:`hwprof.devices.board.BoardDevice`: engine build, ``--exportTimes``
    samples, the same parser), through a local shell instead of SSH.

Engines are cached in ``engine_cache`` (default ``~/.cache/hwprof/engines``)
under ``<artifact sha256>-trt<version>-<GPU>-<precision>.engine``, so a
re-run does not rebuild them. Power: NVML's energy counter over the timed
calls (``power``: ``auto`` | ``nvml`` | ``none``). Without a GPU or without
both routes the backend refuses to open with the reason.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hwprof.artifacts.record import Artifact
from hwprof.devices import DeviceConfig
from hwprof.devices.adb_transport import ShellResult, TransportError, unwrap, wrap
from hwprof.devices.board import BoardDevice, BoardModel
from hwprof.devices.gpu import cuda_unavailable_reason, nvml_driver, nvml_state, power_window, time_with_events
from hwprof.errors import ConfigError, DeviceError, MeasurementError, unknown_keys

DEFAULTS: dict[str, Any] = {
    "route": "auto",
    "device_index": 0,
    "precision": "fp32",
    "trtexec": "trtexec",
    "trtexec_args": [],
    "warmup_ms": 200.0,
    "engine_cache": "~/.cache/hwprof/engines",
    "power": "auto",
    "command_timeout_s": 600.0,
}
ROUTES = ("auto", "api", "trtexec")


class LocalShell:
    """The transport of :class:`BoardDevice`, on this machine: ``bash -c`` instead of ``ssh``."""

    host = "localhost"

    def shell(self, command: str, timeout_s: float) -> ShellResult:
        try:
            r = subprocess.run(["bash", "-c", wrap(command)], capture_output=True, timeout=timeout_s,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"local command timed out after {timeout_s:.0f} s") from exc
        return unwrap(r.stdout.decode("utf-8", "replace"))

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        shutil.copyfile(local, remote)

    def close(self) -> None:
        pass


def _route(wanted: str, trtexec: str) -> str:
    try:
        import tensorrt  # noqa: F401

        api = ""
    except ImportError:
        api = "the tensorrt Python package is not installed (pip install tensorrt, matching your CUDA)"
    cli = "" if shutil.which(trtexec) else f"no {trtexec!r} on PATH (TensorRT's bin folder)"
    if wanted == "api" and api:
        raise DeviceError(f"backend.route = \"api\": {api}")
    if wanted == "trtexec" and cli:
        raise DeviceError(f"backend.route = \"trtexec\": {cli}")
    if wanted == "auto":
        if not api:
            return "api"
        if not cli:
            return "trtexec"
        raise DeviceError(f"no TensorRT here: {api}; and {cli}")
    return wanted


class TensorRTDevice(BoardDevice):
    """TensorRT on a local GPU (see the module docstring)."""

    artifact_format = "onnx"
    OPTIONS: tuple[str, ...] = tuple(DEFAULTS)
    TUNING: tuple[str, ...] = ()

    def __init__(self, config: DeviceConfig):
        where = f"{config.path}: " if config.path else ""
        unknown_keys(where, "backend", config.options, DEFAULTS)
        o = {**DEFAULTS, **config.options}
        if o["route"] not in ROUTES:
            raise ConfigError(f"{where}backend.route must be one of {', '.join(ROUTES)}, got {o['route']!r}")
        if o["precision"] not in ("fp32", "fp16"):
            raise ConfigError(f"{where}backend.precision must be fp32 or fp16, got {o['precision']!r}")
        reason = cuda_unavailable_reason()
        if reason:
            raise DeviceError(f"{config.name}: no CUDA device: {reason}")
        self.route = _route(o["route"], o["trtexec"])
        cache = Path(o["engine_cache"]).expanduser()
        cache.mkdir(parents=True, exist_ok=True)
        board = {"host": "localhost", "trtexec": o["trtexec"], "precision": o["precision"],
                 "trtexec_args": list(o["trtexec_args"]), "warmup_ms": float(o["warmup_ms"]), "power": "none",
                 "engine_cache": str(cache), "remote_dir": str(cache.parent / "runs"),
                 "command_timeout_s": float(o["command_timeout_s"]), "retries": 1}
        from dataclasses import replace

        super().__init__(replace(config, options=board))
        self.config = config
        self.local = o
        self.window = power_window(o["power"], o["device_index"])
        self._api_engines: dict[str, Any] = {}

    def _t(self):  # type: ignore[override]
        if self._transport is None:
            self._transport = LocalShell()  # type: ignore[assignment]
        return self._transport

    def _probe(self) -> dict[str, str]:
        import torch

        idx = self.local["device_index"]
        info = {"model": torch.cuda.get_device_name(idx), "arch": f"driver {nvml_driver()}"}
        if self.route == "api":
            import tensorrt as trt

            info["trt"] = f"&&&& RUNNING TensorRT.trtexec [TensorRT v{_code(trt.__version__)}]"
        else:
            info["trt"] = self._t().shell(f"{self.opts['trtexec']} --help 2>&1 | grep -m 1 TensorRT.trtexec", 60).output
        return info

    def fingerprint(self) -> dict[str, str]:
        fp = super().fingerprint()
        fp.update(runtime=f"tensorrt-{self.route}", l4t="", power_mode="n/a")
        return fp

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), **{f"{k}_end": v for k, v in nvml_state(self.local["device_index"]).items()}}
        env.pop("host", None)
        if self.window is not None:
            env.update(self.window.environment())
        return env

    def prepare(self, artifact: Artifact) -> BoardModel:
        if self.window is not None:
            self.window.reset()
        if self.route == "trtexec":
            return super().prepare(artifact)
        engine = self._engine_path(artifact)
        if not Path(engine).is_file():
            _api_build(Path(artifact.path), Path(engine), self.local["precision"] == "fp16")
        return BoardModel(artifact.name, engine, artifact.sha256)

    def run(self, prepared: BoardModel, runs: int, warmup: int = 0) -> list[float]:
        if self.window is not None and runs:
            self.window.begin()
        try:
            if self.route == "trtexec":
                return super().run(prepared, runs, warmup)
            self._sample_source = "cuda events (tensorrt API)"
            return _api_time(self._api_engines, prepared.engine, runs, warmup, self.local["device_index"])
        finally:
            if self.window is not None and runs:
                self.window.end()

    def release(self, prepared: BoardModel) -> None:
        self._api_engines.pop(prepared.engine, None)

    def status(self) -> str:
        return f"available: route {self.route}"


def _code(version: str) -> str:
    """``"10.3.0.26"`` → ``"100300"``: the number trtexec prints (see :func:`hwprof.devices.trtexec.version_text`)."""
    major, minor, patch = (int(x) for x in (version.split(".") + ["0", "0"])[:3])
    return str(major * 10000 + minor * 100 + patch) if major >= 10 else str(major * 1000 + minor * 100 + patch)


def _api_build(onnx: Path, engine: Path, fp16: bool) -> None:
    """Build and serialise an engine from ``onnx`` with the TensorRT Python API."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise MeasurementError(f"TensorRT cannot parse {onnx.name}: {errors[:300]}")
    cfg = builder.create_builder_config()
    if fp16:
        cfg.set_flag(trt.BuilderFlag.FP16)
    blob = builder.build_serialized_network(network, cfg)
    if blob is None:
        raise MeasurementError(f"TensorRT could not build an engine for {onnx.name}")
    tmp = engine.with_suffix(f".{hashlib.sha256(bytes(blob)).hexdigest()[:8]}.part")
    tmp.write_bytes(bytes(blob))
    tmp.replace(engine)


def _api_time(cache: dict[str, Any], engine: str, runs: int, warmup: int, index: int) -> list[float]:
    """Time ``runs`` executions of a serialised engine with CUDA events; buffers stay on the GPU."""
    import tensorrt as trt
    import torch

    if engine not in cache:
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        eng = runtime.deserialize_cuda_engine(Path(engine).read_bytes())
        ctx = eng.create_execution_context()
        buffers = []
        for i in range(eng.num_io_tensors):
            name = eng.get_tensor_name(i)
            dtype = torch.float16 if eng.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
            buf = torch.randn(tuple(eng.get_tensor_shape(name)), device=f"cuda:{index}").to(dtype)
            ctx.set_tensor_address(name, buf.data_ptr())
            buffers.append(buf)
        stream = torch.cuda.Stream(device=index)
        cache[engine] = (eng, ctx, buffers, stream)
    _, ctx, _, stream = cache[engine]

    def call() -> None:
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise MeasurementError(f"TensorRT execute_async_v3 failed on {engine}")

    def event():
        class _E:
            def __init__(self):
                self.e = torch.cuda.Event(enable_timing=True)

            def record(self):
                self.e.record(stream)

            def synchronize(self):
                self.e.synchronize()

            def elapsed_time(self, end):
                return self.e.elapsed_time(end.e)

        return _E()

    return time_with_events(call, runs, warmup, event)


__all__ = ["DEFAULTS", "LocalShell", "ROUTES", "TensorRTDevice"]
