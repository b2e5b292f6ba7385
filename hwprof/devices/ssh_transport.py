"""A board over SSH through the system ``ssh`` client (OpenSSH).

Why the system client rather than asyncssh or paramiko: it reads
``~/.ssh/config`` completely (``Host`` aliases, ``ProxyJump``, ``IdentityFile``,
certificates, the agent, ``known_hosts``), which is how people already reach
their Jetsons, and it adds no dependency. Its exit status 255 means the
*connection* failed, anything else is the remote command's, so a link
failure is told apart from a failing command.

Like :mod:`hwprof.devices.adb_transport`, every command runs wrapped
(``{ CMD ; } 2>&1; echo <marker>$?``): output without the marker was cut by a
dropped link and raises :class:`TransportError` (retryable). Files travel
through the same channel (``cat > path``), so the board needs no SFTP
server. Host, user, port, key and extra ``-o`` options come from the device
TOML; anything left out falls back to ``~/.ssh/config`` and OpenSSH's
defaults.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from hwprof.devices.adb_transport import ShellResult, TransportError, unwrap, wrap
from hwprof.errors import DeviceError

#: OpenSSH's exit status for a connection (not a command) failure.
SSH_LINK_FAILED = 255


class SshTransport:
    """Commands and files on one host through the ``ssh`` executable.

    Parameters
    ----------
    host : str
        Host name or a ``Host`` alias of ``~/.ssh/config``.
    user, port, key : optional
        Override the config's ``User``, ``Port``, ``IdentityFile`` (``""``/0: the config's).
    options : sequence of str
        Extra ``-o`` options, e.g. ``["StrictHostKeyChecking=accept-new"]``.
    ssh : str
        The client executable.
    connect_timeout_s : float
        ``ConnectTimeout`` of every connection.
    """

    def __init__(
        self,
        host: str,
        user: str = "",
        port: int = 0,
        key: str = "",
        options: Sequence[str] = (),
        ssh: str = "ssh",
        connect_timeout_s: float = 10.0,
    ):
        exe = shutil.which(ssh)
        if exe is None:
            raise DeviceError(
                f"the SSH client {ssh!r} is not on PATH; install OpenSSH (Debian/Ubuntu: apt-get install "
                "openssh-client) or set backend.ssh to its path"
            )
        self.host = host
        argv = [exe, "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(connect_timeout_s))}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"]
        if user:
            argv += ["-l", user]
        if port:
            argv += ["-p", str(port)]
        if key:
            argv += ["-i", str(Path(key).expanduser()), "-o", "IdentitiesOnly=yes"]
        for opt in options:
            argv += ["-o", opt]
        self._argv = argv

    def _ssh(self, command: str, timeout_s: float, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        # ssh sends its arguments joined by spaces to the remote shell: one argument keeps the command as written.
        argv = [*self._argv, "--", self.host, command]
        try:
            return subprocess.run(
                argv, input=stdin, capture_output=True, timeout=timeout_s,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"ssh {self.host}: no answer within {timeout_s:.0f} s") from exc

    def shell(self, command: str, timeout_s: float) -> ShellResult:
        """Run ``command`` in the remote shell; :class:`TransportError` when the link failed."""
        r = self._ssh(wrap(command), timeout_s)
        out = r.stdout.decode("utf-8", "replace")
        if r.returncode == SSH_LINK_FAILED and "__HWPROF_RC=" not in out:
            raise TransportError(f"ssh {self.host}: {r.stderr.decode('utf-8', 'replace').strip()[-300:] or 'connection failed'}")
        return unwrap(out)

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy ``local`` to ``remote`` (its folder must exist), then set ``mode``."""
        data = Path(local).read_bytes()
        q = shlex.quote(remote)
        cmd = f"cat > {q}.part && chmod {mode:o} {q}.part && mv -f {q}.part {q} && wc -c < {q}"
        r = self._ssh(wrap(cmd), 600, stdin=data)
        out = r.stdout.decode("utf-8", "replace")
        if r.returncode == SSH_LINK_FAILED and "__HWPROF_RC=" not in out:
            raise TransportError(f"push {local} → {self.host}:{remote}: {r.stderr.decode('utf-8', 'replace').strip()[-300:]}")
        res = unwrap(out)
        if res.returncode != 0:
            raise DeviceError(f"{self.host}: cannot write {remote}: {res.output.strip()[-300:]}")
        if res.output.strip().splitlines()[-1:] != [str(len(data))]:
            raise TransportError(f"push {local} → {self.host}:{remote}: {res.output.strip()[-80:]!r} bytes arrived of {len(data)}")

    def pull_bytes(self, remote: str) -> bytes:
        """The bytes of ``remote`` (base64 on the wire, so the marker cannot collide with the data)."""
        import base64

        res = self.shell(f"base64 < {shlex.quote(remote)}", 600)
        if res.returncode != 0:
            raise DeviceError(f"{self.host}: cannot read {remote}: {res.output.strip()[-300:]}")
        return base64.b64decode(res.output)

    def close(self) -> None:
        pass


__all__ = ["SSH_LINK_FAILED", "SshTransport"]
