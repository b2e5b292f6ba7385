"""Export a torch module to ONNX (opset 17, static shapes)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17


def write_onnx(module: nn.Module, input_shape: tuple[int, int, int, int], path: Path) -> None:
    """Write ``module`` (eval mode) as an ONNX model at ``path``.

    Parameters
    ----------
    module : nn.Module
        The network; traced once on a zero input of ``input_shape``.
    input_shape : tuple of int
        NCHW input shape ``(batch, c, h, w)``; every dimension is static.
    path : Path
        Destination file.

    Notes
    -----
    The graph has one float32 input named ``"input"`` and one output named
    ``"output"``; weights are initializers and constants are folded. In
    eval mode the exporter folds BatchNorm into the preceding Conv. The
    TorchScript-based exporter (``dynamo=False``) is used: it needs no
    ``onnxscript`` and takes a fraction of a second per op.
    """
    x = torch.zeros(input_shape, dtype=torch.float32)
    threads = torch.get_num_threads()
    # Tracing runs the model once; with several intra-op threads on a busy machine (a campaign
    # measuring next door) small convolutions spin for tens of ms each, with one they take microseconds.
    torch.set_num_threads(1)
    try:
        _export(module, x, path)
    finally:
        torch.set_num_threads(threads)


def _export(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        # the TorchScript exporter announces its deprecation on every call
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            module,
            (x,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            do_constant_folding=True,
        )
