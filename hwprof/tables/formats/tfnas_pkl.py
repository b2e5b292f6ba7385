"""TF-NAS latency pickle ``{'base': ms, block key: {mid: ms}}`` (``tfnas-pkl``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from hwprof.errors import ConfigError
from hwprof.spaces.ops import OpSpec
from hwprof.tables.formats.safe_pickle import read_file, safe_pickle_loads
from hwprof.tables.table import KEYED_OP, LatencyTable

_TFNAS_KEY = re.compile(r"^MBInvertedResBlock_(\d+)_(\d+)_(\d+)_(\d+)_k(\d+)_s(\d+)_(\w+)$")


def import_tfnas_pickle(path: str | Path, batch: int = 1, device: str = "", space: str = "tfnas") -> LatencyTable:
    """TF-NAS table: ``MBInvertedResBlock_<H>_<Cin>_<SE>_<Cout>_k<K>_s<S>_<act>`` → {mid: ms}.

    Every (block, mid) pair becomes an ``mbconv`` op key at ``batch`` (the
    pickle does not record it: TF-NAS's GPU table is batch 32, its CPU table
    batch 1); ``base`` becomes the constant.
    """
    data = safe_pickle_loads(read_file(path, "rb"))
    if not isinstance(data, Mapping) or "base" not in data:
        raise ConfigError(f"{path} is not a TF-NAS latency table (no 'base' entry)")
    entries: dict[str, float] = {}
    for key, curve in data.items():
        if key == "base":
            continue
        m = _TFNAS_KEY.match(str(key))
        if m is None or not isinstance(curve, Mapping):
            raise ConfigError(
                f"unexpected TF-NAS key {key!r} in {path}; expected MBInvertedResBlock_<H>_<Cin>_<SE>_<Cout>_k<K>_s<S>_<act>"
            )
        h, cin, se, cout, k, s = (int(x) for x in m.groups()[:6])
        for mid, ms in curve.items():
            if not isinstance(mid, int) or not isinstance(ms, (int, float)):
                raise ConfigError(f"{path}: {key} maps {mid!r} → {ms!r}; expected int mid channels → ms")
            op = OpSpec("mbconv", h, h, cin, cout, mid, k, s, 1, se, m.group(7), batch)
            entries[op.encode()] = float(ms)
    meta = {"device": device, "batch": batch, "statistic": "", "runtime": "", "space": space,
            "source": f"TF-NAS pickle {Path(path).name}", "keyed": KEYED_OP}
    if any(v < 0 for v in entries.values()):
        meta["negative_entries"] = True  # TF-NAS's entries are differences of measurements; some are below 0
    return LatencyTable(entries, float(data["base"]), meta)
