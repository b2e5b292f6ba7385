"""hwprof: hardware latency profiling and prediction for hardware-aware NAS.

``import hwprof`` is cheap: the torch-based parts (:func:`latency_model`,
:mod:`hwprof.objectives`) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from hwprof.errors import HwprofError
from hwprof.measurement import Measurement, Workload
from hwprof.ops import OpSpec, decode, encode
from hwprof.protocol import Plan
from hwprof.spaces import Arch, Space, list_spaces, space
from hwprof.store import Store

__version__ = "0.1.0"

_LAZY = {
    "latency_model": ("hwprof.latency", "latency_model"),
    "objectives": ("hwprof.objectives", None),
    "open_device": ("hwprof.devices", "open_device"),
    "load_config": ("hwprof.devices", "load_config"),
    "LatencyTable": ("hwprof.lut", "LatencyTable"),
    "load_table": ("hwprof.lut", "load_table"),
    "load_predictor": ("hwprof.predictors", "load_predictor"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hwprof' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(module)
    return mod if attr is None else getattr(mod, attr)


__all__ = [
    "Arch",
    "HwprofError",
    "Measurement",
    "OpSpec",
    "Plan",
    "Space",
    "Store",
    "Workload",
    "__version__",
    "decode",
    "encode",
    "list_spaces",
    "space",
    *_LAZY,
]
