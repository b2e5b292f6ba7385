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

from hwprof.artifacts.record import SUFFIXES, Artifact
from hwprof.errors import MeasurementError
from hwprof.spaces.ops import OpSpec, decode

KIND_OP = "op"
KIND_ARCH = "arch"


@dataclass(frozen=True)
class Workload:
    """One thing to time: an operator (by key) or an architecture of a space.

    Attributes
    ----------
    kind : str
        ``"op"`` or ``"arch"``.
    key : str
        Canonical op key, or the architecture text form.
    space : str
        Space name for architectures ("" for ops).
    batch : int
        Batch size (ops carry it in their key too).
    """

    kind: str
    key: str
    space: str = ""
    batch: int = 1

    @classmethod
    def of_op(cls, op: OpSpec) -> Workload:
        return cls(KIND_OP, op.encode(), "", op.batch)

    @classmethod
    def of_arch(cls, space: str, arch: str, batch: int = 1) -> Workload:
        return cls(KIND_ARCH, arch, space, batch)

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
        return {"kind": self.kind, "key": self.key, "space": self.space, "batch": self.batch}


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
    path = Path(directory) / f"{workload.digest}{SUFFIXES[fmt]}"
    build, shape = _builder(workload)
    if not path.exists():  # a cached file needs only its shape: the module is built for export alone
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build().eval()
        export_module(module, shape, fmt, path, description=f"hwprof {workload.space} {workload.key}".strip())
    return Artifact(path, fmt, hashlib.sha256(path.read_bytes()).hexdigest(), shape, workload.key)


def _builder(workload: Workload) -> tuple[Callable[[], Any], tuple[int, int, int, int]]:
    """A function building the workload's torch module, and its NCHW input shape (an architecture parsed once)."""
    from hwprof.spaces import space

    if workload.kind == KIND_OP:
        from hwprof.spaces.modules import build_op

        op = workload.op
        return (lambda: build_op(op)), (op.batch, op.cin, op.h, op.w)
    sp = space(workload.space)
    arch = sp.parse(workload.key)
    r = arch.resolution or sp.default_resolution
    return (lambda: sp.build(arch)), (workload.batch, 3, r, r)


__all__ = ["ArtifactCache", "KIND_ARCH", "KIND_OP", "Workload", "artifact_for"]
