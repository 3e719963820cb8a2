"""Optional Optuna search over LightGBM parameters, scored by ROC AUC on the validation window only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from training.config import LightGBMParams, TuningConfig
from training.evaluation import safe_auc
from training.models import calibration_map


def tune_lightgbm(
    base: LightGBMParams,
    tuning: TuningConfig,
    fit: Callable[[LightGBMParams], object],
    validation: pd.DataFrame,
    validation_labels: np.ndarray,
    *,
    seed: int,
    max_trees: int = 600,
    max_leaves: int = 127,
) -> tuple[LightGBMParams, float]:
    """Best params by validation AUC; `fit(params)` returns a fitted estimator with `decision_function`.

    The test window is never seen here, so the test metrics of the tuned model stay honest.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = base.model_copy(
            update={
                "n_estimators": trial.suggest_int("n_estimators", 50, max_trees, log=True),
                "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
                "num_leaves": trial.suggest_int("num_leaves", 4, max_leaves, log=True),
                "min_child_samples": trial.suggest_int("min_child_samples", 20, 1000, log=True),
                "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
                "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
            }
        )
        estimator = fit(params)
        auc = safe_auc(validation_labels, estimator.decision_function(validation))
        return 0.5 if np.isnan(auc) else auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    # The first trial is the config's own parameters, each moved into the search's range (outside it, Optuna
    # warns on stderr and tries the value anyway).
    study.enqueue_trial(
        {
            "n_estimators": min(max(base.n_estimators, 50), max_trees),
            "learning_rate": min(max(base.learning_rate, 0.01), 0.2),
            "num_leaves": min(max(base.num_leaves, 4), max_leaves),
            "min_child_samples": min(max(base.min_child_samples, 20), 1000),
            "colsample_bytree": max(base.colsample_bytree, 0.4),
            "reg_lambda": min(max(base.reg_lambda, 1e-3), 30.0),
        }
    )
    study.optimize(objective, n_trials=tuning.n_trials, timeout=tuning.timeout_s)
    return base.model_copy(update=study.best_params), float(study.best_value)


def fit_calibrated(
    fit: Callable[[LightGBMParams], object],
    params: LightGBMParams,
    tuning: TuningConfig | None,
    calibration: str | None,
    validation: pd.DataFrame,
    validation_labels: np.ndarray,
    notes: list[str],
    *,
    seed: int,
    **limits: int,
) -> tuple[object, dict | None, LightGBMParams]:
    """Tune on validation when configured, fit, and fit the calibration map on validation only.

    Returns the fitted estimator, its calibration map (None when `calibration` is None: the caller fits
    its own) and the params used; `limits` bound the tuning search.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    if tuning is not None:
        params, best = tune_lightgbm(params, tuning, fit, validation, validation_labels, seed=seed, **limits)
        notes.append(f"tuned on validation: AUC {best:.4f} with {params.model_dump()}")
    estimator = fit(params)
    if calibration is None:
        return estimator, None, params
    # One "fold" holding the whole window: the frozen trees score every validation row once. The default
    # 5-fold split refits nothing here, yet refuses a window with fewer than 5 rows of a class.
    whole = np.arange(len(validation))
    calibrated = CalibratedClassifierCV(FrozenEstimator(estimator), method=calibration, cv=[(whole, whole)])
    calibrated.fit(validation, validation_labels)
    return estimator, calibration_map(calibrated), params
