"""What was measured: :class:`Workload` (what runs) and :class:`Measurement` (what was observed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping

from hwprof.errors import FingerprintMismatchError, MeasurementError
from hwprof.ops import OpSpec, decode
from hwprof.stats import Summary, summarize

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

    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW input shape."""
        if self.kind == KIND_OP:
            op = self.op
            return (op.batch, op.cin, op.h, op.w)
        from hwprof.spaces import space

        r = space(self.space).input_resolution(self.key)
        return (self.batch, 3, r, r)

    def module(self, seed: int = 0):
        """Torch module (eval mode, weights from ``seed``)."""
        import torch

        from hwprof.modules import build_op
        from hwprof.spaces import space

        torch.manual_seed(seed)
        if self.kind == KIND_OP:
            return build_op(self.op).eval()
        return space(self.space).build(self.key).eval()

    def export(self, fmt: str, directory: Path, seed: int = 0) -> Path:
        """Write the artifact of format ``fmt`` (``onnx``/``tflite``) under ``directory``."""
        from hwprof.artifacts import export_module

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.digest}.{fmt}"
        if not path.exists():
            tmp = path.with_suffix(f".tmp.{fmt}")
            export_module(self.module(seed), self.input_shape(), fmt, tmp)
            tmp.replace(path)
        return path

    @property
    def digest(self) -> str:
        """Short stable hash of the workload, for file names."""
        text = f"{self.kind}|{self.space}|{self.key}|b{self.batch}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "space": self.space, "batch": self.batch}


#: Fingerprint fields that identify the measuring environment; records whose
#: values differ must not be merged (see :func:`check_compatible`).
IDENTITY_FIELDS = ("device", "backend", "runtime", "runtime_version", "threads", "batch", "cpu", "hwprof_version")


def rounds_by_key(records: Iterable[Measurement]) -> dict[str, list[tuple[float, ...]]]:
    """Raw samples of each key's records (its rounds), keys in first-seen order."""
    out: dict[str, list[tuple[float, ...]]] = {}
    for m in records:
        out.setdefault(m.key, []).append(m.samples_ms)
    return out


def fingerprint_hash(fingerprint: Mapping[str, str]) -> str:
    """Hash of a fingerprint's identity: equal for records that may be merged."""
    text = json.dumps({k: str(v) for k, v in sorted(fingerprint.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_compatible(a: Mapping[str, str], b: Mapping[str, str], what: str = "records") -> None:
    """Raise :class:`FingerprintMismatchError` naming every field where ``a`` and ``b`` differ."""
    diff = [k for k in sorted(set(a) | set(b)) if str(a.get(k)) != str(b.get(k))]
    if diff:
        detail = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in diff)
        raise FingerprintMismatchError(f"{what} were measured under different environments ({detail})")


@dataclass(frozen=True)
class Measurement:
    """One immutable record: raw samples of one workload on one device.

    Attributes
    ----------
    kind, key, space : str
        As in :class:`Workload`.
    device : str
        Device config name.
    samples_ms : tuple of float
        Raw timed runs in ms, in the order measured.
    warmup : int
        Untimed runs before the samples.
    fingerprint : Mapping[str, str]
        Identity of the environment (backend, runtime version, threads, batch,
        CPU model or phone build, hwprof version, ...).
    environment : Mapping[str, str]
        Volatile state recorded alongside (temperatures, frequencies, load).
    timestamp : float
        Unix time when the measurement finished.
    flags : tuple of str
        Quality notes of the protocol (``high-cv``, ``drift``, ...).
    """

    kind: str
    key: str
    space: str
    device: str
    samples_ms: tuple[float, ...]
    warmup: int
    fingerprint: Mapping[str, str]
    environment: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = 0.0
    flags: tuple[str, ...] = ()

    @cached_property
    def summary(self) -> Summary:
        return summarize(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return self.summary.median_ms

    @property
    def fingerprint_hash(self) -> str:
        return fingerprint_hash(self.fingerprint)

    @property
    def batch(self) -> int:
        return int(self.fingerprint.get("batch", 1))

    @property
    def threads(self) -> int:
        return int(self.fingerprint.get("threads", 1))
