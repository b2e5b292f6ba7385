"""Single-Path NAS: superkernels with threshold decisions (Stamoulis et al., 2019).

Every searchable layer is one MBConv **superkernel** k5 e6 whose depthwise
kernel ``W [C, 1, 5, 5]`` (``C = 6·Cin``) carries three scalar thresholds,
trained jointly with the weights by one optimizer on one loss (no bi-level
split). Per layer, as the released ``superkernel.py``:

1. ``d5 = 1[‖W ∘ ring5\\3‖ − t5x5 ≥ 0]``; ``W_k = W ∘ core3 + d5 · (W ∘ ring5\\3)``;
2. ``c50 = round(C / 2)``; ``d100 = 1[‖W_k[c50:]‖ − t100c ≥ 0]``;
3. ``d50 = 1[‖W_k[:c50]‖ − t50c ≥ 0]`` only where the layer may be dropped
   (stride 1, a repeat in its stage: the space's skip column), else 1;
4. masked kernel ``d50 · (W_k[:c50] + d100 · W_k[c50:])``.

Indicators are straight-through (:func:`hwprof.latency.ste_indicator`). With
``d50 = 0`` the depthwise output is zero and the block adds only the constant
``project(act(BN(0)))`` to its residual, as released.

Loss (``search_main.py``): ``CE_ls(0.1) + 1e-5 · Σ_{non-BN} ‖v‖²/2 + λ(p) · 1e3 ·
log R``, ``R`` the :class:`hwprof.latency.SinglePathRuntime` of the current
indicators (ms). Schedule as a function of progress ``p``: ``λ = 0`` and
indicator dropout (keep 0.6, TF1 scaling 1/keep, which scales the masked
kernel *and* the runtime term) for ``p < 6255/10008``, then ``λ`` and no
dropout. RMSProp as released (TF semantics: mean square initialised to 1,
ε inside the square root; decay 0.9, momentum 0.9, ε 1e-3), learning rate
``0.016 · batch / 256`` decayed ×0.97 every 2.4 of the paper's 8 epochs
(staircase), thresholds initialised to 0, so the search starts as all-k5_e6.

λ default: **0.02**, the README's example run, which is the run behind the
paper's 80 ms model (79.48 ms on Pixel 1); the flag's own default is 0.1.

Derived architecture (``parse_search_output.py``) from the final
``[d5, d50, d100]`` per layer: ``d50 = 0 → skip``, ``[0,1,0] k3_e3``,
``[0,1,1] k3_e6``, ``[1,1,0] k5_e3``, ``[1,1,1] k5_e6`` (not the released
``convnet_encoder``, which swaps the expansions of k3_e6 and k5_e3).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwprof.latency import ste_indicator
from hwprof.latency.single_path import COLUMNS
from hwprof.spaces.modules import ConvBNAct, build_op, make_act
from searchers.base import Budget, Searcher, SearchError, SearchResult, require_latency
from searchers.supernet import _proxy_space, proxy_choice_ops

#: The released schedule: 10 008 steps at batch 1024 (≈ 8 ImageNet epochs), 6255 of them warm-up.
PAPER_STEPS = 10_008
PAPER_WARMUP_STEPS = 6_255
PAPER_EPOCHS = 8.0
#: Standard deviation of mnasnet's depthwise kernel initialiser, sqrt(2 / (5·5·1)).
MNASNET_DW_STD = math.sqrt(2.0 / 25.0)
#: Depthwise kernel initialisation on the proxy (see :class:`SinglePathNAS`, ``kernel_init_std``).
PROXY_DW_STD = 0.035
#: Weight steps on the proxy when the budget names none.
DEFAULT_STEPS = 300


def derive_choice(d5: float, d50: float, d100: float, droppable: bool) -> str:
    """Candidate name of one layer from its decisions (§1.1; ``d50`` counts only where droppable).

    ``[d5, d50, d100]``: ``d50 = 0 → skip``, ``[0,1,0] k3_e3``, ``[0,1,1] k3_e6``,
    ``[1,1,0] k5_e3``, ``[1,1,1] k5_e6``.
    """
    if droppable and d50 <= 0:
        return "skip"
    return f"k{5 if d5 > 0 else 3}_e{6 if d100 > 0 else 3}"


# -- optimizer ------------------------------------------------------------------------------------
class TFRMSprop(torch.optim.Optimizer):
    """``tf.train.RMSPropOptimizer`` (TF1): the optimizer the released search uses.

    ``ms ← ρ·ms + (1−ρ)·g²`` (``ms`` starts at **1**), ``mom ← μ·mom + lr·g / √(ms + ε)``,
    ``v ← v − mom``. ``torch.optim.RMSprop`` differs in both: its mean square
    starts at 0 (first steps ≈ 3× lr) and ε sits outside the root.
    """

    def __init__(self, params: Any, lr: float, decay: float = 0.9, momentum: float = 0.9, eps: float = 1e-3):
        super().__init__(params, {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)
                    state["mom"] = torch.zeros_like(p)
                ms, mom = state["ms"], state["mom"]
                ms.mul_(group["decay"]).addcmul_(p.grad, p.grad, value=1 - group["decay"])
                mom.mul_(group["momentum"]).addcdiv_(p.grad, (ms + group["eps"]).sqrt(), value=group["lr"])
                p.sub_(mom)


# -- the superkernel supernet -----------------------------------------------------------------------
@dataclass(frozen=True)
class Decisions:
    """Decision inputs and indicators of every searchable layer.

    Attributes
    ----------
    x5, x50, x100 : Tensor ``[L]``
        ``norm − threshold`` (the runtime model's inputs).
    d5, d50, d100 : Tensor ``[L]``
        Straight-through indicators as the network uses them (after indicator
        dropout, if any: 0 or 1/keep in the warm-up); ``d50`` is 1 on layers
        that cannot be dropped.
    dropout : bool
        Whether indicator dropout was applied.
    """

    x5: Tensor
    x50: Tensor
    x100: Tensor
    d5: Tensor
    d50: Tensor
    d100: Tensor
    dropout: bool


class SuperKernelLayer(nn.Module):
    """One MBConv superkernel k5 e6 with thresholds ``t5x5, t50c, t100c`` (all initialised to 0).

    Parameters
    ----------
    cin, cout, stride : int
        Proxy-scale shape of the layer.
    act : str
        Activation name.
    droppable : bool
        Whether the layer has a ``d50`` decision (the space allows skip here).
    expand : int
        Expansion ratio of the superkernel (6).
    """

    def __init__(self, cin: int, cout: int, stride: int, act: str, droppable: bool, expand: int = 6,
                 init_std: float | None = None):
        super().__init__()
        mid = cin * expand
        self.cin, self.cout, self.stride, self.mid = cin, cout, stride, mid
        self.droppable = bool(droppable)
        self.expand = ConvBNAct(cin, mid, 1, 1, 1, act)
        self.weight = nn.Parameter(torch.empty(mid, 1, 5, 5))
        # mnasnet's conv_kernel_initializer: N(0, 2 / fan_out), fan_out = 5·5·1 for a depthwise kernel;
        # the threshold decisions compare norms of this kernel, so its scale matters
        nn.init.normal_(self.weight, 0.0, MNASNET_DW_STD if init_std is None else init_std)
        self.bn = nn.BatchNorm2d(mid)
        self.act = make_act(act)
        self.project = ConvBNAct(mid, cout, 1, 1, 1, "none")
        self.residual = stride == 1 and cin == cout
        self.t5x5 = nn.Parameter(torch.zeros(()))
        self.t50c = nn.Parameter(torch.zeros(()))
        self.t100c = nn.Parameter(torch.zeros(()))
        core = torch.zeros(1, 1, 5, 5)
        core[..., 1:4, 1:4] = 1.0
        self.register_buffer("core3", core, persistent=False)
        self.register_buffer("ring5", 1.0 - core, persistent=False)
        self.c50 = round(mid / 2)  # mid = 6·cin is even: exactly half
        lower = torch.zeros(mid, 1, 1, 1)
        lower[: self.c50] = 1.0
        self.register_buffer("lower", lower, persistent=False)
        self.register_buffer("upper", 1.0 - lower, persistent=False)

    def decide(self, keep: float | None = None, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        """``(x5, x50, x100, d5, d50, d100, masked_kernel)`` of this layer.

        ``keep``: indicator dropout keep probability (None = no dropout); a
        kept indicator is scaled by ``1/keep`` (TF1 ``tf.nn.dropout``).
        """
        w = self.weight
        ring = w * self.ring5
        x5 = torch.linalg.vector_norm(ring) - self.t5x5
        d5 = _dropout(ste_indicator(x5), keep, generator)
        wk = w * self.core3 + ring * d5
        k50, k100 = wk * self.lower, wk * self.upper
        x100 = torch.linalg.vector_norm(k100) - self.t100c
        d100 = _dropout(ste_indicator(x100), keep, generator)
        x50 = torch.linalg.vector_norm(k50) - self.t50c
        if self.droppable:
            d50 = _dropout(ste_indicator(x50), keep, generator)
        else:
            d50 = torch.ones((), dtype=w.dtype)
        return x5, x50, x100, d5, d50, d100, d50 * (k50 + d100 * k100)

    def forward(self, x: Tensor, kernel: Tensor) -> Tensor:
        """The block on ``x [B, Cin, H, W]`` with the masked depthwise ``kernel [C, 1, 5, 5]``."""
        y = self.expand(x)
        y = self.act(self.bn(F.conv2d(y, kernel, None, self.stride, 2, 1, self.mid)))
        y = self.project(y)
        return x + y if self.residual else y


def _dropout(d: Tensor, keep: float | None, generator: torch.Generator | None) -> Tensor:
    if keep is None or keep >= 1.0:
        return d
    kept = torch.rand((), generator=generator) < keep
    return d * (kept.to(d.dtype) / keep)


class SuperKernelNet(nn.Module):
    """The Single-Path supernet at proxy scale: the space's stem and head, one superkernel per searchable layer.

    Built from :func:`searchers.supernet.proxy_choice_ops` (the k5_e6 candidate
    of each layer gives its proxy channels and stride) and the proxy-scaled
    stem and head of the space.

    Parameters
    ----------
    space : Space
        A Single-Path space (candidates k3_e3, k3_e6, k5_e3, k5_e6[, skip]).
    width_mult : float
    resolution : int
    classes : int
    """

    def __init__(self, space: Any, *, width_mult: float = 0.25, resolution: int = 32, classes: int = 10,
                 init_std: float | None = None):
        super().__init__()
        if tuple(space.candidates[:4]) != COLUMNS:
            raise SearchError(
                f"single_path_nas needs a space whose candidates are {', '.join(COLUMNS)}[, skip] (spnas); "
                f"{space.name} has {', '.join(space.candidates)}"
            )
        self.space = space
        proxy = _proxy_space(space, width_mult, resolution, classes)
        stem_ops, _, head_ops = proxy._walk(int(resolution), 1)
        self.stem = nn.Sequential(*[build_op(op) for op in stem_ops])
        skip = space.candidates.index("skip") if "skip" in space.candidates else None
        droppable = space.mask[:, skip] if skip is not None else np.zeros(space.num_layers, dtype=bool)
        layers = []
        for row, drop in zip(proxy_choice_ops(space, width_mult, int(resolution)), droppable):
            op = row[COLUMNS.index("k5_e6")]
            layers.append(SuperKernelLayer(op.cin, op.cout, op.stride, op.act, bool(drop), init_std=init_std))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(*[build_op(op) for op in head_ops])
        self.droppable = np.asarray(droppable, dtype=bool)

    def thresholds(self) -> list[nn.Parameter]:
        return [t for layer in self.layers for t in (layer.t5x5, layer.t50c, layer.t100c)]

    def decisions(self, keep: float | None = None, generator: torch.Generator | None = None) -> tuple[Decisions, list[Tensor]]:
        """Decisions of every layer and the masked kernels (one list entry per layer)."""
        parts = [layer.decide(keep, generator) for layer in self.layers]
        cols = [torch.stack([p[i] for p in parts]) for i in range(6)]
        return Decisions(*cols, dropout=keep is not None and keep < 1.0), [p[6] for p in parts]

    def forward(self, x: Tensor, kernels: Sequence[Tensor] | None = None) -> Tensor:
        """Logits ``[B, classes]``; ``kernels`` from :meth:`decisions` (default: no dropout)."""
        if kernels is None:
            kernels = self.decisions()[1]
        y = self.stem(x)
        for layer, k in zip(self.layers, kernels):
            y = layer(y, k)
        return self.head(y)


def runtime_ms(latency: Any, dec: Decisions) -> Tensor:
    """The runtime term ``R`` (ms, float64 ``[]``) of the decisions.

    Without dropout it is ``latency.runtime(x5, x50, x100)`` (float64, so at
    the final thresholds it equals ``latency.score`` of the derived arch
    exactly); with dropout it prices the dropped, rescaled indicators, as the
    released graph does.
    """
    if not dec.dropout:
        return latency.runtime(dec.x5.double(), dec.x50.double(), dec.x100.double())
    per_layer = latency.layer_runtime_from_indicators(dec.d5.double(), dec.d50.double(), dec.d100.double())
    return per_layer.cumsum(-1)[-1] + latency.constant_ms


# -- the searcher ---------------------------------------------------------------------------------
class SinglePathNAS(Searcher):
    """Single-Path NAS: superkernel thresholds trained with ``CE + λ·1e3·log R``.

    Parameters
    ----------
    runtime_lambda : float
        λ (0.02, the README's run behind the paper's 80 ms model; flag default
        0.1). Also settable as ``lambda``.
    lambda_scale : float
        Multiplier of λ in the loss (1e3, as released).
    warmup_fraction : float
        Fraction of the run with λ = 0 and indicator dropout (6255/10008).
    indicator_dropout : bool
        Indicator dropout during the warm-up (TF1 scaling 1/keep).
    keep_prob : float
        Keep probability of the indicator dropout (0.6).
    base_lr : float
        Learning rate per 256 images (0.016); the run uses ``base_lr · batch_size / 256``.
    lr_decay, decay_epochs : float
        ×0.97 every 2.4 of the paper's 8 epochs (staircase, by progress).
    rmsprop_decay, momentum, epsilon : float
        RMSProp (0.9, 0.9, 1e-3), TF semantics (:class:`TFRMSprop`).
    weight_decay : float
        L2 ``Σ ‖v‖²/2`` over non-BN variables, thresholds included (1e-5).
    label_smoothing : float
        0.1.
    batch_size : int
        Proxy batch (paper 1024).
    width_mult : float
        Channel multiplier of the proxy supernet.
    kernel_init_std : float
        Standard deviation of the depthwise superkernel initialisation. The
        released mnasnet initialiser (:data:`MNASNET_DW_STD` = 0.283) puts the
        proxy's group norms at ≈ 8–20, where the straight-through gradient
        ``σ'(norm − t)`` is 1e-4 … 1e-9: the thresholds cannot reach the norms
        within a few hundred proxy steps (measured: R stays 131.458 ms at
        λ = 0.02 after 150 steps, while the norms grow). The proxy default
        :data:`PROXY_DW_STD` = 0.035 starts them at ≈ 1–2.4, where the
        decisions respond; it is listed in the report's deviations.

    Attributes
    ----------
    supernet_ : SuperKernelNet
    decisions_ : Decisions
        At the final thresholds, no dropout.
    runtime_ms_ : float
        ``R`` at the final thresholds.
    step_runtime_ms_ : ndarray ``[steps]``
        The runtime term of every step as in the loss (dropout included).
    step_runtime_det_ms_ : ndarray ``[steps]``
        ``R`` of every step at its thresholds without dropout.
    trace_ : list of dict
        One row per epoch of the proxy's weight split.
    """

    name: ClassVar[str] = "single_path_nas"
    paper: ClassVar[str] = "Stamoulis et al., ECML-PKDD 2019 (Single-Path NAS)"
    default_space: ClassVar[str] = "spnas"
    latency_kinds: ClassVar[tuple[str, ...]] = ("single-path-runtime",)
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {
        "runtime_lambda": (0.02, "README example run (the paper's 80 ms model); search_main.py flag default 0.1"),
        "lambda_scale": (1e3, "search_main.py runtime term"),
        "warmup_fraction": (PAPER_WARMUP_STEPS / PAPER_STEPS, "search_main.py warmup_steps 6255 of train_steps 10008"),
        "indicator_dropout": (True, "nas_utils.build_dropout_rate"),
        "keep_prob": (0.6, "nas_utils.build_dropout_rate"),
        "base_lr": (0.016, "search_main.py base_learning_rate, scaled by batch/256"),
        "lr_decay": (0.97, "mnasnet_utils.build_learning_rate"),
        "decay_epochs": (2.4, "mnasnet_utils.build_learning_rate"),
        "rmsprop_decay": (0.9, "nas_utils.build_optimizer"),
        "momentum": (0.9, "nas_utils.build_optimizer"),
        "epsilon": (1e-3, "nas_utils.build_optimizer"),
        "weight_decay": (1e-5, "search_main.py --weight_decay"),
        "label_smoothing": (0.1, "search_main.py --label_smoothing"),
        "batch_size": (1024, "search_main.py --train_batch_size"),
        "kernel_init_std": (MNASNET_DW_STD, "mnasnet conv_kernel_initializer on the depthwise superkernel"),
    }

    def __init__(
        self,
        runtime_lambda: float = 0.02,
        lambda_scale: float = 1e3,
        warmup_fraction: float = PAPER_WARMUP_STEPS / PAPER_STEPS,
        indicator_dropout: bool = True,
        keep_prob: float = 0.6,
        base_lr: float = 0.016,
        lr_decay: float = 0.97,
        decay_epochs: float = 2.4,
        rmsprop_decay: float = 0.9,
        momentum: float = 0.9,
        epsilon: float = 1e-3,
        weight_decay: float = 1e-5,
        label_smoothing: float = 0.1,
        batch_size: int = 64,
        width_mult: float = 0.25,
        kernel_init_std: float = PROXY_DW_STD,
    ):
        self.runtime_lambda = runtime_lambda
        self.lambda_scale = lambda_scale
        self.warmup_fraction = warmup_fraction
        self.indicator_dropout = indicator_dropout
        self.keep_prob = keep_prob
        self.base_lr = base_lr
        self.lr_decay = lr_decay
        self.decay_epochs = decay_epochs
        self.rmsprop_decay = rmsprop_decay
        self.momentum = momentum
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.width_mult = width_mult
        self.kernel_init_std = kernel_init_std

    def set_params(self, **params: Any) -> SinglePathNAS:
        """As :meth:`Searcher.set_params`; ``lambda`` is accepted for ``runtime_lambda``."""
        if "lambda" in params:
            params["runtime_lambda"] = params.pop("lambda")
        super().set_params(**params)
        return self

    def _check_params(self) -> None:
        if not (self.runtime_lambda >= 0 and math.isfinite(self.runtime_lambda)):
            raise SearchError(f"runtime_lambda must be >= 0, got {self.runtime_lambda}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise SearchError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0.0 < self.keep_prob <= 1.0:
            raise SearchError(f"keep_prob must be in (0, 1], got {self.keep_prob}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise SearchError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.base_lr > 0 or not self.width_mult > 0:
            raise SearchError("base_lr and width_mult must be positive")

    # -- schedules (functions of progress p) ------------------------------------------------------
    def lam(self, p: float) -> float:
        """λ at progress ``p``: 0 in the warm-up, ``runtime_lambda`` after."""
        return 0.0 if p < self.warmup_fraction else float(self.runtime_lambda)

    def keep(self, p: float) -> float | None:
        """Indicator-dropout keep probability at ``p`` (None: no dropout)."""
        return self.keep_prob if self.indicator_dropout and p < self.warmup_fraction and self.keep_prob < 1 else None

    def lr(self, p: float) -> float:
        """``base_lr · batch/256 · decay^floor(p · 8 / 2.4)`` (staircase over the paper's 8 epochs)."""
        p = min(max(p, 0.0), 1.0)
        return self.base_lr * self.batch_size / 256.0 * self.lr_decay ** math.floor(p * PAPER_EPOCHS / self.decay_epochs)

    # -- fit -------------------------------------------------------------------------------------
    def fit(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> SinglePathNAS:
        """Train weights and thresholds jointly.

        Parameters
        ----------
        task : Task or StandInTask
            Only its data is used: the stand-in's supernet double cannot carry
            weight-norm decisions, so this method always trains the real
            superkernel supernet.
        space : Space or str
            ``spnas`` (or any space with the Single-Path candidates).
        latency : SinglePathRuntime
            ``hwprof.latency_model("pixel1_runtime_model.json", space="spnas")``.
        target_ms : float, optional
            Reported only (the method has no target in its loss; λ sets the trade-off).
        budget : Budget
            Steps, epochs or seconds (default :data:`DEFAULT_STEPS` steps).
        """
        self._start_clock()
        self._check_params()
        if isinstance(space, str):
            import hwprof

            space = hwprof.space(space)
        require_latency(
            self, latency, "layer_runtime_from_indicators",
            "the Single-Path NAS runtime model (hwprof.latency_model('data/single-path-nas/pixel1_runtime_model.json', "
            "space='spnas'))",
        )
        if latency.num_layers != space.num_layers:
            raise SearchError(
                f"the runtime model has {latency.num_layers} layers, space {space.name} has {space.num_layers}"
            )
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = SuperKernelNet(space, width_mult=self.width_mult, resolution=task.resolution, classes=task.classes,
                             init_std=self.kernel_init_std)
        self.space_, self.task_, self.latency_, self.seed_, self.target_ms_ = space, task, latency, int(seed), target_ms
        self.supernet_ = net
        bn_params = {id(p) for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     for p in m.parameters()}
        l2_params = [p for p in net.parameters() if id(p) not in bn_params]
        opt = TFRMSprop(net.parameters(), lr=self.lr(0.0), decay=self.rmsprop_decay, momentum=self.momentum,
                        eps=self.epsilon)
        per_epoch = task.steps_per_epoch("weights", self.batch_size)
        total = (budget.epochs * per_epoch if budget.epochs is not None
                 else budget.steps if budget.steps is not None
                 else None if budget.seconds is not None else DEFAULT_STEPS)
        with torch.no_grad():
            self.runtime_at_start_ms_ = float(runtime_ms(latency, net.decisions()[0]))
        terms, dets, rows = [], [], []
        step, epoch, warm, t0 = 0, 0, 0, time.perf_counter()
        done = False
        while not done:
            ce_sum, n = 0.0, 0
            for x, y in task.batches("weights", self.batch_size, generator=gen, augment=True):
                p = (time.perf_counter() - t0) / budget.seconds if total is None else step / total
                if p >= 1.0:
                    done = True
                    break
                for g in opt.param_groups:
                    g["lr"] = self.lr(p)
                net.train()
                dec, kernels = net.decisions(self.keep(p), gen)
                r = runtime_ms(latency, dec)
                ce = F.cross_entropy(net(x, kernels), y, label_smoothing=self.label_smoothing)
                l2 = 0.5 * sum((q * q).sum() for q in l2_params)
                loss = ce + self.weight_decay * l2
                lam = self.lam(p)
                if lam > 0:
                    loss = loss + lam * self.lambda_scale * torch.log(r).to(loss.dtype)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                terms.append(float(r.detach()))
                if dec.dropout:
                    with torch.no_grad():
                        dets.append(float(runtime_ms(latency, net.decisions()[0])))
                else:
                    dets.append(terms[-1])
                ce_sum += float(ce.detach())
                warm += int(p < self.warmup_fraction)
                n += 1
                step += 1
            if n:
                with torch.no_grad():
                    final = net.decisions()[0]
                row = {
                    "epoch": epoch, "step": step, "ce": ce_sum / n, "lambda": self.lam(p), "lr": self.lr(p),
                    "keep": self.keep(p), "runtime_ms": float(runtime_ms(latency, final)),
                    "runtime_term_ms": terms[-1], "arch": self._derive(final),
                    "seconds": time.perf_counter() - t0,
                }
                rows.append(row)
                if callback is not None:
                    callback(dict(row))
            epoch += 1
            if total is not None and step >= total:
                done = True
        with torch.no_grad():
            self.decisions_ = net.decisions()[0]
            self.runtime_ms_ = float(runtime_ms(latency, self.decisions_))
        self.steps_ = step
        self.warmup_steps_ = warm
        self.step_runtime_ms_ = np.array(terms)
        self.step_runtime_det_ms_ = np.array(dets)
        self.trace_ = rows
        self.train_seconds_ = time.perf_counter() - t0
        return self

    # -- derive ----------------------------------------------------------------------------------
    def _derive(self, dec: Decisions) -> str:
        d5, d50, d100 = (t.detach().cpu().numpy() for t in (dec.d5, dec.d50, dec.d100))
        choices = [derive_choice(a, b, c, drop) for a, b, c, drop in zip(d5, d50, d100, self.supernet_.droppable)]
        return "-".join(choices)

    def search(self, *, target_ms: float | None = None, constraint: Any = None) -> SearchResult:
        """The architecture of the final thresholds; ``latency_ms`` equals ``runtime_ms_`` exactly."""
        if not hasattr(self, "supernet_"):
            raise SearchError("single_path_nas: call fit(task, space, latency) before search()")
        if constraint is not None:
            raise SearchError("single_path_nas has no hard constraint; its trade-off is λ (--set lambda=...)")
        arch = self._derive(self.decisions_)
        net, task = self.supernet_, self.task_
        with torch.no_grad():
            acc = _accuracy(net, task.x_test, task.y_test)
        warm = self.step_runtime_ms_[: self.warmup_steps_] if self.warmup_steps_ else np.array([])
        proxy = {
            "task": getattr(task, "name", type(task).__name__), "resolution": task.resolution,
            "classes": task.classes, "width_mult": self.width_mult, "test_accuracy": acc,
            "steps": self.steps_, "warmup_steps": self.warmup_steps_, "train_seconds": self.train_seconds_,
            "runtime_at_start_ms": self.runtime_at_start_ms_, "runtime_final_ms": self.runtime_ms_,
            "runtime_warmup_ms": ({"mean": float(warm.mean()), "min": float(warm.min()), "max": float(warm.max())}
                                  if len(warm) else None),
            "runtime_end_of_warmup_ms": (float(self.step_runtime_det_ms_[self.warmup_steps_ - 1])
                                         if self.warmup_steps_ else None),
        }
        deviations = self.deviations_from_paper() + [
            (f"{self.steps_} steps at batch {self.batch_size} on the proxy task (paper: {PAPER_STEPS} at batch "
             "1024 on ImageNet); warm-up, dropout, λ switch-on and LR decay follow progress, so the schedule "
             "keeps its shape"),
        ]
        return self.make_result(
            space=self.space_, arch=arch, latency=self.latency_,
            target_ms=target_ms if target_ms is not None else self.target_ms_,
            proxy=proxy, deviations=deviations, trace=self.trace_, seed=self.seed_,
        )


def _accuracy(net: SuperKernelNet, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    was = net.training
    net.eval()
    try:
        kernels = net.decisions()[1]
        correct = sum(int((net(x[i : i + batch_size], kernels).argmax(1) == y[i : i + batch_size]).sum())
                      for i in range(0, len(y), batch_size))
    finally:
        net.train(was)
    return correct / max(1, len(y))


__all__ = [
    "DEFAULT_STEPS",
    "MNASNET_DW_STD",
    "PAPER_STEPS",
    "PAPER_WARMUP_STEPS",
    "PROXY_DW_STD",
    "Decisions",
    "SinglePathNAS",
    "SuperKernelLayer",
    "SuperKernelNet",
    "TFRMSprop",
    "derive_choice",
    "runtime_ms",
]
