"""Figures of every searcher (SEARCHERS.md §4 tiers B and C, §5; issue 14's targets), on one core.

Run:  python benchmarks/bench_searchers.py [--quick] [--only NAME] [--seed 0]

Runs ``core`` (the shared parts: proxy task, proxy supernet step time, the
stand-in's step time) and then, for every registered searcher, the
``run(args)`` of ``benchmarks/bench_<name>.py`` (written with each plugin),
each under a heading with its wall time. A plugin without a benchmark file
is reported as such; one that fails is reported with its error and the
others still run (exit status 1 if any failed).

``args`` is this script's ``argparse.Namespace``: ``quick`` (fewer runs,
smaller budgets: a smoke test), ``seed``, ``only``, ``shared_data`` (the
``../shared/data`` folder next to the repository, for the released latency
files not shipped in ``data/``) and ``data`` (the repository's ``data/``).
A benchmark module may define ``add_arguments(parser)`` to add its own options.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def bench_modules() -> dict[str, Path]:
    """Plugin name → its benchmark file, for every registered searcher (the file may not exist yet)."""
    import searchers

    names = sorted(set(searchers.available()) | set(searchers.problems()))
    return {name: HERE / f"bench_{name}.py" for name in names}


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_core(args: argparse.Namespace) -> None:
    """Cost of the shared parts: digits load, one proxy supernet step per space, one stand-in step."""
    import torch.nn.functional as F

    import hwprof
    from searchers.data import digits
    from searchers.supernet import SuperNet
    from searchers.testing import StandInTask, macs_table_model

    t = time.perf_counter()
    task = digits(32, seed=args.seed)
    print(f"digits at 32 px: {time.perf_counter() - t:.2f} s to load; splits "
          f"{len(task.y_weights)} / {len(task.y_arch)} / {len(task.y_test)} images (weights / arch / test)")
    gen = torch.Generator().manual_seed(args.seed)
    x, y = next(task.batches("weights", 64, generator=gen, augment=True))
    runs = 2 if args.quick else 5
    spaces = ["proxylessnas", "spnas"] if args.quick else ["proxylessnas", "spnas", "lightnas", "tfnas", "spos"]
    print("proxy supernet (×0.25, 32 px, batch 64): one single-path SGD step (fwd + bwd + step), "
          f"median of {runs}")
    for name in spaces:
        space = hwprof.space(name)
        torch.manual_seed(args.seed)
        net = SuperNet(space, width_mult=0.25, resolution=32, classes=task.classes).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        times = []
        for i in range(runs + 1):
            idx = space.indices(space.sample(1, seed=i)[0])
            t = time.perf_counter()
            loss = F.cross_entropy(net(x, idx), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
        n_params = sum(p.numel() for p in net.parameters())
        print(f"  {name:13s} {1e3 * statistics.median(times[1:]):7.1f} ms/step   "
              f"({n_params / 1e6:.2f} M supernet parameters)")
    space = hwprof.space("lightnas")
    st = StandInTask(space, seed=args.seed)
    net = st.make_supernet(space)
    lat = macs_table_model(space)
    alpha = torch.zeros(space.num_layers, space.max_choices, requires_grad=True)
    opt = torch.optim.Adam([alpha], lr=1e-3)
    xs, ys = next(st.batches("arch", 64, generator=gen))
    n = 300 if args.quick else 3000
    t = time.perf_counter()
    for _ in range(n):
        w = lat.gumbel_softmax(alpha, hard=True)
        loss = F.cross_entropy(net(xs, w), ys) + 0.1 * lat.expected(w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"stand-in α step (Gumbel + stand-in CE + expected latency, Adam): "
          f"{1e6 * (time.perf_counter() - t) / n:.0f} µs/step over {n} steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller budgets (smoke test)")
    parser.add_argument("--only", action="append", default=None,
                        help="run only this plugin (or 'core'); repeatable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    modules = bench_modules()
    loaded: dict[str, ModuleType | Exception] = {}
    for name, path in modules.items():
        if path.exists():
            try:
                loaded[name] = load_module(name, path)
                hook = getattr(loaded[name], "add_arguments", None)
                if callable(hook):
                    hook(parser)
            except Exception as exc:  # noqa: BLE001 (reported below; the others still run)
                loaded[name] = exc
    args = parser.parse_args(argv)
    args.data = REPO / "data"
    args.shared_data = REPO.parent / "shared" / "data"
    if args.list:
        print("core")
        for name, path in modules.items():
            print(f"{name}{'' if path.exists() else '  (no ' + path.name + ' yet)'}")
        return 0
    torch.set_num_threads(1)
    known = ["core", *modules]
    wanted = args.only or known
    unknown = [w for w in wanted if w not in known]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    for name in wanted:
        print(f"\n=== {name} " + "=" * max(3, 70 - len(name)), flush=True)
        t = time.perf_counter()
        try:
            if name == "core":
                run_core(args)
            elif name not in loaded:
                print(f"no benchmark: {modules[name].relative_to(REPO)} does not exist")
                continue
            elif isinstance(loaded[name], Exception):
                raise loaded[name]  # type: ignore[misc]
            else:
                loaded[name].run(args)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 (reported; the others still run)
            failed.append(name)
            traceback.print_exc()
        print(f"--- {name}: {time.perf_counter() - t:.1f} s wall", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
