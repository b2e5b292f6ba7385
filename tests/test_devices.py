"""Device configs, the backend registry, and the local worker devices."""

import os
import signal
import sys

import pytest

from hwprof.devices import Device, load_backend, load_config, open_device, parse_config
from hwprof.errors import ConfigError, MeasurementError, MissingDependencyError
from hwprof.artifacts.workload import Workload, artifact_for
from hwprof.measure.protocol import plan_for
from hwprof.spaces.ops import OpSpec

SMALL = Workload.of_op(OpSpec("conv", 16, 16, 8, 16, 0, 3, 1, 1, 0, "relu"))


def test_builtin_configs_load():
    for name in ("cpu", "cpu-litert", "cpu-torch"):
        c = load_config(name)
        assert c.name == name and c.threads == 1 and c.batch == 1
    assert plan_for(load_config("cpu")).target_ci == 0.01


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown device 'pixel99'.*cpu-litert"):
        load_config("pixel99")


def test_malformed_toml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[device]\nbackend = "onnxruntime"\nthreads = = 2\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*line 3"):
        parse_config(p)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[device]\nthreads = 1\n", "backend"),
        ('[device]\nbackend = "onnxruntime"\nthreads = 0\n', "threads must be a positive integer"),
        ('[device]\nbackend = "onnxruntime"\n[protocol]\nwarmup = 3\n', "unknown protocol setting"),
        ('[device]\nbackend = "onnxruntime"\n[extra]\n', "unknown table"),
    ],
)
def test_inconsistent_config_is_a_clear_error(tmp_path, text, match):
    p = tmp_path / "dev.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        plan_for(parse_config(p))  # the [protocol] table is checked where a plan is made


def test_user_config_folder_and_unknown_backend(tmp_path, monkeypatch):
    (tmp_path / "mine.toml").write_text('[device]\nbackend = "quantum"\n')
    monkeypatch.setenv("HWPROF_DEVICE_PATH", str(tmp_path))
    assert load_config("mine").backend == "quantum"
    with pytest.raises(ConfigError, match="unknown device backend 'quantum'"):
        open_device("mine")


def test_builtin_backends_satisfy_the_protocol():
    for name in ("onnxruntime", "litert", "torch"):
        cls = load_backend(name)
        assert all(callable(getattr(cls, m)) for m in ("fingerprint", "prepare", "run", "release", "close"))


def test_missing_optional_runtime_gives_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'hwprof\[litert\]'"):
        open_device("cpu-litert")


@pytest.mark.parametrize("name", ["cpu", "cpu-litert", "cpu-torch"])
def test_local_device_times_a_real_op(name, tmp_path):
    dev = open_device(name)
    assert isinstance(dev, Device)
    try:
        fp = dev.fingerprint()
        assert fp["threads"] == "1" and fp["device"] == name and fp["runtime_version"]
        h = dev.prepare(artifact_for(SMALL, dev.artifact_format, tmp_path))
        samples = dev.run(h, 5, warmup=2)
        assert len(samples) == 5 and all(0 < s < 1000 for s in samples)
        dev.release(h)
    finally:
        dev.close()


def test_worker_crash_fails_one_workload_and_recovers(tmp_path):
    dev = open_device("cpu")
    try:
        h = dev.prepare(artifact_for(SMALL, dev.artifact_format, tmp_path))
        os.kill(dev._proc.pid, signal.SIGKILL)  # a runtime crash, as seen from the parent
        with pytest.raises(MeasurementError, match="worker died"):
            dev.run(h, 3)
        h = dev.prepare(artifact_for(SMALL, dev.artifact_format, tmp_path))  # a fresh worker
        assert len(dev.run(h, 3)) == 3
    finally:
        dev.close()


def test_worker_reports_runtime_errors(tmp_path):
    dev = open_device("cpu")
    try:
        bad = tmp_path / "broken.onnx"
        bad.write_bytes(b"not a model")
        with pytest.raises(MeasurementError, match="onnxruntime worker"):
            dev._call(cmd="load", runtime="onnxruntime", threads=1, path=str(bad), input_shape=[1, 3, 8, 8])
    finally:
        dev.close()
