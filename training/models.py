"""The model objects: sklearn-contract LightGBM estimators and the MLflow pyfunc wrappers serving loads.

Boosters travel as LightGBM text (`save_model` format) in MLflow artifacts, never pickled; the
pyfunc object itself holds only plain data (feature names, category lists, calibration map).
Serving reaches the rich methods through `mlflow.pyfunc.load_model(uri).unwrap_python_model()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from training.config import LightGBMParams
from training.treeshap import predict_contributions

BOOSTER_ARTIFACT = "booster"
# Per call slot: debtor-local hour and weekday, and the account's rates picked for them (`add_slot_rates`).
SLOT_COLUMNS = (
    "local_hour",
    "weekday",
    "rpc_rate_this_hour_bucket",
    "rpc_rate_this_weekday",
    "rpc_rate_this_hour",
    "rpc_rate_adjacent_hours",
    "rpc_mixture_this_hour",
)
PICKED_SLOT_COLUMNS = SLOT_COLUMNS[2:]
# A local hour is supported when training saw at least this many calls there, and this share of all:
# what it guards against is an hour nobody dialled (cn allows 21:00, centres stop at 21:00), not an
# hour with few calls in a thin history. (An absolute 100 calls left a 600-call history with one
# supported hour, every other hour priced at its minimum: the list lost its hours.)
MIN_HOUR_SUPPORT_CALLS = 10
MIN_HOUR_SUPPORT_SHARE = 0.005
# The contact model's "sigmoid_with_rate" calibration reads this slot column beside the trees' score.
RATE_INPUT = "rpc_rate_this_hour"
RATE_CLIP = 1e-3


class FeatureEncoder:
    """Fixed column order and float matrix; string columns become codes of categories seen in fit."""

    def __init__(self, feature_names: Sequence[str], categories: dict[str, list[str]] | None = None):
        self.feature_names = list(feature_names)
        self.categories = dict(categories or {})

    @classmethod
    def fit(cls, frame: pd.DataFrame, feature_names: Sequence[str]) -> FeatureEncoder:
        categories = {}
        for name in feature_names:
            column = frame[name]
            if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
                categories[name] = sorted(str(value) for value in column.dropna().unique())
        return cls(feature_names, categories)

    @property
    def categorical_indices(self) -> list[int]:
        return [index for index, name in enumerate(self.feature_names) if name in self.categories]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Float matrix in `feature_names` order; unknown categories and missing values are NaN."""
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise KeyError(f"features missing from the input frame: {missing}")
        matrix = np.empty((len(frame), len(self.feature_names)), dtype=np.float64)
        for index, name in enumerate(self.feature_names):
            column = frame[name]
            if name in self.categories:
                known = pd.Index(self.categories[name], dtype="string")
                codes = known.get_indexer(pd.Index(column.astype("string")))
                matrix[:, index] = np.where(codes < 0, np.nan, codes)
            else:
                matrix[:, index] = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
        return matrix


class LightGBMEstimator(BaseEstimator):
    """LightGBM on a features frame, with monotone constraints by feature name; subclasses set the objective."""

    _objective, _metric = "binary", "binary_logloss"

    def __init__(
        self,
        feature_names: Sequence[str] = (),
        params: LightGBMParams | None = None,
        seed: int = 0,
        monotone_constraints: dict[str, int] | None = None,
        categories: dict[str, list[str]] | None = None,
    ):
        self.feature_names = feature_names
        self.params = params
        self.seed = seed
        self.monotone_constraints = monotone_constraints
        self.categories = categories

    def fit(
        self,
        X: pd.DataFrame,
        y: Sequence[int],
        eval_set: tuple[pd.DataFrame, Sequence[int]] | None = None,
        init_score: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> LightGBMEstimator:
        """Fit on (X, y); with `eval_set` and `early_stopping_rounds`, keep the trees up to the best
        validation loss (log loss or l2; validation is the only data used to choose, never test).

        `init_score` (train, eval set) boosts from given raw scores instead of a constant: the trees
        then model the difference, and every prediction must add the same offset back."""
        params = self.params or LightGBMParams()
        self.encoder_ = (
            FeatureEncoder(self.feature_names, self.categories)
            if self.categories is not None
            else FeatureEncoder.fit(X, self.feature_names)
        )
        booster_params = params.booster_params(self.seed, self._objective)
        constraints = self.monotone_constraints or {}
        categorical = [name for name, sign in constraints.items() if sign and name in self.encoder_.categories]
        if categorical:  # LightGBM would abort the whole process on it
            raise ValueError(f"monotone constraint on categorical feature {categorical[0]!r}: a category has no order")
        if constraints:
            booster_params["monotone_constraints"] = [
                int(constraints.get(name, 0)) for name in self.encoder_.feature_names
            ]
            booster_params["monotone_constraints_method"] = "intermediate"
        train_offset, eval_offset = init_score if init_score is not None else (None, None)
        dataset = self._dataset(X, y, init_score=train_offset)
        valid_sets, callbacks = [], []
        if eval_set is not None and params.early_stopping_rounds:
            valid_sets = [self._dataset(eval_set[0], eval_set[1], reference=dataset, init_score=eval_offset)]
            callbacks = [lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)]
            booster_params["metric"] = self._metric
        booster = lgb.train(
            booster_params,
            dataset,
            num_boost_round=params.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        # Keep only the chosen trees, so the saved text and every prediction agree.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=self.best_iteration_))
        if self._objective == "binary":
            self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(self.encoder_.feature_names)
        return self

    def _dataset(
        self,
        X: pd.DataFrame,
        y: Sequence[int],
        reference: lgb.Dataset | None = None,
        init_score: np.ndarray | None = None,
    ) -> lgb.Dataset:
        return lgb.Dataset(
            self.encoder_.transform(X),
            label=np.asarray(y, dtype=np.float64),
            init_score=init_score,
            feature_name=[_safe_name(name) for name in self.encoder_.feature_names],
            categorical_feature=self.encoder_.categorical_indices or "auto",
            reference=reference,
            free_raw_data=True,
        )


class LightGBMClassifier(ClassifierMixin, LightGBMEstimator):
    """Binary LightGBM on a features frame, with monotone constraints by feature name."""

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Raw log-odds score (what calibration maps to a probability)."""
        return self.booster_.predict(self.encoder_.transform(X), raw_score=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        positive = expit(self.decision_function(X))
        return np.column_stack([1 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class LightGBMRegressor(RegressorMixin, LightGBMEstimator):
    """Least-squares LightGBM on a features frame (e.g. imputed treatment effects)."""

    _objective, _metric = "regression", "l2"

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(self.encoder_.transform(X))


def _safe_name(name: str) -> str:
    """LightGBM rejects some characters in feature names; callq names are snake_case already."""
    return "".join(char if char.isalnum() or char == "_" else "_" for char in name)


def calibration_map(calibrated: Any) -> dict[str, Any] | None:
    """Plain-data copy of a fitted `CalibratedClassifierCV` (ensemble=False) calibrator, on raw scores."""
    if calibrated is None:
        return None
    (pair,) = calibrated.calibrated_classifiers_
    (calibrator,) = pair.calibrators
    if calibrated.method == "isotonic":
        return {
            "method": "isotonic",
            "x": np.asarray(calibrator.X_thresholds_, dtype=float).tolist(),
            "y": np.asarray(calibrator.y_thresholds_, dtype=float).tolist(),
        }
    return {"method": "sigmoid", "a": float(calibrator.a_), "b": float(calibrator.b_)}


def rate_log_odds(rate: np.ndarray, fill: float) -> np.ndarray:
    """Log-odds of a right-party rate, clipped to [0.001, 0.999]; `fill` where the rate is missing."""
    clipped = np.clip(np.asarray(rate, dtype=float), RATE_CLIP, 1.0 - RATE_CLIP)
    return np.where(np.isnan(clipped), fill, np.log(clipped / (1.0 - clipped)))


def fit_rate_calibration(raw: np.ndarray, rate: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Platt scaling with a second input: P = expit(a·raw + a_rate·logit(rate) + b), fitted on validation.

    `rate` is the debtor's own smoothed right-party rate at the slot's hour (`RATE_INPUT`). Trees
    with leaves of 100 calls cannot separate the few debtors who answer far more than their leaf
    in a thin history; the weight fitted here says how much of the raw rate's extra spread is real
    (near zero in a rich book, where the trees already read it).
    """
    from sklearn.linear_model import LogisticRegression

    z_rate = rate_log_odds(rate, np.nan)
    fill = float(np.nanmean(z_rate)) if np.isfinite(z_rate).any() else 0.0
    inputs = np.column_stack([np.asarray(raw, dtype=float), np.where(np.isnan(z_rate), fill, z_rate)])
    # Two coefficients on thousands of calls: next to no penalty (C large), as Platt scaling has none.
    fitted = LogisticRegression(C=1e4, max_iter=1000).fit(inputs, np.asarray(labels, dtype=int))
    return {
        "method": "sigmoid_with_rate",
        "a": float(fitted.coef_[0][0]),
        "a_rate": float(fitted.coef_[0][1]),
        "b": float(fitted.intercept_[0]),
        "rate_fill": fill,
    }


def apply_calibration(
    raw: np.ndarray, calibration: dict[str, Any] | None, rate: np.ndarray | None = None
) -> np.ndarray:
    """Probability from raw score: the calibration map, else the logistic link.

    `rate`: the slot's `RATE_INPUT`, which a "sigmoid_with_rate" map reads beside the score.
    """
    if calibration is None:
        return expit(raw)
    if calibration["method"] == "sigmoid_with_rate":
        if rate is None:
            raise ValueError(f"this calibration reads each slot's {RATE_INPUT} as well as the score")
        z_rate = rate_log_odds(rate, calibration["rate_fill"])
        return expit(calibration["a"] * raw + calibration["a_rate"] * z_rate + calibration["b"])
    if calibration["method"] == "isotonic":
        return np.interp(raw, np.asarray(calibration["x"]), np.asarray(calibration["y"]))
    return expit(-(calibration["a"] * raw + calibration["b"]))


class BoosterModel(mlflow.pyfunc.PythonModel):
    """A LightGBM booster (text) + feature list + optional calibration map; `predict` gives P(label=1)."""

    kind = "binary"

    def __init__(
        self,
        feature_names: Sequence[str],
        categories: dict[str, list[str]],
        calibration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        booster_text: str | None = None,
    ):
        self._feature_names = list(feature_names)
        self.categories = dict(categories)
        self.calibration = calibration
        self.metadata = dict(metadata or {})
        self._booster = lgb.Booster(model_str=booster_text) if booster_text else None

    @classmethod
    def from_estimator(cls, estimator: LightGBMClassifier, calibration=None, metadata=None) -> BoosterModel:
        return cls(
            estimator.encoder_.feature_names,
            estimator.encoder_.categories,
            calibration=calibration,
            metadata=metadata,
            booster_text=estimator.booster_.model_to_string(),
        )

    # --- pickling: the booster travels as a text artifact, never inside the pickle ---------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_booster"] = None
        return state

    def artifacts(self, folder: Path) -> dict[str, str]:
        """Write the booster text into `folder`; returns the MLflow `artifacts` mapping."""
        path = Path(folder) / f"{BOOSTER_ARTIFACT}.txt"
        self._booster.save_model(str(path))
        return {BOOSTER_ARTIFACT: str(path)}

    def load_context(self, context) -> None:
        self._booster = lgb.Booster(model_file=context.artifacts[BOOSTER_ARTIFACT])

    # --- the methods serving uses -------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return list(self._feature_names)

    @property
    def booster(self) -> lgb.Booster:
        return self._booster

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        return FeatureEncoder(self._feature_names, self.categories).transform(features)

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        return self._booster.predict(self._matrix(features), raw_score=True)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive label, one per row."""
        return apply_calibration(self.raw_score(features), self.calibration)

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the raw (log-odds) score, plus `bias`; rows sum to the raw score.

        Slow (TreeSHAP, `training.treeshap`): compute it for a call list, not for the whole book.
        """
        values = predict_contributions(self._booster, self._matrix(features))
        return pd.DataFrame(values, columns=[*self._feature_names, "bias"], index=features.index)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.predict_proba(model_input)


class ContactModel(BoosterModel):
    """P(right-party contact | account features, debtor-local hour, weekday)."""

    kind = "contact"

    def _with_slot_rates(self, frame: pd.DataFrame) -> pd.DataFrame:
        from features.contacts import hour_bucket
        from training.snapshots import add_slot_rates

        if all(column in frame.columns for column in SLOT_COLUMNS):
            return frame
        return add_slot_rates(frame, hour_bucket)

    @property
    def supported_hours(self) -> np.ndarray:
        """Per debtor-local hour 0-23: did training see enough calls there to trust the model?

        A policy window can be wider than the hours collectors ever called (cn allows 08-22; a
        centre may never have dialled after 21:00). Trees extend the nearest seen hour's answer
        rate into such hours, which overrates them; `predict_proba` and `predict_hours` instead
        give an unsupported hour the debtor's lowest probability over the supported hours: a
        slot without evidence is used only when nothing known is better. Models saved without
        `hour_support` trust every hour.
        """
        support = self.metadata.get("hour_support")
        if support is None:
            return np.ones(24, dtype=bool)
        counts = np.asarray(support, dtype=float)
        return counts >= max(MIN_HOUR_SUPPORT_CALLS, MIN_HOUR_SUPPORT_SHARE * counts.sum())

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Rows carry `local_hour` and `weekday`; the matching smoothed rates are added when absent."""
        p = self._calibrated(self._with_slot_rates(features))
        supported = self.supported_hours
        hours = features["local_hour"].to_numpy(dtype=int)
        outside = np.flatnonzero(~supported[np.clip(hours, 0, 23)])
        if len(outside) and supported.any():
            rows = features.iloc[outside]
            known = self._predict_hours(rows, np.flatnonzero(supported), rows["weekday"].to_numpy(dtype=int))
            p[outside] = known.min(axis=1)
        return p

    def _calibrated(self, slots: pd.DataFrame) -> np.ndarray:
        """Calibrated P(RPC) of slot rows (their slot rates already picked)."""
        rate = slots[RATE_INPUT].to_numpy(dtype=float) if RATE_INPUT in slots.columns else None
        return apply_calibration(self.raw_score(slots), self.calibration, rate)

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """The trees' contributions to the raw score (a "sigmoid_with_rate" calibration adds the rate after)."""
        return super().contributions(self._with_slot_rates(features))

    def predict_hours(
        self,
        features: pd.DataFrame,
        local_hours: Sequence[int],
        weekdays: int | Sequence[int] | np.ndarray,
    ) -> np.ndarray:
        """P(RPC) for every account (row of `features`) at every debtor-local hour: shape (n, len(hours)).

        `weekdays` (0 = Monday, debtor-local): one int, one per account, or an (n, hours) array.
        Hours the training data did not support get the row's lowest supported-hour probability
        (see `supported_hours`).
        """
        hours = np.asarray(list(local_hours), dtype=int)
        out = self._predict_hours(features, hours, weekdays)
        supported = self.supported_hours
        asked_supported = supported[np.clip(hours, 0, 23)]
        if asked_supported.all() or not supported.any() or len(features) == 0:
            return out
        days = _weekday_grid(weekdays, len(features), len(hours))
        support_hours = np.flatnonzero(supported)
        inside = np.flatnonzero(asked_supported)
        every_supported_hour_asked = np.isin(support_hours, hours[inside]).all()
        for column in np.flatnonzero(~asked_supported):
            if every_supported_hour_asked and (days[:, inside] == days[:, [column]]).all():
                known = out[:, inside]  # the usual case: reuse the columns already predicted
            else:
                known = self._predict_hours(features, support_hours, np.ascontiguousarray(days[:, column]))
            out[:, column] = known.min(axis=1)
        return out

    def _predict_hours(
        self,
        features: pd.DataFrame,
        hours: np.ndarray,
        weekdays: int | Sequence[int] | np.ndarray,
    ) -> np.ndarray:
        """The model's P(RPC) at every hour, support not considered."""
        n_rows, n_hours = len(features), len(hours)
        days = _weekday_grid(weekdays, n_rows, n_hours)
        if n_rows == 0 or n_hours == 0:
            return np.zeros((n_rows, n_hours))
        # Only the model's inputs and the per-slot rate sources travel, one hour at a time: copying
        # every feature column once per hour costs gigabytes on a large book.
        slot_sources = ("rpc_rate_hour_bucket_", "rpc_rate_hour_", "rpc_mixture_hour_", "rpc_rate_weekday_")
        generated = {"local_hour", "weekday", *PICKED_SLOT_COLUMNS}
        needed = [
            column
            for column in features.columns
            if column not in generated and (column in self.feature_names or column.startswith(slot_sources))
        ]
        base = features.loc[:, needed]
        out = np.empty((n_rows, n_hours))
        if any(column in self.categories for column in SLOT_COLUMNS):  # not numeric: encode per hour
            for j, hour in enumerate(hours):
                slots = self._with_slot_rates(base.assign(local_hour=int(hour), weekday=days[:, j]))
                out[:, j] = self._calibrated(slots)
            return out
        from features.contacts import hour_bucket
        from training.snapshots import slot_rates

        # Encode the account columns once; per hour only the slot columns of the matrix change.
        matrix = self._matrix(base.assign(**dict.fromkeys(SLOT_COLUMNS, np.nan)))
        slot_position = {name: i for i, name in enumerate(self.feature_names) if name in SLOT_COLUMNS}
        for j, hour in enumerate(hours):
            hour_of_row = np.full(n_rows, int(hour))
            values = {"local_hour": hour_of_row, "weekday": days[:, j]}
            values.update(slot_rates(base, hour_of_row, np.ascontiguousarray(days[:, j]), hour_bucket))
            for name, position in slot_position.items():
                matrix[:, position] = values[name]
            raw = self._booster.predict(matrix, raw_score=True)
            out[:, j] = apply_calibration(raw, self.calibration, values[RATE_INPUT])
        return out


def _weekday_grid(weekdays: int | Sequence[int] | np.ndarray, n_rows: int, n_hours: int) -> np.ndarray:
    """Weekdays as an (n_rows, n_hours) array from one int, one per row, or the array itself."""
    days = np.asarray(weekdays, dtype=int)
    return np.broadcast_to(days.reshape(-1, 1) if days.ndim == 1 else days, (n_rows, n_hours))


class CallEffectModel(mlflow.pyfunc.PythonModel):
    """Call effect: the gain in P(repay) from reaching the debtor; LightGBM boosters as text.

    Always two outcome arms, P(repay | reached) and P(repay | not reached) (`predict_components`).
    T-learner: the uplift is their difference. X-learner (when the effect boosters are present): the
    uplift is g·effect_control + (1 - g)·effect_treated, where effect_treated is fitted on reached rows
    to y - P(repay | not reached), effect_control on the others to P(repay | reached) - y, and g is the
    propensity of being reached. Constant (`constant_effect`, when too few debtors were reached to fit
    an arm): the same uplift for everyone, and P(repay | reached) is the not-reached arm plus it.
    `predict` returns the uplift; it is observational: see `training.uplift`.
    """

    kind = "call_effect"
    EFFECT_PARTS = ("effect_treated", "effect_control", "propensity")
    # Class default keeps models pickled before X-learners existed loadable (as T-learners).
    _effects: dict[str, Any] = {}  # read-only default; instances assign their own
    # Pooled fallback (`training.uplift`): one effect for every debtor, beside the not-reached arm.
    constant_effect: float | None = None

    def __init__(
        self,
        feature_names: Sequence[str],
        categories: dict[str, list[str]],
        metadata: dict[str, Any] | None = None,
        treated_text: str | None = None,
        control_text: str | None = None,
        effect_texts: dict[str, str] | None = None,
        constant_effect: float | None = None,
    ):
        if constant_effect is not None and (treated_text or effect_texts):
            raise ValueError("a constant call effect replaces the reached arm and the effect boosters")
        self._feature_names = list(feature_names)
        self.categories = dict(categories)
        self.metadata = dict(metadata or {})
        self._treated = lgb.Booster(model_str=treated_text) if treated_text else None
        self._control = lgb.Booster(model_str=control_text) if control_text else None
        effect_texts = dict(effect_texts or {})
        if effect_texts and set(effect_texts) != set(self.EFFECT_PARTS):
            raise ValueError(f"effect boosters must be exactly {self.EFFECT_PARTS}, got {sorted(effect_texts)}")
        self._effects = {name: lgb.Booster(model_str=text) for name, text in effect_texts.items()}
        self.constant_effect = None if constant_effect is None else float(constant_effect)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_treated"] = state["_control"] = None
        # Keep which parts exist (they are reloaded from artifacts), never the boosters themselves.
        state["_effects"] = dict.fromkeys(self._effects)
        return state

    @property
    def learner(self) -> str:
        return "constant" if self.constant_effect is not None else "x" if self._effects else "t"

    def _boosters(self) -> dict[str, lgb.Booster]:
        arms = {"treated": self._treated, "control": self._control}
        return {**{name: booster for name, booster in arms.items() if booster is not None}, **self._effects}

    def artifacts(self, folder: Path) -> dict[str, str]:
        paths = {}
        for name, booster in self._boosters().items():
            paths[name] = str(Path(folder) / f"{name}.txt")
            booster.save_model(paths[name])
        return paths

    def load_context(self, context) -> None:
        if "treated" in context.artifacts:
            self._treated = lgb.Booster(model_file=context.artifacts["treated"])
        self._control = lgb.Booster(model_file=context.artifacts["control"])
        self._effects = {
            name: lgb.Booster(model_file=context.artifacts[name])
            for name in self.EFFECT_PARTS
            if name in (self.__dict__.get("_effects") or {})
        }

    @property
    def feature_names(self) -> list[str]:
        return list(self._feature_names)

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        return FeatureEncoder(self._feature_names, self.categories).transform(features)

    @property
    def treated_offset(self) -> bool:
        """Whether the reached arm was boosted from the not-reached arm's log-odds plus `treated_shift`
        (its trees hold only the rest of the difference)."""
        return bool(self.metadata.get("treated_offset", False))

    def predict_components(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(P(repay | reached), P(repay | not reached)) per row."""
        matrix = self._matrix(features)
        control_raw = self._control.predict(matrix, raw_score=True)
        control = expit(control_raw)
        if self.constant_effect is not None:
            return np.clip(control + self.constant_effect, 0.0, 1.0), control
        treated_raw = self._treated.predict(matrix, raw_score=True)
        if self.treated_offset:
            treated_raw = treated_raw + control_raw + self.metadata["treated_shift"]
        return expit(treated_raw), control

    def _x_weights(self, matrix: np.ndarray) -> np.ndarray:
        """Propensity g of being reached: the weight of the effect fitted on the not-reached rows."""
        return np.clip(self._effects["propensity"].predict(matrix), 0.0, 1.0)

    def predict_uplift(self, features: pd.DataFrame) -> np.ndarray:
        """Estimated gain in P(repay) from a right-party contact, per row (in [-1, 1])."""
        if self.constant_effect is not None:
            return np.full(len(features), self.constant_effect)
        if not self._effects:
            treated, control = self.predict_components(features)
            return treated - control
        matrix = self._matrix(features)
        weight = self._x_weights(matrix)
        effect = weight * self._effects["effect_control"].predict(matrix) + (1 - weight) * self._effects[
            "effect_treated"
        ].predict(matrix)
        return np.clip(effect, -1.0, 1.0)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Alias of `predict_uplift` so every champion answers the same call (a difference, in [-1, 1])."""
        return self.predict_uplift(features)

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the call effect: which features drive it.

        T-learner: difference of the two arms' log-odds contributions. X-learner: the propensity-
        weighted contributions of the two effect models (probability units; rows sum to the uplift
        before clipping).
        """
        if self.constant_effect is not None:  # nothing to attribute: the same effect for everyone
            values = np.zeros((len(features), len(self._feature_names) + 1))
            values[:, -1] = self.constant_effect
            return pd.DataFrame(values, columns=[*self._feature_names, "bias"], index=features.index)
        matrix = self._matrix(features)
        if not self._effects:
            # Log-odds contributions of reached minus not reached; an offset arm holds exactly that difference.
            values = predict_contributions(self._treated, matrix)
            if self.treated_offset:
                values[:, -1] += self.metadata["treated_shift"]
            else:
                values = values - predict_contributions(self._control, matrix)
        else:
            weight = self._x_weights(matrix)[:, None]
            values = weight * predict_contributions(self._effects["effect_control"], matrix) + (
                1 - weight
            ) * predict_contributions(self._effects["effect_treated"], matrix)
        return pd.DataFrame(values, columns=[*self._feature_names, "bias"], index=features.index)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.predict_uplift(model_input)
