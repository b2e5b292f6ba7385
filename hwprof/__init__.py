"""hwprof: hardware latency profiling and prediction for hardware-aware NAS.

``import hwprof`` is cheap: the torch-based parts (:func:`latency_model`,
:mod:`hwprof.objectives`) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # first, so that modules imported below can read it

from hwprof.errors import HwprofError  # noqa: E402
from hwprof.artifacts.workload import Workload  # noqa: E402
from hwprof.measure.records import Measurement
from hwprof.spaces import OpSpec, decode, encode
from hwprof.measure.protocol import Plan
from hwprof.spaces import Arch, Space, list_spaces, space
from hwprof.measure.store import Store


_LAZY = {
    "latency_model": ("hwprof.latency", "latency_model"),
    "objectives": ("hwprof.latency.objectives", None),
    "open_device": ("hwprof.devices", "open_device"),
    "load_config": ("hwprof.devices", "load_config"),
    "LatencyTable": ("hwprof.tables", "LatencyTable"),
    "load_table": ("hwprof.tables", "load_table"),
    "load_predictor": ("hwprof.predictors", "load_predictor"),
    "predict_model": ("hwprof.kernels.predictor", "predict_model"),
    "KernelPredictor": ("hwprof.kernels.predictor", "KernelPredictor"),
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
