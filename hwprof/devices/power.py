"""Power beside the timed runs: meters, the window they measure, and energy per inference.

A device opens a :class:`PowerMeter` (or none) and, around every call that
times runs, calls :meth:`PowerWindow.begin` and :meth:`PowerWindow.end`; the
window keeps the energy (J) and the seconds of those calls only, never the
warm-up or the preparation between them. Its mean power (W) goes into each
record's environment as ``power_w``, with ``power_source``; the energy of one
inference is then

    energy (mJ) = mean power (W) × latency (ms)

(:func:`energy_mj`; W·ms = mJ), computed from the record's own samples with
the same statistic as its latency (:mod:`hwprof.measure.energy`).

Meters:

``RaplMeter``
    Linux powercap (``/sys/class/powercap/intel-rapl:N/energy_uj``) of every
    CPU package: energy counters read at the start and end of each timed call,
    wrap-around handled with ``max_energy_range_uj``. It is the package's
    power, all cores together; absent or unreadable (non-Intel/AMD-RAPL
    kernels, containers, the file made root-only since 2020) it is not offered.
``NvmlMeter``
    nvidia-ml-py (``pynvml``, imported lazily): the GPU's total-energy counter
    (mJ, Volta and newer) at both ends; older GPUs fall back to the mean of
    the instantaneous draw at both ends.

Boards over SSH sample ``tegrastats`` instead (:mod:`hwprof.devices.tegrastats`,
:mod:`hwprof.devices.board`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from hwprof.errors import ConfigError, require

#: Where Linux exposes RAPL energy counters.
POWERCAP = Path("/sys/class/powercap")
POWER_KINDS = ("none", "auto", "rapl", "nvml")


def energy_mj(power_w: float, latency_ms: float) -> float:
    """Energy of one inference (mJ): mean power (W) over the timed window × latency (ms)."""
    return power_w * latency_ms


class PowerMeter(Protocol):
    """Reads a cumulative energy counter (J); ``source`` names it for the record."""

    source: str

    def energy_j(self) -> float: ...


@dataclass
class PowerWindow:
    """Energy and time accumulated over the timed calls of one workload.

    ``clock`` is the monotonic clock in s (injected in tests).
    """

    meter: PowerMeter
    clock: Callable[[], float] = time.perf_counter
    joules: float = 0.0
    seconds: float = 0.0
    _start: tuple[float, float] | None = None

    def reset(self) -> None:
        self.joules = self.seconds = 0.0
        self._start = None

    def begin(self) -> None:
        self._start = (self.meter.energy_j(), self.clock())

    def end(self) -> None:
        if self._start is None:
            return
        e0, t0 = self._start
        self.joules += self.meter.energy_j() - e0
        self.seconds += self.clock() - t0
        self._start = None

    def environment(self) -> dict[str, str]:
        """``power_w`` (mean over the timed calls), ``power_window_s`` and ``power_source``; empty before any."""
        if self.seconds <= 0:
            return {}
        return {
            "power_w": f"{self.joules / self.seconds:.4g}",
            "power_window_s": f"{self.seconds:.4g}",
            "power_source": self.meter.source,
        }


class RaplMeter:
    """Sum of the RAPL package counters under ``root`` (J).

    Raises
    ------
    ConfigError
        No readable ``intel-rapl:N/energy_uj`` there (the message says why).
    """

    def __init__(self, root: Path = POWERCAP):
        zones = sorted(p for p in Path(root).glob("intel-rapl:*") if p.name.count(":") == 1)
        if not zones:
            raise ConfigError(f"no RAPL package zones under {root} (not an Intel/AMD CPU with powercap, or a container)")
        self._zones: list[tuple[Path, int]] = []
        for z in zones:
            try:
                (z / "energy_uj").read_text()
                top = int((z / "max_energy_range_uj").read_text())
            except PermissionError:
                raise ConfigError(
                    f"{z / 'energy_uj'} is readable by root only (kernels since 2020); run as root or "
                    "`chmod o+r` it, or set backend.power = \"none\""
                ) from None
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {z}: {exc}") from None
            self._zones.append((z / "energy_uj", top))
        self.source = "rapl:" + "+".join(p.parent.name for p, _ in self._zones)
        self._last = [int(p.read_text()) for p, _ in self._zones]
        self._total_uj = 0

    def energy_j(self) -> float:
        for i, (path, top) in enumerate(self._zones):
            now = int(path.read_text())
            delta = now - self._last[i]
            if delta < 0:  # the counter wrapped at max_energy_range_uj
                delta += top
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6


class NvmlMeter:
    """GPU ``index``'s energy through NVML (J): total-energy counter, else draw × time."""

    def __init__(self, index: int = 0):
        self._nvml = require("pynvml", "gpu")
        self._nvml.nvmlInit()
        self._handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self._counter = True
            self.source = f"nvml:{index}:energy-counter"
        except self._nvml.NVMLError:
            self._counter = False
            self.source = f"nvml:{index}:power-draw"
            self._t, self._e, self._w = time.perf_counter(), 0.0, self._draw_w()

    def _draw_w(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0  # NVML reports mW

    def energy_j(self) -> float:
        if self._counter:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0  # NVML reports mJ
        now, w = time.perf_counter(), self._draw_w()
        self._e += (now - self._t) * (w + self._w) / 2  # trapezoid between two reads
        self._t, self._w = now, w
        return self._e


def open_meter(kind: str, gpu_index: int = 0) -> PowerMeter | None:
    """The meter a device config asks for (``backend.power``): ``none``, ``rapl``, ``nvml`` or ``auto``.

    ``auto`` tries NVML where a GPU index is meaningful, then RAPL, and
    returns None when neither can be read; an explicit kind that cannot be
    read raises the reason.

    Raises
    ------
    ConfigError
        Unknown kind, or the named meter is unavailable (the message says why).
    """
    if kind not in POWER_KINDS:
        raise ConfigError(f"backend.power must be one of {', '.join(POWER_KINDS)}, got {kind!r}")
    if kind == "none":
        return None
    if kind == "rapl":
        return RaplMeter()
    if kind == "nvml":
        try:
            return NvmlMeter(gpu_index)
        except ImportError:
            raise
        except Exception as exc:  # pynvml raises NVMLError_* (driver not loaded, no GPU)
            raise ConfigError(f"NVML cannot read GPU {gpu_index}: {exc}") from None
    try:
        return RaplMeter()
    except ConfigError:
        return None


def rapl_status(root: Path = POWERCAP) -> str:
    """One line: whether RAPL is readable here, and why not."""
    try:
        meter = RaplMeter(root)
    except ConfigError as exc:
        return f"unavailable: {exc}"
    return f"readable: {meter.source}"


__all__ = ["POWERCAP", "POWER_KINDS", "NvmlMeter", "PowerMeter", "PowerWindow", "RaplMeter", "energy_mj", "open_meter", "rapl_status"]
