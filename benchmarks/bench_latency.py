"""Throughput of the latency models, on one core.

Run:  python benchmarks/bench_latency.py [--quick]

Prints, each as ``median ± IQR (min … max, N runs)``:

1. ``score`` of a lookup table for the 22-layer ``fbnet-c100`` space (K = 9),
   batch of 100k architectures — target ≥ 1,000,000 architectures/s;
2. ``score`` of the released LightNAS-size MLP (147 → 128 → 64 → 1) on the
   ``lightnas`` space, batch of 100k — target ≥ 100,000 architectures/s;
3. ``expected`` forward + backward, L = 22, K = 9 — target ≤ 100 µs;
4. the latency term (masked softmax + expected + add_linear, forward and
   backward) as a fraction of one single-path supernet training step of the
   ``proxylessnas`` space at batch 32, resolution 64 (sampled path forward,
   cross-entropy, backward, SGD step).

Torch and the numpy BLAS both run on one thread: single-threaded timings are
the stable, intrinsic figure (and what a search process gets per worker).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import hwprof  # noqa: E402
from hwprof import objectives  # noqa: E402
from hwprof.latency import PredictorLatencyModel, TableLatencyModel  # noqa: E402
from hwprof.spaces.modules import build_op  # noqa: E402

#: The released LightNAS predictor, shipped in the repository's data/.
LIGHTNAS_PTH = Path(__file__).resolve().parents[1] / "data" / "lightnas" / "latency_predictor.pth.tar"


def samples(fn: Callable[[], object], runs: int, warmup: int = 3) -> list[float]:
    """Raw wall-clock samples of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def describe(xs: list[float], scale: float, unit: str) -> str:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    med = statistics.median(xs)
    iqr = q[2] - q[0]
    note = "  (IQR > 10% of median: noisy machine, rerun when quiet)" if iqr > 0.1 * med else ""
    return (
        f"{med * scale:.3g} {unit} ± {iqr * scale:.2g} ({min(xs) * scale:.3g} … {max(xs) * scale:.3g}, "
        f"N={len(xs)}){note}"
    )


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def bench_table_score(n: int, runs: int) -> float:
    space = hwprof.space("fbnet-c100")
    rng = np.random.default_rng(0)
    values = rng.uniform(0.05, 3.0, space.mask.shape)
    model = TableLatencyModel(values, space.mask, 1.5, space)
    idx = rng.integers(0, space.max_choices, size=(n, space.num_layers))
    xs = samples(lambda: model.score(idx), runs)
    rate = n / statistics.median(xs)
    print(f"[1] table score, fbnet-c100 (L=22, K=9), batch {n:,}: {describe(xs, 1e3, 'ms')}")
    print(f"    → {rate:,.0f} architectures/s (target ≥ 1,000,000): {verdict(rate >= 1e6)}")
    return rate


def lightnas_mlp() -> tuple[nn.Module, str]:
    mlp = nn.Sequential(nn.Linear(147, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
    if LIGHTNAS_PTH.exists():
        state = torch.load(LIGHTNAS_PTH, weights_only=True, map_location="cpu")
        mlp.load_state_dict({k.removeprefix("pred."): v for k, v in state.items()})
        return mlp, "released LightNAS weights"
    return mlp, "random weights (released file not found)"


def bench_mlp_score(n: int, runs: int) -> float:
    space = hwprof.space("lightnas")
    mlp, origin = lightnas_mlp()
    model = PredictorLatencyModel(module=mlp, space=space)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, space.max_choices, size=(n, space.num_layers))  # lightnas: every candidate legal
    xs = samples(lambda: model.score(idx), runs)
    rate = n / statistics.median(xs)
    print(f"[2] MLP score 147→128→64→1 ({origin}), batch {n:,}: {describe(xs, 1e3, 'ms')}")
    print(f"    → {rate:,.0f} architectures/s (target ≥ 100,000): {verdict(rate >= 1e5)}")
    f64 = PredictorLatencyModel(module=mlp, space=space, dtype=np.float64)
    xs64 = samples(lambda: f64.score(idx), runs)
    print(f"    (float64 numpy path: {n / statistics.median(xs64):,.0f} architectures/s)")
    return rate


def bench_expected(runs: int) -> float:
    space = hwprof.space("fbnet-c100")
    rng = np.random.default_rng(0)
    model = TableLatencyModel(rng.uniform(0.05, 3.0, space.mask.shape), space.mask, 1.5, space)
    w = model.masked_softmax(torch.randn(space.num_layers, space.max_choices)).detach().requires_grad_(True)

    def step():
        w.grad = None
        model.expected(w).backward()

    def floor():
        w.grad = None
        w.sum().backward()

    xs = samples(step, runs, warmup=50)
    fl = samples(floor, runs, warmup=50)
    med = statistics.median(xs)
    print(f"[3] expected forward+backward, L=22, K=9 (float32 weights): {describe(xs, 1e6, 'µs')}")
    print(f"    target ≤ 100 µs: {verdict(med <= 100e-6)}")
    print(f"    autograd floor on this machine, w.sum().backward(): {describe(fl, 1e6, 'µs')}")
    w64 = w.detach().double().requires_grad_(True)

    def step64():
        w64.grad = None
        model.expected(w64).backward()

    print(f"    float64 weights (bit-exact path): {describe(samples(step64, runs, warmup=50), 1e6, 'µs')}")
    # in a search loop the term joins a loss that is back-propagated anyway: its marginal cost
    p = torch.randn(1000, requires_grad=True)
    x = torch.randn(1000)

    def loss_only():
        p.grad = w.grad = None
        (x * p).sum().backward()

    def loss_plus_term():
        p.grad = w.grad = None
        ((x * p).sum() + model.expected(w)).backward()

    base = samples(loss_only, runs, warmup=50)
    plus = samples(loss_plus_term, runs, warmup=50)
    b_med, p_med = statistics.median(base), statistics.median(plus)
    print(
        f"    marginal cost added to an existing loss's backward: {(p_med - b_med) * 1e6:.0f} µs "
        f"(loss alone {b_med * 1e6:.0f} µs, with the term {p_med * 1e6:.0f} µs)"
    )
    alpha = torch.randn(space.num_layers, space.max_choices, requires_grad=True)

    def with_softmax():
        alpha.grad = None
        objectives.add_linear(model.expected(model.masked_softmax(alpha)), target_ms=20.0, lam=0.1).backward()

    xs2 = samples(with_softmax, runs, warmup=50)
    print(f"    with masked_softmax + add_linear (the whole latency term): {describe(xs2, 1e6, 'µs')}")
    return med


class SampledSupernet(nn.Module):
    """Single-path supernet of a space: every candidate of every layer, one sampled path per step."""

    def __init__(self, space, resolution: int):
        super().__init__()
        fixed = space.fixed_ops(resolution)
        n_stem = len(space.stem)
        self.stem = nn.Sequential(*[build_op(op) for op in fixed[:n_stem]])
        self.head = nn.Sequential(*[build_op(op) for op in fixed[n_stem:]])
        self.layers = nn.ModuleList(
            nn.ModuleList(nn.Identity() if op is None else build_op(op) for op in row)
            for row in space.choice_ops(resolution)
        )

    def forward(self, x: torch.Tensor, path: np.ndarray) -> torch.Tensor:
        x = self.stem(x)
        for choices, k in zip(self.layers, path):
            x = choices[int(k)](x)
        return self.head(x).flatten(1)


def bench_supernet_overhead(runs: int, latency_term_s: float) -> None:
    space = hwprof.space("proxylessnas")
    resolution, batch = 64, 32
    net = SampledSupernet(space, resolution).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(batch, 3, resolution, resolution)
    y = torch.randint(0, 1000, (batch,))
    rng = np.random.default_rng(0)
    legal = [np.flatnonzero(row) for row in space.mask]

    def step():
        path = np.array([rng.choice(c) for c in legal])
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(x, path), y)
        loss.backward()
        opt.step()

    xs = samples(step, runs, warmup=3)
    med = statistics.median(xs)
    values = np.random.default_rng(1).uniform(0.05, 3.0, space.mask.shape)
    model = TableLatencyModel(values, space.mask, 1.5, space)
    alpha = torch.zeros(space.num_layers, space.max_choices, requires_grad=True)

    def term():
        alpha.grad = None
        objectives.add_linear(model.expected(model.masked_softmax(alpha)), target_ms=20.0, lam=0.1).backward()

    lt = samples(term, max(runs * 20, 200), warmup=50)
    lmed = statistics.median(lt)
    print(
        f"[4] proxylessnas single-path supernet step, batch {batch}, {resolution}×{resolution} "
        f"(forward, CE, backward, SGD): {describe(xs, 1e3, 'ms')}"
    )
    print(f"    latency term (masked softmax + expected + add_linear, fwd+bwd): {describe(lt, 1e6, 'µs')}")
    print(f"    → overhead {lmed / med:.4%} of one supernet step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    parser.add_argument("--batch", type=int, default=100_000, help="architectures per score call")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    runs = 5 if args.quick else 30
    print(f"hwprof {hwprof.__version__}, torch {torch.__version__}, numpy {np.__version__}, 1 thread")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = "  (busy machine: timings inflated)" if load > 1.5 else ""
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs{busy}")
    bench_table_score(args.batch, runs)
    bench_mlp_score(args.batch, runs)
    exp = bench_expected(runs * 100)
    bench_supernet_overhead(5 if args.quick else 20, exp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
