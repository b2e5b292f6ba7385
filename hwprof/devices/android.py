"""Android phones over adb, timed by TFLite's stock ``benchmark_model``.

The host exports each workload to ``.tflite``, pushes it into a per-campaign
folder under ``/data/local/tmp/hwprof/`` and runs the ``benchmark_model``
binary already on the phone (or pushed from ``backend.push_benchmark``), one
model per invocation::

    taskset <affinity> <benchmark_binary> --graph=<model> --num_threads=<threads>
        --warmup_runs=<w> --warmup_min_secs=0 --num_runs=<n> --min_secs=0
        --max_secs=<cap> <delegate flags> <extra_args>

Every argument is quoted with :func:`shlex.quote`, so a path with spaces or
``;`` cannot inject a command.

**Samples.** ``benchmark_model`` prints statistics, never the list of runs.
The individual runs are determined by its statistics line only for up to
three runs (``first``, ``curr``, and the middle one from the mean; see
:meth:`hwprof.devices.benchmark_model.RunStats.runs_ms`). So a request for ``k``
timed runs makes ``ceil(k / runs_per_invocation)`` invocations of at most
``runs_per_invocation`` (default 3) timed runs each, after
``invocation_warmup`` (default 2) untimed runs in the same process. The
samples are genuine single runs, and they include the run-to-run variation of
separate processes (memory placement, frequency), which a single long
invocation hides. With ``runs_per_invocation`` above 3, each invocation's
mean becomes one sample (the fingerprint records which). A protocol warm-up
request (``runs=0``) is one invocation with that many warm-up runs.

**Conditions.** Before each model: wait ``cooldown_s`` since the previous one
ended, then, while the hottest selected thermal zone is above ``max_temp_c``,
wait (polling every ``poll_s``, at most ``cool_wait_s``; then a
:class:`DeviceError`). Temperatures before the model and after it are stored
in each record's environment.

**Link failures** (cable pulled, adb server restarted, phone rebooting):
every adb operation is retried ``retries`` times with exponential back-off
from ``retry_backoff_s``; then a :class:`DeviceError` stops the campaign
with every finished record kept, and re-running the command resumes.

Backend options (``[backend]`` in the device TOML; all optional):

=====================  ==========================================================
serial                 adb serial; else ``$ANDROID_SERIAL``; else the only attached phone
adb_host, adb_port     adb server (default 127.0.0.1, ``$ANDROID_ADB_SERVER_PORT`` or 5037)
client                 ``adbutils`` (default) or ``adb`` (the platform-tools client)
adb_path               the ``adb`` executable for ``client = "adb"``
benchmark_binary       path on the phone (default ``/data/local/tmp/benchmark_model``)
push_benchmark         host path of a ``benchmark_model`` to push there when missing/different
remote_dir             parent of the campaign folders (default ``/data/local/tmp/hwprof``)
affinity               ``taskset`` mask in hex (``"f0"``: cores 4-7); empty: no taskset
delegate               ``cpu`` (``--use_xnnpack=false``), ``xnnpack``, ``gpu``, ``nnapi``, ``default``
runs_per_invocation    timed runs per invocation (1-3: per-run samples; more: means)
invocation_warmup      untimed runs at the start of every invocation
extra_args             list of extra ``benchmark_model`` flags
cooldown_s             pause between models
max_temp_c             pause while hotter than this (°C)
cool_wait_s, poll_s    bound and period of that pause
thermal_types          substrings of thermal-zone types to watch (default cpu, tsens, soc)
retries                attempts per adb operation
retry_backoff_s        first back-off; doubles per attempt, capped at 30 s
command_timeout_s      cap on one shell command
=====================  ==========================================================
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwprof.devices.benchmark_model import MAX_RECOVERABLE_RUNS, parse
from hwprof.artifacts.record import Artifact
from hwprof.devices import HWPROF_SERIES, DeviceConfig
from hwprof.devices.adb_transport import CLIENTS, TransportError, list_devices, open_transport
from hwprof.devices.remote import RemoteShell
from hwprof.errors import ConfigError, DeviceError, MeasurementError, warn


DELEGATE_FLAGS: dict[str, tuple[str, ...]] = {
    "cpu": ("--use_xnnpack=false",),
    "xnnpack": ("--use_xnnpack=true",),
    "gpu": ("--use_gpu=true",),
    "nnapi": ("--use_nnapi=true",),
    "default": (),
}

DEFAULTS: dict[str, Any] = {
    "serial": "",
    "adb_host": "127.0.0.1",
    "adb_port": 0,  # 0: $ANDROID_ADB_SERVER_PORT or 5037
    "client": "adbutils",
    "adb_path": "adb",
    "benchmark_binary": "/data/local/tmp/benchmark_model",
    "push_benchmark": "",
    "remote_dir": "/data/local/tmp/hwprof",
    "affinity": "",
    "delegate": "cpu",
    "runs_per_invocation": MAX_RECOVERABLE_RUNS,
    "invocation_warmup": 2,
    "extra_args": [],
    "cooldown_s": 0.0,
    "max_temp_c": 0.0,  # 0: no temperature limit
    "cool_wait_s": 300.0,
    "poll_s": 5.0,
    "thermal_types": ["cpu", "tsens", "soc"],
    "retries": 5,
    "retry_backoff_s": 1.0,
    "command_timeout_s": 600.0,
}

_PROPS = (
    "ro.product.manufacturer",
    "ro.product.model",
    "ro.board.platform",
    "ro.hardware",
    "ro.soc.model",
    "ro.build.fingerprint",
    "ro.build.version.release",
)


@dataclass(frozen=True)
class PushedModel:
    """A model on the phone: its host file and its path under the campaign folder."""

    key: str
    local: Path
    remote: str


def _options(config: DeviceConfig) -> dict[str, Any]:
    opts = dict(DEFAULTS)
    unknown = sorted(set(config.options) - set(DEFAULTS))
    where = f"{config.path}: " if config.path else ""
    if unknown:
        raise ConfigError(f"{where}unknown [backend] option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    for key, value in config.options.items():
        want = type(DEFAULTS[key])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or isinstance(value, bool):
            raise ConfigError(f"{where}backend.{key} must be a {want.__name__}, got {value!r}")
        opts[key] = value
    if opts["client"] not in CLIENTS:
        raise ConfigError(f"{where}backend.client must be one of {', '.join(CLIENTS)}, got {opts['client']!r}")
    if opts["delegate"] not in DELEGATE_FLAGS:
        raise ConfigError(f"{where}backend.delegate must be one of {', '.join(DELEGATE_FLAGS)}, got {opts['delegate']!r}")
    if opts["affinity"] and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", opts["affinity"]):
        raise ConfigError(f"{where}backend.affinity must be a hex CPU mask like \"f0\", got {opts['affinity']!r}")
    for key in ("runs_per_invocation", "retries"):
        if opts[key] < 1:
            raise ConfigError(f"{where}backend.{key} must be at least 1, got {opts[key]}")
    for key in ("remote_dir", "benchmark_binary"):
        p = opts[key]
        if not p.startswith("/") or ".." in p.split("/"):
            raise ConfigError(f"{where}backend.{key} must be an absolute path on the phone without '..', got {p!r}")
    if not all(isinstance(a, str) for a in opts["extra_args"]):
        raise ConfigError(f"{where}backend.extra_args must be a list of strings")
    return opts


def benchmark_command(
    binary: str,
    graph: str,
    threads: int,
    runs: int,
    warmup: int,
    affinity: str = "",
    delegate: str = "cpu",
    extra_args: tuple[str, ...] | list[str] = (),
    max_secs: float = 150.0,
) -> str:
    """The shell command of one ``benchmark_model`` invocation; every argument quoted.

    ``--min_secs=0`` and ``--warmup_min_secs=0`` make the counts exact (the
    tool otherwise keeps running for a minimum time).
    """
    argv = [] if not affinity else ["taskset", affinity]
    argv += [
        binary,
        f"--graph={graph}",
        f"--num_threads={threads}",
        f"--warmup_runs={warmup}",
        "--warmup_min_secs=0",
        f"--num_runs={runs}",
        "--min_secs=0",
        f"--max_secs={max_secs:g}",
        *DELEGATE_FLAGS[delegate],
        *extra_args,
    ]
    return " ".join(shlex.quote(a) for a in argv)


class AndroidDevice(RemoteShell):
    """An Android phone reached through adb (see the module docstring).

    Parameters
    ----------
    config : DeviceConfig
        The device config; ``config.options`` is its ``[backend]`` table.
    """

    REMOTE = "phone"

    artifact_format = "tflite"
    #: Keys of ``[backend]`` and ``[tuning]`` this backend reads (see :meth:`tune`).
    OPTIONS: tuple[str, ...] = tuple(DEFAULTS)
    TUNING: tuple[str, ...] = ("governor", "cores", "use_su")

    def __init__(self, config: DeviceConfig):
        self.config = config
        self.opts = _options(config)
        self.host: str = self.opts["adb_host"]
        self.port: int = self.opts["adb_port"] or int(os.environ.get("ANDROID_ADB_SERVER_PORT", "5037"))
        self._transport = None
        self._serial: str | None = None
        self._session: str | None = None
        self._fingerprint: dict[str, str] | None = None
        self._last_end = 0.0
        self._temps_before: dict[str, float] = {}

    # ------------------------------------------------------------------ adb plumbing
    def _resolve_serial(self) -> str:
        serial = self.opts["serial"] or os.environ.get("ANDROID_SERIAL", "")
        if serial:
            return serial
        try:
            attached = [s for s, state in list_devices(self.host, self.port) if state == "device"]
        except TransportError as exc:
            raise DeviceError(f"{self.config.name}: {exc}; start it with `adb start-server` and check `adb devices`") from None
        if len(attached) == 1:
            return attached[0]
        if not attached:
            raise DeviceError(
                f"{self.config.name}: no phone attached to the adb server at {self.host}:{self.port}; "
                "connect it with USB debugging on (or `adb connect IP:PORT`) and check `adb devices`"
            )
        raise DeviceError(
            f"{self.config.name}: several phones attached ({', '.join(attached)}); choose one with "
            "backend.serial in the device config or ANDROID_SERIAL"
        )

    @property
    def serial(self) -> str:
        """The adb serial this device talks to."""
        if self._serial is None:
            self._serial = self._resolve_serial()
        return self._serial

    def _t(self):
        if self._transport is None:
            self._transport = open_transport(self.opts["client"], self.host, self.port, self.serial, self.opts["adb_path"])
        return self._transport

    def _where(self) -> tuple[str, str]:
        return self.serial, "the cable and `adb devices`"

    # ------------------------------------------------------------------ phone state
    def _props(self) -> dict[str, str]:
        cmd = "; ".join(f"echo {p}=$(getprop {p})" for p in _PROPS)
        res = self._shell(cmd, "reading getprop")
        props = {}
        for line in res.output.splitlines():
            key, sep, value = line.partition("=")
            if sep and key in _PROPS:
                props[key] = value.strip()
        return props

    def _binary_sha256(self) -> str:
        binary = self.opts["benchmark_binary"]
        q = shlex.quote(binary)
        probe = (
            f"if [ -x {q} ]; then echo present; sha256sum {q} 2>/dev/null || toybox sha256sum {q} 2>/dev/null; fi"
        )
        res = self._shell(probe, "hashing benchmark_model")
        if "present" not in res.output and self.opts["push_benchmark"]:
            self._push_binary()
            res = self._shell(probe, "hashing benchmark_model")
        if "present" not in res.output:
            raise DeviceError(
                f"{self.config.name}: no executable benchmark_model at {binary} on {self.serial}. Download the "
                "prebuilt android_aarch64 benchmark_model (see the README), then `adb push benchmark_model "
                f"{binary}` and `adb shell chmod +x {binary}`, or set backend.push_benchmark to its host path"
            )
        m = re.search(r"\b([0-9a-f]{64})\b", res.output)
        if m:
            return m.group(1)
        # No sha256sum on this phone: hash the bytes on the host.
        data = self._retry("pulling benchmark_model to hash it", lambda: self._t().pull_bytes(binary))
        return hashlib.sha256(data).hexdigest()

    def _push_binary(self) -> None:
        local = Path(self.opts["push_benchmark"]).expanduser()
        if not local.is_file():
            raise ConfigError(f"backend.push_benchmark: {local} is not a file")
        binary = self.opts["benchmark_binary"]
        self._retry("pushing benchmark_model", lambda: self._t().push(local, binary, mode=0o755))
        self._shell(f"chmod 755 {shlex.quote(binary)}", "making benchmark_model executable")

    def _sys_state(self) -> tuple[dict[str, str], dict[str, str], dict[str, tuple[str, float]]]:
        """Governors, current frequencies (kHz) per core, and thermal zones (type, °C)."""
        cmd = (
            "for c in /sys/devices/system/cpu/cpu[0-9]*; do "
            'echo "cpu ${c##*/} $(cat $c/cpufreq/scaling_governor 2>/dev/null) $(cat $c/cpufreq/scaling_cur_freq 2>/dev/null)"; '
            "done; for z in /sys/class/thermal/thermal_zone*; do "
            'echo "tz ${z##*/} $(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)"; done'
        )
        res = self._shell(cmd, "reading cpufreq and thermal zones")
        gov, freq, zones = {}, {}, {}
        for line in res.output.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "cpu":
                if len(parts) >= 3:
                    gov[parts[1]] = parts[2]
                if len(parts) >= 4:
                    freq[parts[1]] = parts[3]
            elif len(parts) >= 4 and parts[0] == "tz":
                try:
                    raw = float(parts[3])
                except ValueError:
                    continue
                # Linux reports millidegrees; some vendor zones report degrees.
                zones[parts[1]] = (parts[2], raw / 1000 if abs(raw) >= 200 else raw)
        return gov, freq, zones

    def temperatures(self) -> dict[str, float]:
        """°C of the watched thermal zones (``thermal_types``; all zones when none match)."""
        _, _, zones = self._sys_state()
        return self._watched(zones)

    def _watched(self, zones: dict[str, tuple[str, float]]) -> dict[str, float]:
        types = [t.lower() for t in self.opts["thermal_types"]]
        picked = {z: c for z, (kind, c) in zones.items() if any(t in kind.lower() for t in types)}
        return picked or {z: c for z, (_, c) in zones.items()}

    def _wait_cool(self) -> dict[str, float]:
        pause = self.opts["cooldown_s"] - (time.monotonic() - self._last_end)
        if self._last_end and pause > 0:
            time.sleep(pause)
        temps = self.temperatures()
        limit = self.opts["max_temp_c"]
        if not limit or not temps or max(temps.values()) <= limit:
            return temps
        deadline = time.monotonic() + self.opts["cool_wait_s"]
        warn(f"{self.config.name}: {max(temps.values()):.1f} °C is above max_temp_c = {limit:g}; pausing until it cools")
        while max(temps.values()) > limit:
            if time.monotonic() >= deadline:
                raise DeviceError(
                    f"{self.config.name} stayed above {limit:g} °C ({max(temps.values()):.1f} °C) for "
                    f"{self.opts['cool_wait_s']:g} s: let the phone cool (out of its case, off the charger, screen off), "
                    "then re-run to resume"
                )
            time.sleep(self.opts["poll_s"])
            temps = self.temperatures()
        return temps

    def _session_dir(self) -> str:
        if self._session is None:
            name = f"{self.config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
            session = posixpath.join(self.opts["remote_dir"], name)
            res = self._shell(f"mkdir -p {shlex.quote(session)}", "creating the campaign folder")
            if res.returncode != 0:
                raise DeviceError(f"{self.config.name}: cannot create {session} on the phone: {res.output.strip()}")
            self._session = session
        return self._session

    # ------------------------------------------------------------------ Device protocol
    def fingerprint(self) -> dict[str, str]:
        """Identity: phone model and SoC, Android build, benchmark binary hash, settings."""
        if self._fingerprint is None:
            props = self._props()
            sha = self._binary_sha256()
            soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", "")
            model = " ".join(v for v in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if v)
            n = self.opts["runs_per_invocation"]
            self._fingerprint = {
                "device": self.config.name,
                "backend": self.config.backend,
                "runtime": "tflite-benchmark_model",
                "runtime_version": f"benchmark_model sha256:{sha[:16]}",
                "threads": str(self.config.threads),
                "batch": str(self.config.batch),
                "cpu": f"{model} / {soc}",
                "hwprof_version": HWPROF_SERIES,
                "android_build": props.get("ro.build.fingerprint", ""),
                "benchmark_sha256": sha,
                "delegate": self.opts["delegate"],
                "affinity": self.opts["affinity"] or "all",
                "sample": "run" if n <= MAX_RECOVERABLE_RUNS else f"mean of {n} runs",
            }
        return dict(self._fingerprint)

    def environment(self) -> dict[str, str]:
        """Volatile state: serial, governors, current frequencies, temperatures before and after the model."""
        gov, freq, zones = self._sys_state()
        after = self._watched(zones)
        env = {
            "serial": self.serial,
            "governors": ",".join(f"{c}={g}" for c, g in sorted(gov.items())),
            "cur_freq_khz": ",".join(f"{c}={f}" for c, f in sorted(freq.items())),
            "temp_after_c": ",".join(f"{z}={c:.1f}" for z, c in sorted(after.items())),
        }
        if self._temps_before:
            env["temp_before_c"] = ",".join(f"{z}={c:.1f}" for z, c in sorted(self._temps_before.items()))
            env["temp_before_max_c"] = f"{max(self._temps_before.values()):.1f}"
        if after:
            env["temp_after_max_c"] = f"{max(after.values()):.1f}"
        return env

    def prepare(self, artifact: Artifact) -> PushedModel:
        """Push the ``.tflite`` artifact to the campaign folder, wait until the phone is cool."""
        if artifact.format != self.artifact_format:
            raise MeasurementError(f"{self.config.name} runs tflite files, not {artifact.format} ({artifact.path})")
        local = Path(artifact.path)
        remote = posixpath.join(self._session_dir(), local.name)
        self._retry(f"pushing {local.name}", lambda: self._t().push(local, remote))
        self._temps_before = self._wait_cool()
        return PushedModel(artifact.name, local, remote)

    def run(self, prepared: PushedModel, runs: int, warmup: int = 0) -> list[float]:
        """``runs`` timed runs in ms (invocations of ≤ ``runs_per_invocation`` runs; see the module docstring)."""
        per = self.opts["runs_per_invocation"]
        try:
            if runs <= 0:
                if warmup > 0:
                    self._invoke(prepared, 1, warmup)
                return []
            samples: list[float] = []
            while len(samples) < runs:
                n = per if per > MAX_RECOVERABLE_RUNS else min(per, runs - len(samples))
                out = self._invoke(prepared, n, self.opts["invocation_warmup"])
                samples.extend(out.runs_ms() if per <= MAX_RECOVERABLE_RUNS else (out.timed.avg_ms,))
            return samples
        finally:
            self._last_end = time.monotonic()

    def _invoke(self, model: PushedModel, runs: int, warmup: int):
        cmd = benchmark_command(
            self.opts["benchmark_binary"],
            model.remote,
            self.config.threads,
            runs,
            warmup,
            self.opts["affinity"],
            self.opts["delegate"],
            self.opts["extra_args"],
            max_secs=self.opts["command_timeout_s"],
        )

        def attempt():
            res = self._t().shell(cmd, self.opts["command_timeout_s"] + 30)
            if res.returncode != 0 and "Could not open" in res.output:
                # The model vanished (phone rebooted, /data/local/tmp cleaned): push it again.
                self._t().push(model.local, model.remote)
                res = self._t().shell(cmd, self.opts["command_timeout_s"] + 30)
            return res

        res = self._retry(f"benchmark_model on {model.key}", attempt)
        if res.returncode != 0:
            tail = " | ".join(ln.strip() for ln in res.output.strip().splitlines()[-4:])
            raise MeasurementError(f"benchmark_model exited with status {res.returncode} on {model.key}: {tail}")
        out = parse(res.output)
        if out.timed is None or out.timed.count != runs:
            got = out.timed.count if out.timed else 0
            raise MeasurementError(
                f"benchmark_model ran {got} timed runs for --num_runs={runs} on {model.key}: this binary ignores "
                "--min_secs=0 (too old); use a current prebuilt benchmark_model"
            )
        return out

    def release(self, prepared: PushedModel) -> None:
        """Remove the pushed model (best effort: the campaign folder goes at :meth:`close` anyway)."""
        if self._transport is None:
            return
        try:
            self._t().shell(f"rm -f {shlex.quote(prepared.remote)}", 60)
        except TransportError as exc:
            warn(f"{self.config.name}: could not remove {prepared.remote} ({exc}); it goes with the campaign folder")

    # ------------------------------------------------------------------ CLI extras
    def status(self) -> str:
        """One line for ``hwprof devices``: attached (serial, model) or why not."""
        try:
            serial = self.serial
            listed = dict(list_devices(self.host, self.port))
        except (DeviceError, TransportError) as exc:
            return f"not attached: {exc}"
        state = listed.get(serial)
        if state is None:
            return f"not attached: serial {serial} not listed by the adb server at {self.host}:{self.port}"
        return f"attached: serial {serial} ({state})"

    def describe(self) -> dict[str, str]:
        """Model, SoC, Android build, governors, frequencies, temperatures, benchmark binary hash."""
        fp = self.fingerprint()
        gov, freq, zones = self._sys_state()
        return {
            "serial": self.serial,
            "adb server": f"{self.host}:{self.port} via {self.opts['client']}",
            "model / SoC": fp["cpu"],
            "android build": fp["android_build"],
            "benchmark binary": f"{self.opts['benchmark_binary']} (sha256 {fp['benchmark_sha256']})",
            "delegate / threads / affinity": f"{fp['delegate']} / {fp['threads']} / {fp['affinity']}",
            "governors": ", ".join(f"{c}={g}" for c, g in sorted(gov.items())) or "unreadable",
            "cur freq (kHz)": ", ".join(f"{c}={f}" for c, f in sorted(freq.items())) or "unreadable",
            "temperatures (°C)": ", ".join(f"{z} {k}={c:.1f}" for z, (k, c) in sorted(zones.items())) or "unreadable",
            "config": str(self.config.path or ""),
        }

    def tune(self) -> list[str]:
        """Lock the governor of the measured cores, then wait until cool; report what could not be done.

        ``[tuning]`` keys: ``governor`` (default ``performance``), ``cores``
        (list of core numbers; default the cores of ``affinity``, else all),
        ``use_su`` (run the writes through ``su -c``; default false).
        """
        tuning = self.config.tuning
        governor = str(tuning.get("governor", "performance"))
        gov, _, _ = self._sys_state()
        cores = tuning.get("cores") or _mask_cores(self.opts["affinity"]) or sorted(int(c[3:]) for c in gov)
        lines = []
        for core in cores:
            path = f"/sys/devices/system/cpu/cpu{int(core)}/cpufreq/scaling_governor"
            write = f"echo {shlex.quote(governor)} > {path}"
            if tuning.get("use_su"):
                write = f"su -c {shlex.quote(write)}"
            res = self._shell(f"{write}; cat {path}", f"setting the governor of cpu{core}")
            now = res.output.strip().splitlines()[-1] if res.output.strip() else "?"
            if now == governor:
                lines.append(f"locked: cpu{core} governor = {governor}")
            else:
                why = "permission denied: needs root (`adb root` on a userdebug build, or [tuning] use_su = true)"
                if "No such file" in res.output:
                    why = "core offline or no cpufreq on it"
                lines.append(f"not locked: cpu{core} governor stays {now!r} ({why})")
        lines.append(
            "not attempted: taking cores offline and fixing frequencies (vendor-specific; benchmark_model runs "
            f"pinned with taskset {self.opts['affinity'] or '(no mask configured)'} instead)"
        )
        limit = self.opts["max_temp_c"]
        if limit:
            try:
                temps = self._wait_cool()
                lines.append(f"cool: hottest watched zone {max(temps.values()):.1f} °C ≤ max_temp_c {limit:g}" if temps
                             else "cool-down: no thermal zones readable")
            except DeviceError as exc:
                lines.append(f"not cool: {exc}")
        else:
            lines.append("cool-down: skipped (no backend.max_temp_c in the config)")
        return lines


def _mask_cores(mask: str) -> list[int]:
    if not mask:
        return []
    value = int(mask, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


__all__ = ["DEFAULTS", "DELEGATE_FLAGS", "AndroidDevice", "PushedModel", "benchmark_command"]
