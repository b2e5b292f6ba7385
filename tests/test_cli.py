"""The command line: listings, errors for bad input, measure + export through the real entry point."""

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from hwprof.cli import app

runner = CliRunner()


def hwprof(*args, **kw):
    return subprocess.run([sys.executable, "-m", "hwprof.cli", *args], capture_output=True, text=True, timeout=300, **kw)


def test_devices_and_spaces_listings():
    res = runner.invoke(app, ["devices"])
    assert res.exit_code == 0
    for name in ("cpu", "cpu-litert", "cpu-torch", "onnxruntime"):
        assert name in res.stdout
    res = runner.invoke(app, ["spaces"])
    assert res.exit_code == 0
    for name in ("proxylessnas", "fbnet-c100", "spnas", "lightnas", "tfnas", "spos", "ofa-mbv3"):
        assert name in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["measure", "--device", "nope", "--ops"], "unknown device 'nope'; known devices:"),
        (["measure", "--space", "nope", "--ops"], "unknown space 'nope'; known spaces:"),
        (["export", "--store", "missing.sqlite", "-o", "x.csv"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, args, message):
    res = hwprof(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_measure_needs_ops_or_archs(tmp_path):
    res = hwprof("measure", "--device", "cpu", cwd=tmp_path)
    assert res.returncode != 0 and "--ops, --archs N, --model FILE or --kernels" in res.stderr


def test_malformed_device_toml_names_the_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[device\nbackend='onnxruntime'\n")
    res = hwprof("measure", "--device", str(bad), "--ops", cwd=tmp_path)
    assert res.returncode == 2 and "bad.toml" in res.stderr and "line 1" in res.stderr


def test_corrupt_store_is_refused_by_measure(tmp_path):
    (tmp_path / "s.sqlite").write_bytes(b"nonsense" * 10)
    res = hwprof("measure", "--ops", "--store", "s.sqlite", "--limit", "1", cwd=tmp_path)
    assert res.returncode == 2 and "not an SQLite file" in res.stderr
    assert (tmp_path / "s.sqlite").read_bytes() == b"nonsense" * 10


def test_measure_then_export(tmp_path):
    args = ["measure", "--device", "cpu", "--space", "fbnet-c100", "--archs", "2", "--seed", "1",
            "--store", "r.sqlite", "--max-runs", "10", "--min-runs", "5", "--max-time", "1", "--rounds", "2"]
    res = hwprof(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "4 new records (2 round(s) per workload)" in res.stdout
    res = hwprof(*args, cwd=tmp_path)
    assert "nothing new to measure" in res.stdout
    res = hwprof("export", "--store", "r.sqlite", "--format", "parquet", "-o", "r.parquet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert len(df) == 4 and (df.median_ms > 0).all() and set(df.device) == {"cpu"}
    assert sorted(df["round"]) == [1, 1, 2, 2] and df.arch.nunique() == 2


def test_measure_samples_widths_in_elastic_width_spaces(tmp_path):
    res = hwprof("measure", "--ops", "--widths", cwd=tmp_path)
    assert res.returncode == 2 and "--widths applies to --archs" in res.stderr
    res = hwprof("measure", "--space", "proxylessnas", "--archs", "1", "--widths", cwd=tmp_path)
    assert res.returncode == 2 and "no elastic width" in res.stderr
    res = hwprof("measure", "--device", "cpu", "--space", "tfnas", "--archs", "1", "--widths", "--seed", "2",
                 "--store", "w.sqlite", "--max-runs", "3", "--min-runs", "2", "--max-time", "1", "--rounds", "1",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = hwprof("export", "--store", "w.sqlite", "-o", "w.csv", cwd=tmp_path)
    assert "@" in pd.read_csv(tmp_path / "w.csv").arch[0]


def test_fit_predictor_auto_sees_the_resolution(tmp_path):
    """The issue's reproduction: ofa-mbv3 with mixed resolutions, --kind gbdt and auto fit and beat the one-hot."""
    from hwprof.spaces import space

    sp = space("ofa-mbv3")
    archs = sp.sample(160, seed=4)
    ms = [sum(0.02 + 0.004 * (op.macs() / 1e6) ** 0.9 for op in sp.ops(a) if op.kind != "skip") for a in archs]
    pd.DataFrame({"arch": [a.encode() for a in archs], "t_ms": ms}).to_csv(tmp_path / "ofa.csv", index=False)
    for kind in ("gbdt", "auto"):
        res = hwprof("fit-predictor", "--space", "ofa-mbv3", "--data", "ofa.csv", "--target", "t_ms",
                     "--kind", kind, "--train-size", "120", "-o", f"{kind}.json", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    assert "chose" in res.stdout and "latest 24 rows" in res.stdout
    res = hwprof("predict", "--model", "auto.json", archs[0].encode(), cwd=tmp_path)
    assert res.returncode == 0 and abs(float(res.stdout.split()[0]) / ms[0] - 1) < 0.05, res.stdout
