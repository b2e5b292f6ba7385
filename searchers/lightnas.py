"""LightNAS (Luo et al., DAC 2022): one search lands on the latency target.

The loop of the released ``search_imagenet.py`` (stepbuystep/LightNAS @ 2f0e1d1):

- **Freeze epochs** (10 of 90): α frozen; every batch trains *all* candidate
  paths, the i-th of ``K`` one-hots picking the i-th ranked op of each layer
  under a Gumbel top-k draw (``gumbel_softmax_topk``), one backward each, one
  SGD step.
- **Search epochs**: one pass of the weight split on a single hard Gumbel path,
  then one pass of the architecture split on α with the loss
  ``CE_ls(0.1) + λ·(LAT(P̄)/T − 1)``, ``P̄`` the hard straight-through Gumbel
  one-hot (temperature τ) and ``LAT`` the latency model's :meth:`expected`
  at ``P̄`` (the released MLP is differentiable in its one-hot input).
- **λ ascent** after each α step at the *argmax* architecture,
  ``λ ← λ + η_λ·(LAT(argmax α)/T − 1)``, truncated to 0 when its sign
  disagrees with ``LAT − T`` (:func:`hwprof.objectives.update_lambda`).
- α: Adam(1e-3, betas (0.5, 0.999), weight decay 1e-3), lr halved every 20
  search epochs; τ = 5·exp(−0.1·(epoch − 10)).
- **Landing rule** (code only): in the last 10 epochs, once
  ``|LAT(argmax) − T| < 0.15 ms``, the α learning rate becomes
  ``lr·|LAT/T − 1|`` at every step for the rest of the run.

Every schedule is a function of the run's progress, so a shorter run keeps the
paper's shape: run epoch ``e`` of ``E`` maps to paper epoch ``10·e/F`` in the
freeze phase (``F = round(E·10/90)`` freeze epochs) and to
``10 + 80·(e − F)/(E − F)`` afterwards. η_λ is a per-step rate whose integral
matters, so it is rescaled by (paper α steps = 3200) / (run α steps) and the
rescaling is listed among the deviations.

The released supernet adds the zero weights of the unchosen candidates into
the layer output (``results.append(alpha)``), which hands each unchosen
column the gradient ``Σ ∂L/∂y`` as if its op were a constant one; here the
unchosen candidates are simply not computed (gradient 0), as the paper's
single-path description says.

**Derivation.** The paper derives ``argmax α``. With a task pull on α that is
systematic per candidate (a fixed validation set; the stand-in's per-cell
quality), the loop converges to an architecture that minimises
``CE + λ·LAT/T`` for some λ: a Lagrangian with one multiplier reaches only
the "staircase" of such minimisers, and a target between two steps cannot be
hit (on the stand-in, e.g. 21.6 and 26.7 ms around T = 24 ms): λ then
oscillates between the two, truncated at every crossing, and the landing rule
never fires. ``derive="landing"`` (the default, listed among the deviations)
takes instead the most probable architecture under ``softmax α`` whose
latency is within the landing rule's 0.15 ms of T (:func:`land_on_target`),
which is ``argmax α`` itself whenever the loop landed; ``derive="argmax"`` is
the paper's rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hwprof import objectives
from searchers.base import (
    Budget,
    Searcher,
    SearchError,
    SearchResult,
    budget_epochs,
    paper_epoch,
    require_latency,
)
from searchers.supernet import derived_accuracy, make_supernet, time_path_step

#: The released schedule: 90 epochs, the first 10 with α frozen, ≈ 40 α steps per search epoch.
PAPER_EPOCHS = 90
PAPER_FREEZE_EPOCHS = 10
PAPER_ALPHA_STEPS = 3200
#: The released code's settings where the plugin's defaults differ (see ``derive``).
OFFICIAL: dict[str, Any] = {"derive": "argmax"}
#: Epochs of a proxy search at the default budget (≈2.5 min on one core at batch 64: 2 freeze + 16 search epochs).
PROXY_EPOCHS = 18


class LightNAS(Searcher):
    """LightNAS: hard Gumbel single path, ``λ·(LAT/T − 1)`` through the latency model, λ ascent.

    Parameters
    ----------
    eta_lambda : float
        λ learning rate per α step of the paper's 3200-step run (``tradeoff_learning_rate``).
    lambda_init : float
        Initial λ (``tradeoff``).
    truncate : bool
        Reset λ to 0 when its sign disagrees with ``LAT − T`` (``tradeoff_trunc``).
    rescale_eta_lambda : bool
        Scale η_λ by ``paper_alpha_steps / run α steps`` so its integral matches the paper's.
    paper_alpha_steps : int
        α steps of the paper's run (80 search epochs × ≈40 val batches).
    tau_max, tau_decay, tau_min : float
        ``τ = max(tau_max · exp(−tau_decay · (paper epoch − 10)), tau_min)`` after the freeze.
    alpha_lr : float
        Adam learning rate of α; halved every ``alpha_lr_halving`` paper epochs after the freeze.
    alpha_betas : tuple of float
        Adam betas of α.
    alpha_weight_decay : float
        Adam (L2) weight decay of α.
    alpha_lr_halving : float
        Paper epochs between halvings of the α learning rate.
    alpha_init_std : float
        α initialised ``alpha_init_std · N(0, 1)``.
    landing : bool
        Apply the landing rule in the last ``landing_fraction`` of the run.
    landing_tolerance_ms : float
        ``|LAT − T|`` (ms) that switches the landing rule on.
    landing_fraction : float
        Share of the run (paper: last 10 of 90 epochs) in which the rule may fire.
    derive : {"landing", "argmax"}
        ``"argmax"``: the paper's derived architecture ``argmax α``. ``"landing"``
        (default, a deviation): the most probable architecture under ``softmax α``
        whose latency is within ``landing_tolerance_ms`` of T, found by
        :func:`land_on_target` from ``argmax α`` (identical to it when that is
        already within the tolerance). See the module docstring for why.
    freeze_fraction : float
        Share of the epochs with α frozen (10 / 90).
    weight_lr, weight_momentum, weight_decay, grad_clip : float
        SGD of the supernet weights (cosine from ``weight_lr`` over the run), gradient-norm clip.
    label_smoothing : float
        Of the cross-entropy (weights and α).
    batch_size : int
        Of both splits.
    width_mult : float
        Proxy supernet channel multiplier.
    resolution : int, optional
        Proxy input resolution (default: the task's).

    Attributes
    ----------
    alpha_ : Tensor float64 ``[L, K]``
        Architecture logits after ``fit``.
    lambda_ : float
        Final λ.
    lambda_trace_, latency_trace_ : ndarray ``[S]``
        λ after, and ``LAT(argmax α)`` (ms) at, every α step.
    first_within_1pct_step_ : int or None
        First α step (0-based) whose argmax latency is within ±1 % of the target.
    landed_step_ : int or None
        α step at which the landing rule fired.
    eta_lambda_used_ : float
        η_λ after rescaling.
    supernet_ : nn.Module
    trace_ : list of dict
        One row per epoch.
    """

    name: ClassVar[str] = "lightnas"
    paper: ClassVar[str] = "Luo et al., DAC 2022 (LightNAS)"
    default_space: ClassVar[str] = "lightnas"
    latency_kinds: ClassVar[tuple[str, ...]] = ("differentiable",)
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {
        "eta_lambda": (5e-4, "search_imagenet.py --tradeoff_learning_rate"),
        "lambda_init": (0.0, "search_imagenet.py --tradeoff"),
        "truncate": (True, "search_imagenet.py --tradeoff_trunc"),
        "tau_max": (5.0, "search_imagenet.py --tau_max"),
        "tau_decay": (0.1, "search_imagenet.py: tau_max·exp(−0.1·(epoch − freeze))"),
        "tau_min": (0.0, "search_imagenet.py: no floor (--tau_min is parsed but unused)"),
        "alpha_lr": (1e-3, "search_imagenet.py --alphas_learning_rate"),
        "alpha_betas": ((0.5, 0.999), "search_imagenet.py: Adam betas"),
        "alpha_weight_decay": (1e-3, "search_imagenet.py --alphas_weight_decay"),
        "alpha_lr_halving": (20.0, "search_imagenet.py: lr·0.5^((epoch − freeze)//20)"),
        "alpha_init_std": (1e-3, "models/supernet.py init_alphas"),
        "landing": (True, "search_imagenet.py: last-10-epoch learning-rate rule"),
        "landing_tolerance_ms": (0.15, "search_imagenet.py: |LAT − T| < 0.15"),
        "landing_fraction": (10 / 90, "search_imagenet.py: epochs − (epoch + 1) < 10"),
        "derive": ("argmax", "models/supernet.py parse_alphas"),
        "freeze_fraction": (10 / 90, "search_imagenet.py --freeze_epochs 10 of --epochs 90"),
        "weight_lr": (0.1, "search_imagenet.py --model_learning_rate"),
        "weight_momentum": (0.9, "search_imagenet.py --model_momentum"),
        "weight_decay": (3e-5, "search_imagenet.py --model_weight_decay"),
        "grad_clip": (5.0, "search_imagenet.py --grad_clip"),
        "label_smoothing": (0.1, "search_imagenet.py --label_smooth"),
        "batch_size": (128, "search_imagenet.py --batch_size_train/--batch_size_val"),
    }

    def __init__(
        self,
        *,
        eta_lambda: float = 5e-4,
        lambda_init: float = 0.0,
        truncate: bool = True,
        rescale_eta_lambda: bool = True,
        paper_alpha_steps: int = PAPER_ALPHA_STEPS,
        tau_max: float = 5.0,
        tau_decay: float = 0.1,
        tau_min: float = 0.0,
        alpha_lr: float = 1e-3,
        alpha_betas: tuple[float, float] = (0.5, 0.999),
        alpha_weight_decay: float = 1e-3,
        alpha_lr_halving: float = 20.0,
        alpha_init_std: float = 1e-3,
        landing: bool = True,
        landing_tolerance_ms: float = 0.15,
        landing_fraction: float = 10 / 90,
        derive: str = "landing",
        freeze_fraction: float = 10 / 90,
        weight_lr: float = 0.1,
        weight_momentum: float = 0.9,
        weight_decay: float = 3e-5,
        grad_clip: float = 5.0,
        label_smoothing: float = 0.1,
        batch_size: int = 128,
        width_mult: float = 0.25,
        resolution: int | None = None,
    ):
        self.eta_lambda = eta_lambda
        self.lambda_init = lambda_init
        self.truncate = truncate
        self.rescale_eta_lambda = rescale_eta_lambda
        self.paper_alpha_steps = paper_alpha_steps
        self.tau_max = tau_max
        self.tau_decay = tau_decay
        self.tau_min = tau_min
        self.alpha_lr = alpha_lr
        self.alpha_betas = alpha_betas
        self.alpha_weight_decay = alpha_weight_decay
        self.alpha_lr_halving = alpha_lr_halving
        self.alpha_init_std = alpha_init_std
        self.landing = landing
        self.landing_tolerance_ms = landing_tolerance_ms
        self.landing_fraction = landing_fraction
        self.derive = derive
        self.freeze_fraction = freeze_fraction
        self.weight_lr = weight_lr
        self.weight_momentum = weight_momentum
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.width_mult = width_mult
        self.resolution = resolution

    # -- schedules (functions of the paper epoch the run has reached) ---------------
    def paper_epoch(self, epoch: int, epochs: int, freeze_epochs: int) -> float:
        """Paper epoch (0 … 90) of run epoch ``epoch`` of ``epochs`` with ``freeze_epochs`` freeze epochs."""
        return paper_epoch(epoch, epochs, freeze_epochs, PAPER_EPOCHS, self.freeze_fraction)

    def tau(self, paper_epoch: float) -> float:
        """Gumbel temperature at ``paper_epoch`` (``tau_max`` during the freeze)."""
        decayed = self.tau_max * math.exp(-self.tau_decay * max(paper_epoch - PAPER_EPOCHS * self.freeze_fraction, 0.0))
        return max(decayed, self.tau_min)

    def alpha_lr_at(self, paper_epoch: float) -> float:
        """α learning rate at ``paper_epoch``: halved every ``alpha_lr_halving`` epochs after the freeze."""
        after = max(paper_epoch - PAPER_EPOCHS * self.freeze_fraction, 0.0)
        return self.alpha_lr * 0.5 ** math.floor(after / self.alpha_lr_halving + 1e-9)

    def in_landing_phase(self, paper_epoch: float) -> bool:
        """Whether the landing rule may fire (the last ``landing_fraction`` of the paper's epochs)."""
        return paper_epoch >= PAPER_EPOCHS * (1.0 - self.landing_fraction) - 1e-9

    # -- fit ------------------------------------------------------------------------
    def _validate(self, target_ms: float | None) -> float:
        if target_ms is None:
            raise SearchError("lightnas needs target_ms (the latency the search must land on, in ms)")
        if not (isinstance(target_ms, (int, float)) and math.isfinite(target_ms) and target_ms > 0):
            raise SearchError(f"target_ms must be a positive number of ms, got {target_ms!r}")
        for key in ("eta_lambda", "alpha_lr", "tau_max", "batch_size"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and v > 0):
                raise SearchError(f"lightnas {key} must be positive, got {v!r}")
        if not 0.0 <= self.freeze_fraction < 1.0:
            raise SearchError(f"freeze_fraction must be in [0, 1), got {self.freeze_fraction!r}")
        return float(target_ms)

    def _epochs(self, budget: Budget, task: Any, net: Any) -> tuple[int, int | None]:
        """Run epochs for ``budget`` and, for a steps budget, the weight batches of the last epoch."""
        n_w = task.steps_per_epoch("weights", self.batch_size)
        n_a = task.steps_per_epoch("arch", self.batch_size)
        k = int(net.mask.sum(1).max())
        per_epoch = self.freeze_fraction * k * n_w + (1 - self.freeze_fraction) * (n_w + n_a)
        default = PAPER_EPOCHS if getattr(task, "name", "") == "stand-in" else PROXY_EPOCHS
        return budget_epochs(budget, n_w, lambda: time_path_step(net, task, self.batch_size, net.mask),
                             per_epoch, default)

    def fit(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> LightNAS:
        """Train the supernet and α toward ``target_ms`` (see the module docstring).

        Parameters
        ----------
        task : Task or StandInTask
        space : Space
        latency : LatencyModel
            With a differentiable :meth:`expected` (a lookup table, or an mlp/ridge/lut predictor
            such as the released ``latency_predictor.pth.tar``).
        target_ms : float
            The latency target T (ms).
        budget : Budget
            Epochs, weight steps or seconds; ``Budget()`` = 90 epochs on the stand-in,
            :data:`PROXY_EPOCHS` on a real task.
        seed : int
        callback : callable, optional
            Called with each epoch's trace row.
        """
        self._start_clock()
        target = self._validate(target_ms)
        require_latency(self, latency, "expected", "a lookup table or an mlp/ridge/lut predictor (e.g. the "
                        "released LightNAS latency_predictor.pth.tar)")
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = make_supernet(task, space, width_mult=self.width_mult, resolution=self.resolution)
        mask_t = torch.as_tensor(np.asarray(space.mask, dtype=bool))
        epochs, last_epoch_steps = self._epochs(budget, task, net)
        freeze_epochs = round(epochs * self.freeze_fraction)
        if epochs - freeze_epochs < 1:
            freeze_epochs = epochs - 1
        n_a = task.steps_per_epoch("arch", self.batch_size)
        run_alpha_steps = (epochs - freeze_epochs) * n_a
        eta = float(self.eta_lambda)
        if self.rescale_eta_lambda and run_alpha_steps != self.paper_alpha_steps:
            eta *= self.paper_alpha_steps / run_alpha_steps
        self.eta_lambda_used_ = eta
        self.epochs_, self.freeze_epochs_ = epochs, freeze_epochs
        self.run_alpha_steps_ = run_alpha_steps
        self.target_ms_ = target

        alpha = (self.alpha_init_std * torch.randn(space.num_layers, space.max_choices, generator=gen,
                                                   dtype=torch.float64)).requires_grad_(True)
        a_opt = torch.optim.Adam([alpha], lr=self.alpha_lr, betas=tuple(self.alpha_betas),
                                 weight_decay=self.alpha_weight_decay)
        w_opt = torch.optim.SGD(net.parameters(), lr=self.weight_lr, momentum=self.weight_momentum,
                                weight_decay=self.weight_decay)
        lam = float(self.lambda_init)
        lam_trace: list[float] = []
        lat_trace: list[float] = []
        first_in: int | None = None
        landed: int | None = None
        self.trace_ = []
        net.train()
        for epoch in range(epochs):
            pe = self.paper_epoch(epoch, epochs, freeze_epochs)
            tau = self.tau(pe)
            lr_a = self.alpha_lr_at(pe)
            for g in w_opt.param_groups:  # CosineAnnealingLR stepped per epoch
                g["lr"] = 0.5 * self.weight_lr * (1 + math.cos(math.pi * epoch / epochs))
            if landed is None or not self.in_landing_phase(pe):
                for g in a_opt.param_groups:
                    g["lr"] = lr_a
            max_w = last_epoch_steps if (last_epoch_steps is not None and epoch == epochs - 1) else None
            freeze = epoch < freeze_epochs
            w_loss = self._weight_pass(task, net, w_opt, alpha, mask_t, tau, gen, freeze, max_w)
            row: dict[str, Any] = {"epoch": epoch, "paper_epoch": round(pe, 4), "phase": "freeze" if freeze else "search",
                                   "tau": tau, "weight_lr": w_opt.param_groups[0]["lr"], "weight_loss": w_loss}
            if not freeze:
                lats, ces = [], []
                for x, y in task.batches("arch", self.batch_size, generator=gen):
                    ce, lam, lat_now = self.alpha_step(net, latency, alpha, a_opt, x, y, tau, lam, target, eta,
                                                        mask_t, gen)
                    step = len(lat_trace)
                    lam_trace.append(lam)
                    lat_trace.append(lat_now)
                    lats.append(lat_now)
                    ces.append(ce)
                    if first_in is None and abs(lat_now / target - 1) <= 0.01:
                        first_in = step
                    if self.landing and self.in_landing_phase(pe):
                        if landed is None and abs(lat_now - target) < self.landing_tolerance_ms:
                            landed = step
                        if landed is not None:
                            for g in a_opt.param_groups:
                                g["lr"] = lr_a * abs(lat_now / target - 1)
                row.update(alpha_lr=a_opt.param_groups[0]["lr"], alpha_ce=float(np.mean(ces)), alpha_steps=len(lats),
                           latency_min_ms=float(min(lats)), latency_max_ms=float(max(lats)))
            idx = _argmax(alpha, mask_t)
            row.update(arch=space.from_indices(idx).encode(), latency_ms=float(latency.score(idx[None])[0]),
                       **{"lambda": lam}, landed=landed is not None, first_within_1pct_step=first_in)
            self.trace_.append(row)
            if callback is not None:
                callback(dict(row))

        self.alpha_ = alpha.detach().clone()
        self.lambda_ = lam
        self.lambda_trace_ = np.asarray(lam_trace, dtype=np.float64)
        self.latency_trace_ = np.asarray(lat_trace, dtype=np.float64)
        self.first_within_1pct_step_ = first_in
        self.landed_step_ = landed
        self.supernet_ = net
        self.task_, self.space_, self.latency_, self.seed_ = task, space, latency, seed
        return self

    def _weight_pass(self, task: Any, net: Any, opt: torch.optim.Optimizer, alpha: Tensor, mask: Tensor,
                     tau: float, gen: torch.Generator, freeze: bool, max_steps: int | None) -> float | None:
        """One pass of the weight split: all paths per batch (freeze) or one hard Gumbel path."""
        losses = []
        n_legal = mask.sum(1)
        for i, (x, y) in enumerate(task.batches("weights", self.batch_size, generator=gen, augment=True)):
            if max_steps is not None and i >= max_steps:
                break
            opt.zero_grad(set_to_none=True)
            keys = _gumbel_keys(alpha.detach(), mask, gen)
            if freeze:
                # Gumbel top-k: the j-th path takes each layer's j-th ranked candidate (sampling without replacement)
                order = keys.argsort(-1, descending=True)
                total = 0.0
                for j in range(int(n_legal.max())):
                    idx = order[torch.arange(order.shape[0]), j % n_legal].numpy()
                    loss = F.cross_entropy(net(x, idx), y, label_smoothing=self.label_smoothing)
                    loss.backward()
                    total += float(loss.detach())
                losses.append(total / int(n_legal.max()))
            else:
                idx = keys.argmax(-1).numpy()  # the hard Gumbel sample's one-hot (τ does not move the argmax)
                loss = F.cross_entropy(net(x, idx), y, label_smoothing=self.label_smoothing)
                loss.backward()
                losses.append(float(loss.detach()))
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
            opt.step()
        return float(np.mean(losses)) if losses else None

    def alpha_step(self, net: Any, lat: Any, alpha: Tensor, opt: torch.optim.Optimizer, x: Tensor, y: Tensor,
                    tau: float, lam: float, target: float, eta: float, mask: Tensor,
                    gen: torch.Generator) -> tuple[float, float, float]:
        """One α step: ``CE + λ·(LAT(P̄)/T − 1)`` at the hard Gumbel sample, then λ ascent at argmax α.

        Returns
        -------
        ce : float
        lam : float
            The updated (and truncated) λ.
        latency_ms : float
            ``LAT(argmax α)`` after the step (ms).
        """
        ce, lat_sample, _ = self.alpha_loss_terms(net, lat, alpha, x, y, tau, generator=gen)
        loss = ce + objectives.lagrangian(lat_sample, target_ms=target, lam=lam)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        idx = _argmax(alpha, mask)
        lat_now = float(lat.score(idx[None])[0])
        lam = objectives.update_lambda(lam, lat_now, target_ms=target, lr=eta, truncate=self.truncate)
        return float(ce.detach()), lam, lat_now

    def alpha_loss_terms(self, net: Any, lat: Any, alpha: Tensor, x: Tensor, y: Tensor, tau: float,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The two terms of the α loss at one hard straight-through Gumbel sample.

        Returns
        -------
        ce : Tensor ``[]``
            Label-smoothed cross-entropy of the sampled path (only its ops run).
        latency_ms : Tensor ``[]``
            ``LAT(P̄)``: the latency model's :meth:`expected` at the one-hot sample (ms).
        p_bar : Tensor ``[L, K]``
            The straight-through sample (exact one-hot forward, soft gradient).
        """
        p_bar = lat.gumbel_softmax(alpha, tau, hard=True, generator=generator)
        logits = net(x, p_bar.to(torch.float32))
        ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return ce, lat.expected(p_bar), p_bar

    # -- search ---------------------------------------------------------------------
    def search(self, *, target_ms: float | None = None, constraint: Mapping[str, Any] | None = None) -> SearchResult:
        """The derived architecture (``derive``) with its latency and the run's trace and deviations."""
        if not hasattr(self, "alpha_"):
            raise SearchError("call fit() before search()")
        if target_ms is not None and float(target_ms) != self.target_ms_:
            raise SearchError(
                f"this LightNAS run was fitted for {self.target_ms_} ms; LightNAS's target lives in the α loop, "
                "so fit again for another target"
            )
        space, task = self.space_, self.task_
        mask = np.asarray(space.mask, dtype=bool)
        top = _argmax(self.alpha_, torch.as_tensor(mask))
        if self.derive == "landing":
            log_p = torch.log_softmax(self.alpha_.masked_fill(~torch.as_tensor(mask), float("-inf")), -1).numpy()
            idx = land_on_target(log_p, self.latency_, self.target_ms_, self.landing_tolerance_ms)
        elif self.derive == "argmax":
            idx = top
        else:
            raise SearchError(f"lightnas derive must be 'landing' or 'argmax', got {self.derive!r}")
        self.argmax_latency_ms_ = float(self.latency_.score(top[None])[0])
        self.layers_changed_ = int((idx != top).sum())
        acc = derived_accuracy(self.supernet_, idx, task, self.batch_size, self.seed_)
        proxy = {"task": getattr(task, "name", type(task).__name__), "resolution": getattr(task, "resolution", None),
                 "width_mult": self.width_mult, "classes": getattr(task, "classes", None), "test_accuracy": acc,
                 "epochs": self.epochs_, "freeze_epochs": self.freeze_epochs_, "alpha_steps": self.run_alpha_steps_,
                 "eta_lambda_used": self.eta_lambda_used_, "final_lambda": self.lambda_,
                 "first_within_1pct_step": self.first_within_1pct_step_, "landed_step": self.landed_step_,
                 "argmax_arch": space.from_indices(top).encode(), "argmax_latency_ms": self.argmax_latency_ms_,
                 "layers_changed_by_landing": self.layers_changed_}
        hp = self.get_params()
        hp["eta_lambda_used"] = self.eta_lambda_used_
        return self.make_result(space=space, arch=space.from_indices(idx), latency=self.latency_,
                                target_ms=self.target_ms_, proxy=proxy, deviations=self._deviations(),
                                trace=self.trace_, seed=self.seed_, hyperparameters=hp)

    def _deviations(self) -> list[str]:
        out = [d for d in self.deviations_from_paper() if not d.startswith("derive ")]
        if self.derive == "landing":
            t = self.target_ms_
            out.append(
                f"derived architecture: the most probable one under softmax α within {self.landing_tolerance_ms:g} ms "
                f"of T (greedy single-layer changes from argmax α; {self.layers_changed_} of "
                f"{len(self.alpha_)} layers changed) instead of argmax α, which is at {self.argmax_latency_ms_:.3f} ms "
                f"({100 * (self.argmax_latency_ms_ / t - 1):+.2f} %): a single multiplier λ can only reach the "
                "architectures that minimise CE + λ·LAT for some λ, and T may fall between two of them")
        if (self.epochs_, self.freeze_epochs_) != (PAPER_EPOCHS, PAPER_FREEZE_EPOCHS):
            out.append(f"{self.epochs_} epochs ({self.freeze_epochs_} frozen) instead of the paper's "
                       f"{PAPER_EPOCHS} ({PAPER_FREEZE_EPOCHS}); τ, α-lr and landing schedules follow the run's progress")
        if self.run_alpha_steps_ != self.paper_alpha_steps:
            out.append(f"{self.run_alpha_steps_} α steps instead of ≈{self.paper_alpha_steps}")
        if self.eta_lambda_used_ != self.eta_lambda:
            out.append(f"η_λ rescaled by paper α steps / run α steps ({self.paper_alpha_steps}/"
                       f"{self.run_alpha_steps_}): {self.eta_lambda:g} → {self.eta_lambda_used_:.4g}")
        task = getattr(self.task_, "name", "")
        if task != "stand-in":
            out.append(f"searched on the proxy task {task!r} at {getattr(self.task_, 'resolution', '?')} px, "
                       f"width ×{self.width_mult:g}, instead of ImageNet-100 at 224 px")
            out.append("unchosen candidates get no α gradient from the cross-entropy (the released supernet "
                       "adds their zero weights into the output, giving each the gradient Σ∂L/∂y)")
        return out


def land_on_target(log_p: np.ndarray, lat: Any, target_ms: float, tol_ms: float, max_steps: int = 200) -> np.ndarray:
    """The most probable architecture within ``tol_ms`` of ``target_ms``, greedily from the argmax.

    Maximises ``Σ_l log p[l, k_l]`` subject to ``|LAT − T| ≤ tol_ms``
    approximately: starting from ``argmax log p``, while outside the band it
    applies the single-layer change that lands inside at the least log-probability
    cost, or else the one with the least cost per ms of approach; inside the band
    it applies changes that raise the log-probability and stay inside. Every
    candidate is priced by the latency model's ``score`` (so non-additive
    predictors are handled exactly). Deterministic.

    Parameters
    ----------
    log_p : ndarray float64 ``[L, K]``
        Log-probabilities, ``−inf`` on illegal candidates.
    lat : LatencyModel
    target_ms, tol_ms : float
        Target and half-width of the band (ms).
    max_steps : int
        Cap on single-layer changes.

    Returns
    -------
    ndarray int64 ``[L]``
        The argmax itself when it is already inside the band; the closest
        architecture found when the band is not reached within ``max_steps``.
    """
    legal = np.isfinite(log_p)
    idx = log_p.argmax(1).astype(np.int64)
    cur = float(lat.score(idx[None])[0])
    rows, cols = np.nonzero(legal)
    for _ in range(max_steps):
        keep = cols != idx[rows]
        r, c = rows[keep], cols[keep]
        cand = np.repeat(idx[None], len(r), 0)
        cand[np.arange(len(r)), r] = c
        lats = lat.score(cand)
        cost = log_p[r, idx[r]] - log_p[r, c]  # log-probability given up
        inside = np.abs(lats - target_ms) <= tol_ms
        if abs(cur - target_ms) <= tol_ms:
            better = inside & (cost < -1e-12)
            if not better.any():
                break
            j = int(np.flatnonzero(better)[np.argmin(cost[better])])
        elif inside.any():
            j = int(np.flatnonzero(inside)[np.argmin(cost[inside])])
        else:
            gain = abs(cur - target_ms) - np.abs(lats - target_ms)
            ok = gain > 1e-9
            if not ok.any():
                break
            j = int(np.flatnonzero(ok)[np.argmin(np.maximum(cost[ok], 0.0) / gain[ok] - 1e-12 * gain[ok])])
        idx[r[j]] = c[j]
        cur = float(lats[j])
    return idx


def _gumbel_keys(alpha: Tensor, mask: Tensor, gen: torch.Generator) -> Tensor:
    """``α + G`` with ``G ~ Gumbel(0, 1)``, ``−inf`` on illegal candidates (argmax = a sample of softmax α)."""
    u = torch.rand(alpha.shape, dtype=alpha.dtype, generator=gen)
    tiny = torch.finfo(alpha.dtype).tiny
    g = -torch.log((-torch.log(u.clamp_min(tiny))).clamp_min(tiny))
    return (alpha + g).masked_fill(~mask, float("-inf"))


def _argmax(alpha: Tensor, mask: Tensor) -> np.ndarray:
    """``argmax α`` over each layer's legal candidates, int64 ``[L]``."""
    return alpha.detach().masked_fill(~mask, float("-inf")).argmax(-1).numpy().astype(np.int64)


__all__ = [
    "OFFICIAL",
    "PAPER_ALPHA_STEPS",
    "PAPER_EPOCHS",
    "PAPER_FREEZE_EPOCHS",
    "PROXY_EPOCHS",
    "LightNAS",
    "land_on_target",
]
