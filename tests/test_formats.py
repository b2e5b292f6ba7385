"""Importers and exporters of published formats, on the real files in data/ and tests/data/ and hand-written samples."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from hwprof.errors import ConfigError, PredictorError
from hwprof.predictors import import_lightnas_mlp  # noqa: E402
from hwprof.tables.formats import (
    SPNAS_CONSTANT_MS,
    export_proxylessnas_yaml,
    import_ofa_yaml,
    import_proxylessnas_yaml,
    import_spnas_json,
    import_tfnas_pickle,
    safe_pickle_loads,
)
from hwprof.tables.table import LatencyTable
from hwprof.spaces.ops import OpSpec, decode
from hwprof.spaces import space

ROOT = Path(__file__).resolve().parents[1]
SPNAS = ROOT / "data" / "single-path-nas" / "pixel1_runtime_model.json"
LIGHTNAS = ROOT / "data" / "lightnas" / "latency_predictor.pth.tar"
TFNAS_CPU = ROOT / "tests" / "data" / "tf-nas" / "latency_cpu.pkl"


# -- Single-Path NAS -----------------------------------------------------------------------------
def test_spnas_json_is_a_layer_table_of_spnas():
    t = import_spnas_json(SPNAS)
    sp = space("spnas")
    assert t.keyed == "layer" and t.space == "spnas" and t.constant_ms == pytest.approx(19.5999)
    values, mask, constant = t.matrix(sp)
    assert values.shape == (20, 5) and constant == SPNAS_CONSTANT_MS
    # row "1" of the file is searchable layer 0: k3e3 4.4905 ms, k5e6 11.5892 ms
    assert values[0, 0] == pytest.approx(4.4905) and values[0, 3] == pytest.approx(11.5892)
    assert (values[:, 4] == 0).all()
    arch = sp.parse("-".join(["k5_e6"] * 20))
    assert t.arch_latency(sp, arch) == pytest.approx(values[:, 3].sum() + 19.5999)


# -- TF-NAS ----------------------------------------------------------------------------------------
def test_tfnas_pickle_width_curves_and_arch_latency():
    t = import_tfnas_pickle(TFNAS_CPU, batch=1, device="xeon-6130")
    sp = space("tfnas")
    assert t.constant_ms == pytest.approx(9.356469964981079)
    mids, ms = t.width_curve(sp, 0, "k3_e3")  # MBInvertedResBlock_112_16_0_24_k3_s2_relu, mid 1..128
    assert list(mids) == list(range(1, 129)) and ms[0] == pytest.approx(-0.5044301343815665)
    mids_se, _ = t.width_curve(sp, 0, "k3_e3_se")  # SE 16 channels: mid 1..64
    assert mids_se[-1] == 64
    arch = sp.sample(1, seed=4)[0]
    manual = sum(t.lookup(op.encode()) for op in sp.layer_ops(arch) if op.kind != "skip")
    assert t.arch_latency(sp, arch) == pytest.approx(manual + t.constant_ms)
    batch32 = import_tfnas_pickle(TFNAS_CPU, batch=32)  # the batch is the caller's statement, put in every key
    assert all(decode(k).batch == 32 for k in list(batch32.entries)[:5])
    assert batch32.matrix(sp, None)[0].shape == (sp.num_layers, sp.max_choices)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code():
    with pytest.raises(ConfigError, match="os|posix|system"):
        safe_pickle_loads(pickle.dumps({"base": 1.0, "x": _Evil()}))
    with pytest.raises(ConfigError, match="builtins.eval"):
        safe_pickle_loads(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(ConfigError, match="numpy"):
        safe_pickle_loads(pickle.dumps(np.float64(1.0)))
    ok = safe_pickle_loads(pickle.dumps(OrderedDict(base=1.5, b={1: 2.0}), protocol=2))
    assert ok == {"base": 1.5, "b": {1: 2.0}}
    with pytest.raises(ConfigError, match="cannot read pickle"):
        safe_pickle_loads(b"not a pickle")


# -- ProxylessNAS / OFA YAML -----------------------------------------------------------------------
PROXYLESS_SAMPLE = """\
Conv-input:224x224x3-output:112x112x32: {mean: 1.5, std: 0.01}
expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0: {mean: 2.0, std: 0.02}
expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0: {mean: 3.25, std: 0.02}
expanded_conv-input:56x56x24-output:56x56x24-expand:6-kernel:3-stride:1-idskip:1: {mean: 4.0, std: 0.02}
Conv_1-input:7x7x320-output:7x7x1280: {mean: 0.75, std: 0.01}
Logits-input:7x7x1280-output:1000: {mean: 0.5, std: 0.01}
"""


def test_proxylessnas_yaml_keys_map_to_the_space_ops(tmp_path):
    path = tmp_path / "mobile_trim.yaml"
    path.write_text(PROXYLESS_SAMPLE)
    t = import_proxylessnas_yaml(path, device="pixel1")
    sp = space("proxylessnas")
    stem, first = sp.fixed_ops()[:2]
    head_conv, pool, fc = sp.fixed_ops()[2:]
    assert t.lookup(stem.encode()) == 1.5 and t.lookup(first.encode()) == 2.0
    assert t.lookup(head_conv.encode()) == 0.75
    assert t.lookup(pool.encode()) + t.lookup(fc.encode()) == 0.5  # Logits = pool + FC
    g = sp.geometry()
    assert t.lookup(sp.candidate_op(g[0], "k5_e3").encode()) == 3.25
    assert t.lookup(sp.candidate_op(g[1], "k3_e6").encode()) == 4.0
    assert t.fixed_ms(sp) == pytest.approx(1.5 + 2.0 + 0.75 + 0.5)


def test_proxylessnas_yaml_round_trip(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(PROXYLESS_SAMPLE)
    first = import_proxylessnas_yaml(path)
    again = import_proxylessnas_yaml(export_proxylessnas_yaml(first, tmp_path / "b.yaml"))
    assert dict(again.entries) == dict(first.entries)


def test_full_table_exports_and_reimports_with_equal_arch_latency(tmp_path):
    sp = space("proxylessnas")
    ops = {op for row in sp.choice_ops() for op in row if op is not None and op.kind != "skip"}
    ops |= set(sp.fixed_ops())
    table = LatencyTable({op.encode(): 0.1 + op.macs() / 1e8 for op in ops}, 0.0, {"space": "proxylessnas"})
    back = import_proxylessnas_yaml(export_proxylessnas_yaml(table, tmp_path / "t.yaml"))
    for arch in sp.sample(5, seed=5):
        assert back.arch_latency(sp, arch) == pytest.approx(table.arch_latency(sp, arch))
    np.testing.assert_allclose(back.matrix(sp)[0], table.matrix(sp)[0])


def test_export_refuses_what_the_format_cannot_hold(tmp_path):
    se_op = OpSpec("mbconv", 14, 14, 40, 40, 120, 3, 1, 1, 32, "hswish")
    with pytest.raises(ConfigError, match="cannot be written"):
        export_proxylessnas_yaml(LatencyTable({se_op.encode(): 1.0}), tmp_path / "x.yaml")


OFA_SAMPLE = """\
Conv-input:224x224x3-output:112x112x16: {mean: 0.9}
expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0: {mean: 1.25}
expanded_conv-input:14x14x80-output:14x14x112-expand:480-kernel:3-stride:1-idskip:0-se:1-hs:1: {mean: 2.5}
AvgPool2D-input:7x7x960-output:1x1x960: {mean: 0.05}
Conv_2-input:1x1x960-output:1x1x1280: {mean: 0.3}
Logits-input:1x1x1280-output:1000: {mean: 0.2}
"""


def test_ofa_yaml_keys_map_to_the_space_ops(tmp_path):
    path = tmp_path / "ofa.yaml"
    path.write_text(OFA_SAMPLE)
    t = import_ofa_yaml(path)
    sp = space("ofa-mbv3")
    g = sp.geometry(224)
    stage2_first = next(x for x in g if x.stage == 1 and x.position == 0)  # 24→40 s2, SE, ReLU
    assert t.lookup(sp.candidate_op(stage2_first, "k5_e6").encode()) == 1.25
    stage4_first = next(x for x in g if x.stage == 3 and x.position == 0)  # 80→112 s1, SE, h-swish
    assert t.lookup(sp.candidate_op(stage4_first, "k3_e6").encode()) == 2.5
    fixed = {op.kind + str(op.h): op for op in sp.fixed_ops(224)}
    assert t.lookup(fixed["conv224"].encode()) == 0.9 and t.lookup(fixed["pool7"].encode()) == 0.05
    assert t.lookup(fixed["conv1"].encode()) == 0.3 and t.lookup(fixed["fc1"].encode()) == 0.2


def test_yaml_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("Weird-input:1x1x1-output:1x1x1: {mean: 1.0}\n")
    with pytest.raises(ConfigError, match="Weird"):
        import_proxylessnas_yaml(bad)
    bad.write_text("expanded_conv-input:56x56x24-output:56x56x24-expand:6: {mean: 1.0}\n")
    with pytest.raises(ConfigError, match="lacks"):
        import_proxylessnas_yaml(bad)
    bad.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        import_proxylessnas_yaml(bad)


# -- LightNAS ---------------------------------------------------------------------------------------
def test_lightnas_mlp_matches_its_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    pred = import_lightnas_mlp(LIGHTNAS)
    assert pred.kind == "mlp" and pred.space == "lightnas" and pred.differentiable
    sd = torch.load(LIGHTNAS, map_location="cpu", weights_only=True)
    sp = space("lightnas")
    X = torch.tensor(sp.one_hot(sp.sample(8, seed=6)))
    h = torch.relu(X @ sd["pred.0.weight"].T + sd["pred.0.bias"])
    h = torch.relu(h @ sd["pred.2.weight"].T + sd["pred.2.bias"])
    ref = (h @ sd["pred.4.weight"].T + sd["pred.4.bias"]).squeeze(-1).numpy()
    np.testing.assert_allclose(pred.predict(X.numpy()), ref, rtol=1e-5)
    assert 5 < ref.min() and ref.max() < 60  # Jetson Xavier batch 8, ms
    module = pred.to_torch()
    x = X.clone().requires_grad_(True)
    module(x).sum().backward()
    assert x.grad.shape == X.shape and torch.isfinite(x.grad).all()
    from hwprof.predictors import load_predictor

    back = load_predictor(pred.save(tmp_path / "lightnas.json"), space="lightnas")
    np.testing.assert_allclose(back.predict(X.numpy()), ref, rtol=1e-5)
    with pytest.raises(PredictorError, match="space"):
        load_predictor(tmp_path / "lightnas.json", space="proxylessnas")
