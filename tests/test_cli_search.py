"""``hwprof searchers`` and ``hwprof search``: outputs, --set typing, one-line errors (exit 2)."""

from __future__ import annotations

import csv
import json
from importlib import metadata

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import hwprof
import searchers
from hwprof.cli.search import latency_range, parse_constraint, parse_sets, register
from hwprof.errors import ConfigError
from searchers import GROUP
from searchers.base import SearchError, SearchResult
from searchers.testing import RandomSearch, _macs_table, macs_table_model

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


class RuntimeOnly(RandomSearch):
    name = "runtime_only"
    default_space = "spnas"
    latency_kinds = ("single-path-runtime",)


class WidthSearch(RandomSearch):
    name = "width_search"
    default_space = "tfnas"
    latency_kinds = ("differentiable", "width")


@pytest.fixture
def fake_registry(monkeypatch):
    eps = [
        metadata.EntryPoint("random", "searchers.testing:RandomSearch", GROUP),
        metadata.EntryPoint("runtime_only", f"{__name__}:RuntimeOnly", GROUP),
        metadata.EntryPoint("width_search", f"{__name__}:WidthSearch", GROUP),
    ]
    monkeypatch.setattr(searchers, "_entry_points", lambda: eps)


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    """A MACs-priced latency table of proxylessnas (hwprof JSON table)."""
    path = tmp_path_factory.mktemp("lat") / "proxyless-macs.json"
    _macs_table(hwprof.space("proxylessnas"), 0.05, 2.0).save(path)
    return path


def _search(app, *args: str):
    return runner.invoke(app, ["search", *args])


def test_searchers_lists_every_registered_plugin(app) -> None:
    res = runner.invoke(app, ["searchers"])
    assert res.exit_code == 0, res.output
    for name, cls in searchers.available().items():
        assert name in res.stdout and cls.default_space in res.stdout


def test_search_text_json_and_out_dir_agree(app, fake_registry, table_file, tmp_path) -> None:
    base = ["--searcher", "random", "--latency", str(table_file), "--target-ms", "20", "--task", "stand-in",
            "--budget", "3", "--seed", "4"]
    res = _search(app, *base)
    assert res.exit_code == 0, res.output
    arch_line, summary = res.stdout.strip().splitlines()
    space = hwprof.space("proxylessnas")
    space.parse(arch_line)
    assert summary.startswith("latency ") and "target 20.00 ms" in summary

    out = tmp_path / "run"
    res2 = _search(app, *base, "--format", "json", "--out", str(out))
    assert res2.exit_code == 0, res2.output
    report = SearchResult.from_json((out / "report.json").read_text())
    assert json.loads(res2.stdout) == json.loads((out / "report.json").read_text())
    assert report.arch == arch_line  # same seed, same architecture
    lat = hwprof.latency_model(table_file, space=space)
    assert report.latency_ms == lat.arch_latency(report.arch)
    assert (out / "arch.txt").read_text().strip() == report.arch
    with (out / "trace.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(report.trace) == 3 and float(rows[0]["latency_ms"]) == report.trace[0]["latency_ms"]
    before = (out / "report.json").read_bytes()
    again = _search(app, *base, "--out", str(out))  # the run's files exist: refused before any search
    _one_line_error(again, "--force")
    assert (out / "report.json").read_bytes() == before
    assert _search(app, *base, "--out", str(out), "--force").exit_code == 0
    pytest.importorskip("matplotlib")
    assert (out / "latency_loss.png").stat().st_size > 1000


def _one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwprof: error: "), res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_unknown_searcher_lists_the_known(app, fake_registry) -> None:
    _one_line_error(_search(app, "--searcher", "nope"), "unknown searcher 'nope'", "random", "runtime_only")


def test_set_unknown_key_and_bad_type(app, fake_registry, table_file) -> None:
    base = ["--searcher", "random", "--latency", str(table_file), "--target-ms", "20", "--task", "stand-in"]
    _one_line_error(_search(app, *base, "--set", "bogus=1"), "no hyperparameter 'bogus'", "samples, epochs")
    _one_line_error(_search(app, *base, "--set", "samples=many"), "--set samples=many", "expected int")
    _one_line_error(_search(app, *base, "--set", "samples"), "key=value")


def test_target_outside_the_models_range(app, fake_registry, table_file) -> None:
    space = hwprof.space("proxylessnas")
    lat = hwprof.latency_model(table_file, space=space)
    lo, hi = latency_range(lat, space)
    for target in (lo * 0.9, hi * 1.1):
        res = _search(app, "--searcher", "random", "--latency", str(table_file), "--target-ms", f"{target:.3f}",
                      "--task", "stand-in")
        _one_line_error(res, "is outside what proxyless-macs.json reaches on proxylessnas", f"{lo:.1f}–{hi:.1f} ms")


def test_latency_model_of_the_wrong_kind(app, fake_registry, table_file, tmp_path) -> None:
    res = _search(app, "--searcher", "runtime_only", "--space", "proxylessnas", "--latency", str(table_file),
                  "--task", "stand-in")
    _one_line_error(res, "runtime_only needs a single-path-runtime latency model", "pixel1_runtime_model.json")
    tf = hwprof.space("tfnas")
    no_sweep = tmp_path / "tfnas-no-widths.json"
    # a table with the default widths only: its sibling candidates do not cover the elastic mid ranges
    macs_table = _macs_table(tf, 0.05, 2.0)
    from hwprof.tables import LatencyTable

    keep = {}
    for row in tf.choice_ops():
        for op in row:
            if op is not None and op.kind != "skip":
                keep[op.encode()] = macs_table.entries[op.encode()]
    for op in tf.fixed_ops():
        keep[op.encode()] = macs_table.entries[op.encode()]
    LatencyTable(keep, 0.0, dict(macs_table.metadata)).save(no_sweep)
    res = _search(app, "--searcher", "width_search", "--latency", str(no_sweep), "--task", "stand-in")
    _one_line_error(res, "width_search needs a width latency model", "TF-NAS latency_gpu.pkl")


def test_bad_constraint_budget_and_task(app, fake_registry, table_file) -> None:
    base = ["--searcher", "random", "--latency", str(table_file), "--task", "stand-in"]
    _one_line_error(_search(app, *base, "--constraint", "speed:3"), "cannot read constraint 'speed:3'")
    _one_line_error(_search(app, *base, "--constraint", "flops:1e6"), "below the smallest architecture")
    _one_line_error(_search(app, *base, "--budget", "soon"), "cannot read budget 'soon'")
    _one_line_error(_search(app, "--searcher", "random", "--latency", str(table_file), "--task", "cifar"),
                    "unknown task 'cifar'")


def test_parse_sets_types_by_default() -> None:
    class P(RandomSearch):
        name = "p"

        def __init__(self, lr: float = 0.1, steps: int = 3, on: bool = False, mode: str = "two",
                     betas: tuple = (0.5, 0.9), extra=None):
            self.lr, self.steps, self.on, self.mode, self.betas, self.extra = lr, steps, on, mode, betas, extra

    got = parse_sets(P, ["lr=1e-3", "steps=20", "on=yes", "mode=full_v2", "betas=0,0.999", "extra=7"])
    assert got == {"lr": 1e-3, "steps": 20, "on": True, "mode": "full_v2", "betas": (0.0, 0.999), "extra": 7}
    assert type(got["steps"]) is int and type(got["lr"]) is float
    assert parse_sets(P, ["extra=none", "betas=[1, 2]"]) == {"extra": None, "betas": (1.0, 2.0)}
    with pytest.raises(ConfigError, match="expected int"):
        parse_sets(P, ["steps=2.5"])
    with pytest.raises(ConfigError, match="true/false"):
        parse_sets(P, ["on=maybe"])
    with pytest.raises(SearchError, match="known: lr, steps, on, mode, betas, extra"):
        parse_sets(P, ["lam=1"])


def test_parse_constraint() -> None:
    assert parse_constraint("flops:330e6") == {"kind": "flops", "limit": 330e6}
    assert parse_constraint("latency:80") == {"kind": "latency", "limit": 80.0}
    assert parse_constraint("macs:3e8") == {"kind": "flops", "limit": 3e8}
    for bad in ("flops", "latency:-1", "latency:inf", "x:1"):
        with pytest.raises(ConfigError):
            parse_constraint(bad)


def test_latency_range_is_exact_for_additive_tables() -> None:
    space = hwprof.space("proxylessnas")
    lat = macs_table_model(space)
    lo, hi = latency_range(lat, space)
    v = np.where(space.mask, lat.values, np.nan)
    assert lo == pytest.approx(np.nanmin(v, 1).sum() + lat.constant_ms, rel=1e-12)
    assert hi == pytest.approx(np.nanmax(v, 1).sum() + lat.constant_ms, rel=1e-12)
    sampled = lat.score(space.sample(500, seed=9))
    assert lo <= sampled.min() and sampled.max() <= hi


DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data"


def _latency_file(cls, tmp_path):
    """A latency file each registered searcher takes on its default space."""
    if "single-path-runtime" in cls.latency_kinds:
        return DATA / "single-path-nas" / "pixel1_runtime_model.json"
    if cls.default_space == "lightnas" and "width" not in cls.latency_kinds:
        return DATA / "lightnas" / "latency_predictor.pth.tar"
    path = tmp_path / f"{cls.default_space}-macs.json"
    _macs_table(hwprof.space(cls.default_space), 0.05, 2.0).save(path)
    return path


@pytest.mark.parametrize("name", sorted(searchers.available()))
def test_search_with_every_registered_searcher(app, name, tmp_path) -> None:
    from searchers.testing import conformance_target

    cls = searchers.get(name)
    space = hwprof.space(cls.default_space)
    path = _latency_file(cls, tmp_path)
    lat = hwprof.latency_model(path, space=space)
    target = conformance_target(lat, space)
    res = _search(app, "--searcher", name, "--latency", str(path), "--target-ms", f"{target:.4f}",
                  "--task", "stand-in", "--budget", "2", "--format", "json")
    assert res.exit_code == 0, res.output
    report = SearchResult.from_json(res.stdout)
    assert report.searcher == name and report.latency_ms == lat.arch_latency(report.arch)


def test_search_on_the_digits_proxy(app, fake_registry, table_file) -> None:
    res = _search(app, "--searcher", "random", "--latency", str(table_file), "--target-ms", "20",
                  "--task", "digits", "--resolution", "16", "--set", "samples=2", "--budget", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    report = SearchResult.from_json(res.stdout)
    assert report.proxy["task"] == "digits" and report.proxy["resolution"] == 16
    assert report.proxy["width_mult"] == 0.25 and report.proxy["classes"] == 10
    assert report.hyperparameters["samples"] == 2


def test_commands_are_in_the_hwprof_app() -> None:
    from hwprof.cli import app as hwprof_app

    res = runner.invoke(hwprof_app, ["searchers"])
    assert res.exit_code == 0 and all(name in res.stdout for name in searchers.available())
    res = runner.invoke(hwprof_app, ["search", "--searcher", "nope"])
    assert res.exit_code == 2 and "unknown searcher 'nope'" in res.stderr
