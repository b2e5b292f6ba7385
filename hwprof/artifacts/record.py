"""The artifact record: what a device receives. Light on purpose (no torch), so devices can import it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

#: File formats hwprof writes: ONNX (ONNX Runtime), TFLite (LiteRT, phones) and TorchScript (torch).
FORMATS: tuple[str, ...] = ("onnx", "tflite", "torchscript")
#: File suffix of each format.
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "torchscript": ".pt"}


@dataclass(frozen=True)
class Artifact:
    """A model file ready to run.

    Attributes
    ----------
    path : Path
        The file.
    format : str
        One of :data:`FORMATS`.
    sha256 : str
        Hex digest of the file's bytes: the artifact's address.
    input_shape : tuple of int
        NCHW input shape ``(batch, c, h, w)`` (TFLite files take it as NHWC).
    name : str
        What it computes, for messages (an op key or an architecture text).
    """

    path: Path
    format: str
    sha256: str
    input_shape: tuple[int, int, int, int]
    name: str = ""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes (an artifact's address), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["Artifact", "FORMATS", "SUFFIXES", "sha256_of"]
