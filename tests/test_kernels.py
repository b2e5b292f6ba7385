"""Kernels (issue 13): keys, one-kernel modules, sampling, the measured fusion test, per-kind regressors, predict --onnx."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from hwprof.artifacts.export import export_arch
from hwprof.artifacts.graph import kernels_of
from hwprof.artifacts.workload import Workload, artifact_for
from hwprof.errors import ConfigError, OpSpecError, PredictorError
from hwprof.kernels.predictor import FLOOR_KEY, KernelPredictor, is_kernel_predictor, predict_model
from hwprof.kernels.sample import MAX_MACS, refine, sample_kernels
from hwprof.artifacts.kernel import KernelSpec, parse_kernel
from hwprof.spaces import space

FAMILIES = [
    "conv:h28:w28:ci24:co48:m0:k3:s2:g1:se0:relu6:b1",
    "conv:h14:w14:ci96:co96:m0:k5:s1:g96:se0:swish:b1",
    "conv:h14:w14:ci64:co64:m0:k3:s1:g4:se0:none:b2",
    "se:h14:w14:ci96:co96:m0:k1:s1:g1:se24:none:b1",
    "fc:h1:w1:ci256:co100:m0:k1:s1:g1:se0:relu:b1",
    "pool:h7:w7:ci96:co96:m0:k1:s1:g1:se0:none:b1",
    "pool:h28:w28:ci16:co16:m0:k2:s2:g1:se0:none:b1",
    "maxpool:h56:w56:ci16:co16:m0:k3:s2:g1:se0:none:b1",
    "add:h28:w28:ci32:co32:m0:k1:s1:g1:se0:relu:b1",
    "mul:h28:w28:ci32:co32:m0:k1:s1:g1:se0:none:b1",
    "concat:h14:w14:ci96:co96:m3:k1:s1:g1:se0:none:b1",
    "act:h28:w28:ci32:co32:m0:k1:s1:g1:se0:hardsigmoid:b1",
    "act:h28:w28:ci32:co32:m0:k1:s1:g1:se0:mul:b1",
    "act:h14:w14:ci32:co32:m0:k1:s1:g1:se0:gelu:b1",
    "act:h14:w96:ci14:co14:m0:k1:s1:g1:se0:layernorm:b1",
    "copy:h28:w28:ci116:co116:m2:k1:s1:g1:se0:none:b1",
    "copy:h28:w28:ci116:co58:m1:k1:s1:g1:se0:none:b1",
]


@pytest.mark.parametrize("key", FAMILIES)
def test_a_kernel_exports_as_the_kernel_its_key_names(key, tmp_path):
    """A sampled kernel's module, exported and read back by kernels_of, is one kernel with the same key and MACs."""
    spec = parse_kernel(key)
    assert spec.encode() == key
    art = artifact_for(Workload.of_kernel(key), "onnx", tmp_path)
    kg = kernels_of(art.path)
    found = [k for k in kg.kernels if k.kind != "layout"]
    assert [k.key for k in found] == [key] and found[0].kind == spec.kind
    assert found[0].macs == spec.macs()
    assert art.input_shape == spec.input_shape


def test_bad_kernel_keys_are_refused():
    for bad, msg in [("conv:h28", "12 fields"), ("conv:h28:w28:ci8:co8:m0:k3:s1:g3:se0:relu:b1", "divisible"),
                     ("warp:h2:w2:ci8:co8:m0:k3:s1:g1:se0:relu:b1", "unknown kernel family"),
                     ("conv:h2:w2:ci8:co8:m0:k3:s1:g1:se0:gelu:b1", "cannot have activation"),
                     ("conv:h2:w2:ci8:cout8:m0:k3:s1:g1:se0:relu:b1", "should be co"),
                     ("se:h2:w2:ci8:co8:m0:k1:s1:g1:se0:none:b1", "se > 0")]:
        with pytest.raises(OpSpecError, match=msg):
            parse_kernel(bad)


def test_sampling_is_seeded_distinct_and_covers_every_kind():
    a, b = sample_kernels(400, seed=3), sample_kernels(400, seed=3)
    assert [s.encode() for s in a] == [s.encode() for s in b] != [s.encode() for s in sample_kernels(400, seed=4)]
    assert len({s.encode() for s in a}) == 400
    kinds = {s.kind for s in a}
    assert kinds == {"conv", "dwconv", "gconv", "se", "fc", "pool", "maxpool", "add", "mul", "concat", "act", "copy"}
    assert max(s.macs() for s in a) <= MAX_MACS and {s.b for s in sample_kernels(20, 0, batch=8)} == {8}
    assert {s.kind for s in sample_kernels(100, 0, kinds=["conv", "fc"])} == {"conv", "fc"}


def test_refine_spends_on_the_kind_that_errs_and_near_its_worst_kernels():
    first = sample_kernels(300, seed=0)
    worst = next(s for s in first if s.kind == "dwconv")
    errors = {s.encode(): (0.9 if s is worst else 0.3 if s.kind == "dwconv" else 0.02) for s in first}
    more = refine(errors, 100, seed=0)
    assert 90 <= len(more) <= 100 and not {s.encode() for s in more} & set(errors)
    kinds = [s.kind for s in more]
    assert kinds.count("dwconv") > 0.6 * len(more)
    near = [s for s in more if s.kind == "dwconv" and s.k == worst.k and abs(np.log(s.ci / worst.ci)) < 0.5]
    assert near, "no neighbour of the worst kernel"


def test_fusion_rules_decide_the_grouping():
    """A device that does not fuse swish into a conv runs it as sigmoid + mul kernels of its own."""
    import onnx.numpy_helper as nh

    w = nh.from_array(np.ones((8, 8, 3, 3), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    assert [k.kind for k in kernels_of(model).kernels] == ["conv"]
    apart = kernels_of(model, fusion={"conv+swish": False}).kernels
    assert [k.kind for k in apart] == ["conv", "act", "mul"] and apart[1].key.endswith(":sigmoid:b1")
    assert apart[0].key.endswith(":none:b1")


def test_fusion_verdicts_pair_each_round():
    """Times [rounds, floor/first/second/both]: a level shift between rounds cancels; a noisy middle is undecided."""
    from hwprof.kernels.fusion import decide, rules

    level = np.array([[1.0], [1.3], [0.8], [1.1], [1.25]])  # the machine's speed moves from round to round
    fused = decide("conv+relu", level * [0.01, 0.31, 0.05, 0.312])  # the relu adds 2 µs after the conv
    apart = decide("conv+swish", level * [0.01, 0.31, 0.05, 0.35])  # the whole 40 µs
    assert fused.fused is True and apart.fused is False and fused.second_ms == pytest.approx(0.04 * 1.1)
    noisy = np.array([[0.01, 0.3, 0.05, 0.3 + d] for d in (0.0, 0.05, 0.02, 0.04, 0.01)])
    assert decide("add+relu", noisy).fused is None
    assert decide("conv+bn", [[0.01, 0.3, 0.0105, 0.3]] * 3).fused is None  # the second op is below 2 µs
    assert rules([fused, apart, decide("add+relu", noisy)]) == {"conv+relu": True, "conv+swish": False}


@pytest.mark.slow
def test_fusion_test_on_the_cpu_runs_every_pair_it_is_asked_for():
    from hwprof.devices import open_device
    from hwprof.kernels.fusion import measure_fusion

    seen = []
    dev = open_device("cpu")
    try:
        res = measure_fusion(dev, pairs=("conv+bn", "conv+hswish"), rounds=3, runs=10, h=28, c=32, on_pair=seen.append)
    finally:
        dev.close()
    assert [r.pair for r in res] == ["conv+bn", "conv+hswish"] and seen == res
    assert all(np.isfinite([r.first_ms, r.second_ms, r.both_ms]).all() and r.first_ms > 0 for r in res)
    with pytest.raises(ConfigError, match="unknown fusion pair"):
        measure_fusion(None, pairs=("conv+gelu",))


def _synthetic(specs: list[KernelSpec]) -> np.ndarray:
    """A device: a call floor, compute at 2 GMAC/s with a penalty for channels off multiples of 8, memory at 4 GB/s."""
    t = []
    for s in specs:
        bi, bo = s.bytes_in_out()
        penalty = 1.3 if s.ci % 8 else 1.0
        t.append(0.005 + s.macs() / 2e6 * penalty + (bi + bo) / 4e6 + 0.002 * np.log1p(s.k))
    return np.array(t)


@pytest.fixture(scope="module")
def fitted() -> tuple[KernelPredictor, dict]:
    specs = sample_kernels(600, seed=1)
    lat = dict(zip((s.encode() for s in specs), _synthetic(specs)))
    lat[FLOOR_KEY] = 0.005
    return KernelPredictor.fit(lat, "synthetic", {"conv+swish": False}, {"runtime": "test"})


def test_regressors_learn_each_kind_and_generalise(fitted):
    model, errors = fitted
    assert set(model.kinds) == {"conv", "dwconv", "gconv", "se", "fc", "pool", "maxpool", "add", "mul", "concat", "act",
                                "copy"}
    for kind in ("conv", "dwconv", "fc", "add"):
        e = np.abs(errors[kind][np.isfinite(errors[kind])])
        assert e.mean() < 0.08, kind  # held out by 5-fold cross-validation
    fresh = sample_kernels(200, seed=9)
    pred = model.predict_keys([s.encode() for s in fresh]) + model.floor_ms
    assert np.median(np.abs(pred / _synthetic(fresh) - 1)) < 0.08


def test_a_model_is_the_floor_plus_its_kernels_and_files_round_trip(fitted, tmp_path):
    model, _ = fitted
    sp = space("proxylessnas")
    onnx_path = export_arch(sp, sp.sample(1, seed=0)[0], "onnx", tmp_path / "net.onnx")
    pred = predict_model(onnx_path, model)
    kg = kernels_of(onnx_path, fusion=model.fusion)
    priced = [k for k in kg.kernels if k.kind != "layout"]
    assert pred.total_ms == pytest.approx(model.floor_ms + sum(model.predict_keys([k.key for k in priced])))
    assert pred.unpriced == {} and sum(pred.by_kind().values()) == pytest.approx(pred.total_ms - pred.floor_ms)
    doc = pred.to_dict()
    assert sum(k["share"] for k in doc["kernels"]) == pytest.approx(1 - pred.floor_ms / pred.total_ms)
    for suffix in (".json", ".npz"):
        path = model.save(tmp_path / f"k{suffix}")
        assert is_kernel_predictor(path)
        again = predict_model(onnx_path, path)
        assert again.total_ms == pytest.approx(pred.total_ms, rel=1e-12)
    archs = sp.sample(2, seed=0)
    assert model.predict_archs(sp, archs)[0] == pytest.approx(pred.total_ms)


def test_unknown_ops_batch_and_bad_files_are_clear(fitted, tmp_path):
    model, _ = fitted
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    onnx_model = helper.make_model(helper.make_graph([helper.make_node("Erf", ["x"], ["e"]), helper.make_node("Relu", ["e"], ["y"])],
                                                     "g", [x], [y]), opset_imports=[helper.make_opsetid("", 14)])
    onnx_model.ir_version = 8
    pred = model.predict_model(onnx_model)
    assert pred.unpriced == {"Erf": 1} and [r.priced for r in pred.kernels] == [False, True]
    with pytest.raises(PredictorError, match="batch 2"):
        model.predict_model(onnx_model, (2, 8, 16, 16))
    with pytest.raises(PredictorError, match="floor"):
        KernelPredictor.fit({"add:h28:w28:ci32:co32:m0:k1:s1:g1:se0:relu:b1": 0.1})
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something"}')
    with pytest.raises(PredictorError, match="not a kernel predictor"):
        KernelPredictor.load(bad)
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(PredictorError, match="not a kernel predictor"):
        KernelPredictor.load(bad)
    assert not is_kernel_predictor(bad)


def _hwprof(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hwprof.cli", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.slow
def test_cli_kernel_campaign_fit_and_predict(tmp_path):
    """measure --kernels (both stages and the fusion test) → fit-predictor --kernels → predict --onnx; resume measures nothing."""
    store, model = tmp_path / "k.sqlite", tmp_path / "cpu.kernels.json"
    common = ["--device", "cpu", "--store", str(store), "--busy", "ignore"]
    first = _hwprof("measure", "--kernels", "--n", "24", "--calibrate", "2", *common, "--rounds", "1", "--min-runs", "3", "--max-runs", "5",
                    "--quiet")
    assert "runs apart" in first.stderr or "fuses" in first.stderr
    again = _hwprof("measure", "--kernels", "--n", "24", "--calibrate", "2", *common, "--rounds", "1", "--min-runs", "3", "--max-runs", "5",
                    "--quiet")
    assert "nothing new" in again.stdout
    fit = _hwprof("fit-predictor", "--kernels", "--store", str(store), "--device", "cpu", "-o", str(model))
    assert "calibrated on 2 networks" in fit.stdout
    sp = space("spnas")
    net = export_arch(sp, sp.sample(1, seed=0)[0], "onnx", tmp_path / "net.onnx")
    doc = json.loads(_hwprof("predict", "--model", str(model), "--onnx", str(net), "--format", "json").stdout)
    assert doc["total_ms"] > doc["floor_ms"] > 0 and doc["unpriced"] == {} and doc["kernels"]
    table = _hwprof("predict", "--model", str(model), "--onnx", str(net)).stdout
    assert f"{doc['total_ms']:.4f}" in table
    wrong = _hwprof("predict", "--model", str(model), "--space", "nope", "x", check=False)
    assert wrong.returncode == 2


def test_calibration_recovers_the_in_network_discount(fitted, tmp_path):
    """Networks whose convs cost 0.8 of their one-kernel time: calibration finds the factor and keeps the rest at 1."""
    from hwprof.kernels.predictor import KernelPredictor

    base, _ = fitted
    model = KernelPredictor.from_document(base.to_document())
    graphs = []
    for name in ("proxylessnas", "spos", "ofa-mbv3"):
        sp = space(name)
        for i, arch in enumerate(sp.sample(5, seed=1)):
            graphs.append(kernels_of(export_arch(sp, arch, "onnx", tmp_path / f"{name}{i}.onnx"), fusion=model.fusion))
    measured = []
    for g in graphs:
        by = model.predict_graph(g, calibrated=False).by_kind()
        measured.append(model.floor_ms + sum(v * (0.8 if k == "conv" else 1.0) for k, v in by.items()))
    fit = model.calibrate(graphs, measured, prior=1e-4)
    assert model.scale["conv"] == pytest.approx(0.8, abs=0.03) and model.scale["dwconv"] == pytest.approx(1, abs=0.05)
    assert fit["mape_after"] < 0.01 < fit["mape_before"]
    again = KernelPredictor.load(model.save(tmp_path / "calibrated.json"))
    assert again.scale == model.scale and again.predict_graph(graphs[0]).total_ms == pytest.approx(measured[0], rel=0.02)


def test_kernels_measured_at_batch_8_fit_with_their_own_floor():
    from hwprof.kernels.predictor import floor_key

    specs = sample_kernels(60, seed=2, batch=8)
    lat = dict(zip((s.encode() for s in specs), _synthetic(specs)))
    with pytest.raises(PredictorError, match=r"floor kernel act:h1:w1:ci1:co1:m0:k1:s1:g1:se0:relu:b8"):
        KernelPredictor.fit(lat)
    lat[floor_key(8)] = 0.02
    model, _ = KernelPredictor.fit(lat)
    assert model.batch == 8 and model.floor_ms == 0.02
    with pytest.raises(PredictorError, match="several batch sizes"):
        KernelPredictor.fit({**lat, FLOOR_KEY: 0.005})
