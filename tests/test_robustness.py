"""Nothing lost, nothing silent (issue 15): every CLI command with broken inputs gives one line and exit 2.

The matrix drives the commands through :data:`hwprof.cli.app` (and a few through ``python -m hwprof.cli``)
with the bad inputs of the issue; each case asserts exit status 2, no traceback, a short message that
names the problem, and that no input file was touched.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import hwprof
from hwprof.cli import app
from hwprof.errors import ConfigError, PredictorError, SpaceError
from hwprof.measure.records import Measurement
from hwprof.measure.store import Store

ROOT = Path(__file__).resolve().parents[1]
HELP = ROOT / "tests" / "data" / "help-fbnet" / "fbnet_cifar100_latency_first700.csv"
YAML = ROOT / "tests" / "data" / "proxylessnas" / "mobile_trim.yaml"
SPACE = "fbnet-c100"
runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good inputs (store, data, model, table) and broken ones, in one folder."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("robust")
    f: dict[str, Path] = {"dir": d}
    frame = pd.read_csv(HELP).iloc[:60]
    f["data"] = d / "data.csv"
    frame[["ops", "titan_rtx_32_ms"]].to_csv(f["data"], index=False)
    f["one_row"] = d / "one.csv"
    frame[["ops", "titan_rtx_32_ms"]].iloc[:1].to_csv(f["one_row"], index=False)
    f["empty"] = d / "empty.csv"
    f["empty"].write_text("")
    f["binary"] = d / "binary.csv"
    f["binary"].write_bytes(bytes(range(256)) * 8)
    f["unquoted"] = d / "unquoted.csv"
    f["unquoted"].write_text(f"ops,titan_rtx_32_ms\n{frame['ops'].iloc[0]},1.0\nk3_e1,skip,k5_e6,2.0\n")
    sp = hwprof.space(SPACE)
    model = hwprof.predictors.make_predictor("ridge", space=SPACE, device="titan_rtx_32")
    archs = [sp.parse(a) for a in frame["ops"]]
    model.fit(sp.one_hot(archs), frame["titan_rtx_32_ms"].to_numpy())
    f["model"] = model.save(d / "model.json")
    f["model_npz"] = model.save(d / "model.npz")
    f["truncated"] = d / "truncated.npz"
    f["truncated"].write_bytes(f["model_npz"].read_bytes()[:200])
    doc = json.loads(f["model"].read_text())
    f["kind_edited"] = d / "kind_edited.json"
    f["kind_edited"].write_text(json.dumps({**doc, "kind": "mlp"}))
    f["space_edited"] = d / "space_edited.json"
    f["space_edited"].write_text(json.dumps({**doc, "space": "nope-space"}))
    f["space_unknown"] = d / "space_unknown.json"
    f["space_unknown"].write_text(json.dumps({**doc, "space": "nope-space", "params": {**doc["params"], "space": "nope-space"}}))
    f["arch"] = frame["ops"].iloc[0]
    # a table for fbnet-c100 from op records of a store
    fp = {"device": "cpu", "backend": "onnxruntime", "runtime": "onnxruntime", "runtime_version": "1",
          "threads": "1", "batch": "1", "cpu": "t", "hwprof_version": "0.1"}
    ops = {op for row in sp.choice_ops() for op in row if op is not None and op.kind != "skip"} | set(sp.fixed_ops())
    f["store"] = d / "s.sqlite"
    with Store(f["store"]) as st:
        for op in ops:
            ms = 0.02 + op.macs() / 3e8
            st.add(Measurement("op", op.encode(), "", "cpu", (ms, ms * 1.01), 3, fp))
    f["table"] = d / "table.json"
    assert runner.invoke(app, ["lut", "build", "--store", str(f["store"]), "--device", "cpu", "--space", SPACE,
                               "-o", str(f["table"])]).exit_code == 0
    table = json.loads(f["table"].read_text())
    key = next(iter(table["entries"]))
    for name, value in (("lut_string", "fast"), ("lut_negative", -5.0), ("lut_huge", 1e300)):
        f[name] = d / f"{name}.json"
        f[name].write_text(json.dumps({**table, "entries": {**table["entries"], key: value}}))
    f["lut_nan"] = d / "lut_nan.json"
    f["lut_nan"].write_text(json.dumps({**table, "entries": {**table["entries"], key: float("nan")}}))
    f["pickle"] = d / "runtime.pkl"
    f["pickle"].write_bytes(pickle.dumps({"a": 1}))
    f["bomb"] = d / "bomb.yaml"
    f["bomb"].write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                  f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    )
    f["existing"] = d / "existing.csv"
    f["existing"].write_text("keep me\n")
    f["folder"] = d / "folder"
    f["folder"].mkdir()
    f["a_file"] = d / "a_file"
    f["a_file"].write_text("x")
    devices = d / "device_configs"
    devices.mkdir()
    base = '[device]\nbackend = "onnxruntime"\n'
    for name, text in {
        "rounds": base + "[protocol]\nrounds = 2.5\n",
        "device_typo": base + "thread = 1\n",
        "backend_typo": base + "[backend]\nevn = {}\n",
        "tuning_typo": '[device]\nbackend = "android"\n[tuning]\ngovernr = "performance"\n',
        "ci_nan": base + "[protocol]\ntarget_ci = nan\n",
    }.items():
        f[f"toml_{name}"] = devices / f"{name}.toml"
        f[f"toml_{name}"].write_text(text)
    return f


def _snapshot(f: dict[str, Path]) -> dict[str, bytes]:
    return {k: p.read_bytes() for k, p in f.items() if isinstance(p, Path) and p.is_file()}


def _cases(f: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, text the one-line error must contain)."""
    s, data, model, table, arch = str(f["store"]), str(f["data"]), str(f["model"]), str(f["table"]), f["arch"]
    fit = ["fit-predictor", "--space", SPACE, "--arch-column", "ops", "--target", "titan_rtx_32_ms"]
    out = str(f["dir"] / "new-model.json")
    return {
        # 1. outputs
        "export over its own store": (["export", "--store", s, "-o", s], "input of this command"),
        "export over an existing file": (["export", "--store", s, "-o", str(f["existing"])], "pass --force"),
        "export into a folder": (["export", "--store", s, "-o", str(f["folder"])], "is a folder"),
        "export below a file": (["export", "--store", s, "-o", str(f["a_file"] / "x.csv")], "is a file, not a folder"),
        "predict over its model": (["predict", "--model", model, "--data", data, "--arch-column", "ops", "-o", model],
                                   "input of this command"),
        "predict over its data, forced": (["predict", "--model", model, "--data", data, "--arch-column", "ops",
                                           "-o", data, "--force"], "input of this command"),
        "predict into a folder": (["predict", "--model", model, arch, "-o", str(f["folder"])], "is a folder"),
        "fit-predictor over its data": ([*fit, "--data", data, "--kind", "ridge", "-o", data], "input of this command"),
        "fit-predictor over a model": ([*fit, "--data", data, "--kind", "ridge", "-o", model], "pass --force"),
        "fit-predictor over its store": (["fit-predictor", "--space", SPACE, "--store", s, "--device", "cpu",
                                          "-o", s, "--force"], "input of this command"),
        "import over its input": (["import", "proxylessnas-yaml", str(YAML), "-o", str(YAML), "--force"],
                                  "input of this command"),
        "import over a file": (["import", "proxylessnas-yaml", str(YAML), "-o", model], "pass --force"),
        "lut build over its store": (["lut", "build", "--store", s, "--device", "cpu", "--space", SPACE, "-o", s],
                                     "input of this command"),
        "lut build over a table": (["lut", "build", "--store", s, "--device", "cpu", "--space", SPACE, "-o", table],
                                   "pass --force"),
        "lut export over its table": (["lut", "export", table, "--format", "proxylessnas-yaml", "-o", table,
                                       "--force"], "input of this command"),
        "evaluate --plot p.xyz": (["evaluate", "--model", model, "--data", data, "--arch-column", "ops",
                                   "--target", "titan_rtx_32_ms", "--plot", str(f["dir"] / "p.xyz")], "cannot write .xyz"),
        "evaluate --plot over its data": (["evaluate", "--model", model, "--data", data, "--arch-column", "ops",
                                           "--target", "titan_rtx_32_ms", "--plot", data, "--force"],
                                          "input of this command"),
        "fake-phone --write-config over a file": (["fake-phone", "--write-config", str(f["existing"]), "--seconds", "0"],
                                                  "pass --force"),
        "show a missing store": (["show", "--store", str(f["dir"] / "missing.sqlite")], "does not exist"),
        "show a CSV as store": (["show", "--store", data], "not an SQLite file"),
        # 3. validation at the boundary
        "measure --seed -1": (["measure", "--archs", "1", "--seed", "-1", "--store", s], "--seed"),
        "measure --target-ci nan": (["measure", "--ops", "--target-ci", "nan", "--store", s], "target_ci"),
        "measure --target-ci 0": (["measure", "--ops", "--target-ci", "0", "--store", s], "target_ci"),
        "measure --limit -1": (["measure", "--ops", "--limit", "-1", "--store", s], "--limit"),
        "measure --archs -3": (["measure", "--archs", "-3", "--store", s], "--archs"),
        "measure rounds = 2.5": (["measure", "--ops", "--device", str(f["toml_rounds"]), "--store", s], "whole number"),
        "measure target_ci = nan": (["measure", "--ops", "--device", str(f["toml_ci_nan"]), "--store", s],
                                    "target_ci"),
        "device show rounds = 2.5": (["device", "show", str(f["toml_rounds"])], "protocol.rounds must be a whole number"),
        "device show [device] typo": (["device", "show", str(f["toml_device_typo"])], "did you mean 'threads'"),
        "device show [backend] typo": (["device", "show", str(f["toml_backend_typo"])], "did you mean 'env'"),
        "device show [tuning] typo": (["device", "show", str(f["toml_tuning_typo"])], "did you mean 'governor'"),
        "measure --resolution with --archs": (["measure", "--archs", "2", "--resolution", "160", "--store", s],
                                              "--resolution applies to --ops"),
        "fit-predictor empty CSV": ([*fit, "--data", str(f["empty"]), "-o", out], "is empty"),
        "fit-predictor binary CSV": ([*fit, "--data", str(f["binary"]), "-o", out], "not text"),
        "fit-predictor unquoted CSV": ([*fit, "--data", str(f["unquoted"]), "-o", out], "not well-formed CSV"),
        "evaluate empty CSV": (["evaluate", "--model", model, "--data", str(f["empty"]), "--arch-column", "ops",
                                "--target", "titan_rtx_32_ms"], "is empty"),
        "predict binary CSV": (["predict", "--model", model, "--data", str(f["binary"])], "not text"),
        "predict truncated npz": (["predict", "--model", str(f["truncated"]), arch], "truncated"),
        "transfer with a truncated --prior": ([*fit, "--data", data, "--kind", "transfer", "--prior",
                                               str(f["truncated"]), "-o", out], "truncated"),
        "predict model with edited kind": (["predict", "--model", str(f["kind_edited"]), arch], "does not hold"),
        "predict model with edited space": (["predict", "--model", str(f["space_edited"]), arch], "it was edited"),
        "predict model of an unknown space": (["predict", "--model", str(f["space_unknown"]), arch],
                                              "unknown space 'nope-space'"),
        "predict LUT with a string entry": (["predict", "--model", str(f["lut_string"]), arch], "'fast'"),
        "predict LUT with a negative entry": (["predict", "--model", str(f["lut_negative"]), arch], "-5.0"),
        "predict LUT with a 1e300 entry": (["predict", "--model", str(f["lut_huge"]), arch], "1e+300"),
        "predict LUT with a NaN entry": (["predict", "--model", str(f["lut_nan"]), arch], "nan"),
        "fit-predictor --table LUT negative": ([*fit, "--data", data, "--kind", "lut", "--table", str(f["lut_negative"]),
                                                "-o", out], "-5.0"),
        "import spnas-json given a pickle": (["import", "spnas-json", str(f["pickle"]), "-o", out], "not a text file"),
        "fit-predictor --kind auto on one row": ([*fit, "--data", str(f["one_row"]), "--kind", "auto", "-o", out],
                                                 "at least"),
        "fit-predictor --kind ridge on one row": ([*fit, "--data", str(f["one_row"]), "--kind", "ridge", "-o", out],
                                                  "at least"),
        "fit-predictor --prior without transfer": ([*fit, "--data", data, "--kind", "ridge", "--prior", model,
                                                    "-o", out], "--prior applies"),
        "predict model for another space": (["predict", "--model", model, "--space", "proxylessnas", arch],
                                            "not 'proxylessnas'"),
        # 5. limits
        "import a YAML alias bomb": (["import", "proxylessnas-yaml", str(f["bomb"]), "-o", out], "aliases"),
        "predict a 200,000-layer architecture": (["predict", "--model", model, "-".join(["k3_e1"] * 200_000)],
                                                 "longer than any architecture"),
        "measure --archs 99999999999": (["measure", "--archs", "99999999999", "--store", s], "at most 1000000"),
    }


CASE_NAMES = list(_cases({k: Path("x") for k in (
    "store", "data", "model", "table", "existing", "folder", "a_file", "dir", "empty", "binary", "unquoted",
    "truncated", "kind_edited", "space_edited", "space_unknown", "lut_string", "lut_negative", "lut_huge", "lut_nan", "pickle",
    "one_row", "bomb", "toml_rounds", "toml_ci_nan", "toml_device_typo", "toml_backend_typo", "toml_tuning_typo")}
    | {"arch": "a"}))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_and_exit_2(files, name, monkeypatch):
    argv, needle = _cases(files)[name]
    monkeypatch.chdir(files["dir"])
    before = _snapshot(files)
    t0 = time.monotonic()
    res = runner.invoke(app, argv)
    elapsed = time.monotonic() - t0
    assert res.exit_code == 2, f"{name}: exit {res.exit_code}\n{res.output}\n{res.exception!r}"
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    text = res.output
    assert "Traceback" not in text
    assert needle in " ".join(text.split()), f"{name}: {needle!r} not in {text!r}"
    errors = [ln for ln in text.splitlines() if ln.startswith("hwprof: error:")]
    if errors:  # hwprof's own errors are one line, short, quoting at most ~100 characters of a value
        assert len(errors) == 1 and len(errors[0]) < 400, errors
    else:  # typer's usage errors: a boxed message, still no traceback
        assert "Invalid value" in text or "Usage" in text, text
    assert len(text) < 2000
    assert elapsed < 20, f"{name} took {elapsed:.1f} s"
    assert _snapshot(files) == before, f"{name} changed an input"


def test_usage_and_data_errors_through_the_entry_point(files):
    """The same one-line form and exit 2 through ``python -m hwprof.cli`` (what users run)."""
    for argv, needle in (
        (["export", "--store", str(files["store"]), "-o", str(files["store"])], "input of this command"),
        (["measure", "--archs", "1", "--seed", "-1"], "--seed"),
        (["predict", "--model", str(files["truncated"]), files["arch"]], "truncated"),
    ):
        res = subprocess.run([sys.executable, "-m", "hwprof.cli", *argv], capture_output=True, text=True,
                             timeout=120, cwd=files["dir"])
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and needle in res.stderr


def test_outputs_create_folders_force_and_stay_whole_on_failure(files, tmp_path):
    s = str(files["store"])
    target = tmp_path / "new" / "deeper" / "records.csv"
    res = runner.invoke(app, ["export", "--store", s, "-o", str(target)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(target)) == len(Store(files["store"]))
    target.write_text("old\n")
    res = runner.invoke(app, ["export", "--store", s, "-o", str(target), "--force"])
    assert res.exit_code == 0 and target.read_text() != "old\n"
    # a failed write leaves the old file whole and no temporary file behind
    pred = tmp_path / "pred.csv"
    pred.write_text("old\n")
    res = runner.invoke(app, ["predict", "--model", str(files["model"]), "not-an-arch", "-o", str(pred), "--force"])
    assert res.exit_code == 2 and pred.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "pred.csv"]
    res = runner.invoke(app, ["predict", "--model", str(files["model"]), files["arch"], "-o", str(pred), "--force"])
    assert res.exit_code == 0 and "predicted_ms" in pred.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "pred.csv"]


def test_training_rows_far_outside_are_named(files, tmp_path):
    frame = pd.read_csv(files["data"])
    frame.loc[7, "titan_rtx_32_ms"] = 1e12
    bad = tmp_path / "outlier.csv"
    frame.to_csv(bad, index=False)
    res = runner.invoke(app, ["fit-predictor", "--space", SPACE, "--arch-column", "ops", "--target", "titan_rtx_32_ms",
                              "--data", str(bad), "--kind", "ridge", "-o", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert "hwprof: warning: 1 training row(s) lie far outside the rest" in " ".join(res.output.split())
    assert "row 8 (1e+12 ms)" in res.output
    frame = pd.read_csv(files["data"])
    dup = pd.concat([frame, frame.iloc[[4]].assign(titan_rtx_32_ms=frame["titan_rtx_32_ms"].iloc[4] * 10)])
    dup.to_csv(bad, index=False)
    res = runner.invoke(app, ["fit-predictor", "--space", SPACE, "--arch-column", "ops", "--target", "titan_rtx_32_ms",
                              "--data", str(bad), "--kind", "ridge", "-o", str(tmp_path / "m.json"), "--force"])
    assert res.exit_code == 0, res.output
    assert "1 architecture(s) appear more than once with latencies over 2× apart, e.g. rows 5, 61" in \
        " ".join(res.output.split())


def test_show_prints_every_workload(files):
    res = runner.invoke(app, ["show", "--store", str(files["store"]), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == len(Store(files["store"])) and rows[0]["median_ms"] >= rows[-1]["median_ms"]
    res = runner.invoke(app, ["show", "--store", str(files["store"])])
    assert res.exit_code == 0 and f"{len(rows)} workloads in" in res.stdout


# -- the library boundary -----------------------------------------------------------------------------
def test_expected_refuses_negative_and_nan_weights(files):
    sp = hwprof.space(SPACE)
    for source in (files["table"], files["model"]):
        lat = hwprof.latency_model(source, space=sp)
        w = lat.masked_softmax(torch.zeros(sp.num_layers, sp.max_choices))
        assert float(lat.expected(w)) > 0
        neg = w.clone()
        neg[3, 0] = -0.5
        with pytest.raises(SpaceError, match="finite and non-negative.*-0.5"):
            lat.expected(neg)
        nan = w.clone()
        nan[2, 1] = float("nan")
        with pytest.raises(SpaceError, match="finite and non-negative.*nan"):
            lat.expected(nan)


def test_latency_model_refuses_a_file_of_another_space(files):
    with pytest.raises(PredictorError, match=f"space '{SPACE}', not 'proxylessnas'"):
        hwprof.latency_model(files["model"], space="proxylessnas")
    with pytest.raises(PredictorError, match="not 'proxylessnas'"):
        hwprof.latency_model(files["table"], space=hwprof.space("proxylessnas"))
    with pytest.raises(PredictorError, match="it was edited"):
        hwprof.latency_model(files["space_edited"])
    with pytest.raises(SpaceError, match="nope-space"):
        hwprof.latency_model(files["space_unknown"])


def test_plan_values_are_checked_when_read():
    from hwprof.measure.protocol import Plan

    for bad in ({"target_ci": float("nan")}, {"target_ci": 0.0}, {"rounds": 2.5}, {"max_time_s": float("inf")},
                {"max_runs": "many"}):
        with pytest.raises(ConfigError):
            Plan().updated(bad)
    assert Plan().updated({"rounds": 3.0}).rounds == 3


def test_limit_applies_before_sampling():
    from hwprof.measure.campaign import arch_workloads

    sp = hwprof.space(SPACE)
    t0 = time.monotonic()
    assert arch_workloads(sp, 99_999_999_999, seed=0, limit=0) == []
    few = arch_workloads(sp, 99_999_999_999, seed=4, limit=3)
    assert time.monotonic() - t0 < 2
    assert [w.key for w in few] == [w.key for w in arch_workloads(sp, 10, seed=4)[:3]]


def test_yaml_alias_bomb_is_refused_fast(files):
    from hwprof.tables.formats.latency_yaml import import_proxylessnas_yaml

    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="aliases"):
        import_proxylessnas_yaml(files["bomb"])
    assert time.monotonic() - t0 < 1
    assert len(import_proxylessnas_yaml(YAML)) > 10  # the published table still loads


def test_plan_line_and_confirmation(monkeypatch):
    from hwprof.cli import measure as m
    from hwprof.measure.protocol import Plan

    lines: list[str] = []
    monkeypatch.setattr(m.err, "print", lambda text, **kw: lines.append(text))
    m._confirm_plan(range(100_000), Plan(), yes=False)  # not interactive under pytest: no question
    assert "100000 workloads × 1 round(s), at most 283.3 h" in lines[0]
    m._confirm_plan(range(10), Plan(rounds=10, max_rounds=20, max_time_s=10, warmup_s=0), yes=True)
    assert "10 workloads × 10 round(s) (up to 20 where rounds disagree" in lines[1] and "cap 20 s per workload" in lines[1]
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    asked: list[str] = []
    monkeypatch.setattr(m.typer, "confirm", lambda text, **kw: asked.append(text) or False)
    with pytest.raises(m.typer.Exit):
        m._confirm_plan(range(100_000), Plan(), yes=False)
    assert asked and "over an hour" in asked[0]
    m._confirm_plan(range(100_000), Plan(), yes=True)  # --yes: no question
    m._confirm_plan(range(10), Plan(), yes=False)  # short: no question
    assert len(asked) == 1
