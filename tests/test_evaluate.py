"""Metrics, the scatter plot, and the table/predictor commands through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hwprof.cli import app
from hwprof.errors import PredictorError
from hwprof.predictors.evaluate import metrics, scatter_plot
from hwprof.measure.records import Measurement
from hwprof.spaces import space
from hwprof.measure.store import Store

ROOT = Path(__file__).resolve().parents[1]
HELP = ROOT / "tests" / "data" / "help-fbnet" / "fbnet_cifar100_latency_first700.csv"  # arch_id 0-699
SPNAS = ROOT / "data" / "single-path-nas" / "pixel1_runtime_model.json"


def test_metrics_by_hand():
    y = np.array([10.0, 20.0, 30.0, 40.0])
    p = np.array([10.4, 21.5, 27.0, 40.0])  # relative errors 4%, 7.5%, 10%, 0%
    m = metrics(y, p)
    assert m.n == 4
    assert m.mape == pytest.approx((0.04 + 0.075 + 0.10 + 0.0) / 4)
    assert m.within_5 == 0.5 and m.within_10 == 1.0
    assert m.rmse_ms == pytest.approx(np.sqrt((0.16 + 2.25 + 9.0) / 4))
    assert m.spearman == pytest.approx(1.0) and m.kendall == pytest.approx(1.0)
    assert metrics(y, y[::-1]).spearman == pytest.approx(-1.0)
    with pytest.raises(PredictorError):
        metrics(y, p[:3])


def test_scatter_plot_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.uniform(5, 10, 50)
    path = scatter_plot(y, y * rng.normal(1, 0.03, 50), tmp_path / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_import_spnas_and_predict(cli, tmp_path):
    table = tmp_path / "spnas.lut.json"
    r = cli("import", "spnas-json", SPNAS, "-o", table)
    assert r.exit_code == 0, r.output
    arch = "-".join(["k3_e3"] * 20)
    r = cli("predict", "--model", table, arch)
    assert r.exit_code == 0, r.output
    # a Single-Path NAS runtime model prices as the paper's formula does, from the file or the imported table
    from hwprof.latency import SinglePathRuntime, latency_model

    model = latency_model(table, space="spnas")
    assert isinstance(model, SinglePathRuntime)
    expected = SinglePathRuntime.from_json(SPNAS).arch_latency(arch)
    assert model.arch_latency(arch) == expected
    assert float(r.stdout.strip()) == pytest.approx(expected, abs=1e-4)
    r = cli("predict", "--model", table, "k3_e3-skip")
    assert r.exit_code == 2 and "20 searchable layers" in r.output


def test_lut_build_export_and_fit_from_store(cli, tmp_path):
    """A store with op records and arch records: lut build, lut export, fit-predictor --store."""
    sp = space("proxylessnas")
    fp = {"device": "cpu", "backend": "onnxruntime", "runtime": "onnxruntime", "runtime_version": "1",
          "threads": "1", "batch": "1", "cpu": "t", "hwprof_version": "0.1.0"}
    ops = {op for row in sp.choice_ops() for op in row if op is not None and op.kind != "skip"} | set(sp.fixed_ops())
    cost = {op.encode(): 0.02 + op.macs() / 3e8 for op in ops}
    store = tmp_path / "s.sqlite"
    with Store(store) as st:
        for key, ms in cost.items():
            st.add(Measurement("op", key, "", "cpu", (ms, ms * 1.01, ms * 0.99), 3, fp))
        for arch in sp.sample(30, seed=7):
            lut = sum(cost[o.encode()] for o in sp.ops(arch) if o.kind != "skip")
            st.add(Measurement("arch", arch.encode(), "proxylessnas", "cpu", (1.05 * lut + 0.3,), 3, fp))
    table = tmp_path / "cpu.lut.json"
    r = cli("lut", "build", "--store", store, "--device", "cpu", "--space", "proxylessnas", "-o", table)
    assert r.exit_code == 0, r.output
    r = cli("lut", "export", table, "--format", "proxylessnas-yaml", "-o", tmp_path / "cpu.yaml")
    assert r.exit_code == 0, r.output
    assert "expanded_conv-input:" in (tmp_path / "cpu.yaml").read_text()
    model = tmp_path / "cal.json"
    r = cli("fit-predictor", "--space", "proxylessnas", "--store", store, "--device", "cpu",
            "--kind", "lut-calibrated", "--train-size", "20", "-o", model)
    assert r.exit_code == 0, r.output
    assert "held out" in r.stdout
    doc = json.loads(model.read_text())
    assert doc["kind"] == "lut-calibrated" and doc["state"]["scale"] == pytest.approx(1.05, rel=1e-3)
    r = cli("lut", "build", "--store", store, "--device", "phone", "--space", "proxylessnas", "-o", table, "--force")
    assert r.exit_code == 2 and "no op records" in r.output


def test_fit_evaluate_predict_on_help_data(cli, tmp_path):
    frame = pd.read_csv(HELP).sort_values("arch_id")
    train, test = tmp_path / "train.csv", tmp_path / "test.parquet"
    frame.iloc[:300].to_csv(train, index=False)
    pytest.importorskip("pyarrow")
    frame.iloc[400:600].to_parquet(test, index=False)
    model = tmp_path / "m.json"
    r = cli("fit-predictor", "--space", "fbnet-c100", "--data", train, "--arch-column", "ops",
            "--target", "titan_rtx_32_ms", "--kind", "ridge", "--train-size", "250", "--seed", "0", "-o", model)
    assert r.exit_code == 0, r.output
    assert "held out" in r.stdout and "MAPE" in r.stdout
    r = cli("evaluate", "--model", model, "--data", test, "--arch-column", "ops", "--target", "titan_rtx_32_ms",
            "--format", "json", "--plot", tmp_path / "p.png")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n"] == 200 and res["mape"] < 0.03 and res["spearman"] > 0.9
    assert (tmp_path / "p.png").stat().st_size > 1000
    r = cli("predict", "--model", model, "--data", test, "--arch-column", "ops", "-o", tmp_path / "pred.csv")
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 200 and (pred["predicted_ms"] > 0).all()
    prior = tmp_path / "prior.json"
    r = cli("fit-predictor", "--space", "fbnet-c100", "--data", train, "--arch-column", "ops",
            "--target", "titanxp_1_ms", "--kind", "ridge", "-o", prior)
    assert r.exit_code == 0, r.output
    few = tmp_path / "few.csv"
    frame.iloc[300:310].to_csv(few, index=False)
    r = cli("fit-predictor", "--space", "fbnet-c100", "--data", few, "--arch-column", "ops",
            "--target", "gold_6240_ms", "--kind", "transfer", "--prior", prior, "-o", tmp_path / "t.json")
    assert r.exit_code == 0, r.output
    r = cli("fit-predictor", "--space", "fbnet-c100", "--data", train, "--arch-column", "ops",
            "--target", "nope_ms", "--kind", "ridge", "-o", tmp_path / "x.json")
    assert r.exit_code == 2 and "no column 'nope_ms'" in r.output
    r = cli("fit-predictor", "--space", "fbnet-c100", "--data", train, "--arch-column", "ops",
            "--target", "titan_rtx_32_ms", "--kind", "ridge", "--recent", "0.2", "-o", tmp_path / "x.json")
    assert r.exit_code == 2 and "--recent applies to --kind gbdt and mlp" in r.output
    r = cli("fit-predictor", "--space", "fbnet-c100", "--data", train, "--arch-column", "ops",
            "--target", "titan_rtx_32_ms", "--kind", "gbdt", "--recent", "0", "-o", model, "--force")
    assert r.exit_code == 0, r.output
    assert json.loads(model.read_text())["state"]["level"] == 1.0
