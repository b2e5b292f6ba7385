"""The stand-in ``trtexec`` of the stand-in board: ONNX Runtime on this CPU, trtexec's output format.

Understands the flags hwprof passes (``--onnx``, ``--saveEngine``,
``--skipInference``, ``--fp16``, ``--loadEngine``, ``--warmUp``, ``--duration``,
``--iterations``, ``--avgRuns``, ``--exportTimes``, ``--noDataTransfers``,
``--useSpinWait``, ``--help``) and prints what TensorRT 10's trtexec prints for
them: the ``&&&& RUNNING``/``PASSED``/``FAILED`` lines, ``Warmup completed``,
``Timing trace has``, the ``Average on K runs`` trace and the performance
summary; ``--exportTimes`` writes trtexec's per-query JSON (warm-up queries
first). The times are real: each query is one ONNX Runtime run (one thread,
IO binding) timed with ``perf_counter``; compute time = latency (there are no
transfers on a CPU). Its "engine" is the ONNX file behind a one-line header,
and it says so in its log. Never a TensorRT measurement.

Run as ``python -m hwprof.testing.fake_trtexec ARGS``. Imports no hwprof module.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

#: The version it prints: 0, so that no record mistakes it for a TensorRT release (the format follows 10.3).
FORMAT_VERSION = "0"
ENGINE_HEADER = b"HWPROF-STANDIN-ENGINE onnx\n"


def _log(msg: str, level: str = "I") -> None:
    print(f"[{time.strftime('%m/%d/%Y-%H:%M:%S')}] [{level}] {msg}")


def _flags(argv: list[str]) -> dict[str, str]:
    out = {}
    for a in argv:
        if not a.startswith("--"):
            raise SystemExit(f"unexpected argument {a!r}")
        key, _, value = a[2:].partition("=")
        out[key] = value
    return out


def _session(model: bytes):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if not all(isinstance(d, int) for d in inp.shape):
        raise ValueError(f"input {inp.name} has dynamic dimensions {inp.shape}; give --shapes")
    x = np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x))
    for o in sess.get_outputs():
        binding.bind_output(o.name)
    sess.run_with_iobinding(binding)
    return sess, binding, inp


def _stats(values: list[float]) -> str:
    s = sorted(values)

    def pct(p: float) -> float:  # trtexec's rule: drop the top (1 - p) share
        return s[max(len(s) - 1 - int((1 - p / 100) * len(s)), 0)]

    return (f"min = {s[0]:.6g} ms, max = {s[-1]:.6g} ms, mean = {statistics.fmean(s):.6g} ms, "
            f"median = {statistics.median(s):.6g} ms, percentile(90%) = {pct(90):.6g} ms, "
            f"percentile(95%) = {pct(95):.6g} ms, percentile(99%) = {pct(99):.6g} ms")


def main(argv: list[str]) -> int:
    cmdline = "trtexec " + " ".join(argv)
    print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v{FORMAT_VERSION}] [b0] # {cmdline}")
    try:
        f = _flags(argv)
        if "help" in f:
            print("=== Model Options ===\n  --onnx=<file>  ONNX model (hwprof stand-in trtexec: ONNX Runtime on the host CPU)")
            return 0
        _log("hwprof stand-in trtexec: ONNX Runtime on this CPU, not TensorRT")
        if "onnx" in f:
            data = Path(f["onnx"]).read_bytes()
            _session(data)  # the "build" fails where a real one would: an unreadable model
            if f.get("saveEngine"):
                Path(f["saveEngine"]).write_bytes(ENGINE_HEADER + data)
                _log(f"Saved engine to {f['saveEngine']}")
            if "skipInference" in f:
                print(f"&&&& PASSED TensorRT.trtexec [TensorRT v{FORMAT_VERSION}] [b0] # {cmdline}")
                return 0
        elif "loadEngine" in f:
            blob = Path(f["loadEngine"]).read_bytes()
            if not blob.startswith(ENGINE_HEADER):
                raise ValueError(f"{f['loadEngine']} is not an engine of this stand-in")
            data = blob[len(ENGINE_HEADER):]
        else:
            raise ValueError("give --onnx or --loadEngine")
        sess, binding, inp = _session(data)
        iterations = int(f.get("iterations", "10"))
        warm_ms = float(f.get("warmUp", "200"))
        duration_s = float(f.get("duration", "3"))
        avg = max(int(f.get("avgRuns", "10")), 1)
        _log(f"Created input binding for {inp.name} with dimensions {'x'.join(map(str, inp.shape))}")
        _log("Starting inference")
        clock = time.perf_counter
        t_origin = clock()
        trace: list[tuple[float, float]] = []  # (start, end) in ms since t_origin
        while (clock() - t_origin) * 1000 < warm_ms:
            t0 = clock()
            sess.run_with_iobinding(binding)
            trace.append(((t0 - t_origin) * 1000, (clock() - t_origin) * 1000))
        warm = len(trace)
        t_bench = clock()
        while len(trace) - warm < iterations or clock() - t_bench < duration_s:
            t0 = clock()
            sess.run_with_iobinding(binding)
            trace.append(((t0 - t_origin) * 1000, (clock() - t_origin) * 1000))
        timed = [e - s for s, e in trace[warm:]]
        wall_s = clock() - t_bench
        _log(f"Warmup completed {warm} queries over {warm_ms:g} ms")
        _log(f"Timing trace has {len(timed)} queries over {wall_s:.6g} s")
        _log("")
        _log("=== Trace details ===")
        _log(f"Trace averages of {avg} runs:")
        for i in range(0, len(timed) - avg + 1, avg):
            m = statistics.fmean(timed[i : i + avg])
            _log(f"Average on {avg} runs - GPU latency: {m:.6g} ms - Host latency: {m:.6g} ms (enqueue {m:.6g} ms)")
        _log("")
        _log("=== Performance summary ===")
        _log(f"Throughput: {len(timed) / wall_s:.6g} qps")
        _log(f"Latency: {_stats(timed)}")
        _log(f"Enqueue Time: {_stats(timed)}")
        _log(f"GPU Compute Time: {_stats(timed)}")
        _log(f"Total Host Walltime: {wall_s:.6g} s")
        _log(f"Total GPU Compute Time: {sum(timed) / 1000:.6g} s")
        if f.get("exportTimes"):
            rows = [{"startEnqMs": s, "endEnqMs": s, "startH2dMs": s, "endH2dMs": s, "startComputeMs": s,
                     "endComputeMs": e, "startD2hMs": e, "endD2hMs": e, "h2dMs": 0, "computeMs": e - s, "d2hMs": 0,
                     "latencyMs": e - s, "endToEndMs": e - s} for s, e in trace]
            Path(f["exportTimes"]).write_text("[\n" + "\n, ".join(json.dumps(r) for r in rows) + "\n]\n")
    except (OSError, ValueError, SystemExit) as exc:
        _log(str(exc), "E")
        print(f"&&&& FAILED TensorRT.trtexec [TensorRT v{FORMAT_VERSION}] [b0] # {cmdline}")
        return 1
    except Exception as exc:  # onnxruntime's own errors: reported as trtexec reports a failed parse
        _log(f"{type(exc).__name__}: {exc}", "E")
        print(f"&&&& FAILED TensorRT.trtexec [TensorRT v{FORMAT_VERSION}] [b0] # {cmdline}")
        return 1
    print(f"&&&& PASSED TensorRT.trtexec [TensorRT v{FORMAT_VERSION}] [b0] # {cmdline}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
