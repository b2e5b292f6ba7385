"""How good a latency prediction is: metrics, a scatter plot, and reading labelled data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hwprof.errors import ConfigError, PredictorError, require
from hwprof.spaces import Arch, Space


@dataclass(frozen=True)
class Metrics:
    """Accuracy of predicted against measured latency.

    Attributes
    ----------
    n : int
        Architectures compared.
    rmse_ms : float
        Root mean squared error (ms).
    mape : float
        Mean absolute percentage error, as a fraction (0.02 = 2%).
    within_5, within_10 : float
        Share of architectures with relative error ≤ 5% / ≤ 10%.
    spearman, kendall : float
        Rank correlations (NaN below 2 architectures).
    """

    n: int
    rmse_ms: float
    mape: float
    within_5: float
    within_10: float
    spearman: float
    kendall: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def metrics(measured_ms: Sequence[float], predicted_ms: Sequence[float]) -> Metrics:
    """Metrics of ``predicted_ms`` against ``measured_ms`` (both float ``[N]`` ms)."""
    y = np.asarray(measured_ms, dtype=np.float64).ravel()
    p = np.asarray(predicted_ms, dtype=np.float64).ravel()
    if y.shape != p.shape or y.size == 0:
        raise PredictorError(f"need equally many measured and predicted latencies, got {y.size} and {p.size}")
    if np.any(y <= 0):
        raise PredictorError("measured latencies must be positive (ms)")
    rel = np.abs(p / y - 1.0)
    if y.size > 1 and np.ptp(y) > 0 and np.ptp(p) > 0:
        rho = float(stats.spearmanr(y, p).statistic)
        tau = float(stats.kendalltau(y, p).statistic)
    else:
        rho = tau = float("nan")
    return Metrics(
        n=int(y.size),
        rmse_ms=float(np.sqrt(np.mean((p - y) ** 2))),
        mape=float(rel.mean()),
        within_5=float(np.mean(rel <= 0.05)),
        within_10=float(np.mean(rel <= 0.10)),
        spearman=rho,
        kendall=tau,
    )


def scatter_plot(measured_ms, predicted_ms, path: str | Path, title: str = "") -> Path:
    """Predicted-vs-measured scatter with the y = x line and the ±10% band, written to ``path``."""
    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(measured_ms, dtype=np.float64)
    p = np.asarray(predicted_ms, dtype=np.float64)
    lo, hi = float(min(y.min(), p.min())) * 0.95, float(max(y.max(), p.max())) * 1.05
    line = np.linspace(lo, hi, 2)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.15, label="±10%")
    ax.plot(line, line, color="black", lw=1, label="y = x")
    ax.scatter(y, p, s=6, alpha=0.6)
    m = metrics(y, p)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_title(title or f"MAPE {m.mape:.2%}, ±5% {m.within_5:.1%}, ρ {m.spearman:.3f}")
    ax.legend(loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def read_frame(path: str | Path) -> pd.DataFrame:
    """CSV or Parquet file as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    if path.suffix not in (".parquet", ".pq"):
        with open(path, "rb") as fh:
            if b"\x00" in fh.read(8192):
                raise ConfigError(f"data file {path} is not text (binary); give a CSV or Parquet file")
    try:
        if path.suffix in (".parquet", ".pq"):
            require("pyarrow", "parquet")
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"data file {path} is empty; it needs a header line and one row per architecture") from None
    except pd.errors.ParserError as exc:
        raise ConfigError(
            f"data file {path} is not well-formed CSV ({str(exc).strip()[:100]}); quote fields that contain commas"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"data file {path} is not text (binary or not UTF-8); give a CSV or Parquet file") from None
    except ImportError:
        raise
    except Exception as exc:  # pyarrow and friends raise their own types for a corrupt file
        raise ConfigError(f"data file {path} cannot be read ({type(exc).__name__}: {str(exc)[:100]})") from None
    if frame.empty:
        raise ConfigError(f"data file {path} has a header but no rows")
    return frame


#: File types matplotlib writes (checked before any work, so a bad --plot fails fast).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".eps", ".ps", ".pgf")


def check_plot_path(path: str | Path) -> None:
    """Refuse a plot file name whose suffix matplotlib cannot write."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {str(path)[:100]!r}: cannot write {suffix or 'a file without suffix'}; use one of {', '.join(PLOT_SUFFIXES)}")


def read_dataset(
    path: str | Path, space: Space, arch_column: str = "arch", target: str | None = None
) -> tuple[list[Arch], np.ndarray | None, pd.DataFrame]:
    """Architectures (and latencies in ms) from a CSV/Parquet file.

    Returns
    -------
    archs : list of Arch
        Parsed from ``arch_column`` (text form of ``SPACES.md``).
    latency_ms : ndarray of float64, shape [N], or None
        The ``target`` column, when given.
    frame : DataFrame
        The file's rows, in file order.
    """
    frame = read_frame(path)
    for col in (arch_column, target):
        if col is not None and col not in frame.columns:
            raise ConfigError(f"{path} has no column {col!r}; columns: {', '.join(map(str, frame.columns))}")
    archs = [space.parse(str(a)) for a in frame[arch_column]]
    y = None
    if target is not None:
        y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(y).any():
            raise ConfigError(f"column {target!r} of {path} has {int(np.isnan(y).sum())} non-numeric values")
    return archs, y, frame




def store_dataset(store: str | Path, device: str, sp: Space, statistic: str | None = None):
    """Table (from op records, or None) and (archs, ms) from arch records of ``device``.

    ``statistic`` defaults to the one the device's campaigns kept in the store (:meth:`Store.statistic`).
    """
    from hwprof.tables.table import build_table
    from hwprof.measure.records import latencies_by_key
    from hwprof.measure.store import Store

    if not Path(store).is_file():
        raise ConfigError(f"store {store} does not exist; measure first (hwprof measure --store {store})")
    with Store(store) as st:
        statistic = statistic or st.statistic(device)
        ops = st.records(device=device, kind="op")
        arch_records = st.records(device=device, kind="arch", space=sp.name)
    table = build_table(ops, sp, statistic, source=str(store)) if ops else None
    by_key = latencies_by_key(arch_records, statistic)
    archs = [sp.parse(k) for k in by_key]
    y = np.array(list(by_key.values()), dtype=np.float64)
    return table, archs, y


__all__ = ["Metrics", "metrics", "read_dataset", "read_frame", "scatter_plot", "store_dataset"]
