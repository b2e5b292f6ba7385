"""Measurement worker: a subprocess that loads models and times them.

Run as ``python -m hwprof.devices.worker``. It reads one JSON request per
line on stdin and answers one JSON line on stdout, so a crash in a runtime
takes down this process only, never the campaign. Requests::

    {"cmd": "info", "runtime": R}                         -> {"runtime_version": ..., "cpu": ...}
    {"cmd": "load", "runtime": R, "threads": T, "path": P, "input_shape": [...], "providers": [...]}
                                                          -> {"handle": H}
    {"cmd": "run", "handle": H, "runs": N, "warmup": M}   -> {"samples_ms": [...]}
    {"cmd": "release", "handle": H}                       -> {}

Errors answer ``{"error": message}``. Runtimes: ``onnxruntime`` (path to
.onnx), ``litert`` (path to .tflite, XNNPACK), ``torch`` (path to a
TorchScript trace, run under ``torch.inference_mode`` with graph optimisation
off, so each op runs the kernel eager mode would). The worker imports no
hwprof module: it runs files.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_onnxruntime(req: dict) -> Callable[[], Any]:
    """A session run through IO binding: input and outputs stay in ORT-owned buffers.

    Plain ``session.run`` allocates each output and copies it into a new
    numpy array on every call; inside a network no such copy happens, so
    per-op tables timed that way over-count by 20–100 µs per op.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(req["threads"])
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = list(req.get("providers") or ["CPUExecutionProvider"])
    sess = ort.InferenceSession(req["path"], opts, providers=providers)
    # On a GPU provider the input and outputs live in device memory: no host-device copy is timed.
    where = "cuda" if providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
    x = np.random.default_rng(0).standard_normal(req["input_shape"]).astype(np.float32)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(sess.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x, where, 0))
    outputs = [o.name for o in sess.get_outputs()]
    for name in outputs:
        binding.bind_output(name, where)
    sess.run_with_iobinding(binding)  # allocates the outputs once; later runs write into them
    for name, value in zip(outputs, binding.get_outputs()):
        binding.bind_ortvalue_output(name, value)
    if where == "cuda":
        return lambda: (sess.run_with_iobinding(binding), binding.synchronize_outputs())
    return lambda: sess.run_with_iobinding(binding)


def _load_litert(req: dict) -> Callable[[], Any]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=req["path"], num_threads=int(req["threads"]))
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    x = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
    interp.set_tensor(detail["index"], x)
    return interp.invoke


def _load_torch(req: dict) -> Callable[[], Any]:
    import torch

    torch.set_num_threads(int(req["threads"]))
    with warnings.catch_warnings():  # TorchScript is deprecated; see hwprof.artifacts.export
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(req["path"]).eval()
    x = torch.randn(*req["input_shape"])

    def run() -> Any:
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            return module(x)

    return run


_LOADERS = {"onnxruntime": _load_onnxruntime, "litert": _load_litert, "torch": _load_torch}


def runtime_version(runtime: str) -> str:
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    if runtime == "litert":
        from importlib.metadata import version

        return version("ai-edge-litert")
    if runtime == "torch":
        import torch

        return torch.__version__
    raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(_LOADERS)}")


def time_runs(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    """``warmup`` untimed calls, then ``runs`` timed calls; returns ms per call."""
    for _ in range(warmup):
        fn()
    out = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1e6)  # ns -> ms
    return out


def serve(stdin=sys.stdin, stdout=sys.stdout) -> None:
    """Answer requests until stdin closes."""
    handles: dict[int, Callable[[], Any]] = {}
    next_handle = 1
    for line in stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            cmd = req["cmd"]
            if cmd == "info":
                resp: dict = {"runtime_version": runtime_version(req["runtime"]), "cpu": cpu_model()}
            elif cmd == "load":
                handles[next_handle] = _LOADERS[req["runtime"]](req)
                resp = {"handle": next_handle}
                next_handle += 1
            elif cmd == "run":
                resp = {"samples_ms": time_runs(handles[req["handle"]], int(req["runs"]), int(req["warmup"]))}
            elif cmd == "release":
                handles.pop(req["handle"], None)
                resp = {}
            else:
                resp = {"error": f"unknown command {cmd!r}"}
        except Exception as exc:  # reported to the parent, which raises a typed error
            resp = {"error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(resp) + "\n")
        stdout.flush()


if __name__ == "__main__":
    import signal

    # Ctrl-C (and a SIGTERM to the group) reaches every process; the parent decides when this worker stops
    # (it closes stdin, then kills).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve()
