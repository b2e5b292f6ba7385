"""The measurement store: an append-only SQLite file.

Every record is committed the moment it is measured (WAL journal), so an
interrupted campaign loses at most the record in flight and a re-run resumes
where it stopped. A file that is not SQLite, or SQLite that hwprof did not
write, is refused and never modified.

Schema versions
---------------
1  records(kind, key, space, device, fingerprint_hash, fingerprint, environment,
   samples_ms, warmup, flags, timestamp); meta(app, schema_version).
2  A record's identity is (device, kind, space, key, fingerprint): the index
   includes the space, so two spaces with equal architecture texts (``fbnet``,
   ``fbnet-c100``) are measured separately. The fingerprint's
   ``hwprof_version`` holds major.minor only, so a patch release does not
   split a store. Version-1 files are migrated in place when opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Iterator

import pandas as pd

from hwprof.errors import StoreError
from hwprof.measure.records import IDENTITY_FIELDS, Measurement, fingerprint_hash, version_series

SCHEMA_VERSION = 2
APP = "hwprof"
DEFAULT_STORE = Path("hwprof.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    space TEXT NOT NULL,
    device TEXT NOT NULL,
    fingerprint_hash TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    environment TEXT NOT NULL,
    samples_ms TEXT NOT NULL,
    warmup INTEGER NOT NULL,
    flags TEXT NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_identity ON records (device, kind, space, key, fingerprint_hash);
"""


class Store:
    """Append-only SQLite store of :class:`Measurement` records.

    Parameters
    ----------
    path : str or Path
        The SQLite file; created (with its folder) when absent.

    Raises
    ------
    StoreError
        When the file is not SQLite, is SQLite of another application, or has
        a schema version this hwprof does not know.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self.path.is_dir():
            raise StoreError(f"{self.path} is a directory; give a file path for the store")
        else:
            with open(self.path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise StoreError(
                        f"{self.path} is not an SQLite file (corrupt or another format); it was left untouched. "
                        "Pass another --store path."
                    )
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            # An SQLite file without any table is a store another process is
            # creating this instant (or an empty one): create it, idempotently.
            if new or not self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                self._create()
            else:
                self._check_existing()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} cannot be read as an hwprof store ({exc}); it was left untouched") from exc

    def _create(self) -> None:
        """Create the schema and its metadata in one transaction, so no reader sees half a store."""
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            f"BEGIN IMMEDIATE;\n{_SCHEMA}\n"
            f"INSERT OR IGNORE INTO meta VALUES ('app', '{APP}'), ('schema_version', '{SCHEMA_VERSION}');\nCOMMIT;"
        )

    def _check_existing(self) -> None:
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"{self.path} is a damaged SQLite file ({check}); it was left untouched")
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables or "records" not in tables:
            raise StoreError(f"{self.path} is an SQLite file of another application (no hwprof tables); left untouched")
        meta = dict(self._db.execute("SELECT name, value FROM meta"))
        if meta.get("app") != APP:
            raise StoreError(f"{self.path} was not written by hwprof (app={meta.get('app')!r}); left untouched")
        version = int(meta.get("schema_version", -1))
        if version == 1:
            self._migrate_from_1()
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema version {version}; this hwprof reads version {SCHEMA_VERSION}. "
                "Upgrade hwprof or export the store with the version that wrote it."
            )

    def _migrate_from_1(self) -> None:
        """Schema 1 → 2: the identity index gains the space; fingerprints keep hwprof's major.minor."""
        rows = list(self._db.execute("SELECT id, fingerprint FROM records"))
        with self._db:
            for rid, text in rows:
                fp = json.loads(text)
                if "hwprof_version" in fp:
                    fp["hwprof_version"] = version_series(fp["hwprof_version"])
                self._db.execute(
                    "UPDATE records SET fingerprint = ?, fingerprint_hash = ? WHERE id = ?",
                    (json.dumps(fp, sort_keys=True), fingerprint_hash(fp), rid),
                )
            self._db.execute("DROP INDEX IF EXISTS records_lookup")
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS records_identity ON records (device, kind, space, key, fingerprint_hash)"
            )
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))

    # -- writing ---------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise :class:`StoreError` unless a record could be committed now (called before any timing).

        A file without any write permission bit counts as read-only even for
        root: someone made it so on purpose.
        """
        mode = self.path.stat().st_mode
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(self.path, os.W_OK):
            raise StoreError(
                f"the store {self.path} is read-only ({stat.filemode(mode)}); make it writable "
                "(chmod u+w) or pass another --store"
            )
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise StoreError(f"the folder of the store {self.path} is not writable (SQLite needs its journal there)")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('write_check', '1')")
        except sqlite3.Error as exc:
            raise StoreError(f"the store {self.path} cannot be written ({exc}); pass another --store") from None
        finally:
            if self._db.in_transaction:
                self._db.rollback()

    def add(self, m: Measurement) -> int:
        """Append one record and commit it; returns its row id."""
        row = (
            m.kind,
            m.key,
            m.space,
            m.device,
            m.fingerprint_hash,
            json.dumps(dict(m.fingerprint), sort_keys=True),
            json.dumps(dict(m.environment), sort_keys=True),
            json.dumps([float(x) for x in m.samples_ms]),
            int(m.warmup),
            json.dumps(list(m.flags)),
            float(m.timestamp),
        )
        try:
            with self._db:
                cur = self._db.execute(
                    "INSERT INTO records (kind, key, space, device, fingerprint_hash, fingerprint, environment, "
                    "samples_ms, warmup, flags, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
        except sqlite3.Error as exc:
            raise StoreError(
                f"could not save the record of {m.key[:80]} to {self.path} ({exc}; disk full?); "
                "every earlier record is kept: free space and re-run to resume"
            ) from None
        return int(cur.lastrowid)

    def set_note(self, name: str, value: str) -> None:
        """Keep a named text beside the records (a device's measured fusion rules, ...), replacing any earlier one."""
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"note:{name}", value))
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path} ({exc})") from None

    def note(self, name: str) -> str | None:
        """The text :meth:`set_note` kept under ``name``, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (f"note:{name}",)).fetchone()
        return None if row is None else str(row[0])

    def statistic(self, device: str) -> str:
        """How ``device``'s rounds become one latency: the ``protocol.statistic`` its campaigns kept, else ``median``."""
        return self.note(f"statistic:{device}") or "median"

    def set_statistic(self, device: str, statistic: str) -> None:
        """Keep how ``device``'s rounds become one latency (a campaign's ``protocol.statistic``), if it changed."""
        if self.statistic(device) != statistic:
            self.set_note(f"statistic:{device}", statistic)

    # -- reading ---------------------------------------------------------------
    def round_counts(self, device: str, fingerprint_hash: str) -> dict[tuple[str, str, str], int]:
        """Number of records (rounds) per identity ``(kind, space, key)`` of ``device`` under ``fingerprint_hash``."""
        rows = self._db.execute(
            "SELECT kind, space, key, COUNT(*) FROM records WHERE device = ? AND fingerprint_hash = ? "
            "GROUP BY kind, space, key",
            (device, fingerprint_hash),
        )
        return {(kind, space, key): int(n) for kind, space, key, n in rows}

    def fingerprints(self, device: str) -> dict[str, dict]:
        """Distinct fingerprints of ``device``'s records, by hash."""
        rows = self._db.execute("SELECT DISTINCT fingerprint_hash, fingerprint FROM records WHERE device = ?", (device,))
        return {h: json.loads(fp) for h, fp in rows}

    def records(
        self,
        device: str | None = None,
        kind: str | None = None,
        space: str | None = None,
        fingerprint_hash: str | None = None,
    ) -> list[Measurement]:
        """Records matching every given filter, oldest first."""
        return list(self.iter_records(device, kind, space, fingerprint_hash))

    def iter_records(self, device=None, kind=None, space=None, fingerprint_hash=None) -> Iterator[Measurement]:
        where, args = [], []
        for col, val in (("device", device), ("kind", kind), ("space", space), ("fingerprint_hash", fingerprint_hash)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT kind, key, space, device, fingerprint, environment, samples_ms, warmup, flags, timestamp FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        for row in self._db.execute(sql + " ORDER BY id", args):
            kind_, key, space_, device_, fp, env, samples, warmup, flags, ts = row
            yield Measurement(
                kind_,
                key,
                space_,
                device_,
                tuple(json.loads(samples)),
                warmup,
                json.loads(fp),
                json.loads(env),
                ts,
                tuple(json.loads(flags)),
            )

    def devices(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT device FROM records ORDER BY device")]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    # -- export ----------------------------------------------------------------
    def to_frame(self, **filters) -> pd.DataFrame:
        """One row per record: key, device, round (1, 2, ... per key and fingerprint, in measuring
        order), statistics from the raw samples, samples, fingerprint fields."""
        rows = []
        seen: dict[tuple[str, str, str, str], int] = {}
        for m in self.iter_records(**filters):
            s = m.summary
            ident = (m.device, m.kind, m.key, m.fingerprint_hash)
            seen[ident] = seen.get(ident, 0) + 1
            row = {
                "kind": m.kind,
                {"op": "op_key", "model": "model", "kernel": "kernel"}.get(m.kind, "arch"): m.key,
                "key": m.key,
                "space": m.space,
                "device": m.device,
                "round": seen[ident],
                "median_ms": s.median_ms,
                "mean_ms": s.mean_ms,
                "iqr_ms": s.iqr_ms,
                "p90_ms": s.p90_ms,
                "min_ms": s.min_ms,
                "cv": s.cv,
                "n_samples": s.n,
                "outliers": s.outliers,
                "warmup": m.warmup,
                "flags": ",".join(m.flags),
                "samples_ms": json.dumps(list(m.samples_ms)),
                "timestamp": m.timestamp,
            }
            for k in IDENTITY_FIELDS:
                row[k] = m.fingerprint.get(k, "")
            for k, v in m.fingerprint.items():
                if k not in IDENTITY_FIELDS:
                    row[f"fp_{k}"] = v
            for k, v in m.environment.items():
                row[f"env_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def export(self, path: str | Path, fmt: str | None = None, **filters) -> int:
        """Write the records to CSV or Parquet; returns the number of rows."""
        path = Path(path)
        fmt = fmt or path.suffix.lstrip(".")
        frame = self.to_frame(**filters)
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "parquet":
            from hwprof.errors import require

            require("pyarrow", "parquet")
            frame.to_parquet(path, index=False)
        else:
            raise StoreError(f"unknown export format {fmt!r}; allowed: csv, parquet")
        return len(frame)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
