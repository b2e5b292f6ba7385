"""TF-NAS figures (SEARCHERS.md §4.5 and §5, issue 14's TF-NAS target), on one core.

Run:  python benchmarks/bench_tfnas.py [--quick] [--tfnas-parts elasticity,standin,proxy] [--seed 0]
      (or through benchmarks/bench_searchers.py --only tfnas)

Parts:

``elasticity``
    Alg. 1 (elasticity scaling) on the released TF-NAS tables
    (``../shared/data/tf-nas/latency_{gpu,cpu}.pkl``): for random seed nets
    (random ops, depths and current mids) per target — GPU 10/12/15/18 ms,
    CPU 40/46/52/60/72/80 ms — the reachable share (min-width ≤ T ≤
    max-width), the worst and median ``after/T − 1`` of the reachable ones,
    and issue 14's target: every reachable result in ``[0.99·T, T]``.
``standin``
    The stand-in task (``strength 1, noise 0.5``), released GPU table,
    T = 15 ms, 20 epochs × 40 steps, 5 seeds, with and without elasticity:
    final ``LAT/T − 1`` and issue 14's target (closer to T with elasticity in
    ≥ 4 of 5 seeds); every reachable scaling in ``[0.99·T, T]``.
``proxy``
    digits at 32 px, ×0.25 supernet, GPU table, T ∈ {10, 12, 15} ms with the
    ``abs`` (code) and ``hinge`` (paper Eq. 9) objectives at the plugin's
    default budget, plus T = 15 ``abs`` without bi-sampling: per-epoch
    expected latency, seed-net latency before and after scaling, depths; the
    final latency vs ``[0.99·T, T]``; the op-collapse share (Fig. 2) with and
    without bi-sampling; wall time, s per weight step; each report's deviations.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hwprof  # noqa: E402
from searchers.base import Budget  # noqa: E402
from searchers.tfnas import PROXY_EPOCHS, TFNAS, elasticity_scaling  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARTS = ("elasticity", "standin", "proxy")
GPU_TARGETS = (10.0, 12.0, 15.0, 18.0)
CPU_TARGETS = (40.0, 46.0, 52.0, 60.0, 72.0, 80.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this benchmark (prefixed: bench_searchers.py shares one parser)."""
    parser.add_argument("--tfnas-parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--tfnas-proxy-epochs", type=int, default=None,
                        help=f"epochs per proxy search (default: the plugin's {PROXY_EPOCHS}; --quick: 2)")
    parser.add_argument("--tfnas-seed-nets", type=int, default=None, help="seed nets per elasticity target (200)")


def load_tables(shared: Path) -> dict[str, Any]:
    out = {}
    for kind in ("gpu", "cpu"):
        path = shared / "tf-nas" / f"latency_{kind}.pkl"
        if path.exists():
            out[kind] = hwprof.latency_model(path, space="tfnas")
    return out


def seed_nets(space: Any, n: int, seed: int) -> list[tuple[list[str], list[int | None]]]:
    """Random seed nets (ops and depths of ``space.sample``) with random current mids in ``[max // 2, max]``."""
    rng = np.random.default_rng(seed)
    geoms = space.geometry()
    out = []
    for arch in space.sample(n, seed=seed):
        mids: list[int | None] = []
        for g, cand in zip(geoms, arch.choices):
            if cand == "skip":
                mids.append(None)
            else:
                _, hi = space.mid_range(g, cand)
                mids.append(int(rng.integers(hi // 2, hi + 1)))
        out.append((list(arch.choices), mids))
    return out


def elasticity_table(name: str, lat: Any, targets: tuple[float, ...], n: int, seed: int) -> bool:
    """Print the elasticity table of one released table; True if every reachable result is in [0.99·T, T]."""
    space = lat.space
    nets = seed_nets(space, n, seed)
    print(f"\n{name} table ({lat.source.get('name')}, sha256 {lat.source.get('sha256', '?')[:12]}…), "
          f"{n} random seed nets per target")
    print(f"  {'T ms':>6} {'reachable':>10} {'worst %':>9} {'median %':>9} {'above T':>8} {'< 0.99T':>8} "
          f"{'min>T':>6} {'max<T':>6} {'ms/scaling':>10}")
    ok_all = True
    for target in targets:
        errs, above, below, too_big, too_small = [], 0, 0, 0, 0
        t = time.perf_counter()
        for choices, mids in nets:
            r = elasticity_scaling(lat, space, choices, mids, target)
            if r.reachable:
                e = r.after_ms / target - 1
                errs.append(e)
                above += r.after_ms > target
                below += r.after_ms < 0.99 * target
            elif r.min_ms > target:
                too_big += 1
            else:
                too_small += 1
        per = 1e3 * (time.perf_counter() - t) / len(nets)
        ok = above == 0 and below == 0
        ok_all &= ok
        worst = f"{100 * min(errs):+.3f}" if errs else "—"
        med = f"{100 * statistics.median(errs):+.4f}" if errs else "—"
        print(f"  {target:6.1f} {len(errs):5d}/{len(nets):<4d} {worst:>9} {med:>9} {above:8d} {below:8d} "
              f"{too_big:6d} {too_small:6d} {per:10.2f}")
    print(f"  issue 14 target (every reachable result in [0.99·T, T]): {'MET' if ok_all else 'MISSED'}")
    return ok_all


def stand_in(lat: Any, seeds: int, epochs: int, steps: int, target: float) -> bool:
    """With vs without elasticity on the stand-in; True if closer with it in ≥ 4 of 5 (or 80 % of) seeds."""
    from searchers.testing import StandInTask

    space = lat.space
    print(f"\nstand-in (strength 1, noise 0.5), {lat.source.get('name')}, T = {target:g} ms, "
          f"{epochs} epochs × {steps} steps, elasticity after each epoch from 10/90 of the run")
    print(f"  {'seed':>4} {'with %':>9} {'without %':>10} {'scalings':>9} {'reachable':>9} {'in [0.99T,T]':>12} "
          f"{'s with':>7} {'s w/o':>6}  derived arch with elasticity")
    closer = 0
    bad_scalings = 0
    for seed in range(seeds):
        task = StandInTask(space, seed=seed, steps_per_epoch=steps)
        t = time.perf_counter()
        r1 = TFNAS().fit_search(task, space, lat, target_ms=target, budget=Budget(epochs=epochs), seed=seed)
        t1 = time.perf_counter() - t
        r0 = TFNAS(elasticity=False).fit_search(task, space, lat, target_ms=target, budget=Budget(epochs=epochs),
                                                seed=seed)
        t0 = time.perf_counter() - t - t1
        rows = [r for r in r1.trace if "after_ms" in r]
        reach = [r for r in rows if r["reachable"]]
        inside = sum(0.99 * target <= r["after_ms"] <= target for r in reach)
        bad_scalings += len(reach) - inside
        closer += abs(r1.error) < abs(r0.error)
        print(f"  {seed:4d} {100 * r1.error:+9.3f} {100 * r0.error:+10.3f} {len(rows):9d} {len(reach):9d} "
              f"{inside:12d} {t1:7.1f} {t0:6.1f}  {r1.arch}")
    ok = closer >= int(np.ceil(0.8 * seeds))
    print(f"  closer to T with elasticity in {closer} of {seeds} seeds; reachable scalings outside [0.99·T, T]: "
          f"{bad_scalings}")
    print(f"  issue 14 target (closer with elasticity in ≥ 4 of 5 seeds): {'MET' if ok else 'MISSED'}"
          " (paper Table 5: 15.28 → 15.06 ms at T = 15)")
    return ok


def proxy(lat: Any, epochs: int | None, seed: int, quick: bool) -> None:
    """Proxy searches on digits: T × objective, plus bi-sampling off at T = 15 abs."""
    from searchers.data import digits

    space = lat.space
    task = digits(32, seed=seed)
    targets = (15.0,) if quick else (10.0, 12.0, 15.0)
    runs = [(t, obj, True) for t in targets for obj in ("abs", "hinge")] + [(15.0, "abs", False)]
    budget = Budget(epochs=epochs) if epochs else Budget()
    print(f"\nproxy: digits 32 px, ×0.25, {lat.source.get('name')}, budget "
          f"{budget.describe() if epochs else f'default ({PROXY_EPOCHS} epochs)'}, seed {seed}")
    summary = []
    deviations_shown = False
    for target, obj, bi in runs:
        s = TFNAS(objective=obj, bi_sampling=bi)
        t0 = time.perf_counter()
        c0 = time.process_time()

        def show(row: dict, t0: float = t0) -> None:
            exp = row.get("expected_latency_ms")
            before, after = row.get("before_ms"), row.get("after_ms")
            print(f"    epoch {row['epoch']:2d} {row['phase']:6s} τ {row['tau']:.3f} "
                  f"w-loss {row['weight_loss']:.3f} "
                  f"E[lat] {'—' if exp is None else f'{exp:7.3f}'} "
                  f"seed {row['seed_latency_ms']:7.3f} "
                  f"before {'—' if before is None else f'{before:7.3f}'} "
                  f"after {'—' if after is None else f'{after:7.3f}'} "
                  f"{'' if row.get('reachable', True) else '(unreachable) '}"
                  f"depths {row['depths']} {time.perf_counter() - t0:6.1f} s", flush=True)

        print(f"\n  T = {target:g} ms, objective {obj}, bi-sampling {'on' if bi else 'off'}")
        r = s.fit_search(task, space, lat, target_ms=target, budget=budget, seed=seed, callback=show)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        in_range = 0.99 * target <= r.latency_ms <= target
        p = r.proxy
        print(f"  → {r.arch}")
        print(f"  → {r.summary()}; in [0.99·T, T]: {in_range}; last scaling reachable: {p.get('last_reachable')}; "
              f"{p['weight_steps']} weight steps, {p['alpha_steps']} α steps, {wall / max(p['weight_steps'], 1):.2f} s "
              f"per weight step (α steps included); {cpu:.0f} s CPU, load {os.getloadavg()[0]:.1f}")
        if not deviations_shown:
            print("  deviations: " + "\n              ".join(r.deviations))
            deviations_shown = True
        summary.append((target, obj, bi, r, wall, cpu, in_range))
    print("\n  summary")
    print(f"  {'T':>5} {'obj':>5} {'bi':>3} {'latency':>8} {'err %':>7} {'in range':>8} {'reach':>5} {'acc %':>6} "
          f"{'trained':>7} {'gumbel':>7} {'derived':>7} {'wall s':>7} {'CPU s':>6}")
    for target, obj, bi, r, wall, cpu, in_range in summary:
        p = r.proxy
        f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"  {target:5.0f} {obj:>5} {'on' if bi else 'off':>3} {r.latency_ms:8.3f} {100 * r.error:+7.2f} "
              f"{in_range!s:>8} {p.get('last_reachable')!s:>5} {100 * p['test_accuracy']:6.1f} "
              f"{f(p['collapse_trained']):>7} {f(p['collapse_gumbel']):>7} {f(p['collapse_derived']):>7} {wall:7.1f} {cpu:6.1f}")
    print("  collapse = share of the most frequent op in two middle layers (layers 8, 9) after the warm-up: "
          "'trained' over both weight-step paths, 'gumbel' over path 1, 'derived' over the per-epoch argmax")


def run(args: argparse.Namespace | None = None) -> None:
    """Print the TF-NAS figures (see the module docstring)."""
    args = args or argparse.Namespace()
    quick = bool(getattr(args, "quick", False))
    seed = int(getattr(args, "seed", 0))
    shared = Path(getattr(args, "shared_data", REPO.parent / "shared" / "data"))
    parts = [p.strip() for p in str(getattr(args, "tfnas_parts", ",".join(PARTS))).split(",") if p.strip()]
    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine load (1-min average) at start: {load:.2f} on {os.cpu_count()} cores")
    tables = load_tables(shared)
    if not tables:
        print(f"released TF-NAS tables not found under {shared / 'tf-nas'}; nothing to run")
        return
    if "elasticity" in parts:
        n = getattr(args, "tfnas_seed_nets", None) or (40 if quick else 200)
        for kind, targets in (("gpu", GPU_TARGETS), ("cpu", CPU_TARGETS)):
            if kind in tables:
                elasticity_table(kind.upper(), tables[kind], targets, n, seed)
    if "standin" in parts and "gpu" in tables:
        stand_in(tables["gpu"], seeds=5, epochs=20, steps=10 if quick else 40, target=15.0)
    if "proxy" in parts and "gpu" in tables:
        epochs = getattr(args, "tfnas_proxy_epochs", None) or (2 if quick else None)
        proxy(tables["gpu"], epochs, seed, quick)


def main(argv: list[str] | None = None) -> int:
    """Run this benchmark alone, through :mod:`bench_searchers` (same options)."""
    from bench_searchers import main as run_benchmarks

    return run_benchmarks(["--only", "tfnas", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
