"""Conformance of every registered searcher (SEARCHERS.md §4.0), on the stand-in task.

Parametrised over ``searchers.available()`` (plus the reference random search
of ``searchers.testing``, so the suite runs before any plugin is installed):
a 2-step budget gives an architecture of the space whose ``latency_ms`` is
``latency.arch_latency(arch)`` exactly; the same seed gives the same
architecture and trace (timing fields left out); the report round-trips
through JSON; the class keeps the scikit-learn manners.
"""

from __future__ import annotations

import json
import sys
import textwrap
from importlib import metadata

import pytest
import torch

import hwprof
import searchers
from searchers import GROUP, available, check_searcher, get
from searchers.base import Budget, SearchError, SearchResult
from searchers.testing import (
    RandomSearch,
    StandInTask,
    conformance_latency,
    conformance_target,
    strip_timing,
)

torch.set_num_threads(1)

REGISTERED = available()
PLUGINS = [pytest.param(name, cls, id=name) for name, cls in REGISTERED.items()]
PLUGINS.append(pytest.param("random", RandomSearch, id="reference-random"))
BUDGET = Budget(steps=2)
_RUNS: dict[tuple[str, object], tuple[SearchResult, list[dict], object]] = {}


def _setup(cls):
    space = hwprof.space(cls.default_space)
    latency = conformance_latency(cls, space)
    return space, latency


def _run(name: str, cls, seed: int = 0) -> tuple[SearchResult, list[dict], object]:
    """One tiny search on the stand-in (cached per searcher and seed)."""
    key = (name, seed)
    if key not in _RUNS:
        space, latency = _setup(cls)
        task = StandInTask(space, seed=0, steps_per_epoch=2)
        target = conformance_target(latency, space)
        events: list[dict] = []
        searcher = cls()
        searcher.fit(task, space, latency, target_ms=target, budget=BUDGET, seed=seed, callback=events.append)
        result = searcher.search(target_ms=target)
        _RUNS[key] = (result, events, searcher)
    return _RUNS[key]


@pytest.mark.parametrize("name, cls", PLUGINS)
def test_tiny_budget_gives_an_arch_of_the_space_priced_exactly(name: str, cls) -> None:
    result, events, searcher = _run(name, cls)
    space, latency = _setup(cls)
    assert isinstance(result, SearchResult)
    assert result.searcher == cls.name == name and result.space == space.name
    arch = space.parse(result.arch)
    assert result.latency_ms == latency.arch_latency(arch)  # exactly, float64
    assert result.macs == space.macs(arch) and result.params == space.params(arch)
    assert result.seed == 0 and result.seconds >= 0
    assert result.target_ms == pytest.approx(conformance_target(latency, space))
    assert result.trace and all(isinstance(row, dict) for row in result.trace)
    assert events, "callback(event) is called at least once (per epoch / generation)"
    assert isinstance(result.proxy, dict) and isinstance(result.deviations, list)
    assert all(isinstance(d, str) and d for d in result.deviations)
    assert set(searcher.get_params()) <= set(result.hyperparameters)
    assert "kind" in result.latency_source
    assert any(k.endswith("_") and not k.startswith("_") for k in vars(searcher)), "learned state ends in _"


@pytest.mark.parametrize("name, cls", PLUGINS)
def test_same_seed_same_arch_and_trace(name: str, cls) -> None:
    first, _, _ = _run(name, cls)
    _RUNS[(name, "again")] = _RUNS.pop((name, 0))
    try:
        again, _, _ = _run(name, cls)  # a fresh object and run with the same seed
    finally:
        _RUNS[(name, 0)] = _RUNS.pop((name, "again"))
    assert again.arch == first.arch
    assert json.dumps(strip_timing(again.trace)) == json.dumps(strip_timing(first.trace))
    assert again.hyperparameters == first.hyperparameters and again.deviations == first.deviations
    assert again.latency_ms == first.latency_ms
    assert strip_timing([again.proxy]) == strip_timing([first.proxy])


@pytest.mark.parametrize("name, cls", PLUGINS)
def test_report_round_trips(name: str, cls) -> None:
    result, _, _ = _run(name, cls)
    text = result.to_json()
    data = json.loads(text)
    assert data["report_version"] >= 1 and data["arch"] == result.arch
    back = SearchResult.from_json(text)
    assert back.to_json() == text
    assert back.latency_ms == result.latency_ms and back.arch == result.arch
    assert back.summary() == result.summary()


@pytest.mark.parametrize("name, cls", PLUGINS)
def test_sklearn_manners(name: str, cls) -> None:
    s = cls()
    params = s.get_params()
    assert set(vars(s)) == set(params), "__init__ stores its hyperparameters and nothing else"
    assert not any(k.endswith("_") for k in vars(s))
    clone = cls(**params)
    assert clone.get_params() == params
    assert repr(clone).startswith(type(clone).__name__)
    with pytest.raises(SearchError, match="no hyperparameter"):
        s.set_params(no_such_hyperparameter_xyz=1)
    for attr in ("name", "paper", "default_space", "latency_kinds"):
        assert getattr(cls, attr)
    hwprof.space(cls.default_space)  # names a real space


@pytest.mark.parametrize("name, cls", [p for p in PLUGINS if p.values[0] in REGISTERED])
def test_registered_plugin_loads_by_name(name: str, cls) -> None:
    assert get(name) is cls
    assert check_searcher(cls, name) is cls


# -- the registry refuses broken plugins ---------------------------------------------------
@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    (tmp_path / "fake_searcher_plugins.py").write_text(textwrap.dedent("""
        from searchers.testing import RandomSearch

        class NoFit:
            name = "nofit"
            paper = "x"
            default_space = "spos"
            latency_kinds = ("score",)
            def search(self, **kw): ...

        class WrongName(RandomSearch):
            name = "other"

        not_a_class = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        metadata.EntryPoint("random", "searchers.testing:RandomSearch", GROUP),
        metadata.EntryPoint("nofit", "fake_searcher_plugins:NoFit", GROUP),
        metadata.EntryPoint("wrongname", "fake_searcher_plugins:WrongName", GROUP),
        metadata.EntryPoint("notclass", "fake_searcher_plugins:not_a_class", GROUP),
        metadata.EntryPoint("missing", "no_such_module_xyz:Searcher", GROUP),
    ]
    monkeypatch.setattr(searchers, "_entry_points", lambda: eps)
    yield
    sys.modules.pop("fake_searcher_plugins", None)


def test_broken_plugins_are_refused_by_name(fake_registry) -> None:
    assert available() == {"random": RandomSearch}
    with pytest.raises(SearchError, match=r"'nofit'.*lacks fit\(\)"):
        get("nofit")
    with pytest.raises(SearchError, match=r"'wrongname'.*named 'other'"):
        get("wrongname")
    with pytest.raises(SearchError, match=r"'notclass'.*not a class"):
        get("notclass")
    with pytest.raises(SearchError, match=r"'missing'.*does not load.*ModuleNotFoundError"):
        get("missing")
    with pytest.raises(SearchError, match=r"unknown searcher 'nope'; known: random"):
        get("nope")
    problems = searchers.problems()
    assert set(problems) == {"nofit", "wrongname", "notclass", "missing"}
    assert get("random") is RandomSearch
