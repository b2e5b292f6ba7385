"""Two ways to talk to an adb server: adbutils (default) or the ``adb`` command-line client.

Both give the same three operations on one phone, with the same failure
type: :class:`TransportError` means *the link failed* (server not reachable,
phone not listed, connection dropped mid-command) and is worth retrying;
anything the command itself did wrong comes back as its exit status.

A command's completion is proved by a marker: every command runs as
``{ CMD ; } 2>&1; echo <marker>$?``, so output that lacks the marker was cut
by a dropped link, on adb shell protocol v1 and v2 alike.

Neither transport starts an adb server (adbutils and ``adb`` would both
spawn one on a refused connection): a dead server is a :class:`TransportError`,
so a campaign never leaves a daemon behind.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hwprof.errors import ConfigError, DeviceError, require

_MARKER = "__HWPROF_RC="
CLIENTS = ("adbutils", "adb")


class TransportError(Exception):
    """The adb link failed (retryable): server down, phone gone, connection dropped."""


@dataclass(frozen=True)
class ShellResult:
    """A finished shell command: its exit status and merged stdout/stderr."""

    returncode: int
    output: str


def server_reachable(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wrap(command: str) -> str:
    """``command`` with stderr merged and its exit status echoed after a marker."""
    return f"{{ {command} ; }} 2>&1; echo {_MARKER}$?"


def unwrap(raw: str) -> ShellResult:
    """Split a wrapped command's output; :class:`TransportError` when the marker is missing."""
    at = raw.rfind(_MARKER)
    if at < 0:
        tail = raw.strip().splitlines()[-3:]
        raise TransportError("the shell connection closed before the command finished" + (f" ({' | '.join(tail)})" if tail else ""))
    try:
        rc = int(raw[at + len(_MARKER) :].strip().split()[0])
    except (ValueError, IndexError) as exc:
        raise TransportError(f"unreadable exit status in shell output: {raw[at:][:40]!r}") from exc
    return ShellResult(rc, raw[:at])


class AdbutilsTransport:
    """One phone through adbutils' pure-Python client."""

    def __init__(self, host: str, port: int, serial: str):
        self._adbutils = require("adbutils", "android")
        self.host, self.port, self.serial = host, port, serial
        self._client = self._adbutils.AdbClient(host=host, port=port)

    def _errors(self) -> tuple[type[BaseException], ...]:
        a = self._adbutils
        return (a.AdbError, a.AdbTimeout, OSError, EOFError)

    def _device(self):
        if not server_reachable(self.host, self.port):
            raise TransportError(f"no adb server at {self.host}:{self.port}")
        return self._client.device(self.serial)

    def shell(self, command: str, timeout_s: float) -> ShellResult:
        try:
            raw = self._device().shell(wrap(command), timeout=timeout_s, encoding="utf-8", rstrip=False)
        except self._errors() as exc:
            raise TransportError(f"adb shell: {exc}") from exc
        return unwrap(raw)

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        try:
            self._device().sync.push(Path(local), remote, mode=mode, check=True)
        except self._errors() as exc:
            raise TransportError(f"adb push {local} → {remote}: {exc}") from exc

    def pull_bytes(self, remote: str) -> bytes:
        try:
            return self._device().sync.read_bytes(remote)
        except self._errors() as exc:
            raise TransportError(f"adb pull {remote}: {exc}") from exc

    def close(self) -> None:
        pass


class AdbCliTransport:
    """One phone through the ``adb`` command-line client (``adb -H host -P port -s serial ...``)."""

    def __init__(self, host: str, port: int, serial: str, adb: str = "adb"):
        exe = shutil.which(adb)
        if exe is None:
            raise DeviceError(
                f"the adb client {adb!r} is not on PATH; install Android platform-tools "
                "(Debian/Ubuntu: apt-get install adb) or set backend.client = \"adbutils\""
            )
        self.exe, self.host, self.port, self.serial = exe, host, port, serial

    def _run(self, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        if not server_reachable(self.host, self.port):
            raise TransportError(f"no adb server at {self.host}:{self.port}")
        cmd = [self.exe, "-H", self.host, "-P", str(self.port), "-s", self.serial, *args]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"adb {args[0]} timed out after {timeout_s:.0f} s") from exc

    def shell(self, command: str, timeout_s: float) -> ShellResult:
        # adb joins its arguments with spaces; one argument keeps the command as written.
        r = self._run(["shell", wrap(command)], timeout_s)
        out = r.stdout.decode("utf-8", "replace")
        if _MARKER not in out:
            raise TransportError(f"adb shell failed: {(r.stderr or r.stdout).decode('utf-8', 'replace').strip()[-300:]}")
        return unwrap(out)

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        r = self._run(["push", str(local), remote], 600)
        if r.returncode != 0:
            raise TransportError(f"adb push {local} → {remote}: {r.stderr.decode('utf-8', 'replace').strip()[-300:]}")

    def pull_bytes(self, remote: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="hwprof-pull-") as d:
            dst = Path(d) / "file"
            r = self._run(["pull", remote, str(dst)], 600)
            if r.returncode != 0 or not dst.exists():
                raise TransportError(f"adb pull {remote}: {r.stderr.decode('utf-8', 'replace').strip()[-300:]}")
            return dst.read_bytes()

    def close(self) -> None:
        pass


def list_devices(host: str, port: int) -> list[tuple[str, str]]:
    """``(serial, state)`` of every phone the adb server lists (``host:devices``), over a plain socket."""
    if not server_reachable(host, port):
        raise TransportError(f"no adb server at {host}:{port}")
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            req = b"host:devices"
            s.sendall(f"{len(req):04x}".encode() + req)
            status = _recv(s, 4)
            if status != b"OKAY":
                raise TransportError(f"adb server refused host:devices: {status!r}")
            size = int(_recv(s, 4), 16)
            text = _recv(s, size).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        raise TransportError(f"adb server at {host}:{port}: {exc}") from exc
    return [tuple(line.split("\t", 1)) for line in text.splitlines() if "\t" in line]  # type: ignore[misc]


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise TransportError("adb server closed the connection")
        buf += chunk
    return buf


def open_transport(
    client: str, host: str, port: int, serial: str, adb_path: str = "adb"
) -> AdbutilsTransport | AdbCliTransport:
    """The transport named by the config's ``backend.client`` (``adb_path``: the CLI client to run)."""
    if client == "adbutils":
        return AdbutilsTransport(host, port, serial)
    if client == "adb":
        return AdbCliTransport(host, port, serial, adb_path)
    raise ConfigError(f"backend.client must be one of {', '.join(CLIENTS)}, got {client!r}")


__all__ = [
    "CLIENTS",
    "AdbCliTransport",
    "AdbutilsTransport",
    "ShellResult",
    "TransportError",
    "list_devices",
    "open_transport",
    "server_reachable",
    "unwrap",
    "wrap",
]
