"""Core pipeline figures on the local CPU (issue 2).

1. Wall time of ``hwprof measure --device cpu --space proxylessnas --ops`` from
   an empty store, and the number of distinct operators it measured.
2. Repeatability: a second independent ``--ops`` campaign into another store;
   median and 95th percentile of the relative difference of per-op medians.
3. Additivity: N random architectures measured end to end vs the sum of
   their operators' medians from the first table.

Usage: ``python benchmarks/bench_core.py [--device cpu] [--archs 30] [--out DIR]``.
Run it on a quiet machine: figures are timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hwprof.tables.table import build_table
from hwprof.measure.records import latencies_by_key
from hwprof.spaces import space as get_space
from hwprof.measure.store import Store


def campaign(store: Path, *args: str) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "hwprof.cli", "measure", "--store", str(store), *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--space", default="proxylessnas")
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    stores = [a.out / f"ops-{i}.sqlite" for i in (1, 2)]
    for s in stores:
        s.unlink(missing_ok=True)
    base = ["--device", a.device, "--space", a.space]

    wall = campaign(stores[0], *base, "--ops")
    n_ops = len({m.key for m in Store(stores[0]).records(device=a.device, kind="op")})
    print(f"[1] ops campaign from an empty store: {wall:.1f} s wall, {n_ops} distinct operators")

    campaign(stores[1], *base, "--ops")
    stat = Store(stores[0]).statistic(a.device)  # how the device's campaigns read their rounds (min on a local CPU)
    tables = [build_table(Store(s).records(device=a.device, kind="op"), get_space(a.space), stat) for s in stores]
    keys = sorted(tables[0].entries)
    m1 = np.array([tables[0].entries[k] for k in keys])
    m2 = np.array([tables[1].entries[k] for k in keys])
    rel = np.abs(m2 / m1 - 1)
    print(
        f"[2] repeatability over {len(keys)} ops: median |Δ| {np.median(rel):.2%}, "
        f"p95 {np.percentile(rel, 95):.2%}, worst {rel.max():.2%} (targets: median ≤ 1%, p95 ≤ 3%)"
    )

    campaign(stores[0], *base, "--archs", str(a.archs), "--seed", str(a.seed))
    sp = get_space(a.space)
    e2e_by_key = latencies_by_key(Store(stores[0]).records(device=a.device, kind="arch", space=a.space), stat)
    e2e = np.array(list(e2e_by_key.values()))
    lut = np.array([tables[0].arch_latency(sp, key) for key in e2e_by_key])
    err = lut / e2e - 1
    print(
        f"[3] additivity on {len(e2e)} archs: LUT sum vs end-to-end mean error {err.mean():+.2%}, "
        f"mean |error| {np.abs(err).mean():.2%}, worst {np.abs(err).max():.2%} "
        f"(e2e median {np.median(e2e):.2f} ms)"
    )


if __name__ == "__main__":
    main()
