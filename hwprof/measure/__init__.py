"""Measuring: the protocol (:mod:`.protocol`), statistics from raw samples (:mod:`.stats`),
records (:mod:`.records`), campaigns with rounds and resume (:mod:`.campaign`) and the
SQLite store (:mod:`.store`).

May import :mod:`hwprof.spaces` (to list workloads), :mod:`hwprof.artifacts` (to turn a
workload into a file) and :mod:`hwprof.devices` (to time it); imported by tables,
predictors and the CLI.
"""
