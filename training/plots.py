"""Training plots as PNG files: matplotlib's object API (Agg canvas), no pyplot global state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def calibration_plot(table: pd.DataFrame, path: Path) -> Path:
    """Reliability curve: observed repayment rate against mean predicted probability per bin."""
    figure = Figure(figsize=(5, 5))
    axis = figure.add_subplot()
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axis.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model (test)")
    axis.set(xlabel="mean predicted P(repay)", ylabel="observed repayment rate", title="Calibration (test window)")
    axis.legend()
    return _save(figure, path)


def gains_plot(predictions: pd.DataFrame, path: Path, score_columns: dict[str, str]) -> Path:
    """Cumulative share of payers captured by share of account-snapshots, model against baselines."""
    from training.evaluation import gains_curve

    figure = Figure(figsize=(5, 5))
    axis = figure.add_subplot()
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    for label, column in score_columns.items():
        curve = gains_curve(predictions["label"].to_numpy(), predictions[column].to_numpy())
        axis.plot(curve["share_rows"], curve["share_captured"], label=label)
    axis.set(xlabel="share of account-snapshots (best first)", ylabel="share of payers captured", title="Gains (test)")
    axis.legend()
    return _save(figure, path)


def contact_heatmap_plot(heatmap: pd.DataFrame, path: Path) -> Path:
    """Right-party rate by debtor-local hour (columns) and weekday (rows)."""
    figure = Figure(figsize=(9, 3.6))
    axis = figure.add_subplot()
    image = axis.imshow(heatmap.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    axis.set_xticks(range(heatmap.shape[1]), [str(hour) for hour in heatmap.columns])
    axis.set_yticks(range(heatmap.shape[0]), [WEEKDAY_NAMES[int(day)] for day in heatmap.index])
    axis.set(xlabel="debtor-local hour", title="Right-party contact rate by hour and weekday")
    figure.colorbar(image, ax=axis, label="RPC rate")
    return _save(figure, path)


def importance_plot(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    """Horizontal bars of the top features by total gain."""
    shown = importance.head(top)[::-1]
    figure = Figure(figsize=(6, 0.3 * len(shown) + 1.2))
    axis = figure.add_subplot()
    axis.barh(np.arange(len(shown)), shown.to_numpy())
    axis.set_yticks(np.arange(len(shown)), list(shown.index))
    axis.set(xlabel="total gain", title=title)
    return _save(figure, path)


def qini_plot(curve: pd.DataFrame, path: Path) -> Path:
    """Qini curve of the call-effect model against random targeting."""
    figure = Figure(figsize=(5, 5))
    axis = figure.add_subplot()
    axis.plot(curve["share_rows"], curve["qini"], label="call-effect model")
    axis.plot(curve["share_rows"], curve["random"], linestyle="--", color="grey", label="random")
    axis.set(
        xlabel="share of account-snapshots (highest uplift first)", ylabel="incremental payers", title="Qini (test)"
    )
    axis.legend()
    return _save(figure, path)
