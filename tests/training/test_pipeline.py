"""End to end on a small simulated book: train, register, promote, compare on the same window, roll back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.trained import FAST_MODELS
from training import tracking
from training.config import TrainConfig
from training.pipeline import Terminated, train
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

    # A deliberately weak config fails its baseline gate: the run fails, nothing is registered or promoted;
    # the failed run keeps the gate's metrics and why.
    with pytest.raises(ModelQualityError, match="does not beat") as failure:
        train(book.export, _config("weak"), tracking_uri=uri, report_dir=tmp_path / "report3")
    failed = _latest_run(uri)
    assert failed.info.status == "FAILED" and failed.data.tags["failure_reason"] == str(failure.value)
    assert failed.data.metrics["repayment.test_roc_auc"] == failure.value.metrics["test_roc_auc"]
    assert "repayment.baseline_logistic_roc_auc" in failed.data.metrics
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


def _latest_run(uri: str):
    mlflow_client = tracking.client(uri)
    experiment = mlflow_client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    return mlflow_client.search_runs([experiment], order_by=["attributes.start_time DESC"], max_results=1)[0]


# Fast models on a small book, for the tests of what a run leaves behind when it stops.
FAST = {
    "name": "fast",
    "train_snapshots": 6,
    "validation_snapshots": 2,
    "test_snapshots": 2,
    **FAST_MODELS,
}


@pytest.fixture(scope="module")
def small_book():
    from features.simulation import SimulationConfig, simulate

    return simulate(SimulationConfig(n_accounts=1000, days=150, seed=11))


@pytest.fixture(scope="module")
def stopped_run(small_book, tmp_path_factory):
    """(store, run) of a tuned run sent SIGTERM while it registered its second model."""
    folder = tmp_path_factory.mktemp("stopped")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    # One trial: the search's first guess, which lifts min_child_samples into its range (20 and up).
    repayment = {"params": {"num_threads": 1, "min_child_samples": 5}, "tuning": {"n_trials": 1}}
    config = TrainConfig.model_validate({**FAST, "repayment": repayment})
    register = tracking.register

    def stopped_while_registering(kind: str, *args, **kwargs) -> str:
        if kind == "contact":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        return register(kind, *args, **kwargs)

    def unhandled(signum, frame):
        raise AssertionError("train did not turn SIGTERM into `Terminated`")

    previous = signal.signal(signal.SIGTERM, unhandled)  # so a regression fails here, not the whole session
    try:
        with pytest.MonkeyPatch.context() as patch, pytest.raises(Terminated):
            patch.setattr(tracking, "register", stopped_while_registering)
            train(small_book.export, config, tracking_uri=uri, report_dir=folder / "report")
    finally:
        signal.signal(signal.SIGTERM, previous)
    return uri, _latest_run(uri)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_stopped_while_registering_moves_no_champion_and_tags_what_it_registered(stopped_run):
    uri, run = stopped_run
    assert run.info.status == "KILLED"
    listing = tracking.list_models(uri)
    assert listing[["name", "version", "aliases"]].values.tolist() == [["callq-repayment", 1, ""]]
    assert listing.loc[0, "incomplete_run"].startswith(f"run {run.info.run_id} stopped: Terminated: training stopped")
    with pytest.raises(tracking.RegistryError, match="v1 is from a training run that did not finish"):
        tracking.promote("repayment", "1", "looks fine", uri)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_tuned_run_logs_the_parameters_it_fitted_with(stopped_run):
    _, run = stopped_run
    params = run.data.params
    assert json.loads(params["repayment_params"])["min_child_samples"] >= 20  # the config said 5
    assert int(params["repayment_best_iteration"]) >= 1 and int(params["contact_best_iteration"]) >= 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_failing_while_it_moves_the_champions_puts_them_back(small_book, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    promote = tracking.promote

    def unavailable_for_contact(kind: str, *args, **kwargs) -> str:
        if kind == "contact":
            raise ConnectionError("tracking server unavailable")
        return promote(kind, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(ConnectionError):
        patch.setattr(tracking, "promote", unavailable_for_contact)
        train(small_book.export, TrainConfig.model_validate(FAST), tracking_uri=uri, report_dir=tmp_path / "report")
    run = _latest_run(uri)
    assert run.info.status == "FAILED"
    listing = tracking.list_models(uri)
    assert len(listing) == 3 and (listing["aliases"] == "").all()
    assert tracking.champion_history("repayment", uri) == []
    incomplete = [tracking.client(uri).get_model_version(name, "1").tags for name in tracking.REGISTERED.values()]
    assert all("ConnectionError: tracking server unavailable" in tags[tracking.INCOMPLETE_TAG] for tags in incomplete)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_version_registered_when_the_store_s_answer_was_lost_is_tagged_too(small_book, tmp_path):
    # The server created the contact version but its answer never came (timeout, dropped connection): the
    # run failed, and that version, unknown to the run, was left promotable as if its run had finished.
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create = mlflow.MlflowClient.create_model_version

    def answer_lost_for_contact(self, name, *args, **kwargs):
        version = create(self, name, *args, **kwargs)
        if name == "callq-contact":
            raise ConnectionError("read timed out")
        return version

    with pytest.MonkeyPatch.context() as patch, pytest.raises(ConnectionError):
        patch.setattr(mlflow.MlflowClient, "create_model_version", answer_lost_for_contact)
        train(small_book.export, TrainConfig.model_validate(FAST), tracking_uri=uri, report_dir=tmp_path / "report")
    listing = tracking.list_models(uri)
    assert listing[["name", "version"]].values.tolist() == [["callq-contact", 1], ["callq-repayment", 1]]
    assert listing["incomplete_run"].str.contains("ConnectionError: read timed out").all()
    with pytest.raises(tracking.RegistryError, match="v1 is from a training run that did not finish"):
        tracking.promote("contact", "1", "looks fine", uri)


def _one_feature_champion(uri: str, data, feature: str, label: str) -> str:
    """A weak repayment version fitted on one feature of `data`'s train rows, registered comparable."""
    from features.build import FEATURE_SET_VERSION
    from training.config import LightGBMParams
    from training.models import BoosterModel, LightGBMClassifier

    train_rows = data.snapshots[data.snapshots["split"] == "train"]
    params = LightGBMParams(n_estimators=3, early_stopping_rounds=None, min_child_samples=5, num_threads=1)
    estimator = LightGBMClassifier([feature], params, 0).fit(train_rows, train_rows["label_repay"])
    with tracking.start_run("weak", uri) as run:
        model_uri = tracking.log_model(
            "repayment", BoosterModel.from_estimator(estimator), train_rows[[feature]].head(5)
        )
    tags = {"feature_set_version": FEATURE_SET_VERSION, "label": label}
    return tracking.register("repayment", model_uri, run.run_id, tags, uri)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_logged_champion_metric_is_the_final_decision_s(small_book, tmp_path):
    # Another run moved the champion while this one trained: the candidate is judged again against the new
    # champion, and the run's `repayment.champion_test_roc_auc` must be that champion's value, as the report's.
    from training.pipeline import champion_metric, label_definition
    from training.snapshots import build_training_data

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = TrainConfig.model_validate(FAST)
    data = build_training_data(small_book.export, config)
    label = label_definition("repayment", config)
    first = _one_feature_champion(uri, data, "amount_overdue", label)
    second = _one_feature_champion(uri, data, "days_past_due", label)
    tracking.promote("repayment", first, "first", uri)
    values = {
        version: champion_metric("repayment", tracking.load_version("repayment", version, uri), data)
        for version in (first, second)
    }
    assert values[first] != values[second]
    register = tracking.register

    def champion_moves_meanwhile(kind: str, *args, **kwargs) -> str:
        if kind == "repayment":
            tracking.promote("repayment", second, "another run", uri)
        return register(kind, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracking, "register", champion_moves_meanwhile)
        result = train(small_book.export, config, tracking_uri=uri, report_dir=tmp_path / "report")
    outcome = result.models["repayment"]
    assert outcome.promoted and outcome.champion_version == second
    assert outcome.reason.startswith(f"the champion changed during this run (to {second}); ")
    assert outcome.champion_value == values[second]
    logged = tracking.client(uri).get_run(result.run_id).data.metrics
    assert logged["repayment.champion_test_roc_auc"] == result.metrics["repayment.champion_test_roc_auc"]
    assert logged["repayment.champion_test_roc_auc"] == values[second]
    assert tracking.champion_version("repayment", uri) == outcome.version
