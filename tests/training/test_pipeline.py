"""End to end on a small simulated book: train, register, promote, compare on the same window, roll back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from training import tracking
from training.config import TrainConfig
from training.pipeline import train
from training.repayment import ModelQualityError

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _config(name: str, **overrides) -> TrainConfig:
    """An experiments/ config with one thread everywhere (tests share the machine) and fewer snapshots."""
    data = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    for model in ("repayment", "contact", "uplift"):
        data.setdefault(model, {}).setdefault("params", {})["num_threads"] = 1
    data.update(train_snapshots=8, validation_snapshots=2, test_snapshots=2, **overrides)
    return TrainConfig.model_validate(data)


@pytest.fixture(scope="module")
def book():
    from features.simulation import SimulationConfig, simulate

    return simulate(SimulationConfig(n_accounts=2500, days=180, seed=11))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_train_registers_promotes_compares_on_the_same_window_and_rolls_back(book, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = _config("default")

    first = train(book.export, config, tracking_uri=uri, world=book.world, report_dir=tmp_path / "report1")
    assert first.promoted == {"repayment": True, "contact": True, "call_effect": True}
    assert first.model_version == "repayment:1,contact:1,call-effect:1"
    metrics = first.metrics
    assert metrics["repayment.test_roc_auc"] > metrics["repayment.baseline_stage_roc_auc"]
    assert metrics["repayment.test_roc_auc"] > metrics["repayment.baseline_logistic_roc_auc"]
    assert metrics["contact.test_roc_auc"] > metrics["contact.baseline_rule_roc_auc"]
    assert 0.5 < metrics["repayment.world_model_expected_auc"] <= metrics["repayment.world_ceiling_expected_auc"]
    assert metrics["call_effect.world_pearson"] > 0
    report = first.report_path.read_text()
    assert "DPD-bucket rule" in report and "Qini" in report
    assert (first.report_path.parent / "calibration.png").stat().st_size > 0

    champions = tracking.load_champions(uri)
    assert champions.model_version == "repayment:1,contact:1,call-effect:1"
    # Behaviour of the registered model on real features: more broken promises never raise the score.
    rows = book.export.accounts[["account_id"]].head(200).assign(as_of=book.export.as_of)
    from features.build import build_features

    features = build_features(book.export, rows)
    grid = pd.concat([features.assign(promises_broken_90d=k) for k in range(5)], ignore_index=True)
    scores = champions.repayment.predict_proba(grid).reshape(5, len(features))
    assert (np.diff(scores, axis=0) <= 1e-12).all()
    hours = champions.contact.predict_hours(features, range(8, 21), 2)
    assert hours.shape == (len(features), 13) and ((hours >= 0) & (hours <= 1)).all()

    # Same config and seed again: identical metrics (deterministic), so not better: registered, not promoted.
    second = train(book.export, config, tracking_uri=uri, report_dir=tmp_path / "report2")
    assert second.metrics["repayment.test_roc_auc"] == metrics["repayment.test_roc_auc"]
    assert second.promoted == {"repayment": False, "contact": False, "call_effect": False}
    assert second.models["repayment"].champion_value == pytest.approx(metrics["repayment.test_roc_auc"])
    assert tracking.champion_version("callq-repayment", uri) == "1"

    # A deliberately weak config fails its baseline gate: the run fails, nothing is registered or promoted.
    with pytest.raises(ModelQualityError, match="does not beat"):
        train(book.export, _config("weak"), tracking_uri=uri, report_dir=tmp_path / "report3")
    listing = tracking.list_models(uri)
    assert listing.groupby("name")["version"].max().to_dict() == {
        "callq-call-effect": 2,
        "callq-contact": 2,
        "callq-repayment": 2,
    }
    assert "does not beat champion" in listing.loc[listing["version"] == 2, "not_promoted_reason"].iloc[0]

    # Manual promotion and rollback, reasons kept as version tags.
    tracking.promote("repayment", "2", "manual: test promotion", uri)
    assert tracking.champion_version("repayment", uri) == "2"
    assert tracking.rollback("callq-repayment", "manual: test rollback", uri) == "1"
    assert tracking.champion_version("repayment", uri) == "1"
    listing = tracking.list_models(uri).set_index(["name", "version"])
    assert listing.loc[("callq-repayment", 1), "aliases"] == "champion"
    assert listing.loc[("callq-repayment", 2), "rollback_reason"] == "manual: test rollback"
    with pytest.raises(tracking.RegistryError, match="no previous champion"):
        tracking.rollback("repayment", "again", uri)
    with pytest.raises(tracking.RegistryError, match="no version 9"):
        tracking.promote("repayment", "9", "missing", uri)


def test_registry_names_and_store_location(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CALLQ_HOME", str(tmp_path / "home"))
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking.resolve_tracking_uri() == "http://mlflow.internal:5000"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert tracking.registered_name("call-effect") == "callq-call-effect"
    assert tracking.registered_name("callq-repayment") == "callq-repayment"
    with pytest.raises(tracking.RegistryError, match="unknown model"):
        tracking.registered_name("churn")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_book_whose_calling_paused_is_refused_with_what_to_do(book, tmp_path):
    import dataclasses

    contacts = book.export.contacts
    recent_calls = (contacts["channel"] == "call") & (
        contacts["started_at"] >= book.export.as_of - pd.Timedelta(days=30)
    )
    paused = dataclasses.replace(book.export, contacts=contacts[~recent_calls].reset_index(drop=True))
    with pytest.raises(ModelQualityError, match="no outbound call in the test window .* was calling paused"):
        train(paused, _config("default"), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", report_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_book_without_payments_or_answered_calls_is_refused_saying_so(book, tmp_path):
    import dataclasses

    from features.contract import RIGHT_PARTY_OUTCOMES

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    unpaid = dataclasses.replace(book.export, payments=book.export.payments.iloc[0:0])
    with pytest.raises(ModelQualityError, match="none of the .* repaid .does the export hold the settled payments"):
        train(unpaid, _config("default"), tracking_uri=uri, report_dir=tmp_path)
    contacts = book.export.contacts.copy()
    answered = (contacts["direction"] == "outbound") & contacts["outcome"].isin(RIGHT_PARTY_OUTCOMES)
    contacts["outcome"] = contacts["outcome"].astype("string").where(~answered, "no_answer")
    silent = dataclasses.replace(book.export, contacts=contacts)
    with pytest.raises(ModelQualityError, match="none of the .* outbound calls in the train window reached the debtor"):
        train(silent, _config("default"), tracking_uri=uri, report_dir=tmp_path)
