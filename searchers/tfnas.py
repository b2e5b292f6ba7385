"""TF-NAS (Hu et al., ECCV 2020): bi-sampling, sink-connecting depth, elastic widths, elasticity scaling.

The loop of the released ``train_search.py`` (AberHu/TF-NAS @ 08b31a2):

- **Supernet**: per layer the 8 MBConv candidates (k3/k5 × e3/e6 × SE or not,
  no skip candidate); per stage depth weights β over "keep the first ``d``
  layers", ``d ≥ 1``, and the **sink-connecting** stage output
  ``Σ_d softmax(β)_d · x_d`` (Eq. 5). Each candidate has a channel mask sized
  to its **max** mid channels (4·Cin for e3, 8·Cin for e6) with ``mid``
  channels active (3·Cin / 6·Cin at the start, ``tools/config.py``).
- **Weight step, bi-sampling** (Eq. 8, ``train_w_arch``): path 1 = per layer
  the argmax of a soft Gumbel sample of ``log α`` (which switches that op
  off), path 2 = a uniformly random op among the remaining 7; loss
  ``CE(path 1) + CE(path 2)``, one backward, SGD (clip 5). Depth is not
  sampled: both forwards use the soft β mixture. Warm-up epochs (10 of 90)
  train path 1 only and leave α, β alone (``train_wo_arch``).
- **Architecture step** every 2nd weight step, on a batch of the
  architecture split: soft Gumbel weights ``u = softmax((log α + g)/τ)`` over
  all 8 ops (the weighted sum of every op's output), soft β, and the latency
  ``Σ_stages Σ_d v_d Σ_{l ≤ d} Σ_k u_lk · LUT(op_lk, mid_lk)`` at the current
  mid counts = :meth:`~hwprof.latency.TableLatencyModel.depth_expected` with
  ``mids``. Loss ``CE + λ·|lat/T − 1|`` (``objective="abs"``, the code) or
  ``CE + λ·max(lat/T − 1, 0)`` (``objective="hinge"``, the paper's Eq. 9).
  Adam(0.01, (0.5, 0.999), wd 5e-4), clip 5; after each step every
  architecture parameter (``log α`` and β alike, as the code's
  ``arch_parameters()`` loop does) is renormalised ``x ← log_softmax(x)``.
- **Elasticity scaling** (Alg. 1, ``fit_mc_num_by_latency``) after every
  epoch from the end of the warm-up on: derive the seed net (argmax op per
  layer, argmax depth per stage), price it on the table with its current mid
  counts; above T shrink every stage's mids in lock-step (step per layer
  ``round(mid / min mid)``) until the latency first drops below T (or every
  layer reaches ``max // 2``), then expand stages ``s … 6`` for ``s = 2 … 6``
  while the latency stays ≤ T; below T the same expansions. Cells whose count
  changed re-select their active channels: the ``mid`` with the largest L1
  norm of the depthwise weights.
- **Schedule**: 90 epochs, batch 32, weights SGD 0.025 cosine, momentum 0.9,
  wd 1e-5; τ = 5.0, ×0.96 per epoch after the warm-up. The code builds a new
  network and new optimizers every epoch (momentum and Adam moments restart
  each epoch); so does this loop.

**Derived architecture** (``parsing_model.py``): argmax ``log α`` per layer,
argmax β per stage (depth ``d`` keeps layers ``1 … d``; dropped layers are
``skip``), with the elastic mid counts as ``@mid``. Its ``latency_ms`` is the
latency model's ``arch_latency`` of that text, exactly.

Any budget keeps the paper's shape: run epoch ``e`` of ``E`` maps to paper
epoch ``10·e/W`` in the warm-up (``W = round(E·10/90)``) and
``10 + 80·(e − W)/(E − W)`` afterwards; τ, the weight learning rate and the
start of elasticity follow it.

On the proxy task the supernet is built here from
:func:`searchers.supernet.proxy_choice_ops` at max-mid proxy channels with
masks (:class:`ElasticSuperNet`); the real (224) mid count ``m`` of a cell maps
to ``round(m · proxy_max / real_max)`` proxy channels. A task that brings its
own supernet (the stand-in) is used as is: it ignores depth and masks, and
only the latency side of depth and widths acts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwprof.errors import HwprofError
from hwprof.latency import gumbel_softmax
from hwprof.spaces.modules import build_op
from searchers.base import (
    Budget,
    Searcher,
    SearchError,
    SearchResult,
    budget_epochs,
    paper_epoch,
    require_latency,
)
from searchers.supernet import (
    IllegalOp,
    SuperNet,
    accuracy,
    derived_accuracy,
    proxy_choice_ops,
    time_path_step,
)

#: The released schedule: 90 epochs, the first 10 without α (weights only).
PAPER_EPOCHS = 90
PAPER_WARMUP_EPOCHS = 10
#: Epochs of a proxy search at the default budget (≤ 5 min on a 2-core CPU at batch 32).
PROXY_EPOCHS = 7
OBJECTIVES = ("abs", "hinge")


# -- elasticity scaling (Alg. 1): pure table arithmetic ------------------------------------------
@dataclass(frozen=True)
class ScalingResult:
    """Outcome of one elasticity scaling of a seed net.

    Attributes
    ----------
    mids : tuple of int or None
        Mid channels per layer after scaling (None for a dropped layer).
    before_ms, after_ms : float
        Table latency (ms) of the seed net at its mids before and after scaling.
    min_ms, max_ms : float
        Table latency (ms) with every kept layer at its smallest (``max // 2``) / largest mid count.
    reachable : bool
        ``min_ms ≤ T ≤ max_ms``: widths alone can bring the seed net to ``T``.
    direction : str
        ``"shrink"``, ``"expand"`` or ``"none"`` (seed exactly at T).
    """

    mids: tuple[int | None, ...]
    before_ms: float
    after_ms: float
    min_ms: float
    max_ms: float
    reachable: bool
    direction: str

    @property
    def message(self) -> str:
        """Empty when reachable; else why widths alone cannot reach the target."""
        if self.reachable:
            return ""
        return (f"cannot reach T by widths: the seed net spans {self.min_ms:.3f}–{self.max_ms:.3f} ms "
                "over its mid range (the op/depth search must bring it into range)")


def _clip_mid(mid: int, lo: int, hi: int) -> tuple[int, bool]:
    """``bound_clip`` of the code: clip to ``[lo, hi]``; False once a bound is hit."""
    if mid <= lo:
        return lo, False
    if mid >= hi:
        return hi, False
    return mid, True


class _SeedPricer:
    """Table latency of one seed net at any mid counts, summed as ``arch_latency`` sums (bit-identical)."""

    def __init__(self, latency: Any, space: Any, choices: Sequence[str]):
        geoms = space.geometry()
        idx = np.array([space.candidates.index(c) for c in choices], dtype=np.int64)
        self.base = [float(v) for v in latency.values[np.arange(space.num_layers), idx]]
        self.constant = float(latency.constant_ms)
        self.kept = [l for l, c in enumerate(choices) if c != "skip"]
        self.lo: dict[int, int] = {}
        self.hi: dict[int, int] = {}
        self.lut: dict[int, np.ndarray] = {}
        for l in self.kept:
            lo, hi = space.mid_range(geoms[l], choices[l])
            self.hi[l] = hi
            self.lo[l] = max(lo, hi // 2)  # the code's min = max // 2, never below the space's range
            curve = latency.width_curve(l, choices[l])
            self.lut[l] = np.asarray(curve(np.arange(self.lo[l], hi + 1, dtype=np.float64)), dtype=np.float64)

    def __call__(self, mids: Mapping[int, int]) -> float:
        per_layer = list(self.base)
        for l in self.kept:
            per_layer[l] = float(self.lut[l][mids[l] - self.lo[l]])
        total = 0.0
        for v in per_layer:  # left to right, as TableLatencyModel.arch_latency sums
            total += v
        return total + self.constant


def _fit_mids(price: _SeedPricer, layers: list[int], mids: dict[int, int], target: float,
              sign: int) -> tuple[dict[int, int], float]:
    """``fit_mc_num_by_latency`` over ``layers``: sign −1 shrinks until < T, +1 expands while ≤ T."""
    lat = price(mids)
    if not layers:
        return dict(mids), lat
    smallest = min(mids[l] for l in layers)
    ratio = [int(round(mids[l] / smallest)) for l in layers]
    switches = [True] * len(layers)
    new = dict(mids)
    new_lat = lat
    while any(switches) and sign * new_lat <= sign * target:
        mids, lat = dict(new), new_lat
        for i, l in enumerate(layers):
            new[l], switches[i] = _clip_mid(mids[l] + sign * ratio[i], price.lo[l], price.hi[l])
        new_lat = price(new)
    if sign == -1:
        return dict(new), new_lat
    # as released: expanding returns the state before the last step, even when the loop ended because
    # every layer hit a bound (so a net whose max width is below T may stop one step short of max)
    return mids, lat


def elasticity_scaling(latency: Any, space: Any, choices: Sequence[str], mids: Sequence[int | None],
                       target_ms: float) -> ScalingResult:
    """Alg. 1 of TF-NAS: scale the mid channels of a seed net toward ``target_ms`` on the latency table.

    Parameters
    ----------
    latency : TableLatencyModel
        With width curves (:meth:`~hwprof.latency.TableLatencyModel.width_curve`).
    space : Space
        A space with elastic mid channels and depth skips (``tfnas``).
    choices : sequence of str ``[L]``
        Candidate per layer, ``"skip"`` for a dropped layer.
    mids : sequence of int or None ``[L]``
        Current mid channels of the kept layers (None for dropped ones).
    target_ms : float
        Target latency T (ms).

    Returns
    -------
    ScalingResult
        Mid counts after scaling (integers in ``[max // 2, max]``); ``after_ms`` is
        ``latency.arch_latency`` of the scaled architecture, exactly. Where the seed
        is reachable (``min_ms ≤ T ≤ max_ms``) the result is ≤ T.
    """
    price = _SeedPricer(latency, space, choices)
    current = {l: int(mids[l]) for l in price.kept}
    for l in price.kept:
        if not price.lo[l] <= current[l] <= price.hi[l]:
            raise SearchError(f"mid {current[l]} of {choices[l]} at layer {l} is outside [{price.lo[l]}, {price.hi[l]}]")
    before = price(current)
    min_ms = price({l: price.lo[l] for l in price.kept})
    max_ms = price({l: price.hi[l] for l in price.kept})
    stage_of = [g.stage for g in space.geometry()]
    n_stages = len(space.stages)

    def layers_from(start: int) -> list[int]:
        return [l for l in price.kept if stage_of[l] >= start]

    direction = "none"
    after = before
    if before != target_ms:
        direction = "shrink" if before > target_ms else "expand"
        current, after = _fit_mids(price, layers_from(0), current, target_ms, -1 if before > target_ms else 1)
        for start in range(1, n_stages):  # the code's stages 2 … 6
            current, after = _fit_mids(price, layers_from(start), current, target_ms, 1)
    out = tuple(current.get(l) for l in range(space.num_layers))
    return ScalingResult(out, before, after, min_ms, max_ms, min_ms <= target_ms <= max_ms, direction)


def l1_channel_order(depthwise_weight: Tensor) -> np.ndarray:
    """Channels by decreasing L1 norm of a depthwise weight ``[C, 1, k, k]`` (ties: lower index first)."""
    norms = depthwise_weight.detach().abs().sum(dim=(1, 2, 3)).cpu().numpy().astype(np.float64)
    return np.argsort(-norms, kind="stable")


# -- the elastic proxy supernet ------------------------------------------------------------------
class ElasticMBConv(nn.Module):
    """An MBConv at its max mid channels with a channel mask after the depthwise conv.

    Masked channels contribute nothing to the SE block and the projection, so
    the block computes exactly the MBConv with only the active channels (what
    TF-NAS rebuilds every epoch), and masked weights get no gradient.

    Parameters
    ----------
    op : OpSpec
        The block at its max mid channels (proxy scale).
    active : int
        Active channels at the start (the first ``active``).
    """

    def __init__(self, op: Any, active: int):
        super().__init__()
        self.block = build_op(op)
        self.max_mid = int(op.mid)
        self.register_buffer("mask", torch.zeros(self.max_mid))
        self.mask[: int(active)] = 1.0

    @property
    def active(self) -> int:
        """Number of active mid channels."""
        return int(self.mask.sum().item())

    def select(self, n: int) -> np.ndarray:
        """Keep the ``n`` channels with the largest L1 norm of the depthwise weights; returns their indices."""
        if not 1 <= n <= self.max_mid:
            raise SearchError(f"cannot keep {n} of {self.max_mid} mid channels")
        keep = np.sort(l1_channel_order(self.block.depthwise.conv.weight)[:n])
        self.mask.zero_()
        self.mask[torch.as_tensor(keep)] = 1.0
        return keep

    def forward(self, x: Tensor) -> Tensor:
        b = self.block
        y = x
        if b.expand is not None:
            y = b.expand(y)
        if b.shuffle is not None:
            y = b.shuffle(y)
        y = b.depthwise(y) * self.mask.view(1, -1, 1, 1)
        if b.se is not None:
            y = b.se(y)
        y = b.project(y)
        return x + y if b.residual else y


class ElasticLayer(nn.Module):
    """One searchable layer: ``K`` elastic candidates (:class:`IllegalOp` at ``skip`` and illegal cells)."""

    def __init__(self, ops: Sequence[nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.legal = np.array([not isinstance(o, IllegalOp) for o in ops], dtype=bool)

    def forward(self, x: Tensor, row: Any, compute: str = "nonzero") -> Tensor:
        if isinstance(row, Tensor) and row.is_floating_point():
            run = self.legal if compute == "all" else (row.detach() != 0).cpu().numpy()
            if (run & ~self.legal).any():
                raise SearchError("weights put mass on a candidate this layer does not have (skip is depth, not an op)")
            out = None
            for k in np.flatnonzero(run):
                y = row[k] * self.ops[k](x)
                out = y if out is None else out + y
            if out is None:
                raise SearchError("all architecture weights of this layer are zero")
            return out
        return self.ops[int(row)](x)


class ElasticSuperNet(nn.Module):
    """TF-NAS proxy supernet: elastic-width MBConv candidates and sink-connecting stages.

    Stem and head are those of :class:`searchers.supernet.SuperNet`; every MBConv
    candidate of :func:`searchers.supernet.proxy_choice_ops` is built at its max
    mid channels (``default · real_max / real_default``) behind a mask.

    Parameters
    ----------
    space : Space
        A space with ``width == "mid"`` and ``skip == "depth"`` (tfnas).
    width_mult : float
    resolution : int
    classes : int

    Attributes
    ----------
    num_layers, max_choices, mask, candidates, sizes
        ``L``, ``K``, legal cells ``[L, K]``, candidate names, layers per stage.
    real_max : ndarray int64 ``[L, K]``
        Max mid channels of each cell in the real space (0 where no width).
    proxy_max : ndarray int64 ``[L, K]``
        Max mid channels of each cell at proxy scale (0 where no width).
    """

    def __init__(self, space: Any, *, width_mult: float = 0.25, resolution: int = 32, classes: int = 10):
        super().__init__()
        base = SuperNet(space, width_mult=width_mult, resolution=resolution, classes=classes)
        self.stem, self.head = base.stem, base.head
        self.space = space
        self.num_layers, self.max_choices = space.num_layers, space.max_choices
        self.mask = np.array(space.mask, dtype=bool)
        self.candidates = tuple(space.candidates)
        self.sizes = [st.layers for st in space.stages]
        self.real_max = np.zeros(self.mask.shape, dtype=np.int64)
        self.proxy_max = np.zeros(self.mask.shape, dtype=np.int64)
        layers = []
        for g, row in zip(space.geometry(), proxy_choice_ops(space, width_mult, resolution)):
            ops: list[nn.Module] = []
            for k, (cand, spec) in enumerate(zip(space.candidates, row)):
                if spec is None or cand == "skip" or spec.kind != "mbconv":
                    ops.append(IllegalOp())
                    continue
                default_real = space.candidate_op(g, cand).mid
                _, hi = space.mid_range(g, cand)
                pmax = max(int(round(spec.mid * hi / default_real)), spec.mid)
                self.real_max[g.index, k], self.proxy_max[g.index, k] = hi, pmax
                ops.append(ElasticMBConv(dataclasses.replace(spec, mid=pmax), spec.mid))
            layers.append(ElasticLayer(ops))
        self.layers = nn.ModuleList(layers)

    def proxy_count(self, layer: int, col: int, real_mid: int) -> int:
        """Proxy channels standing for ``real_mid`` real mid channels of cell ``(layer, col)``."""
        pmax = int(self.proxy_max[layer, col])
        return int(min(pmax, max(1, round(real_mid * pmax / int(self.real_max[layer, col])))))

    def set_mid(self, layer: int, col: int, real_mid: int) -> bool:
        """Re-select the active channels of a cell for ``real_mid`` (L1 norm); True if the count changed."""
        op = self.layers[layer].ops[col]
        n = self.proxy_count(layer, col, real_mid)
        if n == op.active:
            return False
        op.select(n)
        return True

    def _rows(self, weights: Any) -> list[Any]:
        if isinstance(weights, Tensor) and weights.is_floating_point():
            return list(weights.unbind(0))
        idx = np.asarray(weights.detach().cpu() if isinstance(weights, Tensor) else weights)
        if idx.shape != (self.num_layers,) or idx.dtype.kind not in "iu":
            raise SearchError(f"a single path is {self.num_layers} integer candidate indices, got {idx.dtype} {idx.shape}")
        return [int(i) for i in idx]

    def forward(self, x: Tensor, weights: Any, *, compute: str = "nonzero", depth: Any = None) -> Tensor:
        """Logits ``[B, classes]``.

        Parameters
        ----------
        weights : int indices ``[L]`` or float Tensor ``[L, K]``
            A single path, or per-layer op weights (``skip`` columns 0).
        compute : {"nonzero", "all"}
        depth : float Tensor ``[S, Dmax]``, int sequence ``[S]`` or None
            Sink-connecting depth weights (entry ``d − 1`` weighs depth ``d``), or the
            depth per stage; None: from the ``skip`` entries of index ``weights``
            (full depth for float weights).
        """
        rows = self._rows(weights)
        skip = self.candidates.index("skip") if "skip" in self.candidates else -1
        y = self.stem(x)
        start = 0
        for s, n in enumerate(self.sizes):
            v = None if depth is None else depth[s]
            if isinstance(v, Tensor) and v.is_floating_point():
                outs = []
                for p in range(n):
                    y = self.layers[start + p](y, rows[start + p], compute)
                    outs.append(y)
                y = sum(v[d] * outs[d] for d in range(n) if bool(v[d].detach() != 0))
            else:
                if v is None:
                    d = n if not isinstance(rows[start], int) else sum(1 for r in rows[start:start + n] if r != skip)
                else:
                    d = int(v)
                for p in range(d):
                    y = self.layers[start + p](y, rows[start + p], compute)
            start += n
        return self.head(y)


# -- the searcher -------------------------------------------------------------------------------
class TFNAS(Searcher):
    """TF-NAS: bi-sampling, sink-connecting depth, elastic mids, elasticity scaling (see the module docstring).

    Parameters
    ----------
    lambda_lat : float
        λ of the latency term (``--lambda_lat``).
    objective : {"abs", "hinge"}
        ``λ·|lat/T − 1|`` (the released code) or ``λ·max(lat/T − 1, 0)`` (the paper's Eq. 9).
    tau, tau_decay : float
        Gumbel temperature at the end of the warm-up and its decay per paper epoch after it.
    alpha_lr : float
        Adam learning rate of ``log α`` and β.
    alpha_betas : tuple of float
    alpha_weight_decay : float
    weight_lr, weight_momentum, weight_decay, grad_clip : float
        SGD of the supernet weights (cosine over the run) and the gradient-norm clip (both optimizers).
    batch_size : int
        Of both splits.
    warmup_fraction : float
        Share of the epochs without architecture steps (10 / 90).
    arch_every : int
        An architecture step after every ``arch_every``-th weight step (code: ``step % 2 == 0``).
    bi_sampling : bool
        Train a second, uniformly random path per weight step (False: path 1 only, plain Gumbel sampling).
    elasticity : bool
        Run elasticity scaling after each epoch from ``elasticity_fraction`` of the run on.
    elasticity_fraction : float
        Share of the run before the first scaling (the code: after epoch 10 of 90).
    width_mult : float
        Proxy supernet channel multiplier.
    resolution : int, optional
        Proxy input resolution (default: the task's).

    Attributes
    ----------
    log_alpha_ : Tensor float64 ``[L, K]``
        Normalised op log-probabilities (0 on ``skip`` and illegal cells, which are masked).
    beta_ : Tensor float64 ``[S, Dmax]``
        Depth logits (0 where the depth does not exist).
    mids_ : ndarray int64 ``[L, K]``
        Current real (224) mid channels of every MBConv cell.
    scalings_ : list of ScalingResult
        One per elasticity scaling.
    last_alpha_step_ : dict
        ``u``, ``v``, ``mids`` and ``latency_ms`` of the last architecture step.
    supernet_ : nn.Module
    trace_ : list of dict
        One row per epoch.
    """

    name: ClassVar[str] = "tfnas"
    paper: ClassVar[str] = "Hu et al., ECCV 2020 (TF-NAS)"
    default_space: ClassVar[str] = "tfnas"
    latency_kinds: ClassVar[tuple[str, ...]] = ("differentiable", "width")
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {
        "lambda_lat": (0.1, "train_search.py --lambda_lat"),
        "objective": ("abs", "train_search.py: torch.abs(lat / T − 1) (the paper's Eq. 9 is the hinge)"),
        "tau": (5.0, "train_search.py --T"),
        "tau_decay": (0.96, "train_search.py --T_decay"),
        "alpha_lr": (0.01, "train_search.py --a_lr"),
        "alpha_betas": ((0.5, 0.999), "train_search.py --a_beta1/--a_beta2"),
        "alpha_weight_decay": (5e-4, "train_search.py --a_wd"),
        "weight_lr": (0.025, "train_search.py --w_lr"),
        "weight_momentum": (0.9, "train_search.py --w_mom"),
        "weight_decay": (1e-5, "train_search.py --w_wd"),
        "grad_clip": (5.0, "train_search.py --grad_clip"),
        "batch_size": (32, "train_search.py --batch_size"),
        "warmup_fraction": (10 / 90, "train_search.py: epoch < 10 of 90 trains without α"),
        "arch_every": (2, "train_search.py: step % 2 == 0"),
        "bi_sampling": (True, "train_search.py train_w_arch: gumbel + random paths"),
        "elasticity": (True, "train_search.py: fit_mc_num_by_latency after every epoch ≥ 10"),
        "elasticity_fraction": (10 / 90, "train_search.py: if epoch >= 10"),
    }

    def __init__(
        self,
        *,
        lambda_lat: float = 0.1,
        objective: str = "abs",
        tau: float = 5.0,
        tau_decay: float = 0.96,
        alpha_lr: float = 0.01,
        alpha_betas: tuple[float, float] = (0.5, 0.999),
        alpha_weight_decay: float = 5e-4,
        weight_lr: float = 0.025,
        weight_momentum: float = 0.9,
        weight_decay: float = 1e-5,
        grad_clip: float = 5.0,
        batch_size: int = 32,
        warmup_fraction: float = 10 / 90,
        arch_every: int = 2,
        bi_sampling: bool = True,
        elasticity: bool = True,
        elasticity_fraction: float = 10 / 90,
        width_mult: float = 0.25,
        resolution: int | None = None,
    ):
        self.lambda_lat = lambda_lat
        self.objective = objective
        self.tau = tau
        self.tau_decay = tau_decay
        self.alpha_lr = alpha_lr
        self.alpha_betas = alpha_betas
        self.alpha_weight_decay = alpha_weight_decay
        self.weight_lr = weight_lr
        self.weight_momentum = weight_momentum
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.batch_size = batch_size
        self.warmup_fraction = warmup_fraction
        self.arch_every = arch_every
        self.bi_sampling = bi_sampling
        self.elasticity = elasticity
        self.elasticity_fraction = elasticity_fraction
        self.width_mult = width_mult
        self.resolution = resolution

    # -- schedules -------------------------------------------------------------------------
    def paper_epoch(self, epoch: int, epochs: int, warmup: int) -> float:
        """Paper epoch (0 … 90) of run epoch ``epoch`` of ``epochs`` with ``warmup`` warm-up epochs."""
        return paper_epoch(epoch, epochs, warmup, PAPER_EPOCHS, self.warmup_fraction)

    def tau_at(self, paper_epoch: float) -> float:
        """Gumbel temperature: ``tau`` until the warm-up ends, then ×``tau_decay`` per paper epoch."""
        return self.tau * self.tau_decay ** max(paper_epoch - PAPER_EPOCHS * self.warmup_fraction, 0.0)

    def latency_loss(self, lat: Tensor, target_ms: float) -> Tensor:
        """``λ·|lat/T − 1|`` (abs) or ``λ·max(lat/T − 1, 0)`` (hinge)."""
        r = lat / target_ms - 1.0
        return self.lambda_lat * (r.abs() if self.objective == "abs" else F.relu(r))

    # -- setup -----------------------------------------------------------------------------
    def _validate(self, space: Any, latency: Any, target_ms: float | None) -> float:
        if target_ms is None:
            raise SearchError("tfnas needs target_ms (the latency target T in ms)")
        if not (isinstance(target_ms, (int, float)) and math.isfinite(target_ms) and target_ms > 0):
            raise SearchError(f"target_ms must be a positive number of ms, got {target_ms!r}")
        if self.objective not in OBJECTIVES:
            raise SearchError(f"tfnas objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        for key in ("lambda_lat", "alpha_lr", "tau", "batch_size", "arch_every"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and v >= 0 and (v > 0 or key == "lambda_lat")):
                raise SearchError(f"tfnas {key} must be positive, got {v!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise SearchError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if getattr(space, "width", None) != "mid" or getattr(space, "skip", None) != "depth":
            raise SearchError(f"tfnas needs a space with elastic mid channels and depth skips (tfnas), not {space.name}")
        works = "a TF-NAS latency table (latency_gpu.pkl / latency_cpu.pkl) or a table measured with a width sweep"
        require_latency(self, latency, "depth_expected", works)
        require_latency(self, latency, "width_curve", works)
        try:
            cand = next(c for c, ok in zip(space.candidates, space.mask[0]) if ok and c != "skip")
            latency.width_curve(0, cand)
        except HwprofError as exc:
            raise SearchError(f"tfnas needs width curves in the latency table ({exc}); use {works}") from None
        return float(target_ms)

    def _epochs(self, budget: Budget, task: Any, net: Any) -> tuple[int, int | None]:
        """Run epochs for ``budget`` and, for a steps budget, the weight batches of the last epoch."""
        n_w = task.steps_per_epoch("weights", self.batch_size)
        k = int(self._op_mask.sum(1).max())
        # warm-up: one path; search: two paths + an all-op arch step every `arch_every`
        per_epoch = n_w * (self.warmup_fraction + (1 - self.warmup_fraction) * (2 + k / self.arch_every))
        default = PAPER_EPOCHS if getattr(task, "name", "") == "stand-in" else PROXY_EPOCHS
        return budget_epochs(budget, n_w, lambda: time_path_step(net, task, self.batch_size, self._op_mask),
                             per_epoch, default)

    def _setup_space(self, space: Any) -> None:
        mask = np.asarray(space.mask, dtype=bool)
        skip_col = np.array([c == "skip" for c in space.candidates])
        self._op_mask = mask & ~skip_col[None, :]
        # per layer: legal op columns in order (padded), and each column's rank among them
        self._legal_rank = np.cumsum(self._op_mask, 1) - 1
        self._legal_cols = np.zeros(mask.shape, dtype=np.int64)
        for l, row in enumerate(self._op_mask):
            cols = np.flatnonzero(row)
            self._legal_cols[l, : len(cols)] = cols
        self._candidates = tuple(space.candidates)
        self._sizes = [st.layers for st in space.stages]
        dmax = max(self._sizes)
        stage_layers, start = [], 0
        for n in self._sizes:
            stage_layers.append(list(range(start, start + n)))
            start += n
        self._stage_layers = stage_layers
        valid = np.zeros((len(self._sizes), dmax), dtype=bool)
        for s, layers in enumerate(stage_layers):
            for d in range(1, len(layers) + 1):
                dropped = layers[d:]
                skippable = all(mask[l, skip_col.argmax()] for l in dropped) if skip_col.any() else not dropped
                valid[s, d - 1] = d >= space.min_depth and skippable
        self._depth_valid = valid
        mids = np.zeros(mask.shape, dtype=np.int64)
        for g in space.geometry():
            for k, cand in enumerate(space.candidates):
                if self._op_mask[g.index, k]:
                    mids[g.index, k] = space.candidate_op(g, cand).mid
        self.mids_ = mids

    # -- fit -------------------------------------------------------------------------------
    def fit(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> TFNAS:
        """Train the supernet, ``log α`` and β toward ``target_ms``, scaling widths after each epoch.

        Parameters
        ----------
        task : Task or StandInTask
        space : Space
            ``tfnas`` (elastic mids, depth skips).
        latency : TableLatencyModel
            A table with width curves (the released TF-NAS ``latency_{gpu,cpu}.pkl``).
        target_ms : float
            Target latency T (ms).
        budget : Budget
            Epochs, weight steps or seconds; ``Budget()`` = 90 epochs on the stand-in,
            :data:`PROXY_EPOCHS` on a real task.
        seed : int
        callback : callable, optional
            Called with each epoch's trace row.
        """
        self._start_clock()
        target = self._validate(space, latency, target_ms)
        self._setup_space(space)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        maker = getattr(task, "make_supernet", None)
        if callable(maker):
            net = maker(space)
        else:
            net = ElasticSuperNet(space, width_mult=self.width_mult, resolution=int(self.resolution or task.resolution),
                                  classes=int(task.classes))
        elastic_net = isinstance(net, ElasticSuperNet)
        epochs, last_steps = self._epochs(budget, task, net)
        warmup = min(int(round(epochs * self.warmup_fraction)), epochs - 1) if epochs > 1 else 0
        scale_from = min(int(round(epochs * self.elasticity_fraction)), epochs - 1) if epochs > 1 else 0
        self.epochs_, self.warmup_epochs_, self.scale_from_epoch_ = epochs, warmup, scale_from
        self.target_ms_ = target

        op_mask = torch.as_tensor(self._op_mask)
        valid = torch.as_tensor(self._depth_valid)
        log_alpha = torch.zeros(op_mask.shape, dtype=torch.float64)
        beta = torch.zeros(valid.shape, dtype=torch.float64)
        with torch.no_grad():
            _renormalise(log_alpha, op_mask)
            _renormalise(beta, valid)
        log_alpha.requires_grad_(True)
        beta.requires_grad_(True)
        self.log_alpha_, self.beta_ = log_alpha, beta
        self.scalings_ = []
        self.trace_ = []
        self.last_alpha_step_ = {}
        self._sampled = np.zeros((2,) + self._op_mask.shape, dtype=np.int64)  # [path, L, K] counts after warm-up
        self._derived_ops: list[np.ndarray] = []
        n_alpha = n_weight = 0
        net.train()
        for epoch in range(epochs):
            pe = self.paper_epoch(epoch, epochs, warmup)
            tau = self.tau_at(pe)
            lr = 0.5 * self.weight_lr * (1 + math.cos(math.pi * epoch / epochs))
            # the code rebuilds net and optimizers every epoch: momentum and Adam moments restart
            w_opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=self.weight_momentum,
                                    weight_decay=self.weight_decay)
            a_opt = torch.optim.Adam([log_alpha, beta], lr=self.alpha_lr, betas=tuple(self.alpha_betas),
                                     weight_decay=self.alpha_weight_decay)
            search = epoch >= warmup
            max_w = last_steps if (last_steps is not None and epoch == epochs - 1) else None
            arch_iter = iter(())
            w_losses, a_ces, a_lats, a_lls = [], [], [], []
            for i, (x, y) in enumerate(task.batches("weights", self.batch_size, generator=gen, augment=True)):
                if max_w is not None and i >= max_w:
                    break
                w_losses.append(self._weight_step(net, w_opt, x, y, tau, gen, two_paths=search and self.bi_sampling,
                                                  count=search))
                n_weight += 1
                if search and i % self.arch_every == 0:
                    batch = next(arch_iter, None)
                    if batch is None:
                        arch_iter = iter(task.batches("arch", self.batch_size, generator=gen))
                        batch = next(arch_iter)
                    ce, lat, ll = self._alpha_step(net, latency, a_opt, batch[0], batch[1], tau, target, gen)
                    a_ces.append(ce)
                    a_lats.append(lat)
                    a_lls.append(ll)
                    n_alpha += 1
            row: dict[str, Any] = {"epoch": epoch, "paper_epoch": round(pe, 4), "phase": "search" if search else "warmup",
                                   "tau": tau, "weight_lr": lr, "weight_loss": _mean(w_losses)}
            if a_lats:
                row.update(alpha_ce=_mean(a_ces), latency_loss=_mean(a_lls), expected_latency_ms=_mean(a_lats),
                           expected_latency_last_ms=a_lats[-1], alpha_steps=len(a_lats))
            choices, idx, depths = self._derive_choices()
            if search:
                self._derived_ops.append(idx.copy())
            seed_arch = self._arch_text(choices)
            row.update(seed_arch=seed_arch, depths=depths, seed_latency_ms=float(latency.arch_latency(seed_arch)))
            if self.elasticity and epoch >= scale_from:
                res = self._scale(net if elastic_net else None, latency, space, choices, idx, target)
                row.update(before_ms=res.before_ms, after_ms=res.after_ms, reachable=res.reachable,
                           min_width_ms=res.min_ms, max_width_ms=res.max_ms, scaling=res.direction)
                if not res.reachable:
                    row["note"] = res.message
            arch = self._arch_text(choices)
            row.update(arch=arch, latency_ms=float(latency.arch_latency(arch)), seconds=self._elapsed())
            self.trace_.append(row)
            if callback is not None:
                callback(dict(row))

        self.alpha_steps_, self.weight_steps_ = n_alpha, n_weight
        self.supernet_ = net
        self.task_, self.space_, self.latency_, self.seed_ = task, space, latency, seed
        return self

    # -- steps -----------------------------------------------------------------------------
    def sample_paths(self, tau: float, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Bi-sampling: path 1 = argmax of a soft Gumbel sample of ``log α``, path 2 = uniform among the rest.

        Returns
        -------
        path1, path2 : ndarray int64 ``[L]``
            Candidate indices; ``path2[l] != path1[l]`` wherever a layer has two or more ops.
        """
        soft = gumbel_softmax(self.log_alpha_.detach(), self._op_mask, tau, generator=generator)
        path1 = soft.argmax(-1).numpy().astype(np.int64)
        # uniform rank r among the other legal ops: the r-th legal op, skipping path 1's rank
        n_legal = self._op_mask.sum(1)
        rank1 = self._legal_rank[np.arange(len(path1)), path1]
        u = torch.rand(len(path1), dtype=torch.float64, generator=generator).numpy()
        r = np.minimum((u * np.maximum(n_legal - 1, 1)).astype(np.int64), np.maximum(n_legal - 2, 0))
        r = np.where(n_legal > 1, r + (r >= rank1), 0)
        path2 = self._legal_cols[np.arange(len(path1)), r]
        return path1, path2

    def depth_weights(self) -> Tensor:
        """``softmax(β)`` per stage over its depths, float64 ``[S, Dmax]`` (0 where a depth does not exist)."""
        return self.beta_.masked_fill(~torch.as_tensor(self._depth_valid), float("-inf")).softmax(-1)

    def mids_tensor(self) -> Tensor:
        """Current real mid channels as float64 ``[L, K]`` (0 on cells without a width)."""
        return torch.as_tensor(self.mids_, dtype=torch.float64)

    def _weight_step(self, net: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, tau: float,
                     gen: torch.Generator, two_paths: bool, count: bool) -> float:
        path1, path2 = self.sample_paths(tau, gen)
        v = self.depth_weights().detach().float()  # soft β mixture, not sampled
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, path1, depth=v), y)
        if two_paths:
            loss = loss + F.cross_entropy(net(x, path2, depth=v), y)
        loss.backward()
        params = [p for p in net.parameters() if p.grad is not None]
        if self.grad_clip and params:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()
        if count:
            rows = np.arange(len(path1))
            self._sampled[0, rows, path1] += 1
            if two_paths:
                self._sampled[1, rows, path2] += 1
        self.last_paths_ = (path1, path2 if two_paths else None)
        return float(loss.detach())

    def alpha_loss_terms(self, net: nn.Module, latency: Any, x: Tensor, y: Tensor, tau: float, target_ms: float,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The α-step loss terms at one soft Gumbel sample over all ops.

        Returns
        -------
        ce : Tensor ``[]``
        latency_ms : Tensor ``[]``
            ``latency.depth_expected(u, softmax β, mids)`` (ms).
        latency_loss : Tensor ``[]``
        u : Tensor float64 ``[L, K]``
        v : Tensor float64 ``[S, Dmax]``
        """
        u = gumbel_softmax(self.log_alpha_, self._op_mask, tau, generator=generator)
        v = self.depth_weights()
        ce = F.cross_entropy(net(x, u.float(), depth=v.float()), y)
        lat = latency.depth_expected(u, v, self.mids_tensor())
        return ce, lat, self.latency_loss(lat, target_ms), u, v

    def _alpha_step(self, net: nn.Module, latency: Any, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, tau: float,
                    target: float, gen: torch.Generator) -> tuple[float, float, float]:
        params = list(net.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            ce, lat, ll, u, v = self.alpha_loss_terms(net, latency, x, y, tau, target, generator=gen)
            opt.zero_grad(set_to_none=True)
            (ce + ll).backward()
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_([self.log_alpha_, self.beta_], self.grad_clip)
        opt.step()
        with torch.no_grad():  # log α ← log_softmax(log α), and β likewise (the code loops over both)
            _renormalise(self.log_alpha_, torch.as_tensor(self._op_mask))
            _renormalise(self.beta_, torch.as_tensor(self._depth_valid))
        self.last_alpha_step_ = {"u": u.detach().clone(), "v": v.detach().clone(), "mids": self.mids_tensor(),
                                 "latency_ms": float(lat.detach())}
        return float(ce.detach()), float(lat.detach()), float(ll.detach())

    # -- derivation and elasticity ---------------------------------------------------------
    def _derive_choices(self) -> tuple[list[str], np.ndarray, list[int]]:
        """Argmax op per layer, argmax depth per stage: candidate names (``skip`` where dropped), op indices, depths."""
        la = self.log_alpha_.detach().masked_fill(~torch.as_tensor(self._op_mask), float("-inf"))
        idx = la.argmax(-1).numpy().astype(np.int64)
        bv = self.beta_.detach().masked_fill(~torch.as_tensor(self._depth_valid), float("-inf"))
        depths = (bv.argmax(-1) + 1).tolist()
        choices = [self._candidates[k] for k in idx]
        for layers, d in zip(self._stage_layers, depths):
            for l in layers[d:]:
                choices[l] = "skip"
        return choices, idx, [int(d) for d in depths]

    def _arch_text(self, choices: Sequence[str], mids: Sequence[int | None] | None = None) -> str:
        from hwprof import Arch

        cols = [self._candidates.index(c) for c in choices]
        if mids is None:
            mids = [None if c == "skip" else int(self.mids_[l, k]) for l, (c, k) in enumerate(zip(choices, cols))]
        return Arch(tuple(choices), None, tuple(mids)).encode()

    def _scale(self, net: ElasticSuperNet | None, latency: Any, space: Any, choices: list[str], idx: np.ndarray,
               target: float) -> ScalingResult:
        mids = [None if c == "skip" else int(self.mids_[l, idx[l]]) for l, c in enumerate(choices)]
        res = elasticity_scaling(latency, space, choices, mids, target)
        for l, (old, new) in enumerate(zip(mids, res.mids)):
            if new is not None and new != old:
                self.mids_[l, idx[l]] = new
                if net is not None:
                    net.set_mid(l, int(idx[l]), new)
        self.scalings_.append(res)
        return res

    # -- search ----------------------------------------------------------------------------
    def search(self, *, target_ms: float | None = None, constraint: Mapping[str, Any] | None = None) -> SearchResult:
        """The derived architecture (argmax ops, argmax depths, ``@mid`` widths) with its latency and the run's trace.

        A ``target_ms`` other than the fitted one re-runs elasticity scaling (Alg. 1) of the
        derived net for it (widths only; the op and depth search ran for the fitted target).
        """
        if not hasattr(self, "supernet_"):
            raise SearchError("call fit() before search()")
        space, task, latency = self.space_, self.task_, self.latency_
        choices, idx, depths = self._derive_choices()
        deviations = self._deviations()
        target = self.target_ms_
        mids = None
        if target_ms is not None and float(target_ms) != self.target_ms_:
            target = float(target_ms)
            cur = [None if c == "skip" else int(self.mids_[l, idx[l]]) for l, c in enumerate(choices)]
            res = elasticity_scaling(latency, space, choices, cur, target)
            mids = list(res.mids)
            deviations.append(f"widths re-scaled by Alg. 1 for {target:g} ms after a search fitted for "
                              f"{self.target_ms_:g} ms (ops and depths are those of the fitted run)")
        arch = self._arch_text(choices, mids)
        path = np.array([space.candidates.index(c) for c in choices], dtype=np.int64)
        net = self.supernet_
        if isinstance(net, ElasticSuperNet):
            acc = derived_accuracy(net, path, task, self.batch_size, self.seed_, max_batches=20)
        else:  # the stand-in has no BatchNorm to recalibrate
            acc = accuracy(net, path, task.x_test, task.y_test)
        proxy = {"task": getattr(task, "name", type(task).__name__), "resolution": getattr(task, "resolution", None),
                 "width_mult": self.width_mult, "classes": getattr(task, "classes", None), "test_accuracy": acc,
                 "epochs": self.epochs_, "warmup_epochs": self.warmup_epochs_, "alpha_steps": self.alpha_steps_,
                 "weight_steps": self.weight_steps_, "depths": depths, **self.collapse_shares()}
        if self.scalings_:
            last = self.scalings_[-1]
            proxy.update(last_before_ms=last.before_ms, last_after_ms=last.after_ms, last_reachable=last.reachable,
                         unreachable_scalings=sum(not r.reachable for r in self.scalings_))
        return self.make_result(space=space, arch=arch, latency=latency, target_ms=target, proxy=proxy,
                                deviations=deviations, trace=self.trace_, seed=self.seed_)

    def collapse_shares(self, layers: Sequence[int] | None = None) -> dict[str, float | None]:
        """Op-collapse statistics (TF-NAS Fig. 2) in two middle layers after the warm-up.

        ``collapse_trained``: share of the most frequent op among the ops trained in weight steps
        (both paths); ``collapse_gumbel``: the same for path 1 alone; ``collapse_derived``: share of
        the most frequent derived (argmax) op over the search epochs. Means over the layers.
        """
        L = self._op_mask.shape[0]
        layers = list(layers) if layers is not None else [L // 2 - 1, L // 2]

        def share(counts: np.ndarray) -> float | None:
            tot = counts.sum(-1)
            return float(np.mean(counts.max(-1) / tot)) if (tot > 0).all() else None

        both = self._sampled.sum(0)[layers]
        derived = None
        if self._derived_ops:
            ops = np.stack(self._derived_ops)[:, layers]  # [epochs, 2]
            derived = float(np.mean([np.bincount(ops[:, j]).max() / len(ops) for j in range(len(layers))]))
        return {"collapse_trained": share(both), "collapse_gumbel": share(self._sampled[0][layers]),
                "collapse_derived": derived}

    def _deviations(self) -> list[str]:
        out = self.deviations_from_paper()
        if (self.epochs_, self.warmup_epochs_) != (PAPER_EPOCHS, PAPER_WARMUP_EPOCHS):
            out.append(f"{self.epochs_} epochs ({self.warmup_epochs_} warm-up) instead of the paper's {PAPER_EPOCHS} "
                       f"({PAPER_WARMUP_EPOCHS}); τ, the weight lr and the start of elasticity follow the run's progress")
        task = getattr(self.task_, "name", "")
        if task != "stand-in":
            out.append(f"searched on the proxy task {task!r} at {getattr(self.task_, 'resolution', '?')} px, width "
                       f"×{self.width_mult:g}, instead of ImageNet-100 at 224 px; real mid counts map to "
                       "proportional proxy channel counts")
            out.append("inactive mid channels are masked in a max-width block instead of removed from a rebuilt "
                       "network (same forward; SGD weight decay also touches the masked weights)")
        return out


def _renormalise(param: Tensor, mask: Tensor) -> None:
    """In place: ``param ← log_softmax(param)`` over each row's ``mask`` entries (0 elsewhere)."""
    ls = param.masked_fill(~mask, float("-inf")).log_softmax(-1)
    param.copy_(torch.where(mask, ls, torch.zeros_like(ls)))


def _mean(xs: Sequence[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


__all__ = [
    "OBJECTIVES",
    "PAPER_EPOCHS",
    "PAPER_WARMUP_EPOCHS",
    "PROXY_EPOCHS",
    "TFNAS",
    "ElasticMBConv",
    "ElasticSuperNet",
    "ScalingResult",
    "elasticity_scaling",
    "l1_channel_order",
]
