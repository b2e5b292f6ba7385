"""The stand-in ``tegrastats`` of the stand-in board: the AGX Orin line format, figures from this CPU's load.

Prints one line every ``--interval`` ms (default 1000) until killed, in the
format of a Jetson AGX Orin on JetPack 6 (timestamp, RAM, CPU, EMC/GR3D,
temperatures, then ``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0``,
``VDDQ_VDD2_1V8AO`` rails in ``mW/mW``). RAM comes from ``/proc/meminfo``
and per-core load from ``/proc/stat`` over the interval; the power figures
are a **stand-in**: a linear function of that load (``VDD_CPU_CV`` rises
with it), not a measurement of anything. ``--logfile`` is accepted too.

Run as ``python -m hwprof.testing.fake_tegrastats``. Imports no hwprof module.
"""

from __future__ import annotations

import sys
import time


def _cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    out = []
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                out.append((sum(v) - idle, sum(v)))
    return out


def _ram_mb() -> tuple[int, int]:
    info = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0]) // 1024  # kB -> MB
    return info["MemTotal"] - info.get("MemAvailable", info["MemFree"]), info["MemTotal"]


def line(loads: list[float], avg: dict[str, float], n: int) -> str:
    """One tegrastats line for per-core ``loads`` (0–1); ``avg`` keeps the running rail averages."""
    used, total = _ram_mb()
    util = sum(loads) / max(len(loads), 1)
    rails = {
        "VDD_GPU_SOC": 2340 + 400 * util,
        "VDD_CPU_CV": 390 + 3000 * util,
        "VIN_SYS_5V0": 4025 + 200 * util,
        "VDDQ_VDD2_1V8AO": 301 + 100 * util,
    }
    for k, v in rails.items():
        avg[k] = v if n == 0 else avg[k] + (v - avg[k]) / (n + 1)
    cpu = ",".join(f"{round(100 * x)}%@2201" for x in loads)
    power = " ".join(f"{k} {round(v)}mW/{round(avg[k])}mW" for k, v in rails.items())
    return (f"{time.strftime('%m-%d-%Y %H:%M:%S')} RAM {used}/{total}MB (lfb 1759x4MB) SWAP 0/0MB (cached 0MB) "
            f"CPU [{cpu}] EMC_FREQ 0%@3199 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CPU@44.562C Tboard@32C "
            f"SOC0@41.093C tj@44.343C {power}")


def main(argv: list[str]) -> int:
    interval_ms, logfile = 1000, None
    it = iter(argv)
    for a in it:
        if a == "--interval":
            interval_ms = int(next(it))
        elif a == "--logfile":
            logfile = next(it)
        elif a in ("--start", "--stop", "--verbose"):
            pass
        else:
            print(f"tegrastats: unknown option {a}", file=sys.stderr)
            return 2
    out = open(logfile, "a", buffering=1) if logfile else sys.stdout
    avg: dict[str, float] = {}
    before, n = _cpu_times(), 0
    try:
        while True:
            time.sleep(interval_ms / 1000)
            now = _cpu_times()
            loads = [(b1 - b0) / (t1 - t0) if t1 > t0 else 0.0 for (b0, t0), (b1, t1) in zip(before, now)]
            before = now
            out.write(line(loads, avg, n) + "\n")
            out.flush()
            n += 1
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` ends it with its lines flushed
    sys.exit(main(sys.argv[1:]))
