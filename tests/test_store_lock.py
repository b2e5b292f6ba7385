"""One writer per store: the campaign lock, the concurrent-campaign case, a read-only store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hwprof.errors import StoreError
from hwprof.measure.lock import StoreLock, lock_path
from hwprof.measure.store import Store

REPO = Path(__file__).resolve().parents[1]

#: A campaign in its own process on a stand-in device: every run waits for the file GO, so the campaign
#: holds the store for as long as the test needs; it writes READY once it has planned (lock taken).
CAMPAIGN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import hwprof.measure.campaign as campaign
    from hwprof.devices import DeviceConfig
    from hwprof.measure.campaign import arch_workloads, run_campaign
    from hwprof.measure.protocol import Plan
    from hwprof.measure.store import Store
    from hwprof.spaces import space

    store, ready, go = (Path(p) for p in sys.argv[1:4])

    class Cache:  # no model export: the stand-in device runs nothing
        def __init__(self, *a, **k): pass
        def get(self, w, fmt): return w.key

    class Device:
        artifact_format = "onnx"
        config = DeviceConfig(name="stand-in", backend="stand-in")
        def fingerprint(self):
            return {"device": "stand-in", "backend": "stand-in", "runtime": "none", "runtime_version": "0",
                    "threads": "1", "batch": "1", "cpu": "test", "hwprof_version": "0"}
        def environment(self): return {}
        def prepare(self, art): return art
        def run(self, h, runs, warmup=0):
            while not go.exists():
                time.sleep(0.02)
            return [1.0 + 0.001 * i for i in range(runs)]
        def release(self, h): pass
        def close(self): pass

    campaign.ArtifactCache = Cache
    plan = Plan(warmup_runs=0, warmup_s=0, min_runs=3, max_runs=3, chunk=3, rounds=1, sentinel_every=0)
    work = arch_workloads(space("fbnet-c100"), 2, seed=0)
    rep = run_campaign(Device(), work, Store(store), plan, on_plan=lambda r: ready.write_text("1"))
    print(len(rep.records), rep.skipped)
    """
)


def _start(tmp_path: Path, store: Path, tag: str) -> tuple[subprocess.Popen, Path, Path]:
    ready, go = tmp_path / f"ready-{tag}", tmp_path / f"go-{tag}"
    proc = subprocess.Popen(
        [sys.executable, "-c", CAMPAIGN, str(store), str(ready), str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the campaign did not start"
        time.sleep(0.05)
    return proc, ready, go


def test_second_campaign_stops_naming_the_holder_and_readers_keep_working(tmp_path):
    store = tmp_path / "s.sqlite"
    Store(store).close()
    first, _, go = _start(tmp_path, store, "a")
    try:
        info = json.loads(lock_path(store).read_text())
        assert info["pid"] == first.pid and "command" in info and info["host"]
        # a second campaign through the CLI stops before any timing, with one line naming the holder
        t0 = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "hwprof.cli", "measure", "--device", "cpu", "--space", "fbnet-c100", "--ops",
             "--limit", "1", "--store", str(store)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert res.returncode == 2, res.stderr
        assert f"pid {first.pid}" in res.stderr and "being written by" in res.stderr
        assert "Traceback" not in res.stderr
        assert time.monotonic() - t0 < 60
        # the same through the library
        with pytest.raises(StoreError, match=f"pid {first.pid}"):
            StoreLock(store).acquire()
        # readers keep working during the campaign
        with Store(store) as st:
            assert st.records() == []
        res = subprocess.run(
            [sys.executable, "-m", "hwprof.cli", "export", "--store", str(store), "-o", str(tmp_path / "e.csv")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr
    finally:
        go.write_text("1")
        out, errs = first.communicate(timeout=60)
    assert first.returncode == 0, errs
    assert out.split() == ["2", "0"]
    assert not lock_path(store).exists()
    with Store(store) as st:
        assert len(st) == 2  # a 2-arch, 1-round plan: two records, not four
    # the lock is free again: a rerun takes it and measures nothing new
    second, _, go2 = _start(tmp_path, store, "b")
    go2.write_text("1")
    out, errs = second.communicate(timeout=60)
    assert second.returncode == 0, errs
    assert out.split() == ["0", "2"]


def test_lock_of_a_killed_holder_is_free(tmp_path):
    store = tmp_path / "s.sqlite"
    Store(store).close()
    proc, _, _ = _start(tmp_path, store, "k")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert lock_path(store).exists()  # left behind by the crash ...
    with StoreLock(store, command="test") as lock:  # ... but the kernel released it
        assert json.loads(lock.path.read_text())["command"] == "test"
    assert not lock_path(store).exists()


def test_lock_is_exclusive_within_one_process(tmp_path):
    store = tmp_path / "s.sqlite"
    with StoreLock(store, command="hwprof measure --ops"):
        with pytest.raises(StoreError, match=r"hwprof measure --ops.*another --store"):
            StoreLock(store).acquire()
    StoreLock(store).acquire().release()


def test_read_only_store_fails_before_any_timing(tmp_path):
    from hwprof.measure.campaign import run_campaign

    store = tmp_path / "s.sqlite"
    Store(store).close()
    store.chmod(0o444)
    calls = []

    class Device:  # would record every timing call
        config = type("C", (), {"name": "x", "protocol": {}})()
        artifact_format = "onnx"

        def fingerprint(self):
            calls.append("fingerprint")
            return {}

        def run(self, *a):
            calls.append("run")
            return [1.0]

    try:
        with Store(store) as st, pytest.raises(StoreError, match="read-only"):
            run_campaign(Device(), [], st)
        assert calls == []
        res = subprocess.run(
            [sys.executable, "-m", "hwprof.cli", "measure", "--device", "cpu", "--space", "fbnet-c100", "--ops",
             "--limit", "1", "--store", str(store)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert res.returncode == 2 and "read-only" in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()[-1]) < 300
    finally:
        store.chmod(0o644)
