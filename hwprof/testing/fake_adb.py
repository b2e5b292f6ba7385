"""A stand-in phone: a loopback adb server that runs shell commands in a sandbox folder.

:class:`FakePhone` listens on ``127.0.0.1:<port>`` and speaks the adb *host*
protocol (AOSP ``OVERVIEW.TXT``, ``SERVICES.TXT``, ``SYNC.TXT``) that both
adbutils and the ``adb`` command-line client use:

* requests are a 4-hex-digit length and a payload; answers ``OKAY`` or
  ``FAIL`` + a length-prefixed message;
* host services: ``host:version`` (41), ``host:kill`` (acknowledged, ignored),
  ``host:devices``, ``host:devices-l``, ``host:track-devices``,
  ``host:features``, ``host:host-features``, ``host-serial:<s>:<query>``
  (``features``, ``get-state``, ``get-serialno``, ``get-devpath``,
  ``wait-for-*``), transport selection ``host:transport:<s>``,
  ``host:transport-any|usb|local|id:<n>`` and ``host:tport:serial:<s>|any|usb|local|id:<n>``
  (which answers the 8-byte transport id);
* device services after a transport is selected: ``shell:<cmd>`` (v1: one
  merged stream, closed at exit), ``shell,v2[,raw|pty|...]:<cmd>`` (packets:
  stdin 0, stdout 1, stderr 2, exit 3, close-stdin 4, window-size 5),
  ``exec:<cmd>``, and ``sync:`` with ``STAT``/``STA2``/``LST2``, ``LIST``/``LIS2``,
  ``SEND``, ``RECV``, ``QUIT``.

The phone's file system is a sandbox folder: the device paths ``/data``,
``/sdcard``, ``/sys`` and ``/system`` live under it (``/data/local/tmp`` →
``<root>/data/local/tmp``). Shell commands run on this machine with
``/bin/sh -c`` (a POSIX shell, as strict as Android's mksh about bashisms),
cwd ``<root>``, and a ``PATH`` that finds the phone's tools first: a fake
``getprop`` reading ``<root>/system/build.prop``, a ``taskset`` that maps
the phone's cores onto this machine's, and, at
``/data/local/tmp/benchmark_model``, the stand-in benchmark tool
(:mod:`hwprof.testing.fake_benchmark_model`). Device paths in a command are
rewritten to the sandbox and back in its output. ``/sys`` holds a cpufreq and
thermal tree of a 4-core big.LITTLE phone whose files tests may rewrite
(:meth:`FakePhone.set_temperature`).

It is a test fixture, not a security boundary: it binds to 127.0.0.1 only and
runs whatever a local client sends, as the user who started it. Threads are
daemons with bounded waits; :meth:`FakePhone.stop` ends them, kills running
commands and removes a sandbox it created.

Faults for robustness tests: :meth:`FakePhone.disconnect` (the cable is
pulled: the device leaves the list, open connections drop, running commands
die), :meth:`FakePhone.reconnect`, and :meth:`FakePhone.drop_after` (pull the
cable when the n-th ``benchmark_model`` starts, plug it back after a while).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import socketserver
import stat as st
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ADB_SERVER_VERSION = 41
FEATURES = "shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir,apex,abb,fixed_push_symlink_timestamp,abb_exec"
MOUNTS = ("/data", "/sdcard", "/sys", "/system")
BENCHMARK_PATH = "/data/local/tmp/benchmark_model"
TRANSPORT_ID = 1
_SYNC_DATA_MAX = 64 * 1024
_COMMAND_TIMEOUT_S = 900.0
_IDLE_TIMEOUT_S = 120.0


class _Dropped(Exception):
    """The connection went away (client closed, or the phone was disconnected)."""


def _host_cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class FakePhone:
    """A sandboxed stand-in phone behind a loopback adb server.

    Parameters
    ----------
    root : Path, optional
        Sandbox folder; a temporary one (removed by :meth:`stop`) when omitted.
    serial : str
        The adb serial it lists.
    port : int
        TCP port on 127.0.0.1; 0 picks a free one (see :attr:`port`).
    cores : int
        CPU cores of the phone's ``/sys`` tree (the upper half are "big").
    temperature_c : float
        Initial temperature of its thermal zones.

    Examples
    --------
    >>> with FakePhone() as phone:                              # doctest: +SKIP
    ...     adbutils.AdbClient("127.0.0.1", phone.port).device(phone.serial).shell("getprop ro.product.model")
    'hwprof-fake-phone'
    """

    def __init__(
        self,
        root: Path | None = None,
        serial: str = "HWPROF-FAKE-0001",
        port: int = 0,
        cores: int = 4,
        temperature_c: float = 35.0,
    ):
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="hwprof-phone-")) if root is None else Path(root).resolve()
        self.serial = serial
        self.cores = cores
        self._want_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._present = True
        self._conns: set[socket.socket] = set()
        self._procs: set[subprocess.Popen] = set()
        self._timers: list[threading.Timer] = []
        self._benchmarks = 0
        self._drop_at: int | None = None
        self._drop_for_s: float | None = None
        self.commands: list[str] = []  # every shell command received, as sent (device paths)
        self._install(temperature_c)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakePhone:
        """Start listening; returns ``self``."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", self._want_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-adb", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server, drop connections, kill commands, remove a temporary sandbox."""
        for t in self._timers:
            t.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._drop_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakePhone:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the adb server listens on (127.0.0.1)."""
        if self._server is None:
            raise RuntimeError("FakePhone is not started; call start() or use it as a context manager")
        return self._server.server_address[1]

    @property
    def present(self) -> bool:
        """Whether the phone is attached (listed by ``host:devices``)."""
        return self._present

    # ------------------------------------------------------------------ faults
    def disconnect(self) -> None:
        """Pull the cable: the phone leaves the device list, connections drop, commands die."""
        self._present = False
        self._drop_all()

    def reconnect(self) -> None:
        """Plug the cable back in."""
        self._present = True

    def drop_after(self, benchmarks: int, down_s: float | None) -> None:
        """Disconnect when the ``benchmarks``-th ``benchmark_model`` invocation from now starts.

        ``down_s`` seconds later the phone comes back (``None``: it stays away
        until :meth:`reconnect`).
        """
        with self._lock:
            self._drop_at = self._benchmarks + benchmarks
            self._drop_for_s = down_s

    @property
    def benchmark_invocations(self) -> int:
        """How many shell commands invoked ``benchmark_model`` so far."""
        return self._benchmarks

    def set_temperature(self, celsius: float) -> None:
        """Set every thermal zone's temperature (written in millidegrees, as Linux does)."""
        for zone in sorted((self.root / "sys/class/thermal").glob("thermal_zone*")):
            (zone / "temp").write_text(f"{int(round(celsius * 1000))}\n")

    # ------------------------------------------------------------------ paths
    def host_path(self, device_path: str) -> Path:
        """The sandbox file behind a device path; a path outside the phone's mounts is refused."""
        p = os.path.normpath("/" + device_path.lstrip("/"))
        if not any(p == m or p.startswith(m + "/") for m in MOUNTS):
            raise PermissionError(f"{device_path}: outside the stand-in phone's file system ({', '.join(MOUNTS)})")
        return self.root / p.lstrip("/")

    def _to_host(self, command: str) -> str:
        """Prefix the sandbox to device paths that start a shell word (or follow ``=`` in one).

        A mount name inside a quoted word after a quoted space (``'/data/a b /data'``)
        is part of a file name, not a path, and stays as it is.
        """
        out: list[str] = []
        quote = ""
        i, n = 0, len(command)
        while i < n:
            c = command[i]
            prev = command[i - 1] if i else ""
            word_start = (
                i == 0
                or prev == "="
                or (not quote and prev in " \t\n;|&()<>`")
                or (prev in "'\"" and quote == prev and (i < 2 or command[i - 2] in " \t\n;|&()<>=`"))
            )
            if c == "/" and word_start:
                for m in MOUNTS:
                    end = i + len(m)
                    if command.startswith(m, i) and (end == n or command[end] in "/ \t\n;|&)'\"*"):
                        out.append(str(self.root))
                        break
            out.append(c)
            if quote:
                if c == quote and (quote == "'" or prev != "\\"):
                    quote = ""
            elif c in "'\"" and prev != "\\":
                quote = c
            i += 1
        return "".join(out)

    def _to_device(self, data: bytes) -> bytes:
        return data.replace(str(self.root).encode(), b"")

    # ------------------------------------------------------------------ sandbox
    def _install(self, temperature_c: float) -> None:
        r = self.root
        for d in ("data/local/tmp", "sdcard", "system/bin", "sys/class/thermal"):
            (r / d).mkdir(parents=True, exist_ok=True)
        props = {
            "ro.product.model": "hwprof-fake-phone",
            "ro.product.manufacturer": "hwprof",
            "ro.product.name": "fake_phone",
            "ro.product.device": "fake",
            "ro.board.platform": f"host-{platform.machine()}",
            "ro.hardware": "hwprof-standin",
            "ro.soc.model": _host_cpu_name(),
            "ro.build.version.release": "14",
            "ro.build.version.sdk": "34",
            "ro.build.fingerprint": "hwprof/fake_phone/fake:14/HWPROF.1/1:userdebug/test-keys",
            "ro.serialno": self.serial,
        }
        (r / "system/build.prop").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        getprop = r / "system/bin/getprop"
        getprop.write_text(
            "#!/bin/sh\n# stand-in for Android's getprop: reads the sandbox's build.prop\n"
            f"f='{r}/system/build.prop'\n"
            'if [ $# -eq 0 ]; then sed "s/^\\([^=]*\\)=\\(.*\\)$/[\\1]: [\\2]/" "$f"; exit 0; fi\n'
            'awk -v k="$1" \'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }\' "$f"\n'
        )
        taskset = r / "system/bin/taskset"
        taskset.write_text(
            "#!/bin/sh\n# stand-in for toybox taskset MASK CMD...: maps phone core i to host core i mod nproc\n"
            'mask=$((0x${1#0x})); shift; n=$(nproc); list=""; i=0\n'
            "while [ $mask -gt 0 ]; do\n"
            '  if [ $((mask & 1)) -eq 1 ]; then list="$list${list:+,}$((i % n))"; fi\n'
            "  mask=$((mask >> 1)); i=$((i + 1))\n"
            "done\n"
            'if [ -n "$list" ] && command -v /usr/bin/taskset >/dev/null; then exec /usr/bin/taskset -c "$list" "$@"; fi\n'
            'exec "$@"\n'
        )
        bench = self.host_path(BENCHMARK_PATH)
        script = Path(__file__).with_name("fake_benchmark_model.py").resolve()
        bench.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{script}' \"$@\"\n")
        for f in (getprop, taskset, bench):
            f.chmod(0o755)
        cpu = r / "sys/devices/system/cpu"
        (cpu).mkdir(parents=True, exist_ok=True)
        (cpu / "online").write_text(f"0-{self.cores - 1}\n")
        (cpu / "possible").write_text(f"0-{self.cores - 1}\n")
        for i in range(self.cores):
            big = i >= self.cores // 2
            freqs = [307200, 960000, 1593600] + ([2150400] if big else [])
            d = cpu / f"cpu{i}/cpufreq"
            d.mkdir(parents=True, exist_ok=True)
            files = {
                "scaling_governor": "schedutil",
                "scaling_available_governors": "ondemand userspace powersave interactive performance schedutil",
                "scaling_available_frequencies": " ".join(map(str, freqs)),
                "scaling_cur_freq": str(freqs[1]),
                "scaling_min_freq": str(freqs[0]),
                "scaling_max_freq": str(freqs[-1]),
                "cpuinfo_min_freq": str(freqs[0]),
                "cpuinfo_max_freq": str(freqs[-1]),
            }
            for name, value in files.items():
                (d / name).write_text(value + "\n")
        for z, kind in enumerate(("cpu-0-0-usr", "cpu-1-0-usr", "battery")):
            zd = r / f"sys/class/thermal/thermal_zone{z}"
            zd.mkdir(parents=True, exist_ok=True)
            (zd / "type").write_text(kind + "\n")
        self.set_temperature(temperature_c)

    # ------------------------------------------------------------------ bookkeeping
    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)

    def _drop_all(self) -> None:
        with self._lock:
            conns, procs = list(self._conns), list(self._procs)
        for p in procs:
            _kill(p)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _note_command(self, command: str) -> None:
        self.commands.append(command)
        if "benchmark_model" not in command:
            return
        with self._lock:
            self._benchmarks += 1
            fire = self._drop_at is not None and self._benchmarks >= self._drop_at
            down = self._drop_for_s
            if fire:
                self._drop_at = None
        if fire:
            # Drop a moment after the command started, as a cable pulled mid-run.
            def pull() -> None:
                self.disconnect()
                if down is not None:
                    t = threading.Timer(down, self.reconnect)
                    t.daemon = True
                    self._timers.append(t)
                    t.start()

            t = threading.Timer(0.05, pull)
            t.daemon = True
            self._timers.append(t)
            t.start()

    def _spawn(self, command: str, merged: bool) -> subprocess.Popen:
        env = {
            "PATH": f"{self.root}/system/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root / "data/local/tmp"),
            "TMPDIR": str(self.root / "data/local/tmp"),
            "LANG": "C.UTF-8",
            "ANDROID_SERIAL": self.serial,
        }
        proc = subprocess.Popen(
            ["/bin/sh", "-c", self._to_host(command)],
            cwd=self.root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        return proc

    def _reap(self, proc: subprocess.Popen) -> int:
        try:
            rc = proc.wait(timeout=_COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill(proc)
            rc = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        return rc

    # ------------------------------------------------------------------ listing
    def _device_lines(self, long: bool) -> str:
        if not self._present:
            return ""
        if not long:
            return f"{self.serial}\tdevice\n"
        return (
            f"{self.serial:<22s} device product:fake_phone model:hwprof_fake_phone device:fake "
            f"transport_id:{TRANSPORT_ID}\n"
        )


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, phone: FakePhone):
        self.phone = phone
        super().__init__(address, handler)


class _Handler(socketserver.BaseRequestHandler):
    """One client connection: host requests, then at most one device service."""

    server: _Server

    def setup(self) -> None:
        self.phone = self.server.phone
        self.sock: socket.socket = self.request
        self.sock.settimeout(_IDLE_TIMEOUT_S)
        self.phone._track(self.sock)

    def finish(self) -> None:
        self.phone._untrack(self.sock)

    # -------------------------------------------------------------- wire helpers
    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (OSError, socket.timeout) as exc:
                raise _Dropped() from exc
            if not chunk:
                raise _Dropped()
            buf += chunk
        return buf

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Dropped() from exc

    def okay(self, payload: str | bytes | None = None) -> None:
        self.send(b"OKAY" + (b"" if payload is None else _block(payload)))

    def fail(self, message: str) -> None:
        self.send(b"FAIL" + _block(message))

    # -------------------------------------------------------------- dispatch
    def handle(self) -> None:
        try:
            bound = False
            while True:
                length = self.recv_exact(4)
                try:
                    size = int(length, 16)
                except ValueError:
                    return self.fail(f"bad request length {length!r}")
                request = self.recv_exact(size).decode("utf-8", "replace")
                if request.startswith(("host:", "host-serial:", "host-transport-id:", "host-usb:", "host-local:")):
                    result = self.host(request)
                    if result == "bound":
                        bound = True
                        continue
                    return
                if not bound:
                    return self.fail("no device selected: send host:transport:<serial> first")
                if not self.phone.present:
                    return self.fail("device offline")
                return self.service(request)
        except _Dropped:
            return

    def host(self, request: str) -> str | None:
        phone = self.phone
        kind, _, rest = request.partition(":")
        if kind == "host-serial":
            # serials may contain ':' (host:port); the query is the last known suffix
            serial, _, query = rest.rpartition(":")
            if query.startswith("wait-for-"):
                serial, query = rest[: rest.rfind(":wait-for-")], rest[rest.rfind(":wait-for-") + 1 :]
            return self.device_query(query, serial)
        if kind == "host-transport-id":
            tid, _, query = rest.partition(":")
            return self.device_query(query, None if tid == str(TRANSPORT_ID) else f"transport-id {tid}")
        if kind in ("host-usb", "host-local"):
            return self.device_query(rest, None)
        # kind == "host"
        if rest == "version":
            return self.okay(f"{ADB_SERVER_VERSION:04x}")
        if rest == "kill":
            return self.okay()  # the stand-in keeps running; its owner stops it
        if rest in ("devices", "devices-l"):
            return self.okay(phone._device_lines(rest == "devices-l"))
        if rest in ("track-devices", "track-devices-l"):
            return self.track(rest.endswith("-l"))
        if rest == "host-features":
            return self.okay(FEATURES)
        if rest.startswith("transport:"):
            return self.select(rest.split(":", 1)[1], tport=False)
        if rest in ("transport-any", "transport-usb", "transport-local"):
            return self.select(None, tport=False)
        if rest.startswith("transport-id:"):
            tid = rest.split(":", 1)[1]
            return self.select(None if tid == str(TRANSPORT_ID) else f"transport-id {tid}", tport=False)
        if rest.startswith("tport:"):
            how = rest.split(":", 1)[1]
            if how.startswith("serial:"):
                return self.select(how.split(":", 1)[1], tport=True)
            if how in ("any", "usb", "local"):
                return self.select(None, tport=True)
            if how.startswith("id:"):
                tid = how.split(":", 1)[1]
                return self.select(None if tid == str(TRANSPORT_ID) else f"transport-id {tid}", tport=True)
        if rest in ("features", "get-state", "get-serialno", "get-devpath") or rest.startswith("wait-for-"):
            return self.device_query(rest, None)
        return self.fail(f"unknown host service: {request}")

    def _missing(self, serial: str | None) -> str | None:
        if serial is not None and serial != self.phone.serial:
            return f"device '{serial}' not found"
        if not self.phone.present:
            return f"device '{serial}' not found" if serial else "no devices/emulators found"
        return None

    def select(self, serial: str | None, tport: bool) -> str | None:
        err = self._missing(serial)
        if err:
            return self.fail(err)
        self.send(b"OKAY" + (struct.pack("<Q", TRANSPORT_ID) if tport else b""))
        return "bound"

    def device_query(self, query: str, serial: str | None) -> None:
        if query.startswith("wait-for-"):
            deadline = time.monotonic() + 60
            while self._missing(serial) and time.monotonic() < deadline and self.phone._server is not None:
                time.sleep(0.1)
            if self._missing(serial):
                return self.fail(self._missing(serial) or "timeout")
            self.send(b"OKAY")
            return self.send(b"OKAY")
        err = self._missing(serial)
        if err:
            return self.fail(err)
        answers = {
            "features": FEATURES,
            "get-state": "device",
            "get-serialno": self.phone.serial,
            "get-devpath": "usb:hwprof-standin",
        }
        if query not in answers:
            return self.fail(f"unknown host service: {query}")
        return self.okay(answers[query])

    def track(self, long: bool) -> None:
        self.okay()
        last = None
        deadline = time.monotonic() + _COMMAND_TIMEOUT_S
        while self.phone._server is not None and time.monotonic() < deadline:
            now = self.phone._device_lines(long)
            if now != last:
                self.send(_block(now))
                last = now
            time.sleep(0.1)

    # -------------------------------------------------------------- device services
    def service(self, request: str) -> None:
        if request.startswith("shell,") or request.startswith("shell:") or request.startswith("exec:"):
            head, _, command = request.partition(":")
            if not command.strip():
                return self.fail("interactive shells are not supported by the stand-in phone; give a command")
            opts = head.split(",")[1:]
            self.okay()
            self.phone._note_command(command)
            if "v2" in opts:
                return self.shell_v2(command)
            return self.shell_v1(command)
        if request == "sync:":
            self.okay()
            return self.sync()
        return self.fail(f"unsupported service on the stand-in phone: {request}")

    def shell_v1(self, command: str) -> None:
        proc = self.phone._spawn(command, merged=True)
        proc.stdin.close()
        try:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                self.send(self.phone._to_device(chunk))
        except _Dropped:
            _kill(proc)
        finally:
            self.phone._reap(proc)

    def shell_v2(self, command: str) -> None:
        proc = self.phone._spawn(command, merged=False)
        lock = threading.Lock()

        def packet(pid: int, data: bytes) -> None:
            with lock:
                self.send(bytes([pid]) + struct.pack("<I", len(data)) + data)

        def pump(stream, pid: int) -> None:
            try:
                for chunk in iter(lambda: stream.read1(65536), b""):
                    packet(pid, self.phone._to_device(chunk))
            except (_Dropped, ValueError, OSError):
                _kill(proc)

        def stdin_reader() -> None:
            # Client packets: 0 stdin data, 4 close stdin, 5 window size (ignored).
            try:
                while proc.poll() is None:
                    head = self.recv_exact(5)
                    data = self.recv_exact(struct.unpack("<I", head[1:])[0])
                    if head[0] == 0 and not proc.stdin.closed:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                    elif head[0] == 4 and not proc.stdin.closed:
                        proc.stdin.close()
            except (_Dropped, OSError, ValueError):
                pass

        threads = [
            threading.Thread(target=pump, args=(proc.stdout, 1), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, 2), daemon=True),
        ]
        reader = threading.Thread(target=stdin_reader, daemon=True)
        for t in threads + [reader]:
            t.start()
        rc = self.phone._reap(proc)
        for t in threads:
            t.join(timeout=10)
        try:
            packet(3, bytes([rc & 0xFF]))
        except _Dropped:
            pass

    def sync(self) -> None:
        while True:
            head = self.recv_exact(8)
            ident, size = head[:4], struct.unpack("<I", head[4:])[0]
            if ident == b"QUIT":
                return
            path = self.recv_exact(size).decode("utf-8", "replace")
            if ident == b"STAT":
                self.send(b"STAT" + self.stat_v1(path))
            elif ident in (b"STA2", b"LST2"):
                self.send(ident + self.stat_v2(path, follow=ident == b"STA2"))
            elif ident in (b"LIST", b"LIS2"):
                self.listdir(path, v2=ident == b"LIS2")
            elif ident == b"SEND":
                self.receive_file(path)
            elif ident == b"RECV":
                self.send_file(path)
            else:
                return self.send(b"FAIL" + _sync_msg(f"unknown sync request {ident!r}"))

    def _lookup(self, path: str, follow: bool = True) -> os.stat_result | OSError:
        try:
            host = self.phone.host_path(path)
            return os.stat(host) if follow else os.lstat(host)
        except PermissionError as exc:
            return OSError(13, str(exc))
        except OSError as exc:
            return exc

    def stat_v1(self, path: str) -> bytes:
        s = self._lookup(path)
        if isinstance(s, OSError):
            return struct.pack("<III", 0, 0, 0)
        return struct.pack("<III", s.st_mode, s.st_size & 0xFFFFFFFF, int(s.st_mtime))

    def stat_v2(self, path: str, follow: bool) -> bytes:
        s = self._lookup(path, follow)
        if isinstance(s, OSError):
            return struct.pack("<IQQIIIIQqqq", s.errno or 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return struct.pack(
            "<IQQIIIIQqqq", 0, s.st_dev, s.st_ino, s.st_mode, s.st_nlink, 2000, 2000, s.st_size,
            int(s.st_atime), int(s.st_mtime), int(s.st_ctime),
        )

    def listdir(self, path: str, v2: bool) -> None:
        try:
            host = self.phone.host_path(path)
            names = [".", ".."] + sorted(os.listdir(host))
        except OSError:
            names, host = [], None
        for name in names:
            s = os.lstat(os.path.join(host, name))
            raw = name.encode()
            if v2:
                body = struct.pack(
                    "<IQQIIIIQqqq", 0, s.st_dev, s.st_ino, s.st_mode, s.st_nlink, 2000, 2000, s.st_size,
                    int(s.st_atime), int(s.st_mtime), int(s.st_ctime),
                )
                self.send(b"DNT2" + body + struct.pack("<I", len(raw)) + raw)
            else:
                self.send(b"DENT" + struct.pack("<IIII", s.st_mode, s.st_size & 0xFFFFFFFF, int(s.st_mtime), len(raw)) + raw)
        self.send(b"DONE" + (bytes(68) + bytes(4) if v2 else bytes(16)))

    def receive_file(self, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"
        chunks: list[bytes] = []
        mtime = None
        while True:
            head = self.recv_exact(8)
            ident, size = head[:4], struct.unpack("<I", head[4:])[0]
            if ident == b"DATA":
                chunks.append(self.recv_exact(size))
            elif ident == b"DONE":
                mtime = size
                break
            else:
                return self.send(b"FAIL" + _sync_msg(f"unexpected {ident!r} during SEND"))
        if path.endswith("/"):
            return self.send(b"FAIL" + _sync_msg(f"couldn't create file: Is a directory"))
        try:
            host = self.phone.host_path(path)
            host.parent.mkdir(parents=True, exist_ok=True)  # adbd's fixed_push_mkdir
            tmp = host.with_name(f".{host.name}.hwprof-push")
            tmp.write_bytes(b"".join(chunks))
            tmp.chmod(int(mode_text) & 0o777)
            tmp.replace(host)
            os.utime(host, (mtime, mtime))
        except (OSError, ValueError) as exc:
            return self.send(b"FAIL" + _sync_msg(f"{path}: {exc}"))
        self.send(b"OKAY" + bytes(4))

    def send_file(self, path: str) -> None:
        try:
            data = self.phone.host_path(path).read_bytes()
        except (OSError, PermissionError) as exc:
            return self.send(b"FAIL" + _sync_msg(f"{path}: {exc.strerror or exc}"))
        for i in range(0, len(data), _SYNC_DATA_MAX):
            part = data[i : i + _SYNC_DATA_MAX]
            self.send(b"DATA" + struct.pack("<I", len(part)) + part)
        self.send(b"DONE" + bytes(4))


def _block(payload: str | bytes) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return f"{len(raw):04x}".encode() + raw


def _sync_msg(message: str) -> bytes:
    raw = message.encode()
    return struct.pack("<I", len(raw)) + raw


def config_toml(
    phone: FakePhone, name: str = "fake-phone", client: str = "adbutils", sentinel_every: int = 25
) -> str:
    """A device config (TOML) that points hwprof's Android backend at ``phone``."""
    return (
        "# The stand-in phone of hwprof.testing.fake_adb: LiteRT on this CPU behind a loopback adb server.\n"
        "# A test fixture and demo device; never use its numbers as phone latencies.\n"
        "[device]\n"
        f'name = "{name}"\n'
        'description = "stand-in phone (loopback adb server, LiteRT on the host CPU)"\n'
        'backend = "android"\n'
        "batch = 1\n"
        "threads = 1\n\n"
        "[protocol]\n"
        "warmup_runs = 5\nwarmup_s = 0.0\nmin_runs = 9\nmax_runs = 30\nchunk = 9\nmax_time_s = 20.0\ntarget_ci = 0.02\n"
        f"sentinel_every = {sentinel_every}\n\n"
        "[backend]\n"
        f'serial = "{phone.serial}"\n'
        'adb_host = "127.0.0.1"\n'
        f"adb_port = {phone.port}\n"
        f'client = "{client}"\n'
        f'benchmark_binary = "{BENCHMARK_PATH}"\n'
        'affinity = "8"\n'
        'delegate = "xnnpack"\n'
        "runs_per_invocation = 3\n"
        "invocation_warmup = 2\n"
        "cooldown_s = 0.0\n"
        "max_temp_c = 70.0\n"
        "retries = 4\n"
        "retry_backoff_s = 0.5\n"
    )


__all__ = ["ADB_SERVER_VERSION", "BENCHMARK_PATH", "FEATURES", "FakePhone", "config_toml"]
