"""SPOS figures (SEARCHERS.md §4.2 B1 / C1, §5; issue 14's SPOS target), on one core.

Run:  python benchmarks/bench_spos.py [--quick] [--seed 0]
      (or through benchmarks/bench_searchers.py --only spos)

1. Stand-in (strength 1, noise 0.5), the paper's P 50 / T 20 / k 10 / 25 + 25 / p 0.1:
   evolution vs random search at the same number of evaluations, 10 seeds, on
   the proxylessnas space under ProxylessNAS's Pixel 1 LUT ≤ 80 ms and on the
   spos space under FLOPs ≤ 330 M. Per seed the best stand-in score ``s`` of
   each, the winner's latency / MMACs vs the limit, #evaluated, #rejected,
   #duplicates; wins of evolution.
2. Proxy (digits, 32 px, ×0.25) on the spos space: one supernet trained with
   constraint-bin sampling (train time, loss per epoch, bins hit, timeouts),
   then three searches on it (FLOPs ≤ 310 / 330 / 350 M, reduced P/T, recorded)
   and random search at equal evaluations for 330 M. Per search the best and
   mean top-k fitness per generation, #evaluated / #rejected / #duplicates, the
   winner and its FLOPs vs the limit, wall time, and the report's deviations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import hwprof
from searchers.base import Budget
from searchers.spos import DEFAULT_EPOCHS, SPOS
from searchers.testing import StandInTask

PROXY_LIMITS = (310e6, 330e6, 350e6)
#: Reduced evolution on the proxy (each evaluation is a BN recalibration + an arch-split pass).
PROXY_EVOLUTION = {"population": 20, "generations": 5, "select": 5, "mutations": 10, "crossovers": 10}
QUICK_EVOLUTION = {"population": 8, "generations": 2, "select": 3, "mutations": 4, "crossovers": 4}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("spos")
    g.add_argument("--spos-seeds", type=int, default=10, help="stand-in seeds for evolution vs random (10)")
    g.add_argument("--spos-epochs", type=int, default=None,
                   help=f"proxy supernet epochs (default: the plugin's {DEFAULT_EPOCHS})")
    g.add_argument("--spos-full-evolution", action="store_true",
                   help="run the paper's P 50 / T 20 on the proxy too (≈ 1050 evaluations per search)")


def _latency_lut(args: argparse.Namespace, space: Any) -> Any:
    for base in (REPO / "tests" / "data", Path(args.shared_data)):
        path = base / "proxylessnas" / "mobile_trim.yaml"
        if path.exists():
            return hwprof.latency_model(path, space=space)
    return None


def stand_in(args: argparse.Namespace) -> None:
    seeds = range(args.seed, args.seed + (3 if args.quick else args.spos_seeds))
    cases = []
    pxl = hwprof.space("proxylessnas")
    lut = _latency_lut(args, pxl)
    if lut is not None:
        cases.append(("proxylessnas, Pixel 1 LUT <= 80 ms", pxl, lut, {"target_ms": 80.0}))
    else:
        print("(ProxylessNAS's mobile_trim.yaml not found: the proxylessnas case is skipped)")
    cases.append(("spos, FLOPs <= 330 M", hwprof.space("spos"), None, {"constraint": {"kind": "flops", "limit": 330e6}}))
    for label, space, lat, kw in cases:
        print(f"\nstand-in (strength 1, noise 0.5), {label}; P 50 / T 20 / k 10 / 25 + 25 / p 0.1")
        print("  seed   evo s   rand s   win   evo cost   limit    #eval  #rejected  #dups   s")
        wins, costs = 0, []
        for seed in seeds:
            t0 = time.perf_counter()
            task = StandInTask(space, seed=seed, strength=1.0, noise=0.5)
            s = SPOS().fit(task, space, lat, budget=Budget(steps=1), seed=seed)
            evo = s.search(**kw)
            rnd = s.random_search(**kw)
            rec = s.searches_[-2]
            se, sr = task.score(space.indices(evo.arch)), task.score(space.indices(rnd.arch))
            wins += se > sr
            cost = evo.latency_ms if lat is not None else evo.macs / 1e6
            limit = 80.0 if lat is not None else 330.0
            costs.append(cost / limit)
            assert all(c.cost <= limit for c in rec.evaluated)
            print(f"  {seed:4d}  {se:6.2f}  {sr:7.2f}   {'yes' if se > sr else 'no ':3s}  {cost:9.2f}  {limit:6.1f}  "
                  f"{len(rec.evaluated):6d}  {rec.rejected:9d}  {rec.duplicates:5d}  {time.perf_counter() - t0:4.1f}")
        print(f"  evolution beats random search in {wins} of {len(seeds)} seeds; the winner's cost is "
              f"{100 * min(costs):.2f}–{100 * max(costs):.2f} % of the limit")


def proxy(args: argparse.Namespace) -> None:
    from searchers.data import digits

    space = hwprof.space("spos")
    task = digits(32, seed=args.seed)
    epochs = 2 if args.quick else (args.spos_epochs or DEFAULT_EPOCHS)
    evo = {} if args.spos_full_evolution else (QUICK_EVOLUTION if args.quick else PROXY_EVOLUTION)
    s = SPOS(**evo)
    print(f"\nproxy: digits 32 px, spos space ×{s.width_mult}, batch {s.batch_size}, {epochs} epochs, "
          f"constraint-bin sampling; evolution {evo or 'as the paper'}")
    t0 = time.perf_counter()
    s.fit(task, space, None, budget=Budget(epochs=epochs), seed=args.seed)
    train = time.perf_counter() - t0
    losses = [r["loss"] for r in s.trace_]
    print(f"  supernet: {s.steps_} steps in {train:.1f} s ({train / max(1, s.steps_):.3f} s/step); "
          f"loss per epoch: {', '.join(f'{v:.3f}' for v in losses)}")
    print(f"  bins {[round(float(e), 1) for e in s.sampler_.edges]} M: hits {s.bin_hits_.tolist()}, "
          f"{s.timeouts_} timeouts")
    results = {}
    for limit in PROXY_LIMITS:
        t = time.perf_counter()
        r = s.search(constraint={"kind": "flops", "limit": limit})
        rec = s.searches_[-1]
        results[limit] = r
        wall = time.perf_counter() - t
        print(f"\n  FLOPs <= {limit / 1e6:.0f} M: {wall:.1f} s, {len(rec.evaluated)} evaluated "
              f"({wall / max(1, len(rec.evaluated)):.3f} s each incl. bookkeeping), {rec.rejected} rejected, "
              f"{rec.duplicates} duplicates skipped, {rec.invalid} invalid")
        print("    generation best / mean top-k fitness: " + ", ".join(
            f"{b:.3f}/{m:.3f}" for b, m in zip(rec.topk_best, rec.topk_mean)))
        print(f"    winner {r.arch}")
        print(f"    {r.macs / 1e6:.2f} M MACs (limit {limit / 1e6:.0f} M); arch-split fitness "
              f"{r.proxy['fitness']:.3f}, proxy test acc {r.proxy['test_accuracy']:.3f}")
        assert all(c.cost <= limit / 1e6 for c in rec.evaluated)
    macs = [results[x].macs for x in PROXY_LIMITS]
    archs = [results[x].arch for x in PROXY_LIMITS]
    print(f"\n  three searches on one supernet: winners distinct: {len(set(archs)) == 3}; "
          f"ordered by FLOPs: {macs == sorted(macs)} ({', '.join(f'{m / 1e6:.1f}' for m in macs)} M)")
    t = time.perf_counter()
    rr = s.random_search(constraint={"kind": "flops", "limit": 330e6})
    rec = s.searches_[-1]
    print(f"  random search at FLOPs <= 330 M, {len(rec.evaluated)} evaluations ({time.perf_counter() - t:.1f} s): "
          f"best fitness {rr.proxy['fitness']:.3f} vs evolution {results[330e6].proxy['fitness']:.3f}; "
          f"{rr.macs / 1e6:.1f} M MACs, test acc {rr.proxy['test_accuracy']:.3f}")
    print("  deviations (330 M report):")
    for d in results[330e6].deviations:
        print(f"    - {d}")
    print(f"  wall: supernet {train:.0f} s; per search "
          f"{statistics.mean(results[x].proxy['search_seconds'] for x in PROXY_LIMITS):.0f} s")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    stand_in(args)
    proxy(args)


def main(argv: list[str] | None = None) -> int:
    """Run this benchmark alone, through :mod:`bench_searchers` (same options)."""
    from bench_searchers import main as run_benchmarks

    return run_benchmarks(["--only", "spos", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
