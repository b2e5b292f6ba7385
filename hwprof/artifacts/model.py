"""A user's own model as a workload: an ONNX or TFLite file, or a torchvision network by name.

A model file is addressed by the sha256 of its bytes, so a record names
exactly the network that was timed: the workload key is
``<file stem>@<sha256[:16]>:<c>x<h>x<w>``. A registry name
``torchvision:NAME`` is built with ``weights=None`` and exported by hwprof
like any space network (key ``torchvision:NAME:<c>x<h>x<w>``).

hwprof times models with one 4-D float32 input (an image batch). A dynamic
batch dimension takes ``--batch``; any other dynamic dimension needs
``--input-shape``; a fixed batch other than ``--batch`` is refused (the file
would run at its own batch, not the one recorded).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from hwprof.artifacts.record import sha256_of
from hwprof.artifacts.workload import KIND_MODEL, Workload
from hwprof.errors import ConfigError, require

#: File suffix → artifact format of model files hwprof times as they are.
MODEL_FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
TORCHVISION = "torchvision:"
#: Input ``(c, h, w)`` of a torchvision network when ``--input-shape`` is not given.
TORCHVISION_INPUT = (3, 224, 224)


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1,3,224,224"`` (or ``3x224x224``) as a tuple of positive ints; None for None."""
    if text is None:
        return None
    parts = [p for p in re.split(r"[,x× ]+", text.strip()) if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) not in (3, 4):
        raise ConfigError(f"--input-shape {text!r}: give N,C,H,W or C,H,W as positive integers (e.g. 1,3,224,224)")
    return tuple(int(p) for p in parts)


def model_workload(spec: str | Path, batch: int = 1, input_shape: Sequence[int] | None = None) -> Workload:
    """The workload of a model file or ``torchvision:NAME``, its input shape resolved and checked.

    Parameters
    ----------
    spec : str or Path
        A ``.onnx`` / ``.tflite`` file, or ``torchvision:NAME``.
    batch : int
        Batch size the model is timed at.
    input_shape : sequence of int, optional
        ``(n, c, h, w)`` or ``(c, h, w)`` for dynamic dimensions (``n``, when
        given, must equal ``batch``); for a TFLite file the model's own
        layout ``(n, h, w, c)``.

    Raises
    ------
    ConfigError
        A missing or unreadable file, not a model, several or non-4-D or
        non-float inputs, a dynamic shape without ``input_shape``, a fixed
        batch other than ``batch``.
    """
    shape = tuple(int(x) for x in input_shape) if input_shape is not None else None
    if shape is not None and len(shape) == 4:
        if shape[0] != batch:
            raise ConfigError(f"--input-shape has batch {shape[0]} but --batch is {batch}; give C,H,W or make them agree")
        shape = shape[1:]
    text = str(spec)
    if text.startswith(TORCHVISION):
        name = text[len(TORCHVISION) :]
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"{text!r}: expected torchvision:NAME with a torchvision.models name, e.g. mobilenet_v2")
        if name not in _torchvision().models.list_models():
            raise ConfigError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
        chw = shape or TORCHVISION_INPUT
        key = f"{TORCHVISION}{name}:{'x'.join(map(str, chw))}"
        return Workload(KIND_MODEL, key, "", batch, source=text, input_shape=chw)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    fmt = MODEL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: hwprof times .onnx and .tflite files (or torchvision:NAME); got {path.suffix or 'no suffix'}")
    dims = _onnx_input(path) if fmt == "onnx" else _tflite_input(path)
    chw = _resolve(path, dims, batch, shape, fmt)
    key = f"{path.stem}@{sha256_of(path)[:16]}:{'x'.join(map(str, chw))}"
    return Workload(KIND_MODEL, key, "", batch, source=str(path.resolve()), input_shape=chw)


def _resolve(path: Path, dims: list[int | None], batch: int, shape: tuple[int, ...] | None, fmt: str) -> tuple[int, ...]:
    """The three non-batch dimensions, from the file where fixed and from ``shape`` where dynamic."""
    if dims[0] is not None and dims[0] != batch:
        raise ConfigError(
            f"{path.name} has a fixed batch of {dims[0]}; --batch {batch} needs a model exported with a dynamic "
            f"batch dimension (or measure it with --batch {dims[0]})"
        )
    rest = dims[1:]
    layout = "H,W,C" if fmt == "tflite" else "C,H,W"
    if shape is None:
        if any(d is None for d in rest):
            raise ConfigError(
                f"{path.name} has a dynamic input shape {_show(dims)}; give it with --input-shape ({layout}, e.g. "
                f"{'224,224,3' if fmt == 'tflite' else '3,224,224'})"
            )
        return tuple(int(d) for d in rest)  # type: ignore[arg-type]
    for d, s in zip(rest, shape):
        if d is not None and d != s:
            raise ConfigError(f"--input-shape {_show(shape)} contradicts the model's input {_show(dims)} ({layout})")
    if fmt == "tflite" and any(d is None for d in rest):
        raise ConfigError(f"{path.name}: hwprof times TFLite files at their own input shape; {_show(dims)} is dynamic")
    return shape


def _show(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _onnx_input(path: Path) -> list[int | None]:
    onnx = require("onnx", "onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a file that is not a model
        raise ConfigError(f"{path} is not an ONNX model ({type(exc).__name__}: {str(exc)[:80]})") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ConfigError(f"{path.name} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); hwprof times models with one image input")
    t = inputs[0].type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT:
        raise ConfigError(f"{path.name}: input {inputs[0].name!r} is {onnx.TensorProto.DataType.Name(t.elem_type)}; hwprof feeds float32")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
    if len(dims) != 4:
        raise ConfigError(f"{path.name}: input {inputs[0].name!r} has {len(dims)} dimensions; hwprof times 4-D image inputs")
    return dims


def _tflite_input(path: Path) -> list[int | None]:
    litert = require("ai_edge_litert.interpreter", "litert")
    try:
        interp = litert.Interpreter(model_path=str(path))
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a file that is not a model
        raise ConfigError(f"{path} is not a TFLite model ({type(exc).__name__}: {str(exc)[:80]})") from None
    details = interp.get_input_details()
    if len(details) != 1:
        raise ConfigError(f"{path.name} has {len(details)} inputs; hwprof times models with one image input")
    d = details[0]
    if d["dtype"].__name__ != "float32":
        raise ConfigError(f"{path.name}: input {d['name']!r} is {d['dtype'].__name__}; hwprof feeds float32")
    sig = list(d.get("shape_signature", d["shape"]))
    if len(sig) != 4:
        raise ConfigError(f"{path.name}: input {d['name']!r} has {len(sig)} dimensions; hwprof times 4-D image inputs")
    return [None if int(x) < 0 else int(x) for x in sig]


def _torchvision():
    try:
        import torchvision
    except Exception as exc:  # the registry's torchvision fails to import beside the CPU torch wheel
        raise ConfigError(
            f"torchvision:NAME needs torchvision, which does not import here ({type(exc).__name__}: "
            f"{str(exc)[:80]}); install torch and torchvision builds that match, or export the model to ONNX"
        ) from None
    return torchvision


def torchvision_module(name: str):
    """``torchvision.models.get_model(name, weights=None)`` in eval mode, or a one-line error."""
    try:
        return _torchvision().models.get_model(name, weights=None).eval()
    except ValueError:
        raise ConfigError(f"torchvision has no model {name!r}; see torchvision.models.list_models()") from None


__all__ = ["MODEL_FORMATS", "TORCHVISION", "model_workload", "parse_input_shape", "sha256_of", "torchvision_module"]
