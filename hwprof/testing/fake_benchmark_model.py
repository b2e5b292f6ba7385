"""Stand-in for TFLite's ``benchmark_model``: runs a ``.tflite`` with LiteRT on this CPU.

It accepts the flags hwprof passes to the real tool and prints the real
tool's output format (LiteRT / TF 2.18: ``INFO:`` prefix, one statistics line
per phase with ``p5= median= p95=``, the ``Inference timings in us:``
summary). The timing loop is the real tool's: run while ``run < num_runs`` or
less than ``min_secs`` have passed, stop past ``max_secs``; each run is one
``Interpreter.invoke()`` timed in whole microseconds, on random inputs.

It is run as a script (``python fake_benchmark_model.py --graph=...``) and
imports neither hwprof nor torch, so an invocation costs what importing
LiteRT costs. The one line the real tool does not print
(``INFO: hwprof stand-in ...``) says what ran.
"""

from __future__ import annotations

import math
import os
import sys
import time

_BOOL = {"1": True, "true": True, "0": False, "false": False}
_FLAGS = {
    "graph": str,
    "num_threads": int,
    "num_runs": int,
    "warmup_runs": int,
    "min_secs": float,
    "warmup_min_secs": float,
    "max_secs": float,
    "run_delay": float,
    "use_xnnpack": "bool",
    "use_gpu": "bool",
    "use_nnapi": "bool",
    "enable_op_profiling": "bool",
}
_DEFAULTS = {
    "graph": "",
    "num_threads": -1,
    "num_runs": 50,
    "warmup_runs": 1,
    "min_secs": 1.0,
    "warmup_min_secs": 0.5,
    "max_secs": 150.0,
    "run_delay": -1.0,
    "use_xnnpack": None,
    "use_gpu": False,
    "use_nnapi": False,
    "enable_op_profiling": False,
}


def log(level: str, msg: str) -> None:
    # The real tool logs to stderr; adb shell merges the streams.
    print(f"{level}: {msg}", file=sys.stderr, flush=True)


def parse_flags(argv: list[str]) -> tuple[dict, list[str], str | None]:
    params = dict(_DEFAULTS)
    given: list[str] = []
    unconsumed: list[str] = []
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            unconsumed.append(arg)
            continue
        name, value = arg[2:].split("=", 1)
        kind = _FLAGS.get(name)
        if kind is None:
            unconsumed.append(arg)
            continue
        try:
            if kind == "bool":
                params[name] = _BOOL[value.lower()]
            else:
                params[name] = kind(value)
        except (KeyError, ValueError):
            return params, unconsumed, f"Failed to parse flag --{name}={value}"
        if name in given:
            log("WARNING", f"Duplicate flags: {name}")
        given.append(name)
    return params, unconsumed, None


def fmt(x: float) -> str:
    """C++ ostream default formatting of a double (6 significant digits)."""
    return format(x, ".6g")


def stats_line(times_us: list[int]) -> str:
    """``Stat<int64_t>::OutputToStream`` with the percentiles TF 2.18 appends."""
    n = len(times_us)
    if n == 0:
        return "count=0"
    s = sorted(times_us)

    def pct(p: int) -> int:
        return s[min(n - 1, max(0, int(p / 100 * n)))]

    tail = f" p5={pct(5)} median={pct(50)} p95={pct(95)}"
    if min(times_us) == max(times_us):
        return f"count={n} curr={times_us[-1]}" + ("(all same)" if n > 1 else "") + tail
    mean = sum(times_us) / n
    var = sum(t * t for t in times_us) / n - mean * mean
    std = int(math.sqrt(max(var, 0.0)))  # Stat<int64_t> returns an integer std
    return (
        f"count={n} first={times_us[0]} curr={times_us[-1]} min={min(times_us)} max={max(times_us)} "
        f"avg={fmt(mean)} std={std}" + tail
    )


def run_phase(interp, inputs, min_runs: int, min_secs: float, max_secs: float, delay: float) -> list[int]:
    log("INFO", f"Running benchmark for at least {min_runs} iterations and at least {fmt(min_secs)} seconds "
        f"but terminate if exceeding {fmt(max_secs)} seconds.")
    times: list[int] = []
    start = time.perf_counter()
    run = 0
    while run < min_runs or time.perf_counter() - start < min_secs:
        if time.perf_counter() - start > max_secs:
            break
        for idx, arr in inputs:
            interp.set_tensor(idx, arr)
        t0 = time.perf_counter_ns()
        interp.invoke()
        times.append((time.perf_counter_ns() - t0) // 1000)
        run += 1
        if delay > 0:
            time.sleep(delay)
    log("INFO", stats_line(times) + "\n")
    return times


def main(argv: list[str]) -> int:
    log("INFO", "STARTING!")
    params, unconsumed, error = parse_flags(argv)
    if error:
        log("ERROR", error)
        return 1
    log("INFO", "Log parameter values verbosely: [0]")
    if params["num_threads"] != -1:
        log("INFO", f"Num threads: [{params['num_threads']}]")
    log("INFO", f"Graph: [{params['graph']}]")
    if params["use_xnnpack"] is not None:
        log("INFO", f"Use xnnpack: [{int(params['use_xnnpack'])}]")
    if params["use_gpu"]:
        log("INFO", "Use gpu: [1]")
    if unconsumed:
        log("WARNING", "Unconsumed cmdline flags: " + " ".join(unconsumed))
    log("INFO", "hwprof stand-in benchmark_model: LiteRT (ai_edge_litert) on the host CPU")
    graph = params["graph"]
    if not graph or not os.path.isfile(graph):
        log("ERROR", f"Could not open '{graph}'.")
        log("ERROR", f"Failed to mmap model {graph}")
        log("ERROR", "Benchmarking failed.")
        return 1
    if params["use_gpu"] or params["use_nnapi"]:
        log("ERROR", "Failed to apply GPU delegate: this stand-in runs on the host CPU only.")
        log("ERROR", "Benchmarking failed.")
        return 1

    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    t0 = time.perf_counter()
    log("INFO", f"Loaded model {graph}")
    xnnpack = params["use_xnnpack"] is not False
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    threads = params["num_threads"] if params["num_threads"] > 0 else None
    try:
        interp = Interpreter(model_path=graph, num_threads=threads, experimental_op_resolver_type=resolver)
        if xnnpack:
            log("INFO", "Created TensorFlow Lite XNNPACK delegate for CPU.")
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        log("ERROR", f"Failed to construct interpreter: {exc}")
        log("ERROR", "Benchmarking failed.")
        return 1
    init_us = int((time.perf_counter() - t0) * 1e6)
    log("INFO", f"The input model file size (MB): {fmt(os.path.getsize(graph) / 1e6)}")
    log("INFO", f"Initialized session in {fmt(init_us / 1000)}ms.")
    rng = np.random.default_rng(0)
    inputs = []
    for d in interp.get_input_details():
        arr = rng.uniform(-1, 1, size=d["shape"]).astype(d["dtype"])
        inputs.append((d["index"], arr))
    warm = run_phase(interp, inputs, params["warmup_runs"], params["warmup_min_secs"], params["max_secs"],
                     params["run_delay"])
    timed = run_phase(interp, inputs, params["num_runs"], params["min_secs"], params["max_secs"],
                      params["run_delay"])
    first = warm[0] if warm else (timed[0] if timed else 0)
    warm_avg = sum(warm) / len(warm) if warm else 0.0
    avg = sum(timed) / len(timed) if timed else 0.0
    log("INFO", f"Inference timings in us: Init: {init_us}, First inference: {first}, "
        f"Warmup (avg): {fmt(warm_avg)}, Inference (avg): {fmt(avg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
