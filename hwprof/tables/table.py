"""Lookup tables: latency (ms) per operator or per layer position, for one device.

A :class:`LatencyTable` maps keys to milliseconds and carries the constant for
the fixed layers of a space plus the metadata it was built under. Two key
styles exist:

``op``
    Canonical :mod:`hwprof.spaces.ops` keys (ProxylessNAS, OFA, TF-NAS, hwprof's own
    campaigns). The cell of layer ``l`` × candidate ``c`` of a space is the key
    of ``space.candidate_op(...)`` at the table's batch size.
``layer``
    Layer positions (Single-Path NAS): ``layer<l>:<candidate>``, ``l`` the
    0-based searchable-layer index of the space.

Both give the same ``[L, K]`` view of a space (:meth:`LatencyTable.matrix`);
an identity ``skip`` costs 0 ms and is never looked up. A missing key raises
:class:`~hwprof.errors.MissingEntryError`; it is never priced by a default.

File format versions
--------------------
1  JSON object ``{"format": "hwprof-latency-table", "format_version": 1,
   "constant_ms", "metadata", "entries": {key: ms}}``.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from hwprof.errors import ConfigError, MissingEntryError, SpaceError
from hwprof.measure.records import latencies_by_key, KIND_OP, Measurement, check_compatible
from hwprof.measure.repeatability import of_records
from hwprof.spaces.ops import OpSpec, decode
from hwprof.spaces import Arch, LayerGeom, Space

FORMAT = "hwprof-latency-table"
FORMAT_VERSION = 1
CHANGELOG: dict[int, str] = {1: "first version: entries, constant_ms, metadata (device, batch, statistic, keyed, ...)"}

KEYED_OP = "op"
KEYED_LAYER = "layer"
_MID = re.compile(r":m\d+:")


def layer_key(layer: int, candidate: str) -> str:
    """Key of a layer-position table: ``layer<l>:<candidate>``."""
    return f"layer{layer}:{candidate}"


#: Largest latency a table entry may hold (ms, about 17 minutes): anything above is a unit or file error.
MAX_ENTRY_MS = 1e6


@dataclass(frozen=True)
class LatencyTable:
    """Latency per key (ms) of one device, plus the constant of the fixed layers.

    Attributes
    ----------
    entries : Mapping[str, float]
        Key → latency in ms (op keys or ``layer<l>:<cand>`` keys, see ``keyed``).
    constant_ms : float
        Latency of the fixed layers (stem, head) at the space's default
        resolution, used when the table does not hold those ops itself.
    metadata : Mapping[str, Any]
        ``device``, ``batch``, ``statistic``, ``runtime``, ``space``,
        ``source``, ``keyed`` (``"op"`` or ``"layer"``) and anything else the
        builder recorded.
    """

    entries: Mapping[str, float]
    constant_ms: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keyed = self.metadata.get("keyed", KEYED_OP)
        if keyed not in (KEYED_OP, KEYED_LAYER):
            raise ConfigError(f"table metadata keyed={keyed!r}; allowed: {KEYED_OP}, {KEYED_LAYER}")
        # A published table may hold differences of two measurements, slightly below 0 (TF-NAS's pickle):
        # its importer says so in the metadata; anywhere else a negative latency is a file error.
        low = -MAX_ENTRY_MS if self.metadata.get("negative_entries") else 0.0
        for k, v in self.entries.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not low <= v <= MAX_ENTRY_MS:
                raise ConfigError(
                    f"table entry {str(k)[:100]!r} is {repr(v)[:100]}; latencies must be numbers in ms "
                    f"from {low:g} to {MAX_ENTRY_MS:g}"
                )
        c = self.constant_ms
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c) or abs(c) > MAX_ENTRY_MS:
            raise ConfigError(f"table constant_ms is {repr(c)[:100]}; it must be a finite number of ms")

    # -- metadata ----------------------------------------------------------------
    @property
    def keyed(self) -> str:
        return str(self.metadata.get("keyed", KEYED_OP))

    @property
    def batch(self) -> int:
        return int(self.metadata.get("batch", 1))

    @property
    def device(self) -> str:
        return str(self.metadata.get("device", ""))

    @property
    def space(self) -> str:
        return str(self.metadata.get("space", ""))

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    # -- lookups -------------------------------------------------------------------
    def lookup(self, key: str) -> float:
        """Latency (ms) of ``key``.

        Raises
        ------
        MissingEntryError
            Naming the key and the nearest keys the table holds.
        """
        try:
            return float(self.entries[key])
        except KeyError:
            near = difflib.get_close_matches(key, list(self.entries), n=3, cutoff=0.5)
            hint = f"; nearest present: {', '.join(near)}" if near else ""
            raise MissingEntryError(
                f"no entry {key!r} in the latency table of device {self.device or '?'} "
                f"({len(self.entries)} entries){hint}. Measure it (hwprof measure --ops) or use a table "
                "built for this space and batch size."
            ) from None

    def cell_key(self, space: Space, geom: LayerGeom, candidate: str, width: int | float | None = None) -> str | None:
        """Key of ``candidate`` at layer ``geom`` of ``space``; None for an identity skip (0 ms)."""
        if self.keyed == KEYED_LAYER:
            if width is not None:
                raise SpaceError("a layer-position table has no entries for elastic widths")
            if candidate == "skip" and geom.is_identity:
                return None
            return layer_key(geom.index, candidate)
        op = space.candidate_op(geom, candidate, width, self.batch)
        return None if op.kind == "skip" else op.encode()

    def _cell(self, space: Space, geom: LayerGeom, candidate: str, width=None) -> float:
        key = self.cell_key(space, geom, candidate, width)
        return 0.0 if key is None else self.lookup(key)

    def fixed_ms(self, space: Space, resolution: int | None = None) -> float:
        """Latency (ms) of the fixed layers of ``space`` at ``resolution``.

        The sum of the fixed ops' entries when the table holds all of them,
        else :attr:`constant_ms` (valid at the space's default resolution only).
        """
        if self.keyed == KEYED_OP:
            keys = [op.encode() for op in space.fixed_ops(resolution, self.batch) if op.kind != "skip"]
            if all(k in self.entries for k in keys):
                return float(sum(self.entries[k] for k in keys))
        if resolution not in (None, space.default_resolution):
            raise MissingEntryError(
                f"the table holds no fixed-layer ops of {space.name} at resolution {resolution}, and its "
                f"constant_ms is for {space.default_resolution}; measure the stem and head ops at that resolution"
            )
        return float(self.constant_ms)

    def arch_latency(self, space: Space, arch: Arch | str) -> float:
        """LUT sum of ``arch`` plus the fixed layers, in ms: its cells of :meth:`matrix`.

        A layer with an ``@width`` is priced by the entry of its op at that width.
        """
        arch = space.parse(arch) if isinstance(arch, str) else arch
        space.validate(arch)
        values, _, constant_ms = self.matrix(space, arch.resolution)
        cells = values[np.arange(space.num_layers), space.indices(arch)].tolist()
        if arch.widths is not None:
            geoms = space.geometry(arch.resolution)
            for layer, (cand, width) in enumerate(zip(arch.choices, arch.widths)):
                if width is not None:
                    cells[layer] = self._cell(space, geoms[layer], cand, width)
        return float(sum(cells) + constant_ms)

    def matrix(self, space: Space, resolution: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """The ``[L, K]`` view of ``space``.

        Returns
        -------
        values : ndarray of float64, shape [L, K]
            Latency in ms of candidate ``k`` at layer ``l``; 0 where masked and
            for identity skips.
        mask : ndarray of bool, shape [L, K]
            Legal candidates (``space.mask``).
        constant_ms : float
            Fixed layers at ``resolution``.
        """
        mask = space.mask.copy()
        values = np.zeros(mask.shape, dtype=np.float64)
        for g in space.geometry(resolution):
            for j, cand in enumerate(space.candidates):
                if mask[g.index, j]:
                    values[g.index, j] = self._cell(space, g, cand)
        return values, mask, self.fixed_ms(space, resolution)

    def missing(self, space: Space, resolution: int | None = None) -> list[str]:
        """Keys the ``[L, K]`` view of ``space`` needs and the table lacks."""
        out = []
        for g in space.geometry(resolution):
            for j, cand in enumerate(space.candidates):
                if space.mask[g.index, j]:
                    key = self.cell_key(space, g, cand)
                    if key is not None and key not in self.entries:
                        out.append(key)
        return out

    @cached_property
    def _width_index(self) -> dict[str, list[tuple[int, float]]]:
        index: dict[str, list[tuple[int, float]]] = {}
        for key, ms in self.entries.items():
            if _MID.search(key):
                index.setdefault(_MID.sub(":m*:", key, count=1), []).append((decode(key).mid, float(ms)))
        return index

    def width_curve(self, space: Space, layer: int, candidate: str) -> tuple[np.ndarray, np.ndarray]:
        """Latency of ``candidate`` at ``layer`` for every mid-channel count the table holds.

        Returns
        -------
        mids : ndarray of int64, shape [M]
            Mid (expanded) channel counts, ascending.
        latency_ms : ndarray of float64, shape [M]

        Raises
        ------
        MissingEntryError
            When the table holds no entry of that block at any width.
        """
        if self.keyed != KEYED_OP:
            raise MissingEntryError("a layer-position table has no width sweep; import a TF-NAS style table")
        geom = space.geometry()[layer]
        op = space.candidate_op(geom, candidate, batch=self.batch)
        if op.kind != "mbconv":
            raise SpaceError(f"{candidate} at layer {layer} of {space.name} has no mid channels to sweep")
        pattern = _MID.sub(":m*:", op.encode(), count=1)
        points = sorted(self._width_index.get(pattern, []))
        if not points:
            self.lookup(op.encode())  # raises naming the nearest keys
        mids = np.array([m for m, _ in points], dtype=np.int64)
        return mids, np.array([v for _, v in points], dtype=np.float64)

    # -- files --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "constant_ms": float(self.constant_ms),
            "metadata": dict(self.metadata),
            "entries": {k: float(v) for k, v in sorted(self.entries.items())},
        }

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (see the module docstring for the format)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def table_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> LatencyTable:
    """Inverse of :meth:`LatencyTable.to_dict`; raises :class:`ConfigError` on a foreign object."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ConfigError(f"{source} is not an hwprof latency table (no format {FORMAT!r})")
    version = data.get("format_version")
    if version not in CHANGELOG:
        raise ConfigError(
            f"{source} has latency-table format version {version!r}; this hwprof reads {sorted(CHANGELOG)}. "
            "Upgrade hwprof."
        )
    entries = data.get("entries")
    if not isinstance(entries, Mapping):
        raise ConfigError(f"{source}: 'entries' must be an object of key → ms")
    constant = data.get("constant_ms", 0.0)
    metadata = data.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"{source}: 'metadata' must be an object")
    try:
        return LatencyTable(
            {str(k): (float(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in entries.items()},
            float(constant) if isinstance(constant, int) and not isinstance(constant, bool) else constant,
            dict(metadata),
        )
    except ConfigError as exc:
        raise ConfigError(f"{str(source)[:100]}: {exc}") from None


def load_table(path: str | Path) -> LatencyTable:
    """Read a table written by :meth:`LatencyTable.save`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"latency table {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not JSON ({exc}); give a table written by hwprof lut build/import") from None
    return table_from_dict(data, str(path))


def build_table(
    records: Iterable[Measurement],
    space: Space | None = None,
    statistic: str = "median",
    source: str = "",
    metric: str = "latency",
) -> LatencyTable:
    """Latency table (or, with ``metric="energy"``, energy table) from op records of one device.

    Parameters
    ----------
    records : iterable of Measurement
        Op records (``kind == "op"``); arch records are ignored. Every record
        must share one fingerprint: tables never mix environments.
    space : Space, optional
        When given, the constant is the sum of the space's fixed ops, and every
        cell of its ``[L, K]`` view must be present.
    statistic : str
        ``median`` (default), ``mean``, ``min`` or ``p90`` of the raw samples;
        with repeated records (rounds) of one key, the median of their
        statistics (:func:`hwprof.measure.stats.combine`).
    metric : {"latency", "energy"}
        ``energy``: entries are energy per inference in mJ
        (:mod:`hwprof.measure.energy`; every record needs a power measurement);
        the metadata says ``metric`` and ``unit``.

    The metadata's ``repeatability`` holds the table's estimate of its own
    repeatability (:mod:`hwprof.measure.repeatability`) from the spread of the rounds.

    Raises
    ------
    FingerprintMismatchError
        When records come from different environments (names the field).
    MissingEntryError
        When ``space`` is given and cells or fixed ops are missing.
    """
    ops = [m for m in records if m.kind == KIND_OP]
    if not ops:
        raise MissingEntryError("no op records to build a table from; run hwprof measure --ops first")
    first = ops[0]
    for m in ops[1:]:
        check_compatible(first.fingerprint, m.fingerprint, f"op records {first.key!r} and {m.key!r}")
    from hwprof.measure.energy import METRICS, energies_by_key

    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    try:
        entries = latencies_by_key(ops, statistic) if metric == "latency" else energies_by_key(ops, statistic)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    fp = dict(first.fingerprint)
    batch = int(fp.get("batch", 1))
    metadata: dict[str, Any] = {
        "device": first.device,
        "batch": batch,
        "statistic": statistic,
        "runtime": f"{fp.get('runtime', '')} {fp.get('runtime_version', '')}".strip(),
        "space": space.name if space is not None else "",
        "source": source,
        "keyed": KEYED_OP,
        "fingerprint": fp,
    }
    if metric != "latency":  # a latency table's metadata stays as it was
        metadata.update(metric=metric, unit=METRICS[metric])
    rep = of_records(ops, statistic)  # how far a re-measurement would fall, from the spread of the rounds
    if rep is not None:
        metadata["repeatability"] = rep.to_dict()
    table = LatencyTable(entries, 0.0, metadata)
    if space is None:
        return table
    missing = table.missing(space)
    fixed = [op.encode() for op in space.fixed_ops(batch=batch) if op.kind != "skip"]
    missing += [k for k in fixed if k not in entries]
    if missing:
        raise MissingEntryError(
            f"{len(missing)} ops of space {space.name} are not in the store for device {first.device}, e.g. "
            f"{', '.join(missing[:3])}. Measure them: hwprof measure --device {first.device} --space {space.name} --ops"
        )
    return LatencyTable(entries, float(sum(entries[k] for k in fixed)), metadata)


def table_from_ops(ops: Mapping[OpSpec, float], constant_ms: float = 0.0, **metadata: Any) -> LatencyTable:
    """Table from OpSpec → ms (keys are encoded)."""
    metadata.setdefault("keyed", KEYED_OP)
    return LatencyTable({op.encode(): float(v) for op, v in ops.items()}, constant_ms, metadata)


__all__ = [
    "CHANGELOG",
    "FORMAT_VERSION",
    "LatencyTable",
    "build_table",
    "layer_key",
    "load_table",
    "table_from_dict",
    "table_from_ops",
]
