"""Common machinery of hwprof predictors: estimator base class and the file format.

Predictor file format versions
------------------------------
1  ``{"format": "hwprof-predictor", "format_version": 1, "kind", "space",
   "device", "training_sha256", "hwprof_version", "params", "state"}`` as
   JSON; arrays inline as ``{"__ndarray__": dtype, "shape", "data"}``. The
   ``.npz`` variant stores the same object as the ``__meta__`` entry and the
   arrays as entries referenced by ``{"__array__": name}``. Never a pickle.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from hwprof.errors import PredictorError
from hwprof.predictors.features import arch_matrix, check_one_hot
from hwprof.spaces import Arch, Space, space as get_space

FORMAT = "hwprof-predictor"
FORMAT_VERSION = 3
CHANGELOG: dict[int, str] = {
    1: "first version: kind, space, device, training_sha256, params, state",
    2: "gbdt state has 'level' (latest-level factor), transfer state has 'shape' (shape-feature correction); "
    "version-1 files read as level 1 and no correction",
    3: "elastic spaces' models take the architecture matrix (one-hot, resolution and width ratios: n_features_in "
    "says which); gbdt state has 'n_shape' (shape-feature columns); auto has param 'holdout' instead of 'cv' and "
    "state 'validation' {kind: {mape, within_5}} instead of 'cv_mape'; version-2 files read with the one-hot "
    "only, the first shape columns, and their cross-validated MAPE as validation",
}


def _upgrade(doc: dict) -> dict:
    """Bring a document of an older format version to :data:`FORMAT_VERSION` (see :data:`CHANGELOG`)."""
    if doc.get("format_version") == 1:
        state = dict(doc.get("state", {}))
        if doc.get("kind") == "gbdt":
            state.setdefault("level", 1.0)
        if doc.get("kind") == "transfer":
            state.setdefault("shape", {})
        doc = {**doc, "state": state, "format_version": 2}
    if doc.get("format_version") == 2:
        state, params = dict(doc.get("state", {})), dict(doc.get("params", {}))
        if doc.get("kind") == "auto":
            params.pop("cv", None)
            if "cv_mape" in state:
                state["validation"] = {k: {"mape": v} for k, v in dict(state.pop("cv_mape")).items()}
            if isinstance(state.get("best"), dict):
                state["best"] = _upgrade(state["best"])
        doc = {**doc, "params": params, "state": state, "format_version": 3}
    return doc


def training_sha256(X: np.ndarray, y: np.ndarray | None) -> str:
    """Hash of the training data (one-hot as float32, targets as float64 ms)."""
    h = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float32).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()


def check_target(y, n: int) -> np.ndarray:
    """Targets as float64 ``[n]`` ms, finite and positive."""
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.shape != (n,):
        raise PredictorError(f"got {y.size} latencies for {n} architectures")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise PredictorError("latencies must be finite and positive (ms); drop failed measurements first")
    return y


#: Ridge penalties ``alpha="auto"`` chooses among (ms² per unit weight; scale-free in ms).
ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))


def choose_alpha(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The ridge penalty of :data:`ALPHAS` with the lowest (weighted) leave-one-out error.

    Measured latencies are noisy, and the design has about as many columns as
    a campaign has architectures: a near-zero penalty fits the noise (on 200
    ``ofa-mbv3`` networks timed on a jittery CPU, MAPE 9% at ``alpha=1e-3``
    against 3.2% at the chosen 100), while on HELP's 4000 quiet rows the
    choice falls on the small ones. Efficient LOO of scikit-learn's ``RidgeCV``.
    """
    from sklearn.linear_model import RidgeCV

    return float(RidgeCV(alphas=ALPHAS).fit(X, y, sample_weight=weights).alpha_)


def resolve_alpha(alpha: float | str, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """``alpha`` itself, or for ``"auto"`` :func:`choose_alpha` (the smallest penalty below 3 rows)."""
    if alpha != "auto":
        return float(alpha)
    return choose_alpha(X, y, weights) if len(y) > 2 else ALPHAS[0]


def relative_ridge(X: np.ndarray, y: np.ndarray, alpha: float | str) -> tuple[np.ndarray, float, np.ndarray]:
    """Ridge fit of ``y`` (ms) on ``X`` ``[N, D]`` that minimises the squared *relative* error.

    Rows are weighted by ``(mean(y) / y)²``, so ``alpha`` keeps its meaning in
    ms² while a 1 ms miss on a 5 ms network counts as much as a 4 ms miss on
    a 20 ms one (what MAPE and the ±5% share measure). The intercept is not
    penalised. ``alpha="auto"``: :func:`choose_alpha` on the same weights.

    Returns
    -------
    coef : ndarray ``[D]``
    intercept : float
    loo : ndarray ``[N]``
        Leave-one-out fitted values (ms): each row as predicted by the fit on
        the other rows. In-sample fitted values follow their own noise (by
        the leverage, ``p/N`` on average); these do not.
    """
    w = (np.mean(y) / y) ** 2
    alpha = resolve_alpha(alpha, X, y, w)
    A = np.hstack([X, np.ones((len(X), 1))])
    penalty = np.full(A.shape[1], float(alpha))
    penalty[-1] = 0.0
    gram = (A * w[:, None]).T @ A + np.diag(penalty)
    inv = np.linalg.pinv(gram, hermitian=True)
    beta = inv @ ((A * w[:, None]).T @ y)
    fitted = A @ beta
    leverage = w * np.einsum("ij,ij->i", A @ inv, A)
    loo = y - (y - fitted) / np.clip(1.0 - leverage, 1e-3, None)
    return beta[:-1], float(beta[-1]), loo


def recent_level(y: np.ndarray, fitted: np.ndarray, recent: float, min_rows: int = 30) -> float:
    """Multiplicative level of the most recent measurements: median of ``y / fitted`` over them.

    Rows are taken in measurement order (the order given to ``fit``): a
    device's speed drifts over a long campaign (clocks, thermals, driver
    state), and a prediction should match the device as it is now, not its
    average over the campaign. The level comes from the last
    ``⌈recent · N⌉`` rows (at least ``min_rows``, at most all); ``recent = 0``
    returns 1 (no re-levelling). With rows in no particular order this is
    the median ratio of a random subset, close to 1.

    Parameters
    ----------
    y, fitted : ndarray ``[N]``
        Measured and fitted latencies, ms, in measurement order; ``fitted``
        should be out-of-sample (see :func:`relative_ridge`), or the level
        shrinks towards 1 by the model's leverage.
    recent : float in [0, 1]
        Fraction of the rows that sets the level.
    """
    if recent <= 0 or len(y) == 0:
        return 1.0
    k = min(len(y), max(int(np.ceil(recent * len(y))), min_rows))
    return float(np.median(y[-k:] / fitted[-k:]))


class Predictor(RegressorMixin, BaseEstimator):
    """Base of hwprof predictors: scikit-learn estimators on the architecture matrix ``[N, F]``.

    ``F`` is ``L·K`` (the layer-major one-hot) plus, in elastic spaces, the
    resolution and width ratios (:func:`~hwprof.predictors.features.arch_matrix`);
    ``predict_archs`` builds it from architecture texts.

    Subclasses define ``kind``, ``differentiable``, ``fit``, ``_predict``,
    ``_state``/``_load_state`` and, when differentiable, ``_torch_module``.
    Every subclass takes ``space`` (name) and ``device`` parameters.
    """

    kind: ClassVar[str] = ""
    differentiable: ClassVar[bool] = False

    # -- helpers for subclasses ----------------------------------------------------
    @property
    def space_(self) -> Space:
        return get_space(self.space)

    def _check_X(self, X) -> np.ndarray:
        return check_one_hot(self.space_, X)

    def _fit_start(self, X, y, y_required: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        self._validate_params()
        X = self._check_X(X)
        y = check_target(y, len(X)) if (y is not None or y_required) else None
        self.training_sha256_ = training_sha256(X, y)
        self.n_features_in_ = X.shape[1]
        self.n_train_ = len(X)
        self.device_ = self.device
        return X, y

    # -- public API -----------------------------------------------------------------------
    def predict(self, X) -> np.ndarray:
        """Latency in ms, float64 ``[N]``, of rows ``X`` ``[N, F]`` (:func:`~hwprof.predictors.features.arch_matrix`)
        or bare one-hot rows ``[N, L·K]`` (default resolution and widths)."""
        check_is_fitted(self, "training_sha256_")
        X = self._check_X(X)
        # a model fitted on the bare one-hot of an elastic space (hwprof before 0.2) reads only that
        return self._predict(X[:, : self.n_features_in_])

    def predict_archs(self, archs: Iterable[Arch | str]) -> np.ndarray:
        """Latency in ms, float64 ``[N]``, of architectures (text or :class:`Arch`), resolution and widths included."""
        return self.predict(arch_matrix(self.space_, archs))

    def to_torch(self):
        """Torch module mapping float one-hot ``[..., L·K]`` to latency ms ``[...]``.

        Raises
        ------
        PredictorError
            For kinds that are not differentiable in their input.
        """
        check_is_fitted(self, "training_sha256_")
        if not self.differentiable:
            raise PredictorError(
                f"a {self.kind!r} predictor is not differentiable in the one-hot; use lut, lut-calibrated, "
                "ridge or mlp for gradient-based search"
            )
        return self._torch_module()

    @property
    def metadata(self) -> dict[str, Any]:
        from hwprof import __version__

        return {
            "kind": self.kind,
            "space": self.space,
            "device": getattr(self, "device_", self.device),
            "training_sha256": getattr(self, "training_sha256_", ""),
            "hwprof_version": __version__,
        }

    def save(self, path: str | Path) -> Path:
        """Write JSON (``.json``) or ``.npz`` with metadata; never a pickle."""
        check_is_fitted(self, "training_sha256_")
        return write_document(self.to_document(), path)

    def to_document(self) -> dict[str, Any]:
        """The file content as a dict (arrays still numpy)."""
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in _STATE_PARAMS}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.metadata,
            "params": _plain(params),
            "state": self._state(),
            "n_features_in": int(self.n_features_in_),
            "n_train": int(getattr(self, "n_train_", 0)),
        }

    # -- subclass hooks ---------------------------------------------------------------
    def _predict(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_state(self, state: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _torch_module(self):  # pragma: no cover - abstract
        raise NotImplementedError


#: Parameters that hold objects (tables, priors) and travel in ``state`` instead.
_STATE_PARAMS = {"table", "priors"}


def _plain(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _encode(obj: Any, arrays: dict[str, np.ndarray] | None) -> Any:
    if isinstance(obj, np.ndarray):
        if arrays is None:
            return {"__ndarray__": str(obj.dtype), "shape": list(obj.shape), "data": obj.ravel().tolist()}
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, Mapping):
        return {str(k): _encode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays) for v in obj]
    return _plain(obj)


def _decode(obj: Any, arrays: Mapping[str, np.ndarray] | None) -> Any:
    if isinstance(obj, Mapping):
        if "__ndarray__" in obj:
            return np.array(obj["data"], dtype=obj["__ndarray__"]).reshape(obj["shape"])
        if "__array__" in obj:
            if arrays is None or obj["__array__"] not in arrays:
                raise PredictorError(f"array {obj['__array__']!r} is missing from the predictor file")
            return np.asarray(arrays[obj["__array__"]])
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a predictor file (JSON or ``.npz``) into a dict with numpy arrays."""
    return check_document(read_raw_document(path), path)


def write_document(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write a document as JSON (arrays inline) or, for ``.npz``, JSON metadata beside the arrays; never a pickle."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        arrays: dict[str, np.ndarray] = {}
        meta = _encode(doc, arrays)
        np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)
    else:
        path.write_text(json.dumps(_encode(doc, None)) + "\n")
    return path


def read_raw_document(path: str | Path, what: str = "an hwprof predictor file") -> dict[str, Any]:
    """The dict :func:`write_document` wrote (arrays as numpy), unchecked; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"{what.removeprefix('an ').removeprefix('a ')} {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
                return _decode(json.loads(str(z["__meta__"])), arrays)
        return _decode(json.loads(path.read_text()), None)
    except (ValueError, KeyError, OSError, UnicodeDecodeError, EOFError, zipfile.BadZipFile) as exc:
        raise PredictorError(
            f"{path} is not {what}, or is truncated ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None


def document_from_json(obj: Any, path: str | Path = "<document>") -> dict[str, Any]:
    """A predictor document from the parsed JSON of a ``.json`` predictor file (arrays inline)."""
    return check_document(_decode(obj, None), path)


def check_document(doc: Any, path: str | Path = "<document>") -> dict[str, Any]:
    """Check a predictor document (format, version) and upgrade it to :data:`FORMAT_VERSION`."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PredictorError(f"{path} is not an hwprof predictor file (no format {FORMAT!r})")
    if doc.get("format_version") not in CHANGELOG:
        raise PredictorError(
            f"{path} has predictor format version {doc.get('format_version')!r}; this hwprof reads "
            f"{sorted(CHANGELOG)}. Upgrade hwprof."
        )
    return _upgrade(doc)


__all__ = [
    "CHANGELOG",
    "FORMAT_VERSION",
    "Predictor",
    "check_document",
    "document_from_json",
    "ALPHAS",
    "check_target",
    "choose_alpha",
    "read_document",
    "read_raw_document",
    "write_document",
    "recent_level",
    "relative_ridge",
    "resolve_alpha",
    "training_sha256",
]
