"""ProxylessNAS figures (SEARCHERS.md §4.4 B1–B3 / C1, §5; issue 14's ProxylessNAS target), on one core.

Run:  python benchmarks/bench_proxylessnas.py [--quick] [--seed 0]
      (or through benchmarks/bench_searchers.py --only proxylessnas)

Latency model: ProxylessNAS's own Pixel 1 LUT ``mobile_trim.yaml`` (from
``../shared/data/proxylessnas``, else the test copy in ``tests/data``), T = 80 ms.

1. Stand-in, ``add#linear``, λ ∈ {0, 0.1, 0.3, 1, 3} × 3 seeds (strength 1, linear
   quality): derived LUT latency and E per λ, non-increasing in λ per seed, λ = 0 vs
   λ = 3, and agreement of the derived arch with the closed-form optimum
   ``argmax_k (q_lk − (λ/T)·F_lk)`` of the sheet (exact only for a CE linear in s) and
   with the per-layer best response under the stand-in's real CE ``softplus(−s)``
   (layers matching).
2. Stand-in, ``mul#log`` with β ∈ {0, 0.3, 0.6, 1.2} × 3 seeds (strength 0.05: mul#log
   scales the latency term by the CE, so it needs a task whose CE is not ≈ 0).
3. REINFORCE on the stand-in: mean reward of the first / last 10 % of updates, derived
   latency with and without the latency factor, entropy of p over the run.
4. Proxy (digits, 32 px, ×0.25, batch 64): ``mul#log`` (0.2 / 0.3) and ``add#linear``
   λ ∈ {0, 0.1, 0.5}: E and derived latency per setting, test accuracy, wall time;
   λ = 0 must end slower than λ = 0.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import itertools

import hwprof
from searchers.base import Budget
from searchers.proxylessnas import ProxylessNAS
from searchers.testing import StandInTask

T_MS = 80.0
#: α learning rate of the stand-in sweeps: their ≈360 α steps stand for the paper's ≈115 000.
STANDIN_ARCH_LR = 0.05
#: Batch of the proxy runs (digits: 1078 weight images → 16 steps per epoch).
PROXY_BATCH = 64


def _lut(args: argparse.Namespace, space: Any) -> Any:
    for folder in (Path(args.shared_data) / "proxylessnas", REPO / "tests" / "data" / "proxylessnas"):
        path = folder / "mobile_trim.yaml"
        if path.exists():
            return hwprof.latency_model(path, space=space)
    raise FileNotFoundError("mobile_trim.yaml not found in ../shared/data/proxylessnas or tests/data/proxylessnas")


def _closed_form(task: StandInTask, lut: Any, lam: float) -> np.ndarray:
    """The sheet's closed form ``argmax_k (q_lk − (λ/T)·F_lk)`` (exact when the CE is linear in s)."""
    score = np.where(task.space.mask, task.centred_ - lam / T_MS * lut.values, -np.inf)
    return score.argmax(1)


def _best_response(task: StandInTask, lut: Any, lam: float, idx: np.ndarray) -> np.ndarray:
    """Per layer the candidate minimising the stand-in's real objective ``softplus(−s) + λ(LAT − T)/T``
    with the other layers held at ``idx`` (coordinate-wise optimality; the CE is not linear in s)."""
    q, mask = task.centred_, task.space.mask
    s = q[np.arange(len(idx)), idx].sum()
    out = idx.copy()
    for l in range(len(idx)):
        s_l = s - q[l, idx[l]] + q[l]
        obj = np.logaddexp(0.0, -s_l) + lam / T_MS * lut.values[l]
        out[l] = int(np.where(mask[l], obj, np.inf).argmin())
    return out


def _sweep_lambda(space: Any, lut: Any, seeds, epochs: int) -> None:
    lams = (0.0, 0.1, 0.3, 1.0, 3.0)
    print(f"\n1. stand-in add#linear, {epochs} epochs × 40 steps, arch_lr {STANDIN_ARCH_LR}")
    print("   seed  λ      derived ms   E ms    layers = closed form / = per-layer best response")
    for seed in seeds:
        task = StandInTask(space, seed=seed, strength=1.0, noise=0.5, quality="linear")
        lats = []
        for lam in lams:
            s = ProxylessNAS(reg_loss="add#linear", reg_lambda=lam, arch_lr=STANDIN_ARCH_LR)
            r = s.fit_search(task, space, lut, target_ms=T_MS, budget=Budget(epochs=epochs), seed=seed)
            idx = space.indices(r.arch)
            m1 = int((_closed_form(task, lut, lam) == idx).sum())
            m2 = int((_best_response(task, lut, lam, idx) == idx).sum())
            lats.append(r.latency_ms)
            print(f"   {seed:4d}  {lam:4.1f}  {r.latency_ms:10.2f}  {r.proxy['expected_ms']:7.2f}    "
                  f"{m1:2d} / {m2:2d} of {space.num_layers}")
        mono = all(a >= b for a, b in itertools.pairwise(lats))
        print(f"   seed {seed}: non-increasing in λ: {mono}; λ=0 / λ=3 latency ratio {lats[0] / lats[-1]:.2f}")


def _sweep_beta(space: Any, lut: Any, seeds, epochs: int) -> None:
    betas = (0.0, 0.3, 0.6, 1.2)
    print(f"\n2. stand-in mul#log (α_r 0.2), strength 0.05, noise 0.02, {epochs} epochs, arch_lr {STANDIN_ARCH_LR}")
    for seed in seeds:
        task = StandInTask(space, seed=seed, strength=0.05, noise=0.02, quality="linear")
        rows = []
        for beta in betas:
            s = ProxylessNAS(reg_loss="mul#log", reg_beta=beta, arch_lr=STANDIN_ARCH_LR)
            r = s.fit_search(task, space, lut, target_ms=T_MS, budget=Budget(epochs=epochs), seed=seed)
            rows.append((beta, r.latency_ms, r.proxy["expected_ms"]))
        lats = [x[1] for x in rows]
        print(f"   seed {seed}: " + ", ".join(f"β {b:.1f}: {l:.2f} ms (E {e:.2f})" for b, l, e in rows)
              + f"; non-increasing: {all(a >= b for a, b in itertools.pairwise(lats))}")


def _reinforce(space: Any, lut: Any, seed: int, epochs: int) -> None:
    print(f"\n3. REINFORCE on the stand-in (reward acc·(T/LAT)^0.1, baseline 0.99, 10 nets per update, "
          f"one update per 2 weight steps, arch_lr {STANDIN_ARCH_LR}, {epochs} epochs)")
    task = StandInTask(space, seed=seed, strength=1.0, noise=0.5, quality="linear")
    out = {}
    for ratio in (0.1, 0.0):
        s = ProxylessNAS(mode="reinforce", arch_lr=STANDIN_ARCH_LR, rl_update_every=2, rl_tradeoff_ratio=ratio)
        r = s.fit_search(task, space, lut, target_ms=T_MS, budget=Budget(epochs=epochs), seed=seed)
        out[ratio] = (s, r)
    s, r = out[0.1]
    k = max(1, len(s.rewards_) // 10)
    print(f"   {len(s.rewards_)} updates; mean reward first 10 % {s.rewards_[:k].mean():.4f}, "
          f"last 10 % {s.rewards_[-k:].mean():.4f}")
    print(f"   derived latency with the factor {r.latency_ms:.2f} ms, without (w = 0) {out[0.0][1].latency_ms:.2f} ms")
    ent = [row["entropy"] for row in s.trace_]
    print("   entropy of p (nats, mean per layer) every 5th epoch: "
          + " ".join(f"{e:.3f}" for e in ent[::5]))


def _proxy(args: argparse.Namespace, space: Any, lut: Any) -> None:
    from searchers.data import digits

    task = digits(32, seed=args.seed)
    budget = Budget(epochs=2) if args.quick else Budget()
    settings = [("mul#log α_r 0.2 β 0.3", {}), ("add#linear λ 0", {"reg_loss": "add#linear", "reg_lambda": 0.0}),
                ("add#linear λ 0.1", {"reg_loss": "add#linear", "reg_lambda": 0.1}),
                ("add#linear λ 0.5", {"reg_loss": "add#linear", "reg_lambda": 0.5})]
    if args.quick:
        settings = [settings[1], settings[3]]
    print(f"\n4. proxy: digits 32 px, ×0.25, batch {PROXY_BATCH}, T {T_MS:.0f} ms, "
          f"budget {budget.describe() if budget != Budget() else 'default'}")
    lats = {}
    last = None
    for label, kw in settings:
        t0 = time.perf_counter()
        s = ProxylessNAS(batch_size=PROXY_BATCH, **kw)
        r = s.fit_search(task, space, lut, target_ms=T_MS, budget=budget, seed=args.seed)
        wall = time.perf_counter() - t0
        lats[label] = r.latency_ms
        last = r
        print(f"   {label:22s} E {r.proxy['expected_ms']:7.2f} ms, derived {r.latency_ms:7.2f} ms, "
              f"test acc {100 * r.proxy['test_accuracy']:.1f} %, {s.total_steps_} weight / {s.arch_steps_} α steps, "
              f"{wall:.0f} s ({wall / max(s.total_steps_, 1):.2f} s per weight step incl. α)")
    a, b = lats.get("add#linear λ 0"), lats.get("add#linear λ 0.5")
    if a is not None and b is not None:
        print(f"   λ = 0 ends slower than λ = 0.5: {a > b} ({a:.2f} vs {b:.2f} ms)")
    if last is not None:
        print("   deviations of the last report:")
        for d in last.deviations:
            print(f"     - {d}")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    space = hwprof.space("proxylessnas")
    lut = _lut(args, space)
    src = getattr(lut, "source", {}) or {}
    print(f"latency model: {src.get('name', 'mobile_trim.yaml')} (Pixel 1 LUT), constant {lut.constant_ms:.3f} ms, "
          f"sha256 {str(src.get('sha256', '?'))[:16]}…")
    seeds = (args.seed,) if args.quick else (args.seed, args.seed + 1, args.seed + 2)
    epochs = 20 if args.quick else 60
    _sweep_lambda(space, lut, seeds, epochs)
    _sweep_beta(space, lut, seeds, epochs)
    _reinforce(space, lut, args.seed, epochs)
    _proxy(args, space, lut)


def main(argv: list[str] | None = None) -> int:
    """Run this benchmark alone, through :mod:`bench_searchers` (same options)."""
    from bench_searchers import main as run_benchmarks

    return run_benchmarks(["--only", "proxylessnas", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
