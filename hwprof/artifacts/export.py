"""Exporting torch modules to the model files hwprof measures: ONNX, TFLite and TorchScript.

Every artifact computes the torch module it was exported from, with the same
weights, in eval mode. ONNX keeps torch's NCHW layout; TFLite is NHWC (input
``[b, h, w, c]`` named ``"input"``). The TFLite flatbuffer is written by
hwprof itself (:mod:`hwprof.artifacts.tflite`), so no TensorFlow or converter
is needed. TorchScript is a trace of the module (NCHW), which the torch worker
runs without graph optimisation, op by op as in eager mode.

>>> from hwprof.spaces.ops import OpSpec
>>> export_op(OpSpec("conv", 32, 32, 3, 16, kernel=3, stride=2, act="relu6"), "tflite", Path("stem.tflite"))
... # doctest: +SKIP
"""

from __future__ import annotations

import numbers
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from hwprof.errors import ConfigError
from hwprof.spaces.ops import OpSpec

from hwprof.artifacts.record import FORMATS

__all__ = ["FORMATS", "check_format", "export_arch", "export_module", "export_op"]


def export_module(
    module: nn.Module,
    input_shape: tuple[int, int, int, int],
    fmt: str,
    path: Path,
    description: str | None = None,
) -> Path:
    """Export ``module`` in eval mode to ``path`` in format ``fmt``.

    Parameters
    ----------
    module : nn.Module
        Network built from :mod:`hwprof.spaces.modules` classes (any module for ONNX).
        It is exported in eval mode; its training flag is restored afterwards.
    input_shape : tuple of int
        NCHW input shape ``(batch, c, h, w)``.
    fmt : str
        One of :data:`FORMATS`.
    path : Path
        Destination file; parent folders are created. The file appears
        atomically, so an interrupted export leaves no partial file.
    description : str, optional
        Stored in the TFLite model's description field.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ConfigError
        Unknown ``fmt``, a malformed ``input_shape``, or (TFLite) a module
        class the writer has no emitter for.
    """
    check_format(fmt)
    shape = _check_shape(input_shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    was_training = module.training
    module.eval()
    try:
        if fmt == "onnx":
            from hwprof.artifacts.onnx import write_onnx

            write_onnx(module, shape, tmp)
        elif fmt == "torchscript":
            # TorchScript is deprecated in favour of torch.export, whose files take ~1 s to load per
            # round; a trace loads in milliseconds and runs the same kernels with optimisation off.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(module, torch.randn(*shape), check_trace=False)
                torch.jit.save(traced, str(tmp))
        else:
            from hwprof.artifacts.tflite import to_tflite

            tmp.write_bytes(to_tflite(module, shape, description or ""))
        tmp.replace(path)
    finally:
        module.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


def export_op(op: OpSpec, fmt: str, path: Path, seed: int = 0) -> Path:
    """Export one op, built by :func:`hwprof.spaces.modules.build_op` with weights drawn from ``seed``.

    The input shape is :func:`hwprof.spaces.modules.input_shape` (``[op.batch, cin,
    h, w]``). The global torch RNG state is left untouched.
    """
    from hwprof.spaces.modules import build_op, input_shape

    check_format(fmt)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_op(op)
    return export_module(module, input_shape(op), fmt, path, description=f"hwprof op {op.encode()}")


def export_arch(space, arch, fmt: str, path: Path, seed: int = 0, batch: int = 1) -> Path:
    """Export a whole architecture of ``space`` (``Space.build``), input ``[batch, 3, R, R]``.

    Parameters
    ----------
    space : hwprof.spaces.Space
        The search space.
    arch : Arch or str
        The architecture or its text form.
    fmt : str
        One of :data:`FORMATS`.
    path : Path
        Destination file.
    seed : int
        Seed of the random weights; the global torch RNG state is left untouched.
    batch : int
        Batch size of the static input shape.
    """
    check_format(fmt)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    arch = space.parse(arch) if isinstance(arch, str) else arch
    res = space.input_resolution(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = space.build(arch)
    desc = f"hwprof {space.name} {arch.encode()}"
    return export_module(module, (batch, 3, res, res), fmt, path, description=desc)


def check_format(fmt: str) -> None:
    """Raise :class:`ConfigError` unless ``fmt`` is one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown artifact format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def _check_shape(shape) -> tuple[int, int, int, int]:
    ok = isinstance(shape, (tuple, list)) and len(shape) == 4
    ok = ok and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in shape)
    if not ok:
        raise ConfigError(f"input_shape must be four positive integers (batch, c, h, w), got {shape!r}")
    return tuple(int(v) for v in shape)  # type: ignore[return-value]
