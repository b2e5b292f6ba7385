"""Boards over SSH against the stand-in board (hwprof.testing.fake_board): the real ssh client, a loopback
asyncssh server, trtexec and tegrastats stand-ins on this CPU. Each trtexec call starts a Python process, so
campaigns here are a few ops with one invocation per record."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("asyncssh")
if shutil.which("ssh") is None:
    pytest.skip("no ssh client on this machine (apt-get install openssh-client)", allow_module_level=True)

from hwprof.devices import load_config, open_device  # noqa: E402
from hwprof.errors import ConfigError, DeviceError, HwprofWarning  # noqa: E402
from hwprof.measure.campaign import op_workloads, run_campaign  # noqa: E402
from hwprof.measure.protocol import Plan  # noqa: E402
from hwprof.measure.store import Store  # noqa: E402
from hwprof.spaces import space  # noqa: E402
from hwprof.testing.fake_board import FakeBoard, config_toml  # noqa: E402

#: One trtexec invocation of 10 queries per record, no separate warm-up invocation (trtexec warms up inside).
PLAN = Plan(warmup_runs=0, warmup_s=0.0, min_runs=10, max_runs=10, chunk=10, target_ci=0.5, sentinel_every=0)
FAST = ["--warmup-runs", "0", "--min-runs", "10", "--max-runs", "10", "--target-ci", "0.5"]


@pytest.fixture(scope="module")
def board():
    with FakeBoard() as b:
        yield b


def config(board: FakeBoard, tmp_path: Path, name: str = "board", **kw) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(config_toml(board, name=name, sentinel_every=0, **kw))
    return path


def hwprof(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwprof.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_measure_ops_through_ssh_then_energy_table(board, tmp_path):
    cfg = config(board, tmp_path)
    t0 = time.perf_counter()
    r = hwprof("measure", "--device", str(cfg), "--space", "lightnas", "--ops", "--limit", "3",
               "--store", "b.sqlite", *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    print(f"stand-in board: 3 ops in {time.perf_counter() - t0:.1f} s\n{r.stdout[-400:]}", file=sys.stderr)
    with Store(tmp_path / "b.sqlite") as st:
        recs = list(st.iter_records())
    assert len(recs) == 3 and all(len(m.samples_ms) == 10 for m in recs)
    for m in recs:
        assert m.fingerprint["runtime"] == "tensorrt-trtexec" and m.fingerprint["backend"] == "ssh-board"
        assert m.environment["sample_source"] == "exportTimes"
        assert float(m.environment["power_w"]) > 0 and m.environment["power_source"].startswith("tegrastats:sum(")
        assert 0 < m.median_ms < 1000
    engines = list((board.root / ".cache" / "hwprof" / "engines").glob("*-trt0.0.0-*-fp32.engine"))
    assert len(engines) >= 3
    assert not list((board.root / "hwprof-runs").glob("board-*")), "the campaign folder is removed at the end"
    # a second campaign re-uses the cached engines: no ONNX file is pushed, no engine built
    n = len(board.commands)
    r = hwprof("measure", "--device", str(cfg), "--space", "lightnas", "--ops", "--limit", "1",
               "--store", "b2.sqlite", *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not [c for c in board.commands[n:] if "--saveEngine" in c or "cat >" in c]
    # energy per inference needs the power of every record; the table names its unit
    r = hwprof("lut", "build", "--store", "b.sqlite", "--device", "board", "--space", "lightnas", "-o", "e.json",
               "--metric", "energy", cwd=tmp_path)
    assert r.returncode == 2 and "ops of space lightnas are not in the store" in r.stderr  # only 3 ops measured
    from hwprof.tables.table import build_table

    with Store(tmp_path / "b.sqlite") as st:
        table = build_table(st.records(device="board", kind="op"), metric="energy")
    assert table.metadata["unit"] == "mJ" and len(table) == 3
    m = recs[0]
    assert table.lookup(m.key) == pytest.approx(float(m.environment["power_w"]) * m.median_ms)


def test_dropped_link_is_retried_then_stops_cleanly_and_a_rerun_resumes(board, tmp_path, capsys):
    work = op_workloads(space("lightnas"))[:4]
    store = Store(tmp_path / "drop.sqlite")
    dev = open_device(config(board, tmp_path, retries=2, retry_backoff_s=0.2))
    board.drop_after(3, down_s=None)  # the board goes away when the third record's trtexec starts
    with pytest.warns(HwprofWarning, match="retry 2/2"):
        first = run_campaign(dev, work, store, PLAN, workdir=tmp_path / "art")
    dev.close()
    assert "unreachable" in first.interrupted and "resumes" in first.interrupted
    assert len(first.records) == 2 == len(store)
    print(f"first run: {len(first.records)} records, stopped: {first.interrupted}", file=sys.stderr)
    board.reconnect()
    dev = open_device(config(board, tmp_path))
    second = run_campaign(dev, work, store, PLAN, workdir=tmp_path / "art")
    dev.close()
    assert not second.interrupted and second.skipped == 2 and len(second.records) == 2
    assert sorted(r.key for r in store.iter_records()) == sorted(w.key for w in work)
    print(f"re-run: skipped {second.skipped}, {len(second.records)} new records, store holds {len(store)}", file=sys.stderr)
    store.close()


def test_short_drop_is_retried(board, tmp_path):
    dev = open_device(config(board, tmp_path, retries=6, retry_backoff_s=0.3))
    from hwprof.artifacts.workload import artifact_for

    handle = dev.prepare(artifact_for(op_workloads(space("lightnas"))[0], "onnx", tmp_path))
    board.drop_after(1, down_s=0.5)
    with pytest.warns(HwprofWarning, match="retry 2/6"):
        assert len(dev.run(handle, 5, 0)) == 5
    dev.close()


def test_tune_sets_power_mode_and_says_what_it_could_not(board, tmp_path):
    text = config(board, tmp_path).read_text()
    (tmp_path / "mode2.toml").write_text(text.replace("nvpmodel = 0", "nvpmodel = 2"))
    dev = open_device(tmp_path / "mode2.toml")
    lines = dev.tune()
    dev.close()
    assert lines[0] == "power mode: NV Power Mode: MODE_2" and "locked" in lines[1]
    assert lines[-1] == "fingerprint power mode now: NV Power Mode: MODE_2"
    (tmp_path / "sudo.toml").write_text(text.replace("use_sudo = false", "use_sudo = true"))
    dev = open_device(tmp_path / "sudo.toml")
    lines = dev.tune()
    dev.close()
    assert lines[0] == "power mode not set (nvpmodel -m 0): needs root: allow it in sudoers without a password (NOPASSWD) or run as root"
    assert lines[1].startswith("clocks not locked (jetson_clocks): needs root")
    text = config(board, tmp_path).read_text().replace('trtexec = "trtexec"', 'trtexec = "/no/such/trtexec"')
    (tmp_path / "bad.toml").write_text(text.replace("use_sudo = false", "use_sudo = true"))
    dev = open_device(tmp_path / "bad.toml")
    with pytest.raises(DeviceError, match="no trtexec at /no/such/trtexec"):
        dev.fingerprint()
    dev.close()


def test_config_errors_are_one_line(board, tmp_path):
    text = config(board, tmp_path).read_text()
    for bad, msg in ((text.replace('host = "127.0.0.1"', 'host = ""'), "backend.host is required"),
                     (text.replace("power_interval_ms = 20", "power_intervall_ms = 20"), "did you mean 'power_interval_ms'"),
                     (text.replace('power = "tegrastats"', 'power = "nvml"'), "backend.power must be tegrastats or none")):
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(ConfigError, match=msg):
            open_device(tmp_path / "bad.toml")
    assert load_config("jetson-xavier").batch == 8


def test_unreachable_board_is_listed_not_a_crash(tmp_path):
    with FakeBoard() as b:
        path = config(b, tmp_path, retries=1)
    dev = open_device(path)  # the board is gone
    assert dev.status().startswith("unreachable: ")
    with pytest.raises(DeviceError, match="unreachable during reading the board's identity"):
        dev.fingerprint()
    dev.close()
