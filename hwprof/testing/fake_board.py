"""A stand-in board: a loopback SSH server (asyncssh) that runs commands in a sandbox folder.

:class:`FakeBoard` listens on ``127.0.0.1:<port>`` and accepts one generated
client key (written to ``<root>/client_key``, with a ``known_hosts`` file for
its own host key), so the real ``ssh`` client reaches it exactly as it
reaches a Jetson. Each session's command runs with ``bash -c`` on this
machine, cwd and ``HOME`` = the sandbox, and a ``PATH`` that finds the
board's tools first (``<root>/bin``): the stand-in ``trtexec``
(:mod:`hwprof.testing.fake_trtexec`, ONNX Runtime on this CPU in trtexec's
output format), ``tegrastats`` (:mod:`hwprof.testing.fake_tegrastats`), and
``nvpmodel``/``jetson_clocks`` that keep their state in the sandbox, and a
``sudo`` that asks for a password (no passwordless sudo, as on a fresh JetPack).

Faults for robustness tests: :meth:`FakeBoard.drop_after` (drop every
connection when the n-th timed ``trtexec`` starts, and refuse new ones for a
while or until :meth:`reconnect`).

It is a test fixture, not a security boundary: 127.0.0.1 only, one key,
commands run as the user who started it. :meth:`stop` ends its thread,
kills running commands and removes a sandbox it created. Needs asyncssh
(``pip install asyncssh``, in hwprof's ``test`` extra).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

_TOOLS = {
    "trtexec": "hwprof.testing.fake_trtexec",
    "tegrastats": "hwprof.testing.fake_tegrastats",
}
_NVPMODEL = """#!/bin/sh
state="$HOME/.nvpmodel"
[ -f "$state" ] || echo 0 > "$state"
case "$1" in
  -q) echo "NV Power Mode: MODE_$(cat "$state")"; cat "$state" ;;
  -m) echo "$2" > "$state" ;;
  *) echo "usage: nvpmodel -q | -m N" >&2; exit 2 ;;
esac
"""
_JETSON_CLOCKS = """#!/bin/sh
echo locked > "$HOME/.jetson_clocks"
"""
#: A login without passwordless sudo, as on a fresh JetPack install.
_SUDO = """#!/bin/sh
echo "sudo: a password is required" >&2
exit 1
"""


class FakeBoard:
    """A loopback SSH server standing in for a Jetson (see the module docstring).

    Parameters
    ----------
    root : Path, optional
        Sandbox folder (a temporary one, removed at :meth:`stop`, when omitted).
    port : int
        TCP port on 127.0.0.1 (0: a free one).
    """

    def __init__(self, root: Path | None = None, port: int = 0):
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="hwprof-board-")) if root is None else Path(root)
        self.port = port
        self.key_path = self.root / "client_key"
        self.known_hosts = self.root / "known_hosts"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._conns: set = set()
        self._procs: set = set()
        self._lock = threading.Lock()
        self._drop_at: int | None = None
        self._down_s: float | None = None
        self._down_until: float = 0.0
        self.timed_invocations = 0
        self.commands: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    def _install(self) -> None:
        import asyncssh

        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        for name, module in _TOOLS.items():
            path = self.root / "bin" / name
            # tegrastats runs as a plain file: importing the hwprof package (pandas, torch) before its first line
            # took longer than a cached engine's timed call on a loaded machine, and the record had no power
            target = f"-m {module}" if name != "tegrastats" else shlex.quote(importlib.util.find_spec(module).origin)
            path.write_text(f"#!/bin/sh\nexec {sys.executable} {target} \"$@\"\n")
            path.chmod(0o755)
        for name, text in (("nvpmodel", _NVPMODEL), ("jetson_clocks", _JETSON_CLOCKS), ("sudo", _SUDO)):
            (self.root / "bin" / name).write_text(text)
            (self.root / "bin" / name).chmod(0o755)
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        client = asyncssh.generate_private_key("ssh-ed25519")
        client.write_private_key(str(self.key_path))
        self.key_path.chmod(0o600)
        self._client_public = client.export_public_key().decode()

    def start(self) -> "FakeBoard":
        import asyncssh

        self._install()
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        ready = threading.Event()
        error: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def open_server():
                return await asyncssh.create_server(
                    lambda: _Server(self), "127.0.0.1", self.port,
                    server_host_keys=[self._host_key],
                    authorized_client_keys=asyncssh.import_authorized_keys(self._client_public),
                    process_factory=self._handle, encoding=None, allow_scp=False,
                )

            try:
                self._server = loop.run_until_complete(open_server())
            except BaseException as exc:  # reported to start()
                error.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-board", daemon=True)
        self._thread.start()
        ready.wait(30)
        if error:
            raise OSError(f"stand-in board cannot listen on 127.0.0.1:{self.port}: {error[0]}")
        host_key = self._host_key.export_public_key().decode().strip()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key}\n")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            async def shutdown():
                for p in list(self._procs):
                    _kill(p)
                for c in list(self._conns):
                    c.abort()
                if self._server is not None:
                    self._server.close()

            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = self._loop = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "FakeBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def drop_after(self, timed: int, down_s: float | None) -> None:
        """Drop every connection when the ``timed``-th timed trtexec starts (counted from now).

        New connections are refused for ``down_s`` seconds, or until
        :meth:`reconnect` when ``down_s`` is None.
        """
        with self._lock:
            self._drop_at = self.timed_invocations + timed
            self._down_s = down_s

    def reconnect(self) -> None:
        """Accept connections again."""
        with self._lock:
            self._down_until = 0.0
            self._drop_at = None

    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    # ------------------------------------------------------------------ sessions
    async def _handle(self, process) -> None:
        command = process.command or ""
        self.commands.append(command)
        if "--loadEngine" in command and "--iterations" in command and "--warmUp=0 " not in command:
            with self._lock:
                self.timed_invocations += 1
                drop = self._drop_at is not None and self.timed_invocations >= self._drop_at
                if drop:
                    self._down_until = float("inf") if self._down_s is None else time.monotonic() + self._down_s
                    self._drop_at = None
            if drop:
                for c in list(self._conns):
                    c.abort()
                return
        env = {**os.environ, "HOME": str(self.root), "PATH": f"{self.root / 'bin'}:{os.environ.get('PATH', '')}"}
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=self.root, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        self._procs.add(proc)

        async def feed() -> None:
            try:
                while chunk := await process.stdin.read(1 << 16):
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
            except Exception:  # the client went away: the command sees EOF
                pass
            finally:
                proc.stdin.close()

        feeder = asyncio.ensure_future(feed())
        try:
            while chunk := await proc.stdout.read(1 << 16):
                process.stdout.write(chunk)
            rc = await proc.wait()
            process.exit(rc if rc >= 0 else 128 - rc)
        except Exception:  # connection dropped while writing
            _kill(proc)
        finally:
            feeder.cancel()
            self._procs.discard(proc)


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _server_class():
    import asyncssh

    class Server(asyncssh.SSHServer):
        def __init__(self, board: FakeBoard):
            self.board = board
            self.conn = None

        def connection_made(self, conn) -> None:
            self.conn = conn
            if self.board._down():
                conn.abort()
                return
            self.board._conns.add(conn)

        def connection_lost(self, exc) -> None:
            self.board._conns.discard(self.conn)

    return Server


def _Server(board: FakeBoard):
    return _server_class()(board)


def config_toml(board: FakeBoard, name: str = "fake-board", sentinel_every: int = 25, retries: int = 4,
                retry_backoff_s: float = 0.5) -> str:
    """A device config (TOML) pointing at ``board`` through the system ssh client."""
    return f"""# Stand-in board on 127.0.0.1:{board.port} (hwprof.testing.fake_board): trtexec and tegrastats
# stand-ins running ONNX Runtime on this machine's CPU. A demo and test fixture, never a board measurement.
[device]
name = "{name}"
description = "stand-in board (loopback SSH, ONNX Runtime on the host CPU in trtexec's format)"
backend = "ssh-board"
batch = 1
threads = 1

[protocol]
warmup_runs = 5
warmup_s = 0.0
min_runs = 10
chunk = 10
max_runs = 30
max_time_s = 20.0
target_ci = 0.02
sentinel_every = {sentinel_every}

[backend]
host = "127.0.0.1"
port = {board.port}
key = "{board.key_path}"
ssh_options = ["UserKnownHostsFile={board.known_hosts}", "StrictHostKeyChecking=yes", "LogLevel=ERROR"]
trtexec = "trtexec"
warmup_ms = 20.0
power = "tegrastats"
power_interval_ms = 20
retries = {retries}
retry_backoff_s = {retry_backoff_s}
connect_timeout_s = 5.0
command_timeout_s = 120.0

[tuning]
nvpmodel = 0
jetson_clocks = true
use_sudo = false
"""


__all__ = ["FakeBoard", "config_toml"]
