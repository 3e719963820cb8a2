"""Audit of the training path: determinism, degenerate books, the report's claims, the store's errors."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from tests.trained import FAST_MODELS
from training.config import TrainConfig
from training.snapshots import build_training_data


@pytest.fixture(scope="module")
def small_book():
    from features.simulation import SimulationConfig, simulate

    return simulate(SimulationConfig(n_accounts=400, days=120, seed=3))


def _shuffled(export, seed: int = 1):
    """The same export with every table's rows in another order (a re-exported file, a vacuumed database)."""
    rng = np.random.default_rng(seed)
    tables = {}
    for name in ("accounts", "dues", "payments", "contacts", "promises"):
        frame = getattr(export, name)
        tables[name] = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    return dataclasses.replace(export, **tables)


def test_the_same_book_in_another_row_order_gives_the_same_training_rows(small_book):
    # Snapshot rows followed the accounts table's order and the contact sample the contacts table's:
    # the same book read again in another order trained other models (another test AUC).
    config = TrainConfig(
        train_snapshots=4, validation_snapshots=1, test_snapshots=1, max_rows_per_snapshot=150, max_contact_rows=1000
    )
    original = build_training_data(small_book.export, config)
    shuffled = build_training_data(_shuffled(small_book.export), config)
    # Both samples were drawn: 150 accounts a date, and fewer calls than the book holds.
    assert original.snapshots.groupby("as_of").size().max() == 150
    every_call = build_training_data(small_book.export, config.model_copy(update={"max_contact_rows": 10**6}))
    assert len(original.contacts) < len(every_call.contacts)
    pd.testing.assert_frame_equal(original.snapshots, shuffled.snapshots)
    pd.testing.assert_frame_equal(original.contacts, shuffled.contacts)


def test_the_call_cap_keeps_as_many_calls_as_it_allows(small_book):
    # The calls were sampled before they were matched to snapshot rows: with snapshots that sample their
    # accounts, most sampled calls had no row, and the contact model got far fewer than the cap.
    config = TrainConfig(train_snapshots=4, validation_snapshots=1, test_snapshots=1, max_rows_per_snapshot=150)
    every_call = build_training_data(small_book.export, config.model_copy(update={"max_contact_rows": 10**6}))
    cap = len(every_call.contacts) // 2
    capped = build_training_data(small_book.export, config.model_copy(update={"max_contact_rows": cap}))
    assert len(capped.contacts) == cap
    assert capped.contacts.merge(every_call.contacts, how="left", indicator=True)["_merge"].eq("both").all()


def _one_feature_fit(rows: int = 400, seed: int = 0):
    """(fit(params) on a one-feature train frame, a frame of `rows` rows like it, its labels)."""
    from training.models import LightGBMClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    frame = pd.DataFrame({"x": x})
    labels = (rng.random(rows) < 1 / (1 + np.exp(-2 * x))).astype(int)

    def fit(params):
        return LightGBMClassifier(["x"], params, 0).fit(frame, labels)

    return fit, frame, labels


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_fits_on_a_validation_window_with_few_rows_of_a_class(method, recwarn):
    # scikit-learn's default 5-fold split refused a window with fewer than 5 rows of a class ("n_splits=5
    # cannot be greater than the number of members in each class"), though the frozen trees refit nothing.
    from training.config import LightGBMParams
    from training.tuning import fit_calibrated

    fit, frame, labels = _one_feature_fit()
    params = LightGBMParams(n_estimators=5, early_stopping_rounds=None, min_child_samples=20, num_threads=1)
    validation = pd.DataFrame({"x": [-2.0, -1.0, 0.5, 1.0, 2.0]})
    _, calibration, _ = fit_calibrated(fit, params, None, method, validation, np.array([0, 0, 1, 0, 1]), [], seed=0)
    assert calibration["method"] == method
    assert not [warning for warning in recwarn if "n_splits" in str(warning.message)]


def test_calibration_on_the_whole_window_is_the_one_the_folds_gave():
    # The single split changes no calibration: every validation row is scored once by the same frozen trees.
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from training.config import LightGBMParams
    from training.models import calibration_map
    from training.tuning import fit_calibrated

    fit, frame, labels = _one_feature_fit()
    params = LightGBMParams(n_estimators=20, early_stopping_rounds=None, min_child_samples=20, num_threads=1)
    estimator, calibration, _ = fit_calibrated(fit, params, None, "sigmoid", frame, labels, [], seed=0)
    folds = CalibratedClassifierCV(FrozenEstimator(estimator), method="sigmoid").fit(frame, labels)
    assert calibration == pytest.approx(calibration_map(folds))


# Fast models, one thread (tests share the machine).
FAST = {
    "name": "audit-fast",
    "train_snapshots": 4,
    "validation_snapshots": 1,
    "test_snapshots": 1,
    **FAST_MODELS,
}


@pytest.fixture(scope="module")
def ten_day_run(small_book, tmp_path_factory):
    """(store, result) of a run on the small book with snapshots 10 days apart (its X-learner falls back to
    the T-learner), writing its report into the folder that holds the store and a file of the user's."""
    from training.pipeline import train

    folder = tmp_path_factory.mktemp("ten-day")
    (folder / "notes.txt").write_text("the user's own file\n")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = TrainConfig.model_validate({**FAST, "snapshot_spacing_days": 10})
    return uri, train(small_book.export, config, tracking_uri=uri, report_dir=folder)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_report_names_the_learner_and_the_spacing_the_run_used(ten_day_run):
    # The report called the model "X-learner" (the config's) when it had fallen back to the T-learner, and
    # said "Snapshots weekly" whatever `snapshot_spacing_days` was.
    _, result = ten_day_run
    report = result.report_path.read_text()
    assert any("so the model is the difference of the two arms (T-learner)" in note for note in result.notes)
    assert "| T-learner |" in report and "X-learner |" not in report
    assert "Snapshots every 10 days" in report and "weekly" not in report


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_run_logs_the_report_s_own_files_not_the_folder_it_is_written_to(ten_day_run):
    # The whole report folder was logged: one holding the store's artifacts was copied into itself until the
    # path was too long (OSError after the models were registered), and any other file in it was uploaded.
    from training import tracking

    report_files = (
        "report.md",
        "calibration.png",
        "gains.png",
        "importance_repayment.png",
        "importance_contact.png",
        "contact_heatmap.png",
        "qini.png",
    )
    uri, result = ten_day_run
    logged = tracking.client(uri).list_artifacts(result.run_id, "report")
    assert sorted(artifact.path for artifact in logged) == sorted(f"report/{name}" for name in report_files)
    assert all(outcome.promoted for outcome in result.models.values())


def _no_training_data(*args, **kwargs):
    raise AssertionError("the training data was built before the store was found unusable")


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_store_is_refused_before_any_work(small_book, uri, monkeypatch, tmp_path):
    # Training "promoted" champions into a database that vanished when the command ended (its artifacts went
    # to ./mlruns), and said nothing.
    from training import pipeline, tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "build_training_data", _no_training_data)
    with pytest.raises(tracking.StoreError, match="in-memory SQLite database: nothing trained into it outlives"):
        pipeline.train(small_book.export, TrainConfig.model_validate(FAST), tracking_uri=uri)
    assert list(tmp_path.iterdir()) == []


def test_a_store_training_cannot_use_fails_before_the_training_data_is_built(small_book, monkeypatch, tmp_path):
    # A deleted experiment (as an unreachable server) was found only once the training data was built:
    # minutes into a large book's run.
    from training import pipeline, tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.client(uri).delete_experiment(tracking.experiment_id(uri))
    monkeypatch.setattr(pipeline, "build_training_data", _no_training_data)
    with pytest.raises(tracking.StoreError, match="was deleted: restore it"):
        pipeline.train(small_book.export, TrainConfig.model_validate(FAST), tracking_uri=uri)


def test_a_short_history_shrinks_validation_and_test_down_to_one_each_whatever_their_counts():
    # Shrinking stopped at the smaller count: with 3 validation and 1 test snapshot nothing shrank, and 90 days
    # of history left train one snapshot against validation's 3 (a shorter one was refused as too short).
    from training.snapshots import assert_split_gap, snapshot_splits

    as_of, day = pd.Timestamp("2026-11-23T00:00:00Z"), pd.Timedelta(days=1)
    for validation, test in ((3, 1), (1, 3), (3, 2)):
        config = TrainConfig(train_snapshots=12, validation_snapshots=validation, test_snapshots=test)
        splits = snapshot_splits(as_of, config, as_of - 90 * day)
        assert [len(splits.train), len(splits.validation), len(splits.test)] == [3, 1, 1]
        assert_split_gap(splits, config.horizon_days, config.gap_days)
        roomy = snapshot_splits(as_of, config, as_of - 365 * day)
        assert [len(roomy.validation), len(roomy.test)] == [validation, test]


def test_too_few_not_reached_debtors_says_how_many_the_call_effect_needs(small_book):
    # "too few usable train rows in the not reached arm (14)" said neither what usable means nor how many.
    from training.repayment import ModelQualityError
    from training.uplift import fit_uplift

    config = TrainConfig.model_validate(FAST)
    data = build_training_data(small_book.export, config)
    rows = data.snapshots
    not_reached_train = rows.index[(rows["split"] == "train") & (rows["treated"] == 0)]
    thin = dataclasses.replace(data, snapshots=rows.drop(not_reached_train[30:]))
    kept = rows.loc[not_reached_train[:30], "label_repay"]
    message = (
        rf"call effect: 30 train snapshots were not reached, {int(kept.sum())} of them repaid; the not-reached "
        r"arm needs at least 50 with both outcomes \(train on a larger book or a longer history\)"
    )
    with pytest.raises(ModelQualityError, match=message):
        fit_uplift(thin, config)


def test_a_history_too_short_says_how_many_days_it_holds_and_needs():
    from training.snapshots import snapshot_splits

    as_of, day = pd.Timestamp("2026-11-23T00:00:00Z"), pd.Timedelta(days=1)
    config = TrainConfig(snapshot_spacing_days=10)  # gap 14 days: 20 on a 10-day grid; 14 + 2 x 20 + 28 = 82
    with pytest.raises(ValueError, match=r"\(from 2026-09-03, 81 days before its as_of\) .* needs at least 82 days"):
        snapshot_splits(as_of, config, as_of - 81 * day)
    assert len(snapshot_splits(as_of, config, as_of - 82 * day).train) == 1


def test_a_store_whose_folder_cannot_be_made_is_named(small_book, monkeypatch, tmp_path):
    # "error: /x/settings.yaml: file exists" did not say that the tracking store was the trouble.
    from training import pipeline, tracking

    (tmp_path / "settings.yaml").write_text("name: x\n")
    uri = f"sqlite:///{tmp_path / 'settings.yaml' / 'mlflow.db'}"
    monkeypatch.setattr(pipeline, "build_training_data", _no_training_data)
    message = f"MLflow tracking store {uri}: cannot make its folder {tmp_path / 'settings.yaml'}: File exists"
    with pytest.raises(tracking.StoreError, match=re.escape(message)):
        pipeline.train(small_book.export, TrainConfig.model_validate(FAST), tracking_uri=uri)


def test_the_tuning_s_first_trial_is_the_config_moved_into_the_search_range(recwarn):
    # Only some parameters were moved into range: 30 trees, a learning rate of 0.5 or 2 leaves were tried as
    # they were, with an Optuna warning on stderr for each.
    from training.config import LightGBMParams, TuningConfig
    from training.tuning import tune_lightgbm

    fit, frame, labels = _one_feature_fit()
    base = LightGBMParams(n_estimators=30, learning_rate=0.5, num_leaves=2, min_child_samples=5, num_threads=1)
    params, _ = tune_lightgbm(base, TuningConfig(n_trials=1), fit, frame, labels, seed=0, max_trees=150)
    assert (params.n_estimators, params.learning_rate, params.num_leaves, params.min_child_samples) == (50, 0.2, 4, 20)
    assert not [warning for warning in recwarn if "out of range" in str(warning.message)]
