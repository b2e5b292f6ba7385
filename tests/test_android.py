"""The Android backend against the stand-in phone (loopback adb server + LiteRT benchmark_model).

Driven through adbutils and, where it is installed, Debian's real ``adb`` client.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from hwprof.measure.campaign import op_workloads, run_campaign
from hwprof.devices import parse_config
from hwprof.devices.android import AndroidDevice, benchmark_command
from hwprof.errors import HwprofWarning, ConfigError, DeviceError
from hwprof.artifacts.workload import Workload, artifact_for
from hwprof.spaces.ops import OpSpec
from hwprof.measure.protocol import Plan, measure
from hwprof.spaces import space
from hwprof.measure.store import Store
from hwprof.testing.fake_adb import FakePhone, config_toml

ADB = shutil.which("adb")
needs_adb = pytest.mark.skipif(ADB is None, reason="Debian's adb client is not installed (apt-get install adb)")
SMALL_PLAN = Plan(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=3, chunk=3, sentinel_every=0)
OP = Workload.of_op(OpSpec("conv", 16, 16, 8, 16, kernel=3, stride=1, act="relu6"))


@pytest.fixture
def phone():
    with FakePhone() as p:
        yield p


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One artifact folder for the module: OP is exported to .tflite once."""
    return tmp_path_factory.mktemp("artifacts")


def make_device(phone: FakePhone, tmp_path: Path, client: str = "adbutils", **options) -> AndroidDevice:
    path = tmp_path / "phone.toml"
    path.write_text(config_toml(phone, client=client))
    config = parse_config(path)
    opts = {**config.options, **options}
    return AndroidDevice(type(config)(**{**config.__dict__, "options": opts}))


def adb(phone: FakePhone, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ADB, "-P", str(phone.port), *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


# ---------------------------------------------------------------- the stand-in speaks adb
def test_adbutils_sees_the_phone(phone):
    import adbutils

    client = adbutils.AdbClient("127.0.0.1", phone.port)
    assert client.server_version() == 41
    assert [d.serial for d in client.device_list()] == [phone.serial]
    dev = client.device(phone.serial)
    assert dev.shell("getprop ro.product.model") == "hwprof-fake-phone"
    ret = dev.shell2("echo out; echo err >&2; exit 3", v2=True)
    assert (ret.returncode, ret.stdout, ret.stderr) == (3, "out\n", "err\n")
    dev.sync.push(b"payload", "/data/local/tmp/a dir/f.bin")
    assert dev.sync.read_bytes("/data/local/tmp/a dir/f.bin") == b"payload"
    assert (phone.root / "data/local/tmp/a dir/f.bin").read_bytes() == b"payload"


@needs_adb
def test_adb_client_sees_the_phone(phone, tmp_path):
    assert f"{phone.serial}\tdevice" in adb(phone, "devices").stdout
    r = adb(phone, "-s", phone.serial, "shell", "getprop ro.build.fingerprint; exit 7")
    assert r.returncode == 7 and r.stdout.startswith("hwprof/fake_phone")
    src = tmp_path / "m.tflite"
    src.write_bytes(os.urandom(200_000))
    assert adb(phone, "-s", phone.serial, "push", str(src), "/data/local/tmp/x/").returncode != 0  # no such folder
    assert adb(phone, "-s", phone.serial, "push", str(src), "/data/local/tmp/x/m.tflite").returncode == 0
    assert (phone.root / "data/local/tmp/x/m.tflite").read_bytes() == src.read_bytes()
    assert adb(phone, "-s", phone.serial, "pull", "/data/local/tmp/x/m.tflite", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    phone.disconnect()
    r = adb(phone, "-s", phone.serial, "shell", "true")
    assert r.returncode != 0 and "not found" in r.stderr


# ---------------------------------------------------------------- the backend
def test_fingerprint_environment_describe(phone, tmp_path):
    dev = make_device(phone, tmp_path)
    fp = dev.fingerprint()
    for key in ("device", "backend", "runtime", "runtime_version", "threads", "batch", "cpu"):
        assert fp[key]
    assert fp["android_build"].startswith("hwprof/fake_phone")
    sha = subprocess.run(["sha256sum", str(phone.root / "data/local/tmp/benchmark_model")], capture_output=True, text=True)
    assert fp["benchmark_sha256"] == sha.stdout.split()[0]
    assert "hwprof-fake-phone" in fp["cpu"] and fp["sample"] == "run"
    env = dev.environment()
    assert env["governors"].startswith("cpu0=schedutil") and env["temp_after_max_c"] == "35.0"
    assert "benchmark binary" in dev.describe()
    assert dev.status() == f"attached: serial {phone.serial} (device)"
    dev.close()


@pytest.mark.parametrize("client", ["adbutils", pytest.param("adb", marks=needs_adb)])
def test_runs_are_single_runs_from_invocations_of_three(phone, tmp_path, work, client):
    dev = make_device(phone, tmp_path, client=client)
    handle = dev.prepare(artifact_for(OP, "tflite", work))
    assert (phone.host_path(handle.remote)).is_file()
    before = phone.benchmark_invocations
    samples = dev.run(handle, 4, 0)
    assert len(samples) == 4 and all(0 < s < 1000 for s in samples)
    assert phone.benchmark_invocations - before == 2  # 3 + 1 runs
    last = phone.commands[-1]
    assert "--num_runs=1" in last and "--warmup_runs=2" in last and "taskset 8" in last and "--use_xnnpack=true" in last
    dev.release(handle)
    assert not phone.host_path(handle.remote).exists()
    session = phone.host_path(handle.remote).parent
    dev.close()
    assert not session.exists()


def test_shell_arguments_cannot_inject(phone, tmp_path, work):
    evil = "/data/local/tmp/my models; touch /data/local/tmp/pwned #/m'x.tflite"
    cmd = benchmark_command("/data/local/tmp/benchmark_model", evil, 1, 3, 2, "8", "cpu", ["--x=a b"])
    argv = shlex.split(cmd)
    assert argv[0:2] == ["taskset", "8"] and f"--graph={evil}" in argv and "--x=a b" in argv
    dev = make_device(phone, tmp_path, remote_dir="/data/local/tmp/hw prof; touch /data/local/tmp/pwned")
    handle = dev.prepare(artifact_for(OP, "tflite", work))
    assert " prof; touch" in handle.remote
    assert len(dev.run(handle, 3, 0)) == 3
    dev.close()
    assert not (phone.root / "data/local/tmp/pwned").exists()  # the `touch` never ran
    assert (phone.root / "data/local/tmp/hw prof; touch /data/local/tmp/pwned".lstrip("/")).is_dir()


def test_protocol_measures_through_the_phone(phone, tmp_path, work):
    dev = make_device(phone, tmp_path)
    handle = dev.prepare(artifact_for(OP, "tflite", work))
    outcome = measure(lambda runs, warmup: dev.run(handle, runs, warmup), SMALL_PLAN)
    assert len(outcome.samples_ms) == 3 and outcome.warmup == 1
    dev.close()


def test_hot_phone_pauses_until_cool(phone, tmp_path, work):
    dev = make_device(phone, tmp_path, max_temp_c=60.0, poll_s=0.1, cool_wait_s=10.0)
    phone.set_temperature(80.0)
    threading.Timer(0.6, phone.set_temperature, args=(40.0,)).start()
    t0 = time.monotonic()
    handle = dev.prepare(artifact_for(OP, "tflite", work))
    assert time.monotonic() - t0 >= 0.5
    dev.run(handle, 1, 0)
    env = dev.environment()
    assert float(env["temp_before_max_c"]) <= 60.0
    phone.set_temperature(90.0)
    dev.opts["cool_wait_s"] = 0.3
    with pytest.raises(DeviceError, match="stayed above 60 °C"):
        dev.prepare(artifact_for(OP, "tflite", work))
    dev.close()


def test_short_disconnect_is_retried(phone, tmp_path, work):
    dev = make_device(phone, tmp_path, retries=6, retry_backoff_s=0.2)
    handle = dev.prepare(artifact_for(OP, "tflite", work))
    phone.drop_after(1, down_s=0.6)
    with pytest.warns(HwprofWarning, match="retry 2/6"):
        assert len(dev.run(handle, 6, 0)) == 6
    dev.close()


def test_long_disconnect_stops_the_campaign_and_a_rerun_resumes(phone, tmp_path, work, capsys):
    workloads = op_workloads(space("spnas"))[:4]
    store = Store(tmp_path / "phone.sqlite")
    dev = make_device(phone, tmp_path, retries=3, retry_backoff_s=0.1)
    # each record = 1 warm-up + 1 timed invocation: pull the cable during the third record's timing
    phone.drop_after(6, down_s=None)
    first = run_campaign(dev, workloads, store, SMALL_PLAN, workdir=work)
    dev.close()
    assert "unreachable" in first.interrupted and "resumes" in first.interrupted
    assert len(first.records) == 2 == len(store)
    print(f"first run: {len(first.records)} records, stopped: {first.interrupted}", file=sys.stderr)
    phone.reconnect()
    dev = make_device(phone, tmp_path)
    second = run_campaign(dev, workloads, store, SMALL_PLAN, workdir=work)
    dev.close()
    assert not second.interrupted and second.skipped == 2 and len(second.records) == 2
    assert sorted(r.key for r in store.iter_records()) == sorted(w.key for w in workloads)
    assert all(len(r.samples_ms) == 3 and r.environment["serial"] == phone.serial for r in store.iter_records())
    print(f"re-run: skipped {second.skipped}, {len(second.records)} new records, store holds {len(store)}", file=sys.stderr)
    store.close()


def test_serial_from_env_or_the_only_phone(phone, tmp_path, monkeypatch):
    dev = make_device(phone, tmp_path, serial="")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    assert dev.serial == phone.serial
    monkeypatch.setenv("ANDROID_SERIAL", "OTHER-PHONE")
    dev = make_device(phone, tmp_path, serial="", retries=1)
    assert dev.serial == "OTHER-PHONE"
    with pytest.raises(DeviceError, match="OTHER-PHONE.*not found"):
        dev.fingerprint()
    assert "not attached" in dev.status()


def test_no_server_no_binary_bad_config(phone, tmp_path):
    dev = make_device(phone, tmp_path, benchmark_binary="/data/local/tmp/nothing_here")
    with pytest.raises(DeviceError, match="adb push benchmark_model"):
        dev.fingerprint()
    port = phone.port
    phone.stop()
    cfg_path = tmp_path / "gone.toml"
    cfg_path.write_text(
        '[device]\nbackend = "android"\n[backend]\nadb_port = %d\nserial = "X"\nretries = 2\nretry_backoff_s = 0.05\n' % port
    )
    gone = AndroidDevice(parse_config(cfg_path))
    assert gone.status().startswith("not attached")
    with pytest.raises(DeviceError, match="no adb server"):
        gone.fingerprint()
    cfg_path.write_text('[device]\nbackend = "android"\n[backend]\nserail = "X"\n')
    with pytest.raises(ConfigError, match="serail"):
        AndroidDevice(parse_config(cfg_path))
    cfg_path.write_text('[device]\nbackend = "android"\n[backend]\ndelegate = "tpu"\n')
    with pytest.raises(ConfigError, match="delegate"):
        AndroidDevice(parse_config(cfg_path))


def test_tune_locks_the_governor_of_the_measured_cores(phone, tmp_path):
    dev = make_device(phone, tmp_path)
    lines = dev.tune()
    assert "locked: cpu3 governor = performance" in lines
    assert (phone.root / "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor").read_text().strip() == "performance"
    assert (phone.root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() == "schedutil"
    assert any(line.startswith("not attempted") for line in lines)


# ---------------------------------------------------------------- the whole CLI path
def _entry_point_path(tmp_path: Path) -> str:
    """A folder to put on PYTHONPATH that registers the android backend if pyproject does not (yet)."""
    if "android" in {ep.name for ep in entry_points(group="hwprof.devices")}:
        return ""
    info = tmp_path / "ep" / "hwprof_android_test-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwprof-android-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text('[hwprof.devices]\nandroid = hwprof.devices.android:AndroidDevice\n')
    return str(tmp_path / "ep")


@pytest.mark.parametrize("client", ["adbutils", pytest.param("adb", marks=[needs_adb, pytest.mark.slow])])
def test_hwprof_measure_through_the_stand_in(phone, tmp_path, client):
    cfg = tmp_path / "standin.toml"
    cfg.write_text(config_toml(phone, name="standin", client=client, sentinel_every=0))
    env = dict(os.environ)
    extra = _entry_point_path(tmp_path)
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra, env.get("PYTHONPATH", "")) if p)
    cmd = [
        sys.executable, "-m", "hwprof.cli", "measure", "--device", str(cfg), "--space", "spnas", "--ops",
        "--limit", "1", "--store", str(tmp_path / "s.sqlite"), "--min-runs", "3", "--max-runs", "3", "--warmup-runs", "1",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 new records" in r.stdout
    with Store(tmp_path / "s.sqlite") as store:
        recs = list(store.iter_records())
    assert len(recs) == 1 and recs[0].fingerprint["backend"] == "android" and len(recs[0].samples_ms) == 3
    assert not list((phone.root / "data/local/tmp/hwprof").iterdir())  # campaign folder removed


def test_fake_phone_command_writes_a_config(tmp_path):
    from typer.testing import CliRunner

    from hwprof.cli import app

    out = tmp_path / "fp.toml"
    r = CliRunner().invoke(app, ["fake-phone", "--port", "0", "--seconds", "0.3", "--write-config", str(out)])
    assert r.exit_code == 0, r.output
    assert "listening on 127.0.0.1:" in r.output and "stopped" in r.output
    cfg = parse_config(out)
    assert cfg.backend == "android" and cfg.options["adb_port"] > 0
