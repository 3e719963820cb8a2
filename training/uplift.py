"""Call effect (uplift): how much reaching the debtor changes the chance of repayment.

Snapshot rows: treatment = an outbound call reached the debtor (right-party contact) in the
first `treatment_window_days` after the snapshot; outcome = the repayment label. Two outcome
arms, one LightGBM each: P(repay | reached, x) and P(repay | not reached, x).
* T-learner: uplift = their difference. Each arm is fitted (and early-stopped) on its own rows,
  so the difference carries the noise of the small reached arm twice.
* X-learner (default; Künzel et al. 2019): impute each row's effect with the OTHER arm's model
  (reached rows: y - P(repay | not reached); the others: P(repay | reached) - y), regress the
  imputed effects on x per arm, and weight the two effect models by the propensity g(x) of being
  reached: uplift = g·effect_control + (1 - g)·effect_treated. With few reached rows the estimate
  leans on the precise not-reached arm; measured in simulated worlds (experiments/LIST_QUALITY.md)
  it tracks the true effect better than the T-learner. Where the reached rows' effect model keeps a
  single tree (early stopping on validation found no difference between debtors: thin books), the
  X-learner's estimate is one number for everyone, and the model keeps the T-learner's difference
  of the arms instead (see `x_learner_effects`).

What it can identify: the effect of a right-party contact *among debtors alike in the
features* (DPD, amounts, payment, promise and contact history — which include what drives
who gets reached), under no unmeasured confounding and positivity.
What it cannot: debtors who answer may be the willing ones, and willingness is not fully
observed, so the estimate mixes the call's effect with selection (it tends to overstate it);
and where some debtors are (almost) never reached or always reached (positivity fails,
e.g. wrong numbers), the treated arm is extrapolated. Also, being reached is not the same
as being called: serving multiplies by P(contact). Check it against an experiment (random
holdout of calls) before trusting its scale; on simulated data it is compared with the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics import log_loss

from training.config import TrainConfig
from training.evaluation import qini_coefficient, qini_curve, safe_auc, uplift_by_decile
from training.models import CallEffectModel, FeatureEncoder, LightGBMClassifier, LightGBMRegressor
from training.repayment import ModelQualityError, sample_rows
from training.snapshots import TrainingData

LABEL = "label_repay"
TREATMENT = "treated"
# Rows per arm below which an arm model is not worth fitting.
MIN_ARM_ROWS = 50
# Trees the reached rows' effect model must keep for the X-learner to be used: with one, it says the
# same for every debtor.
MIN_EFFECT_TREES = 2


@dataclass
class UpliftFit:
    """A fitted call-effect model and what it measured."""

    model: CallEffectModel
    metrics: dict[str, float]
    qini: pd.DataFrame
    deciles: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Rows:
    """What every fitting step reads: the three windows, the features and their shared encoding."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    categories: dict[str, list[str]]
    config: TrainConfig

    def estimator(self, kind: type[LightGBMClassifier] | type[LightGBMRegressor]):
        """An unfitted LightGBM of `kind` on these features and their shared encoding, with the uplift params."""
        return kind(self.features, self.config.uplift.params, self.config.seed, categories=self.categories)


def fit_uplift(data: TrainingData, config: TrainConfig) -> UpliftFit:
    """Fit the two arms on train, evaluate the Qini curve on test; a random-scoring Qini is the baseline."""
    snapshots = data.snapshots
    train = sample_rows(snapshots[snapshots["split"] == "train"], config.max_train_rows, config.seed)
    validation = snapshots[snapshots["split"] == "validation"]
    test = snapshots[snapshots["split"] == "test"]
    treated, control = train[train[TREATMENT] == 1], train[train[TREATMENT] == 0]
    if not _usable(control):
        raise ModelQualityError(
            f"call effect: {len(control)} train snapshots were not reached, {int(control[LABEL].sum())} of them "
            f"repaid; the not-reached arm needs at least {MIN_ARM_ROWS} with both outcomes (train on a larger book "
            "or a longer history)"
        )
    features = data.feature_names
    # Both arms share one encoder, so a category code means the same thing in either booster.
    categories = FeatureEncoder.fit(train, features).categories
    rows = _Rows(train, validation, test, features, categories, config)
    if not _usable(treated):
        fit = _fit_constant(rows)
    else:
        fit = _fit_arms(rows)
    fit.model.metadata["reference_uplift"] = reference_uplift(fit.model, validation if len(validation) else train)
    return fit


def reference_uplift(model: CallEffectModel, rows: pd.DataFrame) -> float:
    """Mean estimated effect (clipped to [0, 1]) over overdue snapshot rows: the book's typical call effect.

    Serving floors each debtor's effect at a share of this (`serving.pipeline.MIN_EFFECT_SHARE`), so
    an account's score never depends on which other accounts are scored with it.
    """
    return float(np.clip(model.predict_uplift(rows), 0.0, 1.0).mean())


def treatment_definition(window_days: int) -> str:
    """What "reached" means for the call effect, in words (kept with the model)."""
    return f"right-party outbound call within {window_days} days"


def _metadata(config: TrainConfig, learner: str, **extra: object) -> dict[str, object]:
    """What a call-effect model says about itself (kept with it in MLflow)."""
    treatment = treatment_definition(config.uplift.treatment_window_days)
    return {"learner": learner, "treatment": treatment, "outcome": LABEL, **extra}


def _fit_arms(rows: _Rows) -> UpliftFit:
    """Both outcome arms, and on top of them the X-learner's effect models (the default learner)."""
    config = rows.config
    arm_control = _fit_arm(0, rows)
    arm_treated, notes = _reached_arm(arm_control, rows)
    effect_texts, learner = None, config.uplift.learner
    if learner == "x":
        effect_texts = x_learner_effects(arm_treated, arm_control, rows)
        if effect_texts is None:
            learner = "t"
            notes.append(
                "call effect: the X-learner's effect model for reached debtors kept one tree (validation showed "
                "no difference between debtors), so the model is the difference of the two arms (T-learner)"
            )
    model = CallEffectModel(
        arm_treated.encoder_.feature_names,
        rows.categories,
        metadata=_metadata(
            config,
            learner,
            treated_offset=isinstance(arm_treated, OffsetArm),
            treated_shift=arm_treated.shift if isinstance(arm_treated, OffsetArm) else 0.0,
        ),
        treated_text=arm_treated.booster_.model_to_string(),
        control_text=arm_control.booster_.model_to_string(),
        effect_texts=effect_texts,
    )
    fit = evaluate_uplift(model, rows.test, rows.train)
    fit.notes.extend(notes)
    return fit


def _reached_arm(arm_control: LightGBMClassifier, rows: _Rows) -> tuple[LightGBMClassifier | OffsetArm, list[str]]:
    """The reached arm: on its own, as a shift of the not-reached arm, or (auto) whichever predicts the
    reached rows of validation better (log loss)."""
    choice = rows.config.uplift.treated_offset
    if choice == "no":
        return _fit_arm(1, rows), []
    offset = _fit_arm(1, rows, base=arm_control)
    if choice == "yes":
        return offset, []
    plain = _fit_arm(1, rows)
    held = rows.validation[rows.validation[TREATMENT] == 1]
    if held[LABEL].nunique() < 2:
        return offset, ["call effect: no reached validation rows of both outcomes; reached arm boosted from the other"]
    losses = {
        name: log_loss(held[LABEL], np.clip(arm.predict_proba(held)[:, 1], 1e-6, 1 - 1e-6), labels=[0, 1])
        for name, arm in (("offset", offset), ("plain", plain))
    }
    chosen = offset if losses["offset"] <= losses["plain"] else plain
    note = (
        f"call effect: reached arm {'boosted from the not-reached arm' if chosen is offset else 'fitted on its own'}"
        f" (validation log loss {losses['offset']:.4f} boosted vs {losses['plain']:.4f} on its own)"
    )
    return chosen, [note]


def _usable(arm: pd.DataFrame) -> bool:
    return len(arm) >= MIN_ARM_ROWS and arm[LABEL].nunique() == 2


class OffsetArm:
    """P(repay | reached) as the not-reached arm's log-odds, plus one shift (the odds ratio), plus trees
    fitted to what is left."""

    def __init__(self, base: LightGBMClassifier, shift: float, delta: LightGBMClassifier):
        self.base, self.shift, self.delta = base, shift, delta
        self.booster_ = delta.booster_  # what the saved model keeps: the trees; the shift goes in metadata
        self.encoder_ = delta.encoder_

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.base.decision_function(X) + self.shift + self.delta.decision_function(X)

    predict_proba = LightGBMClassifier.predict_proba  # the logistic link of `decision_function`


def odds_shift(offset: np.ndarray, outcome: np.ndarray, iterations: int = 50) -> float:
    """Maximum-likelihood constant d in P(y) = expit(offset + d): one log odds ratio (Newton's method)."""
    shift = 0.0
    for _ in range(iterations):
        p = expit(offset + shift)
        gradient, curvature = float(np.sum(outcome - p)), float(np.sum(p * (1 - p)))
        if curvature <= 0:
            break
        step = float(np.clip(gradient / curvature, -2.0, 2.0))
        shift += step
        if abs(step) < 1e-10:
            break
    return shift


def _fit_arm(flag: int, rows: _Rows, base: LightGBMClassifier | None = None) -> LightGBMClassifier | OffsetArm:
    """P(repay | x) on one arm's train rows (1 reached, 0 not), early-stopped on the same arm of validation.

    With `base` (the not-reached arm), the arm starts from its log-odds shifted by one fitted constant
    (`odds_shift`), and the trees fit only how reaching the debtor moves them beyond that. Where few
    debtors were reached the arm stays a constant shift of the other (one odds ratio), instead of a
    constant probability whose difference with a fitted not-reached arm would rank debtors by how
    unlikely they are to pay anyway.
    """
    arm = rows.train[rows.train[TREATMENT] == flag]
    held = rows.validation[rows.validation[TREATMENT] == flag]
    eval_set = (held, held[LABEL]) if held[LABEL].nunique() == 2 else None
    estimator = rows.estimator(LightGBMClassifier)
    if base is None:
        return estimator.fit(arm, arm[LABEL], eval_set=eval_set)
    start = base.decision_function(arm)
    shift = odds_shift(start, arm[LABEL].to_numpy(dtype=float))
    offsets = (start + shift, base.decision_function(held) + shift if eval_set is not None else None)
    return OffsetArm(base, shift, estimator.fit(arm, arm[LABEL], eval_set=eval_set, init_score=offsets))


def _fit_constant(rows: _Rows) -> UpliftFit:
    """Too few reached debtors for a reached arm: the not-reached arm and one effect for everyone.

    The effect is the reached-minus-not-reached repayment rate on train (selection included, so
    rather too high), at least `fallback_effect`; lists then rank by P(contact) x stake, which in
    simulated worlds keeps most of the money (experiments/LIST_QUALITY.md, constant effect).
    """
    reached = rows.train[TREATMENT].to_numpy() == 1
    outcome = rows.train[LABEL].to_numpy(dtype=float)
    floor = rows.config.uplift.fallback_effect
    naive = outcome[reached].mean() - outcome[~reached].mean() if reached.any() else float("nan")
    effect = float(min(max(naive, floor), 1.0)) if np.isfinite(naive) else floor
    control = _fit_arm(0, rows)
    model = CallEffectModel(
        control.encoder_.feature_names,
        rows.categories,
        metadata=_metadata(rows.config, "constant"),
        control_text=control.booster_.model_to_string(),
        constant_effect=effect,
    )
    fit = evaluate_uplift(model, rows.test, rows.train)
    fit.notes.append(
        f"call effect: only {int(reached.sum())} reached train rows (fewer than {MIN_ARM_ROWS}, or one outcome), "
        f"so one effect for every debtor: {effect:.3f} (reached minus not-reached repayment rate "
        f"{naive:+.3f}, floor {floor}); lists rank by P(contact) x stake"
    )
    return fit


def imputed_effects(
    rows: pd.DataFrame, arm_treated: LightGBMClassifier | OffsetArm, arm_control: LightGBMClassifier
) -> np.ndarray:
    """X-learner pseudo-outcomes: reached rows y - P(repay | not reached, x); others P(repay | reached, x) - y."""
    outcome = rows[LABEL].to_numpy(dtype=float)
    treated = rows[TREATMENT].to_numpy().astype(bool)
    counterfactual = np.where(treated, arm_control.predict_proba(rows)[:, 1], arm_treated.predict_proba(rows)[:, 1])
    return np.where(treated, outcome - counterfactual, counterfactual - outcome)


def x_learner_effects(
    arm_treated: LightGBMClassifier | OffsetArm, arm_control: LightGBMClassifier, rows: _Rows
) -> dict[str, str] | None:
    """The X-learner's effect models per arm and the propensity of being reached, as booster texts.

    Effects are imputed with out-of-arm models only (a row's own arm never scores it), and early
    stopping uses the same arm's imputed effects on the validation window. None where the reached
    rows' effect model keeps fewer than `MIN_EFFECT_TREES` trees: its estimate (weighted 1 - g, most
    of the uplift) would be one number for every debtor, while the difference of the arms still
    carries how the chance to pay anyway differs (in 18 of 40 random worlds, 75-day or thinly called
    histories: +0.8 points of the oracle on average, 9 up, none down; 40 more seeds: +0.6, 8 up, 3
    down; the study worlds never reach this; experiments/LIST_QUALITY.md).
    """
    train, validation = rows.train, rows.validation
    texts = {}
    train_effect = imputed_effects(train, arm_treated, arm_control)
    validation_effect = imputed_effects(validation, arm_treated, arm_control)
    for name, flag in (("effect_treated", 1), ("effect_control", 0)):
        mine = (train[TREATMENT] == flag).to_numpy()
        held = (validation[TREATMENT] == flag).to_numpy()
        eval_set = (validation[held], validation_effect[held]) if held.any() else None
        regressor = rows.estimator(LightGBMRegressor).fit(train[mine], train_effect[mine], eval_set=eval_set)
        if flag == 1 and regressor.best_iteration_ < MIN_EFFECT_TREES:
            return None
        texts[name] = regressor.booster_.model_to_string()
    eval_set = (validation, validation[TREATMENT]) if validation[TREATMENT].nunique() == 2 else None
    propensity = rows.estimator(LightGBMClassifier).fit(train, train[TREATMENT], eval_set=eval_set)
    texts["propensity"] = propensity.booster_.model_to_string()
    return texts


def factual_auc(model: CallEffectModel, rows: pd.DataFrame) -> float:
    """ROC AUC of each row's outcome under the arm it actually got (the only arm that can be checked).

    This is what promotion compares: on observational data the Qini curve rewards confounding
    (who got reached) as much as a true effect and is noisy, while factual accuracy is stable.
    """
    p_reached, p_not_reached = model.predict_components(rows)
    treated = rows[TREATMENT].to_numpy().astype(bool)
    return safe_auc(rows[LABEL].to_numpy(), np.where(treated, p_reached, p_not_reached))


def evaluate_uplift(model: CallEffectModel, test: pd.DataFrame, train: pd.DataFrame) -> UpliftFit:
    """Qini coefficient, uplift by decile and the observed (naive) treated-control difference on test."""
    p_reached, p_not_reached = model.predict_components(test)
    uplift = model.predict_uplift(test)
    outcome, treated = test[LABEL].to_numpy(), test[TREATMENT].to_numpy().astype(bool)
    rng = np.random.default_rng(0)
    metrics = {
        "test_factual_auc": factual_auc(model, test),
        "test_factual_log_loss": float(
            log_loss(outcome, np.clip(np.where(treated, p_reached, p_not_reached), 1e-6, 1 - 1e-6), labels=[0, 1])
        ),
        "test_qini": qini_coefficient(outcome, treated, uplift),
        "baseline_random_qini": qini_coefficient(outcome, treated, rng.random(len(outcome))),
        "test_mean_uplift": float(np.mean(uplift)) if len(uplift) else float("nan"),
        "test_naive_difference": float(outcome[treated].mean() - outcome[~treated].mean())
        if treated.any() and (~treated).any()
        else float("nan"),
        "test_treated_share": float(treated.mean()) if len(treated) else float("nan"),
        "train_treated_share": float(train[TREATMENT].mean()),
    }
    return UpliftFit(
        model=model,
        metrics=metrics,
        qini=qini_curve(outcome, treated, uplift),
        deciles=uplift_by_decile(outcome, treated, uplift),
    )
