"""Workloads (what to time, as plain text) and the one place that turns them into artifacts.

A :class:`Workload` names an operator by its key, or an architecture of a space
by its text; it holds no torch. :func:`artifact_for` parses it once, builds the
torch module, exports it in the format a device runs and caches the file by
the workload's digest, so every later round reuses it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hwprof.artifacts.record import SUFFIXES, Artifact, sha256_of
from hwprof.errors import MeasurementError
from hwprof.spaces.ops import OpSpec, decode

KIND_OP = "op"
KIND_ARCH = "arch"
KIND_MODEL = "model"
KIND_KERNEL = "kernel"


@dataclass(frozen=True)
class Workload:
    """One thing to time: an operator (by key), an architecture of a space, a user's model or a kernel.

    Attributes
    ----------
    kind : str
        ``"op"``, ``"arch"``, ``"model"`` or ``"kernel"``.
    key : str
        Canonical op key, the architecture text form, a model's key
        (:func:`hwprof.artifacts.model.model_workload`: name, sha256 prefix, input shape),
        or a kernel key (:mod:`hwprof.artifacts.kernel`).
    space : str
        Space name for architectures ("" for ops and models).
    batch : int
        Batch size (ops carry it in their key too).
    source : str
        Models only: the file's absolute path, or ``torchvision:NAME``.
    input_shape : tuple of int
        Models only: the input without its batch, in the file's layout
        (``(c, h, w)``; ``(h, w, c)`` for TFLite).
    """

    kind: str
    key: str
    space: str = ""
    batch: int = 1
    source: str = ""
    input_shape: tuple[int, ...] = ()

    @classmethod
    def of_op(cls, op: OpSpec) -> Workload:
        return cls(KIND_OP, op.encode(), "", op.batch)

    @classmethod
    def of_arch(cls, space: str, arch: str, batch: int = 1) -> Workload:
        return cls(KIND_ARCH, arch, space, batch)

    @classmethod
    def of_kernel(cls, key: str) -> Workload:
        from hwprof.artifacts.kernel import parse_kernel

        return cls(KIND_KERNEL, key, "", parse_kernel(key).b)

    @property
    def op(self) -> OpSpec:
        if self.kind != KIND_OP:
            raise MeasurementError(f"{self.key!r} is an architecture, not an op")
        return decode(self.key)

    @property
    def digest(self) -> str:
        """Short stable hash of the workload, for file names."""
        text = f"{self.kind}|{self.space}|{self.key}|b{self.batch}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "key": self.key, "space": self.space, "batch": self.batch}
        return out | ({"source": self.source} if self.kind == KIND_MODEL else {})


class ArtifactCache:
    """Artifacts of workloads in one folder, each exported once and remembered for the campaign.

    Parameters
    ----------
    directory : Path
        Where files go: ``<workload digest><suffix>``.
    seed : int
        Seed of the random weights.
    """

    def __init__(self, directory: Path, seed: int = 0):
        self.directory = Path(directory)
        self.seed = seed
        self._known: dict[tuple[Workload, str], Artifact] = {}

    def get(self, workload: Workload, fmt: str) -> Artifact:
        """The artifact of ``workload`` in format ``fmt``; an architecture text is parsed here, once."""
        art = self._known.get((workload, fmt))
        if art is None:
            art = artifact_for(workload, fmt, self.directory, self.seed)
            self._known[(workload, fmt)] = art
        return art


def artifact_for(workload: Workload, fmt: str, directory: Path, seed: int = 0) -> Artifact:
    """Build (or reuse) the file of ``workload`` in format ``fmt`` under ``directory``.

    Parameters
    ----------
    workload : Workload
        What to build.
    fmt : str
        ``onnx``, ``tflite`` or ``torchscript``.
    directory : Path
        Cache folder; the file is ``<workload digest><suffix>``.
    seed : int
        Seed of the random weights.
    """
    from hwprof.artifacts.export import check_format, export_module

    check_format(fmt)
    if workload.kind == KIND_MODEL and not workload.source.startswith("torchvision:"):
        return _model_file(workload, fmt)
    path = Path(directory) / f"{workload.digest}{SUFFIXES[fmt]}"
    build, shape = _builder(workload)
    if not path.exists():  # a cached file needs only its shape: the module is built for export alone
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build().eval()
        export_module(module, shape, fmt, path, description=f"hwprof {workload.space} {workload.key}".strip())
    return Artifact(path, fmt, sha256_of(path), shape, workload.key)


def _model_file(workload: Workload, fmt: str) -> Artifact:
    """A user's model file as it is: checked to be the file the workload named, in the device's format."""
    from hwprof.artifacts.model import MODEL_FORMATS

    path = Path(workload.source)
    own = MODEL_FORMATS[path.suffix.lower()]
    if own != fmt:
        raise MeasurementError(
            f"this device runs {fmt} files and {path.name} is {own}; hwprof does not convert a user's model: "
            f"export it to {SUFFIXES[fmt]} (or measure it on a device that runs {own})"
        )
    if not path.is_file():
        raise MeasurementError(f"model file {path} is gone")
    digest = sha256_of(path)
    if not workload.key.rpartition(":")[0].endswith("@" + digest[:16]):
        raise MeasurementError(f"{path} changed since the campaign started (sha256 {digest[:16]}); start it again")
    c, h, w = (workload.input_shape[2], *workload.input_shape[:2]) if fmt == "tflite" else workload.input_shape
    return Artifact(path, fmt, digest, (workload.batch, c, h, w), workload.key)


def _builder(workload: Workload) -> tuple[Callable[[], Any], tuple[int, int, int, int]]:
    """A function building the workload's torch module, and its NCHW input shape (an architecture parsed once)."""
    if workload.kind == KIND_MODEL:  # torchvision:NAME
        from hwprof.artifacts.model import torchvision_module

        name = workload.source.split(":", 1)[1]
        c, h, w = workload.input_shape
        return (lambda: torchvision_module(name)), (workload.batch, c, h, w)
    if workload.kind == KIND_KERNEL:
        from hwprof.artifacts.kernel import build_kernel, parse_kernel

        spec = parse_kernel(workload.key)
        return (lambda: build_kernel(spec)), spec.input_shape
    from hwprof.spaces import space

    if workload.kind == KIND_OP:
        from hwprof.spaces.modules import build_op

        op = workload.op
        return (lambda: build_op(op)), (op.batch, op.cin, op.h, op.w)
    sp = space(workload.space)
    arch = sp.parse(workload.key)
    r = arch.resolution or sp.default_resolution
    return (lambda: sp.build(arch)), (workload.batch, 3, r, r)


__all__ = ["ArtifactCache", "KIND_ARCH", "KIND_KERNEL", "KIND_MODEL", "KIND_OP", "Workload", "artifact_for"]
