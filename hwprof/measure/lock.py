"""One writer per store: the campaign lock.

A campaign holds an exclusive lock on ``<store>.lock``, a small file beside
the store that names the holder (pid, host, command, start time). The lock is
an OS advisory lock (``fcntl.flock``) on that file, so the kernel releases it
when the holder exits, however it exits: a lock can never be left stale by a
crash on this host. Where ``flock`` is unavailable (Windows), the file is
created exclusively and counts as stale when it names a pid of this host
that no longer runs.

Why a lock file and not SQLite's own locking: a campaign commits every record
the moment it is measured, so it cannot hold one long ``BEGIN EXCLUSIVE``
transaction (a crash would lose every record of the campaign), and SQLite's
locks last one transaction only. Readers (``export``, ``lut build``,
``fit-predictor --store``) never take the lock and keep working during a
campaign (WAL journal).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from hwprof.errors import StoreError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(store_path: str | Path) -> Path:
    """The lock file of a store: ``<store>.lock`` beside it."""
    p = Path(store_path)
    return p.with_name(p.name + ".lock")


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    cmd = str(info.get("command", ""))
    cmd = cmd if len(cmd) <= 80 else cmd[:77] + "..."
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("started", 0) or 0)))
    return f"pid {info.get('pid')} on {info.get('host')} (`{cmd}`, since {since})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLock:
    """Exclusive writer lock of one store; a context manager.

    Parameters
    ----------
    store_path : str or Path
        The store file; the lock is ``<store>.lock``.
    command : str, optional
        What the holder runs, shown to a second writer (default: this process's argv).

    Raises
    ------
    StoreError
        On :meth:`acquire`, when another process holds the lock; the message
        names it (pid, host, command, start time).
    """

    def __init__(self, store_path: str | Path, command: str | None = None):
        self.path = lock_path(store_path)
        self.command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self._fd: int | None = None

    def _info(self) -> str:
        return json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "started": time.time()}
        )

    def acquire(self) -> StoreLock:
        """Take the lock or raise :class:`StoreError` naming the holder."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            return self._acquire_exclusive_create()
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreError(f"cannot create the store lock {self.path}: {exc.strerror}; is the folder writable?") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StoreError(
                    f"the store {self.path.with_suffix('')} is being written by {_holder_text(self.path)}; "
                    "wait for that campaign to finish, or measure into another --store"
                ) from None
            # The holder before us may have unlinked the file after we opened it: retry on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, self._info().encode())
                self._fd = fd
                return self
            os.close(fd)
        raise StoreError(f"could not take the store lock {self.path}; try again")  # pragma: no cover

    def _acquire_exclusive_create(self) -> StoreLock:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    info = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    info = {}
                if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", 0) or 0)):
                    self.path.unlink(missing_ok=True)  # stale: its holder is gone
                    continue
                raise StoreError(
                    f"the store {self.path.with_suffix('')} is being written by {_holder_text(self.path)}; "
                    f"wait for it, or delete {self.path} if that process is gone"
                ) from None
            os.write(fd, self._info().encode())
            self._fd = fd
            return self
        raise StoreError(f"could not take the store lock {self.path}; try again")

    def release(self) -> None:
        """Drop the lock and remove the lock file."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["StoreLock", "lock_path"]
