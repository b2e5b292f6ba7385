"""A kernel-sampling campaign: the floor, a first sample, then more where the first fit errs.

``hwprof measure --kernels --n N`` runs, through the usual campaign
(:func:`hwprof.measure.campaign.run_campaign`: rounds, store, resume):

1. the fusion test (:mod:`hwprof.kernels.fusion`), once per device
   fingerprint; its rules are kept in the store (:meth:`Store.note`);
2. the floor kernel and ``N / 2`` kernels of :func:`~hwprof.kernels.sample.sample_kernels`;
3. ``N / 2`` more from :func:`~hwprof.kernels.sample.refine`, spent on the
   kinds and shapes the first half's cross-validated fit predicts worst,
   drawn once and kept in the store (:meth:`Store.note`), so a resumed
   campaign, or one re-run with more rounds, times the same kernels;
4. ``--calibrate M`` networks of the built-in spaces (:data:`CALIBRATION_SPACES`)
   end to end, for :meth:`~hwprof.kernels.predictor.KernelPredictor.calibrate`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import numpy as np

from hwprof.artifacts.workload import Workload
from hwprof.kernels.predictor import fit_kind, floor_key, kernel_latencies
from hwprof.kernels.sample import refine, sample_kernels
from hwprof.artifacts.kernel import parse_kernel
from hwprof.measure.campaign import CampaignReport
from hwprof.measure.protocol import Plan

#: Protocol of a kernel campaign where the user sets nothing: thousands of small workloads, a few rounds each.
KERNEL_PLAN = {"rounds": 3, "min_runs": 10, "max_runs": 60, "max_time_s": 2.0, "warmup_runs": 5}
#: Kernel kinds a TFLite device can run (hwprof's TFLite writer has no emitter for the others).
TFLITE_KINDS = ("conv", "dwconv", "se", "fc", "pool", "maxpool")


#: Spaces whose networks calibrate a kernel predictor: MobileNet blocks (with SE, h-swish, elastic resolution
#: and widths) and ShuffleNet units (channel split, concat, transpose).
CALIBRATION_SPACES = ("proxylessnas", "ofa-mbv3", "spos", "fbnet", "tfnas")


def calibration_stage(n: int, seed: int = 0, batch: int = 1) -> list[Workload]:
    """``n`` networks spread over :data:`CALIBRATION_SPACES`, to be measured end to end."""
    from hwprof.measure.campaign import arch_workloads
    from hwprof.spaces import space

    per = -(-n // len(CALIBRATION_SPACES)) if n > 0 else 0
    work = [w for name in CALIBRATION_SPACES for w in arch_workloads(space(name), per, seed, batch)]
    return work[:n]


def calibration_graphs(records, fusion: dict[str, bool] | None, batch: int = 1, statistic: str = "median"):
    """The kernel graphs and end-to-end latencies (ms, :func:`~hwprof.measure.records.latency_of` their rounds by
    ``statistic``) of a store's ``arch`` records."""
    import tempfile
    from pathlib import Path

    from hwprof.artifacts.graph import kernels_of
    from hwprof.artifacts.workload import artifact_for
    from hwprof.measure.records import latency_of

    rounds: dict[tuple[str, str], list] = {}  # by space too: equal texts of two spaces are two networks
    for r in records:
        if r.kind == "arch":
            rounds.setdefault((r.space, r.key), []).append(r)
    graphs, ms = [], []
    with tempfile.TemporaryDirectory(prefix="hwprof-calibrate-") as tmp:
        for (sp, key), measured in rounds.items():
            art = artifact_for(Workload.of_arch(sp, key, batch), "onnx", Path(tmp))
            graphs.append(kernels_of(art.path, fusion=fusion))
            ms.append(latency_of(measured, statistic))
    return graphs, ms


def kernel_plan(plan: Plan, overrides: dict) -> Plan:
    """``plan`` with :data:`KERNEL_PLAN` where the user gave no value of their own."""
    return plan.updated({k: v for k, v in KERNEL_PLAN.items() if overrides.get(k) is None})


def kinds_for(fmt: str, only: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """Kernel kinds a device of artifact format ``fmt`` can time, of ``only`` if given (None: all)."""
    from hwprof.errors import ConfigError
    from hwprof.kernels.sample import KIND_SHARES

    kinds = tuple(only or KIND_SHARES)
    unknown = sorted(set(kinds) - set(KIND_SHARES))
    if unknown:
        raise ConfigError(f"unknown kernel kind(s) {', '.join(unknown)}; known: {', '.join(KIND_SHARES)}")
    kinds = tuple(k for k in kinds if fmt != "tflite" or k in TFLITE_KINDS)
    if not kinds:
        raise ConfigError(f"none of the kernel kinds {', '.join(only or ())} can be exported as {fmt}")
    return kinds


def runs_on(spec, fmt: str) -> bool:
    """Whether hwprof can export ``spec`` in format ``fmt`` (TFLite: odd conv kernels, global pools)."""
    if fmt != "tflite":
        return True
    return spec.kind in TFLITE_KINDS and (spec.family != "conv" or spec.k % 2 == 1) and (
        spec.family != "pool" or spec.k == 1)


def first_stage(n: int, seed: int = 0, batch: int = 1, fmt: str = "onnx", only: Sequence[str] | None = None
                ) -> list[Workload]:
    """The floor kernel and the first half of an ``n``-kernel campaign (of the kinds ``only``, if given)."""
    half = (n + 1) // 2
    specs = [s for s in sample_kernels(2 * half, seed, batch, kinds_for(fmt, only)) if runs_on(s, fmt)][:half]
    floor = floor_key(batch)
    return [Workload.of_kernel(floor)] + [Workload.of_kernel(s.encode()) for s in specs]


def second_stage(records, first: Sequence[Workload], n: int, seed: int = 0, batch: int = 1,
                 fmt: str = "onnx", only: Sequence[str] | None = None) -> list[Workload]:
    """The second half: where a 5-fold fit on ``first``'s records errs most."""
    keys = {w.key for w in first}
    lat = {k: v for k, v in kernel_latencies(records).items() if k in keys and k != floor_key(batch)}
    groups: dict[str, list[str]] = {}
    for key in lat:
        groups.setdefault(parse_kernel(key).kind, []).append(key)
    errors: dict[str, float] = {}
    for kind, ks in groups.items():
        _, errs = fit_kind(kind, [parse_kernel(k) for k in ks], np.array([lat[k] for k in ks]), seed=seed)
        errors.update({k: (float(e) if np.isfinite(e) else 0.5) for k, e in zip(ks, errs)})
    left = n - (len(first) - 1)
    if left <= 0 or not errors:
        return []
    specs = [s for s in refine(errors, left, seed, batch, kinds_for(fmt, only)) if runs_on(s, fmt)]
    return [Workload.of_kernel(s.encode()) for s in specs]


def merge(a: CampaignReport, b: CampaignReport) -> CampaignReport:
    """One report of two stages run one after the other."""
    flagged = {k: a.flagged.get(k, []) + b.flagged.get(k, []) for k in {*a.flagged, *b.flagged}}
    return dataclasses.replace(
        b, planned=a.planned + b.planned, skipped=a.skipped + b.skipped, pending=a.pending + b.pending,
        records=a.records + b.records, failed=a.failed + b.failed, drift=a.drift + b.drift, flagged=flagged,
        interrupted=a.interrupted or b.interrupted, wall_s=a.wall_s + b.wall_s, busy_waits=a.busy_waits + b.busy_waits,
        busy_waited_s=a.busy_waited_s + b.busy_waited_s,
    )


def fusion_note(fingerprint_hash: str) -> str:
    """The store note name of a device's fusion test."""
    return f"fusion:{fingerprint_hash}"


def fusion_rules(store, fingerprint_hash: str) -> dict[str, bool] | None:
    """The fusion rules kept in ``store`` for a device fingerprint, or None."""
    text = store.note(fusion_note(fingerprint_hash))
    return None if text is None else {k: bool(v) for k, v in json.loads(text)["rules"].items()}


def keep_fusion(store, fingerprint_hash: str, results) -> dict[str, bool]:
    """Save a fusion test's results and rules in ``store``; returns the rules."""
    from hwprof.kernels.fusion import rules

    found = rules(results)
    doc = {"rules": found, "tests": [dataclasses.asdict(r) for r in results]}
    store.set_note(fusion_note(fingerprint_hash), json.dumps(doc))
    return found


__all__ = ["CALIBRATION_SPACES", "KERNEL_PLAN", "calibration_graphs", "calibration_stage", "first_stage", "fusion_rules", "keep_fusion", "kernel_plan", "kinds_for", "merge", "second_stage"]
