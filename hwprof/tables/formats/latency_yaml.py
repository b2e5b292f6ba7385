"""ProxylessNAS and Once-for-All latency YAML (``proxylessnas-yaml``, ``ofa-yaml``); see the grammar in :mod:`hwprof.tables.formats`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from hwprof.errors import ConfigError, require
from hwprof.spaces.ops import OpSpec, decode
from hwprof.spaces.space import _make_divisible
from hwprof.tables.formats.safe_pickle import read_file
from hwprof.tables.table import KEYED_OP, LatencyTable

_YAML_KEY = re.compile(r"^(?P<type>\w+)-input:(?P<inp>\d+(?:x\d+)*)-output:(?P<out>\d+(?:x\d+)*)(?P<rest>(?:-\w+:\d+)*)$")
_YAML_TYPES = ("Conv", "Conv_1", "Conv_2", "AvgPool2D", "Logits", "expanded_conv")


def _shape(text: str) -> list[int]:
    return [int(x) for x in text.split("x")]


def _yaml_ops(key: str, style: str, batch: int) -> dict[OpSpec, float] | None:
    """Ops of one YAML key with the share of the entry's latency each gets (1 or 0)."""
    m = _YAML_KEY.match(key)
    if m is None:
        raise ConfigError(f"bad latency-table key {_short(key)}; expected <type>-input:HxWxC-output:HxWxC[-name:int...]")
    kind, inp, out = m.group("type"), _shape(m.group("inp")), _shape(m.group("out"))
    attrs = {k: int(v) for k, v in re.findall(r"-(\w+):(\d+)", m.group("rest"))}
    act = "relu6" if style == "proxylessnas" else "hswish"
    if kind not in _YAML_TYPES:
        raise ConfigError(f"unknown layer type {kind!r} in key {key!r}; allowed: {', '.join(_YAML_TYPES)}")
    if kind == "Logits":
        classes = out[0]
        if style == "proxylessnas":  # pool + FC in one entry
            h, c = inp[0], inp[2]
            return {OpSpec("pool", h, h, c, c, batch=batch): 1.0, OpSpec("fc", 1, 1, c, classes, batch=batch): 0.0}
        return {OpSpec("fc", 1, 1, inp[-1], classes, batch=batch): 1.0}
    h, c, ho, co = inp[0], inp[2], out[0], out[2]
    stride = max(1, -(-h // ho))
    if kind == "AvgPool2D":
        return {OpSpec("pool", h, h, c, c, batch=batch): 1.0}
    if kind in ("Conv", "Conv_1", "Conv_2"):
        k = 3 if kind == "Conv" else 1
        return {OpSpec("conv", h, h, c, co, 0, k, stride, 1, 0, act, batch): 1.0}
    need = ("expand", "kernel", "stride", "idskip") + (("se", "hs") if style == "ofa" else ())
    if any(n not in attrs for n in need):
        raise ConfigError(f"expanded_conv key {key!r} lacks one of {', '.join(need)}")
    mid = attrs["expand"] if style == "ofa" else attrs["expand"] * c
    if style == "ofa":
        act = "hswish" if attrs["hs"] else "relu"
    se = _make_divisible(mid / 4, 8) if attrs.get("se") else 0
    op = OpSpec("mbconv", h, h, c, co, mid, attrs["kernel"], attrs["stride"], 1, se, act, batch)
    if bool(attrs["idskip"]) != op.residual:
        return None  # hwprof's mbconv has a residual exactly when shapes allow it
    return {op: 1.0}


def _no_alias_loader(yaml):
    """A ``SafeLoader`` that refuses aliases (``*name``).

    Latency tables never need them, and nested aliases expand exponentially:
    a few hundred bytes can stand for gigabytes (a "billion laughs" file).
    """

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not allowed in a latency table", event.start_mark
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:80] + f"... ({len(text)} characters)"


def _import_yaml(path: str | Path, style: str, device: str, batch: int, space: str) -> LatencyTable:
    yaml = require("yaml", "yaml")
    try:
        data = yaml.load(read_file(path), Loader=_no_alias_loader(yaml))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not a latency YAML ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of layer keys to latencies")
    entries: dict[str, float] = {}
    dropped: list[str] = []
    for key, value in data.items():
        ms = value.get("mean") if isinstance(value, Mapping) else value
        if not isinstance(ms, (int, float)):
            raise ConfigError(f"{path}: entry {_short(key)} has no numeric 'mean' (got {_short(value)})")
        ops = _yaml_ops(str(key), style, batch)
        if ops is None:
            dropped.append(str(key))
            continue
        for op, share in ops.items():
            if share:
                entries[op.encode()] = float(ms)
            else:  # the FC of a ProxylessNAS Logits entry: its time is on the pool op
                entries.setdefault(op.encode(), 0.0)
    meta = {"device": device, "batch": batch, "statistic": "mean", "runtime": "", "space": space,
            "source": f"{style} YAML {Path(path).name}", "keyed": KEYED_OP, "unrepresentable": dropped}
    return LatencyTable(entries, 0.0, meta)


def import_proxylessnas_yaml(path: str | Path, device: str = "", batch: int = 1, space: str = "proxylessnas") -> LatencyTable:
    """ProxylessNAS LatencyEstimator YAML (see the module docstring for the key grammar)."""
    return _import_yaml(path, "proxylessnas", device, batch, space)


def import_ofa_yaml(path: str | Path, device: str = "", batch: int = 1, space: str = "ofa-mbv3") -> LatencyTable:
    """Once-for-All MBv3 latency-table YAML (``expand`` = mid channels, ``se``, ``hs``)."""
    return _import_yaml(path, "ofa", device, batch, space)


def _hwc(h: int, c: int) -> str:
    return f"{h}x{h}x{c}"


def proxylessnas_yaml_entries(table: LatencyTable) -> dict[str, dict[str, float]]:
    """The ProxylessNAS YAML mapping of an op-keyed table (``key: {mean: ms}``).

    Raises
    ------
    ConfigError
        For ops the format cannot express (SE, grouped convs, activations
        other than ReLU6, kernels other than 3×3 stem / 1×1 convs, a mid
        count that is not a whole multiple of the input channels).
    """
    if table.keyed != KEYED_OP:
        raise ConfigError("only op-keyed tables export to ProxylessNAS YAML; a layer-position table has no shapes")
    out: dict[str, dict[str, float]] = {}
    bad: list[str] = []
    fcs: dict[int, list[tuple[OpSpec, float]]] = {}
    pools: list[tuple[OpSpec, float]] = []
    for key, ms in table.entries.items():
        op = decode(key)
        ho = op.out_hw[0]
        if op.kind == "skip":
            continue
        if op.kind == "fc" and op.act == "none":
            fcs.setdefault(op.cin, []).append((op, ms))
        elif op.kind == "pool":
            pools.append((op, ms))
        elif op.kind == "conv" and op.groups == 1 and op.act == "relu6" and op.kernel in (1, 3):
            name = "Conv" if op.kernel == 3 else "Conv_1"
            out[f"{name}-input:{_hwc(op.h, op.cin)}-output:{_hwc(ho, op.cout)}"] = {"mean": float(ms)}
        elif (op.kind == "mbconv" and op.groups == 1 and op.se == 0 and op.act == "relu6"
              and op.mid % op.cin == 0):
            out[
                f"expanded_conv-input:{_hwc(op.h, op.cin)}-output:{_hwc(ho, op.cout)}-expand:{op.mid // op.cin}"
                f"-kernel:{op.kernel}-stride:{op.stride}-idskip:{int(op.residual)}"
            ] = {"mean": float(ms)}
        else:
            bad.append(key)
    for pool, pool_ms in pools:
        matches = fcs.get(pool.cin)
        if not matches:
            bad.append(pool.encode())
        for fc, fc_ms in matches or []:
            out[f"Logits-input:{_hwc(pool.h, pool.cin)}-output:{fc.cout}"] = {"mean": float(pool_ms + fc_ms)}
    pooled = {p.cin for p, _ in pools}
    bad += [fc.encode() for cin, items in fcs.items() if cin not in pooled for fc, _ in items]
    if bad:
        raise ConfigError(
            f"{len(bad)} entries cannot be written as ProxylessNAS YAML (e.g. {bad[0]}); the format holds "
            "3×3 stem and 1×1 convs, ReLU6 MBConv without SE or groups, and pool+FC logits"
        )
    return out


def export_proxylessnas_yaml(table: LatencyTable, path: str | Path) -> Path:
    """Write ``table`` as ProxylessNAS LatencyEstimator YAML; re-imports to an equal table."""
    yaml = require("yaml", "yaml")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(proxylessnas_yaml_entries(table), sort_keys=True))
    return path
