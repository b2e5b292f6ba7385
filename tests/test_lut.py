"""LatencyTable: building from store records, the [L, K] view, lookups, files.

Store records here are synthetic (latency = a function of MACs) because the
tests check the table-building logic; accuracy on real timings is checked by
benchmarks/bench_predictors.py and the real published tables in test_formats.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwprof.errors import ConfigError, FingerprintMismatchError, MissingEntryError
from hwprof.tables.table import CHANGELOG, FORMAT_VERSION, LatencyTable, build_table, layer_key, load_table
from hwprof.measure.records import Measurement
from hwprof.spaces import space
from hwprof.measure.store import Store

FP = {"device": "cpu", "backend": "onnxruntime", "runtime": "onnxruntime", "runtime_version": "1.0",
      "threads": "1", "batch": "1", "cpu": "test", "hwprof_version": "0.1.0"}


def _ms(op) -> float:
    return 0.05 + op.macs() / 2e8


def _records(sp, fp=FP, jitter=(0.0, 0.02, 0.04)):
    ops = {op for row in sp.choice_ops() for op in row if op is not None and op.kind != "skip"}
    ops |= {op for op in sp.fixed_ops() if op.kind != "skip"}
    return [
        Measurement("op", op.encode(), "", fp["device"], tuple(_ms(op) * (1 + j) for j in jitter), 5, fp)
        for op in sorted(ops)
    ]


@pytest.fixture(scope="module")
def proxyless():
    return space("proxylessnas")


@pytest.fixture(scope="module")
def table(proxyless):
    return build_table(_records(proxyless), proxyless)


def test_build_from_store_gives_lut_sum_of_every_arch(tmp_path, proxyless):
    with Store(tmp_path / "s.sqlite") as st:
        for m in _records(proxyless):
            st.add(m)
        records = st.records(device="cpu", kind="op")
    t = build_table(records, proxyless)
    assert t.metadata["device"] == "cpu" and t.metadata["statistic"] == "median" and t.batch == 1
    for arch in proxyless.sample(5, seed=1):
        ops = proxyless.ops(arch)
        expected = sum(_ms(op) * 1.02 for op in ops if op.kind != "skip")
        assert t.arch_latency(proxyless, arch) == pytest.approx(expected, rel=1e-9)
    fixed = sum(_ms(op) * 1.02 for op in proxyless.fixed_ops())
    assert t.constant_ms == pytest.approx(fixed)


def test_statistic_is_selectable(proxyless):
    lo = build_table(_records(proxyless), proxyless, statistic="min")
    hi = build_table(_records(proxyless), proxyless, statistic="mean")
    arch = proxyless.sample(1)[0]
    assert lo.arch_latency(proxyless, arch) < hi.arch_latency(proxyless, arch)
    with pytest.raises(ConfigError, match="statistic"):
        build_table(_records(proxyless), proxyless, statistic="mode")


def test_matrix_view_matches_arch_latency(table, proxyless):
    values, mask, constant = table.matrix(proxyless)
    assert values.shape == mask.shape == (proxyless.num_layers, proxyless.max_choices)
    assert values.dtype == np.float64 and (values[~mask] == 0).all()
    assert (values[:, proxyless.candidates.index("skip")] == 0).all()  # identity skip costs nothing
    assert (values[mask & (np.arange(7) != 6)] > 0).all()
    for arch in proxyless.sample(5, seed=2):
        idx = proxyless.indices(arch)
        lut = values[np.arange(len(idx)), idx].sum() + constant
        assert lut == pytest.approx(table.arch_latency(proxyless, arch))


def test_missing_entry_names_key_and_nearest(table, proxyless):
    arch = proxyless.sample(1)[0]
    op = proxyless.layer_ops(arch)[0]
    partial = LatencyTable({k: v for k, v in table.entries.items() if k != op.encode()}, table.constant_ms,
                           table.metadata)
    with pytest.raises(MissingEntryError) as exc:
        partial.lookup(op.encode())
    msg = str(exc.value)
    assert op.encode() in msg and "nearest present" in msg
    with pytest.raises(MissingEntryError):
        build_table([m for m in _records(proxyless) if m.key != op.encode()], proxyless)


def test_mixed_fingerprints_are_refused(proxyless):
    recs = _records(proxyless)
    other = dict(FP, threads="4")
    bad = recs[:-1] + [Measurement("op", recs[-1].key, "", "cpu", (1.0,), 1, other)]
    with pytest.raises(FingerprintMismatchError, match="threads"):
        build_table(bad, proxyless)


def test_save_load_round_trip_and_versions(table, tmp_path, proxyless):
    path = table.save(tmp_path / "t.lut.json")
    back = load_table(path)
    assert dict(back.entries) == dict(table.entries) and back.constant_ms == table.constant_ms
    assert back.metadata["device"] == "cpu"
    doc = json.loads(path.read_text())
    assert doc["format_version"] == FORMAT_VERSION and FORMAT_VERSION in CHANGELOG
    doc["format_version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="version 99"):
        load_table(path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match="not an hwprof latency table"):
        load_table(tmp_path / "x.json")


def test_layer_keyed_table_gives_same_view():
    sp = space("spnas")
    entries = {layer_key(l, c): 1.0 + l + j for l in range(sp.num_layers) for j, c in enumerate(sp.candidates[:4])}
    t = LatencyTable(entries, 5.0, {"keyed": "layer", "space": "spnas"})
    values, mask, constant = t.matrix(sp)
    assert values.shape == (20, 5) and constant == 5.0
    assert (values[:, 4] == 0).all() and not mask[0, 4] and mask[1, 4]
    arch = sp.sample(1, seed=3)[0]
    idx = sp.indices(arch)
    assert t.arch_latency(sp, arch) == pytest.approx(values[np.arange(20), idx].sum() + 5.0)


def test_width_curve_from_a_width_sweep():
    sp = space("tfnas")
    g = sp.geometry()[0]
    entries = {}
    for mid in range(32, 65, 8):
        op = sp.candidate_op(g, "k3_e3", mid)
        entries[op.encode()] = 0.01 * mid
    t = LatencyTable(entries, 1.0, {"space": "tfnas"})
    mids, ms = t.width_curve(sp, 0, "k3_e3")
    assert list(mids) == list(range(32, 65, 8)) and np.allclose(ms, 0.01 * mids)
    with pytest.raises(MissingEntryError):
        t.width_curve(sp, 0, "k5_e6")
