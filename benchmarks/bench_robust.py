"""Figures that hold on any day (issue 16): two campaigns, calm and with a CPU hog.

For each condition, two independent campaigns into fresh stores, each
``hwprof measure --ops`` then ``hwprof measure --archs N`` (the CLI's default
path: ``--busy wait``, the device's rounds):

- ``calm``: nothing else started by the benchmark (the machine as it is
  today: quiet or jittery);
- ``hog``: one CPU-bound process (a Python busy loop) runs for the middle half
  of each campaign, from 25% to 75% of the wall time the same campaign took
  calm (``--hog-s`` when the calm condition is not run).

Printed per condition: wall times, waits for the busy machine, the load
average seen, the median per-record CV, the share of records flagged busy;
the difference of the two op tables (median, p95, worst, level shift, and
with the level removed) against the targets (median ≤ 1%, p95 ≤ 3%); each
store's own repeatability estimate; ``lut-calibrated`` fitted on ``--calibration``
architectures of a store and tested on the rest (targets MAPE ≤ 2%, ≥ 95%
within ±5%). Then, from the same records, what other statistics over rounds
would have given (a lower quantile, a trimmed mean, dropping busy rounds).

Usage::

    python benchmarks/bench_robust.py --out bench-out/robust               # both conditions (~40 min here)
    python benchmarks/bench_robust.py --conditions hog --hog-s 150,160     # hog only, hog lengths given
    python benchmarks/bench_robust.py --measure-arg=--rounds --measure-arg=20   # a protocol variant

Run it with nothing else running: the benchmark makes its own load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwprof.measure.records import records_by_key, usable_rounds  # noqa: E402
from hwprof.measure.repeatability import of_records  # noqa: E402
from hwprof.measure.stats import combine  # noqa: E402
from hwprof.measure.store import Store  # noqa: E402
from hwprof.predictors import make_predictor  # noqa: E402
from hwprof.predictors.evaluate import metrics, store_dataset  # noqa: E402
from hwprof.spaces import space as get_space  # noqa: E402

HOG = "while True:\n    pass\n"


@dataclass
class Run:
    """One ``hwprof measure`` process: its wall time, JSON summary and the load seen meanwhile."""

    wall_s: float
    summary: dict
    loads: list[float] = field(default_factory=list)
    hog_s: float = 0.0


class LoadSampler(threading.Thread):
    """Reads the 1-minute load average every ``every`` seconds until stopped."""

    def __init__(self, every: float = 2.0):
        super().__init__(daemon=True)
        self.every, self.values, self.done = every, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.values.append(float(Path("/proc/loadavg").read_text().split()[0]))


def measure(store: Path, args: list[str], hog: tuple[float, float] | None) -> Run:
    """Run ``hwprof measure`` into ``store``; with ``hog = (start, stop)`` s, a busy loop runs in that window."""
    cmd = [sys.executable, "-m", "hwprof.cli", "measure", "--store", str(store), "--format", "json", *args]
    sampler = LoadSampler()
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    hog_proc, hog_t0, hog_s = None, 0.0, 0.0
    while proc.poll() is None:
        now = time.perf_counter() - t0
        if hog is not None and hog_proc is None and hog[0] <= now < hog[1]:
            hog_proc, hog_t0 = subprocess.Popen([sys.executable, "-c", HOG]), now
        if hog_proc is not None and now >= hog[1]:
            hog_proc.terminate()
            hog_proc.wait()
            hog_proc, hog_s = None, now - hog_t0
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if hog_proc is not None:
        hog_proc.terminate()
        hog_proc.wait()
        hog_s = wall - hog_t0
    sampler.done.set()
    out = proc.stdout.read()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return Run(wall, json.loads(out), sampler.values, hog_s)


def campaign_pair(out: Path, label: str, base: list[str], n_archs: int, seed: int, extra: list[str],
                  hogs: tuple[float, float] | None) -> tuple[list[Path], list[Run]]:
    """Two independent campaigns (ops, then archs) into fresh stores; ``hogs`` = hog length (s) for ops and archs."""
    stores, runs = [], []
    for i in (1, 2):
        store = out / f"{label}-{i}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        for what, args, hog_len in (("ops", ["--ops"], hogs and hogs[0]),
                                    ("archs", ["--archs", str(n_archs), "--seed", str(seed)], hogs and hogs[1])):
            window = (hog_len / 2, hog_len * 1.5) if hog_len else None
            run = measure(store, [*base, *args, *extra], window)
            runs.append(run)
            print(f"  campaign {i} {what}: {run.wall_s:.0f} s wall, {run.summary['busy_waited_s']:.0f} s waiting "
                  f"({run.summary['busy_waits']} waits), hog {run.hog_s:.0f} s, load avg "
                  f"{np.mean(run.loads or [0]):.2f} (max {max(run.loads or [0]):.2f}), "
                  f"flags {run.summary['flags']}", flush=True)
        stores.append(store)
    return stores, runs


def rounds_of(store: Path, device: str, kind: str, usable: bool = True) -> dict[str, list[tuple[float, ...]]]:
    """Each key's rounds (raw samples, ms): hwprof's usable rounds (busy ones left out), or every round."""
    with Store(store) as st:
        by_key = records_by_key(st.records(device=device, kind=kind))
    return {k: [m.samples_ms for m in (usable_rounds(ms) if usable else ms)] for k, ms in by_key.items()}


#: What else a workload's rounds could be reduced to (hwprof's statistics are ``median`` and ``min``).
OTHERS = {
    "p25 of round medians": lambda r: np.percentile([np.median(x) for x in r], 25),
    "mean of the middle half of round medians": lambda r: float(
        np.mean(np.sort([np.median(x) for x in r])[len(r) // 4 : len(r) - len(r) // 4])),
    "median of round minima": lambda r: np.median([min(x) for x in r]),
    "p1 of all runs": lambda r: np.percentile(np.concatenate(r), 1),
}


def table_difference(a: dict[str, float], b: dict[str, float]) -> str:
    keys = sorted(set(a) & set(b))
    ratio = np.array([b[k] / a[k] for k in keys])
    rel = np.abs(ratio - 1)
    level = float(np.median(ratio))
    flat = np.abs(ratio / level - 1)
    return (f"median |Δ| {np.median(rel):.2%}, p95 {np.percentile(rel, 95):.2%}, worst {rel.max():.2%} over "
            f"{len(keys)} ops; level shift {level:.4f}; level removed: median {np.median(flat):.2%}, "
            f"p95 {np.percentile(flat, 95):.2%}")


def record_figures(stores: list[Path], device: str) -> str:
    cvs, busy, total, per_key = [], 0, 0, []
    for s in stores:
        with Store(s) as st:
            for ms in records_by_key(st.iter_records(device=device)).values():
                per_key.append(len(ms))
                for m in ms:
                    cvs.append(m.summary.cv)
                    busy += "busy" in m.flags
                    total += 1
    return (f"{total} records, median per-record CV {np.median(cvs):.1%}, {busy / max(total, 1):.0%} flagged busy, "
            f"rounds per workload {min(per_key)}–{max(per_key)} (mean {np.mean(per_key):.1f})")


def lut_calibrated(store: Path, device: str, space: str, n_cal: int, seed: int, stat: str) -> str:
    sp = get_space(space)
    table, archs, y = store_dataset(store, device, sp, stat)
    order = np.random.default_rng(seed).permutation(len(archs))
    tr, te = order[:n_cal], order[n_cal:]
    X = sp.one_hot(archs)
    model = make_predictor("lut-calibrated", space=space, device=device, table=table).fit(X[tr], y[tr])
    m = metrics(y[te], model.predict(X[te]))
    return f"MAPE {m.mape:.2%}, ±5% {m.within_5:.0%}, ±10% {m.within_10:.0%}, ρ {m.spearman:.3f} (n_test {m.n})"


def report(stores: list[Path], device: str, space: str, n_cal: int, seed: int) -> None:
    print("  " + record_figures(stores, device))
    with Store(stores[0]) as st:
        kept = st.statistic(device)
    print(f"  the store's statistic: {kept}")
    for stat in ("median", "min"):
        for usable in (True, False):
            a, b = ({k: combine(v, stat) for k, v in rounds_of(s, device, "op", usable).items()} for s in stores)
            label = stat + ("" if usable else ", busy rounds kept")
            print(f"  repeatability ({label}): {table_difference(a, b)}")
    for name, fn in OTHERS.items():
        a, b = ({k: float(fn(v)) for k, v in rounds_of(s, device, "op").items()} for s in stores)
        print(f"  repeatability ({name}): {table_difference(a, b)}")
    print("  targets: median ≤ 1%, p95 ≤ 3%")
    for i, s in enumerate(stores, 1):
        for stat in ("median", "min"):
            with Store(s) as st:
                rep = of_records(st.records(device=device, kind="op"), stat)
            print(f"  campaign {i}, {stat}: its own estimate {rep}")
            print(f"  campaign {i}, {stat}: lut-calibrated ({n_cal} calibration archs): "
                  f"{lut_calibrated(s, device, space, n_cal, seed, stat)}")
    print("  targets: lut-calibrated MAPE ≤ 2%, ≥ 95% within ±5%", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--space", default="proxylessnas")
    ap.add_argument("--archs", type=int, default=40, help="architectures per campaign (calibration + test)")
    ap.add_argument("--calibration", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--conditions", default="calm,hog")
    ap.add_argument("--hog-s", default="", help="hog lengths (s) for the ops and the archs campaign, e.g. 150,160; "
                                                "default: half the calm campaigns' wall times")
    ap.add_argument("--measure-arg", action="append", default=[], help="extra argument for every hwprof measure")
    ap.add_argument("--label", default="", help="prefix of the store names")
    ap.add_argument("--out", type=Path, default=Path("bench-out/robust"))
    ap.add_argument("--report-only", action="store_true", help="only the figures of stores already in --out")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    base = ["--device", a.device, "--space", a.space]
    hog_s = tuple(float(x) for x in a.hog_s.split(",")) if a.hog_s else None
    for cond in a.conditions.split(","):
        label = f"{a.label}{cond}"
        print(f"\n## {cond} ({a.device}, {a.space}, {a.archs} archs per campaign, extra: {a.measure_arg or 'none'})",
              flush=True)
        if a.report_only:
            stores = [a.out / f"{label}-{i}.sqlite" for i in (1, 2)]
        else:
            if cond == "hog" and hog_s is None:
                raise SystemExit("the hog condition needs the calm walls: run calm first (default) or give --hog-s")
            t0 = time.perf_counter()
            stores, runs = campaign_pair(a.out, label, base, a.archs, a.seed, a.measure_arg,
                                         hog_s if cond == "hog" else None)
            print(f"  total wall {time.perf_counter() - t0:.0f} s")
            if cond == "calm" and hog_s is None:  # half of each calm campaign's wall
                hog_s = (float(np.mean([runs[0].wall_s, runs[2].wall_s])) / 2,
                         float(np.mean([runs[1].wall_s, runs[3].wall_s])) / 2)
        report(stores, a.device, a.space, a.calibration, a.seed)


if __name__ == "__main__":
    main()
