"""Artifacts: model files (ONNX, TFLite, TorchScript) addressed by the sha256 of their bytes.

:mod:`.record` holds :class:`Artifact`, the only thing a device receives (and the
only module of this package a device may import). :mod:`.workload` holds the
workload specs and :func:`~hwprof.artifacts.workload.artifact_for`, which builds
and caches the file; :mod:`.export` writes modules to files (:mod:`.onnx`,
:mod:`.tflite` with its flatbuffer schema :mod:`.tflite_schema`); :mod:`.model`
turns a user's model file into a workload; :mod:`.graph` reads an ONNX graph as
the kernels a runtime executes, and :mod:`.kernel` parses a kernel key and
builds the one-kernel module a kernel campaign times.

May import :mod:`hwprof.spaces` (to build a workload's module); imported by
devices (the record only) and measure.
"""

from hwprof.artifacts.record import FORMATS, SUFFIXES, Artifact

__all__ = ["Artifact", "FORMATS", "SUFFIXES"]
