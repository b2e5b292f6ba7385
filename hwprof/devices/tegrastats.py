"""Parse NVIDIA Jetson ``tegrastats`` lines into board power (a pure function of text).

tegrastats prints one line per interval; its power rails are
``NAME current/average`` in milliwatts, written ``463/463`` by older releases
(JetPack 4) and ``2340mW/2340mW`` by newer ones (JetPack 5 and 6), with an
optional ``MM-DD-YYYY HH:MM:SS`` timestamp in front. Which rails exist
depends on the module, and so does the rail that measures the whole input:

==================  ====================================================  =====================
module              rails (examples)                                      input power
==================  ====================================================  =====================
Nano, TX1           POM_5V_IN, POM_5V_GPU, POM_5V_CPU                     POM_5V_IN
TX2, Xavier NX,     VDD_IN, VDD_CPU, VDD_GPU, VDD_SOC, ... /              VDD_IN
Orin NX / Nano      VDD_IN, VDD_CPU_GPU_CV, VDD_SOC
AGX Xavier          GPU, CPU, SOC, CV, VDDRQ, SYS5V                       sum of the rails
AGX Orin            VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO  sum of the rails
==================  ====================================================  =====================

On Nano and TX2 the sub-rails are part of the input rail and must not be
added to it; AGX modules have no input rail, and their module power is the
sum of the separate rails (as NVIDIA's forum answers and jetson-stats state).
``NC`` rails (not connected) are ignored. :attr:`PowerReading.rule` says
which rule gave the figure, and the record keeps it.

Captured lines in ``tests/data/tegrastats/`` (each with its source): AGX
Xavier (JetPack 4.2), TX2 (2018 and L4T 32.2), AGX Orin 64GB (JetPack 6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwprof.errors import MeasurementError

_RAIL = re.compile(r"(?:^|\s)(?P<name>[A-Z][A-Z0-9_]*) (?P<cur>\d+)(?:mW)?/(?P<avg>\d+)(?:mW)?(?=\s|$)")
#: Rails that measure the whole input, best first.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_IGNORED = {"NC"}


@dataclass(frozen=True)
class PowerReading:
    """Power of one tegrastats line.

    Attributes
    ----------
    rails_mw : dict
        Rail name → instantaneous power (mW), in printed order (an ``NC`` rail is left out).
    input_w : float
        Board input power (W) by :attr:`rule`.
    rule : str
        ``"VDD_IN"``, ``"POM_5V_IN"``, or ``"sum(GPU,CPU,...)"``.
    """

    rails_mw: dict[str, int]
    input_w: float
    rule: str


def parse_line(line: str) -> PowerReading | None:
    """The power of one tegrastats line, or None for a line without power rails.

    Raises
    ------
    MeasurementError
        A line that has rails but none with a power figure (a format this parser does not know).
    """
    rails: dict[str, int] = {}
    for m in _RAIL.finditer(line):
        name = m.group("name")
        if name in _IGNORED or name in ("RAM", "SWAP", "IRAM", "LFB"):
            continue
        rails[name] = int(m.group("cur"))
    if not rails:
        return None
    for name in INPUT_RAILS:
        if name in rails:
            return PowerReading(rails, rails[name] / 1000.0, name)  # tegrastats prints mW
    return PowerReading(rails, sum(rails.values()) / 1000.0, f"sum({','.join(rails)})")


def parse(text: str) -> list[PowerReading]:
    """Every power reading in ``text`` (one per tegrastats line that has rails)."""
    out = []
    for line in text.splitlines():
        reading = parse_line(line)
        if reading is not None:
            out.append(reading)
    return out


def mean_input_w(readings: list[PowerReading]) -> tuple[float, str]:
    """Mean input power (W) of ``readings`` and their rule.

    Raises
    ------
    MeasurementError
        No readings, or readings by different rules (lines of two boards mixed).
    """
    if not readings:
        raise MeasurementError("tegrastats printed no power line during the timed runs; lengthen the runs or "
                               "lower backend.power_interval_ms")
    rules = {r.rule for r in readings}
    if len(rules) > 1:
        raise MeasurementError(f"tegrastats lines disagree on their rails ({', '.join(sorted(rules))})")
    return sum(r.input_w for r in readings) / len(readings), rules.pop()


__all__ = ["INPUT_RAILS", "PowerReading", "mean_input_w", "parse", "parse_line"]
