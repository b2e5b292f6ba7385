"""Accuracy of hwprof's latency predictors on real device data (issue 3 targets).

1. help-fbnet (HELP, NeurIPS 2021; 5000 fbnet-c100 architectures, end-to-end
   latency): test set = last 1000 rows in ``arch_id`` order, training = the
   first N of the rest. For every GPU and Xeon column, N = 4000: MAPE and the
   share within ±5% of each kind against the additive ``ridge``.
2. Few-shot transfer, N = 10 and 20: priors fitted on the full data of the
   other devices (never the target device, at any batch size); Spearman ρ on
   the test set, mean and spread over random draws of the N samples.
3. Local CPU (needs a store with op and arch records): ``lut-calibrated``
   from the op table and 20 end-to-end measurements, tested on other
   architectures of the store.
4. Elastic spaces (``--elastic STORE --space ofa-mbv3``, a store of
   ``hwprof measure --space ofa-mbv3 --archs 300``, or ``tfnas --widths``):
   every kind trained on the first 200 architectures in measurement order,
   tested on the next 100, against ridge on the bare one-hot (hwprof 0.1).

Usage::

    python benchmarks/bench_predictors.py                       # parts 1 and 2
    python benchmarks/bench_predictors.py --store results.sqlite --device cpu --space proxylessnas
    python benchmarks/bench_predictors.py --elastic ofa.sqlite --device cpu --space ofa-mbv3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwprof.predictors.evaluate import metrics  # noqa: E402
from hwprof.predictors import make_predictor  # noqa: E402
from hwprof.spaces import space as get_space  # noqa: E402

#: The full HELP CSV in the reference data beside the checkout (tests use the slice in tests/data).
HELP_CSV = ROOT.parent / "shared" / "data" / "help-fbnet" / "fbnet_cifar100_latency.csv"
GPUS = ("1080ti", "2080ti", "titan_rtx", "titanx", "titanxp")
XEONS = ("gold_6226", "gold_6240", "silver_4114", "silver_4210r")


def device_of(column: str) -> str:
    """Device of a help-fbnet column, batch size stripped (``titan_rtx_32_ms`` → ``titan_rtx``)."""
    name = column.removesuffix("_ms")
    for d in GPUS + XEONS:
        if name == d or name.startswith(d + "_") and name[len(d) + 1 :].isdigit():
            return d
    return name


def target_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith("_ms") and device_of(c) in GPUS + XEONS]


def parse_settings(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings as predictor parameters (numbers and true/false parsed)."""
    out: dict[str, object] = {}
    for item in items:
        key, _, text = item.partition("=")
        value: object = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(text)
                    break
                except ValueError:
                    pass
        out[key] = value
    return out


def explain_front(y: np.ndarray, ridge, pred: np.ndarray, kind: str) -> None:
    """Why a kind does not beat ridge on a column: the MAPE / ±5% trade-off of its level.

    Diagnostic only (it looks at the test rows): scales the kind's
    predictions by κ ∈ [0.95, 1.05] and reports whether any κ gives both a
    lower MAPE and a ±5% share at least ridge's, and how many test rows lie
    more than 5% above the prediction (measurement bursts).
    """
    kappas = [round(float(k), 4) for k in np.arange(0.95, 1.0501, 0.0025)]
    front = [(k, metrics(y, k * pred)) for k in kappas]
    dominating = [float(k) for k, m in front if m.mape < ridge.mape and m.within_5 >= ridge.within_5]
    best = max(front, key=lambda km: (km[1].within_5, -km[1].mape))
    slow = float(np.mean(y > 1.05 * pred))
    print(f"    {kind}: κ that beat ridge on both: {dominating or 'none'}; best ±5% {best[1].within_5:.1%} at "
          f"κ={best[0]} (MAPE {best[1].mape:.2%}); {slow:.1%} of test rows > 5% slower than predicted")


def part_full(frame, X, columns, kinds, n_train, settings, diagnose=False) -> None:
    print(f"\n## N = {n_train}: test = last 1000 rows by arch_id; MAPE / share within ±5% / fit+eval seconds")
    if settings:
        print(f"   parameters of the non-ridge kinds: {settings}")
    print(f"{'column':18s} " + " ".join(f"{k:>24s}" for k in kinds) + "  beats ridge (MAPE and ±5%)")
    te = slice(len(frame) - 1000, len(frame))
    ok_gpu, ok_beat = {k: True for k in kinds}, {k: True for k in kinds}
    for col in columns:
        y = frame[col].to_numpy(dtype=np.float64)
        res, models = {}, {}
        for kind in kinds:
            t0 = time.perf_counter()
            extra = settings if kind != "ridge" else {}
            model = make_predictor(kind, space="fbnet-c100", device=device_of(col), **extra)
            model.fit(X[:n_train], y[:n_train])
            m = metrics(y[te], model.predict(X[te]))
            res[kind] = (m, time.perf_counter() - t0)
            models[kind] = model
        base = res["ridge"][0]
        losers = []
        cells, beats = [], []
        for kind in kinds:
            m, sec = res[kind]
            cells.append(f"{m.mape:6.2%} {m.within_5:6.1%} {sec:5.1f}s")
            if kind != "ridge":
                better = m.mape < base.mape and m.within_5 >= base.within_5
                ok_beat[kind] &= better
                beats.append(f"{kind}:{'yes' if better else 'no'}")
                if not better:
                    losers.append(kind)
            if device_of(col) in GPUS and m.within_5 < 0.99:
                ok_gpu[kind] = False
        print(f"{col:18s} " + " ".join(f"{c:>24s}" for c in cells) + "  " + " ".join(beats), flush=True)
        if diagnose and losers:
            explain_front(y[te], res["ridge"][0], models[losers[0]].predict(X[te]), losers[0])
    for kind in kinds:
        extra = "" if kind == "ridge" else f"; beats ridge on every column: {ok_beat[kind]}"
        print(f"  {kind}: ±5% ≥ 99% on every GPU column: {ok_gpu[kind]}{extra}")


def part_fewshot(frame, X, columns, shots, draws, prior_kind) -> None:
    print(f"\n## few-shot transfer: priors = {prior_kind} fitted on all rows of the other devices; Spearman ρ on the test set")
    te = slice(len(frame) - 1000, len(frame))
    pool = len(frame) - 1000
    prior_cols = [c for c in frame.columns if c.endswith("_ms")]
    t0 = time.perf_counter()
    priors = {
        c: make_predictor(prior_kind, space="fbnet-c100", device=device_of(c)).fit(X, frame[c].to_numpy(np.float64))
        for c in prior_cols
    }
    print(f"  {len(priors)} priors fitted in {time.perf_counter() - t0:.1f}s")
    for n in shots:
        means = []
        print(f"  N = {n}: {'column':18s} mean ρ ± std (min..max over {draws} draws)   MAPE mean")
        for col in columns:
            own = device_of(col)
            usable = [p for c, p in priors.items() if device_of(c) != own]
            y = frame[col].to_numpy(np.float64)
            rhos, mapes = [], []
            for seed in range(draws):
                idx = np.random.default_rng(seed).choice(pool, n, replace=False)
                model = make_predictor("transfer", space="fbnet-c100", device=own, priors=usable).fit(X[idx], y[idx])
                m = metrics(y[te], model.predict(X[te]))
                rhos.append(m.spearman)
                mapes.append(m.mape)
            means.append(np.mean(rhos))
            print(
                f"         {col:18s} {np.mean(rhos):.4f} ± {np.std(rhos):.4f} ({min(rhos):.4f}..{max(rhos):.4f})"
                f"   {np.mean(mapes):.2%}",
                flush=True,
            )
        print(f"  N = {n}: mean ρ across columns {np.mean(means):.4f}, lowest column {min(means):.4f} "
              f"(targets: mean ≥ 0.97, none < 0.90)")


def part_store(store: Path, device: str, space: str, n_cal: int, n_test: int, seed: int) -> None:
    from hwprof.predictors.evaluate import store_dataset

    sp = get_space(space)
    print(f"\n## local {device}: lut-calibrated from the op table + {n_cal} end-to-end measurements ({store})")
    table, archs, y = store_dataset(store, device, sp)
    if table is None:
        raise SystemExit(f"{store} has no op records for {device}; run hwprof measure --ops first")
    if len(archs) < n_cal + 1:
        raise SystemExit(f"{store} has {len(archs)} architectures of {space}; need more than {n_cal}")
    X = sp.one_hot(archs)
    order = np.random.default_rng(seed).permutation(len(archs))
    tr, te = order[:n_cal], order[n_cal : n_cal + n_test]
    for kind in ("lut", "lut-calibrated"):
        model = make_predictor(kind, space=space, device=device, table=table).fit(X[tr], y[tr])
        m = metrics(y[te], model.predict(X[te]))
        print(f"  {kind:15s} n_test={m.n}  MAPE {m.mape:.2%}  ±5% {m.within_5:.1%}  ±10% {m.within_10:.1%}  "
              f"RMSE {m.rmse_ms:.3f} ms  ρ {m.spearman:.4f}")
    print("  targets: lut-calibrated MAPE ≤ 2% and ≥ 95% within ±5% on 100 other architectures")


def split_half(store: Path, device: str, sp, statistic: str) -> str:
    """How far two halves of each workload's rounds (odd, even) disagree: what no predictor can beat."""
    from hwprof.measure.records import rounds_by_key
    from hwprof.measure.stats import combine
    from hwprof.measure.store import Store

    with Store(store) as st:
        rounds = rounds_by_key(st.records(device=device, kind="arch", space=sp.name))
    d = np.array([abs(combine(r[0::2], statistic) / combine(r[1::2], statistic) - 1) for r in rounds.values() if len(r) > 1])
    if not len(d):
        return "one round per workload: unknown"
    return f"odd and even rounds differ by a median of {np.median(d):.2%} (p90 {np.percentile(d, 90):.2%})"


def part_elastic(
    store: Path, device: str, space: str, n_train: int, n_test: int, kinds: list[str], statistic: str = "median"
) -> None:
    """Every kind on a store of an elastic space, trained on the first rows and tested on the next (measurement order)."""
    from hwprof.predictors.evaluate import store_dataset
    from hwprof.predictors.features import arch_matrix

    sp = get_space(space)
    table, archs, y = store_dataset(store, device, sp, statistic)
    if len(archs) < n_train + n_test:
        raise SystemExit(f"{store} has {len(archs)} architectures of {space} on {device}; need {n_train + n_test}")
    X = arch_matrix(sp, archs)
    tr, te = slice(0, n_train), slice(n_train, n_train + n_test)
    res = sorted({sp.input_resolution(a) for a in archs})
    widths = sum(a.widths is not None for a in archs)
    print(f"\n## {space} on {device} ({store}, {statistic} of each round, median over rounds): "
          f"train on the first {n_train} architectures, test on the next {n_test}")
    print(f"   the data's own noise: {split_half(store, device, sp, statistic)}")
    print(f"   {len(res)} resolutions ({res[0]}..{res[-1]}), {widths} architectures with elastic widths, "
          f"latency {y.min():.2f}..{y.max():.2f} ms")
    print(f"   {'kind':26s} {'MAPE':>7s} {'±5%':>7s} {'±10%':>7s} {'ρ':>7s} {'s':>6s}")
    from sklearn.linear_model import Ridge

    one_hot = sp.one_hot(archs)
    t0 = time.perf_counter()
    m = metrics(y[te], Ridge(alpha=1e-3).fit(one_hot[tr], y[tr]).predict(one_hot[te]))  # what ridge was in hwprof 0.1
    print(f"   {'ridge on the one-hot (0.1)':26s} {m.mape:7.2%} {m.within_5:7.1%} {m.within_10:7.1%} {m.spearman:7.4f} "
          f"{time.perf_counter() - t0:6.1f}")
    rows = [(k, k, X) for k in kinds]
    if table is not None:
        rows += [(k, k, X) for k in ("lut", "lut-calibrated")]
    for label, kind, feats in rows:
        t0 = time.perf_counter()
        extra = {"table": table} if kind in ("lut", "lut-calibrated") or (kind == "auto" and table is not None) else {}
        if kind == "auto" and table is not None:
            extra["kinds"] = ("ridge", "lut-calibrated", "gbdt", "mlp")
        model = make_predictor(kind, space=space, device=device, **extra).fit(feats[tr], y[tr])
        m = metrics(y[te], model.predict(feats[te]))
        chose = f"  (chose {model.chosen_kind_})" if kind == "auto" else ""
        print(f"   {label:26s} {m.mape:7.2%} {m.within_5:7.1%} {m.within_10:7.1%} {m.spearman:7.4f} "
              f"{time.perf_counter() - t0:6.1f}{chose}", flush=True)
    print("   targets: ≥ 95% within ±5% and MAPE ≤ 2.5% for the best kind and for auto")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HELP_CSV)
    ap.add_argument("--kinds", default="ridge,gbdt,mlp,auto", help="kinds for part 1 (ridge is the baseline)")
    ap.add_argument("--columns", default="", help="comma-separated subset of target columns")
    ap.add_argument("--train-size", type=int, default=4000)
    ap.add_argument("--diagnose", action="store_true",
                    help="for columns where a kind does not beat ridge, print the level trade-off (looks at test rows)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="parameter of the non-ridge kinds in part 1 (ablations: --set recent=0)")
    ap.add_argument("--shots", default="10,20")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--prior-kind", default="ridge")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--skip-fewshot", action="store_true")
    ap.add_argument("--store", type=Path, help="store with op and arch records (part 3)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--space", default="proxylessnas")
    ap.add_argument("--calibration", type=int, default=20)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--elastic", type=Path, help="store of arch records of an elastic space (--space): every kind")
    ap.add_argument("--elastic-train", type=int, default=200)
    ap.add_argument("--statistic", default="median", help="per-round statistic of the store's samples (median, min)")
    args = ap.parse_args(argv)

    if args.elastic is not None:
        kinds = ["ridge"] + [k for k in args.kinds.split(",") if k and k != "ridge"]
        part_elastic(args.elastic, args.device, args.space, args.elastic_train, args.test, kinds, args.statistic)
        return
    if args.store is not None:
        part_store(args.store, args.device, args.space, args.calibration, args.test, args.seed)
        if args.skip_full and args.skip_fewshot:
            return
    frame = pd.read_csv(args.data).sort_values("arch_id").reset_index(drop=True)
    sp = get_space("fbnet-c100")
    X = sp.one_hot(frame["ops"].tolist())
    columns = args.columns.split(",") if args.columns else target_columns(frame)
    kinds = ["ridge"] + [k for k in args.kinds.split(",") if k and k != "ridge"]
    print(f"help-fbnet: {len(frame)} architectures, {len(columns)} GPU/Xeon columns, data {args.data}")
    if not args.skip_full:
        part_full(frame, X, columns, kinds, args.train_size, parse_settings(args.set), args.diagnose)
    if not args.skip_fewshot:
        part_fewshot(frame, X, columns, [int(s) for s in args.shots.split(",")], args.draws, args.prior_kind)


if __name__ == "__main__":
    main()
