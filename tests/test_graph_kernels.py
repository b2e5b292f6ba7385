"""An ONNX graph as kernels: hwprof's own space networks exported to ONNX, and small graphs built with onnx.helper."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwprof.artifacts.export import export_arch
from hwprof.artifacts.graph import kernels_of
from hwprof.errors import ConfigError
from hwprof.spaces import space


def _w(name: str, *shape: int):
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def graph(nodes, inits, dims=(1, 8, 16, 16), opset: int = 14):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("name", ["proxylessnas", "ofa-mbv3", "tfnas", "spos", "fbnet"])
def test_space_networks_become_their_blocks(name, tmp_path):
    """Kernel MACs add up to the space's own count (±1 %: SE's pooling and rescale), with no unknown op."""
    sp = space(name)
    arch = sp.sample(1, seed=2)[0]
    kg = kernels_of(export_arch(sp, arch, "onnx", tmp_path / "n.onnx"))
    assert kg.unknown == {}
    assert kg.macs == pytest.approx(sp.macs(arch), rel=0.01)
    counts = kg.counts()
    assert counts["fc"] == 1 and counts["pool"] == 1 and counts["conv"] >= sp.num_layers // 2
    if name in ("ofa-mbv3", "tfnas"):
        assert counts.get("se", 0) >= 1  # squeeze-excitation grouped into one kernel
    assert all(k.kind != "act" for k in kg.kernels)  # every activation fused into its conv


def test_fusion_patterns_and_keys():
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"]),
        helper.make_node("Sigmoid", ["n1"], ["g1"]),
        helper.make_node("Mul", ["n1", "g1"], ["a1"]),  # swish
        helper.make_node("Conv", ["a1", "w2"], ["c2"], group=8, pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["a2"]),  # relu6
        helper.make_node("GlobalAveragePool", ["a2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    inits = [_w("w1", 8, 8, 3, 3), _w("s", 8), _w("b", 8), _w("m", 8), _w("v", 8), _w("w2", 8, 1, 3, 3),
             numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi"),
             _w("wf", 10, 8), _w("bf", 10)]
    kg = kernels_of(graph(nodes, inits))
    kinds = [k.kind for k in kg.kernels if k.kind != "layout"]
    assert kinds == ["conv", "dwconv", "pool", "fc"]
    conv, dw = kg.kernels[0], kg.kernels[1]
    assert conv.op_types == ("Conv", "BatchNormalization", "Sigmoid", "Mul") and conv.key.endswith(":swish:b1")
    assert conv.key.startswith("conv:h16:w16:ci8:co8:m0:k3:s1:g1")
    assert dw.key == "conv:h16:w16:ci8:co8:m0:k3:s2:g8:se0:relu6:b1" and dw.macs == 8 * 8 * 8 * 9
    assert kg.macs == 16 * 16 * 8 * 8 * 9 + dw.macs + 8 * 8 * 8 + 8 * 10


def test_unknown_op_types_are_named_not_dropped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ONNX Runtime's inference dumps a graph it cannot finish into the working dir
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Erf", ["c"], ["e"]),
             helper.make_node("LpNormalization", ["e"], ["y"], axis=1)]
    kg = kernels_of(graph(nodes, [_w("w", 8, 8, 1, 1)]))
    assert kg.unknown == {"Erf": 1, "LpNormalization": 1}
    assert [k.kind for k in kg.kernels] == ["conv", "other", "other"]
    assert list(tmp_path.iterdir()) == []


def test_dynamic_shapes_and_bad_files(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    dyn = graph(nodes, [_w("w", 4, 8, 3, 3)], dims=("N", 8, "H", "W"))
    with pytest.raises(ConfigError, match="dynamic shape"):
        kernels_of(dyn)
    kg = kernels_of(dyn, input_shape=(2, 8, 10, 10))
    assert kg.kernels[0].key == "conv:h10:w10:ci8:co4:m0:k3:s1:g1:se0:none:b2" and kg.macs == 2 * 10 * 10 * 4 * 8 * 9
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 30)
    with pytest.raises(ConfigError, match="not an ONNX model"):
        kernels_of(bad)


def test_cli_lists_kernels(tmp_path):
    sp = space("ofa-mbv3")
    path = export_arch(sp, sp.sample(1, seed=0)[0], "onnx", tmp_path / "n.onnx")
    res = subprocess.run([sys.executable, "-m", "hwprof.cli", "kernels", str(path), "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["unknown"] == {} and doc["counts"]["se"] >= 1 and doc["kernels"][0]["kind"] == "conv"
    assert all(k["kind"] != "layout" for k in doc["kernels"])
    res = subprocess.run([sys.executable, "-m", "hwprof.cli", "kernels", str(tmp_path / "none.onnx")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
