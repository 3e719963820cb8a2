"""TreeSHAP by distinct paths gives LightGBM's own `pred_contrib`, whatever the splits and the values."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from training import treeshap


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with NaN, zeros and negatives, and a categorical column (codes 0-5, NaN, negatives, unseen)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 1] = np.where(rng.random(n) < 0.3, 0.0, x[:, 1])
    x[:, 2] = np.where(rng.random(n) < 0.2, np.nan, x[:, 2])
    x[:, 3] = rng.integers(0, 6, n).astype(float)
    x[:, 4] = np.round(x[:, 4], 1)  # ties at the thresholds
    logit = x[:, 0] + 0.8 * np.nan_to_num(x[:, 2]) + (x[:, 3] % 2) - 0.5 * (x[:, 1] == 0) + 0.3 * x[:, 4]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return x, y


def _scored(n: int, seed: int) -> np.ndarray:
    """Rows to explain, with the awkward values training rarely saw."""
    x, _ = _data(n, seed)
    rng = np.random.default_rng(seed + 1)
    x[rng.random(n) < 0.05, 3] = np.nan
    x[rng.random(n) < 0.03, 3] = -1.0
    x[rng.random(n) < 0.03, 3] = 9.0  # a category training never saw
    x[rng.random(n) < 0.03, 3] = 2.7  # read as its integer part, 2
    x[rng.random(n) < 0.05, 0] = np.nan  # NaN where training had none: read as 0
    x[rng.random(n) < 0.05, 1] = -0.0
    return x


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "binary"},
        {"objective": "binary", "zero_as_missing": True},
        {"objective": "regression", "max_depth": 3},
        {"objective": "binary", "use_missing": False},
    ],
    ids=["nan-missing", "zero-as-missing", "regression", "no-missing"],
)
def test_distinct_paths_give_lightgbms_contributions(params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(4000, seed=1)
    train = lgb.Dataset(x, y, categorical_feature=[3], free_raw_data=False)
    booster = lgb.train(
        {**params, "num_leaves": 15, "min_data_in_leaf": 10, "verbose": -1, "num_threads": 1, "seed": 3},
        train,
        num_boost_round=30,
    )
    splits = [s for tree in booster.dump_model()["tree_info"] for s in treeshap._splits(tree)]
    assert {s["decision_type"] for s in splits} == {"<=", "=="}  # both kinds of split are exercised
    rows = _scored(3000, seed=2)
    assert treeshap._trees(booster) is not None and len(rows) >= treeshap.MIN_ROWS  # the fast path runs
    np.testing.assert_allclose(
        treeshap.predict_contributions(booster, rows), booster.predict(rows, pred_contrib=True), rtol=0, atol=1e-12
    )
    # Small matrices go to LightGBM whole, with the same answer.
    np.testing.assert_array_equal(
        treeshap.predict_contributions(booster, rows[:50]), booster.predict(rows[:50], pred_contrib=True)
    )


def test_single_leaf_trees_and_the_best_iteration(tmp_path) -> None:
    x, y = _data(3000, seed=4)
    validation = lgb.Dataset(x[2000:], y[2000:], categorical_feature=[3])
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 1, "learning_rate": 0.3},
        lgb.Dataset(x[:2000], y[:2000], categorical_feature=[3]),
        num_boost_round=80,
        valid_sets=[validation],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # the trees after the best iteration kept, as a booster in training has them
    )
    assert 0 < booster.best_iteration < booster.num_trees()  # predict stops at the best iteration
    rows = _scored(2500, seed=5)
    expected = booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(treeshap.predict_contributions(booster, rows), expected, rtol=0, atol=1e-12)

    # A label with nothing to learn: trees of one leaf, all bias.
    flat = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1, "boost_from_average": False},
        lgb.Dataset(x, np.full(len(x), 2.0)),
        num_boost_round=3,
    )
    assert all(not treeshap._splits(tree) for tree in flat.dump_model()["tree_info"])
    np.testing.assert_allclose(
        treeshap.predict_contributions(flat, rows), flat.predict(rows, pred_contrib=True), rtol=0, atol=1e-12
    )


def test_models_it_does_not_know_go_to_lightgbm_whole() -> None:
    x, y = _data(3000, seed=6)
    labels = (np.nan_to_num(x[:, 0]) > 0).astype(int) + (np.nan_to_num(x[:, 2]) > 0).astype(int)
    multiclass = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, labels),
        num_boost_round=5,
    )
    linear = lgb.train(
        {"objective": "regression", "linear_tree": True, "verbose": -1, "num_threads": 1},
        lgb.Dataset(np.nan_to_num(x), y),
        num_boost_round=5,
    )
    assert treeshap._trees(multiclass) is None and treeshap._trees(linear) is None
    rows = np.nan_to_num(_scored(2500, seed=7))
    np.testing.assert_array_equal(
        treeshap.predict_contributions(multiclass, rows), multiclass.predict(rows, pred_contrib=True)
    )
    with pytest.raises(lgb.basic.LightGBMError, match="not implemented for linear trees"):
        treeshap.predict_contributions(linear, rows)  # LightGBM's own answer, not numbers made up here
    assert treeshap.predict_contributions(linear, rows[:0]).shape == (0, rows.shape[1] + 1)
