"""Latency model of a fitted predictor over the layer-major one-hot ``[L·K]``.

``expected(w)`` feeds the flattened architecture weights to the predictor's
torch twin (``predictor.to_torch()``), whose parameters are frozen, so the
gradient flows to the weights only (LightNAS: an MLP on the one-hot of the
architecture, applied to straight-through Gumbel samples).

``score(idx)`` runs in numpy. For a torch twin made of ``nn.Linear`` and
``nn.ReLU`` (the MLP, ridge and LUT kinds) the forward pass is compiled to
numpy once; because the input is a one-hot, the first linear layer is a sum
of rows of its weight matrix, which is precomputed for groups of consecutive
layers (``K^g`` rows per group) so a batch costs ``⌈L/g⌉`` row gathers
instead of a dense ``[N, L·K] × [L·K, H]`` product. Other predictors
(``gbdt``, ``transfer``) are scored through their own ``predict``.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from hwprof.errors import PredictorError
from hwprof.latency.base import LatencyModel

if TYPE_CHECKING:
    from hwprof.spaces import Space

#: Predictor kinds whose torch twin makes ``expected`` differentiable.
DIFFERENTIABLE_KINDS = ("lut", "lut-calibrated", "ridge", "mlp")

_CHUNK = 2048  # rows per numpy batch: the hidden activations stay cache-sized
_GROUP_ROWS = 512  # at most K^g precomputed rows per group of layers


class PredictorLatencyModel(LatencyModel):
    """Latency model of a predictor (or of a bare torch module) on the one-hot ``[L·K]``.

    Parameters
    ----------
    predictor : object, optional
        A fitted hwprof predictor: ``predict(X [N, L·K]) -> ms [N]``,
        ``to_torch()`` for the differentiable kinds, attributes ``space`` and
        ``kind``.
    space : Space, optional
        The space; defaults to ``predictor.space``.
    module : nn.Module, optional
        A torch module mapping one-hot ``[..., L·K]`` to ms ``[...]`` or
        ``[..., 1]``, used instead of ``predictor.to_torch()``.
    strict : bool
        See :class:`LatencyModel`.
    dtype : numpy dtype
        Precision of the numpy ``score`` path: float32 (default; the
        precision predictors are trained in, and twice the BLAS speed) or
        float64.
    """

    def __init__(
        self,
        predictor: Any = None,
        space: Space | None = None,
        module: nn.Module | None = None,
        strict: bool = True,
        dtype: type = np.float32,
    ):
        if predictor is None and module is None:
            raise PredictorError("pass a fitted predictor or a torch module")
        if space is None and predictor is not None:
            space = getattr(predictor, "space", None)
        if isinstance(space, str):
            from hwprof.spaces import space as get_space

            space = get_space(space)
        if space is None:
            raise PredictorError("the predictor names no space; pass space=hwprof.space(<name>)")
        super().__init__(space.mask, space, strict)
        self.predictor = predictor
        self.kind = getattr(predictor, "kind", "module") if predictor is not None else "module"
        self._module_error = ""
        if module is None:
            to_torch = getattr(predictor, "to_torch", None)
            if to_torch is None:
                self._module_error = f"predictor {type(predictor).__name__} has no to_torch()"
            else:
                try:
                    module = to_torch()
                except PredictorError as exc:
                    self._module_error = str(exc)
        self.module = _freeze(module) if module is not None else None
        self._modules: dict[tuple, nn.Module] = {}
        self.dtype = np.dtype(dtype)
        self._numpy = _NumpyMLP.compile(self.module, self.num_layers, self.max_choices, self.dtype)
        if self._numpy is None and predictor is None:
            self._torch_score = True
        else:
            self._torch_score = False

    @property
    def differentiable(self) -> bool:
        """Whether :meth:`expected` is available (the predictor has a torch twin)."""
        return self.module is not None

    def _module_like(self, like: torch.Tensor) -> nn.Module:
        key = (like.dtype, like.device)
        m = self._modules.get(key)
        if m is None:
            m = _freeze(copy.deepcopy(self.module).to(dtype=like.dtype, device=like.device))
            self._modules[key] = m
        return m

    def expected(
        self,
        weights: torch.Tensor,
        resolution_weights: torch.Tensor | None = None,
        width_ratio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted latency (ms) of architecture weights ``[L, K]`` or ``[B, L, K]``, differentiable in them.

        Returns ``[]`` or ``[B]``. The predictor's parameters are frozen.

        Parameters
        ----------
        weights : Tensor ``[L, K]`` or ``[B, L, K]``
            Candidate weights (one-hot or soft).
        resolution_weights : Tensor ``[R]`` or ``[B, R]``, optional
            Weights over ``space.resolutions`` for elastic-resolution spaces (OFA):
            one-hot for a fixed resolution, soft for an expectation;
            differentiable. Default: the space's default resolution.
        width_ratio : Tensor ``[L]`` or ``[B, L]``, optional
            Each layer's width as a fraction of its candidate's default
            (:meth:`Space.width_ratio`; TF-NAS's kept share of mid channels), for
            elastic-width spaces; differentiable. Default: 1.

        Raises
        ------
        PredictorError
            For a predictor kind without a torch twin (``gbdt``, ``transfer``), or
            a resolution or width for a space without one.
        """
        if self.module is None:
            raise PredictorError(
                f"predictor kind {self.kind!r} is not differentiable ({self._module_error}); expected() needs "
                f"one of {', '.join(DIFFERENTIABLE_KINDS)}; score() works for every kind"
            )
        self._check_weights(weights)
        x = weights.flatten(-2)
        if resolution_weights is not None or width_ratio is not None:
            x = torch.cat([x, *self._extras(x, resolution_weights, width_ratio)], dim=-1)
        out = self._module_like(weights)(x)
        if out.dim() == x.dim():
            if out.shape[-1] != 1:
                raise PredictorError(
                    f"the predictor's torch module returned shape {tuple(out.shape)}; expected [..., 1]"
                )
            out = out.squeeze(-1)
        return out

    def _extras(self, x: torch.Tensor, resolution_weights, width_ratio) -> list[torch.Tensor]:
        """The resolution and width columns of the architecture matrix, shaped like ``x`` ``[..., ·]``."""
        from hwprof.predictors.features import resolution_columns

        sp = self.space
        if resolution_weights is not None and not sp.elastic_resolution:
            raise PredictorError(f"{sp.name} has one resolution; expected() takes no resolution_weights")
        if width_ratio is not None and sp.width == "none":
            raise PredictorError(f"{sp.name} has no elastic width; expected() takes no width_ratio")
        lead = x.shape[:-1]
        out = []
        if sp.elastic_resolution:
            if resolution_weights is None:
                resolution_weights = x.new_zeros(len(sp.resolutions))
                resolution_weights[sp.resolutions.index(sp.default_resolution)] = 1.0
            rw = torch.as_tensor(resolution_weights).to(x)
            if rw.shape[-1] != len(sp.resolutions):
                raise PredictorError(
                    f"resolution_weights has {rw.shape[-1]} entries; {sp.name} has {len(sp.resolutions)} resolutions"
                )
            cols = resolution_columns(sp, rw)
            out.append(cols.expand(*lead, cols.shape[-1]))
        if sp.width != "none":
            w = x.new_ones(self.num_layers) if width_ratio is None else torch.as_tensor(width_ratio).to(x)
            out.append(w.expand(*lead, self.num_layers))
        return out

    def score(self, archs: np.ndarray | Sequence) -> np.ndarray:
        """Predicted latency of discrete architectures, float64 ``[N]`` ms (numpy).

        Architectures given as text or :class:`Arch` keep their resolution and
        widths (elastic spaces: through the predictor's ``predict_archs``);
        index arrays ``[N, L]`` are priced at the default resolution and widths.
        """
        from hwprof.predictors.features import elastic

        predict_archs = getattr(self.predictor, "predict_archs", None)
        if elastic(self.space) and predict_archs is not None and not isinstance(archs, (np.ndarray, torch.Tensor)):
            items = [archs] if isinstance(archs, str) or hasattr(archs, "choices") else list(archs)
            if items and (isinstance(items[0], str) or hasattr(items[0], "choices")):
                self.indices(items)  # the mask check every score makes
                return np.asarray(predict_archs(items), dtype=np.float64).reshape(len(items))
        idx = self.indices(archs)
        n = idx.shape[0]
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        for s in range(0, n, _CHUNK):
            chunk = idx[s : s + _CHUNK]
            if self._numpy is not None:
                out[s : s + len(chunk)] = self._numpy(chunk)
            elif self._torch_score:
                with torch.inference_mode():
                    x = torch.from_numpy(self._one_hot(chunk, np.float32))
                    y = self.module(x)
                out[s : s + len(chunk)] = y.reshape(len(chunk)).double().numpy()
            else:
                y = np.asarray(self.predictor.predict(self._one_hot(chunk, np.float64)), dtype=np.float64)
                out[s : s + len(chunk)] = y.reshape(len(chunk))
        return out

    def _one_hot(self, idx: np.ndarray, dtype) -> np.ndarray:
        n = idx.shape[0]
        x = np.zeros((n, self.num_layers * self.max_choices), dtype=dtype)
        cols = idx + np.arange(self.num_layers) * self.max_choices
        x[np.arange(n)[:, None], cols] = 1.0
        return x


def _freeze(module: nn.Module) -> nn.Module:
    module = module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _flatten_sequential(module: nn.Module) -> list[nn.Module] | None:
    """Leaf layers of nested ``nn.Sequential`` containers, or None for any other container."""
    if isinstance(module, nn.Sequential):
        out: list[nn.Module] = []
        for child in module:
            sub = _flatten_sequential(child)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if isinstance(module, (nn.Linear, nn.ReLU, nn.Identity, nn.Dropout)):
        return [module]
    return None


class _NumpyMLP:
    """Numpy forward pass of a Linear/ReLU stack on one-hot architecture indices."""

    def __init__(self, tables: list[np.ndarray], groups: list[np.ndarray], powers: list[np.ndarray], rest: list):
        self.tables = tables  # per group: [K^g, H] sums of first-layer rows (+ bias in group 0)
        self.groups = groups  # per group: layer indices
        self.powers = powers  # per group: K^(g-1-i) code weights
        self.rest = rest  # ("linear", W^T, b) | ("relu",)

    @classmethod
    def compile(cls, module: nn.Module | None, n_layers: int, n_choices: int, dtype: np.dtype) -> _NumpyMLP | None:
        if module is None:
            return None
        layers = _flatten_sequential(module)
        if not layers:
            return None
        layers = [m for m in layers if not isinstance(m, (nn.Identity, nn.Dropout))]
        first = layers[0]
        if not isinstance(first, nn.Linear) or first.in_features != n_layers * n_choices:
            return None
        w = first.weight.detach().double().numpy().T.reshape(n_layers, n_choices, -1)  # [L, K, H]
        b = first.bias.detach().double().numpy() if first.bias is not None else 0.0
        g = max(1, int(math.floor(math.log(_GROUP_ROWS) / math.log(max(n_choices, 2)))))
        tables, groups, powers = [], [], []
        for start in range(0, n_layers, g):
            members = np.arange(start, min(start + g, n_layers))
            table = w[members[0]]
            for layer in members[1:]:
                table = (table[:, None, :] + w[layer][None, :, :]).reshape(-1, w.shape[2])
            if start == 0:
                table = table + b
            tables.append(np.ascontiguousarray(table, dtype=dtype))
            groups.append(members)
            powers.append(n_choices ** np.arange(len(members) - 1, -1, -1, dtype=np.int64))
        rest: list = []
        for m in layers[1:]:
            if isinstance(m, nn.Linear):
                bias = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(m.out_features)
                rest.append(("linear", np.ascontiguousarray(m.weight.detach().double().numpy().T, dtype=dtype),
                             bias.astype(dtype)))
            elif isinstance(m, nn.ReLU):
                rest.append(("relu",))
            else:  # pragma: no cover - _flatten_sequential admits only the kinds above
                return None
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        if linears[-1].out_features != 1:
            return None
        return cls(tables, groups, powers, rest)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        h = None
        for table, members, pw in zip(self.tables, self.groups, self.powers):
            code = idx[:, members] @ pw
            if h is None:
                h = table[code]
            else:
                h += table[code]
        for op in self.rest:
            if op[0] == "relu":
                np.maximum(h, 0, out=h)
            else:
                h = h @ op[1]
                h += op[2]
        return h.reshape(len(idx), -1)[:, 0].astype(np.float64)


__all__ = ["DIFFERENTIABLE_KINDS", "PredictorLatencyModel"]
