"""Parsers of trtexec and tegrastats output on captured text (tests/data, each file names its source),
the power window and energy arithmetic, RAPL on a stand-in powercap tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwprof.devices import tegrastats, trtexec
from hwprof.devices.power import PowerWindow, RaplMeter, energy_mj, rapl_status
from hwprof.errors import ConfigError, MeasurementError, MissingEntryError

DATA = Path(__file__).parent / "data"


def capture(folder: str, name: str) -> str:
    text = (DATA / folder / name).read_text()
    assert text.startswith("# source: https://"), f"{name} must name its source on its first line"
    return "\n".join(line for line in text.splitlines() if not line.startswith("# ")) + "\n"


@pytest.mark.parametrize(
    "code, text", [(8400, "8.4.0"), (8503, "8.5.3"), (8601, "8.6.1"), (100300, "10.3.0"), (101602, "10.16.2")]
)
def test_version_numbers(code, text):
    assert trtexec.version_text(code) == text


def test_trt84_xavier_summary_and_verdict():
    run = trtexec.parse(capture("trtexec", "trt8.4-xavier-summary.txt"))
    assert run.version == "8.4.0" and run.passed is True
    gpu = run.summary["GPU Compute Time"]
    assert (gpu.min_ms, gpu.max_ms, gpu.mean_ms, gpu.median_ms) == (0.375977, 0.403564, 0.388221, 0.388443)
    assert gpu.percentiles == {99.0: 0.393188}
    assert set(run.summary) == {"Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time", "D2H Latency"}
    assert run.samples_ms == () and run.source == ""  # a summary holds aggregates, never samples


def test_trt85_trace_averages_are_means_of_k_runs():
    run = trtexec.parse(capture("trtexec", "trt8.5-yolov10-summary.txt"))
    assert run.runs_per_sample == 1000 and run.samples_ms == (1.29198, 1.33715) and run.source == trtexec.SOURCE_TRACE
    assert run.summary["GPU Compute Time"].median_ms == 1.26953
    start = trtexec.parse(capture("trtexec", "trt8.5-yolov10-start.txt"))
    assert (start.warmup_queries, start.timed_queries) == (1, 1132)


def test_trt86_averages_and_device_block():
    run = trtexec.parse(capture("trtexec", "trt8.6-a100-averages.txt"))
    assert len(run.samples_ms) == 11 and run.runs_per_sample == 10 and run.samples_ms[0] == 0.974658
    dev = trtexec.parse(capture("trtexec", "trt8.6.3-rtx2080-device.txt"))
    assert dev.version == "8.6.3" and dev.gpu == "NVIDIA GeForce RTX 2080" and dev.compute_capability == "7.5"


def test_trt7_end_to_end_form_and_trt10_headers():
    old = trtexec.parse(capture("trtexec", "trt7-1080ti-end-to-end.txt"))
    assert old.samples_ms == (636.196,) and old.summary["End-to-End Host Latency"].median_ms == 636.003
    orin = trtexec.parse(capture("trtexec", "trt10.3-orin-nx-header.txt"))
    assert orin.version == "10.3.0" and orin.passed is None
    build = trtexec.parse(capture("trtexec", "trt10.16-orin-nx-build.txt"))
    assert build.version == "10.16.2"


def test_export_times_drops_warmup_queries():
    rows = [{"startComputeMs": i, "endComputeMs": i + 0.5 + i / 100, "computeMs": 0.5 + i / 100} for i in range(5)]
    text = "[I] Warmup completed 2 queries over 1 ms\n[I] Timing trace has 3 queries over 0.01 s\n"
    run = trtexec.parse(text, json.dumps(rows))
    assert run.source == trtexec.SOURCE_JSON and run.samples_ms == (0.52, 0.53, 0.54)
    with pytest.raises(MeasurementError, match="not JSON"):
        trtexec.parse(text, '[{"computeMs": 1.0},')
    with pytest.raises(MeasurementError, match="3 were timed"):
        trtexec.parse(text, json.dumps(rows[:2]))


def test_commands_quote_every_argument():
    cmd = trtexec.time_command("trtexec", "a b;rm -rf x.engine", 7, 200, "t.json")
    assert "'--loadEngine=a b;rm -rf x.engine'" in cmd and "--iterations=7" in cmd and "--duration=0" in cmd
    assert "--noDataTransfers" in cmd and "--avgRuns=1" in cmd
    assert "--fp16" in trtexec.build_command("trtexec", "m.onnx", "m.engine", fp16=True)


@pytest.mark.parametrize(
    "name, rule, first_w",
    [
        ("agx-xavier-jp4.2.txt", "sum(GPU,CPU,SOC,CV,VDDRQ,SYS5V)", (463 + 618 + 2936 + 0 + 309 + 3306) / 1000),
        ("tx2-l4t28.txt", "VDD_IN", 1.931),
        ("tx2-l4t32.2.txt", "VDD_IN", 3.140),
        ("agx-orin-64gb-jp6.txt", "sum(VDD_GPU_SOC,VDD_CPU_CV,VIN_SYS_5V0,VDDQ_VDD2_1V8AO)", (2340 + 390 + 4025 + 301) / 1000),
    ],
)
def test_tegrastats_input_power_by_module(name, rule, first_w):
    readings = tegrastats.parse(capture("tegrastats", name))
    assert readings and readings[0].rule == rule
    assert readings[0].input_w == pytest.approx(first_w)
    mean, got_rule = tegrastats.mean_input_w(readings)
    assert got_rule == rule and min(r.input_w for r in readings) <= mean <= max(r.input_w for r in readings)


def test_tegrastats_nano_input_rail_is_not_added_to_its_sub_rails():
    # The Nano's format by NVIDIA's documentation (no captured line was found): POM_5V_IN is the whole input.
    r = tegrastats.parse_line("RAM 1/3956MB CPU [1%@102] POM_5V_IN 1836/1836 POM_5V_GPU 0/0 POM_5V_CPU 244/244")
    assert r.rule == "POM_5V_IN" and r.input_w == pytest.approx(1.836)
    assert tegrastats.parse_line("RAM 1685/7854MB (lfb 1044x4MB) SWAP 278/8192MB") is None
    with pytest.raises(MeasurementError, match="no power line"):
        tegrastats.mean_input_w([])


class _Meter:
    source = "test"

    def __init__(self):
        self.j = 0.0

    def energy_j(self):
        return self.j


def test_power_window_counts_only_the_timed_calls():
    meter, now = _Meter(), [0.0]
    w = PowerWindow(meter, clock=lambda: now[0])
    w.begin(); meter.j += 6.0; now[0] += 2.0; w.end()  # 3 W for 2 s  # noqa: E702
    meter.j += 100.0; now[0] += 1.0  # between calls (warm-up, preparation): not counted
    w.begin(); meter.j += 3.0; now[0] += 1.0; w.end()  # noqa: E702
    env = w.environment()
    assert env["power_w"] == "3" and env["power_window_s"] == "3" and env["power_source"] == "test"
    assert energy_mj(3.0, 2.5) == 7.5  # W × ms = mJ


def test_rapl_reads_counters_and_wraps(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "max_energy_range_uj").write_text("1000000\n")
    (zone / "energy_uj").write_text("999000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone (core) is not added to its package
    meter = RaplMeter(tmp_path)
    assert meter.source == "rapl:intel-rapl:0"
    (zone / "energy_uj").write_text("4000\n")  # wrapped: 1000 + 4000 µJ later
    assert meter.energy_j() == pytest.approx(0.005)
    assert rapl_status(tmp_path / "absent").startswith("unavailable: no RAPL package zones")
    (zone / "energy_uj").chmod(0)
    try:
        if (zone / "energy_uj").stat().st_mode and not _readable(zone / "energy_uj"):
            with pytest.raises(ConfigError, match="root only"):
                RaplMeter(tmp_path)
    finally:
        (zone / "energy_uj").chmod(0o644)


def _readable(p: Path) -> bool:
    try:
        p.read_text()
        return True
    except PermissionError:
        return False


def test_energy_of_records_and_a_missing_power_is_an_error():
    from hwprof.measure.energy import energies_by_key, record_energy_mj
    from hwprof.measure.records import Measurement

    fp = {"device": "d"}
    m1 = Measurement("op", "k", "", "d", (1.0, 2.0, 3.0), 0, fp, {"power_w": "4"})
    m2 = Measurement("op", "k", "", "d", (2.0, 2.0, 2.0), 0, fp, {"power_w": "5"})
    assert record_energy_mj(m1) == 8.0 and energies_by_key([m1, m2]) == {"k": 9.0}
    with pytest.raises(MissingEntryError, match="no power measurement"):
        record_energy_mj(Measurement("op", "k", "", "d", (1.0,), 0, fp, {}))
