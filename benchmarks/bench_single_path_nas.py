"""Single-Path NAS figures (SEARCHERS.md §4.1 C1, §5; issue 14's Single-Path target), on one core.

Run:  python benchmarks/bench_single_path_nas.py [--quick] [--seed 0] [--spnas-steps N] [--spnas-plot FILE]
      (or through benchmarks/bench_searchers.py --only single_path_nas)

With the released Pixel 1 runtime model (``data/single-path-nas``) on the
proxy (digits, 32 px, ×0.25): R at step 0; per λ ∈ {0, 0.005, 0.02, 0.08} ×
2 seeds the runtime term during the warm-up (mean / min / max, dropout
included), R at the end of the warm-up, the final R and derived architecture,
proxy test accuracy, s per step and wall time; then the checks of §4.1 C1
((a) λ = 0 stays ≥ 120 ms, (b) mean final R non-increasing in λ, (c) at
λ = 0.02 the final R ≤ 0.8 × R at the end of the warm-up) and the smallest λ
whose runtime reaches ≤ 80 ms (the paper's target). ``--spnas-plot FILE``
writes the runtime-vs-step curves (needs matplotlib).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import hwprof
from searchers.base import Budget
from searchers.single_path_nas import DEFAULT_STEPS, SinglePathNAS

LAMBDAS = (0.0, 0.005, 0.02, 0.08)
TARGET_MS = 80.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("single_path_nas")
    g.add_argument("--spnas-steps", type=int, default=None,
                   help=f"weight steps per proxy search (default: the plugin's {DEFAULT_STEPS})")
    g.add_argument("--spnas-seeds", type=int, default=2, help="seeds per λ (2)")
    g.add_argument("--spnas-plot", type=Path, default=None, help="write runtime-vs-step curves to this PNG")


def run(args: argparse.Namespace) -> None:
    from searchers.data import digits

    torch.set_num_threads(1)
    space = hwprof.space("spnas")
    lat = hwprof.latency_model(Path(args.data) / "single-path-nas" / "pixel1_runtime_model.json", space=space)
    task = digits(32, seed=args.seed)
    steps = 40 if args.quick else (args.spnas_steps or DEFAULT_STEPS)
    lambdas = (0.0, 0.08) if args.quick else LAMBDAS
    seeds = range(args.seed, args.seed + (1 if args.quick else args.spnas_seeds))
    src = getattr(lat, "source", {}) or {}
    print(f"runtime model: {type(lat).__name__} {src.get('name', '')} sha256 {str(src.get('sha256', '?'))[:12]}…; "
          f"proxy digits 32 px, spnas ×0.25, {steps} steps per search")
    print("  λ      seed  R0 ms    warm-up term mean/min/max ms   R end warm-up   final R   acc    s/step  wall s")
    finals: dict[float, list[float]] = {}
    ends: dict[float, list[float]] = {}
    curves: dict[tuple[float, int], np.ndarray] = {}
    reports = {}
    for lam in lambdas:
        for seed in seeds:
            t0 = time.perf_counter()
            s = SinglePathNAS(runtime_lambda=lam)
            r = s.fit_search(task, space, lat, budget=Budget(steps=steps), seed=seed)
            wall = time.perf_counter() - t0
            w = r.proxy["runtime_warmup_ms"] or {"mean": float("nan"), "min": float("nan"), "max": float("nan")}
            end = r.proxy["runtime_end_of_warmup_ms"]
            finals.setdefault(lam, []).append(r.latency_ms)
            ends.setdefault(lam, []).append(end)
            curves[(lam, seed)] = s.step_runtime_ms_
            reports[(lam, seed)] = r
            assert r.latency_ms == s.runtime_ms_ == lat.arch_latency(r.arch)
            print(f"  {lam:<6g} {seed:4d}  {s.runtime_at_start_ms_:7.3f}  {w['mean']:8.1f} / {w['min']:6.1f} / "
                  f"{w['max']:6.1f}     {end:9.2f}   {r.latency_ms:8.2f}  {r.proxy['test_accuracy']:.3f}  "
                  f"{s.train_seconds_ / max(1, s.steps_):6.2f}  {wall:6.1f}")
            print(f"         arch {r.arch}")
    means = {lam: statistics.mean(v) for lam, v in finals.items()}
    print("\n  mean final R per λ: " + ", ".join(f"{lam:g}: {m:.2f} ms" for lam, m in means.items()))
    ordered = all(means[a] >= means[b] for a, b in itertools.pairwise(lambdas))
    print(f"  (a) λ = 0 final R >= 120 ms in every seed: {all(v >= 120.0 for v in finals[0.0])}")
    print(f"  (b) mean final R non-increasing in λ: {ordered}")
    if 0.02 in finals:
        ok = all(f <= 0.8 * e for f, e in zip(finals[0.02], ends[0.02]))
        print(f"  (c) λ = 0.02: final R <= 0.8 × R at the end of the warm-up in every seed: {ok}")
    reach = [lam for lam in lambdas if means[lam] <= TARGET_MS]
    print(f"  smallest λ whose mean final R <= {TARGET_MS:g} ms: {reach[0] if reach else 'none in the grid'}")
    (lam0, seed0) = next(iter(reports))
    print(f"  runtime term every 10 % of one run (λ = {lambdas[-1]:g}, seed {seeds[0]}): " + ", ".join(
        f"{v:.1f}" for v in curves[(lambdas[-1], seeds[0])][:: max(1, steps // 10)]))
    print("  deviations (λ = 0.02 report):" if 0.02 in finals else "  deviations:")
    rep = reports.get((0.02, seeds[0]), reports[(lam0, seed0)])
    for d in rep.deviations:
        print(f"    - {d}")
    if args.spnas_plot:
        _plot(curves, args.spnas_plot)


def _plot(curves: dict[tuple[float, int], np.ndarray], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no plot: pip install 'hwprof[plot]')")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for (lam, seed), c in curves.items():
        ax.plot(c, lw=0.8, label=f"λ={lam:g} seed {seed}")
    ax.axhline(TARGET_MS, color="k", ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("runtime term R (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"  plot: {path}")


def main(argv: list[str] | None = None) -> int:
    """Run this benchmark alone, through :mod:`bench_searchers` (same options)."""
    from bench_searchers import main as run_benchmarks

    return run_benchmarks(["--only", "single_path_nas", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
