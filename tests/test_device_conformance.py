"""Every registered device backend (``hwprof.devices.backends()``) against one shared suite.

Each backend has an entry in ``OPENERS`` that opens a device of that backend on
this machine: the built-in local configs (ONNX Runtime, LiteRT, torch on the
CPU) and the stand-in phone (:class:`hwprof.testing.fake_adb.FakePhone`) for
``android``. A backend registered without an entry fails the suite, naming it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import pytest

from hwprof.artifacts import FORMATS
from hwprof.artifacts.workload import Workload, artifact_for
from hwprof.devices import Device, backends, load_backend, open_device
from hwprof.measure.records import IDENTITY_FIELDS
from hwprof.spaces.ops import OpSpec

OP = Workload.of_op(OpSpec("conv", 16, 16, 8, 16, kernel=3, stride=1, act="relu6"))
RUNS = 5


@contextmanager
def _builtin(name: str) -> Iterator[Device]:
    yield open_device(name)


@contextmanager
def _stand_in_phone(tmp_path: Path) -> Iterator[Device]:
    from hwprof.testing.fake_adb import FakePhone, config_toml

    with FakePhone() as phone:
        path = tmp_path / "stand-in.toml"
        path.write_text(config_toml(phone, name="stand-in", sentinel_every=0))
        yield open_device(path)


#: backend name → opener of a device of that backend (given a scratch folder). Every backend needs one.
OPENERS: dict[str, Callable[[Path], ContextManager[Device]]] = {
    "onnxruntime": lambda tmp: _builtin("cpu"),
    "litert": lambda tmp: _builtin("cpu-litert"),
    "torch": lambda tmp: _builtin("cpu-torch"),
    "android": _stand_in_phone,
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One artifact folder for the module: OP is exported once per format."""
    return tmp_path_factory.mktemp("artifacts")


def test_every_backend_has_a_suite_entry():
    missing = sorted(set(backends()) - set(OPENERS))
    assert not missing, (
        f"device backend(s) {missing} are registered (entry-point group hwprof.devices) but have no entry in "
        f"OPENERS of {__file__}: add an opener that makes such a device on a test machine (a stand-in if needed)"
    )
    assert not set(OPENERS) - set(backends()), f"OPENERS lists backends no longer registered: {set(OPENERS) - set(backends())}"


@pytest.mark.parametrize("name", sorted(backends()))
def test_backend_class_satisfies_the_protocol(name):
    cls = load_backend(name)
    assert cls.artifact_format in FORMATS, f"{name}: artifact_format {cls.artifact_format!r} not in {FORMATS}"


@pytest.mark.parametrize("name", sorted(backends()))
def test_backend_prepares_runs_releases_and_closes(name, tmp_path, work):
    if name not in OPENERS:
        pytest.fail(f"device backend {name!r} is registered but has no entry in OPENERS of {__file__}")
    with OPENERS[name](tmp_path) as dev:
        try:
            assert isinstance(dev, Device)
            assert dev.config.backend == name
            assert dev.artifact_format in FORMATS
            fp = dev.fingerprint()
            missing = [k for k in IDENTITY_FIELDS if not (isinstance(fp.get(k), str) and fp[k])]
            assert not missing, f"{name}: fingerprint lacks identity fields {missing}: {fp}"
            assert fp["backend"] == name
            env = dev.environment()
            assert isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
            artifact = artifact_for(OP, dev.artifact_format, work)
            prepared = dev.prepare(artifact)
            samples = dev.run(prepared, RUNS, 1)
            assert len(samples) == RUNS, f"{name}: asked {RUNS} runs, got {len(samples)}"
            assert all(isinstance(s, float) and math.isfinite(s) and 0 < s < 10_000 for s in samples), samples
            assert len(dev.run(prepared, 2, 0)) == 2  # a prepared artifact runs again
            dev.release(prepared)
        finally:
            dev.close()


@contextmanager
def _stand_in_board(tmp_path: Path) -> Iterator[Device]:
    pytest.importorskip("asyncssh", reason="the stand-in board needs asyncssh (hwprof[test])")
    from hwprof.testing.fake_board import FakeBoard, config_toml

    with FakeBoard() as board:
        path = tmp_path / "stand-in-board.toml"
        path.write_text(config_toml(board, name="stand-in-board", sentinel_every=0))
        yield open_device(path)


@contextmanager
def _gpu(name: str) -> Iterator[Device]:
    from hwprof.devices.gpu import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason:
        pytest.skip(f"{name}: no CUDA device here ({reason})")
    yield open_device(name)


OPENERS.update({
    "ssh-board": _stand_in_board,
    "cuda-torch": lambda tmp: _gpu("gpu"),
    "tensorrt": lambda tmp: _gpu("gpu-trt"),
})
