"""The registry without training: promotion, rollback and their reasons, champions serving can load,
decisions against a champion, and a tracking store that fails. Versions are tiny boosters on two features."""

from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import pandas as pd
import pytest

from features.build import FEATURE_SET_VERSION
from training import tracking
from training.config import LightGBMParams, TrainConfig
from training.models import BoosterModel, LightGBMClassifier
from training.pipeline import ModelOutcome, Terminated, decide, move_champions, sigterm_interrupts
from training.snapshots import SnapshotSplits, TrainingData

FEATURES = ("amount_overdue", "days_past_due")
# The candidate's windows in the decision tests: test snapshots 2026-11-02 and 2026-11-09, 14-day labels.
SPLITS = SnapshotSplits(
    train=(pd.Timestamp("2026-08-24", tz="UTC"),),
    validation=(pd.Timestamp("2026-10-05", tz="UTC"),),
    test=(pd.Timestamp("2026-11-02", tz="UTC"), pd.Timestamp("2026-11-09", tz="UTC")),
)
COMPARABLE = {"label": "repaid within 14 days", "labels_seen": "2026-08-24..2026-11-02"}


def _frame(features=FEATURES, rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({name: rng.random(rows) for name in features})
    return frame.assign(label_repay=(frame[features[0]] > 0.5).astype(int))


def _log(kind: str, uri: str, features=FEATURES, params: dict | None = None) -> tuple[str, str]:
    """(model URI, run id) of a tiny booster logged in its own run."""
    frame = _frame(features)
    params_ = LightGBMParams(n_estimators=3, early_stopping_rounds=None, min_child_samples=5, num_threads=1)
    estimator = LightGBMClassifier(list(features), params_, 0).fit(frame, frame["label_repay"])
    with tracking.start_run("tiny", uri) as run:
        run.log_params(params or {})
        model_uri = tracking.log_model(kind, BoosterModel.from_estimator(estimator), frame[list(features)].head(5))
    return model_uri, run.run_id


def _register(uri: str, kind: str = "repayment", features=FEATURES, params: dict | None = None, **tags) -> str:
    model_uri, run_id = _log(kind, uri, features, params)
    return tracking.register(kind, model_uri, run_id, {"feature_set_version": FEATURE_SET_VERSION, **tags}, uri)


def _data() -> TrainingData:
    snapshots = _frame().assign(split="test")
    return TrainingData(SPLITS, snapshots, snapshots.iloc[0:0], list(FEATURES))


def _tags(uri: str, version: str, name: str = "callq-repayment") -> dict[str, str]:
    return tracking.client(uri).get_model_version(name, version).tags


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_promote_normalises_the_version_and_keeps_every_reason(uri):
    for _ in range(2):
        _register(uri)
    assert tracking.promote("repayment", "1", "first", uri) == "1"
    assert tracking.promote("repayment", "02", "better on the new book", uri) == "2"
    assert tracking.promote("callq-repayment", " 2 ", "  again,\n after review ", uri) == "2"
    assert tracking.champion_version("repayment", uri) == "2"
    assert tracking.champion_history("repayment", uri) == ["1", "2"]
    assert _tags(uri, "2")["promotion_reason"] == "better on the new book\nagain, after review"

    assert tracking.rollback("repayment", "drifted", uri) == "1"
    assert tracking.champion_version("repayment", uri) == "1"
    with pytest.raises(tracking.RegistryError, match="no previous champion"):
        tracking.rollback("repayment", "again", uri)
    with pytest.raises(tracking.RegistryError, match="has no version 'v2': versions are whole numbers"):
        tracking.promote("repayment", "v2", "typo", uri)


def test_every_move_of_the_champion_needs_a_reason(uri):
    for _ in range(2):
        _register(uri)
    tracking.promote("repayment", "1", "first", uri)
    for reason in ("", "  \n "):
        with pytest.raises(tracking.RegistryError, match="a reason is required"):
            tracking.promote("repayment", "2", reason, uri)
        with pytest.raises(tracking.RegistryError, match="a reason is required"):
            tracking.rollback("repayment", reason, uri)
    assert tracking.champion_version("repayment", uri) == "1"


def test_an_empty_registry_says_what_is_missing(uri):
    tracking.experiment_id(uri)  # the store exists, no model is registered
    missing = rf"callq-repayment is not registered in {uri}: run `callq train` first"
    with pytest.raises(tracking.RegistryError, match=missing):
        tracking.rollback("repayment", "why", uri)
    with pytest.raises(tracking.RegistryError, match=missing):
        tracking.promote("repayment", "1", "why", uri)


def test_commands_that_only_read_never_create_a_missing_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CALLQ_HOME", str(tmp_path / "home"))
    assert tracking.list_models().empty
    assert tracking.champion_version("repayment") is None
    with pytest.raises(tracking.RegistryError, match="not registered"):
        tracking.promote("repayment", "1", "why")
    with pytest.raises(tracking.RegistryError, match="not registered"):
        tracking.rollback("repayment", "why")
    with pytest.raises(tracking.RegistryError, match="no champion for callq-repayment"):
        tracking.load_champions()
    assert not (tmp_path / "home").exists()


def test_a_champion_of_another_feature_set_is_refused_before_any_feature_is_built(uri):
    old = _register(uri, feature_set_version="4")
    with pytest.raises(tracking.RegistryError, match=r"v1 was trained on feature set 4, .* serving could not use it"):
        tracking.promote("repayment", old, "old champion", uri)
    tracking.promote("repayment", old, "as an older callq left it", uri, force=True)
    with pytest.raises(tracking.RegistryError, match=r"callq-repayment v1 was trained on feature set 4, .*: retrain"):
        tracking.load_champions(uri)

    renamed = _register(uri, features=("amount_overdue", "legacy_feature_v4"))
    with pytest.raises(
        tracking.RegistryError, match=r"v2 reads features this callq does not build \(legacy_feature_v4"
    ):
        tracking.promote("repayment", renamed, "renamed feature", uri)
    tracking.promote("repayment", renamed, "renamed feature", uri, force=True)
    with pytest.raises(tracking.RegistryError, match=r"v2 reads features .*legacy_feature_v4.*: retrain"):
        tracking.load_champions(uri)


def test_registering_prints_nothing_beside_callq_s_own_lines(uri, capfd):
    _register(uri)
    model_uri, run_id = _log("repayment", uri)
    capfd.readouterr()
    assert tracking.register("repayment", model_uri, run_id, {}, uri) == "2"
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_store_that_refuses_writes_is_named_with_the_database_s_reason(tmp_path):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    tracking.experiment_id(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def read_only(connection, _record) -> None:
        connection.execute("PRAGMA query_only = ON")

    # A new spelling of the same file gets a new engine, whose connections are all read-only.
    uri = f"sqlite:///{tmp_path}/./mlflow.db"
    event.listen(Engine, "connect", read_only)
    try:
        with pytest.raises(tracking.StoreError) as excinfo, tracking.start_run("x", uri):
            pass
    finally:
        event.remove(Engine, "connect", read_only)
    assert str(excinfo.value) == (
        f"MLflow tracking store {uri}: attempt to write a readonly database (sqlite3.OperationalError)"
    )


def test_an_unreachable_tracking_server_is_named(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(tracking.StoreError, match=rf"MLflow tracking store {uri}: cannot reach the server: .*refused"):
        tracking.list_models(uri)


def test_a_deleted_experiment_says_how_to_restore_it(uri):
    experiment = tracking.experiment_id(uri)
    tracking.client(uri).delete_experiment(experiment)
    restore = rf"experiment 'callq' in {uri} was deleted: restore it .*mlflow experiments restore -x {experiment}"
    with pytest.raises(tracking.StoreError, match=restore), tracking.start_run("x", uri):
        pass


def test_an_interrupted_run_ends_killed_not_running(uri):
    with pytest.raises(KeyboardInterrupt), tracking.start_run("x", uri) as run:
        raise KeyboardInterrupt
    assert tracking.client(uri).get_run(run.run_id).info.status == "KILLED"


def test_sigterm_while_training_raises_and_the_previous_handler_comes_back():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated, match="SIGTERM"), sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_champion_with_another_label_is_not_compared(uri):
    tracking.promote("repayment", _register(uri, **COMPARABLE), "first", uri)
    _, _, promote, reason = decide("repayment", 0.99, _data(), TrainConfig(horizon_days=21, gap_days=21), uri)
    assert not promote
    assert reason == (
        "champion v1 predicts repaid within 14 days, this run repaid within 21 days: different label; promote manually"
    )
    # A version registered before labels were recorded: its run's horizon says what it predicts.
    old = _register(uri, params={"horizon_days": 14})
    tracking.promote("repayment", old, "older callq", uri)
    assert "different label" in decide("repayment", 0.99, _data(), TrainConfig(horizon_days=21, gap_days=21), uri)[3]
    assert "different label" not in decide("repayment", 0.99, _data(), TrainConfig(), uri)[3]


def test_a_champion_serving_refuses_is_replaced_by_any_candidate(uri):
    # After an upgrade to a new feature set the old champion cannot serve: the first retrain replaces it.
    old = _register(uri, feature_set_version="5", **COMPARABLE)
    tracking.promote("repayment", old, "before the upgrade", uri, force=True)
    _, value, promote, reason = decide("repayment", 0.51, _data(), TrainConfig(), uri)
    assert promote and value is None
    built = f"this callq builds {FEATURE_SET_VERSION}"
    assert reason == f"callq-repayment v1 was trained on feature set 5, {built}, which serving refuses"


def test_a_champion_trained_on_this_test_window_is_not_compared(uri):
    tracking.promote("repayment", _register(uri, **COMPARABLE), "first", uri)
    champion, value, promote, reason = decide("repayment", 0.5, _data(), TrainConfig(), uri)
    assert champion == "1" and value > 0.9 and not promote and "does not beat champion v1" in reason

    # Trained on a later export: its validation labels run into this run's test window.
    later = _register(uri, label="repaid within 14 days", labels_seen="2026-09-07..2026-11-16")
    tracking.promote("repayment", later, "newer export", uri)
    champion, value, promote, reason = decide("repayment", 0.99, _data(), TrainConfig(), uri)
    assert (champion, value, promote) == ("2", None, False)
    assert reason == (
        "champion v2 was trained on this test window (its labels 2026-09-07..2026-11-16, the test window's "
        "2026-11-02..2026-11-23): not compared; promote manually"
    )


def _outcome(version: str, champion: str | None) -> ModelOutcome:
    return ModelOutcome("callq-repayment", version, "test_roc_auc", 0.6, champion, 0.55, True, "beats")


def test_a_champion_that_moved_during_the_run_is_decided_against_again(uri):
    for _ in range(3):
        _register(uri, **COMPARABLE)
    tracking.promote("repayment", "1", "first", uri)
    unchanged, moved = {"repayment": _outcome("2", "1")}, []
    assert not move_champions(unchanged, _data(), TrainConfig(), uri, moved)
    assert tracking.champion_version("repayment", uri) == "2" and moved == [("repayment", "1", ["1"])]

    # Decided against v2; meanwhile another run made v1 champion again, which v3 does not beat.
    tracking.promote("repayment", "1", "another run", uri)
    outcomes, moved = {"repayment": _outcome("3", "2")}, []
    assert move_champions(outcomes, _data(), TrainConfig(), uri, moved)
    assert tracking.champion_version("repayment", uri) == "1" and moved == []
    outcome = outcomes["repayment"]
    assert not outcome.promoted and outcome.champion_version == "1"
    assert outcome.reason.startswith("the champion changed during this run (to 1); test_roc_auc 0.6000 does not beat")
    assert _tags(uri, "3")["not_promoted_reason"] == outcome.reason


def test_the_cli_names_the_version_it_promoted_and_exits_143_on_sigterm(uri, monkeypatch, tmp_path, capsys):
    import subprocess
    import sys

    from features.io import write_export
    from serving import cli
    from tests.factories import tiny_export
    from training import pipeline

    for _ in range(2):
        _register(uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "serving.cli", "promote", "repayment", "02", "--reason", "better"]
    promoted = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert promoted.returncode == 0 and "repayment v2 is now champion (better)" in promoted.stdout

    # Through Typer, which turns any KeyboardInterrupt (Terminated is one) into a silent exit 130.
    def stopped(*_: object, **__: object) -> None:
        raise Terminated("training stopped by SIGTERM")

    write_export(tiny_export(), tmp_path / "export")
    monkeypatch.setattr(pipeline, "train", stopped)
    monkeypatch.setattr(sys, "argv", ["callq", "train", "--export", str(tmp_path / "export")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 143
    assert capsys.readouterr().err.strip() == "error: training stopped by SIGTERM"


def test_a_whole_config_rule_is_named_without_an_empty_location(monkeypatch, capsys):
    from serving import cli

    def invalid(**_: object) -> None:
        TrainConfig(horizon_days=14, gap_days=7)

    monkeypatch.setattr(cli, "app", invalid)
    with pytest.raises(SystemExit):
        cli.main()
    assert "invalid TrainConfig: Value error, gap_days (7) must be >= horizon_days (14)" in capsys.readouterr().err


def test_the_cli_gives_up_on_an_unreachable_server_within_seconds():
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_HTTP_REQUEST")}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    # MLflow's own defaults (7 retries, growing waits) kept `callq models` silent for minutes.
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "models"], capture_output=True, text=True, env=env, timeout=90
    )
    assert result.returncode == 1 and time.monotonic() - started < 60
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: MLflow tracking store http://127.0.0.1:{port}: cannot reach the server: ")


def test_a_rollback_failing_midway_never_restores_the_version_it_took_away(uri, monkeypatch):
    import mlflow

    for _ in range(2):
        _register(uri)
    tracking.promote("repayment", "1", "first", uri)
    tracking.promote("repayment", "2", "better", uri)
    tag = mlflow.MlflowClient.set_model_version_tag

    def hiccup(self, name, version, key, value):
        if key == "rollback_reason":
            raise RuntimeError("store hiccup")
        return tag(self, name, version, key, value)

    monkeypatch.setattr(mlflow.MlflowClient, "set_model_version_tag", hiccup)
    with pytest.raises(RuntimeError, match="hiccup"):
        tracking.rollback("repayment", "v2 is bad", uri)
    monkeypatch.setattr(mlflow.MlflowClient, "set_model_version_tag", tag)
    assert tracking.champion_version("repayment", uri) == "1"
    with pytest.raises(tracking.RegistryError, match="no previous champion"):
        tracking.rollback("repayment", "v2 is bad (again)", uri)  # was: restored v2
    assert tracking.champion_version("repayment", uri) == "1"


def _model_files(uri: str, version: str, name: str = "callq-repayment"):
    """The local folder holding a registered version's model files."""
    from urllib.parse import urlsplit

    mlflow_client = tracking.client(uri)
    model_id = mlflow_client.get_model_version(name, version).source.removeprefix("models:/")
    return urlsplit(mlflow_client.get_logged_model(model_id).artifact_location).path


def test_a_champion_whose_model_files_are_gone_is_named_and_replaced_by_a_candidate(uri):
    # A local store moved to another folder (its artifact locations are absolute) or files deleted: serving
    # said only "No such artifact: ''", and every retrain failed the same way after fitting its models.
    import shutil

    tracking.promote("repayment", _register(uri, **COMPARABLE), "first", uri)
    shutil.rmtree(_model_files(uri, "1"))
    with pytest.raises(tracking.RegistryError, match=r"^callq-repayment v1: its model files cannot be read \("):
        tracking.load_champions(uri)
    champion, value, promote, reason = decide("repayment", 0.5, _data(), TrainConfig(), uri)
    assert (champion, value, promote) == ("1", None, True)
    assert reason.startswith("callq-repayment v1: its model files cannot be read") and "serving refuses" in reason


def test_champions_load_after_their_training_run_was_deleted_for_good(uri):
    # `mlflow gc` after deleting old runs from the UI: the registered versions keep their model files.
    for kind in tracking.REGISTERED:
        tracking.promote(kind, _register(uri, kind), "first", uri)
    run_id = tracking.client(uri).get_model_version("callq-repayment", "1").run_id
    store = tracking.client(uri)._tracking_client.store
    store.delete_run(run_id)
    store._hard_delete_run(run_id)
    champions = tracking.load_champions(uri)
    assert champions.model_version == "repayment:1,contact:1,call-effect:1" and champions.metrics["repayment"] == {}


class _Fixed:
    """A champion whose probabilities are the rows' `score` column."""

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["score"].to_numpy()


@pytest.mark.parametrize(("kind", "label"), [("repayment", "label_repay"), ("contact", "label_rpc")])
def test_a_champion_identical_to_the_candidate_scores_what_the_candidate_scored(kind, label):
    # The candidate's test AUC is computed on probabilities clipped to [1e-6, 1 - 1e-6]: two scores below
    # 1e-6 tie there, and the champion's re-scoring must tie them too, or a model scores apart from itself.
    from training.evaluation import binary_metrics
    from training.pipeline import champion_metric

    rows = pd.DataFrame({"score": [1e-9, 1e-8, 0.5, 0.6], label: [0, 1, 0, 1], "split": "test"})
    data = TrainingData(SPLITS, rows, rows, ["score"])
    candidate = binary_metrics(rows[label].to_numpy(), _Fixed().predict_proba(rows), prefix="test_")
    assert champion_metric(kind, _Fixed(), data) == candidate[tracking.KEY_METRIC[kind]] == 0.625


def test_a_champion_whose_tags_cannot_be_read_is_not_replaced_unseen(uri):
    # A malformed `labels_seen` tag (edited by hand, written by another tool) said nothing about the
    # champion's quality: the candidate replaced it without any comparison.
    labels = {"label": "repaid within 14 days", "labels_seen": "2026-08-24 to 2026-11-02"}
    tracking.promote("repayment", _register(uri, **labels), "first", uri)
    champion, value, promote, reason = decide("repayment", 0.99, _data(), TrainConfig(), uri)
    assert (champion, value, promote) == ("1", None, False)
    assert reason == (
        "champion v1 cannot be compared on this window (its labels_seen tag '2026-08-24 to 2026-11-02' is not "
        "YYYY-MM-DD..YYYY-MM-DD); promote manually"
    )


def test_a_champion_reading_features_this_callq_does_not_build_is_replaced_as_serving_refuses_it(uri):
    renamed = _register(uri, features=("amount_overdue", "legacy_feature_v4"), **COMPARABLE)
    tracking.promote("repayment", renamed, "renamed feature", uri, force=True)
    champion, value, promote, reason = decide("repayment", 0.51, _data(), TrainConfig(), uri)
    assert (champion, value, promote) == ("1", None, True)
    assert reason == (
        "callq-repayment v1 reads features this callq does not build (legacy_feature_v4), which serving refuses"
    )


def test_replacing_a_champion_serving_refuses_says_when_the_label_changes(uri):
    # Serving cannot use the old champion, so the candidate still replaces it; but what `p_repay` means
    # changes with it (another horizon), and the reason recorded for the promotion says so.
    old = _register(uri, feature_set_version="5", **COMPARABLE)
    tracking.promote("repayment", old, "before the upgrade", uri, force=True)
    _, value, promote, reason = decide("repayment", 0.51, _data(), TrainConfig(horizon_days=21, gap_days=21), uri)
    assert promote and value is None
    assert reason == (
        f"callq-repayment v1 was trained on feature set 5, this callq builds {FEATURE_SET_VERSION}, which serving "
        "refuses; the label changes: v1 predicted repaid within 14 days, this candidate predicts repaid within 21 days"
    )
