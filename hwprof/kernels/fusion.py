"""Which neighbouring ops a device fuses, measured (nn-Meter's test).

For a pair ``first+second`` (``conv+relu6``, ``add+relu``, ...), three
one-model artifacts are timed on the device in interleaved rounds: the first
op alone, the second alone on the first's output shape, and both in sequence.
With ``net(x) = t(x) − t(floor)`` (a one-element ReLU: the runtime's fixed
cost of a call), the pair is fused when running the second after the first
costs less than half of running it alone::

    net(first + second) − net(first) < 0.5 · net(second)

(the saved share is taken within each round, then its median over rounds).
A pair whose saved share is within two standard errors of one half cannot be
decided, nor one the device's model format cannot hold alone (TFLite: a bare
BatchNorm); it is reported as such and left fused (the grouping's default).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hwprof.errors import ConfigError

#: The pairs tested, each with (first, second, both) module builders on a shared shape.
PAIRS: tuple[str, ...] = (
    "conv+bn", "conv+relu", "conv+relu6", "conv+hswish", "conv+swish", "dwconv+relu", "dwconv+relu6",
    "dwconv+hswish", "dwconv+swish", "add+relu", "conv+add",
)


@dataclass(frozen=True)
class FusionResult:
    """The test of one pair.

    Attributes
    ----------
    pair : str
    first_ms, second_ms, both_ms : float
        Times above the floor (ms).
    fused : bool or None
        None when the second op costs less than the measurement can resolve.
    """

    pair: str
    first_ms: float
    second_ms: float
    both_ms: float
    fused: bool | None

    @property
    def saved(self) -> float:
        """Share of the second op's time saved by running it after the first."""
        return 1.0 - (self.both_ms - self.first_ms) / self.second_ms if self.second_ms > 0 else float("nan")


def _modules(pair: str, h: int, c: int) -> tuple[Callable, Callable, Callable]:
    """Builders of the (first, second, both) modules of ``pair`` on input ``[1, c, h, h]``."""
    import torch
    from torch import nn

    from hwprof.spaces.modules import ConvBNAct, make_act

    first, second = pair.split("+")
    groups, k = (c, 3) if first == "dwconv" else (1, 1)

    class AddConst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("y", torch.rand(1, c, h, h))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.y

    def one(name: str) -> nn.Module:
        if name in ("conv", "dwconv"):
            if second == "bn":
                return nn.Conv2d(c, c, k, 1, k // 2, groups=groups, bias=False)
            return ConvBNAct(c, c, k, 1, groups)  # hwprof's own module: every exporter knows it
        if name == "add":
            return AddConst()
        if name == "bn":
            return nn.BatchNorm2d(c)
        return make_act(name)

    def both() -> nn.Module:
        if first in ("conv", "dwconv") and second in ("relu", "relu6", "hswish", "swish"):
            return ConvBNAct(c, c, k, 1, groups, second)
        return nn.Sequential(one(first), one(second))

    return (lambda: one(first)), (lambda: one(second)), both


def measure_fusion(
    device: Any, pairs: tuple[str, ...] = PAIRS, rounds: int = 9, runs: int = 30, h: int = 56, c: int = 64,
    workdir: Path | None = None, on_pair: Callable[[FusionResult], None] | None = None,
) -> list[FusionResult]:
    """Test ``pairs`` on an open :class:`~hwprof.devices.Device` (see the module docstring).

    Parameters
    ----------
    device : Device
    pairs : tuple of str
        Names from :data:`PAIRS`.
    rounds, runs : int
        Interleaved rounds (a fresh session each) and timed runs per round; the median of the rounds' medians is used.
    h, c : int
        Feature map of the test (``[1, c, h, h]``).
    """
    import torch

    from hwprof.artifacts.export import export_module
    from hwprof.artifacts.record import SUFFIXES, Artifact, sha256_of
    from hwprof.kernels.predictor import FLOOR_KEY
    from hwprof.artifacts.workload import Workload, artifact_for

    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        raise ConfigError(f"unknown fusion pair(s) {', '.join(unknown)}; known: {', '.join(PAIRS)}")
    fmt = device.artifact_format
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir or tmp)
        floor = artifact_for(Workload.of_kernel(FLOOR_KEY), fmt, folder)
        results = []
        shape = (1, c, h, h)
        for pair in pairs:
            arts = [floor]
            try:
                for name, build in zip(("first", "second", "both"), _modules(pair, h, c)):
                    path = folder / f"fusion-{pair.replace('+', '-')}-{name}{SUFFIXES[fmt]}"
                    torch.manual_seed(0)
                    export_module(build().eval(), shape, fmt, path, description=f"hwprof fusion {pair} {name}")
                    arts.append(Artifact(path, fmt, sha256_of(path), shape, f"{pair}:{name}"))
            except ConfigError:  # an op the device's format cannot hold alone (TFLite: a bare BatchNorm)
                results.append(FusionResult(pair, float("nan"), float("nan"), float("nan"), None))
                continue
            times = np.empty((rounds, len(arts)))
            for r in range(rounds):
                for j, art in enumerate(arts):
                    prepared = device.prepare(art)
                    try:
                        times[r, j] = float(np.median(device.run(prepared, runs, warmup=5)))
                    finally:
                        device.release(prepared)
            res = decide(pair, times)
            results.append(res)
            if on_pair is not None:
                on_pair(res)
    return results


def decide(pair: str, times: np.ndarray) -> FusionResult:
    """The verdict on ``pair`` from ``times`` ``[rounds, 4]`` (ms of floor, first, second, both per round).

    Times are taken above the floor of their own round; the share of the second op saved is paired
    within each round (a level shift between rounds cancels), and its median over rounds is compared
    with one half, undecided within two standard errors of it or when the second op costs under 2 µs.
    """
    times = np.asarray(times, dtype=np.float64)
    net = times[:, 1:] - times[:, :1]
    first, second, both = (float(x) for x in np.median(net, axis=0))
    saved = 1.0 - (net[:, 2] - net[:, 0]) / max(second, 1e-9)
    mid = float(np.median(saved))
    se = 1.25 * 1.4826 * float(np.median(np.abs(saved - mid))) / np.sqrt(len(times))
    fused = None if second <= 0.002 or abs(mid - 0.5) < 2 * se else bool(mid > 0.5)
    return FusionResult(pair, first, second, both, fused)


def rules(results: list[FusionResult]) -> dict[str, bool]:
    """Fusion rules for :func:`hwprof.artifacts.graph.kernels_of` from the decided tests."""
    return {r.pair: r.fused for r in results if r.fused is not None}


__all__ = ["FusionResult", "PAIRS", "decide", "measure_fusion", "rules"]
