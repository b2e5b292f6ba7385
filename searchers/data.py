"""Proxy tasks: small image classification sets that train in minutes on a CPU.

A :class:`Task` holds three splits of one data set, fixed by a seed:

- ``weights`` (≈60 %): supernet weight training;
- ``arch`` (≈20 %): architecture steps, SPOS fitness, BN recalibration (the
  papers all hold part of the training set out for α);
- ``test`` (≈20 %): reported only.

:func:`digits` ships inside scikit-learn (1797 8×8 images, 10 classes) and
works offline; :func:`npz` reads a user's own ``x [N, C, H, W]``, ``y [N]``.
Images are float32 ``[N, 3, R, R]``, normalised per channel with the mean and
standard deviation of the weights split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hwprof.errors import ConfigError

#: The three splits of a task, in the order of their fractions in :data:`SPLIT_FRACTIONS`.
SPLITS: tuple[str, ...] = ("weights", "arch", "test")
SPLIT_FRACTIONS: tuple[float, ...] = (0.6, 0.2, 0.2)
#: Padding of the random-crop augmentation (pixels each side).
CROP_PADDING = 2


@dataclass(frozen=True, eq=False)
class Task:
    """A proxy classification task in three splits.

    Attributes
    ----------
    name : str
        ``"digits"`` or the npz file's stem.
    resolution : int
        Image height = width (pixels).
    classes : int
        Number of classes.
    x_weights, y_weights : Tensor
        float32 ``[N, 3, R, R]``, int64 ``[N]``: weight training (≈60 %).
    x_arch, y_arch : Tensor
        Architecture steps, SPOS fitness, BN recalibration (≈20 %).
    x_test, y_test : Tensor
        Reported only (≈20 %).
    width_mult : float
        Channel multiplier of the proxy supernet built for this task
        (:func:`searchers.supernet.make_supernet` reads it; default 0.25).
    """

    name: str
    resolution: int
    classes: int
    x_weights: Tensor
    y_weights: Tensor
    x_arch: Tensor
    y_arch: Tensor
    x_test: Tensor
    y_test: Tensor
    width_mult: float = 0.25

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of ``split`` (one of :data:`SPLITS`)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def steps_per_epoch(self, split: str, batch_size: int) -> int:
        """Batches in one pass over ``split``: ``N // batch_size`` (at least 1) for
        ``weights``/``arch`` (last partial batch dropped), ``ceil(N / batch_size)`` for ``test``."""
        n = len(self.split(split)[1])
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if split == "test":
            return math.ceil(n / batch_size)
        return max(1, n // batch_size)

    def batches(
        self, split: str, batch_size: int, *, generator: torch.Generator, augment: bool = False
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One shuffled pass (epoch) over ``split``.

        Parameters
        ----------
        split : str
            ``"weights"``, ``"arch"`` or ``"test"``.
        batch_size : int
            Images per batch. ``weights``/``arch`` drop the last partial batch
            (a split smaller than one batch gives one batch of all of it).
        generator : torch.Generator
            Drives the shuffle and the augmentation (seed it for determinism).
        augment : bool
            Random crop with :data:`CROP_PADDING` px replicate padding (no flips:
            digits are not mirror-symmetric).

        Yields
        ------
        x : Tensor float32 ``[B, 3, R, R]``
        y : Tensor int64 ``[B]``
        """
        x, y = self.split(split)
        n = len(y)
        steps = self.steps_per_epoch(split, batch_size)
        order = torch.randperm(n, generator=generator)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            xb = x[idx]
            if augment:
                xb = random_crop(xb, CROP_PADDING, generator)
            yield xb, y[idx]


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Per-image random crop of ``x [B, C, H, W]`` after ``padding`` px replicate padding (same shape out)."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (padding,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # [B, 1, W]
    out = xp[torch.arange(b)[:, None, None], :, rows, cols]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def _stratified_split(y: np.ndarray, seed: int) -> list[np.ndarray]:
    """Indices of the three splits: per class a seeded permutation cut 60/20/20."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = len(idx)
        n_w = round(SPLIT_FRACTIONS[0] * n)
        n_a = round(SPLIT_FRACTIONS[1] * n)
        for p, chunk in enumerate((idx[:n_w], idx[n_w : n_w + n_a], idx[n_w + n_a :])):
            parts[p].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _make_task(name: str, x: np.ndarray, y: np.ndarray, resolution: int | None, seed: int) -> Task:
    """Resize to ``resolution``, make 3 channels, split and normalise (by the weights split)."""
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    if xt.shape[1] == 1:
        xt = xt.expand(-1, 3, -1, -1)
    res = int(resolution or xt.shape[-1])
    if res < 1:
        raise ConfigError(f"resolution must be positive, got {res}")
    if tuple(xt.shape[-2:]) != (res, res):
        xt = F.interpolate(xt, size=(res, res), mode="bilinear", align_corners=False)
    xt = xt.contiguous()
    yt = torch.as_tensor(y, dtype=torch.int64)
    parts = _stratified_split(np.asarray(y), seed)
    w = torch.as_tensor(parts[0])
    mean = xt[w].mean(dim=(0, 2, 3), keepdim=True)
    std = xt[w].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    xt = (xt - mean) / std
    fields: dict[str, Tensor] = {}
    for split, idx in zip(SPLITS, parts):
        i = torch.as_tensor(idx)
        fields[f"x_{split}"] = xt[i].contiguous()
        fields[f"y_{split}"] = yt[i].contiguous()
    return Task(name=name, resolution=res, classes=int(y.max()) + 1, **fields)


def digits(resolution: int = 32, seed: int = 0) -> Task:
    """scikit-learn's digits (1797 8×8 grey images, 10 classes) at ``resolution``.

    Values ÷ 16, bilinear upsampling to ``resolution``, repeated to 3
    channels, normalised; a stratified 60/20/20 split fixed by ``seed``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]  # [1797, 1, 8, 8]
    return _make_task("digits", x, d.target.astype(np.int64), resolution, seed)


def npz(path: str | Path, resolution: int | None = None, seed: int = 0) -> Task:
    """A user's own task from an ``.npz`` with ``x`` (``[N, C, H, W]``, C ∈ {1, 3}, or
    ``[N, H, W]``) and integer labels ``y [N]`` in ``0..classes-1``.

    uint8 images are divided by 255. ``resolution`` defaults to the file's
    width; other sizes are resized bilinearly.

    Raises
    ------
    ConfigError
        For a missing file, missing arrays or inconsistent shapes.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no such task file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise ConfigError(f"{path} needs arrays 'x' [N, C, H, W] and 'y' [N]; it has {', '.join(f.files)}")
            x, y = f["x"], f["y"]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} as .npz: {exc}") from None
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
        raise ConfigError(f"{path}: x must be [N, C, H, W] with C 1 or 3 and H = W, got shape {x.shape}")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
        raise ConfigError(
            f"{path}: y must be non-negative integer labels [N] with N = {len(x)}, got {y.dtype} {y.shape}"
        )
    if len(y) < 5:
        raise ConfigError(f"{path}: {len(y)} images are too few for three splits")
    x = x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    return _make_task(path.stem, x, y.astype(np.int64), resolution, seed)


def load_task(spec: str, resolution: int = 32, seed: int = 0, *, width_mult: float = 0.25) -> Task:
    """``"digits"`` or ``"npz:FILE"``, with the supernet width multiplier ``width_mult``."""
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be positive, got {width_mult}")
    if spec == "digits":
        task = digits(resolution, seed)
    elif spec.startswith("npz:"):
        task = npz(spec[4:], resolution, seed)
    else:
        raise ConfigError(f"unknown task {spec!r}; use digits or npz:FILE")
    return dataclasses.replace(task, width_mult=float(width_mult))


__all__ = ["CROP_PADDING", "SPLITS", "SPLIT_FRACTIONS", "Task", "digits", "load_task", "npz", "random_crop"]
