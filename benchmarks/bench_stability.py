"""How steady is this machine? The floor under any repeatability figure.

Times the same prepared operators on a device without pause for ``--seconds``
(one worker, one runtime session per operator, nothing re-created) and
reports how far the median of each time window strays from the median of
the whole run. No protocol can make two campaigns agree better than the
machine's own speed does between the windows in which they ran.

Usage: ``python benchmarks/bench_stability.py [--device cpu] [--seconds 300]``.
Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hwprof.measure.campaign import op_workloads
from hwprof.devices import open_device
from hwprof.spaces import space as get_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--space", default="proxylessnas")
    ap.add_argument("--ops", type=int, default=3, help="operators, spread over the space's op list")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--windows", default="5,20,80", help="window lengths in seconds")
    a = ap.parse_args()
    work = op_workloads(get_space(a.space))
    picked = [work[i] for i in np.linspace(1, len(work) - 2, a.ops).round().astype(int)]
    dev = open_device(a.device)
    stamps: list[float] = []
    times: list[list[float]] = [[] for _ in picked]
    with tempfile.TemporaryDirectory() as tmp:
        handles = [dev.prepare(w, Path(tmp)) for w in picked]
        for h in handles:
            dev.run(h, 0, 20)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            for h, out in zip(handles, times):
                out.append(float(np.median(dev.run(h, 5, 0))))
            stamps.append(time.perf_counter() - t0)
        dev.close()
    t = np.array(stamps)
    # every op relative to its own overall median; the machine's speed is their mean
    speed = np.mean([np.array(x) / np.median(x) for x in times], axis=0)
    print(f"{a.device}: {len(picked)} ops timed for {t[-1]:.0f} s ({len(t)} passes)")
    for w in (float(x) for x in a.windows.split(",")):
        edges = np.arange(0, t[-1] + w, w)
        levels = np.array([np.median(speed[(t >= lo) & (t < lo + w)]) for lo in edges[:-1] if ((t >= lo) & (t < lo + w)).sum() >= 3])
        dev_ = np.abs(levels - 1)
        print(
            f"  {w:4.0f} s windows (n={len(levels)}): median |level − 1| {np.median(dev_):.2%}, "
            f"p95 {np.percentile(dev_, 95):.2%}, range {levels.min():.3f} … {levels.max():.3f}"
        )


if __name__ == "__main__":
    main()
