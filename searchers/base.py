"""What every searcher shares: the protocol, budgets, progress schedules and the result.

A searcher is a scikit-learn-style object: ``__init__`` stores its
hyperparameters (defaults = the paper's / official code's values) and nothing
else; :meth:`Searcher.fit` trains (supernet weights, and for the differentiable
methods the architecture parameters); :meth:`Searcher.search` derives the
architecture and returns a :class:`SearchResult`. Learned state ends in ``_``.

Schedules are functions of **progress** ``p ∈ [0, 1]`` (fraction of the
budget spent), so any budget keeps the paper's shape: warm-up fractions, decay
curves and switch-on points are written as fractions of the paper's run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

from hwprof.errors import ConfigError, HwprofError

#: Version of the ``report.json`` layout (bump with a line in the changelog).
REPORT_VERSION = 1
#: Changelog of ``report.json``: version → what changed.
REPORT_CHANGELOG = {1: "first layout"}


class SearchError(HwprofError):
    """A search cannot run as asked (wrong latency model, unreachable target, bad setting)."""


# -- budget and schedules -------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """How long a search may run: epochs, steps or seconds (the first one given wins).

    Attributes
    ----------
    epochs : int, optional
        Passes over the proxy task's weight split.
    steps : int, optional
        Weight steps (or, for SPOS's evolution, generations are not counted here).
    seconds : float, optional
        Wall-clock seconds; the searcher estimates steps from the first ones.
    """

    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "steps", "seconds"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or not math.isfinite(v)):
                raise ConfigError(f"Budget.{name} must be a positive number, got {v!r}")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"300s"``, ``"5m"``, ``"1h"``, ``"20e"`` (epochs) or ``"500"`` / ``"500steps"`` (steps)."""
        t = text.strip().lower()
        try:
            for suffix, scale in (("steps", None), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("e", None)):
                if t.endswith(suffix):
                    num = float(t[: -len(suffix)])
                    if suffix == "steps":
                        return cls(steps=int(num))
                    if suffix == "e":
                        return cls(epochs=int(num))
                    return cls(seconds=num * scale)
            return cls(steps=int(t))
        except ValueError:
            raise ConfigError(
                f"cannot read budget {text!r}; write e.g. 300s, 5m, 1h, 20e (epochs) or 500 (steps)"
            ) from None

    def describe(self) -> str:
        if self.epochs is not None:
            return f"{self.epochs} epochs"
        if self.steps is not None:
            return f"{self.steps} steps"
        if self.seconds is not None:
            return f"{self.seconds:g} s"
        return "default"


def linear(start: float, end: float) -> Callable[[float], float]:
    """Schedule going linearly from ``start`` at p = 0 to ``end`` at p = 1."""
    return lambda p: start + (end - start) * min(max(p, 0.0), 1.0)


def cosine(start: float, end: float = 0.0) -> Callable[[float], float]:
    """Cosine annealing from ``start`` (p = 0) to ``end`` (p = 1)."""
    return lambda p: end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * min(max(p, 0.0), 1.0)))


def exponential(start: float, factor_per_paper_unit: float, paper_units: float) -> Callable[[float], float]:
    """``start · factor^(p · paper_units)``: a per-epoch decay of a ``paper_units``-epoch run, by progress."""
    return lambda p: start * factor_per_paper_unit ** (min(max(p, 0.0), 1.0) * paper_units)


def paper_epoch(epoch: int, epochs: int, first_epochs: int, paper_epochs: float, first_fraction: float) -> float:
    """The paper epoch a run has reached at run epoch ``epoch`` of ``epochs``.

    A run's first ``first_epochs`` epochs (warm-up, freeze) map linearly onto
    the paper's first phase (``first_fraction · paper_epochs``), the rest onto
    the remainder, so every schedule written in paper epochs keeps its shape.
    """
    paper_first = paper_epochs * first_fraction
    if epoch < first_epochs:
        return paper_first * epoch / max(first_epochs, 1)
    return paper_first + (paper_epochs - paper_first) * (epoch - first_epochs) / max(epochs - first_epochs, 1)


def budget_epochs(budget: Budget, steps_per_epoch: int, step_seconds: Callable[[], float],
                  steps_per_epoch_cost: float, default: int) -> tuple[int, int | None]:
    """Epochs a budget allows and, for a steps budget, the weight steps of the last epoch.

    Parameters
    ----------
    budget : Budget
        Epochs, weight steps or seconds (or none: ``default`` epochs).
    steps_per_epoch : int
        Weight steps in one epoch.
    step_seconds : callable
        Times one single-path weight step (s); called only for a seconds budget.
    steps_per_epoch_cost : float
        One epoch's cost in single-path weight steps (all-path or architecture steps included).
    default : int
        Epochs without a budget.
    """
    if budget.epochs is not None:
        return int(budget.epochs), None
    if budget.steps is not None:
        epochs = max(1, math.ceil(budget.steps / steps_per_epoch))
        return epochs, int(budget.steps - (epochs - 1) * steps_per_epoch)
    if budget.seconds is not None:
        return max(1, int(budget.seconds / (step_seconds() * steps_per_epoch_cost))), None
    return default, None


# -- result ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchResult:
    """What a search found, and everything needed to trust or repeat it.

    Attributes
    ----------
    searcher, space : str
        Plugin name and space name.
    arch : str
        The derived architecture's text form (parses in ``space``).
    latency_ms : float
        ``latency.arch_latency(arch)`` of the model the search used, exactly (ms).
    target_ms : float or None
        The latency target (ms), where the method has one.
    constraint : dict or None
        SPOS: ``{"kind": "latency"|"flops", "limit": value}`` (ms or MACs).
    macs, params : int
        Of the real network (``space.macs`` / ``space.params``).
    proxy : dict
        Proxy task name, resolution, width multiplier, classes and the derived
        architecture's accuracy on the proxy test split.
    hyperparameters : dict
        The values actually used.
    deviations : list of str
        Every difference from the paper's setting, one sentence each.
    trace : list of dict
        One row per epoch / generation (latency_ms, losses, λ, τ, ...).
    seconds : float
        Wall time of fit + search.
    seed : int
    hwprof_version : str
    latency_source : dict
        The latency model: kind, file, sha256, device, batch where known.
    """

    searcher: str
    space: str
    arch: str
    latency_ms: float
    target_ms: float | None
    constraint: dict | None
    macs: int
    params: int
    proxy: dict
    hyperparameters: dict
    deviations: list[str]
    trace: list[dict]
    seconds: float
    seed: int
    hwprof_version: str
    latency_source: dict

    def to_dict(self) -> dict:
        return {"report_version": REPORT_VERSION, **dataclasses.asdict(self)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> SearchResult:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not a search report (invalid JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("report_version") not in REPORT_CHANGELOG:
            raise ConfigError(
                f"not a search report of a known version (report_version {data.get('report_version')!r}; "
                f"known: {sorted(REPORT_CHANGELOG)})" if isinstance(data, dict) else "not a search report"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ConfigError(f"search report lacks {', '.join(missing)}")
        return cls(**{n: data[n] for n in names})

    @property
    def error(self) -> float | None:
        """``latency_ms / target_ms − 1`` (None without a target)."""
        return None if not self.target_ms else self.latency_ms / self.target_ms - 1.0

    def summary(self) -> str:
        """One line for people: latency vs target, the model, proxy accuracy, wall time."""
        unit = self.latency_source.get("unit", "ms")
        parts = [f"latency {self.latency_ms:.2f} {unit}"]
        if self.target_ms:
            parts[0] += f" (target {self.target_ms:.2f} {unit}, {100 * self.error:+.2f} %)"
        if self.constraint and self.constraint.get("kind") == "flops":
            parts.append(f"{self.macs / 1e6:.1f} M MACs (limit {self.constraint['limit'] / 1e6:.1f} M)")
        parts[0] += f" by {self.latency_source.get('name', self.latency_source.get('kind', 'model'))}"
        acc = self.proxy.get("test_accuracy")
        if acc is not None:
            parts.append(f"proxy test acc {100 * acc:.1f} %")
        parts.append(f"{self.seconds:.0f} s")
        return " · ".join(parts)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} into a search report")


# -- protocol and base class ----------------------------------------------------------------
@runtime_checkable
class SearcherProtocol(Protocol):
    """What the registry checks a plugin class for."""

    name: ClassVar[str]
    paper: ClassVar[str]
    default_space: ClassVar[str]
    latency_kinds: ClassVar[tuple[str, ...]]

    def fit(self, task: Any, space: Any, latency: Any, **kwargs: Any) -> Any: ...

    def search(self, **kwargs: Any) -> SearchResult: ...


class Searcher:
    """Base class with the scikit-learn manners and the bookkeeping every plugin shares.

    Subclasses declare ``name``, ``paper``, ``default_space``, ``latency_kinds``
    (which latency models they consume: ``"differentiable"`` = ``expected``,
    ``"score"`` = batched discrete pricing, ``"single-path-runtime"``,
    ``"width"`` = TF-NAS width curves, ``"flops"``) and ``paper_defaults``
    (hyperparameter → the paper's value, for the deviation list). Their
    ``__init__`` takes keyword hyperparameters only and stores them unchanged.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    default_space: ClassVar[str] = ""
    latency_kinds: ClassVar[tuple[str, ...]] = ()
    #: Hyperparameter → the paper's (or official code's) value and where it comes from.
    paper_defaults: ClassVar[Mapping[str, tuple[Any, str]]] = {}

    # -- sklearn-style parameters --------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in list(sig.parameters.values())[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """The constructor's hyperparameters as stored."""
        return {n: getattr(self, n) for n in self._param_names()}

    def set_params(self, **params: Any) -> Searcher:
        """Set hyperparameters by name; unknown names are an error listing the known ones."""
        known = self._param_names()
        bad = [k for k in params if k not in known]
        if bad:
            raise SearchError(f"{self.name} has no hyperparameter {', '.join(bad)}; known: {', '.join(known)}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the two steps -------------------------------------------------------------------
    def fit(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
            budget: Budget = Budget(), seed: int = 0, callback: Callable[[dict], None] | None = None) -> Searcher:
        raise NotImplementedError

    def search(self, **kwargs: Any) -> SearchResult:
        raise NotImplementedError

    def fit_search(self, task: Any, space: Any, latency: Any, *, target_ms: float | None = None,
                   constraint: Mapping[str, Any] | None = None, budget: Budget = Budget(), seed: int = 0,
                   callback: Callable[[dict], None] | None = None) -> SearchResult:
        """``fit`` then ``search`` in one call."""
        self.fit(task, space, latency, target_ms=target_ms, budget=budget, seed=seed, callback=callback)
        if constraint is not None:
            return self.search(target_ms=target_ms, constraint=dict(constraint))
        return self.search(target_ms=target_ms)

    # -- helpers for plugins -------------------------------------------------------------
    def deviations_from_paper(self) -> list[str]:
        """One sentence per hyperparameter whose value differs from ``paper_defaults``."""
        out = []
        for k, (paper_value, where) in self.paper_defaults.items():
            v = getattr(self, k, paper_value)
            if v != paper_value:
                out.append(f"{k} = {v!r} instead of the paper's {paper_value!r} ({where})")
        return out

    def _start_clock(self) -> None:
        self._t0 = time.perf_counter()

    def _elapsed(self) -> float:
        return time.perf_counter() - getattr(self, "_t0", time.perf_counter())

    def make_result(self, *, space: Any, arch: Any, latency: Any, target_ms: float | None = None,
                    constraint: dict | None = None, proxy: dict | None = None, deviations: list[str] | None = None,
                    trace: list[dict] | None = None, seed: int = 0, seconds: float | None = None,
                    hyperparameters: dict | None = None) -> SearchResult:
        """A :class:`SearchResult` whose latency is ``latency.arch_latency(arch)`` exactly."""
        import hwprof

        text = arch if isinstance(arch, str) else arch.encode()
        parsed = space.parse(text)
        return SearchResult(
            searcher=self.name,
            space=space.name,
            arch=text,
            latency_ms=float(latency.arch_latency(parsed)),
            target_ms=None if target_ms is None else float(target_ms),
            constraint=constraint,
            macs=int(space.macs(parsed)),
            params=int(space.params(parsed)),
            proxy=dict(proxy or {}),
            hyperparameters=dict(hyperparameters if hyperparameters is not None else self.get_params()),
            deviations=list(deviations if deviations is not None else self.deviations_from_paper()),
            trace=list(trace or []),
            seconds=float(self._elapsed() if seconds is None else seconds),
            seed=int(seed),
            hwprof_version=hwprof.__version__,
            latency_source=latency_source(latency),
        )


def latency_source(latency: Any) -> dict:
    """What a latency model is and where it came from (its ``source`` attribute when loaded from a file)."""
    src = dict(getattr(latency, "source", None) or {})
    src.setdefault("kind", type(latency).__name__)
    if "path" in src and "sha256" not in src:
        try:
            src["sha256"] = hashlib.sha256(Path(src["path"]).read_bytes()).hexdigest()
        except OSError:
            pass
    src.setdefault("name", Path(src["path"]).name if "path" in src else src["kind"])
    return src


def require_latency(searcher: type | Searcher, latency: Any, need: str, works: str) -> None:
    """Raise :class:`SearchError` unless ``latency`` offers ``need`` (a method or attribute name).

    ``works`` names the file kinds that do, e.g. ``"a lookup table or an mlp/ridge/lut predictor"``.
    """
    ok = callable(getattr(latency, need, None))
    if ok and need == "expected":
        ok = getattr(latency, "differentiable", True)
    if not ok:
        name = getattr(searcher, "name", str(searcher))
        raise SearchError(
            f"{name} needs a latency model with {need}(); {type(latency).__name__} has none. Use {works}."
        )


__all__ = [
    "Budget",
    "budget_epochs",
    "paper_epoch",
    "REPORT_CHANGELOG",
    "REPORT_VERSION",
    "SearchError",
    "SearchResult",
    "Searcher",
    "SearcherProtocol",
    "cosine",
    "exponential",
    "latency_source",
    "linear",
    "require_latency",
]
