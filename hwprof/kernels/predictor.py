"""One regressor per kernel kind, and a model's latency as the sum of its kernels.

A :class:`KernelPredictor` holds, for each kind of :data:`~hwprof.artifacts.kernel.KERNEL_KINDS`
measured on a device:

- a **physical base**, ``t = a0 + a1·MACs + a2·bytes + a3·params`` with
  non-negative coefficients fitted on the relative error (so a shape far
  outside the sample still gets a sensible time), and
- a **correction** ``exp(trees(features))``: gradient-boosted trees (Huber
  loss, early-stopped on a held-out tenth) on the logarithm of the
  measured / base ratio, from log shape features (MACs, parameters, bytes in
  and out, the raw shape, the activation, channels modulo 8), stored as node arrays
  (:func:`hwprof.predictors.gbdt._pack`), never a pickle.

Every measured kernel ran as a one-kernel model, so its time includes the
runtime's fixed cost of a call (:attr:`KernelPredictor.floor_ms`, timed on a
one-element ReLU in every campaign). A model's latency is one floor plus each
kernel's time above the floor, times its kind's factor from
:meth:`KernelPredictor.calibrate` (fitted on networks of the built-in spaces
measured end to end in the same campaign; 1 without). Views (reshape,
flatten) are free; copies (a shuffle's transpose, a split) are ``copy``
kernels, measured like the rest. Kinds without a regressor and op types
hwprof does not know are listed as unpriced in the breakdown, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from hwprof.errors import OpSpecError, PredictorError
from hwprof.artifacts.kernel import ALONE_ACTS, KERNEL_KINDS, KernelSpec, parse_kernel

FORMAT = "hwprof-kernel-predictor"
FORMAT_VERSION = 1
def floor_key(batch: int = 1) -> str:
    """The kernel timed in every campaign to know the runtime's fixed cost of one call: a one-element ReLU."""
    return KernelSpec("act", 1, 1, 1, 1, act="relu", b=batch).encode()


FLOOR_KEY = floor_key(1)
FEATURES: tuple[str, ...] = (
    "log_macs", "log_params", "log_bytes_in", "log_bytes_out", "log_h", "log_ci", "log_co", "k", "s", "log_g",
    "log_se", "m", "log_b", "act", "ci_mod8", "co_mod8",
)
#: Fewest measured kernels of a kind for trees on top of its base.
MIN_TREES = 20


def kernel_features(specs: Sequence[KernelSpec]) -> np.ndarray:
    """Shape features ``[N, len(FEATURES)]`` of kernels (logs of sizes; the activation as its index)."""
    rows = []
    for s in specs:
        bi, bo = s.bytes_in_out()
        rows.append([
            np.log1p(s.macs()), np.log1p(s.params()), np.log1p(bi), np.log1p(bo), np.log(s.h), np.log(s.ci),
            np.log(s.co), s.k, s.s, np.log(s.g), np.log1p(s.se), s.m, np.log(s.b), ALONE_ACTS.index(s.act)
            if s.act in ALONE_ACTS else -1, s.ci % 8, s.co % 8,  # blocked kernels: channels off multiples of 8 cost more
        ])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))


def _physical(specs: Sequence[KernelSpec]) -> np.ndarray:
    """Columns of the physical base ``[N, 4]``: 1, MACs, bytes moved, parameters (×1e-6)."""
    rows = [[1.0, s.macs() * 1e-6, sum(s.bytes_in_out()) * 1e-6, s.params() * 1e-6] for s in specs]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 4)


@dataclass(frozen=True)
class KindModel:
    """The regressor of one kernel kind (see the module docstring)."""

    kind: str
    base: np.ndarray  # [4] non-negative coefficients of _physical
    trees: Mapping[str, np.ndarray] | None
    n_train: int
    cv_mape: float

    def predict(self, specs: Sequence[KernelSpec]) -> np.ndarray:
        from hwprof.predictors.gbdt import _trees_predict

        base = _physical(specs) @ self.base
        if self.trees is None:
            return base
        return base * np.exp(_trees_predict(kernel_features(specs), self.trees))


def _fit_base(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on the relative error: ``min ‖(P a − y) / y‖``, ``a ≥ 0``."""
    from scipy.optimize import nnls

    scale = np.maximum(P.max(axis=0), 1e-12)
    a, _ = nnls(P / y[:, None] / scale, np.ones(len(y)))
    return a / scale


def _fit_kind(kind: str, specs: Sequence[KernelSpec], y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, Any]:
    from sklearn.ensemble import GradientBoostingRegressor

    from hwprof.predictors.gbdt import _pack

    base = _fit_base(_physical(specs), y)
    if len(y) < MIN_TREES:
        return base, None
    ratio = np.log(y / np.maximum(_physical(specs) @ base, 1e-9))
    gb = GradientBoostingRegressor(
        loss="huber", n_estimators=400, learning_rate=0.05, max_depth=3, subsample=0.8, min_samples_leaf=3,
        validation_fraction=0.1, n_iter_no_change=30, random_state=seed,
    )
    gb.fit(kernel_features(specs), ratio)
    return base, _pack(gb)


def fit_kind(kind: str, specs: Sequence[KernelSpec], y: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[KindModel, np.ndarray]:
    """Fit one kind, with the relative error of each kernel when held out (``folds``-fold CV).

    Returns
    -------
    model : KindModel
    cv_errors : ndarray, shape [N]
        Signed relative error ``pred / measured − 1`` of each kernel from the fold that held it out.
    """
    from sklearn.model_selection import KFold

    y = np.asarray(y, dtype=np.float64)
    errs = np.full(len(y), np.nan)
    if len(y) >= 2 * folds:
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(y):
            base, trees = _fit_kind(kind, [specs[i] for i in train], y[train], seed)
            part = KindModel(kind, base, trees, len(train), np.nan)
            errs[test] = part.predict([specs[i] for i in test]) / y[test] - 1
    base, trees = _fit_kind(kind, specs, y, seed)
    cv = float(np.nanmean(np.abs(errs))) if np.isfinite(errs).any() else float("nan")
    return KindModel(kind, base, trees, len(y), cv), errs


@dataclass(frozen=True)
class KernelRow:
    """One kernel of a model's breakdown.

    Attributes
    ----------
    kind, key : str
    ms : float
        Predicted time above the runtime's fixed cost (0 for layout kernels and unpriced ones).
    priced : bool
        False for a kind without a regressor or an unknown op type.
    nodes : tuple of str
    """

    kind: str
    key: str
    ms: float
    priced: bool
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class ModelPrediction:
    """A model's predicted latency and its per-kernel breakdown.

    Attributes
    ----------
    total_ms : float
        ``floor_ms`` + the kernels' times.
    floor_ms : float
        The runtime's fixed cost of one call.
    kernels : list of KernelRow
    unpriced : dict of str to int
        Kernel kinds / op types that got no price, with counts.
    """

    total_ms: float
    floor_ms: float
    kernels: list[KernelRow]
    unpriced: dict[str, int]

    def by_kind(self) -> dict[str, float]:
        """Predicted ms per kernel kind."""
        out: dict[str, float] = {}
        for r in self.kernels:
            out[r.kind] = out.get(r.kind, 0.0) + r.ms
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ms": self.total_ms, "floor_ms": self.floor_ms, "unpriced": self.unpriced,
            "by_kind": self.by_kind(),
            "kernels": [
                {"kind": r.kind, "key": r.key, "ms": r.ms, "share": r.ms / self.total_ms if self.total_ms else 0.0,
                 "priced": r.priced, "nodes": list(r.nodes)} for r in self.kernels
            ],
        }


class KernelPredictor:
    """Per-kind kernel regressors of one device, its floor and its fusion rules.

    Parameters
    ----------
    device : str
    kinds : dict of str to KindModel
    floor_ms : float
        Fixed cost of one runtime call (ms).
    fusion : dict of str to bool
        The device's fusion rules (:mod:`hwprof.kernels.fusion`), used to group a graph's nodes.
    batch : int
        Batch size the kernels were measured at.
    scale : dict of str to float, optional
        Per-kind factor from :meth:`calibrate` (1 where absent).
    """

    def __init__(self, device: str, kinds: Mapping[str, KindModel], floor_ms: float,
                 fusion: Mapping[str, bool] | None = None, batch: int = 1, fingerprint: Mapping[str, str] | None = None,
                 scale: Mapping[str, float] | None = None):
        self.device = device
        self.kinds = dict(kinds)
        self.floor_ms = float(floor_ms)
        self.fusion = dict(fusion or {})
        self.batch = int(batch)
        self.fingerprint = dict(fingerprint or {})
        self.scale = dict(scale or {})

    # -- fitting ------------------------------------------------------------------------
    @classmethod
    def fit(cls, latencies: Mapping[str, float], device: str = "", fusion: Mapping[str, bool] | None = None,
            fingerprint: Mapping[str, str] | None = None, seed: int = 0) -> tuple[KernelPredictor, dict[str, np.ndarray]]:
        """Fit from kernel key → measured ms (each kernel timed as a one-kernel model).

        Returns the predictor and, per kind, each kernel's held-out relative error (keys in input order).
        """
        specs = {key: parse_kernel(key) for key in latencies}
        batches = sorted({spec.b for spec in specs.values()})
        if len(batches) > 1:
            raise PredictorError(f"kernels of several batch sizes {batches}: fit one batch at a time")
        floor_at = floor_key(batches[0] if batches else 1)
        if floor_at not in latencies:
            raise PredictorError(f"no measurement of the floor kernel {floor_at}: measure with `hwprof measure --kernels`")
        floor = float(latencies[floor_at])
        groups: dict[str, list[tuple[KernelSpec, float]]] = {}
        for key, ms in latencies.items():
            if key != floor_at:
                groups.setdefault(specs[key].kind, []).append((specs[key], float(ms)))
        if not groups:
            raise PredictorError("no kernel measurements besides the floor")
        kinds, errors = {}, {}
        for kind, rows in groups.items():
            specs = [s for s, _ in rows]
            y = np.array([v for _, v in rows])
            if (y <= 0).any() or not np.isfinite(y).all():
                raise PredictorError(f"non-positive or non-finite latencies among the {kind} kernels")
            kinds[kind], errors[kind] = fit_kind(kind, specs, y, seed=seed)
        return cls(device, kinds, floor, fusion, batches[0], fingerprint), errors

    # -- prediction ---------------------------------------------------------------------
    def predict_keys(self, keys: Sequence[str]) -> np.ndarray:
        """Time of each kernel above the floor (ms) ``[N]``; NaN for a kind without a regressor or a shape
        outside the kernel grammar."""
        specs: list[KernelSpec | None] = []
        for k in keys:
            try:
                specs.append(parse_kernel(k))
            except OpSpecError:
                specs.append(None)
        out = np.full(len(specs), np.nan)
        for kind in {s.kind for s in specs if s is not None}:
            idx = [i for i, s in enumerate(specs) if s is not None and s.kind == kind]
            if kind in self.kinds:
                out[idx] = np.maximum(self.kinds[kind].predict([specs[i] for i in idx]) - self.floor_ms, 0.0)
        return out

    def predict_graph(self, graph, calibrated: bool = True) -> ModelPrediction:
        """Price a :class:`~hwprof.artifacts.graph.KernelGraph` (grouped with :attr:`fusion`).

        ``calibrated=False`` leaves out :attr:`scale`: the plain sum of one-kernel times.
        """
        priced = [k for k in graph.kernels if k.kind in KERNEL_KINDS]
        ms = dict(zip((k.key for k in priced), self.predict_keys([k.key for k in priced]))) if priced else {}
        rows, unpriced = [], {}
        for k in graph.kernels:
            if k.kind in KERNEL_KINDS:
                v = ms.get(k.key, np.nan) * (self.scale.get(k.kind, 1.0) if calibrated else 1.0)
            elif k.kind == "layout":
                v = 0.0
            else:
                v = np.nan
            if not np.isfinite(v):
                name = k.op_types[0] if k.kind == "other" else k.kind
                unpriced[name] = unpriced.get(name, 0) + 1
            rows.append(KernelRow(k.kind, k.key, float(v) if np.isfinite(v) else 0.0, bool(np.isfinite(v)), k.nodes))
        return ModelPrediction(self.floor_ms + sum(r.ms for r in rows), self.floor_ms, rows, unpriced)

    def calibrate(self, graphs: Sequence[Any], measured_ms: Sequence[float], prior: float = 0.05) -> dict[str, float]:
        """Fit :attr:`scale` to whole networks measured end to end.

        A kernel timed alone pays what it does not pay inside a network (ONNX Runtime reorders
        an isolated conv's input and output to its blocked layout and back). The fit is
        ``measured − floor ≈ Σ_kind scale_kind · Σ kernels of the kind`` on the relative error,
        non-negative, with a pull of weight ``prior`` (per network) of every scale towards 1,
        so a kind the networks seldom hold keeps its one-kernel times.

        Parameters
        ----------
        graphs : sequence of KernelGraph
            Networks grouped with :attr:`fusion` (never the networks a benchmark tests on).
        measured_ms : sequence of float
            Their end-to-end latencies.

        Returns
        -------
        dict of str to float
            Mean relative error on those networks before and after (``mape_before``, ``mape_after``).
        """
        from scipy.optimize import nnls

        y = np.asarray(measured_ms, dtype=np.float64)
        kinds = sorted(self.kinds)
        S = np.zeros((len(graphs), len(kinds)))
        for i, g in enumerate(graphs):
            for r in self.predict_graph(g, calibrated=False).kernels:
                if r.kind in kinds:
                    S[i, kinds.index(r.kind)] += r.ms
        w = 1.0 / y
        lam = np.sqrt(prior * len(y))
        coef, _ = nnls(np.vstack([S * w[:, None], lam * np.eye(len(kinds))]),
                       np.r_[(y - self.floor_ms) * w, np.full(len(kinds), lam)])
        before = np.abs((self.floor_ms + S.sum(axis=1)) / y - 1)
        after = np.abs((self.floor_ms + S @ coef) / y - 1)
        self.scale = {k: float(c) for k, c in zip(kinds, coef)}
        return {"mape_before": float(before.mean()), "mape_after": float(after.mean()), "networks": float(len(y))}

    def predict_model(self, model: str | Path | Any, input_shape: tuple[int, ...] | None = None) -> ModelPrediction:
        """Price an ONNX model (path or ``ModelProto``): its kernels under this device's fusion rules."""
        from hwprof.artifacts.graph import kernels_of

        graph = kernels_of(model, input_shape, fusion=self.fusion)
        batch = graph.input_shape[0] if graph.input_shape else 1
        if batch != self.batch:
            raise PredictorError(
                f"the model runs at batch {batch} and the kernels were measured at batch {self.batch}: "
                f"measure kernels with --batch {batch} (or pass an input shape with batch {self.batch})"
            )
        return self.predict_graph(graph)

    def predict_archs(self, space: Any, archs: Iterable[Any]) -> np.ndarray:
        """Latency (ms) ``[N]`` of architectures of a built-in space: each exported to ONNX and priced by kernels."""
        import tempfile

        from hwprof.artifacts.workload import Workload, artifact_for

        out = []
        with tempfile.TemporaryDirectory(prefix="hwprof-kernels-") as tmp:
            for arch in archs:
                text = arch if isinstance(arch, str) else arch.encode()
                art = artifact_for(Workload.of_arch(space.name, space.parse(text).encode(), self.batch), "onnx", Path(tmp))
                out.append(self.predict_model(art.path).total_ms)
        return np.asarray(out, dtype=np.float64)

    # -- files --------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        from hwprof import __version__

        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "hwprof_version": __version__,
            "device": self.device, "batch": self.batch, "floor_ms": self.floor_ms, "fusion": self.fusion,
            "fingerprint": self.fingerprint, "features": list(FEATURES), "scale": self.scale,
            "kinds": {
                k: {"base": m.base, "trees": dict(m.trees) if m.trees is not None else None, "n_train": m.n_train,
                    "cv_mape": m.cv_mape}
                for k, m in self.kinds.items()
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write JSON (arrays inline) or ``.npz``; never a pickle."""
        from hwprof.predictors.base import write_document

        return write_document(self.to_document(), path)

    @classmethod
    def load(cls, path: str | Path) -> KernelPredictor:
        """Read a file :meth:`save` wrote; anything else is a clear :class:`PredictorError`."""
        from hwprof.predictors.base import read_raw_document

        return cls.from_document(read_raw_document(path, "a kernel predictor file"), path)

    @classmethod
    def from_document(cls, doc: Any, path: str | Path = "<document>") -> KernelPredictor:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PredictorError(f"{path} is not a kernel predictor file (no format {FORMAT!r})")
        if doc.get("format_version") != FORMAT_VERSION:
            raise PredictorError(f"{path} has kernel predictor format {doc.get('format_version')!r}; this hwprof reads 1")
        if list(doc.get("features", [])) != list(FEATURES):
            raise PredictorError(f"{path} was fitted on other kernel features; fit it again")
        kinds = {
            k: KindModel(k, np.asarray(v["base"], dtype=np.float64), v["trees"], int(v["n_train"]), float(v["cv_mape"]))
            for k, v in doc["kinds"].items()
        }
        return cls(doc.get("device", ""), kinds, float(doc["floor_ms"]), doc.get("fusion", {}), int(doc.get("batch", 1)),
                   doc.get("fingerprint", {}), doc.get("scale", {}))


def is_kernel_predictor(path: str | Path) -> bool:
    """Whether ``path`` is a kernel predictor file (a cheap look at its format field; False for anything else)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return json.loads(str(z["__meta__"])).get("format") == FORMAT
        with open(path, "rb") as fh:
            return f'"format": "{FORMAT}"'.encode() in fh.read(200)
    except Exception:  # unreadable or another format: the caller's own loader says what is wrong
        return False


def predict_model(model: str | Path | Any, predictor: str | Path | KernelPredictor,
                  input_shape: tuple[int, ...] | None = None) -> ModelPrediction:
    """Predicted latency of an ONNX model from a kernel predictor (a file or a loaded one).

    Parameters
    ----------
    model : str, Path or onnx.ModelProto
    predictor : str, Path or KernelPredictor
        From ``hwprof fit-predictor --kernels``.
    input_shape : tuple of int, optional
        NCHW for a model with dynamic dimensions.

    Returns
    -------
    ModelPrediction
        ``total_ms`` and the per-kernel breakdown.
    """
    if not isinstance(predictor, KernelPredictor):
        predictor = KernelPredictor.load(predictor)
    return predictor.predict_model(model, input_shape)


def kernel_latencies(records: Iterable[Any], statistic: str = "median") -> dict[str, float]:
    """Kernel key → ms from store records (``kind == "kernel"``), combined over rounds."""
    from hwprof.measure.records import latencies_by_key

    return latencies_by_key([r for r in records if r.kind == "kernel"], statistic)


__all__ = ["FEATURES", "FLOOR_KEY", "floor_key", "KernelPredictor", "KernelRow", "KindModel", "ModelPrediction", "fit_kind",
           "is_kernel_predictor", "kernel_features", "kernel_latencies", "predict_model"]
