"""The GPU backends without a GPU (their refusal, the timing loop with CPU events standing in for CUDA events,
ONNX Runtime providers) and, marked ``device``, on a CUDA machine."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from hwprof.devices import load_config, open_device
from hwprof.devices.gpu import cuda_unavailable_reason, time_with_events
from hwprof.errors import ConfigError, DeviceError

NO_CUDA = cuda_unavailable_reason()


class CpuEvent:
    """perf_counter standing in for a CUDA event: record/synchronize/elapsed_time(ms), same calls."""

    log: list[str] = []

    def record(self) -> None:
        self.t = time.perf_counter()
        CpuEvent.log.append("record")

    def synchronize(self) -> None:
        CpuEvent.log.append("sync")

    def elapsed_time(self, end: "CpuEvent") -> float:
        return (end.t - self.t) * 1000


def test_event_loop_times_each_call_and_synchronises_after_it():
    calls = []
    CpuEvent.log = []
    out = time_with_events(lambda: (calls.append(1), time.sleep(0.002)), runs=4, warmup=3, event=CpuEvent)
    assert len(calls) == 7 and len(out) == 4 and all(1.5 < ms < 50 for ms in out)
    assert CpuEvent.log == ["record", "sync"] + ["record", "record", "sync"] * 4


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["gpu", "gpu-trt"])
def test_without_cuda_the_gpu_devices_refuse_with_the_reason(name):
    with pytest.raises(DeviceError, match=f"{name}: no CUDA device: "):
        open_device(name)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_measure_on_gpu_is_one_line_without_cuda(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwprof.cli", "measure", "--device", "gpu", "--ops", "--limit", "1"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("hwprof: error:")]
    assert len(errors) == 1 and "no CUDA device" in errors[0]


def test_gpu_config_errors(tmp_path):
    text = load_config("gpu").path.read_text()
    (tmp_path / "g.toml").write_text(text.replace('dtype = "fp32"', 'dtype = "int8"'))
    with pytest.raises((ConfigError, DeviceError)):
        open_device(tmp_path / "g.toml")


def test_onnxruntime_providers_are_checked(tmp_path):
    import onnxruntime as ort

    text = load_config("cpu").path.read_text()
    (tmp_path / "cuda.toml").write_text(text + '\n[backend]\nproviders = ["CUDAExecutionProvider"]\n')
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ConfigError, match="not available in onnxruntime .*; available: .*CPUExecutionProvider"):
        open_device(tmp_path / "cuda.toml")
    (tmp_path / "cpu.toml").write_text(text + '\n[backend]\nproviders = ["CPUExecutionProvider"]\n')
    dev = open_device(tmp_path / "cpu.toml")
    assert "providers" not in dev.fingerprint()  # the default keeps CPU fingerprints as they were
    dev.close()


@pytest.mark.device
@pytest.mark.skipif(bool(NO_CUDA), reason=f"needs a CUDA GPU: {NO_CUDA}")
def test_gpu_device_times_an_op_with_cuda_events(tmp_path):
    from hwprof.artifacts.workload import Workload, artifact_for
    from hwprof.spaces.ops import OpSpec

    dev = open_device("gpu")
    fp = dev.fingerprint()
    assert fp["gpu"] and fp["cuda"] and fp["cudnn_benchmark"] == "true"
    w = Workload.of_op(OpSpec("conv", 56, 56, 32, 64, kernel=3, stride=1, act="relu6", batch=32))
    h = dev.prepare(artifact_for(w, "torchscript", tmp_path))
    samples = dev.run(h, 10, 5)
    assert len(samples) == 10 and all(0 < s < 1000 for s in samples)
    dev.release(h)
    dev.close()
