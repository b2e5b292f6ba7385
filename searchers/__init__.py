"""Hardware-aware NAS searchers, one plugin per paper, found through entry points.

Plugins register under the entry-point group ``hwprof.searchers`` (see
``pyproject.toml``), like devices do under ``hwprof.devices``; the core never
imports this package. :func:`available` lists the plugins that load and keep
the :class:`~searchers.base.SearcherProtocol`; :func:`get` returns one by name
and explains why a plugin is missing or refused.

Examples
--------
>>> from searchers import get                                     # doctest: +SKIP
>>> s = get("lightnas")(eta_lambda=5e-4)                            # doctest: +SKIP
>>> result = s.fit_search(task, space, lat, target_ms=25.0)         # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from searchers.base import Budget, Searcher, SearchError, SearchResult

GROUP = "hwprof.searchers"
_CLASS_ATTRS = ("name", "paper", "default_space", "latency_kinds")
_METHODS = ("fit", "search")


def _entry_points() -> list[metadata.EntryPoint]:
    """The installed entry points of :data:`GROUP` (one per name, first wins)."""
    seen: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=GROUP):
        seen.setdefault(ep.name, ep)
    return list(seen.values())


def check_searcher(cls: Any, entry_point: str) -> type:
    """Return ``cls`` if it keeps the searcher protocol, else raise :class:`SearchError` naming ``entry_point``.

    The protocol: a class with non-empty string ``name`` (equal to the entry
    point's name), ``paper``, ``default_space``, a tuple ``latency_kinds``, and
    callable ``fit`` and ``search``.
    """
    where = f"searcher plugin {entry_point!r} ({GROUP})"
    if not isinstance(cls, type):
        raise SearchError(
            f"{where} is a {type(cls).__name__}, not a class; point the entry point at the searcher class"
        )
    missing = [a for a in _CLASS_ATTRS if not getattr(cls, a, None)]
    missing += [f"{m}()" for m in _METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise SearchError(
            f"{where}: class {cls.__qualname__} lacks {', '.join(missing)}; a searcher declares name, paper, "
            "default_space, latency_kinds and defines fit() and search() (subclass searchers.base.Searcher)"
        )
    for attr in ("name", "paper", "default_space"):
        if not isinstance(getattr(cls, attr), str):
            raise SearchError(f"{where}: {cls.__qualname__}.{attr} must be a string, got {getattr(cls, attr)!r}")
    if not isinstance(cls.latency_kinds, tuple):
        raise SearchError(f"{where}: {cls.__qualname__}.latency_kinds must be a tuple of strings")
    if cls.name != entry_point:
        raise SearchError(
            f"{where}: class {cls.__qualname__} is named {cls.name!r}; the entry point and the class's name must agree"
        )
    return cls


def _load(ep: metadata.EntryPoint) -> type:
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's import error must not hide the others
        raise SearchError(
            f"searcher plugin {ep.name!r} ({ep.value}) does not load: {type(exc).__name__}: {exc}"
        ) from exc
    return check_searcher(obj, ep.name)


def available() -> dict[str, type]:
    """Name → class of every registered searcher that loads and keeps the protocol (sorted by name).

    Plugins that fail are left out; :func:`problems` says why.
    """
    out: dict[str, type] = {}
    for ep in _entry_points():
        try:
            out[ep.name] = _load(ep)
        except SearchError:
            continue
    return dict(sorted(out.items()))


def problems() -> dict[str, str]:
    """Name → error message of every registered searcher that does not load or is refused."""
    out: dict[str, str] = {}
    for ep in _entry_points():
        try:
            _load(ep)
        except SearchError as exc:
            out[ep.name] = str(exc)
    return dict(sorted(out.items()))


def get(name: str) -> type:
    """The searcher class registered as ``name``.

    Raises
    ------
    SearchError
        For an unknown name (listing the known ones), a plugin that does not
        import, or a class that breaks the protocol (naming the entry point).
    """
    eps = {ep.name: ep for ep in _entry_points()}
    if name not in eps:
        known = ", ".join(sorted(available())) or "none installed"
        raise SearchError(f"unknown searcher {name!r}; known: {known}")
    return _load(eps[name])


__all__ = [
    "GROUP",
    "Budget",
    "SearchError",
    "SearchResult",
    "Searcher",
    "available",
    "check_searcher",
    "get",
    "problems",
]
