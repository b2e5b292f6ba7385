"""Kernels: the units a runtime executes, measured one by one and predicted for any ONNX model.

:mod:`hwprof.artifacts.kernel` parses a kernel key (the op-key grammar of
:mod:`hwprof.artifacts.graph`) and builds a one-kernel torch module to time;
:mod:`.sample` draws kernel shapes
that cover real CNNs; :mod:`.fusion` measures which neighbouring ops a device
fuses; :mod:`.predictor` fits one regressor per kernel kind and prices a
model's kernel graph; :mod:`.campaign` holds the stages of ``hwprof measure --kernels``.
"""

from hwprof.artifacts.kernel import KERNEL_KINDS, KernelSpec, parse_kernel

__all__ = ["KERNEL_KINDS", "KernelSpec", "parse_kernel"]
