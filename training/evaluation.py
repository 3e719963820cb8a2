"""Evaluation metrics shared by the three models: discrimination, calibration, capture, Qini."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

CAPTURE_SHARES = (0.1, 0.2, 0.3)


def safe_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present (instead of raising)."""
    labels = np.asarray(labels)
    if labels.min(initial=0) == labels.max(initial=0) or len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def paired_auc_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    other_scores: np.ndarray,
    groups: np.ndarray | pd.Series,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of AUC(scores) - AUC(other_scores) on the same rows, by a paired bootstrap.

    Whole groups (an account's rows at every snapshot) are resampled with replacement: rows of one
    account are not independent, and resampling rows alone would make the interval too narrow.
    Seeded, so the interval is deterministic.
    """
    labels = np.asarray(labels)
    scores, other_scores = np.asarray(scores, dtype=float), np.asarray(other_scores, dtype=float)
    codes, uniques = pd.factorize(np.asarray(groups))
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        weight = np.bincount(rng.integers(0, len(uniques), len(uniques)), minlength=len(uniques))[codes]
        kept = weight > 0
        if len(np.unique(labels[kept])) < 2:
            continue
        differences.append(
            roc_auc_score(labels[kept], scores[kept], sample_weight=weight[kept])
            - roc_auc_score(labels[kept], other_scores[kept], sample_weight=weight[kept])
        )
    if not differences:
        return float("nan"), float("nan")
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    probabilities = np.clip(np.asarray(probabilities, dtype=float), 0, 1)
    labels = np.asarray(labels, dtype=float)
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=probabilities, minlength=bins)
    observed = np.bincount(index, weights=labels, minlength=bins)
    filled = counts > 0
    return float(np.sum(np.abs(observed[filled] - predicted[filled])) / max(len(labels), 1))


def calibration_table(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of the prediction: mean prediction, observed rate, rows (the calibration curve)."""
    frame = pd.DataFrame({"p": np.asarray(probabilities, dtype=float), "y": np.asarray(labels, dtype=float)})
    ranks = frame["p"].rank(method="first")
    frame["bin"] = np.minimum(((ranks - 1) / len(frame) * bins).astype(int), bins - 1) if len(frame) else 0
    table = frame.groupby("bin").agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), rows=("y", "size"))
    return table.reset_index(drop=True)


def capture_at(labels: np.ndarray, scores: np.ndarray, share: float) -> float:
    """Share of all positives found in the top `share` of rows by score."""
    labels = np.asarray(labels, dtype=float)
    total = labels.sum()
    if total == 0:
        return float("nan")
    top = max(int(np.ceil(share * len(labels))), 1)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return float(labels[order[:top]].sum() / total)


def gains_curve(labels: np.ndarray, scores: np.ndarray, points: int = 50) -> pd.DataFrame:
    """Cumulative share of positives captured against share of rows contacted, best score first."""
    labels = np.asarray(labels, dtype=float)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    cumulative = np.cumsum(labels[order]) / max(labels.sum(), 1)
    at = np.unique(np.linspace(0, len(labels), points + 1).astype(int))
    captured = np.concatenate([[0.0], cumulative])[at]
    return pd.DataFrame({"share_rows": at / max(len(labels), 1), "share_captured": captured})


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, ECE and payer capture in the top 10/20/30%."""
    labels = np.asarray(labels, dtype=int)
    probabilities = np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1 - 1e-6)
    two_classes = len(np.unique(labels)) == 2
    metrics = {
        "roc_auc": safe_auc(labels, probabilities),
        "pr_auc": float(average_precision_score(labels, probabilities)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(labels, probabilities)),
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1])),
        "ece": expected_calibration_error(labels, probabilities),
        "base_rate": float(labels.mean()) if len(labels) else float("nan"),
        "rows": float(len(labels)),
    }
    for share in CAPTURE_SHARES:
        metrics[f"capture_top_{int(share * 100)}"] = capture_at(labels, probabilities, share)
    return {f"{prefix}{name}": value for name, value in metrics.items()}


def qini_curve(outcome: np.ndarray, treated: np.ndarray, uplift: np.ndarray, points: int = 50) -> pd.DataFrame:
    """Qini curve: incremental positives Y_t(k) - Y_c(k) * N_t(k) / N_c(k) among the top k by uplift.

    Also returns the random-targeting line (straight from 0 to the total incremental positives).
    """
    outcome = np.asarray(outcome, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    order = np.argsort(-np.asarray(uplift, dtype=float), kind="stable")
    y, t = outcome[order], treated[order]
    treated_positives = np.cumsum(y * t)
    control_positives = np.cumsum(y * ~t)
    treated_count = np.cumsum(t)
    control_count = np.cumsum(~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        incremental = treated_positives - control_positives * np.where(
            control_count > 0, treated_count / control_count, 0.0
        )
    incremental = np.concatenate([[0.0], incremental])
    n = len(outcome)
    at = np.unique(np.linspace(0, n, points + 1).astype(int))
    share = at / max(n, 1)
    return pd.DataFrame(
        {"share_rows": share, "qini": incremental[at], "random": share * (incremental[-1] if n else 0.0)}
    )


def qini_coefficient(outcome: np.ndarray, treated: np.ndarray, uplift: np.ndarray) -> float:
    """Area between the Qini curve and the random line, per treated row (0 = no better than random).

    Normalised by the number of treated rows so windows of different sizes compare.
    """
    curve = qini_curve(outcome, treated, uplift, points=200)
    gain = np.trapezoid(curve["qini"] - curve["random"], curve["share_rows"])
    treated_rows = max(int(np.asarray(treated, dtype=bool).sum()), 1)
    return float(gain / treated_rows)


def uplift_by_decile(outcome: np.ndarray, treated: np.ndarray, uplift: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed treated - control outcome rate per predicted-uplift decile (best first)."""
    frame = pd.DataFrame(
        {"y": np.asarray(outcome, dtype=float), "t": np.asarray(treated, dtype=bool), "u": np.asarray(uplift)}
    )
    ranks = frame["u"].rank(method="first", ascending=False)
    frame["decile"] = np.minimum(((ranks - 1) / max(len(frame), 1) * bins).astype(int), bins - 1)
    grouped = frame.groupby("decile")
    table = pd.DataFrame(
        {
            "predicted_uplift": grouped["u"].mean(),
            "treated_rate": frame[frame["t"]].groupby("decile")["y"].mean(),
            "control_rate": frame[~frame["t"]].groupby("decile")["y"].mean(),
            "rows": grouped.size(),
        }
    )
    table["observed_uplift"] = table["treated_rate"] - table["control_rate"]
    return table.reset_index()
