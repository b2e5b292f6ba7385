"""``mlp``: the LightNAS predictor (one-hot → 128 → 64 → 1), optionally with a linear skip.

With ``linear=True`` (default) the network is ``ridge(x) + mlp(x)``: the
additive part every latency has, plus a small MLP for the interactions, so
it starts from the additive fit (on the relative error) instead of having
to learn it. Trained in torch, full batch, AdamW, on the squared relative
error (what MAPE and the ±5% share measure); with ``early_stopping`` a
held-out tenth of the rows picks the epoch whose weights are kept, so the
MLP stops where the interactions end and the noise begins. The output is
finally put at the device's most recent speed (:func:`recent_level`).

In elastic spaces (resolution, widths) the input is the additive design of
:func:`~hwprof.predictors.features.design` (the one-hot scaled by each layer's
area and width, plus cost priors), so the MLP starts from what the one-hot
cannot say; elsewhere it is the plain one-hot, and the linear path starts from
the design's fit folded back onto it.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Mapping

import numpy as np
from sklearn.utils._param_validation import Interval

from hwprof.errors import PredictorError, require
from hwprof.predictors.base import Predictor, recent_level, training_sha256
from hwprof.predictors.linear import linear_inputs, on_inputs, relative_additive


def _module(n_in: int, hidden: tuple[int, ...], linear: bool, mu: float, sd: float):
    torch = require("torch", "torch")
    nn = torch.nn

    class MLPLatency(nn.Module):
        """One-hot ``[..., L·K]`` → ms ``[...]``: ``mu + sd · (mlp(x) [+ linear(x)])``."""

        def __init__(self):
            super().__init__()
            layers: list = []
            prev = n_in
            for width in hidden:
                layers += [nn.Linear(prev, width), nn.ReLU()]
                prev = width
            layers.append(nn.Linear(prev, 1))
            self.pred = nn.Sequential(*layers)  # pred.0/2/4 as in LightNAS's released file
            self.linear = nn.Linear(n_in, 1) if linear else None
            self.register_buffer("mu", torch.tensor(float(mu)))
            self.register_buffer("sd", torch.tensor(float(sd)))

        def forward(self, x):
            x = x.to(self.mu.dtype)
            out = self.pred(x).squeeze(-1)
            if self.linear is not None:
                out = out + self.linear(x).squeeze(-1)
            return self.mu + self.sd * out

    return MLPLatency()


class MLPPredictor(Predictor):
    """MLP latency predictor on the one-hot (LightNAS), differentiable in its input.

    Parameters
    ----------
    space, device : str
    hidden : tuple of int
        Hidden widths; LightNAS uses (128, 64).
    linear : bool
        Add a linear (additive) path from the one-hot to the output.
    weight_decay : float
        AdamW weight decay of the MLP weights.
    epochs : int
        Full-batch optimisation steps.
    lr : float
        Adam learning rate (cosine-annealed).
    early_stopping : bool
        Keep the weights of the epoch with the lowest error on a held-out
        tenth of the rows (only with at least 100 rows).
    recent : float in [0, 1]
        Fraction of the most recent training rows (rows in measurement
        order) whose median ratio sets the level; 0 keeps the fitted level.
    seed : int
        Torch seed for the initial weights and the held-out rows.
    """

    kind = "mlp"
    differentiable = True
    _parameter_constraints: dict = {
        "space": [str],
        "device": [str],
        "hidden": [tuple, list],
        "linear": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "recent": [Interval(Real, 0, 1, closed="both")],
        "seed": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        space: str = "proxylessnas",
        device: str = "",
        hidden: tuple[int, ...] = (128, 64),
        linear: bool = True,
        weight_decay: float = 1e-2,
        epochs: int = 300,
        lr: float = 3e-3,
        early_stopping: bool = True,
        recent: float = 0.1,
        seed: int = 0,
    ):
        self.space = space
        self.device = device
        self.hidden = hidden
        self.linear = linear
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.lr = lr
        self.early_stopping = early_stopping
        self.recent = recent
        self.seed = seed

    def fit(self, X, y):
        torch = require("torch", "torch")
        X, y = self._fit_start(X, y)
        # elastic spaces: the design; otherwise the one-hot
        coef, intercept, base_loo, X = relative_additive(self.space_, X, y, "auto")
        base = X @ coef + intercept
        mu = float(np.mean(y))
        sd = float(np.std(y)) if len(y) > 1 and np.std(y) > 0 else max(mu, 1e-6)
        torch.manual_seed(self.seed)
        net = _module(X.shape[1], tuple(self.hidden), self.linear, mu, sd)
        if self.linear:  # start from the additive fit, the MLP's last layer near zero
            with torch.no_grad():
                net.linear.weight.copy_(torch.as_tensor(coef[None, :] / sd, dtype=torch.float32))
                net.linear.bias.fill_((intercept - mu) / sd)
                net.pred[-1].weight.mul_(0.1)
        held = np.zeros(len(y), dtype=bool)
        if self.early_stopping and len(y) >= 100:
            held[np.random.default_rng(self.seed).choice(len(y), len(y) // 10, replace=False)] = True
        xt, yt = torch.tensor(X[~held], dtype=torch.float32), torch.tensor(y[~held], dtype=torch.float32)
        xv, yv = torch.tensor(X[held], dtype=torch.float32), torch.tensor(y[held], dtype=torch.float32)
        decay = [p for n, p in net.named_parameters() if n.startswith("pred") and n.endswith("weight")]
        rest = [p for n, p in net.named_parameters() if not (n.startswith("pred") and n.endswith("weight"))]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=self.lr
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        best, best_state = np.inf, None
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small dense problem: extra threads only contend
        try:
            for _ in range(self.epochs):
                if held.any():
                    net.eval()
                    with torch.no_grad():
                        val = float(torch.mean(((net(xv) - yv) / yv) ** 2))
                    if val < best:
                        best, best_state = val, {k: v.clone() for k, v in net.state_dict().items()}
                net.train()
                opt.zero_grad()
                loss = torch.mean(((net(xt) - yt) / yt) ** 2)
                loss.backward()
                opt.step()
                sched.step()
            if best_state is not None:
                net.eval()
                with torch.no_grad():
                    val = float(torch.mean(((net(xv) - yv) / yv) ** 2))
                if val > best:
                    net.load_state_dict(best_state)
        finally:
            torch.set_num_threads(threads)
        net.eval()
        with torch.no_grad():  # the level scales the output: folded into mu and sd, so torch sees it too
            fitted = net(torch.as_tensor(X, dtype=torch.float32)).double().numpy()
            # in-sample fits follow their own noise; the additive base's leave-one-out ratio undoes that
            level = recent_level(y, fitted * base_loo / base, self.recent)
            net.mu.mul_(level)
            net.sd.mul_(level)
        self._set_net(net)
        return self

    def _set_net(self, net) -> None:
        self.net_ = net
        self.state_ = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}

    def _predict(self, X):
        torch = require("torch", "torch")
        with torch.no_grad():
            X = linear_inputs(self.space_, X, self.net_.pred[0].in_features)
            return self.net_(torch.as_tensor(X, dtype=torch.float32)).double().numpy()

    def _state(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "linear": bool(self.linear), "weights": dict(self.state_)}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        torch = require("torch", "torch")
        weights = state["weights"]
        hidden = tuple(int(h) for h in state["hidden"])
        n_in = int(np.asarray(weights["pred.0.weight"]).shape[1])
        net = _module(n_in, hidden, bool(state["linear"]), float(weights["mu"]), float(weights["sd"]))
        try:
            net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
        except RuntimeError as exc:
            raise PredictorError(f"MLP weights do not fit hidden={hidden}: {exc}") from None
        net.eval()
        self._set_net(net)

    def _torch_module(self):
        import copy

        net = copy.deepcopy(self.net_)
        return on_inputs(self.space_, net, net.pred[0].in_features)

    @classmethod
    def from_lightnas_state_dict(
        cls, state: Mapping[str, Any], space: str = "lightnas", device: str = "", source: str = ""
    ) -> "MLPPredictor":
        """Predictor from LightNAS's released state dict (``pred.0/2/4.weight/bias``, ReLU between)."""
        torch = require("torch", "torch")
        names = [k for k in state if k.startswith("pred.")]
        linears = sorted({int(k.split(".")[1]) for k in names})
        if not linears or any(f"pred.{i}.{p}" not in state for i in linears for p in ("weight", "bias")):
            raise PredictorError(f"not a LightNAS predictor state dict (keys: {', '.join(list(state)[:6])})")
        shapes = [tuple(state[f"pred.{i}.weight"].shape) for i in linears]
        hidden = tuple(s[0] for s in shapes[:-1])
        pred = cls(space=space, device=device, hidden=hidden, linear=False)
        width = pred.space_.num_layers * pred.space_.max_choices
        if shapes[0][1] != width or shapes[-1][0] != 1:
            raise PredictorError(f"predictor input {shapes[0][1]} does not match space {space} ({width} one-hot inputs)")
        weights = {k: torch.as_tensor(v).float().numpy() for k, v in state.items() if k in names}
        weights.update(mu=np.float32(0.0), sd=np.float32(1.0))
        pred._load_state({"hidden": list(hidden), "linear": False, "weights": weights})
        pred.n_features_in_ = width
        pred.n_train_ = 0
        pred.device_ = device
        pred.training_sha256_ = training_sha256(np.zeros((0, width)), None) if not source else f"released:{source}"
        return pred


__all__ = ["MLPPredictor"]
