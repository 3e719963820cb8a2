"""Call-effect learners on synthetic rows with a known effect: T and X learners, persistence, contributions."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from training.config import LightGBMParams, TrainConfig, UpliftConfig
from training.models import CallEffectModel
from training.snapshots import SnapshotSplits, TrainingData
from training.uplift import fit_uplift, imputed_effects, odds_shift

PARAMS = LightGBMParams(
    n_estimators=150, early_stopping_rounds=20, num_leaves=7, min_child_samples=40, learning_rate=0.08, num_threads=1
)


def _rows(n: int, seed: int, split: str) -> pd.DataFrame:
    """Rows where reaching the debtor helps only the 'responsive' ones (x1 > 0), and the reached share is small."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    base = 1 / (1 + np.exp(-(-1.0 + 0.8 * x2)))
    effect = np.where(x1 > 0, 0.35, 0.0) * (1 - base)
    # Reached more often when x2 is high (observed confounding), about 15% overall.
    propensity = 1 / (1 + np.exp(-(-1.9 + 0.6 * x2)))
    treated = (rng.random(n) < propensity).astype(np.int8)
    label = (rng.random(n) < base + treated * effect).astype(np.int8)
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "label_repay": label, "treated": treated, "split": split, "true_effect": effect}
    )


def _data() -> TrainingData:
    frames = [_rows(6000, 1, "train"), _rows(2000, 2, "validation"), _rows(3000, 3, "test")]
    day = pd.Timestamp("2026-01-01", tz="UTC")
    splits = SnapshotSplits((day,), (day + pd.Timedelta(days=30),), (day + pd.Timedelta(days=60),))
    return TrainingData(splits, pd.concat(frames, ignore_index=True), pd.DataFrame(), ["x1", "x2"])


def _config(learner: str) -> TrainConfig:
    return TrainConfig(uplift=UpliftConfig(learner=learner, params=PARAMS))


@pytest.fixture(scope="module")
def fits():
    data = _data()
    return data, {learner: fit_uplift(data, _config(learner)) for learner in ("t", "x")}


def test_both_learners_find_the_responsive_debtors(fits):
    data, by_learner = fits
    test = data.snapshots[data.snapshots["split"] == "test"]
    truth = test["true_effect"].to_numpy()
    for learner, fit in by_learner.items():
        uplift = fit.model.predict_uplift(test)
        assert np.corrcoef(uplift, truth)[0, 1] > 0.5, learner
        responsive = test["x1"].to_numpy() > 0
        assert uplift[responsive].mean() > uplift[~responsive].mean() + 0.1, learner
        assert fit.model.learner == learner


def test_x_learner_is_closer_to_the_true_effect_than_t(fits):
    data, by_learner = fits
    test = data.snapshots[data.snapshots["split"] == "test"]
    truth = test["true_effect"].to_numpy()
    error = {learner: np.mean((fit.model.predict_uplift(test) - truth) ** 2) for learner, fit in by_learner.items()}
    assert error["x"] < error["t"]


def test_imputed_effects_use_the_other_arm():
    rows = pd.DataFrame({"label_repay": [1, 0, 1, 0], "treated": [1, 1, 0, 0]})
    arm = SimpleNamespace
    treated_arm = arm(
        predict_proba=lambda frame: np.column_stack([1 - np.full(len(frame), 0.7), np.full(len(frame), 0.7)])
    )
    control_arm = arm(
        predict_proba=lambda frame: np.column_stack([1 - np.full(len(frame), 0.2), np.full(len(frame), 0.2)])
    )
    np.testing.assert_allclose(imputed_effects(rows, treated_arm, control_arm), [0.8, -0.2, -0.3, 0.7])


def test_x_learner_survives_pickle_and_artifacts(fits, tmp_path):
    data, by_learner = fits
    model = by_learner["x"].model
    test = data.snapshots[data.snapshots["split"] == "test"].head(50)
    paths = model.artifacts(tmp_path)
    assert set(paths) == {"treated", "control", *CallEffectModel.EFFECT_PARTS}
    restored = pickle.loads(pickle.dumps(model))
    restored.load_context(SimpleNamespace(artifacts=paths))
    np.testing.assert_allclose(restored.predict_uplift(test), model.predict_uplift(test))
    assert restored.learner == "x"


def test_x_learner_contributions_sum_to_the_uplift(fits):
    data, by_learner = fits
    model = by_learner["x"].model
    test = data.snapshots[data.snapshots["split"] == "test"].head(40)
    contributions = model.contributions(test)
    assert list(contributions.columns) == ["x1", "x2", "bias"]
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), model.predict_uplift(test), atol=1e-9)


def test_effect_boosters_must_be_complete():
    with pytest.raises(ValueError, match="effect boosters"):
        CallEffectModel(["x1"], {}, effect_texts={"propensity": "tree"})


@pytest.mark.parametrize("reached", [0, 30])
def test_too_few_reached_debtors_fall_back_to_one_effect_for_everyone(reached, tmp_path):
    data = _data()
    rows = data.snapshots
    train_treated = np.flatnonzero(((rows["split"] == "train") & (rows["treated"] == 1)).to_numpy())
    rows.loc[rows.index[train_treated[reached:]], "treated"] = 0  # keep only `reached` reached train rows
    fit = fit_uplift(data, _config("x"))
    model = fit.model
    train = rows[rows["split"] == "train"]
    reached_rows = train["treated"] == 1
    naive = train.loc[reached_rows, "label_repay"].mean() - train.loc[~reached_rows, "label_repay"].mean()
    expected = max(naive, 0.05) if reached else 0.05
    assert model.learner == "constant" and model.constant_effect == pytest.approx(expected)
    assert "one effect for every debtor" in fit.notes[0]

    test = rows[rows["split"] == "test"].head(60)
    np.testing.assert_allclose(model.predict_uplift(test), expected)
    p_reached, p_not_reached = model.predict_components(test)
    np.testing.assert_allclose(p_reached, np.clip(p_not_reached + expected, 0, 1))
    assert p_not_reached.std() > 0  # the not-reached arm is a fitted model, not a constant
    contributions = model.contributions(test)
    assert (contributions[["x1", "x2"]].to_numpy() == 0).all()
    np.testing.assert_allclose(contributions.sum(axis=1), expected)
    assert np.isfinite(fit.metrics["test_factual_auc"])

    paths = model.artifacts(tmp_path)
    assert set(paths) == {"control"}
    restored = pickle.loads(pickle.dumps(model))
    restored.load_context(SimpleNamespace(artifacts=paths))
    np.testing.assert_allclose(restored.predict_components(test)[1], p_not_reached)
    assert restored.learner == "constant"


def test_a_constant_effect_replaces_the_reached_arm():
    with pytest.raises(ValueError, match="constant call effect"):
        CallEffectModel(["x1"], {}, treated_text="tree", control_text="tree", constant_effect=0.1)


def _few_reached(reached: int) -> TrainingData:
    """The synthetic rows with only `reached` reached train rows: too few for the reached arm to split."""
    data = _data()
    rows = data.snapshots
    train_treated = np.flatnonzero(((rows["split"] == "train") & (rows["treated"] == 1)).to_numpy())
    rows.loc[rows.index[train_treated[reached:]], "treated"] = 0
    return data


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_an_offset_reached_arm_shifts_the_not_reached_arm_instead_of_replacing_it(tmp_path):
    # 120 reached rows and leaves of at least 200: the reached arm cannot split. Fitted on its own it
    # is a constant, so the T-learner's uplift is that constant minus the not-reached arm: it ranks
    # debtors by how UNLIKELY they are to pay anyway (what the random worlds showed in 75-day books).
    data = _few_reached(120)
    params = PARAMS.model_copy(update={"min_child_samples": 200})
    test = data.snapshots[data.snapshots["split"] == "test"].head(300)
    models = {}
    for offset in (False, True):
        config = TrainConfig(uplift=UpliftConfig(learner="t", params=params, treated_offset="yes" if offset else "no"))
        models[offset] = fit_uplift(data, config).model

    p_reached, p_not_reached = models[False].predict_components(test)
    assert p_reached.std() < 1e-9 and p_not_reached.std() > 0.05
    assert np.corrcoef(models[False].predict_uplift(test), p_not_reached)[0, 1] < -0.99

    model = models[True]
    assert model.treated_offset and model.learner == "t"
    p_reached, p_not_reached = model.predict_components(test)
    shift = _logit(p_reached) - _logit(p_not_reached)
    assert shift.std() < 1e-9 and shift.mean() > 0  # one odds ratio for everyone, and reaching helps
    uplift = model.predict_uplift(test)
    np.testing.assert_allclose(uplift, p_reached - p_not_reached)
    # The trees hold the difference: contributions are the log-odds shift (rows sum to it).
    np.testing.assert_allclose(model.contributions(test).sum(axis=1).to_numpy(), shift, atol=1e-9)

    paths = model.artifacts(tmp_path)
    restored = pickle.loads(pickle.dumps(model))
    restored.load_context(SimpleNamespace(artifacts=paths))
    assert restored.treated_offset
    np.testing.assert_allclose(restored.predict_components(test)[0], p_reached)


def test_an_offset_reached_arm_still_learns_where_reaching_helps():
    data = _data()
    test = data.snapshots[data.snapshots["split"] == "test"]
    config = TrainConfig(uplift=UpliftConfig(learner="x", params=PARAMS, treated_offset="yes"))
    uplift = fit_uplift(data, config).model.predict_uplift(test)
    assert np.corrcoef(uplift, test["true_effect"].to_numpy())[0, 1] > 0.5


def test_an_x_learner_that_finds_no_difference_gives_way_to_the_difference_of_the_arms():
    # 120 reached rows and leaves of at least 200: the reached rows' effect model cannot split and keeps
    # one tree, so the X-learner would give every debtor the same effect.
    params = PARAMS.model_copy(update={"min_child_samples": 200})
    config = TrainConfig(uplift=UpliftConfig(learner="x", params=params, treated_offset="yes"))
    fit = fit_uplift(_few_reached(120), config)
    assert fit.model.learner == "t" and fit.model.metadata["learner"] == "t"
    assert any("kept one tree" in note for note in fit.notes)
    snapshots = _few_reached(120).snapshots
    test = snapshots[snapshots["split"] == "test"].head(400)
    p_reached, p_not_reached = fit.model.predict_components(test)
    uplift = fit.model.predict_uplift(test)
    np.testing.assert_allclose(uplift, p_reached - p_not_reached)
    assert uplift.std() > 0.005  # the arms still tell debtors apart
    # Where the effect model does find differences, the X-learner stays (the rich fixture).
    assert fit_uplift(_data(), TrainConfig(uplift=UpliftConfig(learner="x", params=PARAMS))).model.learner == "x"


def test_auto_keeps_the_reached_arm_that_predicts_validation_better():
    params = PARAMS.model_copy(update={"min_child_samples": 200})
    config = TrainConfig(uplift=UpliftConfig(learner="x", params=params))
    assert config.uplift.treated_offset == "auto"
    # Too few reached rows to split: the constant arm loses to the shifted not-reached arm.
    thin = fit_uplift(_few_reached(120), config)
    assert thin.model.treated_offset
    assert any("reached arm boosted from the not-reached arm" in note for note in thin.notes)
    # Whichever is kept, the note gives both validation losses, and the flag agrees with the note.
    rich = fit_uplift(_data(), config)
    (note,) = [note for note in rich.notes if "reached arm" in note]
    assert "validation log loss" in note
    assert rich.model.treated_offset == ("boosted from" in note)


def test_odds_shift_is_the_maximum_likelihood_log_odds_ratio():
    rng = np.random.default_rng(0)
    offset = rng.normal(-1.0, 1.0, 20000)
    outcome = (rng.random(20000) < 1 / (1 + np.exp(-(offset + 0.7)))).astype(float)
    shift = odds_shift(offset, outcome)
    assert shift == pytest.approx(0.7, abs=0.06)
    # At the optimum the fitted probabilities sum to the number of positives.
    assert np.sum(1 / (1 + np.exp(-(offset + shift)))) == pytest.approx(outcome.sum(), rel=1e-6)
