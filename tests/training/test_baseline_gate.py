"""The baseline gates of the repayment and contact models: clearly worse fails the run, a tie within noise is noted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.evaluation import paired_auc_interval
from training.repayment import ModelQualityError, gate_baseline


def _book(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    labels = (signal + rng.normal(size=rows) > 0.5).astype(int)
    return labels, signal, rng.normal(size=rows)


def test_interval_is_zero_for_identical_scores_and_above_zero_for_a_clearly_better_one():
    labels, signal, noise = _book()
    groups = np.arange(len(labels))
    assert paired_auc_interval(labels, signal, signal, groups) == (0.0, 0.0)
    low, high = paired_auc_interval(labels, signal, noise, groups)
    assert 0.15 < low < high
    assert paired_auc_interval(labels, signal, noise, groups, seed=3) == paired_auc_interval(
        labels, signal, noise, groups, seed=3
    )


def test_interval_resamples_whole_accounts_not_rows():
    """Five copies of each row carry no more information than one: with accounts resampled the
    interval keeps its width; resampling rows would shrink it by about sqrt(5)."""
    labels, signal, _ = _book(rows=1500, seed=1)
    weaker = signal + np.random.default_rng(2).normal(scale=1.0, size=len(signal))
    once = paired_auc_interval(labels, signal, weaker, np.arange(len(labels)))
    copies = np.repeat(np.arange(len(labels)), 5)
    grouped = paired_auc_interval(labels[copies], signal[copies], weaker[copies], copies)
    as_rows = paired_auc_interval(labels[copies], signal[copies], weaker[copies], np.arange(len(copies)))
    width = once[1] - once[0]
    assert grouped[1] - grouped[0] == pytest.approx(width, rel=0.3)
    assert as_rows[1] - as_rows[0] < 0.7 * width


def _metrics(labels, model, baseline) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {"test_roc_auc": roc_auc_score(labels, model), "baseline_logistic_roc_auc": roc_auc_score(labels, baseline)}


def test_gate_fails_a_clearly_worse_model_and_notes_a_tie():
    labels, signal, noise = _book()
    accounts = pd.Series([f"A{i}" for i in range(len(labels))])

    notes: list[str] = []
    metrics = _metrics(labels, noise, signal)
    with pytest.raises(ModelQualityError, match="does not beat baseline_logistic .* clearly worse"):
        gate_baseline(metrics, "baseline_logistic_", labels, noise, signal, accounts, 0, notes)
    assert metrics["baseline_logistic_roc_auc_difference_high"] < 0

    # The same signal, a hair noisier than the baseline: lower AUC, but within the noise.
    nudged = signal + np.random.default_rng(5).normal(scale=0.02, size=len(signal))
    metrics = _metrics(labels, nudged, signal)
    assert metrics["test_roc_auc"] <= metrics["baseline_logistic_roc_auc"]
    gate_baseline(metrics, "baseline_logistic_", labels, nudged, signal, accounts, 0, notes)
    assert len(notes) == 1 and "within the test window's noise" in notes[0]
    prefix = "baseline_logistic_roc_auc_difference"
    assert metrics[f"{prefix}_low"] < 0 <= metrics[f"{prefix}_high"]

    # Beating the baseline passes without a note or a bootstrap.
    metrics = _metrics(labels, signal, noise)
    gate_baseline(metrics, "baseline_logistic_", labels, signal, noise, accounts, 0, notes)
    assert len(notes) == 1 and "baseline_logistic_roc_auc_difference_low" not in metrics


def test_the_contact_model_is_gated_on_both_of_its_baselines(monkeypatch):
    """A contact model that scores calls at random is clearly worse than the collectors' rule and the
    debtor's own best hour: the run fails, as a repayment model's does."""
    from features.simulation import SimulationConfig, simulate
    from training.config import TrainConfig
    from training.contact import fit_contact
    from training.models import ContactModel
    from training.snapshots import build_training_data

    book = simulate(SimulationConfig(n_accounts=1000, days=150, seed=11)).export
    config = TrainConfig()
    data = build_training_data(book, config)
    fitted = fit_contact(data, config, book)  # the model itself beats both
    assert fitted.metrics["test_roc_auc"] > fitted.metrics["baseline_rule_roc_auc"]
    assert fitted.metrics["test_roc_auc"] > fitted.metrics["baseline_debtor_roc_auc"]

    def at_random(self, features):
        return np.random.default_rng(0).random(len(features))

    monkeypatch.setattr(ContactModel, "predict_proba", at_random)
    with pytest.raises(
        ModelQualityError, match="contact model test AUC .* does not beat baseline_rule .* clearly worse"
    ):
        fit_contact(data, config, book)
