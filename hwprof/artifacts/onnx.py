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
    ``"output"``; constants are folded. BatchNorm stays a node after the
    convolution (onnxruntime folds it when it loads the model). The
    TorchScript-based exporter (``dynamo=False``) is used: it needs no
    ``onnxscript`` and takes a fraction of a second per op.
    """
    x = torch.zeros(input_shape, dtype=torch.float32)
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
