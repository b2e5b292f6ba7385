"""The benchmark_model parser on captured outputs of TFLite 1.x to LiteRT (see tests/data/benchmark_model/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprof.devices.benchmark_model import parse
from hwprof.errors import MeasurementError
from hwprof.testing.fake_benchmark_model import stats_line

DATA = Path(__file__).parent / "data" / "benchmark_model"

# file → (timed count, timed avg ms, timed first ms, timed last ms, warm-up count, summary inference avg ms, init ms)
EXPECTED = {
    "tf1x_android_yuenshome77.txt": (15, 66.7676, 66.753, 66.800, 7, 66.7676, 9.933),
    "tf23_android_tensorflow42507.txt": (50, 33.2094, 32.891, 33.978, 15, 33.2094, 0.855),
    "tf2x_linux_tensorflow73862.txt": (74, 13.5202, 14.850, 13.315, 37, 13.5202, 12.750),
    "tf218_am62x_cpu_ti_sdk.txt": (50, 1240.27, 1249.964, 1240.143, 1, 1240.27, 5.579),
    "tf218_am62x_xnnpack_ti_sdk.txt": (50, 899.641, 900.416, 898.333, 1, 899.641, 614.333),
}


def test_every_captured_file_is_covered():
    files = {p.name for p in DATA.glob("*.txt")}
    assert set(EXPECTED) | {"tf211_logcat_tensorflow59997.txt", "litert215_compiled_mlcommons1134.txt"} == files


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_outputs_parse_in_ms(name):
    count, avg, first, last, warm, summary, init = EXPECTED[name]
    out = parse((DATA / name).read_text())
    assert out.timed.count == count
    assert out.timed.avg_ms == pytest.approx(avg)
    assert out.timed.first_ms == pytest.approx(first)
    assert out.timed.last_ms == pytest.approx(last)
    assert out.timed.min_ms <= out.timed.avg_ms <= out.timed.max_ms
    assert out.warmup.count == warm
    assert out.inference_avg_ms == pytest.approx(summary)
    assert out.init_ms == pytest.approx(init)
    with pytest.raises(MeasurementError, match="at most 3"):
        out.runs_ms()  # these invocations ran more than 3 timed runs: only aggregates


def test_tf218_percentiles_and_all_same_form():
    out = parse((DATA / "tf218_am62x_cpu_ti_sdk.txt").read_text())
    assert out.timed.median_ms == pytest.approx(1239.807)
    assert out.timed.p95_ms == pytest.approx(1247.415)
    # "count=1 curr=1357602 p5=... " — a single warm-up run
    assert out.warmup.runs_ms() == (pytest.approx(1357.602),)
    assert out.first_inference_ms == pytest.approx(1357.602)


def test_tf23_profiling_tables_are_not_statistics_lines():
    out = parse((DATA / "tf23_android_tensorflow42507.txt").read_text())
    assert out.graph == "/data/local/tmp/espcn_harmonic_2x_slim_w_cl.tflite"
    assert out.num_threads == 4
    assert out.timed.std_ms == pytest.approx(0.450)


def test_logcat_summary_only():
    out = parse((DATA / "tf211_logcat_tensorflow59997.txt").read_text())
    assert out.timed is None
    assert out.inference_avg_ms == pytest.approx(1497.12)
    assert out.first_inference_ms == pytest.approx(1530.248)
    with pytest.raises(MeasurementError, match="no statistics line"):
        out.runs_ms()


def test_litert_compiled_model_format_is_already_ms():
    out = parse((DATA / "litert215_compiled_mlcommons1134.txt").read_text())
    assert out.timed.count == 10
    assert out.inference_avg_ms == pytest.approx(7430.20)
    assert out.timed.min_ms == pytest.approx(7416.40)
    assert out.init_ms == pytest.approx(23744.73)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5_000_000), min_size=1, max_size=3))
def test_up_to_three_runs_are_recovered_exactly(runs_us):
    text = "INFO: count=0\n\nINFO: " + stats_line(runs_us) + "\n"
    got = parse(text).runs_ms()
    assert len(got) == len(runs_us)
    for g, want in zip(got, runs_us):
        # the middle of three comes from the mean printed with 6 significant digits
        assert g == pytest.approx(want / 1000, abs=2e-5 * max(runs_us) / 1000 + 1e-9)
    assert got[0] == runs_us[0] / 1000 and got[-1] == runs_us[-1] / 1000


def test_all_same_form_of_several_runs():
    out = parse("count=0\ncount=3 curr=120(all same)\n")
    assert out.runs_ms() == (0.12, 0.12, 0.12)


def test_failed_run_says_why():
    text = "INFO: STARTING!\nERROR: Could not open '/data/local/tmp/x.tflite'.\nERROR: Benchmarking failed.\n"
    with pytest.raises(MeasurementError, match="Could not open"):
        parse(text)
    with pytest.raises(MeasurementError, match="empty output"):
        parse("")
