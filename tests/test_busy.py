"""Competing load (hwprof.measure.load) and a table's repeatability estimate (hwprof.measure.repeatability).

The load readers run on a fake /proc tree whose counters the test advances, so every figure is exact;
one test uses a short real CPU-bound child process to check that this process tree is found.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import hwprof.measure.campaign as campaign
from hwprof.devices import DeviceConfig
from hwprof.errors import ConfigError, HwprofWarning
from hwprof.measure.campaign import op_workloads, run_campaign
from hwprof.measure.load import Load, LoadMonitor, ProcFS, load_between, process_tree, snapshot
from hwprof.measure.protocol import Plan
from hwprof.measure.records import Measurement
from hwprof.measure.repeatability import DIFF_PER_HALF_WIDTH, MAD_TO_HALF_WIDTH, estimate, of_records
from hwprof.measure.store import Store
from hwprof.spaces import space
from hwprof.tables.table import build_table, load_table

OURS, CHILD, GRANDCHILD, OTHER = 100, 101, 102, 200


class FakeMachine:
    """A /proc (and /sys) tree under a folder, with counters the test advances (jiffies)."""

    def __init__(self, root: Path, cpus: int = 2, children_files: bool = True, freq: tuple[int, int] | None = None):
        self.root, self.cpus, self.children_files = root, cpus, children_files
        self.user, self.idle, self.steal = 1000, 5000, 0
        self.proc_cpu = {OURS: 10, CHILD: 20, GRANDCHILD: 5, OTHER: 300}
        self.parent = {OURS: 1, CHILD: OURS, GRANDCHILD: CHILD, OTHER: 1}
        (root / "proc").mkdir(parents=True)
        if freq is not None:
            for c in range(cpus):
                d = root / f"sys/devices/system/cpu/cpu{c}/cpufreq"
                d.mkdir(parents=True)
                (d / "scaling_cur_freq").write_text(f"{freq[0]}\n")
                (d / "cpuinfo_max_freq").write_text(f"{freq[1]}\n")
        self.write()

    def tick(self, ours: int = 0, child: int = 0, other: int = 0, idle: int = 0, steal: int = 0) -> None:
        """Advance the counters: jiffies spent by our process, our child, another process, idle, stolen."""
        self.proc_cpu[OURS] += ours
        self.proc_cpu[CHILD] += child
        self.proc_cpu[OTHER] += other
        self.user += ours + child + other
        self.idle += idle
        self.steal += steal
        self.write()

    def write(self) -> None:
        proc = self.root / "proc"
        lines = [f"cpu  {self.user} 0 0 {self.idle} 0 0 0 {self.steal} 0 0"]
        lines += [f"cpu{c} 0 0 0 0 0 0 0 0 0 0" for c in range(self.cpus)]
        (proc / "stat").write_text("\n".join(lines) + "\nintr 0\n")
        (proc / "loadavg").write_text("1.50 1.20 1.00 2/100 300\n")
        for pid, cpu in self.proc_cpu.items():
            d = proc / str(pid)
            d.mkdir(exist_ok=True)
            # a command name with a space and a parenthesis, as /proc allows
            (d / "stat").write_text(f"{pid} (py (x) y) S {self.parent[pid]} 1 1 0 -1 0 0 0 0 0 {cpu - 1} 1 0 0 20 0\n")
            if self.children_files:
                (d / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
                kids = [p for p, par in self.parent.items() if par == pid]
                (d / "task" / str(pid) / "children").write_text(" ".join(map(str, kids)) + (" " if kids else ""))


@pytest.fixture
def machine(tmp_path):
    return FakeMachine(tmp_path / "root")


@pytest.mark.parametrize("children_files", [True, False])
def test_other_cpu_excludes_our_process_tree(tmp_path, children_files):
    m = FakeMachine(tmp_path / "root", children_files=children_files)
    proc = ProcFS(m.root)
    assert process_tree(proc, OURS) == {OURS: 10, CHILD: 20, GRANDCHILD: 5}
    a = snapshot(proc, OURS)
    # 100 jiffies of wall time on 2 cores = 200 jiffies: our worker 80, another process 60, idle 60
    m.tick(ours=10, child=70, other=60, idle=60)
    load = load_between(a, snapshot(proc, OURS))
    assert load.cpus == 2
    assert load.other_cpu == pytest.approx(60 / 200 * 2)
    assert load.steal_pct == pytest.approx(0.0)
    assert load.reasons(busy_cores=0.5) == ["other processes use 0.6 of 2 cores"]
    assert load.reasons(busy_cores=0.7) == []


def test_quiet_machine_with_a_busy_worker_is_not_busy(machine):
    proc = ProcFS(machine.root)
    a = snapshot(proc, OURS)
    machine.tick(child=100, idle=100)  # the worker saturates one core, the other is idle
    load = load_between(a, snapshot(proc, OURS))
    assert load.other_cpu == pytest.approx(0.0) and load.reasons() == []


def test_steal_time_and_frequency(tmp_path):
    m = FakeMachine(tmp_path / "root", freq=(1_500_000, 3_000_000))
    monitor = LoadMonitor("flag", proc=ProcFS(m.root), root_pid=OURS)
    m.tick(child=100, idle=60, steal=40)
    env, busy = monitor.record()
    assert env["steal_pct"] == "20.0" and env["busy_other_cpu"] == "0.00"
    assert env["cpu_freq_ratio"] == "0.500" and env["loadavg_1m"] == "1.50"
    assert busy  # 20% steal > 10%


def test_without_proc_only_the_load_average_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = ProcFS(tmp_path / "empty")
    assert snapshot(proc, OURS) is None
    monitor = LoadMonitor("flag", proc=proc, root_pid=OURS)
    env, _ = monitor.record()
    assert "busy_other_cpu" not in env and "steal_pct" not in env
    assert Load(None, None, 3.0, 2, counted=False).reasons() == ["load average 3.0 on 2 cores"]
    assert Load(None, None, 1.5, 2, counted=False).reasons() == []
    assert Load(None, None, 3.0, 2, counted=True).reasons() == []  # /proc read, but no clock tick: unknown


def test_no_tick_keeps_the_window_open(machine):
    monitor = LoadMonitor("flag", proc=ProcFS(machine.root), root_pid=OURS)
    env, busy = monitor.record()  # nothing advanced: unknown, not zero
    assert "busy_other_cpu" not in env and not busy
    machine.tick(other=100, idle=100)
    env, busy = monitor.record()
    assert env["busy_other_cpu"] == "1.00" and busy


class FakeClock:
    def __init__(self, machine: FakeMachine, busy_looks: int):
        self.machine, self.busy_looks, self.now, self.looks = machine, busy_looks, 0.0, 0

    def sleep(self, s: float) -> None:  # a look's window: the other process runs while busy_looks last
        self.now += s
        self.looks += 1
        busy = self.looks <= self.busy_looks
        self.machine.tick(other=100 if busy else 0, idle=0 if busy else 100, child=100)

    def clock(self) -> float:
        return self.now


def _monitor(machine, mode, busy_looks, **kw):
    clock = FakeClock(machine, busy_looks)
    return LoadMonitor(mode, proc=ProcFS(machine.root), root_pid=OURS, sleep=clock.sleep, clock=clock.clock, **kw), clock


def test_wait_mode_waits_until_calm_and_says_why(machine):
    monitor, clock = _monitor(machine, "wait", busy_looks=3, poll_s=1.0, max_wait_s=60)
    with pytest.warns(HwprofWarning, match=r"machine busy before pass 1: other processes use 1\.0 of 2 cores; waiting"):
        load = monitor.check("before pass 1")
    assert load.reasons() == [] and clock.looks == 4
    assert monitor.waits_ == 1 and monitor.waited_s_ == pytest.approx(3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert monitor.check().reasons() == []  # calm: one look, no warning
    assert clock.looks == 5


def test_wait_is_bounded_per_wait_and_per_campaign(machine):
    monitor, clock = _monitor(machine, "wait", busy_looks=10**6, poll_s=1.0, max_wait_s=5, total_wait_s=8)
    with pytest.warns(HwprofWarning) as got:
        monitor.check()
    assert any("still busy after 5 s" in str(w.message) and "flagged 'busy'" in str(w.message) for w in got)
    assert monitor.waited_s_ == pytest.approx(5.0)
    with pytest.warns(HwprofWarning) as got:
        monitor.check()
    assert [str(w.message)[:60] for w in got if "waiting up to 3 s" in str(w.message)]
    assert any("still busy after 3 s" in str(w.message) for w in got)
    assert monitor.waited_s_ == pytest.approx(8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert monitor.check().reasons()  # budget spent: one look, no wait, no warning
    assert monitor.waited_s_ == pytest.approx(8.0)


def test_flag_and_ignore_never_wait(machine):
    for mode, flagged in (("flag", True), ("ignore", False)):
        monitor, clock = _monitor(machine, mode, busy_looks=10**6)
        assert monitor.check() is None and clock.looks == 0
        machine.tick(other=100, idle=100)
        env, busy = monitor.record()
        assert busy is flagged and env["busy_other_cpu"] == "1.00"
    with pytest.raises(ConfigError, match="allowed: wait, flag, ignore"):
        LoadMonitor("sometimes")


def test_real_child_process_belongs_to_our_tree():
    # The child spins until it has used 50 ms of CPU itself, says so, then waits on stdin: its counters are final.
    code = (
        "import sys, time\n"
        "while time.process_time() < 0.05: pass\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done"
        import os

        tree = process_tree(ProcFS(), os.getpid())
        assert os.getpid() in tree and child.pid in tree
        assert tree[child.pid] >= 1  # at least one clock tick of its own CPU time
        other = {p for p in ProcFS().pids() if p not in tree}
        assert other, "processes outside the tree (init at least) are competition"
    finally:
        child.stdin.close()
        child.wait(timeout=10)


# -- repeatability -------------------------------------------------------------------------------------------------


def _rounds(rng, ops: int, rounds: int, sigma: float, true: np.ndarray | None = None) -> dict[str, list[list[float]]]:
    """Rounds of ``ops`` workloads: each round's samples around the op's true latency × (1 + σ·N(0,1))."""
    true = np.exp(np.random.default_rng(99).uniform(-2, 2, ops)) if true is None else true
    return {
        f"op{i}": [list(t * (1 + sigma * rng.normal()) * (1 + 0.001 * rng.normal(size=5))) for _ in range(rounds)]
        for i, t in enumerate(true)
    }


def test_estimate_matches_the_known_spread_and_predicts_two_campaigns():
    sigma, rounds = 0.03, 10
    a = _rounds(np.random.default_rng(1), 400, rounds, sigma)  # two independent campaigns of the same 400 ops
    b = _rounds(np.random.default_rng(2), 400, rounds, sigma)
    rep = estimate(a)
    expected = 1.96 * math.sqrt(math.pi / 2) * sigma / math.sqrt(rounds)
    assert rep.method == "rounds" and rep.workloads == 400 and rep.rounds == rounds
    assert rep.ci95_median == pytest.approx(expected, rel=0.25)
    assert rep.ci95_p95 > rep.ci95_median
    med_a = {k: np.median([np.median(r) for r in v]) for k, v in a.items()}
    med_b = {k: np.median([np.median(r) for r in v]) for k, v in b.items()}
    diff = np.median([abs(med_a[k] / med_b[k] - 1) for k in a])
    assert rep.expected_diff_median == pytest.approx(DIFF_PER_HALF_WIDTH * rep.ci95_median)
    assert rep.expected_diff_median == pytest.approx(diff, rel=0.35)


def test_estimate_shrinks_with_rounds_and_advice_names_the_rounds():
    few = estimate(_rounds(np.random.default_rng(3), 300, 5, 0.05))
    many = estimate(_rounds(np.random.default_rng(3), 300, 20, 0.05))
    assert many.ci95_median < few.ci95_median * 0.7  # ~ √(5/20) = 0.5
    needed = math.ceil(few.rounds * (few.ci95_median / 0.03) ** 2)
    assert f"--rounds {needed}" in few.advice(0.03) and 5 < needed <= 40
    assert "too noisy" in few.advice(0.001) and "--rounds" not in few.advice(0.001)  # ~100× the rounds: quiet it first


def test_one_round_falls_back_to_the_samples_ci():
    rng = np.random.default_rng(4)
    one = {f"op{i}": [list(1 + 0.02 * rng.normal(size=40))] for i in range(20)}
    rep = estimate(one)
    assert rep.method == "samples" and rep.rounds == 1 and 0 < rep.ci95_median < 0.05
    assert "--rounds" in rep.advice(0.001)
    assert estimate({}) is None


def test_mad_constant_is_the_normal_one():
    assert MAD_TO_HALF_WIDTH == pytest.approx(1.96 * 1.2533 * 1.4826, rel=1e-4)


# -- in a table and a campaign -------------------------------------------------------------------------------------

FP = {"device": "stand-in", "backend": "stand-in", "runtime": "none", "runtime_version": "0", "threads": "1",
      "batch": "1", "cpu": "test", "hwprof_version": "0"}


def test_build_table_stores_its_repeatability(tmp_path):
    sp = space("proxylessnas")
    rng = np.random.default_rng(5)
    records = [
        Measurement("op", w.key, w.space, "stand-in", tuple(1.0 + 0.02 * rng.normal() + 0.001 * rng.normal(size=5)), 0, FP)
        for w in op_workloads(sp) for _ in range(5)
    ]
    table = build_table(records, sp)
    rep = table.metadata["repeatability"]
    assert rep == of_records(records).to_dict() and rep["method"] == "rounds" and rep["rounds"] == 5
    assert 0 < rep["ci95_median"] < 0.05
    table.save(tmp_path / "t.json")
    assert load_table(tmp_path / "t.json").metadata["repeatability"] == rep


class _Cache:  # no model export: the stand-in device runs nothing
    def __init__(self, *a, **k):
        pass

    def get(self, w, fmt):
        return w.key


class _Device:
    """Stand-in device: each run advances the fake machine; another process competes while ``busy`` is set."""

    artifact_format = "onnx"
    config = DeviceConfig(name="stand-in", backend="stand-in")

    def __init__(self, machine: FakeMachine, busy: bool, spread: float):
        self.machine, self.busy, self.spread = machine, busy, spread
        self.rng = np.random.default_rng(6)

    def fingerprint(self):
        return dict(FP)

    def environment(self):
        return {"device_note": "x"}

    def prepare(self, art):
        return art

    def run(self, h, runs, warmup=0):
        self.machine.tick(child=50, other=50 if self.busy else 0, idle=0 if self.busy else 50)
        level = 1 + self.spread * self.rng.normal()
        return [level * (1 + 0.001 * i) for i in range(runs)]

    def release(self, h):
        pass


def test_campaign_flags_busy_records_and_warns_on_poor_repeatability(tmp_path, machine, monkeypatch):
    monkeypatch.setattr(campaign, "ArtifactCache", _Cache)
    plan = Plan(warmup_runs=0, warmup_s=0, min_runs=3, max_runs=3, chunk=3, rounds=3, sentinel_every=0, target_ci=0.01)
    work = op_workloads(space("proxylessnas"))[:4]
    monitor = LoadMonitor("flag", proc=ProcFS(machine.root), root_pid=OURS)
    with Store(tmp_path / "s.sqlite") as st:
        with pytest.warns(HwprofWarning, match=r"repeatability .* worse than the target ±1%: the rounds disagree far"):
            rep = run_campaign(_Device(machine, busy=True, spread=0.2), work, st, plan, busy=monitor)
        assert len(rep.records) == 12 and all("busy" in m.flags for m in rep.records)
        assert all(m.environment["busy_other_cpu"] == "1.00" and m.environment["device_note"] == "x" for m in rep.records)
        assert len(rep.flagged["busy"]) == 12 and rep.repeatability.workloads == 4
        stored = list(st.iter_records())
        assert all(m.environment["busy_other_cpu"] == "1.00" for m in stored)


def test_quiet_campaign_has_no_busy_flag_and_no_warning(tmp_path, machine, monkeypatch):
    monkeypatch.setattr(campaign, "ArtifactCache", _Cache)
    plan = Plan(warmup_runs=0, warmup_s=0, min_runs=3, max_runs=3, chunk=3, rounds=3, sentinel_every=0, target_ci=0.05)
    work = op_workloads(space("proxylessnas"))[:4]
    clock = FakeClock(machine, busy_looks=0)
    monitor = LoadMonitor("wait", proc=ProcFS(machine.root), root_pid=OURS, sleep=clock.sleep, clock=clock.clock)
    with Store(tmp_path / "s.sqlite") as st, warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = run_campaign(_Device(machine, busy=False, spread=0.0), work, st, plan, busy=monitor)
    assert len(rep.records) == 12 and not any("busy" in m.flags for m in rep.records)
    assert clock.looks == 3  # one look before each of the 3 passes over the block
    assert rep.busy_waits == 0 and rep.repeatability.ci95_median < 0.05
    assert all(m.environment["busy_other_cpu"] == "0.00" for m in rep.records)


# -- command line --------------------------------------------------------------------------------------------------


def test_lut_build_prints_the_repeatability_and_measure_knows_busy(tmp_path):
    from typer.testing import CliRunner

    from hwprof.cli import app

    sp = space("proxylessnas")
    rng = np.random.default_rng(7)
    with Store(tmp_path / "s.sqlite") as st:
        for w in op_workloads(sp):
            for _ in range(3):
                st.add(Measurement("op", w.key, w.space, "stand-in", tuple(1.0 + 0.01 * rng.normal(size=5)), 0, FP))
    runner = CliRunner()
    res = runner.invoke(app, ["lut", "build", "--store", str(tmp_path / "s.sqlite"), "--device", "stand-in",
                              "--space", "proxylessnas", "-o", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    rep = load_table(tmp_path / "t.json").metadata["repeatability"]
    assert f"repeatability: ±{rep['ci95_median']:.2%}" in res.stdout and "3 round(s)" in res.stdout
    res = runner.invoke(app, ["measure", "--ops", "--busy", "sometimes", "--store", str(tmp_path / "x.sqlite")])
    assert res.exit_code != 0 and "wait" in res.output and "flag" in res.output


# -- extra rounds: busy rounds re-timed, disagreeing rounds extended ----------------------------------------------


class _SpellDevice(_Device):
    """Stand-in whose first ``busy_runs`` calls compete with another process (2× slower), and whose
    workloads listed in ``noisy`` spread by 20% from round to round (the others by nothing)."""

    def __init__(self, machine: FakeMachine, busy_runs: int = 0, noisy: tuple[str, ...] = ()):
        super().__init__(machine, busy=False, spread=0.0)
        self.busy_runs, self.noisy, self.calls = busy_runs, noisy, 0

    def run(self, h, runs, warmup=0):
        self.calls += 1
        self.busy = self.calls <= self.busy_runs
        self.spread = 0.2 if h in self.noisy else 0.0
        samples = super().run(h, runs, warmup)
        return [2 * x for x in samples] if self.busy else samples


def _wait_monitor(machine):
    clock = FakeClock(machine, busy_looks=0)
    return LoadMonitor("wait", proc=ProcFS(machine.root), root_pid=OURS, sleep=clock.sleep, clock=clock.clock)


EXTRA = Plan(warmup_runs=0, warmup_s=0, min_runs=3, max_runs=3, chunk=3, rounds=3, max_rounds=6, sentinel_every=0)


def test_rounds_timed_busy_are_retimed_and_left_out_of_the_table(tmp_path, machine, monkeypatch):
    from hwprof.measure.records import latencies_by_key

    monkeypatch.setattr(campaign, "ArtifactCache", _Cache)
    work = op_workloads(space("proxylessnas"))[:4]
    with Store(tmp_path / "s.sqlite") as st:
        rep = run_campaign(_SpellDevice(machine, busy_runs=2), work, st, EXTRA, busy=_wait_monitor(machine))
        busy = [m for m in rep.records if "busy" in m.flags]
        assert [m.key for m in busy] == [w.key for w in work[:2]]  # the first two calls, 2× slow
        assert rep.extra == {"busy": 2} and len(rep.records) == 14
        assert all(st.round_counts("stand-in", busy[0].fingerprint_hash)[("op", "", w.key)] == 3 + (i < 2)
                   for i, w in enumerate(work))
        # the slow rounds are kept in the store but not in the latency: every workload is at its quiet level
        assert all(v == pytest.approx(1.001) for v in latencies_by_key(st.iter_records()).values())
        again = run_campaign(_SpellDevice(machine), work, st, EXTRA, busy=_wait_monitor(machine))
        assert again.records == [] and again.skipped == 4  # a re-run finds every workload complete


def test_rounds_that_disagree_get_more_until_the_cap_and_a_rerun_spends_nothing_more(tmp_path, machine, monkeypatch):
    monkeypatch.setattr(campaign, "ArtifactCache", _Cache)
    work = op_workloads(space("proxylessnas"))[:4]
    noisy = work[1].key
    with Store(tmp_path / "s.sqlite") as st:
        rep = run_campaign(_SpellDevice(machine, noisy=(noisy,)), work, st, EXTRA, busy=_wait_monitor(machine))
        counts = {k: n for (_, _, k), n in st.round_counts("stand-in", rep.records[0].fingerprint_hash).items()}
        assert counts == {w.key: 6 if w.key == noisy else 3 for w in work}
        assert rep.extra == {"disagreeing": 3}
        assert run_campaign(_SpellDevice(machine, noisy=(noisy,)), work, st, EXTRA,
                            busy=_wait_monitor(machine)).records == []
        # raising the cap on a re-run spends the new budget on the workload that still disagrees, and only on it
        more = run_campaign(_SpellDevice(machine, noisy=(noisy,)), work, st, EXTRA.updated({"max_rounds": 8}),
                            busy=_wait_monitor(machine))
        assert {m.key for m in more.records} == {noisy} and len(more.records) == 2


def test_without_extra_rounds_busy_rounds_count_and_plans_check_the_cap(tmp_path, machine, monkeypatch):
    from hwprof.measure.records import usable_rounds

    monkeypatch.setattr(campaign, "ArtifactCache", _Cache)
    work = op_workloads(space("proxylessnas"))[:2]
    with Store(tmp_path / "s.sqlite") as st:
        rep = run_campaign(_SpellDevice(machine, busy_runs=2), work, st, EXTRA.updated({"max_rounds": 0}),
                           busy=_wait_monitor(machine))
    assert len(rep.records) == 6 and rep.extra == {}
    first = [m for m in rep.records if m.key == work[0].key]
    assert len(usable_rounds(first)) == 3 and "busy" in first[0].flags  # two quiet rounds are too few: all kept
    with pytest.raises(ConfigError, match="max_rounds .2. is below protocol.rounds .3."):
        EXTRA.updated({"max_rounds": 2})
    assert EXTRA.round_cap == 6 and EXTRA.updated({"max_rounds": 0}).round_cap == 3


def test_min_statistic_judges_by_the_halves_floors_and_keeps_busy_rounds():
    from hwprof.measure.repeatability import round_disagreement
    from hwprof.measure.records import usable_rounds

    # odd rounds find the floor 1.00, even rounds only 1.02: a re-measurement may differ by ~2%
    assert round_disagreement([1.00, 1.02, 1.05, 1.03], "min") == pytest.approx((1 - 1 / 1.02) / DIFF_PER_HALF_WIDTH)
    assert round_disagreement([1.0, 1.3, 1.0, 1.3], "median") == pytest.approx(MAD_TO_HALF_WIDTH * 0.15 / 2 / 1.15)
    rounds = {f"op{i}": [(1.0 + 0.001 * i, 1.2), (1.0 + 0.001 * i, 1.3), (1.1,), (1.25,)] for i in range(5)}
    rep = estimate(rounds, "min")
    assert rep.method == "halves" and rep.expected_diff_median == pytest.approx(0.0, abs=1e-9)
    busy = Measurement("op", "k", "", "stand-in", (2.0,), 0, FP, flags=("busy",))
    quiet = [Measurement("op", "k", "", "stand-in", (1.0,), 0, FP) for _ in range(3)]
    assert usable_rounds([busy, *quiet]) == quiet and usable_rounds([busy, *quiet], "min") == [busy, *quiet]


def test_the_store_keeps_the_campaigns_statistic_and_lut_build_reads_it(tmp_path, machine, monkeypatch):
    from typer.testing import CliRunner

    from hwprof.cli import app

    monkeypatch.setattr(campaign, "ArtifactCache", _Cache)
    sp = space("proxylessnas")
    plan = EXTRA.updated({"statistic": "min", "max_rounds": 0})
    with Store(tmp_path / "s.sqlite") as st:
        assert st.statistic("stand-in") == "median"  # nothing kept yet
        run_campaign(_SpellDevice(machine), op_workloads(sp), st, plan, busy=_wait_monitor(machine))
        assert st.statistic("stand-in") == "min"
    res = CliRunner().invoke(app, ["lut", "build", "--store", str(tmp_path / "s.sqlite"), "--device", "stand-in",
                                   "--space", "proxylessnas", "-o", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    table = load_table(tmp_path / "t.json")
    assert table.metadata["statistic"] == "min" and table.metadata["repeatability"]["method"] == "halves"
    assert set(table.entries.values()) == {1.0}  # the stand-in's runs are 1.000, 1.001, 1.002: the floor
