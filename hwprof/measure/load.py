"""Competing load on the measuring machine: is something else using the CPU?

A campaign on a local CPU is only as good as the machine is quiet. This
module reads, on Linux, from ``/proc`` and ``/sys``:

- **other processes' CPU time**: busy jiffies of ``/proc/stat`` minus the
  utime+stime of this process and its descendants (the measuring worker),
  over a window, in cores (1.0 = one core fully used by someone else);
- **steal time** (``/proc/stat``): a VM's share taken by its neighbours, in %;
- **load average** (``/proc/loadavg``) against the cores;
- **CPU frequency** (``scaling_cur_freq`` / ``cpuinfo_max_freq``) where readable.

Elsewhere (macOS, Windows, a container without ``/proc``) only what
:func:`os.getloadavg` gives is used, and nothing is read where nothing is
available: every figure is ``None`` when unknown, never a guess.

:class:`LoadMonitor` is what a campaign uses: :meth:`LoadMonitor.check`
before each pass (waits while busy in ``wait`` mode, bounded per wait and per
campaign), :meth:`LoadMonitor.record` after each record (what was seen while
it was timed, for its ``environment``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hwprof.errors import ConfigError, warn

#: ``--busy`` modes: wait while busy (bounded), only flag the records, or neither.
BUSY_MODES = ("wait", "flag", "ignore")

#: Other processes using more than this many cores make the machine busy (0.5: half a core).
BUSY_CORES = 0.5
#: Steal time above this share (%) makes a VM busy.
BUSY_STEAL_PCT = 10.0


class ProcFS:
    """Reader of ``/proc`` and ``/sys`` under ``root`` (``/`` on a real machine; a folder in tests)."""

    def __init__(self, root: str | Path = "/"):
        self.root = Path(root)

    def read(self, path: str) -> str | None:
        """Text of ``path`` (absolute, e.g. ``/proc/stat``) under the root; None when unreadable."""
        try:
            return (self.root / path.lstrip("/")).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def pids(self) -> list[int]:
        """Every process id listed in ``/proc``; empty when there is no ``/proc``."""
        try:
            return [int(p.name) for p in (self.root / "proc").iterdir() if p.name.isdigit()]
        except OSError:
            return []

    def glob(self, pattern: str) -> list[str]:
        """Absolute paths matching ``pattern`` (relative to the root), sorted."""
        return sorted("/" + str(p.relative_to(self.root)) for p in self.root.glob(pattern))


@dataclass(frozen=True)
class Snapshot:
    """Cumulative CPU counters at one moment (jiffies, summed over all CPUs).

    ``tree`` maps each pid of the watched process tree to its utime+stime.
    """

    total: int
    busy: int
    steal: int
    cpus: int
    tree: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    """What competed with the measurement over a window; None where unknown.

    Attributes
    ----------
    other_cpu : float or None
        Cores used by processes outside the watched tree (0 … ``cpus``).
    steal_pct : float or None
        Steal time in % of all CPU time (a VM's neighbours).
    loadavg_1m : float or None
        One-minute load average (runnable processes, ours included).
    cpus : int
        Cores of the machine.
    freq_ratio : float or None
        Mean current / maximum CPU frequency (1.0 = full speed).
    counted : bool
        Whether ``/proc/stat`` could be read (False elsewhere than Linux).
    """

    other_cpu: float | None
    steal_pct: float | None
    loadavg_1m: float | None
    cpus: int
    freq_ratio: float | None = None
    counted: bool = True

    def reasons(self, busy_cores: float = BUSY_CORES, busy_steal_pct: float = BUSY_STEAL_PCT) -> list[str]:
        """Why the machine counts as busy (empty when it does not), one phrase each."""
        out = []
        if self.other_cpu is not None and self.other_cpu > busy_cores:
            out.append(f"other processes use {self.other_cpu:.1f} of {self.cpus} cores")
        if self.steal_pct is not None and self.steal_pct > busy_steal_pct:
            out.append(f"the hypervisor steals {self.steal_pct:.0f}% of CPU time")
        # Without /proc the load average is all there is: busy when no core is left beside our one.
        if not self.counted and self.loadavg_1m is not None and self.loadavg_1m > self.cpus:
            out.append(f"load average {self.loadavg_1m:.1f} on {self.cpus} cores")
        return out

    def environment(self) -> dict[str, str]:
        """The figures known, as a record's ``environment`` entries."""
        env = {}
        if self.other_cpu is not None:
            env["busy_other_cpu"] = f"{self.other_cpu:.2f}"
        if self.steal_pct is not None:
            env["steal_pct"] = f"{self.steal_pct:.1f}"
        if self.loadavg_1m is not None:
            env["loadavg_1m"] = f"{self.loadavg_1m:.2f}"
        if self.freq_ratio is not None:
            env["cpu_freq_ratio"] = f"{self.freq_ratio:.3f}"
        return env


def _stat_fields(text: str) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and parentheses)."""
    return text.rpartition(")")[2].split()


def _cpu_jiffies(proc: ProcFS, pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime in jiffies) of ``pid``; None when it is gone or unreadable."""
    text = proc.read(f"/proc/{pid}/stat")
    if not text:
        return None
    f = _stat_fields(text)
    try:
        return int(f[1]), int(f[11]) + int(f[12])  # stat fields 4 (ppid), 14 (utime), 15 (stime)
    except (IndexError, ValueError):
        return None


def _children(proc: ProcFS, pid: int) -> list[int] | None:
    """Children of ``pid`` from ``/proc/<pid>/task/*/children``; None where the kernel does not expose them."""
    files = proc.glob(f"proc/{pid}/task/*/children")
    if not files:
        return None
    kids = []
    for path in files:
        kids += [int(x) for x in (proc.read(path) or "").split() if x.isdigit()]
    return kids


def process_tree(proc: ProcFS, root_pid: int) -> dict[int, int]:
    """utime+stime (jiffies) of ``root_pid`` and every descendant of it.

    Walks the ``children`` files where the kernel has them (a few reads), else
    scans every process's parent in ``/proc``.
    """
    tree: dict[int, int] = {}
    frontier = [root_pid]
    while frontier:
        pid = frontier.pop()
        got = _cpu_jiffies(proc, pid)
        kids = _children(proc, pid)
        if got is None:
            continue
        if kids is None:
            return _tree_by_scan(proc, root_pid)
        tree[pid] = got[1]
        frontier += [k for k in kids if k not in tree]
    return tree


def _tree_by_scan(proc: ProcFS, root_pid: int) -> dict[int, int]:
    parent: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for pid in proc.pids():
        got = _cpu_jiffies(proc, pid)
        if got is not None:
            parent[pid], cpu[pid] = got
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        p = frontier.pop()
        for child, par in parent.items():
            if par == p and child not in tree:
                tree.add(child)
                frontier.append(child)
    return {p: cpu[p] for p in tree if p in cpu}


def snapshot(proc: ProcFS, root_pid: int) -> Snapshot | None:
    """Counters now; None when ``/proc/stat`` cannot be read (not Linux)."""
    text = proc.read("/proc/stat")
    if not text:
        return None
    agg, cpus = None, 0
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            agg = [int(x) for x in parts[1:]]
        elif parts and parts[0].startswith("cpu") and parts[0][3:].isdigit():
            cpus += 1
    if agg is None or len(agg) < 4:
        return None
    agg += [0] * (8 - len(agg))
    user, nice, system, idle, iowait, irq, softirq, steal = agg[:8]  # guest time is inside user already
    busy = user + nice + system + irq + softirq
    return Snapshot(busy + idle + iowait + steal, busy, steal, max(cpus, 1), process_tree(proc, root_pid))


def load_between(a: Snapshot, b: Snapshot, loadavg_1m: float | None = None, freq_ratio: float | None = None) -> Load:
    """The :class:`Load` of the window from ``a`` to ``b``; other_cpu None when no clock tick passed."""
    dt = b.total - a.total
    if dt <= 0:
        return Load(None, None, loadavg_1m, b.cpus, freq_ratio)
    # A process of the tree that started inside the window counts whole; one that ended in it is lost (small).
    ours = sum(v - a.tree.get(pid, 0) for pid, v in b.tree.items())
    other = max(0.0, (b.busy - a.busy - ours) / dt * b.cpus)
    return Load(min(other, float(b.cpus)), 100.0 * (b.steal - a.steal) / dt, loadavg_1m, b.cpus, freq_ratio)


def read_loadavg(proc: ProcFS) -> float | None:
    """One-minute load average from ``/proc/loadavg``, else :func:`os.getloadavg`, else None."""
    text = proc.read("/proc/loadavg")
    if text:
        try:
            return float(text.split()[0])
        except (IndexError, ValueError):
            pass
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def read_freq_ratio(proc: ProcFS) -> float | None:
    """Mean ``scaling_cur_freq / cpuinfo_max_freq`` over the CPUs that expose both; None when none does."""
    ratios = []
    for cur_path in proc.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"):
        cur, top = proc.read(cur_path), proc.read(cur_path.replace("scaling_cur_freq", "cpuinfo_max_freq"))
        try:
            if cur and top and float(top) > 0:
                ratios.append(float(cur) / float(top))
        except ValueError:
            continue
    return sum(ratios) / len(ratios) if ratios else None


class LoadMonitor:
    """Watches competing load for a campaign and waits while the machine is busy.

    Parameters
    ----------
    mode : {"wait", "flag", "ignore"}
        ``wait``: before a pass, wait while busy (at most ``max_wait_s`` per
        wait and ``total_wait_s`` per campaign, then go on as ``flag``);
        ``flag``: never wait, flag records timed while busy ``busy``;
        ``ignore``: never wait nor flag (figures are still recorded).
    busy_cores : float
        Other processes' cores above which the machine is busy.
    busy_steal_pct : float
        Steal time (%) above which the machine is busy.
    max_wait_s, total_wait_s : float
        Longest single wait and longest total wait of the campaign (s).
    poll_s : float
        Window of one look while checking or waiting (s).
    proc : ProcFS, optional
        Where ``/proc`` is read (a fake root in tests).
    root_pid : int, optional
        The process tree that is not competition (default: this process).
    sleep, clock : callable
        ``time.sleep`` and ``time.monotonic`` (replaced in tests).
    """

    def __init__(
        self,
        mode: str = "wait",
        *,
        busy_cores: float = BUSY_CORES,
        busy_steal_pct: float = BUSY_STEAL_PCT,
        max_wait_s: float = 60.0,
        total_wait_s: float = 300.0,
        poll_s: float = 0.5,
        proc: ProcFS | None = None,
        root_pid: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in BUSY_MODES:
            raise ConfigError(f"--busy={mode!r}; allowed: {', '.join(BUSY_MODES)}")
        self.mode = mode
        self.busy_cores = busy_cores
        self.busy_steal_pct = busy_steal_pct
        self.max_wait_s = max_wait_s
        self.total_wait_s = total_wait_s
        self.poll_s = poll_s
        self.proc = proc or ProcFS()
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self.sleep = sleep
        self.clock = clock
        self.waited_s_ = 0.0
        self.waits_ = 0
        self.seen_: list[Load] = []
        self._last = snapshot(self.proc, self.root_pid)

    def _since_last(self) -> Load:
        now = snapshot(self.proc, self.root_pid)
        loadavg, freq = read_loadavg(self.proc), read_freq_ratio(self.proc)
        if now is None or self._last is None:
            self._last = now
            return Load(None, None, loadavg, os.cpu_count() or 1, freq, counted=False)
        load = load_between(self._last, now, loadavg, freq)
        if load.other_cpu is not None:  # else no clock tick passed: keep counting from the older snapshot
            self._last = now
        return load

    def look(self) -> Load:
        """The load over a fresh window of ``poll_s`` seconds."""
        self._since_last()
        self.sleep(self.poll_s)
        return self._since_last()

    def check(self, where: str = "") -> Load | None:
        """Before a pass: in ``wait`` mode, wait while busy (bounded), saying why; returns the last look.

        Other modes return None at once (the records carry what was seen).
        """
        if self.mode != "wait":
            return None
        load = self.look()
        reasons = load.reasons(self.busy_cores, self.busy_steal_pct)
        if not reasons:
            return load
        budget = min(self.max_wait_s, self.total_wait_s - self.waited_s_)
        if budget <= 0:
            return load
        warn(
            f"machine busy{' ' + where if where else ''}: {'; '.join(reasons)}; waiting up to {budget:.0f} s "
            f"for it to calm down (--busy=flag to go on at once, --busy=ignore to not watch)"
        )
        self.waits_ += 1
        start = self.clock()
        while reasons and self.clock() - start < budget:
            load = self.look()
            reasons = load.reasons(self.busy_cores, self.busy_steal_pct)
        self.waited_s_ += self.clock() - start
        if reasons:
            warn(
                f"still busy after {self.clock() - start:.0f} s ({'; '.join(reasons)}); going on, and records timed "
                "while busy are flagged 'busy': stop the other programs and re-measure them for a trustworthy table"
            )
        return load

    def record(self) -> tuple[dict[str, str], bool]:
        """After a record: what was seen while it was timed, and whether that counts as busy.

        Returns
        -------
        environment : dict of str to str
            ``busy_other_cpu``, ``steal_pct``, ``loadavg_1m``, ``cpu_freq_ratio`` where known.
        busy : bool
            True when the record should carry the ``busy`` flag (never in ``ignore`` mode).
        """
        load = self._since_last()
        self.seen_.append(load)
        busy = self.mode != "ignore" and bool(load.reasons(self.busy_cores, self.busy_steal_pct))
        return load.environment(), busy
