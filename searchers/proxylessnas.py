"""ProxylessNAS (Cai et al., ICLR 2019): binarized paths, BinaryConnect α gradient, latency loss.

The loop of the released search code (mit-han-lab/proxylessnas @ bf58b5c,
``search/imagenet_arch_search.py``, ``nas_manager.py``, ``modules/mix_op.py``):

- **Binary gates**: before every forward each layer samples *one* active path
  from ``p = softmax(α)``; weight steps run only that path.
- **α gradient** (Eq. 4, ``set_arch_param_grad``):
  ``∂L/∂α_i = Σ_j ∂L/∂g_j · p_j(δ_ij − p_i)`` with ``∂L/∂g_j = Σ ∇_y L ∘ o_j(x)``
  for every candidate ``j`` (``full_v2``: the supernet's ``compute="all"``
  forward gives ``∂L/∂g_j`` of every legal op). In mode ``two`` only two
  paths sampled from ``p`` take part (softmax over the pair), and after the
  Adam step the two updated logits are shifted by
  ``log(Σ exp α_new / Σ exp α_old)`` so the probabilities of the unsampled
  paths are unchanged. The BinaryConnect gradient is *added* to the exact
  gradient of the latency term, which flows through ``softmax(α)``. A layer
  whose sampled op is ``skip`` (the code's ``Zero``) gets no α update at that
  step, which is why α is one parameter per layer (Adam keeps per-layer state).
- **Latency loss**: ``E = Σ_l Σ_j p_lj·F_lj + constant`` = the latency model's
  :meth:`expected` at ``softmax(α)``; ``mul#log`` (default)
  ``α_r·CE·(log E / log T)^β`` with the search script's α_r 0.2, β 0.3, or
  ``add#linear`` ``CE + λ(E − T)/T`` with λ 0.1 (``imagenet_arch_search.py``;
  the class fallbacks 1 / 0.6 / 0.2 apply only when no values are passed).
- **REINFORCE** (``mode="reinforce"``, ``rl_update_step``): per update 10
  networks sampled from ``p`` on one validation batch, reward
  ``R = acc·(T/LAT)^0.1``, baseline ``b ← b + 0.99·(mean R − b)``, gradient
  ``Σ (R_i − b)·∇(−log p(g_i)) / 10``, Adam step; 300 updates per ImageNet
  epoch (one every 16 of its ≈4809 batches).
- **Schedule**: 40 warm-up epochs (weights only, paths from ``p``, SGD lr
  cosine from 0.05), then 120 epochs with a weight step every batch (SGD
  0.025 cosine, Nesterov, wd 4e-5, label smoothing 0.1) and an α step every
  5th batch on a validation batch, none in the first of these epochs. α:
  ``N(0, 1e-3)``, Adam(1e-3, betas (0, 0.999), wd 0).

A run of any length keeps these fractions (warm-up 40/160 of the weight steps,
the α-free first 1/120 of the search phase). The derived architecture is
``argmax p`` per layer (``convert_to_normal_net``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwprof import objectives
from searchers.base import Budget, Searcher, SearchError, SearchResult, require_latency
from searchers.supernet import derived_accuracy, make_supernet

PAPER_WARMUP_EPOCHS = 40
PAPER_SEARCH_EPOCHS = 120
#: ImageNet training images minus the 50 000 held out for α, in batches of 256.
PAPER_BATCHES_PER_EPOCH = (1_281_167 - 50_000) // 256
#: The paper's target on the Pixel 1 (``ref_values['mobile']['1.00']``), ms.
PAPER_TARGET_MS = 80.0
#: Epochs of a proxy search at the default budget (≈2–3 min on one core at batch 64: 256 weight steps).
PROXY_EPOCHS = 16
#: Epochs on the stand-in at the default budget: the paper's 160.
STANDIN_EPOCHS = PAPER_WARMUP_EPOCHS + PAPER_SEARCH_EPOCHS
MODES = ("full_v2", "two", "reinforce")
REG_LOSSES = ("mul#log", "add#linear", "none")


# -- the algebra (pure functions, unit-tested against brute force) ----------------------
def eq4_alpha_grad(gate_grad: Tensor, probs: Tensor) -> Tensor:
    """Eq. 4: ``∂L/∂α_i = Σ_j ∂L/∂g_j · p_j(δ_ij − p_i) = p_i·(∂L/∂g_i − Σ_j p_j ∂L/∂g_j)``.

    Parameters
    ----------
    gate_grad : Tensor ``[..., K]``
        ``∂L/∂g_j`` of every candidate (0 where illegal).
    probs : Tensor ``[..., K]``
        ``softmax(α)`` (0 where illegal).

    Returns
    -------
    Tensor ``[..., K]``
    """
    return probs * (gate_grad - (gate_grad * probs).sum(-1, keepdim=True))


def two_mode_alpha_grad(gate_grad: Tensor, alpha: Tensor, pair: Tensor) -> Tensor:
    """Eq. 4 restricted to the two sampled paths of each layer (mode ``two``).

    Parameters
    ----------
    gate_grad, alpha : Tensor ``[L, K]``
    pair : LongTensor ``[L, 2]``
        Active and inactive path of each layer.

    Returns
    -------
    Tensor ``[L, K]``
        Non-zero only on the two paths; the probabilities are the softmax over the pair.
    """
    ps = alpha.detach().gather(1, pair).softmax(-1)
    g = eq4_alpha_grad(gate_grad.gather(1, pair), ps)
    return torch.zeros_like(alpha).scatter(1, pair, g)


def rescale_pair(alpha_new: Tensor, alpha_old: Tensor, pair: Tensor) -> Tensor:
    """Shift the two updated logits of each layer so ``Σ exp`` over the pair is unchanged.

    Then ``softmax(α)`` of every unsampled path is unchanged
    (``rescale_updated_arch_param``). Returns the shifted ``[L, K]`` logits.
    """
    new, old = alpha_new.gather(1, pair), alpha_old.gather(1, pair)
    offset = new.logsumexp(-1, keepdim=True) - old.logsumexp(-1, keepdim=True)
    return alpha_new.scatter(1, pair, new - offset)


def expected_latency(lat: Any, alpha: Tensor) -> Tensor:
    """``E = Σ_l Σ_j p_lj·F_lj + constant`` (ms): the latency model's :meth:`expected` at ``softmax(α)``."""
    return lat.expected(lat.masked_softmax(alpha))


def latency_loss(ce: Tensor, e_ms: Tensor, *, kind: str, target_ms: float, reg_alpha: float, reg_beta: float,
                 reg_lambda: float) -> Tensor:
    """The α loss of ``add_regularization_loss``: ``mul#log``, ``add#linear`` or the bare CE (``none``)."""
    if kind == "mul#log":
        return objectives.mul_log(ce, e_ms, target_ms=target_ms, alpha=reg_alpha, beta=reg_beta)
    if kind == "add#linear":
        return objectives.add_linear(e_ms, target_ms=target_ms, lam=reg_lambda, ce=ce)
    return ce


def sample_paths(probs: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` independent paths from ``p`` per layer, LongTensor ``[n, L]``."""
    return torch.multinomial(probs.detach(), n, replacement=True, generator=generator).T.contiguous()


class ProxylessNAS(Searcher):
    """ProxylessNAS with binary gates (``full_v2`` or ``two``) or REINFORCE.

    Parameters
    ----------
    mode : {"full_v2", "two", "reinforce"}
        α update: BinaryConnect over all paths, over two sampled paths with the
        rescale, or the REINFORCE variant.
    reg_loss : {"mul#log", "add#linear", "none"}
        Latency loss of the gradient modes.
    reg_alpha, reg_beta : float
        ``mul#log`` coefficients (search script: 0.2, 0.3).
    reg_lambda : float
        ``add#linear`` coefficient (search script: 0.1).
    warmup_fraction : float
        Share of the weight steps before α moves (40 / 160 epochs).
    arch_update_every : int
        One α step every this many weight steps (``grad_update_arch_param_every``).
    skip_first_search_epoch : bool
        No α step in the first 1/120 of the search phase (``if epoch > 0``).
    arch_lr : float
        Adam learning rate of α.
    arch_betas : tuple of float
        Adam betas of α.
    arch_weight_decay : float
    arch_init_std : float
        α initialised ``N(0, arch_init_std)``.
    warmup_lr : float
        Peak of the warm-up's cosine weight learning rate.
    weight_lr, weight_momentum, weight_decay : float
        SGD (Nesterov) of the search phase, cosine from ``weight_lr``.
    label_smoothing : float
        Of the weight steps' cross-entropy (the α loss uses the plain CE).
    batch_size : int
        Of both splits (``grad_data_batch`` None: the train batch size).
    rl_batch_size : int
        Networks sampled per REINFORCE update.
    rl_baseline_decay : float
        ``b ← b + decay·(mean R − b)``.
    rl_tradeoff_ratio : float
        Exponent of ``(T/LAT)`` in the reward (0 = accuracy only).
    rl_update_every : int
        Weight steps per REINFORCE update (300 per ≈4809-batch epoch ≈ 16).
    width_mult : float
    resolution : int, optional

    Attributes
    ----------
    alpha_ : Tensor float64 ``[L, K]``
    supernet_ : nn.Module
    trace_ : list of dict
        One row per epoch: phase, expected latency E, derived latency, entropy, losses or rewards.
    rewards_ : ndarray ``[U]``
        Mean reward of every REINFORCE update (empty in the gradient modes).
    """

    name: ClassVar[str] = "proxylessnas"
    paper: ClassVar[str] = "Cai et al., ICLR 2019 (ProxylessNAS)"
    default_space: ClassVar[str] = "proxylessnas"
    latency_kinds: ClassVar[tuple[str, ...]] = ("differentiable", "score")
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {
        "mode": ("full_v2", "imagenet_arch_search.py --grad_binary_mode"),
        "reg_loss": ("mul#log", "imagenet_arch_search.py --grad_reg_loss_type"),
        "reg_alpha": (0.2, "imagenet_arch_search.py --grad_reg_loss_alpha"),
        "reg_beta": (0.3, "imagenet_arch_search.py --grad_reg_loss_beta"),
        "reg_lambda": (0.1, "imagenet_arch_search.py --grad_reg_loss_lambda"),
        "warmup_fraction": (PAPER_WARMUP_EPOCHS / STANDIN_EPOCHS, "imagenet_arch_search.py: 40 warm-up + 120 epochs"),
        "arch_update_every": (5, "imagenet_arch_search.py --grad_update_arch_param_every"),
        "skip_first_search_epoch": (True, "nas_manager.py train(): if epoch > 0"),
        "arch_lr": (1e-3, "imagenet_arch_search.py --arch_lr"),
        "arch_betas": ((0.0, 0.999), "imagenet_arch_search.py --arch_adam_beta1/2"),
        "arch_weight_decay": (0.0, "imagenet_arch_search.py --arch_weight_decay"),
        "arch_init_std": (1e-3, "imagenet_arch_search.py --arch_init_ratio"),
        "warmup_lr": (0.05, "nas_manager.py warm_up(): lr_max"),
        "weight_lr": (0.025, "imagenet_arch_search.py --init_lr"),
        "weight_momentum": (0.9, "imagenet_arch_search.py --momentum"),
        "weight_decay": (4e-5, "imagenet_arch_search.py --weight_decay"),
        "label_smoothing": (0.1, "imagenet_arch_search.py --label_smoothing"),
        "batch_size": (256, "imagenet_arch_search.py --train_batch_size"),
        "rl_batch_size": (10, "imagenet_arch_search.py --rl_batch_size"),
        "rl_baseline_decay": (0.99, "imagenet_arch_search.py --rl_baseline_decay_weight"),
        "rl_tradeoff_ratio": (0.1, "imagenet_arch_search.py --rl_tradeoff_ratio"),
        "rl_update_every": (16, "300 rl_update_steps_per_epoch over ≈4809 batches"),
    }

    def __init__(
        self,
        *,
        mode: str = "full_v2",
        reg_loss: str = "mul#log",
        reg_alpha: float = 0.2,
        reg_beta: float = 0.3,
        reg_lambda: float = 0.1,
        warmup_fraction: float = PAPER_WARMUP_EPOCHS / STANDIN_EPOCHS,
        arch_update_every: int = 5,
        skip_first_search_epoch: bool = True,
        arch_lr: float = 1e-3,
        arch_betas: tuple[float, float] = (0.0, 0.999),
        arch_weight_decay: float = 0.0,
        arch_init_std: float = 1e-3,
        warmup_lr: float = 0.05,
        weight_lr: float = 0.025,
        weight_momentum: float = 0.9,
        weight_decay: float = 4e-5,
        label_smoothing: float = 0.1,
        batch_size: int = 256,
        rl_batch_size: int = 10,
        rl_baseline_decay: float = 0.99,
        rl_tradeoff_ratio: float = 0.1,
        rl_update_every: int = 16,
        width_mult: float = 0.25,
        resolution: int | None = None,
    ):
        self.mode = mode
        self.reg_loss = reg_loss
        self.reg_alpha = reg_alpha
        self.reg_beta = reg_beta
        self.reg_lambda = reg_lambda
        self.warmup_fraction = warmup_fraction
        self.arch_update_every = arch_update_every
        self.skip_first_search_epoch = skip_first_search_epoch
        self.arch_lr = arch_lr
        self.arch_betas = arch_betas
        self.arch_weight_decay = arch_weight_decay
        self.arch_init_std = arch_init_std
        self.warmup_lr = warmup_lr
        self.weight_lr = weight_lr
        self.weight_momentum = weight_momentum
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.rl_batch_size = rl_batch_size
        self.rl_baseline_decay = rl_baseline_decay
        self.rl_tradeoff_ratio = rl_tradeoff_ratio
        self.rl_update_every = rl_update_every
        self.width_mult = width_mult
        self.resolution = resolution

    # -- checks and budget ----------------------------------------------------------
    def _validate(self, latency: Any, target_ms: float | None) -> float:
        if self.mode not in MODES:
            raise SearchError(f"proxylessnas mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.reg_loss not in REG_LOSSES:
            raise SearchError(f"proxylessnas reg_loss must be one of {', '.join(REG_LOSSES)}, got {self.reg_loss!r}")
        target = PAPER_TARGET_MS if target_ms is None else target_ms
        if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 1.0):
            raise SearchError(f"target_ms must be a number of ms above 1 (mul#log divides by log T), got {target!r}")
        for key in ("arch_lr", "batch_size", "arch_update_every", "rl_batch_size", "rl_update_every"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and v > 0):
                raise SearchError(f"proxylessnas {key} must be positive, got {v!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise SearchError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.mode == "reinforce":
            require_latency(self, latency, "score", "any lookup table or predictor")
        else:
            require_latency(self, latency, "expected", "a lookup table (e.g. ProxylessNAS's mobile_trim.yaml) or an "
                            "mlp/ridge/lut predictor; mode=reinforce needs only score()")
        return float(target)

    def _total_steps(self, budget: Budget, task: Any, net: Any) -> int:
        """Weight steps of the whole run (warm-up included)."""
        n_w = task.steps_per_epoch("weights", self.batch_size)
        if budget.epochs is not None:
            return int(budget.epochs) * n_w
        if budget.steps is not None:
            return int(budget.steps)
        if budget.seconds is not None:
            x, y = next(iter(task.batches("weights", self.batch_size, generator=torch.Generator().manual_seed(0))))
            idx = np.argmax(np.asarray(net.mask, dtype=float), 1)
            t0 = time.perf_counter()
            F.cross_entropy(net(x, idx), y).backward()
            step_s = time.perf_counter() - t0
            net.zero_grad(set_to_none=True)
            # an α step runs every legal op (≈ K single paths), a REINFORCE update rl_batch_size forwards
            k = float(np.asarray(net.mask).sum(1).mean())
            extra = (k / self.arch_update_every if self.mode != "reinforce"
                     else 0.4 * self.rl_batch_size / self.rl_update_every)
            per_step = step_s * (1.0 + (1.0 - self.warmup_fraction) * extra)
            return max(1, int(budget.seconds / per_step))
        epochs = STANDIN_EPOCHS if getattr(task, "name", "") == "stand-in" else PROXY_EPOCHS
        return epochs * n_w

    # -- fit ------------------------------------------------------------------------
    def fit(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> ProxylessNAS:
        """Warm up the supernet on paths sampled from ``p``, then alternate weight and α steps.

        Parameters
        ----------
        task : Task or StandInTask
        space : Space
        latency : LatencyModel
            ``expected`` for the gradient modes (a table such as ``mobile_trim.yaml``), ``score`` for REINFORCE.
        target_ms : float, optional
            T (ms); default the paper's 80 ms (Pixel 1).
        budget : Budget
            Epochs, weight steps or seconds; ``Budget()`` = 160 epochs on the stand-in,
            :data:`PROXY_EPOCHS` on a real task.
        seed : int
        callback : callable, optional
            Called with each epoch's trace row.
        """
        self._start_clock()
        target = self._validate(latency, target_ms)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = make_supernet(task, space, width_mult=self.width_mult, resolution=self.resolution)
        L, K = space.num_layers, space.max_choices
        self.rows_ = nn.ParameterList(
            [nn.Parameter(self.arch_init_std * torch.randn(K, generator=gen, dtype=torch.float64)) for _ in range(L)]
        )
        self.arch_optimizer_ = torch.optim.Adam(self.rows_.parameters(), lr=self.arch_lr,
                                                betas=tuple(self.arch_betas), weight_decay=self.arch_weight_decay)
        w_opt = torch.optim.SGD(net.parameters(), lr=self.warmup_lr, momentum=self.weight_momentum,
                                nesterov=self.weight_momentum > 0, weight_decay=self.weight_decay)
        self.supernet_, self.latency_, self.task_, self.space_ = net, latency, task, space
        self.target_ms_, self.seed_ = target, seed
        self.generator_ = gen
        self.skip_column_ = space.candidates.index("skip") if "skip" in space.candidates else -1
        self.baseline_: float | None = None
        self._arch_batches = _endless(task, "arch", self.batch_size, gen)
        self._probs: Tensor | None = None

        total = self._total_steps(budget, task, net)
        warm = round(total * self.warmup_fraction)
        search = total - warm
        first_epoch = round(search / PAPER_SEARCH_EPOCHS) if self.skip_first_search_epoch else 0
        every = self.rl_update_every if self.mode == "reinforce" else self.arch_update_every
        self.total_steps_, self.warmup_steps_ = total, warm
        self.arch_steps_ = sum(1 for i in range(first_epoch, search) if (i + 1) % every == 0)
        rewards: list[float] = []
        self.trace_ = []
        n_w = task.steps_per_epoch("weights", self.batch_size)
        step, epoch = 0, 0
        net.train()
        while step < total:
            w_losses, a_losses, e_values = [], [], []
            for x, y in task.batches("weights", self.batch_size, generator=gen, augment=True):
                if step >= total:
                    break
                if step < warm:
                    lr = 0.5 * self.warmup_lr * (1 + math.cos(math.pi * step / max(warm, 1)))
                else:
                    lr = 0.5 * self.weight_lr * (1 + math.cos(math.pi * (step - warm) / max(search, 1)))
                for g in w_opt.param_groups:
                    g["lr"] = lr
                w_losses.append(self._weight_step(net, w_opt, x, y))
                i = step - warm
                if i >= first_epoch and (i + 1) % every == 0:
                    xa, ya = next(self._arch_batches)
                    if self.mode == "reinforce":
                        rewards.append(self.rl_step(xa, ya)["mean_reward"])
                    else:
                        info = self.arch_step(xa, ya)
                        a_losses.append(info["loss"])
                        e_values.append(info["expected_ms"])
                step += 1
            row = self._trace_row(epoch, step, warm, lr, w_losses, a_losses, e_values, rewards, n_w)
            self.trace_.append(row)
            if callback is not None:
                callback(dict(row))
            epoch += 1
        self.rewards_ = np.asarray(rewards, dtype=np.float64)
        self.alpha_ = self._alpha().detach().clone()
        return self

    def _alpha(self) -> Tensor:
        return torch.stack(list(self.rows_))

    def _trace_row(self, epoch: int, step: int, warm: int, lr: float, w_losses: list, a_losses: list,
                   e_values: list, rewards: list, n_w: int) -> dict:
        lat, space = self.latency_, self.space_
        with torch.no_grad():
            alpha = self._alpha()
            p = lat.masked_softmax(alpha)
            entropy = float(-(p * p.clamp_min(1e-300).log()).sum(-1).mean())
            e_ms = float(expected_latency(lat, alpha)) if hasattr(lat, "expected") else None
        idx = _argmax(alpha, space.mask)
        row = {"epoch": epoch, "step": step, "phase": "warmup" if step <= warm else "search", "weight_lr": lr,
               "weight_loss": _mean(w_losses),
               "expected_ms": e_ms, "arch": space.from_indices(idx).encode(),
               "latency_ms": float(lat.score(idx[None])[0]), "entropy": entropy}
        if self.mode == "reinforce":
            recent = rewards[-max(1, n_w // self.rl_update_every):] if rewards else []
            row.update(rl_updates=len(rewards), mean_reward=_mean(recent), baseline=self.baseline_)
        else:
            row.update(arch_steps=len(a_losses), arch_loss=_mean(a_losses), arch_expected_ms=_mean(e_values))
        return row

    def _weight_step(self, net: Any, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> float:
        """One SGD step on a path sampled from ``p`` (``reset_binary_gates`` with MODE None)."""
        if self._probs is None:  # α moved since the last sample
            with torch.no_grad():
                self._probs = self.latency_.masked_softmax(self._alpha())
        idx = sample_paths(self._probs, 1, self.generator_)[0].numpy()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, idx), y, label_smoothing=self.label_smoothing)
        loss.backward()
        opt.step()
        return float(loss.detach())

    # -- one architecture update --------------------------------------------------
    def arch_gradient(self, x: Tensor, y: Tensor) -> tuple[list[Tensor | None], dict]:
        """The α gradient of one BinaryConnect step on ``(x, y)`` (``gradient_step`` up to the optimizer).

        Samples the binary gates (one path per layer, or a pair in mode ``two``),
        runs the supernet with ``compute="all"`` so ``∂L/∂g_j`` exists for every
        candidate, and returns per layer the latency term's exact gradient plus
        Eq. 4 (or its two-path form); ``None`` for a layer whose sampled op is ``skip``.

        Returns
        -------
        grads : list of Tensor ``[K]`` or None
        info : dict
            ``loss``, ``expected_ms`` (E at the current α), ``active`` (int ``[L]``), ``pair``
            (int ``[L, 2]`` in mode ``two``, else None), ``updated`` (bool ``[L]``), ``gate_grad`` ``[L, K]``.
        """
        lat, net = self.latency_, self.supernet_
        gen = self.generator_
        alpha = self._alpha()
        probs = lat.masked_softmax(alpha)
        pd = probs.detach()
        L = pd.shape[0]
        pair = None
        if self.mode == "two":
            drawn = torch.multinomial(pd, 2, replacement=False, generator=gen)  # [L, 2]
            ps = alpha.detach().gather(1, drawn).softmax(-1)
            c = torch.multinomial(ps, 1, generator=gen)[:, 0]
            rows_i = torch.arange(L)
            pair = torch.stack([drawn[rows_i, c], drawn[rows_i, 1 - c]], 1)  # [active, inactive]
            active = pair[:, 0]
        else:
            active = sample_paths(pd, 1, gen)[0]
        gates = F.one_hot(active, pd.shape[1]).to(torch.float32).requires_grad_(True)
        ce = F.cross_entropy(net(x, gates, compute="all"), y)
        e_ms = lat.expected(probs)
        loss = latency_loss(ce, e_ms, kind=self.reg_loss, target_ms=self.target_ms_, reg_alpha=self.reg_alpha,
                            reg_beta=self.reg_beta, reg_lambda=self.reg_lambda)
        rows = list(self.rows_)
        grads = torch.autograd.grad(loss, [gates, *rows], allow_unused=True)
        gate_grad = grads[0].to(torch.float64)
        bc = eq4_alpha_grad(gate_grad, pd) if pair is None else two_mode_alpha_grad(gate_grad, alpha, pair)
        updated = (active != self.skip_column_).numpy()
        # a sampled Zero (skip) drops the whole α gradient of that layer (AP_path_alpha.grad = None)
        out = [((g if g is not None else torch.zeros_like(row)) + bc[l]) if updated[l] else None
               for l, (row, g) in enumerate(zip(rows, grads[1:]))]
        info = {"loss": float(loss.detach()), "expected_ms": float(e_ms.detach()), "active": active.numpy(),
                "pair": None if pair is None else pair.numpy(), "updated": updated, "gate_grad": gate_grad}
        return out, info

    def arch_step(self, x: Tensor, y: Tensor) -> dict:
        """One α update on ``(x, y)``: :meth:`arch_gradient`, an Adam step, and in mode ``two`` the rescale.

        Returns the ``info`` dict of :meth:`arch_gradient`.
        """
        rows = list(self.rows_)
        old = self._alpha().detach().clone()
        grads, info = self.arch_gradient(x, y)
        for row, g in zip(rows, grads):
            row.grad = g
        self.arch_optimizer_.step()
        self._probs = None
        if info["pair"] is not None:
            pair = torch.as_tensor(info["pair"])
            with torch.no_grad():
                shifted = rescale_pair(self._alpha(), old, pair)
                for l, row in enumerate(rows):
                    if info["updated"][l]:
                        row.copy_(shifted[l])
        for row in rows:
            row.grad = None
        return info

    def rl_step(self, x: Tensor, y: Tensor) -> dict:
        """One REINFORCE update (``rl_update_step``) on the validation batch ``(x, y)``.

        Returns
        -------
        dict
            ``rewards`` ``[n]``, ``mean_reward``, ``baseline``, ``latency_ms`` ``[n]``, ``paths`` ``[n, L]``.
        """
        lat, net, task = self.latency_, self.supernet_, self.task_
        alpha = self._alpha()
        probs = lat.masked_softmax(alpha)
        paths = sample_paths(probs, self.rl_batch_size, self.generator_)  # [n, L]
        acc = np.array([self._path_accuracy(net, task, p.numpy(), x, y) for p in paths])
        lat_ms = lat.score(paths.numpy())
        if self.rl_tradeoff_ratio:
            rewards = objectives.reinforce_reward(acc, lat_ms, target_ms=self.target_ms_, w=-self.rl_tradeoff_ratio)
        else:
            rewards = acc
        mean = float(np.mean(rewards))
        self.baseline_ = mean if self.baseline_ is None else self.baseline_ + self.rl_baseline_decay * (mean - self.baseline_)
        log_p = probs.clamp_min(1e-300).log().gather(1, paths.T).sum(0)  # [n]: log p(g_i)
        adv = torch.as_tensor(rewards - self.baseline_, dtype=log_p.dtype)
        loss = -(adv * log_p).sum() / self.rl_batch_size
        self.arch_optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        self.arch_optimizer_.step()
        self._probs = None
        return {"rewards": np.asarray(rewards, dtype=np.float64), "mean_reward": mean, "baseline": self.baseline_,
                "latency_ms": lat_ms, "paths": paths.numpy()}

    @staticmethod
    def _path_accuracy(net: Any, task: Any, idx: np.ndarray, x: Tensor, y: Tensor) -> float:
        """Accuracy of one sampled path: the task's own ``fitness`` where it has one (the stand-in), else the
        top-1 accuracy on the batch in train mode (BN on batch statistics, as ``rl_update_step``)."""
        fitness = getattr(task, "fitness", None)
        if callable(fitness):
            return float(fitness(idx))
        with torch.no_grad():
            return float((net(x, idx).argmax(1) == y).float().mean())

    # -- search ---------------------------------------------------------------------
    def expected_latency(self, alpha: Tensor | None = None) -> Tensor:
        """``E`` (ms) at ``alpha`` (default the fitted ``alpha_``): :func:`expected_latency` of the model."""
        return expected_latency(self.latency_, self.alpha_ if alpha is None else alpha)

    def search(self, *, target_ms: float | None = None, constraint: Mapping[str, Any] | None = None) -> SearchResult:
        """The derived architecture ``argmax p`` per layer, with its latency, trace and deviations."""
        if not hasattr(self, "alpha_"):
            raise SearchError("call fit() before search()")
        if target_ms is not None and float(target_ms) != self.target_ms_:
            raise SearchError(f"this ProxylessNAS run was fitted for {self.target_ms_} ms; fit again for another target")
        space, task = self.space_, self.task_
        idx = _argmax(self.alpha_, space.mask)
        acc = derived_accuracy(self.supernet_, idx, task, self.batch_size, self.seed_)
        e_ms = float(self.expected_latency()) if hasattr(self.latency_, "expected") else None
        proxy = {"task": getattr(task, "name", type(task).__name__), "resolution": getattr(task, "resolution", None),
                 "width_mult": self.width_mult, "classes": getattr(task, "classes", None), "test_accuracy": acc,
                 "weight_steps": self.total_steps_, "warmup_steps": self.warmup_steps_,
                 "arch_updates": self.arch_steps_, "expected_ms": e_ms}
        return self.make_result(space=space, arch=space.from_indices(idx), latency=self.latency_,
                                target_ms=self.target_ms_, proxy=proxy, deviations=self._deviations(),
                                trace=self.trace_, seed=self.seed_)

    def _deviations(self) -> list[str]:
        out = self.deviations_from_paper()
        paper_steps = (PAPER_WARMUP_EPOCHS + PAPER_SEARCH_EPOCHS) * PAPER_BATCHES_PER_EPOCH
        out.append(f"{self.total_steps_} weight steps ({self.warmup_steps_} warm-up) and {self.arch_steps_} "
                   f"{'REINFORCE updates' if self.mode == 'reinforce' else 'α steps'} instead of the paper's "
                   f"≈{paper_steps} ({PAPER_WARMUP_EPOCHS * PAPER_BATCHES_PER_EPOCH} warm-up); schedules follow progress")
        task = getattr(self.task_, "name", "")
        if task != "stand-in":
            out.append(f"searched on the proxy task {task!r} at {getattr(self.task_, 'resolution', '?')} px, "
                       f"width ×{self.width_mult:g}, instead of ImageNet at 224 px")
        return out


def _mean(values: list) -> float | None:
    """Mean of a list, None for an empty one (a report holds no NaN)."""
    return float(np.mean(values)) if values else None


def _endless(task: Any, split: str, batch_size: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``split`` forever, one shuffled pass after another (``valid_next_batch``)."""
    while True:
        yield from task.batches(split, batch_size, generator=gen)


def _argmax(alpha: Tensor, mask: Any) -> np.ndarray:
    """``argmax α`` over each layer's legal candidates, int64 ``[L]``."""
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    return alpha.detach().masked_fill(~m, float("-inf")).argmax(-1).numpy().astype(np.int64)


__all__ = [
    "MODES",
    "PAPER_TARGET_MS",
    "PROXY_EPOCHS",
    "REG_LOSSES",
    "ProxylessNAS",
    "eq4_alpha_grad",
    "expected_latency",
    "latency_loss",
    "rescale_pair",
    "sample_paths",
    "two_mode_alpha_grad",
]
