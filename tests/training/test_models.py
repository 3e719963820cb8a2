"""Model objects: encoding, calibration maps, contributions, hour grids and the broken-promise behaviour."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from training.config import LightGBMParams
from training.evaluation import capture_at, expected_calibration_error, qini_coefficient
from training.models import (
    BoosterModel,
    ContactModel,
    FeatureEncoder,
    LightGBMClassifier,
    apply_calibration,
    calibration_map,
    fit_rate_calibration,
)
from training.pipeline import expected_auc

SMALL = LightGBMParams(n_estimators=40, num_leaves=7, min_child_samples=20, num_threads=1)


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Repayment-like rows where broken promises mostly hurt, but a noisy pocket rewards them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "days_past_due": rng.integers(0, 120, n),
            "promises_broken_90d": rng.integers(0, 5, n),
            "amount_overdue": rng.gamma(2.0, 300.0, n),
            "product": pd.Categorical(rng.choice(["credit_card", "personal_loan"], n)),
        }
    )
    logit = 1.0 - frame["days_past_due"] / 40 - 0.5 * frame["promises_broken_90d"]
    # A spurious pocket: 3 broken promises among early accounts looks good in this sample.
    logit += 2.5 * ((frame["promises_broken_90d"] == 3) & (frame["days_past_due"] < 20))
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, labels


def test_encoder_keeps_order_and_maps_unknown_categories_to_missing():
    train = pd.DataFrame({"b": [1.0, 2.0], "a": pd.Series(["x", "y"], dtype="string")})
    encoder = FeatureEncoder.fit(train, ["a", "b"])
    matrix = encoder.transform(pd.DataFrame({"a": ["y", "new", None], "b": [3, None, 1]}))
    assert encoder.categorical_indices == [0]
    np.testing.assert_array_equal(matrix[:, 0], [1.0, np.nan, np.nan])
    np.testing.assert_array_equal(matrix[:, 1], [3.0, np.nan, 1.0])
    with pytest.raises(KeyError, match="missing"):
        encoder.transform(pd.DataFrame({"a": ["x"]}))


def test_more_broken_promises_never_raise_the_repayment_score():
    frame, labels = _frame(4000, seed=1)
    names = list(frame.columns)
    unconstrained = LightGBMClassifier(names, SMALL, seed=0).fit(frame, labels)
    constrained = LightGBMClassifier(names, SMALL, seed=0, monotone_constraints={"promises_broken_90d": -1})
    constrained.fit(frame, labels)
    calibrated = CalibratedClassifierCV(FrozenEstimator(constrained), method="isotonic").fit(frame, labels)
    model = BoosterModel.from_estimator(constrained, calibration=calibration_map(calibrated))

    probe = frame.sample(300, random_state=2)
    grid = pd.concat([probe.assign(promises_broken_90d=k) for k in range(6)], ignore_index=True)
    scores = model.predict_proba(grid).reshape(6, len(probe))
    assert (np.diff(scores, axis=0) <= 1e-12).all()
    # Without the constraint the spurious pocket makes some scores rise: the test can tell.
    raw = unconstrained.predict_proba(grid)[:, 1].reshape(6, len(probe))
    assert (np.diff(raw, axis=0) > 1e-6).any()


def test_packaged_model_matches_estimator_contributions_add_up_and_pickle_holds_no_booster():
    frame, labels = _frame(1500, seed=3)
    estimator = LightGBMClassifier(list(frame.columns), SMALL, seed=0).fit(frame, labels)
    model = BoosterModel.from_estimator(estimator)
    np.testing.assert_allclose(model.predict_proba(frame), estimator.predict_proba(frame)[:, 1])
    contributions = model.contributions(frame.head(50))
    np.testing.assert_allclose(contributions.sum(axis=1), model.raw_score(frame.head(50)), atol=1e-9)
    assert list(contributions.columns) == [*frame.columns, "bias"]
    assert pickle.loads(pickle.dumps(model)).booster is None


def test_sigmoid_calibration_map_reproduces_sklearn():
    frame, labels = _frame(2000, seed=4)
    estimator = LightGBMClassifier(list(frame.columns), SMALL, seed=0).fit(frame.iloc[:1000], labels[:1000])
    calibrated = CalibratedClassifierCV(FrozenEstimator(estimator), method="sigmoid")
    calibrated.fit(frame.iloc[1000:], labels[1000:])
    model = BoosterModel.from_estimator(estimator, calibration=calibration_map(calibrated))
    np.testing.assert_allclose(model.predict_proba(frame), calibrated.predict_proba(frame)[:, 1], atol=1e-9)


def test_predict_hours_equals_scoring_each_slot_row():
    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame(
        {
            "rpc_rate_30d": rng.random(n),
            "local_hour": rng.integers(8, 21, n),
            "weekday": rng.integers(0, 7, n),
            **{f"rpc_rate_hour_bucket_{b}": rng.random(n) for b in range(7)},
            **{f"rpc_rate_weekday_{d}": rng.random(n) for d in range(7)},
        }
    )
    labels = (rng.random(n) < 0.2 + 0.4 * (frame["local_hour"] > 17)).astype(int)
    from features.contacts import hour_bucket
    from training.snapshots import add_slot_rates

    rows = add_slot_rates(frame, hour_bucket)
    names = ["rpc_rate_30d", "local_hour", "weekday", "rpc_rate_this_hour_bucket", "rpc_rate_this_weekday"]
    model = ContactModel.from_estimator(LightGBMClassifier(names, SMALL, seed=0).fit(rows, labels))
    accounts = frame.drop(columns=["local_hour", "weekday"]).head(4)
    hours = [8, 12, 19]
    grid = model.predict_hours(accounts, hours, np.array([0, 1, 4, 6]))
    assert grid.shape == (4, 3)
    one = accounts.iloc[[2]].assign(local_hour=19, weekday=4)
    assert grid[2, 2] == pytest.approx(model.predict_proba(one)[0])
    assert model.predict_hours(accounts, hours, 3).shape == (4, 3)


def _slots_with_own_rates(n: int, seed: int, signal: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Call rows whose answer chance rests on the debtor's own hour rate (`signal` of its log-odds)."""
    rng = np.random.default_rng(seed)
    own = rng.normal(-2.0, 1.5, n)  # each debtor's true log-odds at the hour
    # The smoothed rate seen in the history: the truth seen through noise, or noise alone.
    seen = signal * own + rng.normal(0.0, 0.7, n) + (1 - signal) * rng.normal(-2.0, 1.5, n)
    hours = rng.integers(8, 21, n)
    frame = pd.DataFrame(
        {
            "rpc_rate_30d": np.clip(expit(own) + rng.normal(0, 0.3, n), 0, 1),
            "local_hour": hours,
            "weekday": rng.integers(0, 7, n),
            **{f"rpc_rate_hour_{h}": np.where(hours == h, expit(seen), np.nan) for h in range(24)},
        }
    )
    return frame, (rng.random(n) < expit(own)).astype(int)


def test_rate_calibration_weighs_the_debtors_own_rate_only_where_it_carries_signal():
    """Coarse trees that cannot resolve each debtor's rate: the calibration takes it in where it is real."""
    from sklearn.metrics import log_loss

    from features.contacts import hour_bucket
    from training.snapshots import add_slot_rates

    coarse = LightGBMParams(n_estimators=20, num_leaves=3, min_child_samples=400, num_threads=1)
    fitted = {}
    for signal in (1.0, 0.0):
        frame, labels = _slots_with_own_rates(12_000, seed=8, signal=signal)
        rows = add_slot_rates(frame, hour_bucket)
        train, validation, test = rows.iloc[:6000], rows.iloc[6000:9000], rows.iloc[9000:]
        estimator = LightGBMClassifier(["rpc_rate_30d", "local_hour"], coarse, seed=0).fit(train, labels[:6000])
        calibration = fit_rate_calibration(
            estimator.decision_function(validation), validation["rpc_rate_this_hour"], labels[6000:9000]
        )
        plain = CalibratedClassifierCV(FrozenEstimator(estimator), method="sigmoid").fit(validation, labels[6000:9000])
        model = ContactModel.from_estimator(estimator, calibration=calibration)
        fitted[signal] = calibration
        with_rate = log_loss(labels[9000:], model.predict_proba(test))
        score_only = log_loss(labels[9000:], plain.predict_proba(test)[:, 1])
        if signal:
            assert with_rate < score_only - 0.01  # the rate's spread beyond the trees is real
        else:
            assert with_rate == pytest.approx(score_only, abs=0.005)  # noise: nothing gained, nothing lost
    assert fitted[1.0]["a_rate"] > 0.4
    assert abs(fitted[0.0]["a_rate"]) < 0.1
    # The grid (serving's path) agrees with row-by-row scoring, and the map refuses to guess a missing rate.
    accounts = frame.drop(columns=["local_hour", "weekday"]).head(6)
    grid = model.predict_hours(accounts, [9, 14, 20], 3)
    row = accounts.iloc[[4]].assign(local_hour=14, weekday=3)
    assert grid[4, 1] == pytest.approx(model.predict_proba(row)[0])
    with pytest.raises(ValueError, match="rpc_rate_this_hour"):
        apply_calibration(np.zeros(2), calibration)


def test_hours_without_training_calls_get_the_lowest_supported_probability():
    """Trees carry hour 20's rate into hour 21 when no call was ever placed at 21; the model must not trust it."""
    rng = np.random.default_rng(6)
    n = 3000
    frame = pd.DataFrame(
        {
            "rpc_rate_30d": rng.random(n),
            "local_hour": rng.integers(8, 21, n),  # calls at 08-20 only
            "weekday": rng.integers(0, 7, n),
            **{f"rpc_rate_hour_bucket_{b}": rng.random(n) for b in range(7)},
            **{f"rpc_rate_weekday_{d}": rng.random(n) for d in range(7)},
        }
    )
    labels = (rng.random(n) < 0.1 + 0.5 * (frame["local_hour"] >= 19)).astype(int)
    from features.contacts import hour_bucket
    from training.snapshots import add_slot_rates

    rows = add_slot_rates(frame, hour_bucket)
    names = ["rpc_rate_30d", "local_hour", "weekday", "rpc_rate_this_hour_bucket"]
    estimator = LightGBMClassifier(names, SMALL, seed=0).fit(rows, labels)
    support = np.bincount(frame["local_hour"], minlength=24).tolist()
    trusting = ContactModel.from_estimator(estimator)
    careful = ContactModel.from_estimator(estimator, metadata={"hour_support": support})
    assert careful.supported_hours.tolist() == [8 <= hour <= 20 for hour in range(24)]
    # A thin history (625 calls) keeps every hour it dialled in earnest; a handful of calls is no support.
    thin = [0] * 8 + [5, 82, 75, 100, 43, 44, 42, 53, 62, 40, 23, 32, 24] + [0] * 3
    thin_model = ContactModel.from_estimator(estimator, metadata={"hour_support": thin})
    assert thin_model.supported_hours.tolist() == [9 <= hour <= 20 for hour in range(24)]

    accounts = frame.drop(columns=["local_hour", "weekday"]).head(5)
    hours = list(range(8, 22))
    naive, grid = trusting.predict_hours(accounts, hours, 2), careful.predict_hours(accounts, hours, 2)
    assert naive[:, -1] == pytest.approx(naive[:, -2], rel=0.2)  # the extrapolation this guards against
    np.testing.assert_allclose(grid[:, :-1], naive[:, :-1])
    np.testing.assert_allclose(grid[:, -1], naive[:, :-1].min(axis=1))
    assert (grid.argmax(axis=1) != len(hours) - 1).all()
    # Row by row (the ranker's path) agrees, also on another weekday than the grid's.
    for weekday in (2, 5):
        slots = accounts.assign(local_hour=21, weekday=weekday)
        expected = trusting.predict_hours(accounts, list(range(8, 21)), weekday).min(axis=1)
        np.testing.assert_allclose(careful.predict_proba(slots), expected)


def test_metric_helpers_on_known_cases():
    labels = np.array([0, 0, 1, 1])
    assert capture_at(labels, np.array([0.1, 0.2, 0.9, 0.8]), 0.5) == 1.0
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == 0.0
    # A perfect score's expected AUC equals the truth's; a constant score gives 0.5.
    truth = np.linspace(0.05, 0.95, 50)
    assert expected_auc(truth, truth) > 0.75
    assert expected_auc(np.zeros(50), truth) == pytest.approx(0.5)
    assert expected_auc(-truth, truth) < 0.25
    # Uplift: outcome only rises under treatment where the score is high -> positive Qini.
    rng = np.random.default_rng(0)
    score = rng.random(4000)
    treated = rng.random(4000) < 0.5
    outcome = (rng.random(4000) < 0.2 + 0.5 * treated * (score > 0.5)).astype(int)
    assert qini_coefficient(outcome, treated, score) > 0.05
    assert qini_coefficient(outcome, treated, -score) < 0
