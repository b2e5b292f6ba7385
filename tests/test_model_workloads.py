"""A user's own model, measured end to end: ONNX and TFLite files, and their bad cases.

The models are hwprof's own space networks exported to files (what a user's
``torch.onnx.export`` writes) and small graphs built with ``onnx.helper`` for
the shapes a network file can have (dynamic, fixed batch, several inputs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwprof.artifacts.export import export_arch
from hwprof.artifacts.model import model_workload, parse_input_shape
from hwprof.artifacts.workload import KIND_MODEL, artifact_for
from hwprof.errors import ConfigError, MeasurementError
from hwprof.spaces import space

ARCH = space("fbnet-c100").sample(1, seed=5)[0]
QUICK = ["--max-runs", "5", "--min-runs", "3", "--max-time", "1", "--rounds", "2"]


def hwprof(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwprof.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def conv_graph(path: Path, dims=("N", 3, "H", "W"), inputs: int = 1, dtype=TensorProto.FLOAT) -> Path:
    """A 3×3 conv (+ relu) network whose input has ``dims`` (str = dynamic)."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    ins = [helper.make_tensor_value_info(f"x{i}", dtype, list(dims)) for i in range(inputs)]
    nodes = [helper.make_node("Conv", ["x0", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "g", ins, [out], [weight]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    sp = space("fbnet-c100")
    return {
        "onnx": export_arch(sp, ARCH, "onnx", folder / "net.onnx"),
        "tflite": export_arch(sp, ARCH, "tflite", folder / "net.tflite"),
    }


def test_a_model_file_is_named_by_its_bytes_and_shape(files, tmp_path):
    wl = model_workload(files["onnx"])
    assert wl.kind == KIND_MODEL and wl.key.startswith("net@") and wl.key.endswith(":3x32x32") and wl.space == ""
    copy = tmp_path / "net.onnx"
    copy.write_bytes(files["onnx"].read_bytes())
    assert model_workload(copy).key == wl.key  # same bytes, same name: the same workload
    art = artifact_for(wl, "onnx", tmp_path)
    assert art.path == files["onnx"].resolve() and art.input_shape == (1, 3, 32, 32)
    tfl = model_workload(files["tflite"])
    assert tfl.key.endswith(":32x32x3")  # the file's own NHWC layout
    assert artifact_for(tfl, "tflite", tmp_path).input_shape == (1, 3, 32, 32)
    with pytest.raises(MeasurementError, match="runs tflite files and net.onnx is onnx"):
        artifact_for(wl, "tflite", tmp_path)


def test_measure_model_files_end_to_end_and_resume(files, tmp_path):
    args = ["measure", "--device", "cpu", "--model", str(files["onnx"]), "--store", "m.sqlite", *QUICK]
    res = hwprof(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "2 new records" in res.stdout and "1 model(s) on cpu" in res.stderr
    assert "nothing new to measure" in hwprof(*args, cwd=tmp_path).stdout
    res = hwprof("measure", "--device", "cpu-litert", "--model", str(files["tflite"]), "--store", "m.sqlite", *QUICK,
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert hwprof("export", "--store", "m.sqlite", "-o", "m.csv", cwd=tmp_path).returncode == 0
    df = pd.read_csv(tmp_path / "m.csv")
    assert set(df.kind) == {"model"} and set(df.device) == {"cpu", "cpu-litert"} and (df.median_ms > 0).all()
    assert df.model.str.startswith("net@").all()


def test_dynamic_shapes_need_input_shape_and_batch_follows(tmp_path):
    path = conv_graph(tmp_path / "dyn.onnx")
    with pytest.raises(ConfigError, match=r"dynamic input shape \[\?, 3, \?, \?\].*--input-shape"):
        model_workload(path)
    wl = model_workload(path, batch=2, input_shape=parse_input_shape("3,16,16"))
    assert wl.key.endswith(":3x16x16") and artifact_for(wl, "onnx", tmp_path).input_shape == (2, 3, 16, 16)
    with pytest.raises(ConfigError, match="contradicts"):
        model_workload(path, input_shape=(4, 16, 16))
    with pytest.raises(ConfigError, match="batch 1 but --batch is 2"):
        model_workload(path, batch=2, input_shape=(1, 3, 16, 16))
    res = hwprof("measure", "--model", str(path), "--input-shape", "1,3,16,16", "--store", "d.sqlite", *QUICK,
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: conv_graph(p, dims=(1, 3, 8, 8)), None),
        (lambda p: conv_graph(p, dims=(1, 3, 8, 8), inputs=2), "2 inputs"),
        (lambda p: conv_graph(p, dims=(1, 3, 8)), "3 dimensions"),
        (lambda p: conv_graph(p, dims=(1, 3, 8, 8), dtype=TensorProto.INT64), "INT64"),
        (lambda p: p.write_bytes(b"not a model at all" * 20) and p, "not an ONNX model"),
    ],
)
def test_bad_model_files_get_one_line(make, message, tmp_path):
    path = make(tmp_path / "m.onnx")
    if message is None:
        with pytest.raises(ConfigError, match="fixed batch of 1; --batch 8"):
            model_workload(path, batch=8)
        return
    with pytest.raises(ConfigError, match=message):
        model_workload(path)


def test_other_bad_inputs(tmp_path, files):
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ConfigError, match=".onnx and .tflite"):
        model_workload(tmp_path / "m.txt")
    with pytest.raises(ConfigError, match="does not exist"):
        model_workload(tmp_path / "gone.onnx")
    with pytest.raises(ConfigError, match="N,C,H,W"):
        parse_input_shape("3,a,4")
    res = hwprof("measure", "--model", "torchvision:mobilenet_v2", cwd=tmp_path)
    try:
        import torchvision  # noqa: F401
    except Exception:  # the default install: torchvision does not import beside the CPU torch wheel
        assert res.returncode == 2 and "needs torchvision" in res.stderr and "Traceback" not in res.stderr
    res = hwprof("measure", "--ops", "--model", str(files["onnx"]), cwd=tmp_path)
    assert res.returncode != 0 and "exactly one of --ops, --archs N, --model FILE or --kernels" in res.stderr
    changed = tmp_path / "c.onnx"
    changed.write_bytes(files["onnx"].read_bytes())
    wl = model_workload(changed)
    conv_graph(changed, dims=(1, 3, 32, 32))
    with pytest.raises(MeasurementError, match="changed since"):
        artifact_for(wl, "onnx", tmp_path)
