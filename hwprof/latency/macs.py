"""An additive cost model of MACs, for constraint checks in evolutionary search (SPOS).

SPOS rejects every candidate over a FLOPs limit *before* evaluating it, and
its constraint-bin sampling draws archs until one falls in a bin: thousands of
cost queries per generation. ``space.macs`` walks the ops of one architecture
at a time; the MACs of a network are additive over its layers, so the same
numbers fit a :class:`TableLatencyModel` whose cells are each candidate's MACs
and whose batched :meth:`~TableLatencyModel.score` prices ``int [N, L]``
architectures in one numpy pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hwprof.errors import SpaceError
from hwprof.latency.table import TableLatencyModel

if TYPE_CHECKING:
    from hwprof.spaces import Space


def macs_model(space: Space, resolution: int | None = None) -> TableLatencyModel:
    """The MACs of a space's architectures as an additive table, in **millions of MACs (MMACs)**.

    The model speaks the latency-model API, but its unit is MMACs, not ms:
    ``values[l, k]`` is the MACs of candidate ``k`` at searchable layer ``l``
    divided by 1e6, ``constant_ms`` the MACs of the fixed layers (stem and
    head) divided by 1e6 (the attribute keeps its generic name; the unit is
    MMACs here). ``score(idx)`` then gives ``space.macs(arch) / 1e6`` of many
    architectures at once, equal to it up to float64 rounding (relative
    ~1e-15): the per-layer integers are exact, only the divisions and the sum
    round.

    Parameters
    ----------
    space : Space
        The search space.
    resolution : int, optional
        Input resolution; defaults to the space's largest. Spaces with
        elastic resolution need one model per resolution.

    Returns
    -------
    TableLatencyModel
        ``values`` float64 ``[L, K]`` MMACs (0 on illegal cells), ``constant_ms``
        the fixed layers' MMACs, ``source = {"kind": "macs", "unit": "MMACs", ...}``.

    Raises
    ------
    SpaceError
        For a resolution the space does not allow.

    Notes
    -----
    Candidates are priced at their default width: architectures with
    ``@width`` tokens (SPOS channel multipliers, TF-NAS mids) need
    ``space.macs``.

    Examples
    --------
    >>> cost = macs_model(hwprof.space("spos"))            # doctest: +SKIP
    >>> cost.score(idx) <= 330.0                            # doctest: +SKIP  (FLOPs ≤ 330 M)
    """
    res = resolution or space.default_resolution
    if res not in space.resolutions:
        raise SpaceError(f"resolution {res} is not allowed in {space.name}; allowed: {space.resolutions}")
    values = np.zeros((space.num_layers, space.max_choices), dtype=np.float64)
    for layer, row in enumerate(space.choice_ops(res)):
        for col, op in enumerate(row):
            if op is not None:
                values[layer, col] = op.macs() / 1e6
    constant = sum(op.macs() for op in space.fixed_ops(res)) / 1e6
    model = TableLatencyModel(
        values, space.mask, constant, space, res if space.elastic_resolution else None, strict=True
    )
    model.source = {"kind": "macs", "unit": "MMACs", "name": f"MACs of {space.name} at {res}", "resolution": res}
    return model


__all__ = ["macs_model"]
