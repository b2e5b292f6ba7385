"""Readers and writers of the latency tables that papers' code published, one module per format.

=====================  =========================================================
format                 what it reads
=====================  =========================================================
``proxylessnas-yaml``  ProxylessNAS LatencyEstimator YAML: ``key: {mean: ms, std: ms}``
``ofa-yaml``           Once-for-All MBv3 latency-table YAML (same layout)
``tfnas-pkl``          TF-NAS pickle ``{'base': ms, block key: {mid: ms}}``
``spnas-json``         Single-Path NAS runtime model ``{"<block>": {"<cand>": ms}}``
=====================  =========================================================

YAML key grammar (ProxylessNAS and OFA)::

    <type>-input:<H>x<W>x<C>-output:<H>x<W>x<C>[-expand:<e>-kernel:<k>-stride:<s>-idskip:<0|1>[-se:<0|1>-hs:<0|1>]]

``type`` is ``Conv`` (3×3 stem conv), ``Conv_1`` (1×1 conv before the pool),
``Conv_2`` (OFA: 1×1 conv after the pool), ``AvgPool2D`` (OFA), ``Logits``
(ProxylessNAS: global pool + FC, output ``<classes>``; OFA: FC only) or
``expanded_conv`` (MBConv; ``expand`` is the expansion ratio in ProxylessNAS
and the mid-channel count in OFA; ``se``/``hs`` only in OFA). ProxylessNAS
keys carry no activation: ReLU6 throughout. A ProxylessNAS ``Logits`` entry is
stored on the pool op of its input size and its FC op gets 0 ms, so tables
of several resolutions stay distinct; the exporter folds them back.

Pickles are read by :class:`~hwprof.tables.formats.safe_pickle.RestrictedUnpickler`, which refuses every global
but builtin containers and numbers, so a hostile file cannot run code.

The registry :data:`FORMATS` names every format with the file suffixes it
comes in; :func:`sniff` tells which one a file holds (the one route the CLI's
``import`` and :func:`hwprof.latency_model` share). The LightNAS MLP state dict
is a predictor, read by :mod:`hwprof.predictors.lightnas_mlp`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hwprof.tables.formats.latency_yaml import export_proxylessnas_yaml, import_ofa_yaml, import_proxylessnas_yaml
from hwprof.tables.formats.safe_pickle import RestrictedUnpickler, safe_pickle_loads
from hwprof.tables.formats.spnas_json import SPNAS_CONSTANT_MS, import_spnas_json
from hwprof.tables.formats.tfnas_pkl import import_tfnas_pickle
from hwprof.tables.table import LatencyTable


@dataclass(frozen=True)
class Format:
    """One published table format.

    Attributes
    ----------
    name : str
        The name the CLI takes (``hwprof import NAME``).
    suffixes : tuple of str
        File suffixes it comes in (lower case, with the dot).
    read : callable
        ``read(path, **options) -> LatencyTable``.
    write : callable or None
        ``write(table, path) -> Path`` where hwprof can write the format.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[..., LatencyTable]
    write: Callable[[LatencyTable, str | Path], Path] | None = None


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("proxylessnas-yaml", (".yaml", ".yml"), import_proxylessnas_yaml, export_proxylessnas_yaml),
        Format("ofa-yaml", (".yaml", ".yml"), import_ofa_yaml),
        Format("tfnas-pkl", (".pkl", ".pickle"), import_tfnas_pickle),
        Format("spnas-json", (".json",), import_spnas_json),
    )
}
TABLE_IMPORTERS: dict[str, Callable[..., LatencyTable]] = {n: f.read for n, f in FORMATS.items()}
EXPORTERS: dict[str, Callable[[LatencyTable, str | Path], Path]] = {
    n: f.write for n, f in FORMATS.items() if f.write is not None
}


def sniff(path: str | Path, doc: Any = None) -> str | None:
    """The published format ``path`` holds, or None (an hwprof file, or unknown).

    Decided by suffix, and for YAML and JSON by a look at the content: OFA
    keys carry ``-se:``/``-hs:`` or ``AvgPool2D``; a Single-Path NAS model is
    a JSON object keyed by block numbers. ``doc`` is the JSON already parsed, if any.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return "tfnas-pkl"
    if suffix in (".yaml", ".yml"):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return "proxylessnas-yaml"
        return "ofa-yaml" if ("-se:" in text or "AvgPool2D" in text) else "proxylessnas-yaml"
    if suffix == ".json":
        if doc is None:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
        if isinstance(doc, dict) and doc and all(str(k).replace("layer", "").strip().isdigit() for k in doc):
            return "spnas-json"
    return None


__all__ = [
    "EXPORTERS",
    "FORMATS",
    "Format",
    "RestrictedUnpickler",
    "SPNAS_CONSTANT_MS",
    "TABLE_IMPORTERS",
    "export_proxylessnas_yaml",
    "import_ofa_yaml",
    "import_proxylessnas_yaml",
    "import_spnas_json",
    "import_tfnas_pickle",
    "safe_pickle_loads",
    "sniff",
]
