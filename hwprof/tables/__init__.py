"""Lookup tables: :class:`LatencyTable` (:mod:`.table`), building one from records, and one
module per published format (:mod:`.formats`).

May import :mod:`hwprof.spaces` and :mod:`hwprof.measure`; imported by predictors,
latency models and the CLI.
"""

from hwprof.tables.table import FORMAT, FORMAT_VERSION, LatencyTable, build_table, load_table, table_from_ops

__all__ = ["FORMAT", "FORMAT_VERSION", "LatencyTable", "build_table", "load_table", "table_from_ops"]
