"""SPOS: Single Path One-Shot NAS with uniform sampling (Guo et al., ECCV 2020).

Two steps, each only what the paper and its released code do:

1. :meth:`SPOS.fit` trains a weight-sharing supernet one path at a time, the
   path drawn uniformly, or by **uniform constraint sampling** (the default):
   a cost bin is drawn uniformly, then uniform random architectures until
   one falls in it (``get_uniform_sample_cand`` in ``src/Supernet/train.py``).
   No architecture parameters, no latency term in training.
2. :meth:`SPOS.search` runs the evolutionary search of Alg. 1
   (``src/Search/search.py``) under a **hard** constraint checked before any
   evaluation: FLOPs (``{"kind": "flops", "limit": 330e6}``, MACs counted by
   :func:`hwprof.latency.macs_model`) or latency (``{"kind": "latency",
   "limit": ms}``, by the latency model's batched ``score``). It may be called
   again on the same fitted supernet with other constraints (the paper's
   point: one supernet, many budgets). :meth:`SPOS.random_search` is the
   random-search baseline at the same number of evaluations (Fig. 2, Table 3).

Fitness is the accuracy on the task's ``arch`` split after BN recalibration
(``src/Search/tester.py``: running statistics reset, then training batches
forwarded in train mode), or the stand-in task's ``fitness()``.

Constraint bins
---------------
For the ``spos`` space with a FLOPs cost the bins are the paper's:
``[290, 300), [300, 310), …, [350, 360]`` M. Elsewhere (another space, or a
latency cost) the rule is: :data:`N_AUTO_BINS` equal-width bins spanning the
1st to 99th percentile of the cost of :data:`AUTO_BIN_SAMPLES` uniform random
architectures (seeded). On the ``spos`` space that rule gives ≈ 299–357 M, the
range the paper's bins cover.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from hwprof.latency import macs_model
from searchers.base import Budget, Searcher, SearchError, SearchResult

#: The paper's FLOPs bins for constraint sampling on the spos space, in MMACs (``train.py``).
PAPER_BINS_MMACS: tuple[float, ...] = tuple(float(x) for x in range(290, 361, 10))
#: Auto bins elsewhere: how many, and from how many random architectures their range is read.
N_AUTO_BINS = 7
AUTO_BIN_SAMPLES = 10_000
#: The paper's supernet schedule: 150 000 iterations at batch 1024 (≈ 120 ImageNet epochs).
PAPER_ITERS = 150_000
#: Epochs on the proxy when the budget names none (see ``deviations``).
DEFAULT_EPOCHS = 15


# -- cost and constraint --------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    """A hard constraint: ``cost(arch) <= limit``.

    Attributes
    ----------
    kind : str
        ``"flops"`` (limit in MACs; checked in MMACs on :func:`macs_model`) or
        ``"latency"`` (limit in ms; checked by the latency model's ``score``).
    limit : float
        MACs or ms.
    """

    kind: str
    limit: float

    @property
    def limit_in_cost_units(self) -> float:
        """The limit in the cost model's unit (MMACs for FLOPs, ms for latency)."""
        return self.limit / 1e6 if self.kind == "flops" else self.limit

    def as_dict(self) -> dict:
        return {"kind": self.kind, "limit": float(self.limit)}

    @classmethod
    def parse(cls, value: Mapping[str, Any] | str | Constraint) -> Constraint:
        """From ``{"kind": ..., "limit": ...}`` or ``"flops:330e6"`` / ``"latency:80"``."""
        if isinstance(value, Constraint):
            return value
        if isinstance(value, str):
            kind, _, limit = value.partition(":")
            value = {"kind": kind.strip(), "limit": limit}
        kind = value.get("kind") if isinstance(value, Mapping) else None
        if kind not in ("flops", "latency"):
            raise SearchError(
                f"unknown constraint {value!r}; write {{'kind': 'flops', 'limit': 330e6}} (MACs) "
                "or {'kind': 'latency', 'limit': 80} (ms)"
            )
        try:
            limit = float(value["limit"])
        except (KeyError, TypeError, ValueError):
            raise SearchError(f"constraint {value!r} needs a numeric limit (MACs for flops, ms for latency)") from None
        if not (limit > 0 and math.isfinite(limit)):
            raise SearchError(f"constraint limit must be a positive number, got {limit}")
        return cls(kind, limit)


class ConstraintSampler:
    """Uniform constraint sampling of SPOS's supernet training.

    Draws a bin uniformly, then uniform random architectures until one falls
    in it; after ``timeout`` misses it returns a fresh unconstrained one (the
    released ``get_uniform_sample_cand(timeout=500)``). Bins are half-open
    ``[e_i, e_{i+1})`` except the last, which is closed.

    Parameters
    ----------
    space : Space
    cost : TableLatencyModel or any model with batched ``score(int [N, L])``
    edges : sequence of float
        Bin edges in the cost's unit (MMACs or ms), increasing.
    timeout : int
        Draws per bin before giving up.
    """

    def __init__(self, space: Any, cost: Any, edges: Sequence[float], timeout: int = 500):
        self.space = space
        self.cost = cost
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or len(self.edges) < 2 or not np.all(np.diff(self.edges) > 0):
            raise SearchError(f"bin edges must increase, got {list(edges)}")
        self.timeout = int(timeout)

    @property
    def num_bins(self) -> int:
        return len(self.edges) - 1

    def bin_of(self, costs: np.ndarray) -> np.ndarray:
        """Bin index of each cost, -1 outside ``[edges[0], edges[-1]]``."""
        b = np.searchsorted(self.edges, costs, side="right") - 1
        b = np.where(costs == self.edges[-1], self.num_bins - 1, b)
        return np.where((costs < self.edges[0]) | (costs > self.edges[-1]), -1, b)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, int, bool]:
        """One training architecture: ``(indices int [L], bin, timed_out)``."""
        b = int(rng.integers(self.num_bins))
        # one batch of `timeout` iid draws: the first hit is distributed as the released sequential loop's
        cands = uniform_indices(self.space, rng, self.timeout)
        hit = np.flatnonzero(self.bin_of(self.cost.score(cands)) == b)
        if len(hit):
            return cands[hit[0]], b, False
        return uniform_indices(self.space, rng, 1)[0], b, True


def auto_bin_edges(space: Any, cost: Any, rng: np.random.Generator) -> np.ndarray:
    """:data:`N_AUTO_BINS` equal bins over the 1st–99th percentile of random architectures' cost."""
    costs = cost.score(uniform_indices(space, rng, AUTO_BIN_SAMPLES))
    lo, hi = np.percentile(costs, [1.0, 99.0])
    if not hi > lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    return np.linspace(lo, hi, N_AUTO_BINS + 1)


# -- architectures as index vectors -----------------------------------------------------------------
_COLUMNS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _legal_columns(space: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(table int [L, K], counts int [L])``: row ``l`` lists the columns a uniform draw picks from.

    On depth spaces ``skip`` is left out (depth is drawn per stage instead).
    """
    key = (space.name, space.skip, space.mask.tobytes())
    hit = _COLUMNS.get(key)
    if hit is None:
        skip = space.candidates.index("skip") if "skip" in space.candidates else -1
        rows = [np.flatnonzero(r & ((np.arange(len(r)) != skip) | (space.skip != "depth"))) for r in space.mask]
        table = np.zeros((space.num_layers, space.max_choices), dtype=np.int64)
        for layer, r in enumerate(rows):
            table[layer, : len(r)] = r
        hit = _COLUMNS[key] = (table, np.array([len(r) for r in rows], dtype=np.int64))
    return hit


def uniform_indices(space: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform random legal architectures, int ``[n, L]``.

    Each layer takes a uniform choice among its legal candidates; spaces with
    per-stage depth (``skip == "depth"``) first draw each stage's depth
    uniformly, as :meth:`Space.sample` does.
    """
    table, counts = _legal_columns(space)
    pick = (rng.random((n, space.num_layers)) * counts).astype(np.int64)
    out = table[np.arange(space.num_layers), pick]
    if space.skip == "depth":
        skip = space.candidates.index("skip")
        start = 0
        for st in space.stages:
            depth = rng.integers(space.min_depth, st.layers + 1, size=n)
            pos = np.arange(st.layers)
            out[:, start : start + st.layers] = np.where(
                pos[None, :] >= depth[:, None], skip, out[:, start : start + st.layers]
            )
            start += st.layers
    return out


def valid_indices(space: Any, idx: np.ndarray) -> bool:
    """Whether one index vector is an architecture of the space (mask and depth rule)."""
    if not space.mask[np.arange(space.num_layers), idx].all():
        return False
    if space.skip == "depth":
        skip = space.candidates.index("skip")
        start = 0
        for st in space.stages:
            s = idx[start : start + st.layers] == skip
            if s[: space.min_depth].any() or (np.diff(s.astype(np.int8)) < 0).any():
                return False
            start += st.layers
    return True


# -- evolution records ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One evaluated candidate of an evolutionary (or random) search.

    Attributes
    ----------
    indices : tuple of int
        Candidate index per layer.
    cost : float
        MMACs (FLOPs constraint) or ms (latency constraint).
    fitness : float
        Accuracy on the arch split after BN recalibration (or the stand-in's fitness).
    origin : str
        ``"random"``, ``"mutation"`` or ``"crossover"``.
    parents : tuple of tuple of int
        The parent(s) it was made from (empty for random ones).
    fired : tuple of bool
        Mutation: the layers whose p = m_prob draw fired (empty otherwise).
    generation : int
        Generation in which it was made (0 = initial population).
    """

    indices: tuple[int, ...]
    cost: float
    fitness: float
    origin: str
    parents: tuple[tuple[int, ...], ...] = ()
    fired: tuple[bool, ...] = ()
    generation: int = 0


@dataclass(frozen=True)
class SearchRecord:
    """Everything one :meth:`SPOS.search` / :meth:`SPOS.random_search` call saw.

    Attributes
    ----------
    method : str
        ``"evolution"`` or ``"random"``.
    constraint : Constraint
    evaluated : list of Candidate
        In evaluation order; never the same indices twice.
    rejected : int
        Draws over the limit (not evaluated).
    duplicates : int
        Draws already evaluated (skipped).
    invalid : int
        Draws that are no architecture of the space (depth spaces only).
    topk_best, topk_mean : list of float
        Per generation, after the top-k update.
    best : Candidate
    """

    method: str
    constraint: Constraint
    evaluated: list[Candidate]
    rejected: int
    duplicates: int
    invalid: int
    topk_best: list[float] = field(default_factory=list)
    topk_mean: list[float] = field(default_factory=list)
    best: Candidate | None = None


#: Proposals drawn and priced together (the released ``stack_random_cand(batchsize=10)``).
PROPOSAL_BATCH = 10
Proposal = tuple  # (indices int [L], parents tuple, fired tuple)


class _Pool:
    """Bookkeeping of one search: the hard constraint first, then at most one evaluation per candidate."""

    def __init__(self, space: Any, cost: Any, limit: float, fitness: Callable[[np.ndarray], float]):
        self.space, self.cost, self.limit, self.fitness = space, cost, limit, fitness
        self.seen: dict[tuple[int, ...], Candidate] = {}
        self.evaluated: list[Candidate] = []
        self.rejected = self.duplicates = self.invalid = 0

    def run(self, make: Callable[[int], list[Proposal]], quota: int, max_tries: int, origin: str,
            generation: int, batch: int = PROPOSAL_BATCH) -> list[Candidate]:
        """Offer proposals from ``make(n)`` until ``quota`` are evaluated or ``max_tries`` were offered.

        Proposals come in batches (:data:`PROPOSAL_BATCH` for the operators,
        larger for iid random draws, where batching changes nothing but speed),
        priced by one ``score`` call; each is then checked in order: a
        duplicate is skipped, an invalid one counted, one over the limit
        rejected **before** any evaluation, the rest evaluated once. Leftovers
        of the last batch are dropped, as the released generator's are.
        """
        out: list[Candidate] = []
        tries = 0
        L = self.space.num_layers
        while len(out) < quota and tries < max_tries:
            props = make(min(batch, max_tries - tries))
            idx = np.stack([p[0] for p in props]).astype(np.int64, copy=False)
            keys = [tuple(row) for row in idx.tolist()]
            fresh = self.space.mask[np.arange(L), idx].all(1)
            if self.space.skip == "depth":
                fresh &= np.array([valid_indices(self.space, row) for row in idx])
            fresh &= np.array([k not in self.seen for k in keys])
            costs = np.full(len(props), np.nan)
            if fresh.any():
                costs[fresh] = self.cost.score(idx[fresh])
            for (row, parents, fired), key, c, ok in zip(props, keys, costs, fresh):
                if len(out) >= quota:
                    break
                tries += 1
                if key in self.seen:
                    self.duplicates += 1
                elif not ok:
                    self.invalid += 1
                elif c > self.limit:  # hard constraint, before any evaluation
                    self.rejected += 1
                else:
                    cand = Candidate(key, float(c), float(self.fitness(row)), origin, tuple(parents),
                                     tuple(bool(f) for f in fired), generation)
                    self.seen[key] = cand
                    self.evaluated.append(cand)
                    out.append(cand)
        return out


#: Random proposals priced per batch (iid draws: the batch size changes only the speed).
RANDOM_BATCH = 256


# -- the searcher ---------------------------------------------------------------------------------
class SPOS(Searcher):
    """Single Path One-Shot: uniform single-path supernet training, then evolution under a hard constraint.

    Parameters
    ----------
    sampling : {"constraint", "uniform"}
        Path sampling in supernet training (paper default: uniform constraint sampling).
    bins : sequence of float, optional
        Constraint-bin edges in the cost's unit; None = the paper's FLOPs bins
        on the spos space, else the auto rule (module docstring).
    bin_cost : {"auto", "flops", "latency"}
        What the bins measure. ``"auto"``: FLOPs on the spos space or without a
        latency model, else the latency model given to ``fit``.
    bin_timeout : int
        Draws per bin before an unconstrained draw (500).
    lr, momentum, weight_decay : float
        SGD (0.5, 0.9, 4e-5; weight decay on conv/linear weights only, as released).
        ``lr`` is the rate at the paper's batch of 1024; the run uses
        ``lr · batch_size / 1024`` (linear scaling: at the proxy's batch 64 the
        unscaled 0.5 drives the supernet to a dead constant output within an
        epoch) and decays it linearly to 0 over the budget.
    label_smoothing : float
        0.1.
    batch_size : int
        Proxy batch (the paper's 1024 exceeds the proxy's weight split).
    width_mult : float
        Channel multiplier of the proxy supernet.
    population, generations, select, mutations, crossovers : int
        Evolution: 50, 20, 10 (top-k), 25, 25.
    m_prob : float
        Per-gene mutation probability (0.1).
    flops_limit : float
        Default constraint on the spos space, MACs (330e6).
    recal_images, recal_batch_size : int
        BN recalibration images and batch (the released tester: 200 × 128 = 25 600;
        the proxy default 256 keeps one evaluation near 0.1–0.5 s, the cost of
        1050 evaluations per search).

    Attributes
    ----------
    supernet_ : nn.Module
    sampler_ : ConstraintSampler or None
    trace_ : list of dict
        One row per training epoch.
    searches_ : list of SearchRecord
        Every search run on this supernet, in order.
    """

    name: ClassVar[str] = "spos"
    paper: ClassVar[str] = "Guo et al., ECCV 2020 (Single Path One-Shot NAS with Uniform Sampling)"
    default_space: ClassVar[str] = "spos"
    latency_kinds: ClassVar[tuple[str, ...]] = ("score", "flops")
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {
        "sampling": ("constraint", "uniform constraint sampling, src/Supernet/train.py get_uniform_sample_cand"),
        "bin_timeout": (500, "get_uniform_sample_cand(timeout=500)"),
        "lr": (0.5, "src/Supernet/train.py --learning-rate"),
        "momentum": (0.9, "src/Supernet/train.py"),
        "weight_decay": (4e-5, "src/Supernet/train.py --weight-decay"),
        "label_smoothing": (0.1, "CrossEntropyLabelSmooth(1000, 0.1)"),
        "batch_size": (1024, "src/Supernet/train.py --batch-size"),
        "population": (50, "src/Search/search.py --population-num"),
        "generations": (20, "src/Search/search.py --max-epochs"),
        "select": (10, "src/Search/search.py --select-num"),
        "mutations": (25, "src/Search/search.py --mutation-num"),
        "crossovers": (25, "src/Search/search.py --crossover-num"),
        "m_prob": (0.1, "src/Search/search.py --m_prob"),
        "flops_limit": (330e6, "src/Search/search.py --flops-limit"),
        "recal_images": (25_600, "src/Search/tester.py: 200 batches × 128 (the paper says 20 000)"),
    }

    def __init__(
        self,
        sampling: str = "constraint",
        bins: Sequence[float] | None = None,
        bin_cost: str = "auto",
        bin_timeout: int = 500,
        lr: float = 0.5,
        momentum: float = 0.9,
        weight_decay: float = 4e-5,
        label_smoothing: float = 0.1,
        batch_size: int = 64,
        width_mult: float = 0.25,
        population: int = 50,
        generations: int = 20,
        select: int = 10,
        mutations: int = 25,
        crossovers: int = 25,
        m_prob: float = 0.1,
        flops_limit: float = 330e6,
        recal_images: int = 128,
        recal_batch_size: int = 128,
    ):
        self.sampling = sampling
        self.bins = bins
        self.bin_cost = bin_cost
        self.bin_timeout = bin_timeout
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.width_mult = width_mult
        self.population = population
        self.generations = generations
        self.select = select
        self.mutations = mutations
        self.crossovers = crossovers
        self.m_prob = m_prob
        self.flops_limit = flops_limit
        self.recal_images = recal_images
        self.recal_batch_size = recal_batch_size

    # -- validation ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.sampling not in ("constraint", "uniform"):
            raise SearchError(f"sampling must be 'constraint' or 'uniform', got {self.sampling!r}")
        if self.bin_cost not in ("auto", "flops", "latency"):
            raise SearchError(f"bin_cost must be 'auto', 'flops' or 'latency', got {self.bin_cost!r}")
        for name in ("bin_timeout", "batch_size", "population", "generations", "select",
                     "recal_images", "recal_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise SearchError(f"{name} must be a positive integer, got {v!r}")
        for name in ("mutations", "crossovers"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise SearchError(f"{name} must be a non-negative integer, got {v!r}")
        if not 0.0 <= self.m_prob <= 1.0:
            raise SearchError(f"m_prob must be in [0, 1], got {self.m_prob}")
        if self.select > self.population:
            raise SearchError(f"select ({self.select}) cannot exceed population ({self.population})")
        if not self.lr > 0 or not self.width_mult > 0:
            raise SearchError("lr and width_mult must be positive")

    # -- step 1: supernet training --------------------------------------------------------------
    def fit(self, task: Any, space: Any, latency: Any = None, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> SPOS:
        """Train the supernet with single paths (uniform or constraint-bin sampled).

        Parameters
        ----------
        task : Task or StandInTask
        space : Space or str
        latency : latency model with ``score``, optional
            Used by latency constraints and, off the spos space, by the bins;
            without one only FLOPs constraints work.
        target_ms : float, optional
            Default latency limit for :meth:`search`.
        budget : Budget
            Epochs, steps or seconds of weight training (default
            :data:`DEFAULT_EPOCHS` epochs); the linear LR decay spans it.
        seed : int
        callback : callable, optional
            Called with one dict per epoch.
        """
        from searchers.supernet import make_supernet

        self._start_clock()
        self._check_params()
        if isinstance(space, str):
            import hwprof

            space = hwprof.space(space)
        if latency is not None and not callable(getattr(latency, "score", None)):
            raise SearchError(
                f"spos needs a latency model with score() for latency constraints; {type(latency).__name__} has "
                "none. Use a lookup table or a predictor file, or no latency model and a FLOPs constraint"
            )
        torch.manual_seed(seed)
        self.space_, self.task_, self.latency_, self.seed_ = space, task, latency, int(seed)
        self.target_ms_ = target_ms
        self.macs_ = macs_model(space)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng([seed, 0])
        self.sampler_ = self._make_sampler(space, latency, np.random.default_rng([seed, 1]))

        net = make_supernet(task, space, width_mult=self.width_mult, resolution=task.resolution, classes=task.classes)
        self.supernet_ = net
        decay, no_decay = [], []
        for pname, p in net.named_parameters():
            # released get_parameters(): weight decay on conv/linear weights only, not on BN or biases
            (decay if "weight" in pname and p.dim() > 1 else no_decay).append(p)
        self.lr_ = self.lr * self.batch_size / 1024.0
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr_, momentum=self.momentum,
        )
        per_epoch = task.steps_per_epoch("weights", self.batch_size)
        total = self._total_steps(budget, per_epoch)
        self.trace_, self.steps_, self.timeouts_ = [], 0, 0
        self.bin_hits_ = np.zeros(self.sampler_.num_bins if self.sampler_ else 0, dtype=np.int64)
        t_start = time.perf_counter()
        epoch = 0
        done = False
        while not done:
            losses = []
            for x, y in task.batches("weights", self.batch_size, generator=gen, augment=True):
                p = self._progress(budget, total, t_start)
                if p >= 1.0:
                    done = True
                    break
                for g in opt.param_groups:
                    g["lr"] = self.lr_ * (1.0 - p)  # LambdaLR(1 - step / total_iters)
                idx = self._training_arch(rng)
                net.train()
                loss = F.cross_entropy(net(x, idx), y, label_smoothing=self.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for prm in net.parameters():
                    # unsampled choice blocks: no momentum or weight-decay update (released train.py)
                    if prm.grad is not None and not bool(prm.grad.any()):
                        prm.grad = None
                opt.step()
                losses.append(float(loss.detach()))
                self.steps_ += 1
            if losses:
                row = {
                    "phase": "train", "epoch": epoch, "steps": self.steps_, "loss": float(np.mean(losses)),
                    "lr": float(opt.param_groups[0]["lr"]), "seconds": time.perf_counter() - t_start,
                }
                self.trace_.append(row)
                if callback is not None:
                    callback(dict(row))
            epoch += 1
            if budget.seconds is None and self.steps_ >= total:
                done = True
        self.train_seconds_ = time.perf_counter() - t_start
        self._recal = None
        self._fitness_cache: dict[tuple[int, ...], float] = {}
        self.searches_: list[SearchRecord] = []
        self._fit_seconds = self._elapsed()
        return self

    def _make_sampler(self, space: Any, latency: Any, rng: np.random.Generator) -> ConstraintSampler | None:
        if self.sampling == "uniform":
            return None
        kind = self.bin_cost
        if kind == "auto":
            kind = "flops" if space.name == "spos" or latency is None else "latency"
        if kind == "latency" and latency is None:
            raise SearchError("bin_cost='latency' needs a latency model; pass one to fit or use bin_cost='flops'")
        cost = self.macs_ if kind == "flops" else latency
        if self.bins is not None:
            edges = np.asarray(self.bins, dtype=np.float64)
        elif kind == "flops" and space.name == "spos":
            edges = np.asarray(PAPER_BINS_MMACS)
        else:
            edges = auto_bin_edges(space, cost, rng)
        self.bin_kind_ = kind
        return ConstraintSampler(space, cost, edges, self.bin_timeout)

    def _training_arch(self, rng: np.random.Generator) -> np.ndarray:
        if self.sampler_ is None:
            return uniform_indices(self.space_, rng, 1)[0]
        idx, b, timed_out = self.sampler_.draw(rng)
        self.bin_hits_[b] += 1
        self.timeouts_ += int(timed_out)
        return idx

    @staticmethod
    def _total_steps(budget: Budget, per_epoch: int) -> int:
        if budget.epochs is not None:
            return int(budget.epochs) * per_epoch
        if budget.steps is not None:
            return int(budget.steps)
        if budget.seconds is not None:
            return 0  # progress by time
        return DEFAULT_EPOCHS * per_epoch

    def _progress(self, budget: Budget, total: int, t_start: float) -> float:
        """Fraction of the budget spent: by steps, or by wall time for a seconds budget."""
        if budget.steps is None and budget.epochs is None and budget.seconds is not None:
            return (time.perf_counter() - t_start) / budget.seconds
        return self.steps_ / total

    # -- fitness ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "supernet_"):
            raise SearchError("spos: call fit(task, space, latency) before search()")

    def fitness(self, indices: np.ndarray | Sequence[int]) -> float:
        """Accuracy of one architecture on the arch split after BN recalibration (cached per supernet)."""
        self._check_fitted()
        idx = np.asarray(indices, dtype=np.int64)
        key = tuple(int(i) for i in idx)
        hit = self._fitness_cache.get(key)
        if hit is not None:
            return hit
        task = self.task_
        if callable(getattr(task, "fitness", None)):
            value = float(task.fitness(idx))
        else:
            from searchers.supernet import accuracy, recalibrate_bn

            recalibrate_bn(self.supernet_, idx, self._recal_batches())
            value = float(accuracy(self.supernet_, idx, task.x_arch, task.y_arch))
        self._fitness_cache[key] = value
        return value

    def _recal_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The training batches every candidate's BN statistics are re-estimated on (fixed, as tester.py)."""
        if self._recal is None:
            gen = torch.Generator().manual_seed(self.seed_ + 7919)
            out: list[tuple[torch.Tensor, torch.Tensor]] = []
            n = 0
            for xb, yb in self.task_.batches("weights", self.recal_batch_size, generator=gen):
                if n >= self.recal_images:
                    break
                out.append((xb, yb))
                n += len(yb)
            self._recal = out
            self.recal_images_used_ = n
        return self._recal

    # -- step 2: search --------------------------------------------------------------------------
    def _constraint(self, target_ms: float | None, constraint: Any) -> Constraint:
        if constraint is not None:
            c = Constraint.parse(constraint)
        elif target_ms is not None or self.target_ms_ is not None:
            c = Constraint("latency", float(target_ms if target_ms is not None else self.target_ms_))
        elif self.space_.name == "spos":
            c = Constraint("flops", float(self.flops_limit))
        else:
            raise SearchError(
                f"spos on {self.space_.name} needs a constraint: search(constraint={{'kind': 'flops', 'limit': MACs}}) "
                "or search(target_ms=T) with a latency model"
            )
        if c.kind == "latency" and self.latency_ is None:
            raise SearchError("a latency constraint needs a latency model: pass one to fit(), or use a flops constraint")
        cost = self._cost(c)
        lo = self._min_cost(cost)
        if lo is not None and lo > c.limit_in_cost_units:
            unit = "M MACs" if c.kind == "flops" else "ms"
            raise SearchError(
                f"no architecture of {self.space_.name} meets {c.kind} <= {c.limit_in_cost_units:g} {unit}: "
                f"the cheapest costs {lo:.3f} {unit}; raise the limit"
            )
        return c

    def _cost(self, c: Constraint) -> Any:
        return self.macs_ if c.kind == "flops" else self.latency_

    def _min_cost(self, cost: Any) -> float | None:
        values = getattr(cost, "values", None)
        if values is None or not hasattr(cost, "constant_ms"):
            return None  # not additive (a predictor): the draw limit guards instead
        v = np.where(self.space_.mask, values, np.inf)
        if self.space_.skip == "depth":
            return None
        return float(v.min(1).sum() + cost.constant_ms)

    def search(self, *, target_ms: float | None = None, constraint: Any = None) -> SearchResult:
        """Evolutionary search on the fitted supernet under a hard constraint.

        Parameters
        ----------
        target_ms : float, optional
            Shorthand for ``constraint={"kind": "latency", "limit": target_ms}``.
        constraint : dict or str, optional
            ``{"kind": "flops", "limit": MACs}`` or ``{"kind": "latency", "limit": ms}``;
            default: ``fit``'s ``target_ms``, else FLOPs ≤ ``flops_limit`` on the spos space.

        Returns
        -------
        SearchResult
            ``arch`` = the best of the final top-k; ``trace`` = training epochs then one row per generation.
        """
        self._check_fitted()
        t0 = time.perf_counter()
        c = self._constraint(target_ms, constraint)
        pool = _Pool(self.space_, self._cost(c), c.limit_in_cost_units, self.fitness)
        rng = np.random.default_rng([self.seed_, 2])
        L = self.space_.num_layers
        cols = [np.flatnonzero(r) for r in self.space_.mask]  # mutation may redraw any legal candidate
        topk: list[Candidate] = []
        best_curve, mean_curve, rows = [], [], []

        def randoms(n: int) -> list[Proposal]:
            return [(row, (), ()) for row in uniform_indices(self.space_, rng, n)]

        def fill_random(cands: list[Candidate], generation: int) -> None:
            need = self.population - len(cands)
            cands += pool.run(randoms, need, 1000 * self.population, "random", generation, RANDOM_BATCH)
            if len(cands) < self.population:
                raise SearchError(
                    f"only {len(cands)} of {self.population} random architectures met {c.kind} <= "
                    f"{c.limit_in_cost_units:g} in {1000 * self.population} draws; raise the limit"
                )

        def mutant() -> Proposal:
            parent = np.array(topk[int(rng.integers(len(topk)))].indices)
            fired = rng.random(L) < self.m_prob
            child = parent.copy()
            for layer in np.flatnonzero(fired):  # may redraw the same value, as released
                child[layer] = cols[layer][rng.integers(len(cols[layer]))]
            return child, (tuple(parent.tolist()),), tuple(fired.tolist())

        def crossed() -> Proposal:
            p1 = np.array(topk[int(rng.integers(len(topk)))].indices)
            p2 = np.array(topk[int(rng.integers(len(topk)))].indices)
            child = np.where(rng.random(L) < 0.5, p1, p2)  # uniform crossover, per gene
            return child, (tuple(p1.tolist()), tuple(p2.tolist())), ()

        def update(cands: list[Candidate]) -> list[Candidate]:
            return sorted(topk + cands, key=lambda k: -k.fitness)[: self.select]  # stable: ties keep the elder

        candidates: list[Candidate] = []
        fill_random(candidates, 0)
        for g in range(self.generations):
            topk = update(candidates)
            best_curve.append(topk[0].fitness)
            mean_curve.append(float(np.mean([k.fitness for k in topk])))
            rows.append(self._generation_row(g, topk, pool, c))
            candidates = pool.run(lambda n: [mutant() for _ in range(n)], self.mutations, 10 * self.mutations,
                                  "mutation", g + 1)
            candidates += pool.run(lambda n: [crossed() for _ in range(n)], self.crossovers, 10 * self.crossovers,
                                   "crossover", g + 1)
            fill_random(candidates, g + 1)
        # the released loop evaluates the last generation's children and never ranks them; rank them too
        topk = update(candidates)
        best_curve.append(topk[0].fitness)
        mean_curve.append(float(np.mean([k.fitness for k in topk])))
        rows.append(self._generation_row(self.generations, topk, pool, c))
        record = SearchRecord("evolution", c, pool.evaluated, pool.rejected, pool.duplicates, pool.invalid,
                              best_curve, mean_curve, topk[0])
        self.searches_.append(record)
        return self._result(record, rows, time.perf_counter() - t0)

    def random_search(self, *, target_ms: float | None = None, constraint: Any = None,
                      evaluations: int | None = None) -> SearchResult:
        """Random-search baseline: uniform random legal candidates, each evaluated once.

        ``evaluations`` defaults to the evaluation count of the last evolutionary
        search under the same constraint, else ``population × (generations + 1)``
        (1050 at the paper's setting).
        """
        self._check_fitted()
        t0 = time.perf_counter()
        c = self._constraint(target_ms, constraint)
        if evaluations is None:
            same = [r for r in self.searches_ if r.method == "evolution" and r.constraint == c]
            evaluations = len(same[-1].evaluated) if same else self.population * (self.generations + 1)
        pool = _Pool(self.space_, self._cost(c), c.limit_in_cost_units, self.fitness)
        rng = np.random.default_rng([self.seed_, 3])
        found = pool.run(lambda n: [(row, (), ()) for row in uniform_indices(self.space_, rng, n)], evaluations,
                         1000 * evaluations, "random", 0, RANDOM_BATCH)
        if len(found) < evaluations:
            raise SearchError(f"random search found only {len(found)} architectures under the limit")
        best: Candidate = found[0]
        rows, curve = [], []
        for n, cand in enumerate(found, 1):
            if cand.fitness > best.fitness:
                best = cand
            if n % self.population == 0 or n == evaluations:
                curve.append(best.fitness)
                rows.append({"phase": "random", "evaluated": n, "best_fitness": best.fitness,
                             "best_arch": self._text(best.indices), "best_cost": best.cost})
        rows[-1].update(rejected=pool.rejected, duplicates=pool.duplicates)
        record = SearchRecord("random", c, pool.evaluated, pool.rejected, pool.duplicates, pool.invalid,
                              curve, [], best)
        self.searches_.append(record)
        return self._result(record, rows, time.perf_counter() - t0)

    # -- results ---------------------------------------------------------------------------------
    def _text(self, indices: Sequence[int]) -> str:
        return self.space_.from_indices(list(indices)).encode()

    def _generation_row(self, g: int, topk: list[Candidate], pool: _Pool, c: Constraint) -> dict:
        return {
            "phase": "search", "generation": g, "best_fitness": topk[0].fitness,
            "mean_topk_fitness": float(np.mean([k.fitness for k in topk])), "evaluated": len(pool.evaluated),
            "rejected": pool.rejected, "duplicates": pool.duplicates, "best_arch": self._text(topk[0].indices),
            "best_cost": topk[0].cost, "cost_unit": "MMACs" if c.kind == "flops" else "ms",
        }

    def _result(self, record: SearchRecord, rows: list[dict], search_seconds: float) -> SearchResult:
        best = record.best
        assert best is not None
        idx = np.array(best.indices)
        task = self.task_
        proxy: dict[str, Any] = {
            "task": getattr(task, "name", type(task).__name__), "resolution": getattr(task, "resolution", None),
            "classes": getattr(task, "classes", None), "width_mult": self.width_mult,
            "fitness": best.fitness, "method": record.method, "evaluated": len(record.evaluated),
            "rejected": record.rejected, "duplicates": record.duplicates,
            "train_steps": self.steps_, "train_seconds": self.train_seconds_, "search_seconds": search_seconds,
        }
        if self.sampler_ is not None:
            proxy["bins"] = [float(e) for e in self.sampler_.edges]
            proxy["bin_kind"] = self.bin_kind_
            proxy["bin_timeouts"] = int(self.timeouts_)
        if not callable(getattr(task, "fitness", None)):
            from searchers.supernet import accuracy, recalibrate_bn

            recalibrate_bn(self.supernet_, idx, self._recal_batches())
            proxy["test_accuracy"] = float(accuracy(self.supernet_, idx, task.x_test, task.y_test))
        latency = self.latency_ if self.latency_ is not None else self.macs_
        constraint = record.constraint.as_dict()
        target = record.constraint.limit if record.constraint.kind == "latency" else None
        return self.make_result(
            space=self.space_, arch=self._text(best.indices), latency=latency, target_ms=target,
            constraint=constraint, proxy=proxy, deviations=self._deviations(), trace=self.trace_ + rows,
            seed=self.seed_, seconds=self._fit_seconds + search_seconds,
        )

    def _deviations(self) -> list[str]:
        out = self.deviations_from_paper()
        out.append(
            f"supernet trained {self.steps_} steps at batch {self.batch_size}, lr {self.lr_:g} (= {self.lr:g} · "
            f"{self.batch_size}/1024) on the proxy task (paper: {PAPER_ITERS} iterations at batch 1024, lr "
            f"{self.lr:g}, on ImageNet); the linear LR decay spans the budget"
        )
        if getattr(self, "recal_images_used_", None) is not None and self.recal_images_used_ < self.recal_images:
            out.append(
                f"BN recalibration forwarded {self.recal_images_used_} training images (paper: 25 600): "
                "the proxy's weight split holds no more"
            )
        if self.sampler_ is not None and not (self.bin_kind_ == "flops" and self.space_.name == "spos"):
            out.append(
                f"constraint bins on {self.bin_kind_} {[round(float(e), 3) for e in self.sampler_.edges]} "
                "(paper: FLOPs 290–360 M on its space; rule: 7 bins over the 1st–99th percentile of random archs)"
            )
        out.append("the last generation's children also enter the final top-k (the released loop evaluates them "
                   "but returns the top-k of the generation before)")
        return out


__all__ = [
    "AUTO_BIN_SAMPLES",
    "N_AUTO_BINS",
    "PAPER_BINS_MMACS",
    "SPOS",
    "Candidate",
    "Constraint",
    "ConstraintSampler",
    "SearchRecord",
    "auto_bin_edges",
    "uniform_indices",
    "valid_indices",
]
