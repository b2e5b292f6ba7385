"""Latency predictors: scikit-learn estimators on the layer-major one-hot ``[N, L·K]``.

=================  ==============================================  ===============
kind               model                                           differentiable
=================  ==============================================  ===============
``lut``            LUT sum + constant                              yes (linear)
``lut-calibrated`` affine correction of the LUT sum                yes (linear)
``ridge``          additive ridge on the one-hot                   yes (linear)
``mlp``            LightNAS MLP (+ linear path)                    yes
``gbdt``           ridge base × boosted-tree correction            no
``transfer``       priors from other devices, log-affine map       no
``auto``           the best of several kinds by cross-validation   if its choice is
=================  ==============================================  ===============

Every predictor is saved as JSON or ``.npz`` (never a pickle) with its kind,
space, device, training-data SHA-256, hwprof version and format version;
:func:`load_predictor` reads it back and refuses a file of another space or
device when one is expected. Modules: one per kind (:mod:`.linear`, :mod:`.mlp`,
:mod:`.gbdt`, :mod:`.transfer`), :mod:`.base`, :mod:`.features`,
:mod:`.evaluate` (metrics, datasets), :mod:`.lightnas_mlp` (the published MLP).

May import :mod:`hwprof.spaces`, :mod:`hwprof.measure` and :mod:`hwprof.tables`;
imported by :mod:`hwprof.latency` and the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


from hwprof.errors import PredictorError
from hwprof.predictors.base import CHANGELOG, FORMAT_VERSION, Predictor, read_document
from hwprof.predictors.features import matrix_width
from hwprof.predictors.gbdt import GBDTPredictor
from hwprof.predictors.linear import LUTCalibratedPredictor, LUTPredictor, RidgePredictor
from hwprof.predictors.mlp import MLPPredictor
from hwprof.predictors.transfer import AutoPredictor, TransferPredictor
from hwprof.predictors.lightnas_mlp import import_lightnas_mlp

KINDS: dict[str, type[Predictor]] = {
    cls.kind: cls
    for cls in (
        LUTPredictor,
        LUTCalibratedPredictor,
        RidgePredictor,
        MLPPredictor,
        GBDTPredictor,
        TransferPredictor,
        AutoPredictor,
    )
}

#: Published predictor formats: name → reader (``hwprof import NAME FILE``).
PREDICTOR_IMPORTERS = {"lightnas-mlp": import_lightnas_mlp}


def make_predictor(kind: str, **params: Any) -> Predictor:
    """A new (unfitted) predictor of ``kind`` with ``params``."""
    try:
        cls = KINDS[kind]
    except KeyError:
        raise PredictorError(f"unknown predictor kind {kind!r}; allowed: {', '.join(KINDS)}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise PredictorError(f"bad parameters for a {kind} predictor: {exc}") from None


def predictor_from_document(doc: Mapping[str, Any]) -> Predictor:
    """Rebuild a fitted predictor from the dict of :meth:`Predictor.to_document`."""
    kind = doc.get("kind")
    if kind not in KINDS:
        raise PredictorError(f"predictor file of unknown kind {kind!r}; this hwprof knows {', '.join(KINDS)}")
    params = dict(doc.get("params", {}))
    for key in ("hidden", "kinds"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    header = doc.get("space")
    if header is not None and params.get("space") is not None and header != params["space"]:
        raise PredictorError(
            f"the predictor file names space {str(header)[:60]!r} but was fitted for {str(params['space'])[:60]!r}; "
            "it was edited: re-fit it with hwprof fit-predictor"
        )
    try:
        pred = make_predictor(kind, **params)
        pred._load_state(doc["state"])
        pred.n_features_in_ = int(doc["n_features_in"])
        pred.n_train_ = int(doc.get("n_train", 0))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, PredictorError) as exc:
        raise PredictorError(
            f"the {kind} predictor file does not hold a {kind} model's state ({type(exc).__name__}: {str(exc)[:100]}); "
            "was its 'kind' edited? Re-fit it with hwprof fit-predictor"
        ) from None
    pred.device_ = str(doc.get("device", ""))
    pred.training_sha256_ = str(doc.get("training_sha256", ""))
    widths = {pred.space_.num_layers * pred.space_.max_choices, matrix_width(pred.space_)}
    if pred.n_features_in_ not in widths:
        raise PredictorError(f"predictor expects {pred.n_features_in_} inputs, space {pred.space} has another width")
    return pred


def load_predictor(path: str | Path, space: str | None = None, device: str | None = None) -> Predictor:
    """Read a predictor file (JSON or ``.npz``).

    Raises
    ------
    PredictorError
        When the file is not a predictor, or is for another ``space`` or
        ``device`` than the one expected.
    """
    doc = read_document(path)
    if space is not None and doc.get("space") != space:
        raise PredictorError(f"{path} is a predictor for space {doc.get('space')!r}, expected {space!r}")
    if device is not None and doc.get("device") != device:
        raise PredictorError(f"{path} is a predictor for device {doc.get('device')!r}, expected {device!r}")
    return predictor_from_document(doc)


__all__ = [
    "CHANGELOG",
    "FORMAT_VERSION",
    "KINDS",
    "PREDICTOR_IMPORTERS",
    "import_lightnas_mlp",
    "AutoPredictor",
    "GBDTPredictor",
    "LUTCalibratedPredictor",
    "LUTPredictor",
    "MLPPredictor",
    "Predictor",
    "RidgePredictor",
    "TransferPredictor",
    "load_predictor",
    "make_predictor",
    "predictor_from_document",
]
