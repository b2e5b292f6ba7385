"""SPOS (SEARCHERS.md §4.2) and the MACs cost model its constraint uses.

A1: evolution bookkeeping at the paper's P 50 / T 20 / k 10 / 25 + 25 / p 0.1 on the stand-in;
A2: uniform constraint sampling hits its bins uniformly and lands in them;
B1: evolution beats random search at equal evaluations on the stand-in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hwprof
from hwprof.errors import SpaceError
from hwprof.latency import macs_model
from searchers.base import Budget, SearchError
from searchers.spos import PAPER_BINS_MMACS, SPOS, ConstraintSampler, uniform_indices
from searchers.testing import StandInTask

REPO = Path(__file__).resolve().parent.parent
SPNAS_JSON = REPO / "data" / "single-path-nas" / "pixel1_runtime_model.json"
PIXEL1_LUT = REPO / "tests" / "data" / "proxylessnas" / "mobile_trim.yaml"  # ProxylessNAS's Pixel 1 table


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the MACs cost model (hwprof.latency.macs_model) ------------------------------------------------
@pytest.mark.parametrize("name", ["spos", "proxylessnas", "spnas", "tfnas", "fbnet"])
def test_macs_model_equals_space_macs(name):
    space = hwprof.space(name)
    model = macs_model(space)
    archs = space.sample(300, seed=3)
    idx = np.stack([space.indices(a) for a in archs])
    got = model.score(idx)
    want = np.array([space.macs(a) for a in archs], dtype=np.float64) / 1e6
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert model.arch_latency(archs[0]) == pytest.approx(space.macs(archs[0]) / 1e6, rel=1e-13)
    fixed = sum(op.macs() for op in space.fixed_ops()) / 1e6
    assert model.constant_ms == pytest.approx(fixed, rel=1e-15)
    assert model.source["unit"] == "MMACs"


def test_macs_model_elastic_resolution():
    space = hwprof.space("ofa-mbv3")
    model = macs_model(space, resolution=160)
    archs = [a for a in space.sample(200, seed=1)]
    archs = [type(a)(a.choices, 160) for a in archs]
    got = model.score(archs)
    want = np.array([space.macs(a) for a in archs], dtype=np.float64) / 1e6
    np.testing.assert_allclose(got, want, rtol=1e-13)
    with pytest.raises(SpaceError):
        model.score([type(archs[0])(archs[0].choices, 224)])
    with pytest.raises(SpaceError):
        macs_model(space, resolution=100)


def test_macs_model_is_batched():
    space = hwprof.space("spos")
    idx = uniform_indices(space, np.random.default_rng(0), 20_000)
    out = macs_model(space).score(idx)
    assert out.shape == (20_000,) and out.dtype == np.float64
    assert 270 < out.min() and out.max() < 400  # spos space: all-shuffle_k3 … all-xception


# -- A2: uniform constraint sampling -----------------------------------------------------------------
def test_constraint_sampling_uniform_bins_and_in_bin():
    from scipy.stats import chisquare

    space = hwprof.space("spos")
    cost = macs_model(space)
    sampler = ConstraintSampler(space, cost, PAPER_BINS_MMACS, timeout=500)
    rng = np.random.default_rng(0)
    draws = [sampler.draw(rng) for _ in range(2000)]
    bins = np.array([b for _, b, _ in draws])
    counts = np.bincount(bins, minlength=sampler.num_bins)
    assert chisquare(counts).pvalue > 0.01
    ok = [(idx, b) for idx, b, timed_out in draws if not timed_out]
    assert len(ok) >= 1900  # the edge bins are rare but reachable within 500 draws
    edges = np.asarray(PAPER_BINS_MMACS) * 1e6
    for idx, b in ok:
        macs = space.macs(space.from_indices(idx))  # exact integer MACs, independent of the cost model
        assert edges[b] <= macs <= edges[b + 1]
        if b < sampler.num_bins - 1:
            assert macs < edges[b + 1]


def test_fit_uses_paper_bins_on_spos_and_auto_bins_elsewhere():
    s = SPOS().fit(StandInTask(hwprof.space("spos")), "spos", None, budget=Budget(steps=30), seed=0)
    assert list(s.sampler_.edges) == list(PAPER_BINS_MMACS) and s.bin_kind_ == "flops"
    assert s.bin_hits_.sum() == 30
    spnas = hwprof.space("spnas")
    lat = hwprof.latency_model(SPNAS_JSON, space=spnas)
    s2 = SPOS().fit(StandInTask(spnas), spnas, lat, budget=Budget(steps=5), seed=0)
    assert s2.bin_kind_ == "latency" and s2.sampler_.num_bins == 7
    costs = lat.score(uniform_indices(spnas, np.random.default_rng(9), 5000))
    lo, hi = s2.sampler_.edges[0], s2.sampler_.edges[-1]
    assert np.mean((costs >= lo) & (costs <= hi)) == pytest.approx(0.98, abs=0.02)  # 1st–99th percentile
    assert any("constraint bins" in d for d in s2.search(target_ms=85.0).deviations)


# -- A1: evolution bookkeeping ------------------------------------------------------------------------
def _check_bookkeeping(s: SPOS, space, cost_of) -> None:
    rec = s.searches_[-1]
    keys = [c.indices for c in rec.evaluated]
    assert len(keys) == len(set(keys)), "a candidate was evaluated twice"
    assert len(keys) <= 50 + 20 * 50
    for c in rec.evaluated:
        assert cost_of(c.indices) <= rec.constraint.limit
    assert np.all(np.diff(rec.topk_best) >= 0), "top-k best fitness decreased"
    n_mut = n_cross = 0
    for c in rec.evaluated:
        child = np.array(c.indices)
        if c.origin == "crossover":
            p1, p2 = (np.array(p) for p in c.parents)
            assert np.all((child == p1) | (child == p2))
            n_cross += 1
        elif c.origin == "mutation":
            (parent,) = (np.array(p) for p in c.parents)
            fired = np.array(c.fired)
            assert not np.any((child != parent) & ~fired)
            n_mut += 1
    assert n_mut > 0 and n_cross > 0
    # every parent was in the population the operators drew from: it was evaluated first
    order = {k: i for i, k in enumerate(keys)}
    for c in rec.evaluated:
        for p in c.parents:
            assert order[p] < order[c.indices]


def test_evolution_bookkeeping_flops():
    space = hwprof.space("spos")
    s = SPOS().fit(StandInTask(space, seed=1), space, None, budget=Budget(steps=2), seed=1)
    res = s.search(constraint={"kind": "flops", "limit": 330e6})
    _check_bookkeeping(s, space, lambda idx: space.macs(space.from_indices(idx)))
    rec = s.searches_[-1]
    assert len(rec.evaluated) == 1050 and rec.rejected > 0 and rec.duplicates > 0
    assert res.macs <= 330e6 and res.constraint == {"kind": "flops", "limit": 330e6}
    assert res.latency_ms == s.macs_.arch_latency(res.arch)  # no latency model: priced in MMACs
    gens = [r for r in res.trace if r["phase"] == "search"]
    assert len(gens) == 21 and gens[-1]["evaluated"] == 1050


def test_evolution_bookkeeping_latency_and_several_constraints():
    space = hwprof.space("spnas")
    lat = hwprof.latency_model(SPNAS_JSON, space=space)
    s = SPOS().fit(StandInTask(space, seed=2), space, lat, budget=Budget(steps=2), seed=2)
    results = [s.search(target_ms=t) for t in (70.0, 80.0, 95.0)]
    for r, t in zip(results, (70.0, 80.0, 95.0)):
        assert r.latency_ms == lat.arch_latency(r.arch) <= t
        assert r.constraint == {"kind": "latency", "limit": t}
    _check_bookkeeping(s, space, lambda idx: float(lat.score(np.array([idx]))[0]))
    assert len(s.searches_) == 3
    assert results[0].latency_ms < results[2].latency_ms


def test_same_seed_same_search():
    space = hwprof.space("spos")

    def run():
        s = SPOS(population=20, generations=4, select=5, mutations=10, crossovers=10)
        s.fit(StandInTask(space, seed=4), space, None, budget=Budget(steps=3), seed=4)
        return s.search(constraint="flops:320e6")

    a, b = run(), run()
    assert a.arch == b.arch
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(a.trace) == strip(b.trace)


def test_unreachable_constraint_and_bad_inputs():
    space = hwprof.space("spos")
    s = SPOS().fit(StandInTask(space), space, None, budget=Budget(steps=1), seed=0)
    with pytest.raises(SearchError, match="cheapest"):
        s.search(constraint={"kind": "flops", "limit": 100e6})
    with pytest.raises(SearchError, match="latency model"):
        s.search(target_ms=10.0)
    with pytest.raises(SearchError, match="unknown constraint"):
        s.search(constraint={"kind": "params", "limit": 1})
    with pytest.raises(SearchError, match="before search"):
        SPOS().search()
    with pytest.raises(SearchError, match="select"):
        SPOS(select=60).fit(StandInTask(space), space, None, budget=Budget(steps=1))


# -- B1: evolution beats random search at equal evaluations ----------------------------------------
B1_SEEDS = range(10)


@pytest.mark.parametrize("case", ["spos-flops330", "proxylessnas-pixel1-80ms"])
def test_evolution_beats_random_search(case):
    wins, n = 0, 0
    if case == "spos-flops330":
        space = hwprof.space("spos")
        lat, kw = None, {"constraint": {"kind": "flops", "limit": 330e6}}
    else:
        space = hwprof.space("proxylessnas")
        lat, kw = hwprof.latency_model(PIXEL1_LUT, space=space), {"target_ms": 80.0}
    for seed in B1_SEEDS:
        task = StandInTask(space, seed=seed, strength=1.0, noise=0.5)
        s = SPOS().fit(task, space, lat, budget=Budget(steps=1), seed=seed)
        evo = s.search(**kw)
        rnd = s.random_search(**kw)
        assert len(s.searches_[-1].evaluated) == len(s.searches_[-2].evaluated)  # equal evaluations
        wins += task.score(space.indices(evo.arch)) > task.score(space.indices(rnd.arch))
        n += 1
        if lat is not None:  # the constraint binds: the winner sits just under the budget
            assert 0.97 * 80.0 <= evo.latency_ms <= 80.0
    assert wins >= n - 1  # ≥ 9 of 10 (SEARCHERS.md §4.2 B1)
