"""What every device reached through a shell transport shares: bounded retries, shell commands, and removing its
campaign folder at the end (phones over adb in :mod:`.android`, boards over SSH in :mod:`.board`).

A class using :class:`RemoteShell` has ``config``, ``opts`` (with ``retries``, ``retry_backoff_s``,
``command_timeout_s`` and ``remote_dir``), ``_transport`` and ``_session`` attributes, a ``_t()`` that opens the
transport, and says in :meth:`RemoteShell._where` how it is reached and what a user should check when it is not.
"""

from __future__ import annotations

import shlex
import time
from typing import Any, Callable, TypeVar

from hwprof.devices.adb_transport import TransportError
from hwprof.errors import DeviceError, warn

T = TypeVar("T")


class RemoteShell:
    """Retries, shell commands and the campaign folder's clean-up (see the module docstring)."""

    #: What the device is called in messages ("phone", "board").
    REMOTE = "device"
    config: Any
    opts: dict
    _transport: Any
    _session: str | None

    def _t(self) -> Any:  # pragma: no cover - each device opens its own transport
        raise NotImplementedError

    def _where(self) -> tuple[str, str]:  # pragma: no cover - each device names its own address
        """(address shown after the device's name, what to check when it is unreachable)."""
        raise NotImplementedError

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on a :class:`TransportError` with doubling back-off, then a :class:`DeviceError`."""
        attempts, delay, start = self.opts["retries"], self.opts["retry_backoff_s"], time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except TransportError as exc:
                if attempt == attempts:
                    address, check = self._where()
                    raise DeviceError(
                        f"{self.config.name} ({address}) unreachable during {what} after {attempts} attempts over "
                        f"{time.monotonic() - start:.0f} s: {exc}. Check {check}, then re-run the same command: "
                        "finished records are kept and the campaign resumes."
                    ) from None
                warn(f"{self.config.name}: {what} failed ({exc}); retry {attempt + 1}/{attempts} in {delay:.1f} s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _shell(self, command: str, what: str, timeout_s: float | None = None):
        timeout = timeout_s or self.opts["command_timeout_s"]
        return self._retry(what, lambda: self._t().shell(command, timeout))

    def close(self) -> None:
        """Remove the campaign folder (best effort, only below ``remote_dir``) and drop the connection."""
        if self._session is not None and self._transport is not None:
            if self._session.startswith(self.opts["remote_dir"].rstrip("/") + "/"):
                try:
                    self._t().shell(f"rm -rf {shlex.quote(self._session)}", 60)
                except TransportError as exc:
                    warn(f"{self.config.name}: could not remove {self._session} from the {self.REMOTE} ({exc})")
            self._session = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None


__all__ = ["RemoteShell"]
