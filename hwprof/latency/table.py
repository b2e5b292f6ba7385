"""Latency model of a lookup table: expected latency in torch, batched scores in numpy.

The table's ``[L, K]`` view ``values`` (ms, 0 where the mask is False) and a
constant for the fixed layers (stem, head) are all it needs:

- ``expected(w) = Σ_l Σ_k w[l, k] · values[l, k] + constant`` (ProxylessNAS,
  FBNet, TF-NAS: the expected latency under the architecture distribution);
- ``score(idx) = Σ_l values[l, idx[l]] + constant`` for many discrete
  architectures at once (SPOS / OFA evolutionary search).

In float64, summation order is the same in both (left to right over layers,
then the constant), and products with a zero weight are exact zeros, so at a
one-hot input ``expected`` equals ``score`` and the plain Python sum
``sum(values[l, idx[l]] for l) + constant`` bit for bit. Lower precisions take
a single fused dot product, equal to those up to their own rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from hwprof.errors import ConfigError, SpaceError
from hwprof.latency.base import LatencyModel

if TYPE_CHECKING:
    from hwprof.latency.width import WidthCurve, WidthGrid
    from hwprof.spaces import Space

_CHUNK = 2048  # architectures per numpy pass: the [L, chunk] gather stays in cache


class TableLatencyModel(LatencyModel):
    """Latency model of an additive lookup table.

    Parameters
    ----------
    values : array ``[L, K]``
        Latency of candidate ``k`` at layer ``l`` in ms; entries where
        ``mask`` is False are ignored (set to 0).
    mask : bool array ``[L, K]``
        Legal candidates.
    constant_ms : float
        Latency of the fixed layers (stem, head), added once.
    space : Space, optional
        The space the table was built for (enables architecture strings,
        depth weights and stage structure).
    resolution : int, optional
        Input resolution the table was built at (spaces with elastic
        resolution have one table per resolution).
    strict : bool
        See :class:`LatencyModel`.
    table : LatencyTable, optional
        The source table, kept for width curves.

    Examples
    --------
    >>> lat = TableLatencyModel.from_table(table, hwprof.space("proxylessnas"))  # doctest: +SKIP
    >>> e = lat.expected(lat.masked_softmax(alpha))                             # doctest: +SKIP
    """

    def __init__(
        self,
        values: np.ndarray,
        mask: np.ndarray | None = None,
        constant_ms: float = 0.0,
        space: Space | None = None,
        resolution: int | None = None,
        strict: bool = True,
        table: Any = None,
    ):
        values = np.array(values, dtype=np.float64)
        if values.ndim != 2:
            raise SpaceError(f"values must be [L, K] ms, got shape {values.shape}")
        if mask is None:
            mask = space.mask if space is not None else np.ones(values.shape, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise SpaceError(f"values {values.shape} and mask {mask.shape} differ in shape")
        super().__init__(mask, space, strict)
        legal = values[mask]
        if not np.isfinite(legal).all():
            raise ConfigError("the table has a non-finite latency on a legal candidate; re-measure that entry")
        if not np.isfinite(constant_ms):
            raise ConfigError(f"constant_ms must be finite, got {constant_ms}")
        values[~mask] = 0.0
        self.values = values
        self.constant_ms = float(constant_ms)
        self.resolution = resolution
        self.table = table
        self._flat = np.ascontiguousarray(values.reshape(-1))
        self._offsets = np.arange(self.num_layers, dtype=np.int64) * self.max_choices
        self._cache: dict[tuple, torch.Tensor] = {}
        self._curves: dict[tuple[int, str], WidthCurve] = {}
        self._depth_index: np.ndarray | None = None
        self._grid: WidthGrid | None = None

    @classmethod
    def from_table(
        cls, table: Any, space: Space, resolution: int | None = None, strict: bool = True
    ) -> TableLatencyModel:
        """Build from a ``LatencyTable`` (anything with ``matrix(space, resolution)``)."""
        values, mask, constant_ms = table.matrix(space, resolution=resolution)
        return cls(values, mask, constant_ms, space, resolution, strict, table)

    # -- torch -------------------------------------------------------------------
    def _values(self, like: torch.Tensor, flat: bool = False) -> torch.Tensor:
        key = (like.dtype, like.device, flat)
        t = self._cache.get(key)
        if t is None:
            t = torch.as_tensor(self._flat if flat else self.values, dtype=like.dtype, device=like.device)
            self._cache[key] = t
        return t

    def layer_latency(self, weights: torch.Tensor, mids: torch.Tensor | None = None) -> torch.Tensor:
        """Expected latency of each searchable layer, ``[..., L]`` ms (no constant).

        Parameters
        ----------
        weights : Tensor ``[L, K]`` or ``[B, L, K]``
            Candidate weights per layer.
        mids : Tensor ``[L, K]`` or ``[B, L, K]``, optional
            Mid channels per candidate (integer or real, differentiable).
            Given, each cell is priced on its width curve
            (:meth:`width_curve`); cells without one (``skip``, illegal) keep
            the table value. Omitted, every cell has its default width.
        """
        self._check_weights(weights)
        if mids is None:
            return (weights * self._values(weights)).sum(-1)
        return (weights * self._width_ms(mids, weights)).sum(-1)

    def expected(self, weights: torch.Tensor) -> torch.Tensor:
        """Expected latency ``Σ w·values + constant`` in ms, differentiable in ``weights``.

        Parameters
        ----------
        weights : Tensor ``[L, K]`` or ``[B, L, K]``
            Architecture weights: softmax, soft Gumbel or straight-through
            one-hot. Zero on illegal columns unless the model is not strict.

        Returns
        -------
        Tensor ``[]`` or ``[B]``
            Latency in ms, same dtype and device as ``weights``.

        Notes
        -----
        In float64 the sum runs left to right over layers, so a one-hot input
        gives exactly :meth:`score`'s value. Other dtypes take one fused dot
        product (the fastest path for a training loop); they agree with
        :meth:`score` to their own rounding (float32: ~1e-7 relative).
        """
        self._check_weights(weights)
        if weights.dtype == torch.float64:
            # cumsum is a left-to-right sum, the order score() and a plain Python sum use
            return (weights * self._values(weights)).sum(-1).cumsum(-1)[..., -1] + self.constant_ms
        return weights.flatten(-2) @ self._values(weights, flat=True) + self.constant_ms

    # -- numpy -------------------------------------------------------------------
    def score(self, archs: np.ndarray | Sequence) -> np.ndarray:
        """Latency of discrete architectures, float64 ``[N]`` ms.

        Parameters
        ----------
        archs : int array ``[N, L]`` (or ``[L]``), or a sequence of Arch / str
            Candidate index per layer (columns of ``space.candidates``).
        """
        idx = self.indices(archs, check_mask=False)
        n = idx.shape[0]
        out = np.empty(n, dtype=np.float64)
        check = not self._all_legal
        offsets = self._offsets[:, None]
        for s in range(0, n, _CHUNK):
            # [L, chunk] in C order, so the layer loop adds contiguous rows
            flat = np.add(idx[s : s + _CHUNK].T, offsets, order="C")
            if check and not self._mask_flat[flat].all():
                self._check_legal(idx)  # raises, naming the architecture and layer
            gathered = self._flat[flat]
            acc = gathered[0].copy()
            for row in gathered[1:]:  # left to right, the order expected() and a Python sum use
                acc += row
            out[s : s + len(acc)] = acc
        out += self.constant_ms
        return out

    def _check_resolution(self, archs: Sequence) -> None:
        for a in archs:
            arch = self.space.parse(a) if isinstance(a, str) else a
            if self.resolution is not None and arch.resolution not in (None, self.resolution):
                raise SpaceError(
                    f"this model was built at resolution {self.resolution}, the architecture asks for "
                    f"{arch.resolution}; build one model per resolution (latency_model(..., resolution=...))"
                )
            if arch.widths is not None and any(w is not None for w in arch.widths):
                raise SpaceError(
                    "score() prices each candidate at its default width; for @width architectures use "
                    "arch_latency(), which reads the table's width curves"
                )

    def arch_latency(self, arch) -> float:
        """Latency (ms) of one architecture; ``@mid`` widths are priced on the table's width curves."""
        if self.space is not None:
            a = self.space.parse(arch) if isinstance(arch, str) else arch
            if a.widths is not None and any(w is not None for w in a.widths):
                plain = type(a)(a.choices, a.resolution, None)
                self._check_resolution([plain])
                idx = self.indices([plain])[0]
                per_layer = self.values[np.arange(self.num_layers), idx].copy()
                for layer, (cand, width) in enumerate(zip(a.choices, a.widths)):
                    if width is not None:
                        per_layer[layer] = float(self.width_curve(layer, cand)(float(width)))
                total = 0.0
                for v in per_layer:
                    total += v
                return total + self.constant_ms
        return super().arch_latency(arch)

    # -- TF-NAS depth ------------------------------------------------------------
    def depth_expected(
        self,
        weights: torch.Tensor,
        depth_weights: torch.Tensor | Sequence[torch.Tensor],
        mids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Expected latency with sink-connecting depth weights (TF-NAS), optionally at elastic widths.

        Per stage ``s`` with layer latencies ``lat_1..lat_n`` (each the
        weighted sum over candidates), the stage costs
        ``Σ_d v_d · (lat_1 + … + lat_d)``: ``v_d`` is the weight of keeping
        the first ``d`` layers. The first ``space.min_depth`` layers are
        always kept, so ``v_d`` must be 0 for ``d < min_depth``.

        Parameters
        ----------
        weights : Tensor ``[L, K]`` or ``[B, L, K]``
            Candidate weights per layer.
        depth_weights : list of ``S`` tensors ``[n_s]`` or ``[B, n_s]``, or a tensor ``[S, Dmax]`` / ``[B, S, Dmax]``
            Entry ``d - 1`` weighs depth ``d`` of stage ``s`` (``n_s`` its
            number of layers); entries past ``n_s`` must be 0.
        mids : Tensor ``[L, K]`` or ``[B, L, K]``, optional
            Current mid channels of every candidate (TF-NAS's α loss prices
            each candidate at its elastic width): each cell is then priced on
            its width curve as in :meth:`width_expected`. Omitted, every cell
            has its default width.

        Returns
        -------
        Tensor ``[]`` or ``[B]``
            Latency in ms, constant included.

        Notes
        -----
        Computed as ``Σ_l keep_l · lat_l`` with ``keep_l = Σ_{d ≥ p_l} v_d``
        (``p_l`` the layer's 1-based position in its stage), the same sum
        regrouped. The layer sum runs left to right in float64, so one-hot
        candidate and depth weights give exactly ``arch_latency`` of the
        architecture whose dropped layers are ``skip`` (with ``@mid`` widths
        where ``mids`` is given): a dropped layer adds an exact 0.
        """
        if self.space is None:
            raise ConfigError("depth_expected needs the space's stage structure; build the model with a space")
        sizes = [st.layers for st in self.space.stages]
        per_layer = self.layer_latency(weights, mids)  # [..., L]
        v = self._depth_matrix(depth_weights, sizes, per_layer)  # [..., S, Dmax]
        if self._depth_index is None:
            stage_of, pos_of = [], []
            for s, n in enumerate(sizes):
                stage_of += [s] * n
                pos_of += list(range(n))
            self._depth_index = np.array([stage_of, pos_of], dtype=np.int64)  # [2, L]
        keep_all = v.flip(-1).cumsum(-1).flip(-1)  # [..., S, Dmax]: weight of keeping at least d layers
        index = torch.as_tensor(self._depth_index, device=per_layer.device)
        keep = keep_all[..., index[0], index[1]].to(per_layer.dtype)  # [..., L]
        return (keep * per_layer).cumsum(-1)[..., -1] + self.constant_ms

    def _depth_matrix(self, depth_weights, sizes: list[int], like: torch.Tensor) -> torch.Tensor:
        n_stages, dmax = len(sizes), max(sizes)
        if isinstance(depth_weights, torch.Tensor):
            v = depth_weights
            if v.dim() not in (2, 3) or v.shape[-2:] != (n_stages, dmax):
                raise SpaceError(
                    f"depth_weights have shape {tuple(v.shape)}; expected [S, Dmax] = [{n_stages}, {dmax}] "
                    f"(or [B, S, Dmax]) for {self.space.name}"
                )
        else:
            stages = list(depth_weights)
            if len(stages) != n_stages:
                raise SpaceError(f"{self.space.name} has {n_stages} stages, got {len(stages)} depth weight vectors")
            rows = []
            for s, (vec, n) in enumerate(zip(stages, sizes)):
                vec = torch.as_tensor(vec, dtype=like.dtype, device=like.device)
                if vec.shape[-1] != n:
                    raise SpaceError(f"stage {s} has {n} layers; its depth weights have {vec.shape[-1]} entries")
                rows.append(torch.nn.functional.pad(vec, (0, dmax - n)))
            v = torch.stack(rows, -2)
        pad = np.zeros((n_stages, dmax), dtype=bool)
        for s, n in enumerate(sizes):
            pad[s, n:] = True
            pad[s, : self.space.min_depth - 1] = True
        if bool((v.detach() * torch.as_tensor(pad, dtype=v.dtype, device=v.device)).any()):
            raise SpaceError(
                f"depth weights must be 0 past a stage's length and below min_depth={self.space.min_depth} "
                "(those layers are always kept)"
            )
        return v

    # -- TF-NAS width ------------------------------------------------------------
    def width_curve(self, layer: int, candidate: str) -> WidthCurve:
        """Monotone latency-vs-mid-channels curve of ``candidate`` at ``layer`` (cached).

        Needs the source table to hold measurements at several mid channel
        counts (``table.width_curve(space, layer, candidate)``).
        """
        key = (layer, candidate)
        curve = self._curves.get(key)
        if curve is None:
            if self.table is None or not hasattr(self.table, "width_curve"):
                raise ConfigError(
                    "this model has no source table with width measurements; build it with "
                    "latency_model(table) from a table measured with a width sweep"
                )
            from hwprof.latency.width import WidthCurve

            mids, ms = self.table.width_curve(self.space, layer, candidate)
            curve = WidthCurve.fit(mids, ms)
            self._curves[key] = curve
        return curve

    def width_expected(self, weights: torch.Tensor, mids: torch.Tensor) -> torch.Tensor:
        """Expected latency with an elastic mid-channel count per candidate (TF-NAS elasticity).

        ``Σ_l Σ_k w[l, k] · curve[l, k](mids[l, k]) + constant``, where
        ``curve[l, k]`` is the monotone width curve of candidate ``k`` at
        layer ``l`` (:meth:`width_curve`); cells without a width (``skip``,
        illegal) use the table value and ignore ``mids``.

        Parameters
        ----------
        weights : Tensor ``[L, K]`` or ``[B, L, K]``
        mids : Tensor ``[L, K]`` or ``[B, L, K]``
            Mid channels per candidate, integer or real (differentiable).

        Returns
        -------
        Tensor ``[]`` or ``[B]``, ms.
        """
        self._check_weights(weights)
        ms = self._width_ms(mids, weights)
        return (weights * ms).sum(-1).cumsum(-1)[..., -1] + self.constant_ms

    def _width_ms(self, mids: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Latency ``[..., L, K]`` ms of every cell at ``mids`` (table value where a cell has no width)."""
        if self._grid is None:
            from hwprof.latency.width import WidthGrid

            if self.space is None or self.space.width != "mid":
                raise ConfigError("elastic widths need a space with elastic mid channels (tfnas)")
            curves = {
                (layer, col): self.width_curve(layer, cand)
                for layer in range(self.num_layers)
                for col, cand in enumerate(self.space.candidates)
                if self.mask[layer, col] and cand != "skip"
            }
            self._grid = WidthGrid(curves, self.values)
        if not isinstance(mids, torch.Tensor):
            mids = torch.as_tensor(np.asarray(mids), device=like.device)
        return self._grid.torch(mids.to(device=like.device, dtype=like.dtype))


__all__ = ["TableLatencyModel"]
