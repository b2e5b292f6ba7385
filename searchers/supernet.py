"""The proxy supernet: the space's candidates at a width multiplier and a small input.

The supernet has the **same** searchable layers, candidates, strides and
stage layout as the space, so an architecture derived on it is an
architecture of the real space and is priced by the real (224-pixel) latency
model. Only the channels shrink (× ``width_mult``, rounded to a multiple of 8,
at least 8) and the input is ``resolution`` pixels (32: five stride-2 steps
reach 1×1). Ops are built by :func:`hwprof.spaces.modules.build_op` from the
space's own :class:`~hwprof.spaces.ops.OpSpec` grammar, at proxy scale.

Which candidates a layer has is the real space's ``mask``; a ``skip`` is the
space's skip rule at real scale (an identity where the real layer keeps its
shape, else a 1×1 conv for ``skip="conv"`` spaces), even where proxy channel
rounding would make the shapes match.

Elastic widths (TF-NAS mids, SPOS channel multipliers) and elastic resolution
are not part of this supernet: every candidate runs at its default width.
"""

from __future__ import annotations

import time

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hwprof.errors import ConfigError, SpaceError
from hwprof.spaces.modules import build_op
from hwprof.spaces.ops import OpSpec

#: The two forward modes of architecture weights ``[L, K]``.
COMPUTE_MODES = ("nonzero", "all")


def proxy_channels(c: int, width_mult: float) -> int:
    """``c · width_mult`` rounded to a multiple of 8 (half up), at least 8."""
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be positive, got {width_mult}")
    return max(8, int(c * width_mult / 8 + 0.5) * 8)


def _proxy_space(space: Any, width_mult: float, resolution: int, classes: int | None = None) -> Any:
    """The space with channels × ``width_mult`` and one resolution (the last fc → ``classes``)."""
    def scale_fixed(f: Any, last_fc: bool) -> Any:
        if f.kind in ("pool", "maxpool"):
            return f
        if f.kind == "fc" and last_fc:
            return dataclasses.replace(f, cout=classes if classes is not None else f.cout)
        se = proxy_channels(f.se, width_mult) if f.se else 0
        return dataclasses.replace(f, cout=proxy_channels(f.cout, width_mult), se=se)

    last_fc = max((i for i, f in enumerate(space.head) if f.kind == "fc"), default=-1)
    return dataclasses.replace(
        space,
        resolutions=(int(resolution),),
        stem=tuple(scale_fixed(f, False) for f in space.stem),
        stages=tuple(dataclasses.replace(s, cout=proxy_channels(s.cout, width_mult)) for s in space.stages),
        head=tuple(scale_fixed(f, i == last_fc) for i, f in enumerate(space.head)),
    )


def proxy_choice_ops(space: Any, width_mult: float = 0.25, resolution: int = 32) -> list[list[OpSpec | None]]:
    """``[L][K]`` ops of the space's candidates at proxy scale, None where the real space has none.

    Parameters
    ----------
    space : Space
    width_mult : float
        Channel multiplier (channels rounded by :func:`proxy_channels`).
    resolution : int
        Proxy input resolution (pixels).
    """
    proxy = _proxy_space(space, width_mult, resolution)
    real = space.geometry()
    out: list[list[OpSpec | None]] = []
    for g_real, g in zip(real, proxy.geometry(resolution)):
        row: list[OpSpec | None] = []
        for j, cand in enumerate(space.candidates):
            if not space.mask[g.index, j]:
                row.append(None)
            elif cand == "skip":
                identity = g_real.stride == 1 and g_real.cin == g_real.cout
                row.append(
                    OpSpec("skip", g.h, g.h, g.cin, g.cout)
                    if identity
                    else OpSpec("conv", g.h, g.h, g.cin, g.cout, 0, 1, g.stride, 1, 0, g.act)
                )
            else:
                row.append(proxy.candidate_op(g, cand))
        out.append(row)
    return out


class IllegalOp(nn.Identity):
    """Placeholder where the space has no candidate; calling it is an error."""

    def forward(self, x: Tensor) -> Tensor:
        raise SpaceError("this layer has no such candidate (the space's mask is False here)")


class MixedLayer(nn.Module):
    """One searchable layer: its ``K`` candidate ops.

    Attributes
    ----------
    ops : nn.ModuleList
        ``K`` modules, :class:`IllegalOp` where ``legal`` is False.
    legal : ndarray of bool ``[K]``
    specs : tuple of OpSpec or None
        Proxy-scale op of each candidate.
    """

    def __init__(self, specs: Sequence[OpSpec | None]):
        super().__init__()
        self.specs = tuple(specs)
        self.legal = np.array([s is not None for s in specs], dtype=bool)
        self.ops = nn.ModuleList([build_op(s) if s is not None else IllegalOp() for s in specs])

    def forward(self, x: Tensor, weights_row: Any, compute: str = "nonzero") -> Tensor:
        """See :meth:`SuperNet.layer_forward`."""
        if isinstance(weights_row, Tensor) and weights_row.is_floating_point() and weights_row.dim() == 1:
            return self._mixed(x, weights_row, compute)
        k = int(weights_row)
        if not (0 <= k < len(self.ops)) or not self.legal[k]:
            legal = np.flatnonzero(self.legal).tolist()
            raise SpaceError(f"candidate index {k} is not legal at this layer; legal: {legal}")
        return self.ops[k](x)

    def _mixed(self, x: Tensor, w: Tensor, compute: str) -> Tensor:
        if compute not in COMPUTE_MODES:
            raise ConfigError(f"compute must be one of {', '.join(COMPUTE_MODES)}, got {compute!r}")
        nonzero = (w.detach() != 0).cpu().numpy()
        if (nonzero & ~self.legal).any():
            bad = np.flatnonzero(nonzero & ~self.legal).tolist()
            raise SpaceError(f"weights put mass on candidates {bad}, which this layer does not have; mask them")
        run = self.legal if compute == "all" else nonzero
        out: Tensor | None = None
        for k in np.flatnonzero(run):
            y = w[k] * self.ops[k](x)
            out = y if out is None else out + y
        if out is None:
            raise SpaceError("all architecture weights of this layer are zero; nothing to compute")
        return out


class SuperNet(nn.Module):
    """Proxy supernet of a space (see the module docstring).

    Parameters
    ----------
    space : Space
    width_mult : float
        Channel multiplier (default 0.25).
    resolution : int
        Input resolution of the proxy task (default 32).
    classes : int
        Classifier outputs (the space's last fc is replaced).

    Attributes
    ----------
    space : Space
    num_layers, max_choices : int
        ``L`` and ``K``.
    mask : ndarray of bool ``[L, K]``
        The space's legal candidates.
    candidates : tuple of str
        ``K`` candidate names.
    stem, head : nn.Sequential
        Fixed ops; the head ends in pool + fc to ``classes``.
    layers : nn.ModuleList of MixedLayer
    """

    def __init__(self, space: Any, *, width_mult: float = 0.25, resolution: int = 32, classes: int = 10):
        super().__init__()
        self.space = space
        self.width_mult = float(width_mult)
        self.resolution = int(resolution)
        self.classes = int(classes)
        self.num_layers = space.num_layers
        self.max_choices = space.max_choices
        self.mask = np.array(space.mask, dtype=bool)
        self.candidates = tuple(space.candidates)
        proxy = _proxy_space(space, width_mult, resolution, classes)
        stem_ops, _, head_ops = proxy._walk(self.resolution, 1)
        self.stem = nn.Sequential(*[build_op(op) for op in stem_ops])
        self.layers = nn.ModuleList(
            [MixedLayer(row) for row in proxy_choice_ops(space, width_mult, resolution)]
        )
        self.head = nn.Sequential(*[build_op(op) for op in head_ops])

    # -- forward -------------------------------------------------------------------
    def _rows(self, weights: Any) -> list[Any]:
        """Per-layer rows: a float ``[K]`` tensor each, or an int index each."""
        if isinstance(weights, Tensor) and weights.is_floating_point():
            if weights.shape != (self.num_layers, self.max_choices):
                raise SpaceError(
                    f"architecture weights have shape {tuple(weights.shape)}; expected [L, K] = "
                    f"[{self.num_layers}, {self.max_choices}]"
                )
            return list(weights.unbind(0))
        if isinstance(weights, np.ndarray) and weights.dtype.kind == "f":
            return self._rows(torch.as_tensor(weights, dtype=torch.float32))
        idx = weights.detach().cpu().numpy() if isinstance(weights, Tensor) else np.asarray(weights)
        if idx.ndim != 1 or len(idx) != self.num_layers or (idx.size and idx.dtype.kind not in "iu"):
            raise SpaceError(
                f"a single path is {self.num_layers} integer candidate indices, got {idx.dtype} {idx.shape}"
            )
        return [int(i) for i in idx]

    def forward(self, x: Tensor, weights: Any, *, compute: str = "nonzero") -> Tensor:
        """Logits ``[B, classes]`` of input ``x [B, 3, R, R]``.

        Parameters
        ----------
        weights : int indices ``[L]`` (LongTensor, ndarray or sequence), or float Tensor ``[L, K]``
            Indices: single path, only the chosen ops run. Weights: per layer
            ``Σ_k w_k · op_k(x)`` over the ops with ``w_k ≠ 0`` (``"nonzero"``;
            a straight-through one-hot runs one op and still passes gradients
            to the weights) or over every legal op (``"all"``: ``∂loss/∂w_k``
            for every ``k``, ProxylessNAS full_v2).
        compute : {"nonzero", "all"}
        """
        rows = self._rows(weights)
        y = self.stem(x)
        for layer, row in zip(self.layers, rows):
            y = layer(y, row, compute)
        return self.head(y)

    def layer_forward(self, l: int, x: Tensor, weights_row: Any, compute: str = "nonzero") -> Tensor:
        """Output of searchable layer ``l``: ``weights_row`` is an index or float ``[K]`` (same rules as forward)."""
        return self.layers[l](x, weights_row, compute)

    def path_parameters(self, indices: Any) -> list[nn.Parameter]:
        """Parameters of the stem, the head and the chosen op of every layer."""
        params = list(self.stem.parameters())
        for layer, k in zip(self.layers, self._rows(indices)):
            params += list(layer.ops[int(k)].parameters())
        return params + list(self.head.parameters())


def _bn_modules(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_bn(
    net: nn.Module, indices: Any, batches: Iterable[tuple[Tensor, Tensor]], max_batches: int | None = None
) -> None:
    """Reset BatchNorm running statistics and re-estimate them on ``batches`` for the path ``indices`` (SPOS).

    Running statistics become the plain average over the batches seen
    (``momentum=None`` during recalibration); the net's train/eval mode is restored.
    """
    bns = _bn_modules(net)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = net.training
    net.train()
    try:
        with torch.no_grad():
            for i, (x, _) in enumerate(batches):
                if max_batches is not None and i >= max_batches:
                    break
                net(x, indices)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        net.train(was_training)


def accuracy(net: nn.Module, indices: Any, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of the path ``indices`` on ``(x, y)`` in eval mode (mode restored afterwards)."""
    was_training = net.training
    net.eval()
    correct = 0
    try:
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                logits = net(x[i : i + batch_size], indices)
                correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
    finally:
        net.train(was_training)
    return correct / max(1, len(y))


def time_path_step(net: nn.Module, task: Any, batch_size: int, mask: np.ndarray) -> float:
    """Seconds of one single-path forward + backward on a throwaway batch (the first legal op per layer)."""
    x, y = next(iter(task.batches("weights", batch_size, generator=torch.Generator().manual_seed(0))))
    idx = np.argmax(np.where(mask, 0.0, -np.inf), 1)
    t0 = time.perf_counter()
    nn.functional.cross_entropy(net(x, idx), y).backward()
    seconds = time.perf_counter() - t0
    net.zero_grad(set_to_none=True)
    return seconds


def derived_accuracy(net: nn.Module, indices: Any, task: Any, batch_size: int, seed: int,
                     max_batches: int | None = None) -> float:
    """Test accuracy of the path ``indices`` with inherited weights, after re-estimating its BatchNorm
    statistics on the task's architecture split (a supernet's running statistics mix every path)."""
    batches = task.batches("arch", batch_size, generator=torch.Generator().manual_seed(seed))
    recalibrate_bn(net, indices, batches, max_batches=max_batches)
    return accuracy(net, indices, task.x_test, task.y_test)


def make_supernet(
    task: Any, space: Any, *, width_mult: float | None = None, resolution: int | None = None,
    classes: int | None = None,
) -> nn.Module:
    """``task.make_supernet(space)`` where the task provides one (the stand-in), else a :class:`SuperNet`.

    ``width_mult``, ``resolution`` and ``classes`` default to the task's
    (``task.width_mult``, 0.25 where the task has none).
    """
    maker = getattr(task, "make_supernet", None)
    if callable(maker):
        return maker(space)
    return SuperNet(
        space,
        width_mult=float(width_mult or getattr(task, "width_mult", None) or 0.25),
        resolution=int(resolution or task.resolution),
        classes=int(classes or task.classes),
    )


__all__ = [
    "COMPUTE_MODES",
    "IllegalOp",
    "MixedLayer",
    "SuperNet",
    "accuracy",
    "make_supernet",
    "proxy_channels",
    "proxy_choice_ops",
    "derived_accuracy",
    "time_path_step",
    "recalibrate_bn",
]
