"""Which neighbouring ops a device fuses, measured (nn-Meter's test).

For a pair ``first+second`` (``conv+relu6``, ``add+relu``, ...), three
one-model artifacts are timed on the device in interleaved rounds: the first
op alone, the second alone on the first's output shape, and both in sequence.
With ``net(x) = t(x) − t(floor)`` (a one-element ReLU: the runtime's fixed
cost of a call), the pair is fused when running the second after the first
costs less than half of running it alone::

    net(first + second) − net(first) < 0.5 · net(second)

A pair whose second op costs less than the rounds' own spread cannot be
decided; it is reported as such and left fused (the grouping's default).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: The pairs tested, each with (first, second, both) module builders on a shared shape.
PAIRS: tuple[str, ...] = (
    "conv+bn", "conv+relu", "conv+relu6", "conv+hswish", "conv+swish", "dwconv+relu6", "dwconv+hswish",
    "dwconv+swish", "add+relu", "conv+add",
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


def _modules(pair: str, h: int, c: int) -> tuple[Callable, Callable, Callable, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Builders of (first, second, both) and the input shapes of first and second."""
    import torch
    from torch import nn

    from hwprof.spaces.modules import make_act

    first, second = pair.split("+")
    groups = c if first == "dwconv" else 1
    k = 3 if first == "dwconv" else 1

    def conv() -> nn.Module:
        layers: list[nn.Module] = [nn.Conv2d(c, c, k, 1, k // 2, groups=groups, bias=second == "bn")]
        return nn.Sequential(*layers) if second == "bn" else nn.Sequential(*layers, nn.BatchNorm2d(c))

    class AddConst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("y", torch.rand(1, c, h, h))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.y

    def one(name: str) -> nn.Module:
        if name in ("conv", "dwconv"):
            return conv()
        if name == "add":
            return AddConst()
        if name == "bn":
            return nn.BatchNorm2d(c)
        return make_act(name)

    shape = (1, c, h, h)
    return (lambda: one(first)), (lambda: one(second)), (lambda: nn.Sequential(one(first), one(second))), shape, shape


def measure_fusion(
    device: Any, pairs: tuple[str, ...] = PAIRS, rounds: int = 7, runs: int = 30, h: int = 56, c: int = 64,
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
        from hwprof.errors import ConfigError

        raise ConfigError(f"unknown fusion pair(s) {', '.join(unknown)}; known: {', '.join(PAIRS)}")
    fmt = device.artifact_format
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir or tmp)
        floor = artifact_for(Workload.of_kernel(FLOOR_KEY), fmt, folder)
        results = []
        for pair in pairs:
            arts = [floor]
            b1, b2, both, s1, _ = _modules(pair, h, c)
            for name, build in (("first", b1), ("second", b2), ("both", both)):
                path = folder / f"fusion-{pair.replace('+', '-')}-{name}{SUFFIXES[fmt]}"
                torch.manual_seed(0)
                export_module(build().eval(), s1, fmt, path, description=f"hwprof fusion {pair} {name}")
                arts.append(Artifact(path, fmt, sha256_of(path), s1, f"{pair}:{name}"))
            times = np.empty((rounds, len(arts)))
            for r in range(rounds):
                for j, art in enumerate(arts):
                    prepared = device.prepare(art)
                    try:
                        times[r, j] = float(np.median(device.run(prepared, runs, warmup=5)))
                    finally:
                        device.release(prepared)
            med = np.median(times, axis=0)
            net = med[1:] - med[0]
            spread = float(np.median(np.abs(times[:, 3] - med[3])) * 1.4826 * 2 / np.sqrt(rounds))
            first, second, both_ms = (float(x) for x in net)
            fused = None if second <= max(spread, 0.002) else bool(both_ms - first < 0.5 * second)
            res = FusionResult(pair, first, second, both_ms, fused)
            results.append(res)
            if on_pair is not None:
                on_pair(res)
    return results


def rules(results: list[FusionResult]) -> dict[str, bool]:
    """Fusion rules for :func:`hwprof.artifacts.graph.kernels_of` from decided tests (``dwconv`` pairs apply to ``conv``)."""
    out: dict[str, bool] = {}
    for r in results:
        if r.fused is None:
            continue
        first, second = r.pair.split("+")
        key = f"conv+{second}" if first == "dwconv" else r.pair
        out[key] = out.get(key, True) and r.fused
    return out


__all__ = ["FusionResult", "PAIRS", "measure_fusion", "rules"]
