"""The one route from a file to a latency source: an hwprof table, an hwprof predictor,
or a file a paper published (ProxylessNAS/OFA YAML, TF-NAS pickle, Single-Path NAS JSON,
LightNAS MLP state dict).

Both :func:`hwprof.latency_model` and the CLI (``predict``, ``evaluate``, ``search``)
read files through :func:`load_source`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hwprof.errors import ConfigError

#: Suffixes of the published predictor format (the LightNAS MLP checkpoint).
_TORCH_SUFFIXES = (".tar", ".pth", ".pt")


def describe_file(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256", "name"}`` of a latency file, for reports."""
    path = Path(path)
    return {"path": str(path), "name": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def load_source(path: str | Path) -> Any:
    """The :class:`~hwprof.tables.LatencyTable` or fitted predictor that ``path`` holds.

    An hwprof JSON file is parsed once: the document that tells its kind is
    the one the table or predictor is built from.
    """
    from hwprof.predictors import PREDICTOR_IMPORTERS, load_predictor, predictor_from_document
    from hwprof.predictors.base import document_from_json
    from hwprof.tables.formats import FORMATS
    from hwprof.tables.table import table_from_dict

    path = Path(path)
    kind, doc = _identify(path)
    if kind == "table":
        return table_from_dict(doc, str(path))
    if kind == "predictor":
        return predictor_from_document(document_from_json(doc, path)) if doc is not None else load_predictor(path)
    if kind in PREDICTOR_IMPORTERS:
        return PREDICTOR_IMPORTERS[kind](path)
    return FORMATS[kind].read(path)


def _identify(path: Path) -> tuple[str, Any]:
    """The file's kind, and its parsed JSON document where it is hwprof JSON (else None)."""
    from hwprof.predictors import PREDICTOR_IMPORTERS
    from hwprof.tables import FORMAT as TABLE_FORMAT
    from hwprof.tables.formats import sniff

    if not path.is_file():
        raise ConfigError(f"no such table or predictor file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "predictor", None
    if suffix in _TORCH_SUFFIXES:
        return next(iter(PREDICTOR_IMPORTERS)), None
    if suffix != ".json":
        published = sniff(path)
        if published is not None:
            return published, None
    try:
        doc: Any = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise ConfigError(
            f"{path} is neither a latency table nor a predictor: not JSON, and not a format hwprof imports "
            "(.yaml ProxylessNAS/OFA, .pkl TF-NAS, .json Single-Path NAS, .pth.tar LightNAS, .npz predictor)"
        ) from None
    if isinstance(doc, dict) and doc.get("format") == TABLE_FORMAT:
        return "table", doc
    if isinstance(doc, dict) and "kind" in doc:
        return "predictor", doc
    if sniff(path, doc) == "spnas-json":
        return "spnas-json", None
    raise ConfigError(f"{path} is JSON but neither an hwprof table (format {TABLE_FORMAT!r}) nor a predictor (no 'kind')")
