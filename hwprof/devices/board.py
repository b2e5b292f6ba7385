"""Linux boards over SSH (Jetson and the like), timed by TensorRT's ``trtexec`` on the board.

The host exports each workload to ONNX and, unless the board already holds
its engine, pushes it into a per-campaign folder (``remote_dir/<device>-<time>-<pid>``,
relative paths are under the login's home) and builds an engine there with
``trtexec --onnx ... --saveEngine ... --skipInference``. Engines are cached in
``engine_cache`` on the board under ``<artifact sha256>-trt<version>-<board>-<precision>.engine``,
so a re-run, or the next round, never rebuilds them. Timed runs are
``trtexec --loadEngine`` invocations with exact counts (see
:mod:`hwprof.devices.trtexec`): each invocation warms up for ``warmup_ms``,
then times ``runs`` queries; the samples are the GPU compute time of each
query from ``--exportTimes`` (falling back to the ``Average on 1 runs`` lines
when the file is missing), host-to-device copies left out (``--noDataTransfers``).
Every record's environment says which (``sample_source``).

**Power.** With ``power = "tegrastats"`` each timed invocation runs
``tegrastats --interval <power_interval_ms>`` beside it; the mean board input
power of those lines (:mod:`hwprof.devices.tegrastats`; the rule per module
is recorded) over the workload's timed invocations is ``power_w`` in its
environment. The window is the whole ``trtexec`` process: loading a cached
engine is part of it, so keep ``runs`` per invocation large enough that
inference dominates (the protocol's ``chunk``).

**Link failures** (board rebooting, Wi-Fi gone): every SSH operation is
retried ``retries`` times with exponential back-off from
``retry_backoff_s``; then a :class:`DeviceError` stops the campaign with every
finished record kept, and re-running the command resumes. Every argument is
quoted with :func:`shlex.quote`.

Backend options (``[backend]`` in the device TOML; all optional except ``host``):

=====================  ==========================================================
host                   host name or ``~/.ssh/config`` alias
user, port, key        override the SSH config's ``User``, ``Port``, ``IdentityFile``
ssh_options            extra ``ssh -o`` options (list of ``Key=Value``)
ssh                    the ssh client executable (default ``ssh``)
remote_dir             parent of the campaign folders (default ``hwprof-runs`` in home)
engine_cache           engine folder on the board (default ``.cache/hwprof/engines``)
trtexec                trtexec on the board (default ``/usr/src/tensorrt/bin/trtexec``)
precision              ``fp32`` (default) or ``fp16`` (``--fp16``)
trtexec_args           more trtexec flags for timing (list)
warmup_ms              trtexec ``--warmUp`` of every invocation (ms)
export_times           use ``--exportTimes`` (default true)
power                  ``tegrastats`` or ``none``
tegrastats             tegrastats on the board (default ``tegrastats``)
power_interval_ms      tegrastats ``--interval``
retries                attempts per SSH operation
retry_backoff_s        first back-off; doubles per attempt, capped at 30 s
connect_timeout_s      SSH ``ConnectTimeout``
command_timeout_s      cap on one remote command
=====================  ==========================================================
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwprof.artifacts.record import Artifact
from hwprof.devices import HWPROF_SERIES, DeviceConfig
from hwprof.devices import tegrastats, trtexec
from hwprof.devices.adb_transport import TransportError
from hwprof.devices.ssh_transport import SshTransport
from hwprof.devices.remote import RemoteShell
from hwprof.errors import ConfigError, DeviceError, MeasurementError, unknown_keys, warn


DEFAULTS: dict[str, Any] = {
    "host": "",
    "user": "",
    "port": 0,
    "key": "",
    "ssh_options": [],
    "ssh": "ssh",
    "remote_dir": "hwprof-runs",
    "engine_cache": ".cache/hwprof/engines",
    "trtexec": "/usr/src/tensorrt/bin/trtexec",
    "precision": "fp32",
    "trtexec_args": [],
    "warmup_ms": 200.0,
    "export_times": True,
    "power": "tegrastats",
    "tegrastats": "tegrastats",
    "power_interval_ms": 100,
    "retries": 5,
    "retry_backoff_s": 1.0,
    "connect_timeout_s": 10.0,
    "command_timeout_s": 600.0,
}
TUNING = ("nvpmodel", "jetson_clocks", "use_sudo")
_TIMES_MARK = "__HWPROF_EXPORT_TIMES__"
_POWER_MARK = "__HWPROF_TEGRASTATS__"


def _options(config: DeviceConfig) -> dict[str, Any]:
    where = f"{config.path}: " if config.path else ""
    unknown_keys(where, "backend", config.options, DEFAULTS)
    opts = dict(DEFAULTS)
    for key, value in config.options.items():
        want = type(DEFAULTS[key])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise ConfigError(f"{where}backend.{key} must be a {want.__name__}, got {value!r}")
        opts[key] = value
    if not opts["host"]:
        raise ConfigError(f"{where}backend.host is required: a host name or a Host alias of ~/.ssh/config")
    if opts["precision"] not in ("fp32", "fp16"):
        raise ConfigError(f"{where}backend.precision must be fp32 or fp16, got {opts['precision']!r}")
    if opts["power"] not in ("tegrastats", "none"):
        raise ConfigError(f"{where}backend.power must be tegrastats or none, got {opts['power']!r}")
    for key in ("remote_dir", "engine_cache"):
        if not opts[key] or ".." in opts[key].split("/"):
            raise ConfigError(f"{where}backend.{key} must be a folder without '..', got {opts[key]!r}")
    for key in ("ssh_options", "trtexec_args"):
        if not all(isinstance(a, str) for a in opts[key]):
            raise ConfigError(f"{where}backend.{key} must be a list of strings")
    if opts["retries"] < 1:
        raise ConfigError(f"{where}backend.retries must be at least 1")
    return opts


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:48] or "board"


@dataclass(frozen=True)
class BoardModel:
    """An engine on the board: the artifact it was built from and its path there."""

    key: str
    engine: str
    sha256: str


class BoardDevice(RemoteShell):
    """A Linux board reached over SSH, running TensorRT's trtexec (see the module docstring)."""

    REMOTE = "board"

    artifact_format = "onnx"
    OPTIONS: tuple[str, ...] = tuple(DEFAULTS)
    TUNING: tuple[str, ...] = TUNING

    def __init__(self, config: DeviceConfig):
        self.config = config
        self.opts = _options(config)
        self._transport: SshTransport | None = None
        self._session: str | None = None
        self._fingerprint: dict[str, str] | None = None
        self._watts: list[float] = []
        self._power_rule = ""
        self._power_s = 0.0
        self._sample_source = ""

    # ------------------------------------------------------------------ SSH plumbing
    def _t(self) -> SshTransport:
        if self._transport is None:
            o = self.opts
            self._transport = SshTransport(o["host"], o["user"], o["port"], o["key"], o["ssh_options"], o["ssh"],
                                           o["connect_timeout_s"])
        return self._transport

    def _where(self) -> tuple[str, str]:
        return self.opts["host"], f"the board and `ssh {self.opts['host']}`"

    def _session_dir(self) -> str:
        if self._session is None:
            name = _slug(f"{self.config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            session = posixpath.join(self.opts["remote_dir"], name)
            q = shlex.quote(session)
            res = self._shell(f"mkdir -p {q} {shlex.quote(self.opts['engine_cache'])}", "creating the campaign folder")
            if res.returncode != 0:
                raise DeviceError(f"{self.config.name}: cannot create {session} on the board: {res.output.strip()[-200:]}")
            self._session = session
        return self._session

    # ------------------------------------------------------------------ board state
    def _probe(self) -> dict[str, str]:
        o = self.opts
        cmd = (
            "echo model=$(tr -d '\\0' < /proc/device-tree/model 2>/dev/null || uname -n); "
            "echo arch=$(uname -m); "
            "echo l4t=$(head -n 1 /etc/nv_tegra_release 2>/dev/null); "
            "echo power_mode=$(nvpmodel -q 2>/dev/null | head -n 1); "
            f"echo trt=$({shlex.quote(o['trtexec'])} --help 2>&1 | grep -m 1 'TensorRT.trtexec')"
        )
        res = self._shell(cmd, "reading the board's identity")
        info = {}
        for line in res.output.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                info[key.strip()] = value.strip()
        return info

    def fingerprint(self) -> dict[str, str]:
        """Identity: board model, L4T release, TensorRT version, precision, power mode."""
        if self._fingerprint is None:
            info = self._probe()
            run = trtexec.parse(info.get("trt", ""))
            if not run.version:
                raise DeviceError(
                    f"{self.config.name}: no trtexec at {self.opts['trtexec']} on {self.opts['host']} (it printed "
                    f"{info.get('trt', '')[:80]!r}); install TensorRT (JetPack has it in /usr/src/tensorrt/bin) or set "
                    "backend.trtexec"
                )
            self._fingerprint = {
                "device": self.config.name,
                "backend": self.config.backend,
                "runtime": "tensorrt-trtexec",
                "runtime_version": run.version,
                "threads": str(self.config.threads),
                "batch": str(self.config.batch),
                "cpu": f"{info.get('model', '') or 'unknown board'} ({info.get('arch', '')})",
                "hwprof_version": HWPROF_SERIES,
                "l4t": info.get("l4t", ""),
                "power_mode": info.get("power_mode", "") or "unknown (no nvpmodel)",
                "precision": self.opts["precision"],
                "sample": "GPU compute time per query (trtexec, no host-device copies)",
            }
        return dict(self._fingerprint)

    def environment(self) -> dict[str, str]:
        """Volatile state of the last workload: sample source and mean board power over its timed runs."""
        env = {"host": self.opts["host"]}
        if self._sample_source:
            env["sample_source"] = self._sample_source
        if self._watts:
            env["power_w"] = f"{sum(self._watts) / len(self._watts):.4g}"
            env["power_source"] = f"tegrastats:{self._power_rule}"
            env["power_lines"] = str(len(self._watts))
        return env

    # ------------------------------------------------------------------ Device protocol
    def _engine_path(self, artifact: Artifact) -> str:
        fp = self.fingerprint()
        name = f"{artifact.sha256[:16]}-trt{fp['runtime_version']}-{_slug(fp['cpu'])}-{self.opts['precision']}.engine"
        return posixpath.join(self.opts["engine_cache"], name)

    def prepare(self, artifact: Artifact) -> BoardModel:
        """Make sure the board holds the artifact's engine (push the ONNX file and build it when not)."""
        if artifact.format != self.artifact_format:
            raise MeasurementError(f"{self.config.name} runs onnx files, not {artifact.format} ({artifact.path})")
        self._watts, self._power_rule, self._sample_source = [], "", ""
        engine = self._engine_path(artifact)
        present = self._shell(f"test -s {shlex.quote(engine)} && echo cached", "looking up the engine cache")
        if "cached" not in present.output:
            local = Path(artifact.path)
            remote = posixpath.join(self._session_dir(), local.name)
            self._retry(f"pushing {local.name}", lambda: self._t().push(local, remote))
            cmd = trtexec.build_command(self.opts["trtexec"], remote, engine, self.opts["precision"] == "fp16")
            res = self._shell(cmd, f"building the engine of {artifact.name}")
            if res.returncode != 0 or "&&&& PASSED" not in res.output:
                raise MeasurementError(f"trtexec could not build an engine for {artifact.name}: "
                                       f"{trtexec.failure(res.output) or res.output.strip()[-300:]}")
            self._shell(f"rm -f {shlex.quote(remote)}", "removing the pushed model")
        return BoardModel(artifact.name, engine, artifact.sha256)

    def run(self, prepared: BoardModel, runs: int, warmup: int = 0) -> list[float]:
        """``runs`` timed queries in ms, one trtexec invocation (a ``runs = 0`` call is a warm-up invocation)."""
        if runs <= 0:
            if warmup > 0:
                self._invoke(prepared, warmup, timed=False)
            return []
        out = self._invoke(prepared, runs, timed=True)
        if out.runs_per_sample != 1 or len(out.samples_ms) < runs:
            raise MeasurementError(
                f"trtexec returned {len(out.samples_ms)} samples (means of {out.runs_per_sample}) for --iterations={runs} "
                f"on {prepared.key}: this trtexec ignores --duration=0/--avgRuns=1; use TensorRT 8 or later"
            )
        self._sample_source = out.source
        return list(out.samples_ms[:runs])

    def _invoke(self, model: BoardModel, iterations: int, timed: bool) -> trtexec.TrtexecRun:
        o = self.opts
        session = self._session_dir()
        times = posixpath.join(session, "times.json") if o["export_times"] else ""
        cmd = trtexec.time_command(o["trtexec"], model.engine, iterations, o["warmup_ms"] if timed else 0.0, times,
                                   o["trtexec_args"])
        power = timed and o["power"] == "tegrastats"
        if times:
            cmd = f"rm -f {shlex.quote(times)}; {cmd}"
        if power:
            log = shlex.quote(posixpath.join(session, "tegrastats.log"))
            ts = f"{shlex.quote(o['tegrastats'])} --interval {int(o['power_interval_ms'])}"
            cmd = (f"{ts} > {log} 2>&1 & tp=$!; {cmd}; rc=$?; kill $tp 2>/dev/null; wait $tp 2>/dev/null; "
                   f"echo {_POWER_MARK}; cat {log}; (exit $rc)")
        if times:
            cmd = f"{cmd}; rc=$?; echo {_TIMES_MARK}; cat {shlex.quote(times)} 2>/dev/null; (exit $rc)"
        res = self._shell(cmd, f"trtexec on {model.key}", o["command_timeout_s"] + 30)
        text, _, exported = res.output.partition(f"{_TIMES_MARK}\n") if times else (res.output, "", "")
        text, _, power_log = text.partition(f"{_POWER_MARK}\n")
        if res.returncode != 0 or "&&&& FAILED" in text:
            raise MeasurementError(f"trtexec exited with status {res.returncode} on {model.key}: "
                                   f"{trtexec.failure(text) or text.strip()[-300:]}")
        run = trtexec.parse(text, exported if exported.strip() else None)
        if power:
            readings = tegrastats.parse(power_log)
            if readings:
                watts, rule = tegrastats.mean_input_w(readings)
                if self._power_rule and rule != self._power_rule:
                    raise MeasurementError(f"tegrastats rails changed between invocations ({self._power_rule} → {rule})")
                self._watts.append(watts)
                self._power_rule = rule
            else:
                warn(f"{self.config.name}: tegrastats printed no power line during {model.key} "
                     f"({power_log.strip()[-120:]!r}); the record has no power")
        return run

    def release(self, prepared: BoardModel) -> None:
        """Nothing to free: the engine stays in the cache for the next round or campaign."""

    # ------------------------------------------------------------------ CLI extras
    def status(self) -> str:
        """One line for ``hwprof devices``: reachable (board model) or why not."""
        try:
            res = self._t().shell("tr -d '\\0' < /proc/device-tree/model 2>/dev/null || uname -n", self.opts["connect_timeout_s"] + 5)
        except (TransportError, DeviceError) as exc:
            return f"unreachable: {str(exc)[:80]}"
        return f"reachable: {res.output.strip()[:40]}"

    def describe(self) -> dict[str, str]:
        """Board model, L4T, TensorRT, power mode, and the SSH route."""
        fp = self.fingerprint()
        return {
            "ssh": f"{self.opts['user'] + '@' if self.opts['user'] else ''}{self.opts['host']}"
                   + (f":{self.opts['port']}" if self.opts["port"] else ""),
            "board": fp["cpu"],
            "L4T": fp["l4t"] or "unknown",
            "TensorRT (trtexec)": f"{fp['runtime_version']} ({self.opts['trtexec']})",
            "precision / batch": f"{fp['precision']} / {fp['batch']}",
            "power mode": fp["power_mode"],
            "power meter": self.opts["power"],
            "engine cache": self.opts["engine_cache"],
            "config": str(self.config.path or ""),
        }

    def tune(self) -> list[str]:
        """``nvpmodel -m <mode>`` and ``jetson_clocks`` where allowed; says what could not be done and why.

        ``[tuning]`` keys: ``nvpmodel`` (mode number; absent: leave the mode),
        ``jetson_clocks`` (default true), ``use_sudo`` (run through ``sudo -n``;
        default true: both tools need root).
        """
        t = self.config.tuning
        sudo = "sudo -n " if t.get("use_sudo", True) else ""
        lines = []
        if "nvpmodel" in t:
            mode = int(t["nvpmodel"])
            res = self._shell(f"{sudo}nvpmodel -m {mode} && nvpmodel -q | head -n 1", "setting the power mode")
            lines.append(f"power mode: {res.output.strip().splitlines()[-1]}" if res.returncode == 0 else
                         f"power mode not set (nvpmodel -m {mode}): {_why(res.output)}")
        else:
            lines.append("power mode: left as is ([tuning] nvpmodel = N sets it)")
        if t.get("jetson_clocks", True):
            res = self._shell(f"{sudo}jetson_clocks", "locking the clocks")
            lines.append("clocks: locked at their maximum (jetson_clocks)" if res.returncode == 0 else
                         f"clocks not locked (jetson_clocks): {_why(res.output)}")
        self._fingerprint = None  # the power mode is part of it
        lines.append(f"fingerprint power mode now: {self.fingerprint()['power_mode']}")
        return lines


def _why(output: str) -> str:
    text = output.strip()
    if "password is required" in text or "a terminal is required" in text:
        return "needs root: allow it in sudoers without a password (NOPASSWD) or run as root"
    if "not found" in text:
        return "not installed on this board (not a Jetson, or JetPack without it)"
    return text.splitlines()[-1][:160] if text else "failed without a message"


__all__ = ["DEFAULTS", "BoardDevice", "BoardModel"]
