"""Importers and exporters of the latency tables and predictors papers' code published.

=====================  =========================================================
format                 what it reads
=====================  =========================================================
``proxylessnas-yaml``  ProxylessNAS LatencyEstimator YAML: ``key: {mean: ms, std: ms}``
``ofa-yaml``           Once-for-All MBv3 latency-table YAML (same layout)
``tfnas-pkl``          TF-NAS pickle ``{'base': ms, block key: {mid: ms}}``
``spnas-json``         Single-Path NAS runtime model ``{"<block>": {"<cand>": ms}}``
``lightnas-mlp``       LightNAS predictor state dict (``pred.0/2/4``), a predictor
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

Pickles are read by :class:`RestrictedUnpickler`, which refuses every global
but builtin containers and numbers, so a hostile file cannot run code.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from hwprof.errors import ConfigError, require
from hwprof.lut import KEYED_LAYER, KEYED_OP, LatencyTable, layer_key
from hwprof.ops import OpSpec, decode
from hwprof.spaces import _make_divisible, space as get_space

#: Single-Path NAS adds this for stem, head, classifier and blocks 0 and 21 (ms, Pixel 1).
SPNAS_CONSTANT_MS = 19.5999

_SAFE_GLOBALS = {
    ("builtins", n)
    for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes")
} | {("collections", "OrderedDict"), ("__builtin__", "dict"), ("__builtin__", "list"), ("__builtin__", "set")}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only builtin containers and numbers.

    Any other global (``os.system``, ``builtins.eval``, numpy, torch, ...)
    raises :class:`~hwprof.errors.ConfigError` before it can be called.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise ConfigError(
            f"refused to unpickle global {module}.{name}: latency pickles may hold only dicts, lists and "
            "numbers. The file is not a plain table (or is hostile); convert it to JSON with the tool that wrote it."
        )


def safe_pickle_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except ConfigError:
        raise
    except Exception as exc:  # a truncated or non-pickle file
        raise ConfigError(f"cannot read pickle ({type(exc).__name__}: {exc})") from None


def _read(path: str | Path, mode: str = "r"):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist or is not a file")
    return path.read_bytes() if mode == "rb" else path.read_text()


# -- TF-NAS -----------------------------------------------------------------------------
_TFNAS_KEY = re.compile(r"^MBInvertedResBlock_(\d+)_(\d+)_(\d+)_(\d+)_k(\d+)_s(\d+)_(\w+)$")


def import_tfnas_pickle(path: str | Path, batch: int = 1, device: str = "", space: str = "tfnas") -> LatencyTable:
    """TF-NAS table: ``MBInvertedResBlock_<H>_<Cin>_<SE>_<Cout>_k<K>_s<S>_<act>`` → {mid: ms}.

    Every (block, mid) pair becomes an ``mbconv`` op key at ``batch`` (the
    pickle does not record it: TF-NAS's GPU table is batch 32, its CPU table
    batch 1); ``base`` becomes the constant.
    """
    data = safe_pickle_loads(_read(path, "rb"))
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
    return LatencyTable(entries, float(data["base"]), meta)


# -- Single-Path NAS --------------------------------------------------------------------
_SPNAS_CANDS = ("k3_e3", "k3_e6", "k5_e3", "k5_e6")


def import_spnas_json(path: str | Path, device: str = "pixel1", constant_ms: float = SPNAS_CONSTANT_MS) -> LatencyTable:
    """Single-Path NAS runtime model as a layer-position table of the ``spnas`` space.

    Rows 1–20 are the searchable layers 0–19; rows 0 and 21 (fixed blocks)
    are covered by ``constant_ms`` as in the paper's code, and kept in the
    metadata only.
    """
    try:
        data = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc})") from None
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
            "source": f"Single-Path NAS runtime model {Path(path).name}", "keyed": KEYED_LAYER, "fixed_rows": fixed}
    return LatencyTable(entries, float(constant_ms), meta)


# -- ProxylessNAS / OFA YAML ------------------------------------------------------------
_YAML_KEY = re.compile(r"^(?P<type>\w+)-input:(?P<inp>\d+(?:x\d+)*)-output:(?P<out>\d+(?:x\d+)*)(?P<rest>(?:-\w+:\d+)*)$")
_YAML_TYPES = ("Conv", "Conv_1", "Conv_2", "AvgPool2D", "Logits", "expanded_conv")


def _shape(text: str) -> list[int]:
    return [int(x) for x in text.split("x")]


def _yaml_ops(key: str, style: str, batch: int) -> dict[OpSpec, float] | None:
    """Ops of one YAML key with the share of the entry's latency each gets (1 or 0)."""
    m = _YAML_KEY.match(key)
    if m is None:
        raise ConfigError(f"bad latency-table key {key!r}; expected <type>-input:HxWxC-output:HxWxC[-name:int...]")
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


def _import_yaml(path: str | Path, style: str, device: str, batch: int, space: str) -> LatencyTable:
    yaml = require("yaml", "yaml")
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of layer keys to latencies")
    entries: dict[str, float] = {}
    dropped: list[str] = []
    for key, value in data.items():
        ms = value.get("mean") if isinstance(value, Mapping) else value
        if not isinstance(ms, (int, float)):
            raise ConfigError(f"{path}: entry {key!r} has no numeric 'mean' (got {value!r})")
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


# -- LightNAS -----------------------------------------------------------------------------
def import_lightnas_mlp(path: str | Path, device: str = "jetson-xavier-b8"):
    """The released LightNAS latency MLP as an ``mlp`` predictor of the ``lightnas`` space."""
    from hwprof.predictors.mlp import MLPPredictor

    torch = require("torch", "torch")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except Exception as exc:  # weights_only refuses anything but tensors and containers
        raise ConfigError(f"{path} is not a plain state dict ({type(exc).__name__}: {exc})") from None
    return MLPPredictor.from_lightnas_state_dict(state, space="lightnas", device=device, source=str(Path(path).name))


TABLE_IMPORTERS: dict[str, Callable[..., LatencyTable]] = {
    "proxylessnas-yaml": import_proxylessnas_yaml,
    "ofa-yaml": import_ofa_yaml,
    "tfnas-pkl": import_tfnas_pickle,
    "spnas-json": import_spnas_json,
}
PREDICTOR_IMPORTERS: dict[str, Callable[..., Any]] = {"lightnas-mlp": import_lightnas_mlp}
EXPORTERS: dict[str, Callable[[LatencyTable, str | Path], Path]] = {"proxylessnas-yaml": export_proxylessnas_yaml}

__all__ = [
    "EXPORTERS",
    "PREDICTOR_IMPORTERS",
    "RestrictedUnpickler",
    "SPNAS_CONSTANT_MS",
    "TABLE_IMPORTERS",
    "export_proxylessnas_yaml",
    "import_lightnas_mlp",
    "import_ofa_yaml",
    "import_proxylessnas_yaml",
    "import_spnas_json",
    "import_tfnas_pickle",
    "safe_pickle_loads",
]
