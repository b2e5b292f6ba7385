"""The released LightNAS latency MLP state dict (``lightnas-mlp``), as an ``mlp`` predictor."""

from __future__ import annotations

from pathlib import Path

from hwprof.errors import ConfigError, require



def import_lightnas_mlp(path: str | Path, device: str = "jetson-xavier-b8"):
    """The released LightNAS latency MLP as an ``mlp`` predictor of the ``lightnas`` space."""
    from hwprof.predictors.mlp import MLPPredictor

    torch = require("torch", "torch")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except Exception as exc:  # weights_only refuses anything but tensors and containers
        raise ConfigError(f"{path} is not a plain state dict ({type(exc).__name__}: {exc})") from None
    return MLPPredictor.from_lightnas_state_dict(state, space="lightnas", device=device, source=str(Path(path).name))
