"""Sink-connecting depth and elastic widths at once (TF-NAS's α loss): ``depth_expected(w, v, mids)``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hwprof
from hwprof.errors import MissingEntryError
from hwprof.latency import latency_model

SPACE = hwprof.space("tfnas")
SIZES = [st.layers for st in SPACE.stages]
DMAX = max(SIZES)
SKIP = SPACE.candidates.index("skip")


class SweepTable:
    """Speaks the LatencyTable boundary a table model reads: ``matrix`` and ``width_curve``."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.space = SPACE.name
        values = rng.uniform(0.05, 3.0, size=SPACE.mask.shape)
        values[:, SKIP] = 0.0  # a dropped layer is an identity: 0 ms
        values[~SPACE.mask] = 0.0
        self._values, self._constant = values, float(rng.uniform(1.0, 5.0))
        self._curves = {}
        for g in SPACE.geometry():
            for cand in SPACE.candidates[:SKIP]:
                lo, hi = SPACE.mid_range(g, cand)
                mids = np.unique(np.linspace(lo, hi, 9).round())
                ms = np.sort(rng.uniform(0.1, 3.0, mids.size)) + rng.normal(0, 0.03, mids.size)  # a bit noisy
                self._curves[(g.index, cand)] = (mids, ms)

    def matrix(self, space, resolution=None):
        return self._values.copy(), space.mask.copy(), self._constant

    def width_curve(self, space, layer, candidate):
        return self._curves[(layer, candidate)]


@pytest.fixture(scope="module")
def model():
    return latency_model(SweepTable(), SPACE)


def random_mids(rng, integer: bool = False) -> torch.Tensor:
    mids = torch.zeros(SPACE.num_layers, SPACE.max_choices, dtype=torch.float64)
    for g in SPACE.geometry():
        for k, cand in enumerate(SPACE.candidates[:SKIP]):
            lo, hi = SPACE.mid_range(g, cand)
            mids[g.index, k] = float(rng.integers(lo, hi + 1)) if integer else float(rng.uniform(lo, hi))
    return mids


def depth_tensor(rng) -> torch.Tensor:
    v = torch.zeros(len(SIZES), DMAX, dtype=torch.float64)
    for s, n in enumerate(SIZES):
        v[s, :n] = torch.from_numpy(rng.dirichlet(np.ones(n)))
    return v


def test_depth_and_width_by_hand(model):
    rng = np.random.default_rng(1)
    w = model.masked_softmax(torch.from_numpy(rng.normal(size=SPACE.mask.shape)))
    mids = random_mids(rng)
    v = depth_tensor(rng)
    cell = np.zeros(SPACE.mask.shape)
    for g in SPACE.geometry():
        for k, cand in enumerate(SPACE.candidates):
            if SPACE.mask[g.index, k]:
                cell[g.index, k] = (
                    model.values[g.index, k] if cand == "skip" else model.width_curve(g.index, cand)(float(mids[g.index, k]))
                )
    lat = (w.numpy() * cell).sum(-1)
    total, start = model.constant_ms, 0
    for s, n in enumerate(SIZES):
        total += float((v[s, :n].numpy() * np.cumsum(lat[start : start + n])).sum())
        start += n
    assert model.depth_expected(w, v, mids).item() == pytest.approx(total, rel=1e-12)
    # the per-layer view is the weighted sum over candidates at those widths
    np.testing.assert_allclose(model.layer_latency(w, mids).numpy(), lat, rtol=1e-12)
    # full depth everywhere: the width-only expected latency
    full = torch.zeros_like(v)
    for s, n in enumerate(SIZES):
        full[s, n - 1] = 1.0
    assert model.depth_expected(w, full, mids).item() == pytest.approx(model.width_expected(w, mids).item(), rel=1e-12)
    # without mids: the default-width table, as before
    plain = (w.numpy() * model.values).sum(-1)
    total0, start = model.constant_ms, 0
    for s, n in enumerate(SIZES):
        total0 += float((v[s, :n].numpy() * np.cumsum(plain[start : start + n])).sum())
        start += n
    assert model.depth_expected(w, v).item() == pytest.approx(total0, rel=1e-12)
    # list-of-stages depth weights give the same value
    as_list = [v[s, :n] for s, n in enumerate(SIZES)]
    assert model.depth_expected(w, as_list, mids).item() == pytest.approx(total, rel=1e-12)


def test_batched_weights_depths_and_mids(model):
    rng = np.random.default_rng(2)
    w = torch.stack([model.masked_softmax(torch.from_numpy(rng.normal(size=SPACE.mask.shape))) for _ in range(3)])
    v = torch.stack([depth_tensor(rng) for _ in range(3)])
    mids = torch.stack([random_mids(rng) for _ in range(3)])
    batched = model.depth_expected(w, v, mids)
    singles = [model.depth_expected(w[b], v[b], mids[b]).item() for b in range(3)]
    np.testing.assert_allclose(batched.numpy(), singles, rtol=1e-12)
    # one set of mids for a batch of weights broadcasts
    shared = model.depth_expected(w, v, mids[0])
    np.testing.assert_allclose(shared.numpy(), [model.depth_expected(w[b], v[b], mids[0]).item() for b in range(3)],
                               rtol=1e-12)


def test_gradcheck_in_weights_depths_and_mids(model):
    valid = torch.tensor([[d < n for d in range(DMAX)] for n in SIZES])
    rng = np.random.default_rng(3)
    alpha = torch.randn(SPACE.num_layers, SPACE.max_choices, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(len(SIZES), DMAX, dtype=torch.float64, requires_grad=True)
    mids = random_mids(rng).requires_grad_(True)

    def f(a, b, m):
        return model.depth_expected(model.masked_softmax(a), b.masked_fill(~valid, float("-inf")).softmax(-1), m)

    assert torch.autograd.gradcheck(f, (alpha, beta, mids), fast_mode=True)
    out = f(alpha, beta, mids)
    out.backward()
    # wider is never faster: the width curves are monotone
    assert (mids.grad >= 0).all()
    # a float32 loop gets float32 back, close to float64
    w32 = model.masked_softmax(alpha.detach().float())
    v32 = beta.detach().float().masked_fill(~valid, float("-inf")).softmax(-1)
    got = model.depth_expected(w32, v32, mids.detach().float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(f(alpha, beta, mids).item(), rel=1e-5)


def test_one_hot_candidates_depths_and_integer_mids_equal_arch_latency_exactly(model):
    rng = np.random.default_rng(4)
    geoms = SPACE.geometry()
    for arch in SPACE.sample(25, seed=5):
        kept = [c != "skip" for c in arch.choices]
        mids = random_mids(rng, integer=True)
        u = torch.zeros(SPACE.num_layers, SPACE.max_choices, dtype=torch.float64)
        widths = []
        for g, cand in zip(geoms, arch.choices):
            if cand == "skip":  # a dropped layer: its op weight does not matter, any op will do
                u[g.index, int(rng.integers(0, SKIP))] = 1.0
                widths.append(None)
            else:
                k = SPACE.candidates.index(cand)
                u[g.index, k] = 1.0
                widths.append(int(mids[g.index, k]))
        v = torch.zeros(len(SIZES), DMAX, dtype=torch.float64)
        start = 0
        for s, n in enumerate(SIZES):
            v[s, sum(kept[start : start + n]) - 1] = 1.0
            start += n
        text = type(arch)(arch.choices, None, tuple(widths)).encode()
        assert "@" in text
        assert model.depth_expected(u, v, mids).item() == model.arch_latency(text)
        # and without widths: the plain table price of the architecture
        assert model.depth_expected(u, v).item() == model.arch_latency(arch)


def test_mids_outside_a_width_curve_are_an_error(model):
    rng = np.random.default_rng(6)
    w = model.masked_softmax(torch.zeros(SPACE.num_layers, SPACE.max_choices, dtype=torch.float64))
    mids = random_mids(rng)
    mids[3, 1] = 1.0
    with pytest.raises(MissingEntryError, match="layer 3"):
        model.depth_expected(w, depth_tensor(rng), mids)
