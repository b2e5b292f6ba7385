"""A stand-in task and supernet for exact, fast tests of the search loops.

Like the stand-in phone of the Android path, :class:`StandInTask` replaces
the expensive part (training a supernet) by a fixed smooth function, so the
latency mechanics of a searcher run at its paper's step counts in
microseconds per step:

- per-cell quality ``q[l, k] = strength · f(MACs[l, k]) + noise · N(0, 1)``
  (fixed by ``seed``; 0 on illegal cells), ``f = log1p(MACs / 1e6)``
  (``"log-macs"``) or MACs / max MACs (``"linear"``) of the real (224) op;
- the stand-in supernet's logits put ``s(w) = Σ_{l,k} w[l, k] · q̄[l, k]`` on
  the label (``q̄`` = ``q`` centred per layer over its legal cells), so the
  cross-entropy ``softplus(−s)`` decreases in ``s`` and its gradient reaches
  the architecture weights exactly as a real supernet's would;
- SPOS's fitness is ``σ(s(arch))``.

``strength = 0, noise = 0`` isolates the latency machinery (no task pull).

:func:`conformance_latency` gives every registered searcher a latency model
that fits its default space, from the shipped files where they exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hwprof.errors import ConfigError, SpaceError
from searchers.base import Budget, Searcher, SearchResult, require_latency

QUALITIES = ("log-macs", "linear")


def cell_macs(space: Any) -> np.ndarray:
    """MACs of every candidate at every layer of the real space, float64 ``[L, K]`` (0 where illegal)."""
    out = np.zeros((space.num_layers, space.max_choices), dtype=np.float64)
    for l, row in enumerate(space.choice_ops()):
        for k, op in enumerate(row):
            if op is not None:
                out[l, k] = op.macs()
    return out


class StandInSuperNet(nn.Module):
    """Supernet double: logits ``[B, 2]`` whose label logit is ``s(weights)``.

    Same call signature as :meth:`searchers.supernet.SuperNet.forward`; extra
    keyword arguments (depth weights, mids, ...) are accepted and ignored.

    Attributes
    ----------
    space, num_layers, max_choices, mask, candidates
        As :class:`~searchers.supernet.SuperNet`.
    quality : Tensor float64 ``[L, K]``
        Centred per-cell quality ``q̄`` (0 on illegal cells).
    dummy : nn.Parameter
        One zero parameter (so optimizers have something to step); it enters
        the logits as ``0 · dummy``.
    """

    def __init__(self, space: Any, quality: np.ndarray):
        super().__init__()
        self.space = space
        self.num_layers = space.num_layers
        self.max_choices = space.max_choices
        self.mask = np.array(space.mask, dtype=bool)
        self.candidates = tuple(space.candidates)
        self.register_buffer("quality", torch.as_tensor(np.asarray(quality, dtype=np.float64)))
        self.dummy = nn.Parameter(torch.zeros(()))
        self._q = {}

    def _quality(self, like: Tensor) -> Tensor:
        key = (like.dtype, like.device)
        if key not in self._q:
            self._q[key] = self.quality.to(dtype=like.dtype, device=like.device)
        return self._q[key]

    def _illegal(self, like: Tensor) -> Tensor:
        key = ("illegal", like.dtype, like.device)
        if key not in self._q:
            self._q[key] = torch.as_tensor(~self.mask, dtype=like.dtype, device=like.device)
        return self._q[key]

    def score(self, weights: Any) -> Tensor:
        """``s``: ``Σ w·q̄`` for float weights ``[L, K]``, ``Σ_l q̄[l, idx_l]`` for indices (a 0-d tensor)."""
        if isinstance(weights, Tensor) and weights.is_floating_point():
            if weights.shape[-2:] != (self.num_layers, self.max_choices):
                raise SpaceError(f"weights have shape {tuple(weights.shape)}; expected [L, K]")
            if bool((weights.detach() * self._illegal(weights)).any()):
                raise SpaceError("weights put mass on candidates the space does not have; mask them")
            return (weights * self._quality(weights)).sum((-1, -2))
        if isinstance(weights, np.ndarray) and weights.dtype.kind == "f":
            return self.score(torch.as_tensor(weights))
        raw = weights.detach().cpu() if isinstance(weights, Tensor) else weights
        idx = torch.as_tensor(np.asarray(raw), dtype=torch.int64)
        if idx.shape != (self.num_layers,):
            raise SpaceError(f"a single path is {self.num_layers} candidate indices, got shape {tuple(idx.shape)}")
        if not self.mask[np.arange(self.num_layers), idx.numpy()].all():
            raise SpaceError("the path uses a candidate the space does not have at some layer")
        return self.quality.to(torch.float32)[torch.arange(self.num_layers), idx].sum()

    def forward(self, x: Tensor, weights: Any, *, compute: str = "nonzero", **_: Any) -> Tensor:
        """Logits ``[B, 2]``: column 0 (the stand-in's label) is ``s(weights)``, column 1 is 0."""
        s = self.score(weights) + 0.0 * self.dummy.to(torch.float32)
        b = x.shape[0]
        s = s.reshape(()).expand(b)
        return torch.stack([s, torch.zeros_like(s)], dim=1)

    def layer_forward(self, l: int, x: Tensor, weights_row: Any, compute: str = "nonzero") -> Tensor:
        """Per-layer part of ``s`` (``[B]``): ``Σ_k w_k · q̄[l, k]`` or ``q̄[l, idx]``."""
        if isinstance(weights_row, Tensor) and weights_row.is_floating_point():
            v = (weights_row * self._quality(weights_row)[l]).sum()
        else:
            v = self.quality[l, int(weights_row)].to(torch.float32)
        return v.expand(x.shape[0])

    def path_parameters(self, indices: Any) -> list[nn.Parameter]:
        return [self.dummy]


class StandInTask:
    """Task double (duck-types :class:`searchers.data.Task`) whose supernet is a fixed function.

    Parameters
    ----------
    space : Space
    seed : int
        Fixes the quality noise.
    strength : float
        Weight of the MACs term of the quality (task pull toward bigger ops).
    noise : float
        Standard deviation of the per-cell Gaussian noise.
    quality : {"log-macs", "linear"}
    steps_per_epoch : int
        Batches per epoch of every split (whatever the batch size).

    Attributes
    ----------
    quality_ : ndarray float64 ``[L, K]``
        ``strength · f(MACs) + noise · N(0, 1)``, 0 on illegal cells.
    centred_ : ndarray float64 ``[L, K]``
        ``quality_`` minus each layer's mean over its legal cells (0 on illegal cells).
    """

    name = "stand-in"
    classes = 2
    width_mult = 0.25

    def __init__(self, space: Any, *, seed: int = 0, strength: float = 1.0, noise: float = 0.5,
                 quality: str = "log-macs", steps_per_epoch: int = 40, resolution: int = 8):
        if quality not in QUALITIES:
            raise ConfigError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        if steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
        self.space = space
        self.seed = seed
        self.strength = float(strength)
        self.noise = float(noise)
        self.quality = quality
        self._steps = int(steps_per_epoch)
        self.resolution = int(resolution)
        mask = np.asarray(space.mask, dtype=bool)
        macs = cell_macs(space)
        f = np.log1p(macs / 1e6) if quality == "log-macs" else macs / max(macs[mask].max(), 1.0)
        rng = np.random.default_rng(seed)
        q = self.strength * f + self.noise * rng.standard_normal(mask.shape)
        q[~mask] = 0.0
        self.quality_ = q
        mean = q.sum(1, keepdims=True) / mask.sum(1, keepdims=True)
        self.centred_ = np.where(mask, q - mean, 0.0)
        n = 16
        x = torch.zeros(n, 3, self.resolution, self.resolution)
        y = torch.zeros(n, dtype=torch.int64)
        self.x_weights = self.x_arch = self.x_test = x
        self.y_weights = self.y_arch = self.y_test = y

    def __repr__(self) -> str:
        return (f"StandInTask({self.space.name}, seed={self.seed}, strength={self.strength}, "
                f"noise={self.noise}, quality={self.quality!r})")

    def make_supernet(self, space: Any = None) -> StandInSuperNet:
        """The supernet double of this task (``space`` must be the task's space)."""
        if space is not None and space.name != self.space.name:
            raise SpaceError(f"this stand-in task was built for {self.space.name}, not {space.name}")
        return StandInSuperNet(self.space, self.centred_)

    def score(self, indices: Any) -> float:
        """``s(arch) = Σ_l q̄[l, idx_l]`` of one architecture (indices ``[L]``, an Arch or its text)."""
        idx = self._indices(indices)
        return float(self.centred_[np.arange(len(idx)), idx].sum())

    def fitness(self, indices: Any) -> float:
        """``σ(s(arch))``: SPOS's fitness on the stand-in."""
        s = self.score(indices)
        return 1.0 / (1.0 + math.exp(-s)) if s > -700 else 0.0

    evaluate = fitness

    def best_indices(self) -> np.ndarray:
        """The architecture of highest ``s`` (per layer the legal cell of highest quality)."""
        q = np.where(self.space.mask, self.centred_, -np.inf)
        return q.argmax(1)

    def _indices(self, arch: Any) -> np.ndarray:
        if isinstance(arch, str) or hasattr(arch, "choices"):
            return self.space.indices(arch)
        idx = np.asarray(arch.detach().cpu() if isinstance(arch, Tensor) else arch, dtype=np.int64)
        if idx.shape != (self.space.num_layers,):
            raise SpaceError(f"an architecture is {self.space.num_layers} indices, got shape {idx.shape}")
        return idx

    # -- Task duck-typing ----------------------------------------------------------
    def steps_per_epoch(self, split: str, batch_size: int) -> int:
        return self._steps

    def batches(self, split: str, batch_size: int, *, generator: torch.Generator,
                augment: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """``steps_per_epoch`` batches of zeros (the stand-in supernet ignores its input)."""
        b = max(1, min(int(batch_size), len(self.y_weights)))
        x, y = self.x_weights[:b], self.y_weights[:b]
        for _ in range(self._steps):
            yield x, y


# -- a reference searcher (tests of the registry, the CLI and the conformance suite) -------
class RandomSearch(Searcher):
    """Random search: the reference plugin of the tests (not registered).

    Each epoch draws ``samples`` architectures, prices them with
    ``latency.score`` and keeps the one of best proxy quality (stand-in:
    ``task.fitness``; real task: accuracy of the untrained supernet on the
    ``arch`` split) within the target (or the constraint); with nothing
    feasible, the fastest.

    Parameters
    ----------
    samples : int
        Architectures drawn per epoch.
    epochs : int
        Epochs when the budget gives none (``Budget(steps=n)`` counts epochs here).
    """

    name: ClassVar[str] = "random"
    paper: ClassVar[str] = "random search (reference for tests)"
    default_space: ClassVar[str] = "proxylessnas"
    latency_kinds: ClassVar[tuple[str, ...]] = ("score",)
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {"samples": (50, "reference value")}

    def __init__(self, samples: int = 50, epochs: int = 2):
        self.samples = samples
        self.epochs = epochs

    def fit(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> RandomSearch:
        from searchers.supernet import accuracy, make_supernet

        self._start_clock()
        require_latency(self, latency, "score", "any latency table or predictor")
        self.space_, self.latency_, self.task_, self.seed_ = space, latency, task, seed
        self.supernet_ = make_supernet(task, space)
        rng = np.random.default_rng(seed)
        epochs = budget.epochs or budget.steps or self.epochs
        self.candidates_: list[tuple[str, float, float]] = []  # (arch text, latency ms, quality)
        self.trace_: list[dict] = []
        for epoch in range(int(epochs)):
            archs = space.sample(self.samples, seed=int(rng.integers(2**31)))
            lat = latency.score(archs)
            for arch, ms in zip(archs, lat):
                idx = space.indices(arch)
                q = (task.fitness(idx) if hasattr(task, "fitness")
                     else accuracy(self.supernet_, idx, task.x_arch, task.y_arch))
                self.candidates_.append((arch.encode(), float(ms), float(q)))
            row = {"epoch": epoch, "latency_ms": float(np.min(lat)), "quality": max(c[2] for c in self.candidates_),
                   "seconds": self._elapsed()}
            self.trace_.append(row)
            if callback is not None:
                callback(dict(row))
        return self

    def search(self, *, target_ms: float | None = None, constraint: dict | None = None) -> SearchResult:
        limit = target_ms
        if constraint is not None and constraint.get("kind") == "latency":
            limit = float(constraint["limit"])
        feasible = [c for c in self.candidates_ if limit is None or c[1] <= limit]
        if constraint is not None and constraint.get("kind") == "flops":
            feasible = [c for c in feasible if self.space_.macs(c[0]) <= float(constraint["limit"])]
        best = max(feasible, key=lambda c: c[2]) if feasible else min(self.candidates_, key=lambda c: c[1])
        proxy = {"task": getattr(self.task_, "name", "?"), "resolution": getattr(self.task_, "resolution", None),
                 "width_mult": getattr(self.task_, "width_mult", None), "classes": getattr(self.task_, "classes", None),
                 "test_accuracy": None}
        return self.make_result(space=self.space_, arch=best[0], latency=self.latency_, target_ms=target_ms,
                                constraint=constraint, proxy=proxy, trace=self.trace_, seed=self.seed_)


# -- helpers of the conformance suite ----------------------------------------------------
#: Trace keys that hold wall-clock time; the determinism check leaves them out. Name timing
#: fields ``seconds`` or ``<something>_seconds``.
TIMING_KEYS = frozenset({"seconds", "wall_s", "elapsed", "time"})


def is_timing_key(key: str) -> bool:
    """Whether a trace key holds wall-clock time (``seconds``, ``*_seconds``, ``wall_s``, ...)."""
    return key in TIMING_KEYS or key.endswith("_seconds")


def strip_timing(trace: list[dict]) -> list[dict]:
    """``trace`` without its timing fields (see :func:`is_timing_key`)."""
    return [{k: v for k, v in row.items() if not is_timing_key(k)} for row in trace]


def conformance_target(latency: Any, space: Any, n: int = 200, seed: int = 0) -> float:
    """A reachable target: the median latency (ms) of ``n`` random architectures of ``space``."""
    return float(np.median(latency.score(space.sample(n, seed=seed))))


# -- latency models for the conformance suite ----------------------------------------
def _data_dir() -> Path:
    """The repository's ``data/`` folder (shipped latency files)."""
    return Path(__file__).resolve().parent.parent / "data"


def macs_table_model(space: Any, ms_per_mmac: float = 0.05, constant_ms: float = 2.0,
                     width_curves: bool = False) -> Any:
    """A synthetic latency table priced by MACs: ``ms = ms_per_mmac · MMACs`` per op (+ the fixed ops).

    With ``width_curves`` the table also holds entries at every mid-channel
    count of the TF-NAS width range (``width_curve`` / ``width_expected`` work);
    only spaces with ``width == "mid"`` have widths.
    """
    import hwprof
    from hwprof.latency import TableLatencyModel

    if width_curves:
        table = _macs_table(space, ms_per_mmac, constant_ms)
        return hwprof.latency_model(table, space=space)
    values = cell_macs(space) / 1e6 * ms_per_mmac
    fixed = sum(op.macs() for op in space.fixed_ops()) / 1e6 * ms_per_mmac + constant_ms
    model = TableLatencyModel(values, space.mask, fixed, space)
    model.source = {"kind": "table", "name": f"synthetic {ms_per_mmac:g} ms/MMAC table of {space.name}"}
    return model


def _macs_table(space: Any, ms_per_mmac: float, constant_ms: float) -> Any:
    """A LatencyTable with every op of the space (widths included) priced by MACs."""
    from hwprof.tables import table_from_ops

    ops: dict[Any, float] = {}
    for op in space.fixed_ops():
        ops[op] = op.macs() / 1e6 * ms_per_mmac + (constant_ms if not ops else 0.0)
    for g, row in zip(space.geometry(), space.choice_ops()):
        for cand, op in zip(space.candidates, row):
            if op is None:
                continue
            ops[op] = op.macs() / 1e6 * ms_per_mmac
            if space.width == "mid" and cand != "skip":
                lo, hi = space.mid_range(g, cand)
                for m in range(lo, hi + 1):
                    wop = space.candidate_op(g, cand, m)
                    ops[wop] = wop.macs() / 1e6 * ms_per_mmac
    return table_from_ops(ops, 0.0, space=space.name, device="synthetic", batch=1)


def conformance_latency(searcher_cls: Any, space: Any = None) -> Any:
    """A latency model fit for ``searcher_cls`` on ``space`` (default: its ``default_space``).

    The shipped files where they match (``data/lightnas`` MLP for ``lightnas``,
    ``data/single-path-nas`` runtime JSON for ``single-path-runtime`` searchers
    on ``spnas``), else a MACs-priced synthetic table (with width curves for
    searchers whose ``latency_kinds`` include ``"width"``).
    """
    import hwprof

    if space is None or isinstance(space, str):
        space = hwprof.space(space or searcher_cls.default_space)
    kinds = tuple(getattr(searcher_cls, "latency_kinds", ()))
    data = _data_dir()
    if "single-path-runtime" in kinds and space.name == "spnas":
        return hwprof.latency_model(data / "single-path-nas" / "pixel1_runtime_model.json", space=space)
    if space.name == "lightnas" and "width" not in kinds and "single-path-runtime" not in kinds:
        return hwprof.latency_model(data / "lightnas" / "latency_predictor.pth.tar", space=space)
    return macs_table_model(space, width_curves="width" in kinds)


__all__ = [
    "QUALITIES",
    "TIMING_KEYS",
    "RandomSearch",
    "StandInSuperNet",
    "StandInTask",
    "cell_macs",
    "conformance_latency",
    "conformance_target",
    "is_timing_key",
    "macs_table_model",
    "strip_timing",
]
