"""Shared pytest fixtures."""

from __future__ import annotations

import os
from typing import Callable

import pytest

# Campaigns started by tests (hwprof measure in a subprocess) must not pause for the other programs of a
# shared test machine; tests/test_busy.py covers the waiting itself.
os.environ.setdefault("HWPROF_BUSY", "flag")


@pytest.fixture
def count_macs() -> Callable:
    """A function ``(module, x) -> (macs, output)`` counting conv/linear MACs with forward hooks.

    Independent of :meth:`hwprof.spaces.ops.OpSpec.macs`: every ``nn.Conv2d`` adds
    ``output elements · in_channels / groups · kh · kw``, every ``nn.Linear``
    ``output elements · in_features``; nothing else is counted.
    """
    torch = pytest.importorskip("torch")
    from torch import nn

    def count(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
        total = 0

        def hook(m: nn.Module, _inputs, out: torch.Tensor) -> None:
            nonlocal total
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                total += out.numel() * (m.in_channels // m.groups) * kh * kw
            elif isinstance(m, nn.Linear):
                total += out.numel() * m.in_features

        handles = [m.register_forward_hook(hook) for m in module.modules()]
        try:
            with torch.no_grad():
                out = module.eval()(x)
        finally:
            for h in handles:
                h.remove()
        return total, out

    return count


@pytest.fixture()
def one_torch_thread():
    """Torch on one thread for the test (training loops on this 2-core machine), restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
