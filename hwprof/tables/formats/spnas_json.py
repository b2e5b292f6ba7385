"""Single-Path NAS runtime model ``{"<block>": {"<cand>": ms}}`` (``spnas-json``).

The table it gives is marked ``metadata["model"] = "single-path-runtime"``:
:func:`hwprof.latency_model` turns it into a
:class:`~hwprof.latency.SinglePathRuntime`, which prices an architecture with
the paper's superkernel formula (``k3_e3`` as ``R[k5,e3]·r``), not as a plain
sum of the four columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from hwprof.errors import ConfigError
from hwprof.spaces import space as get_space
from hwprof.tables.formats.safe_pickle import read_file
from hwprof.tables.table import KEYED_LAYER, LatencyTable, layer_key

#: Single-Path NAS adds this for stem, head, classifier and blocks 0 and 21 (ms, Pixel 1).
SPNAS_CONSTANT_MS = 19.5999

_SPNAS_CANDS = ("k3_e3", "k3_e6", "k5_e3", "k5_e6")


def import_spnas_json(path: str | Path, device: str = "pixel1", constant_ms: float = SPNAS_CONSTANT_MS) -> LatencyTable:
    """Single-Path NAS runtime model as a layer-position table of the ``spnas`` space.

    Rows 1–20 are the searchable layers 0–19; rows 0 and 21 (fixed blocks)
    are covered by ``constant_ms`` as in the paper's code, and kept in the
    metadata only.
    """
    try:
        data = json.loads(read_file(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc})") from None
    if isinstance(data, Mapping):  # the released file's rows are "0".."21"; some copies write "layer 0"..
        data = {str(k).replace("layer", "").strip(): v for k, v in data.items()}
    sp = get_space("spnas")
    rows = {str(i) for i in range(sp.num_layers + 2)}
    if not isinstance(data, Mapping) or set(data) != rows:
        raise ConfigError(f"{path}: expected rows '0'..'{sp.num_layers + 1}' of the Single-Path NAS runtime model")
    entries: dict[str, float] = {}
    for row, cells in data.items():
        if not isinstance(cells, Mapping) or set(cells) != {"0", "1", "2", "3"}:
            raise ConfigError(f"{path}: row {row} must map '0'..'3' (k3e3, k3e6, k5e3, k5e6) to ms")
        layer = int(row) - 1
        if 0 <= layer < sp.num_layers:
            for col, ms in cells.items():
                entries[layer_key(layer, _SPNAS_CANDS[int(col)])] = float(ms)
    fixed = {f"block{r}": {_SPNAS_CANDS[int(c)]: float(v) for c, v in data[r].items()} for r in ("0", str(sp.num_layers + 1))}
    meta = {"device": device, "batch": 1, "statistic": "", "runtime": "TFLite", "space": "spnas",
            "source": f"Single-Path NAS runtime model {Path(path).name}", "keyed": KEYED_LAYER, "fixed_rows": fixed,
            "model": "single-path-runtime"}
    return LatencyTable(entries, float(constant_ms), meta)
