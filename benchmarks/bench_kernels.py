"""Kernel predictor accuracy (issue 13): held-out sampled kernels, and a zoo of real networks end to end.

1. Kernel regressors: the kernels of a ``hwprof measure --kernels`` campaign
   split at random (``--holdout`` of them, default a fifth, held out); one
   regressor per kind fitted on the rest; MAPE and the share within ±10 % per
   kind on the held-out kernels.
2. Zoo: every ``.onnx`` file of ``--zoo`` (``benchmarks/zoo_export.py``)
   measured end to end on the device into the same store (skipped where
   already measured: re-running resumes), then predicted from the kernel
   predictor fitted on every kernel: the plain kernel sum (nn-Meter's
   method) and the predictor calibrated on the campaign's built-in space
   networks (as ``fit-predictor --kernels`` does; no zoo network is used to
   fit anything). Per network the measured and predicted ms, the errors, and
   what went unpriced; the share within ±10 % and MAPE of both.

Usage::

    hwprof measure --device cpu --kernels --n 2000 --seed 0 --store out/kernels.cpu.sqlite
    python benchmarks/bench_kernels.py --store out/kernels.cpu.sqlite --device cpu --zoo out/zoo
    python benchmarks/bench_kernels.py ... --zoo out/zoo --zoo-store out/zoo2.sqlite   # the zoo measured apart
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwprof.kernels.campaign import fusion_rules  # noqa: E402
from hwprof.kernels.predictor import FLOOR_KEY, KernelPredictor, kernel_latencies  # noqa: E402
from hwprof.artifacts.kernel import parse_kernel  # noqa: E402
from hwprof.measure.records import fingerprint_hash, latencies_by_key  # noqa: E402
from hwprof.measure.store import Store  # noqa: E402


def kernel_part(lat: dict[str, float], rules, holdout: float, seed: int) -> None:
    keys = [k for k in lat if k != FLOOR_KEY]
    rng = np.random.default_rng(seed)
    test = set(rng.choice(keys, size=int(len(keys) * holdout), replace=False))
    train = {k: v for k, v in lat.items() if k not in test}
    t0 = time.perf_counter()
    model, _ = KernelPredictor.fit(train, "bench", rules, seed=seed)
    fit_s = time.perf_counter() - t0
    print(f"\n## Kernel regressors: {len(train) - 1} kernels to fit, {len(test)} held out ({fit_s:.1f} s to fit)\n")
    print("| kind | train | held out | MAPE | ±10 % | ±20 % |\n|---|---|---|---|---|---|")
    tk = sorted(test)
    pred = model.predict_keys(tk) + model.floor_ms
    meas = np.array([lat[k] for k in tk])
    kinds = np.array([parse_kernel(k).kind for k in tk])
    for kind in sorted(set(kinds)):
        m = kinds == kind
        e = np.abs(pred[m] / meas[m] - 1)
        print(f"| {kind} | {model.kinds[kind].n_train if kind in model.kinds else 0} | {m.sum()} | {e.mean():.2%} "
              f"| {(e <= 0.1).mean():.1%} | {(e <= 0.2).mean():.1%} |")
    e = np.abs(pred / meas - 1)
    print(f"| **all** | {len(train) - 1} | {len(tk)} | {e.mean():.2%} | {(e <= 0.1).mean():.1%} | {(e <= 0.2).mean():.1%} |")


def measure_zoo(store: Store, device: str, files: list[Path]) -> None:
    from hwprof.artifacts.model import model_workload
    from hwprof.devices import open_device
    from hwprof.measure.campaign import run_campaign

    dev = open_device(device)
    try:
        t0 = time.perf_counter()
        report = run_campaign(dev, [model_workload(f) for f in files], store, busy="wait")
        print(f"zoo campaign: {len(report.records)} new records, {report.skipped} models already measured, "
              f"{time.perf_counter() - t0:.0f} s; repeatability {report.repeatability}")
    finally:
        dev.close()


def zoo_part(store: Store, device: str, fp_hash: str, model: KernelPredictor, files: list[Path], stat: str) -> None:
    from hwprof.artifacts.model import model_workload
    from hwprof.artifacts.graph import kernels_of

    measured = latencies_by_key(store.records(device, "model", None, fp_hash), stat)
    rows = []
    print("\n## Zoo: measured end to end vs predicted from kernels\n")
    print("| network | GMACs | kernels | measured ms | kernel sum ms | error | calibrated ms | error | unpriced |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in files:
        key = model_workload(f).key
        if key not in measured:
            print(f"| {f.stem} | not measured |")
            continue
        kg = kernels_of(f, fusion=model.fusion)
        plain, cal = model.predict_graph(kg, calibrated=False), model.predict_graph(kg)
        e0, e1 = plain.total_ms / measured[key] - 1, cal.total_ms / measured[key] - 1
        rows.append((f.stem, e0, e1))
        unpriced = ", ".join(f"{k}×{v}" for k, v in cal.unpriced.items()) or "-"
        print(f"| {f.stem} | {kg.macs / 1e9:.2f} | {sum(k.kind != 'layout' for k in kg.kernels)} | {measured[key]:.2f} "
              f"| {plain.total_ms:.2f} | {e0:+.1%} | {cal.total_ms:.2f} | {e1:+.1%} | {unpriced} |")
    for col, name in ((1, "kernel sum"), (2, "calibrated")):
        e = np.abs([r[col] for r in rows])
        worst = max(rows, key=lambda r: abs(r[col]))
        print(f"\n{name}: {len(rows)} networks, within ±10 % {np.mean(e <= 0.1):.1%}, within ±5 % {np.mean(e <= 0.05):.1%}, "
              f"MAPE {e.mean():.2%}, worst {worst[0]} {worst[col]:+.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--zoo", type=Path, help="Folder of .onnx networks (benchmarks/zoo_export.py).")
    ap.add_argument("--zoo-store", type=Path, help="Store for the zoo's end-to-end records (default: --store).")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--skip-kernels", action="store_true", help="Only the zoo.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--statistic", help="How rounds become one latency (median, min; default: the store's)")
    args = ap.parse_args()
    store = Store(args.store)
    from hwprof.devices import open_device

    dev = open_device(args.device)
    fp_hash = fingerprint_hash(dev.fingerprint())
    dev.close()
    stat = args.statistic or store.statistic(args.device)
    lat = kernel_latencies(store.records(args.device, "kernel", None, fp_hash), stat)
    rules = fusion_rules(store, fp_hash)
    load = os.getloadavg()
    print(f"# bench_kernels on {args.device}: {len(lat)} kernels in {args.store} ({stat}); fusion rules {rules}; "
          f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    if not args.skip_kernels:
        kernel_part(lat, rules, args.holdout, args.seed)
    if args.zoo:
        files = sorted(args.zoo.glob("*.onnx"))
        zoo_store = Store(args.zoo_store) if args.zoo_store else store
        measure_zoo(zoo_store, args.device, files)
        from hwprof.kernels.campaign import calibration_graphs

        model, _ = KernelPredictor.fit(lat, args.device, rules, seed=args.seed)
        graphs, ms = calibration_graphs(store.records(args.device, "arch", None, fp_hash), rules, model.batch, stat)
        if graphs:
            fit = model.calibrate(graphs, ms)
            print(f"\ncalibrated on {len(graphs)} space networks (MAPE on them {fit['mape_before']:.2%} → "
                  f"{fit['mape_after']:.2%}): " + ", ".join(f"{k} ×{v:.2f}" for k, v in model.scale.items())
)
        zoo_part(zoo_store, args.device, fp_hash, model, files, stat)


if __name__ == "__main__":
    main()
