"""Every published table format (``hwprof.tables.formats.FORMATS``) and predictor importer
(``hwprof.predictors.PREDICTOR_IMPORTERS``) by a round trip through hwprof's own files.

For each: read the reference file, save it as hwprof JSON, and check that
``hwprof.latency_model`` of the original file and of the saved one price 20
random architectures identically; formats with a writer also write → read back
equal. Reference files live in ``data/`` (shipped) and ``tests/data/`` (see the
SOURCES.md there). A format registered without an entry in ``SAMPLES`` fails
the suite, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

import hwprof
from hwprof.predictors import PREDICTOR_IMPORTERS
from hwprof.tables.formats import FORMATS
from hwprof.tables.table import LatencyTable, load_table

ROOT = Path(__file__).resolve().parents[1]
TESTS_DATA = ROOT / "tests" / "data"
N_ARCHS = 20

#: A hand-written Once-for-All table (no complete OFA table is in the reference data): a few keys of ofa-mbv3.
OFA_SAMPLE = """\
Conv-input:224x224x3-output:112x112x16: {mean: 0.9}
expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0: {mean: 1.25}
expanded_conv-input:14x14x80-output:14x14x112-expand:480-kernel:3-stride:1-idskip:0-se:1-hs:1: {mean: 2.5}
AvgPool2D-input:7x7x960-output:1x1x960: {mean: 0.05}
Conv_2-input:1x1x960-output:1x1x1280: {mean: 0.3}
Logits-input:1x1x1280-output:1000: {mean: 0.2}
"""


class Sample(NamedTuple):
    """A file of the format, the space it prices (None: too partial to price an architecture), reader options."""

    path: Callable[[Path], Path]
    space: str | None
    options: dict


def _ofa(tmp: Path) -> Path:
    path = tmp / "ofa.yaml"
    path.write_text(OFA_SAMPLE)
    return path


#: format or importer name → a sample. Every registered name needs one.
SAMPLES: dict[str, Sample] = {
    "proxylessnas-yaml": Sample(lambda tmp: TESTS_DATA / "proxylessnas" / "mobile_trim.yaml", "proxylessnas", {}),
    "ofa-yaml": Sample(_ofa, None, {}),
    "tfnas-pkl": Sample(lambda tmp: TESTS_DATA / "tf-nas" / "latency_cpu.pkl", "tfnas", {"batch": 1}),
    "spnas-json": Sample(lambda tmp: ROOT / "data" / "single-path-nas" / "pixel1_runtime_model.json", "spnas", {}),
    "lightnas-mlp": Sample(lambda tmp: ROOT / "data" / "lightnas" / "latency_predictor.pth.tar", "lightnas", {}),
}


def _sample(name: str) -> Sample:
    if name not in SAMPLES:
        pytest.fail(f"format/importer {name!r} is registered but has no entry in SAMPLES of {__file__}: add a sample file")
    return SAMPLES[name]


def test_every_format_and_importer_has_a_sample():
    registered = set(FORMATS) | set(PREDICTOR_IMPORTERS)
    assert registered == set(SAMPLES), (
        f"without a sample: {sorted(registered - set(SAMPLES))}; samples of names no longer registered: "
        f"{sorted(set(SAMPLES) - registered)}"
    )


def _price(model, archs) -> np.ndarray:
    return np.array([float(model.arch_latency(a)) for a in archs])


def _tables_equal(a: LatencyTable, b: LatencyTable) -> None:
    assert dict(a.entries) == dict(b.entries)
    assert a.constant_ms == b.constant_ms
    assert dict(a.metadata).get("keyed", "op") == dict(b.metadata).get("keyed", "op")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_table_format_round_trips_through_hwprof_json(name, tmp_path):
    fmt, sample = FORMATS[name], _sample(name)
    source = sample.path(tmp_path)
    table = fmt.read(source, **sample.options)
    saved = table.save(tmp_path / "table.json")
    _tables_equal(load_table(saved), table)
    if sample.space is None:
        return
    sp = hwprof.space(sample.space)
    archs = sp.sample(N_ARCHS, seed=3)
    original = hwprof.latency_model(table if sample.options else source, space=sp)
    back = hwprof.latency_model(saved, space=sp)
    prices = _price(original, archs)
    assert np.isfinite(prices).all() and (prices > 0).all() and np.ptp(prices) > 0
    np.testing.assert_array_equal(_price(back, archs), prices)


@pytest.mark.parametrize("name", sorted(n for n, f in FORMATS.items() if f.write is not None))
def test_writable_format_writes_and_reads_back_equal(name, tmp_path):
    fmt, sample = FORMATS[name], _sample(name)
    table = fmt.read(sample.path(tmp_path), **sample.options)
    written = fmt.write(table, tmp_path / f"back{sample.path(tmp_path).suffix}")
    _tables_equal(fmt.read(written, **sample.options), table)


@pytest.mark.parametrize("name", sorted(PREDICTOR_IMPORTERS))
def test_predictor_importer_round_trips_through_hwprof_json(name, tmp_path):
    pytest.importorskip("torch")
    sample = _sample(name)
    source = sample.path(tmp_path)
    predictor = PREDICTOR_IMPORTERS[name](source, **sample.options)
    saved = predictor.save(tmp_path / "predictor.json")
    sp = hwprof.space(sample.space)
    archs = sp.sample(N_ARCHS, seed=3)
    prices = _price(hwprof.latency_model(source, space=sp), archs)
    assert np.isfinite(prices).all() and (prices > 0).all() and np.ptp(prices) > 0
    np.testing.assert_allclose(_price(hwprof.latency_model(saved, space=sp), archs), prices, rtol=1e-6)
