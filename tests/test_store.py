"""The SQLite store: append-only records, resume keys, refusal of foreign files, export."""

import json
import sqlite3

import pandas as pd
import pytest

from hwprof.errors import StoreError
from hwprof.measure.records import Measurement
from hwprof.measure.store import Store

FP = {"device": "cpu", "backend": "onnxruntime", "runtime": "onnxruntime", "runtime_version": "1.0",
      "threads": "1", "batch": "1", "cpu": "test cpu", "hwprof_version": "0.1"}


def record(key="conv:h8:w8:ci3:co8:m0:k3:s1:g1:se0:relu:b1", samples=(1.0, 1.1, 0.9), **kw):
    base = dict(kind="op", key=key, space="", device="cpu", samples_ms=samples, warmup=3, fingerprint=FP,
                environment={"loadavg_1m": "0.1"}, timestamp=1.0, flags=("high-cv",))
    base.update(kw)
    return Measurement(**base)


def test_round_trip_and_resume_keys(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.add(record())
        s.add(record(key="arch-a", kind="arch", space="spnas"))
    s = Store(path)
    assert len(s) == 2
    (m,) = s.records(kind="op")
    assert m.samples_ms == (1.0, 1.1, 0.9) and m.fingerprint == FP and m.flags == ("high-cv",)
    assert m.median_ms == pytest.approx(1.0)
    assert s.round_counts("cpu", m.fingerprint_hash) == {("arch", "spnas", "arch-a"): 1, ("op", "", m.key): 1}
    assert s.round_counts("cpu", "other") == {}
    assert list(s.fingerprints("cpu").values()) == [FP]


def test_corrupt_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "bad.sqlite"
    data = b"\x00garbage" * 100
    path.write_bytes(data)
    with pytest.raises(StoreError, match="not an SQLite file"):
        Store(path)
    assert path.read_bytes() == data


def test_truncated_sqlite_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        for i in range(50):
            s.add(record(key=f"k{i}"))
    raw = bytearray(path.read_bytes())
    raw[4096:8192] = b"\xff" * 4096  # wreck the second page
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="damaged|cannot be read"):
        Store(path)
    assert path.read_bytes() == bytes(raw)


def test_foreign_sqlite_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another application"):
        Store(path)
    assert path.read_bytes() == before


def test_store_being_created_by_another_process_opens(tmp_path):
    """What a reader sees while `hwprof measure` creates the store: an SQLite header, no table yet."""
    path = tmp_path / "s.sqlite"
    creator = sqlite3.connect(path)
    creator.execute("PRAGMA journal_mode=WAL")
    assert path.stat().st_size > 0
    store = Store(path)
    assert len(store) == 0
    store.close()
    again = Store(path)  # the creator's view: the schema is there once, nothing doubled
    assert len(again) == 0
    again.close()
    creator.close()


def test_unknown_schema_version_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_one_row_per_record(tmp_path, fmt):
    s = Store(tmp_path / "s.sqlite")
    s.add(record())
    s.add(record(key="k3_e3-skip", kind="arch", space="spnas", samples=(2.0, 2.0, 2.2, 1.8)))
    out = tmp_path / f"out.{fmt}"
    assert s.export(out, fmt) == 2
    df = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert len(df) == 2
    for col in ["op_key", "arch", "device", "median_ms", "mean_ms", "iqr_ms", "p90_ms", "cv", "n_samples",
                "samples_ms", "runtime", "runtime_version", "threads", "batch", "cpu", "hwprof_version"]:
        assert col in df.columns, col
    row = df[df.kind == "arch"].iloc[0]
    assert json.loads(row.samples_ms) == [2.0, 2.0, 2.2, 1.8] and row.median_ms == pytest.approx(2.0)
    with pytest.raises(StoreError, match="unknown export format"):
        s.export(tmp_path / "x.xlsx")


def test_schema_1_store_is_migrated_in_place(tmp_path):
    """A version-1 file opens: the identity index gains the space, fingerprints keep major.minor."""
    import json
    import sqlite3

    from hwprof.measure.records import fingerprint_hash

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, "
        "space TEXT NOT NULL, device TEXT NOT NULL, fingerprint_hash TEXT NOT NULL, fingerprint TEXT NOT NULL, "
        "environment TEXT NOT NULL, samples_ms TEXT NOT NULL, warmup INTEGER NOT NULL, flags TEXT NOT NULL, "
        "timestamp REAL NOT NULL);"
        "CREATE INDEX records_lookup ON records (device, kind, key, fingerprint_hash);"
        "INSERT INTO meta VALUES ('app', 'hwprof'), ('schema_version', '1');"
    )
    old_fp = {**FP, "hwprof_version": "0.1.0"}
    db.execute(
        "INSERT INTO records (kind, key, space, device, fingerprint_hash, fingerprint, environment, samples_ms, "
        "warmup, flags, timestamp) VALUES ('arch', 'a-b', 'fbnet', 'cpu', ?, ?, '{}', '[1.0, 2.0]', 1, '[]', 1.0)",
        (fingerprint_hash(old_fp), json.dumps(old_fp)),
    )
    db.commit()
    db.close()
    s = Store(path)
    (m,) = s.records()
    assert m.fingerprint["hwprof_version"] == "0.1" and m.samples_ms == (1.0, 2.0)
    assert s.round_counts("cpu", m.fingerprint_hash) == {("arch", "fbnet", "a-b"): 1}
    s.close()
    meta = dict(sqlite3.connect(path).execute("SELECT name, value FROM meta"))
    assert meta["schema_version"] == "2"
