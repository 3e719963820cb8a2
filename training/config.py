"""Training configuration: a frozen pydantic model loaded from YAML (`experiments/*.yaml`).

The resolved config is logged with every run, so a run can be repeated from its record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

from features.contract import DEFAULT_HORIZON_DAYS, load_yaml

# Every config model: unknown keys, `true` or "14" for a number, and .inf/.nan are errors, not guesses.
STRICT = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)
# Model features the encoder reads as categories (`features.build` makes them strings; a test keeps the
# two in step).
CATEGORICAL_FEATURES = frozenset({"product"})
# NumPy, scikit-learn and LightGBM all take a seed in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1


class ConfigError(ValueError):
    """A config file that is not valid YAML or not a mapping of settings; names the file and place."""


def _no_categorical(constraints: dict[str, int]) -> dict[str, int]:
    """Refuse a constraint on a categorical feature here: LightGBM would abort the whole process."""
    categorical = sorted(CATEGORICAL_FEATURES.intersection(constraints))
    if categorical:
        raise ValueError(
            f"{categorical[0]!r} is categorical: a category has no order to keep monotone (remove the key)"
        )
    return constraints


def _whole_sign(sign: Any) -> Any:
    """Refuse `true` and `-1.0` for a sign: a literal of ints takes them (True == 1), strict or not."""
    if type(sign) is not int:
        raise ValueError(f"a monotone constraint is -1 or 1, not {sign!r}")
    return sign


# Feature name -> +1 / -1, never on a categorical feature.
MonotoneConstraints = Annotated[
    dict[str, Annotated[Literal[-1, 1], BeforeValidator(_whole_sign)]], AfterValidator(_no_categorical)
]


class LightGBMParams(BaseModel):
    """The LightGBM knobs callq uses; threads are always explicit (the machine is shared)."""

    model_config = STRICT

    # With early stopping this is the most trees; the validation window picks how many are kept.
    n_estimators: int = Field(default=600, ge=1)
    early_stopping_rounds: int | None = Field(default=50, ge=1)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2)
    max_depth: int = Field(default=-1, ge=-1)
    min_child_samples: int = Field(default=100, ge=1)
    subsample: float = Field(default=0.8, gt=0, le=1)
    colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    reg_lambda: float = Field(default=1.0, ge=0)
    num_threads: int = Field(default=2, ge=1)

    def booster_params(self, seed: int, objective: str = "binary") -> dict[str, Any]:
        """Native `lightgbm.train` parameters (binary objective unless told otherwise)."""
        return {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "num_threads": self.num_threads,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }


class TuningConfig(BaseModel):
    """Optional Optuna search, scored on the validation window only (test stays untouched)."""

    model_config = STRICT

    n_trials: int = Field(default=20, ge=1)
    # Stops the search after this many seconds: how many trials fit depends on the machine, so a run with
    # it is not reproducible from its config and seed alone (the fitted parameters are logged).
    timeout_s: float | None = Field(default=None, gt=0)


class RepaymentConfig(BaseModel):
    """Repayment model: LightGBM + calibration fitted on validation."""

    model_config = STRICT

    params: LightGBMParams = LightGBMParams()
    calibration: Literal["isotonic", "sigmoid"] = "sigmoid"
    # Business priors the model must respect, feature -> +1 (never lowers) / -1 (never raises).
    # Features absent from the feature set are ignored (logged), so configs survive renames.
    monotone_constraints: MonotoneConstraints = Field(
        default_factory=lambda: {"promises_broken_90d": -1, "promise_broken_7d": -1}
    )
    tuning: TuningConfig | None = None
    # The logistic-regression baseline is fitted on a seeded uniform sample of at most this many
    # train rows: ~80 coefficients are pinned down long before a million rows, and lbfgs on all of
    # them would cost more than the LightGBM model it gates.
    baseline_max_rows: int = Field(default=300_000, ge=1000)


class ContactConfig(BaseModel):
    """Right-party-contact model; small, because serving scores it for candidates x hours."""

    model_config = STRICT

    params: LightGBMParams = LightGBMParams(
        n_estimators=150, early_stopping_rounds=30, learning_rate=0.08, num_leaves=31
    )
    # "sigmoid_with_rate": Platt scaling on the trees' score AND the debtor's own smoothed right-party rate
    # at the slot's hour (log-odds), fitted on validation (`training.models.fit_rate_calibration`). In
    # thin histories the trees' leaves are too coarse to separate the debtors who answer most; the
    # second input restores that, and in rich books it gets a weight near zero.
    calibration: Literal["isotonic", "sigmoid", "sigmoid_with_rate"] = "sigmoid_with_rate"
    # As for repayment. The answering-pattern rate at the slot's hour can only raise the chance:
    # measured on the list-quality worlds, the constraint keeps the trees from fitting noise around it.
    monotone_constraints: MonotoneConstraints = Field(default_factory=lambda: {"rpc_mixture_this_hour": 1})
    # Calls scored at serving lie in this debtor-local window; evaluation picks hours in it.
    # YAML gives a list: the tuple itself is lax, its hours strict.
    candidate_hours: tuple[Annotated[int, Strict()], ...] = Field(default=tuple(range(8, 21)), strict=False)
    tuning: TuningConfig | None = None

    @model_validator(mode="after")
    def _serving_size(self) -> ContactConfig:
        if self.params.n_estimators > 150 or self.params.num_leaves > 31:
            raise ValueError("contact model must stay small: <= 150 trees and <= 31 leaves")
        if not self.candidate_hours or any(not 0 <= hour <= 23 for hour in self.candidate_hours):
            raise ValueError("candidate_hours must be debtor-local hours 0-23")
        if len(set(self.candidate_hours)) != len(self.candidate_hours):
            repeated = sorted({hour for hour in self.candidate_hours if self.candidate_hours.count(hour) > 1})
            raise ValueError(f"candidate_hours name an hour more than once: {repeated}")
        return self


class UpliftConfig(BaseModel):
    """Call-effect (uplift) learner settings."""

    model_config = STRICT

    # "t": T-learner (difference of the two arms); "x": X-learner on top of the same arms (training.uplift).
    learner: Literal["t", "x"] = "x"
    treatment_window_days: int = Field(default=3, ge=1)
    # Boost the reached arm from the not-reached arm's log-odds ("yes"), fit it on its own ("no"), or
    # keep whichever predicts validation's reached rows better ("auto"; training.uplift._reached_arm).
    treated_offset: Literal["yes", "no", "auto"] = "auto"
    # Where too few debtors were reached to fit the reached arm, the model falls back to one effect for
    # everyone (lists then rank by P(contact) x stake): the reached-minus-not-reached repayment rate,
    # at least this much; this alone where nobody was reached.
    fallback_effect: float = Field(default=0.05, gt=0, le=1)
    params: LightGBMParams = LightGBMParams(
        n_estimators=300, early_stopping_rounds=30, num_leaves=15, min_child_samples=200, reg_lambda=5.0
    )


class TrainConfig(BaseModel):
    """Everything one `callq train` run needs; splits are in snapshots, spaced weekly."""

    model_config = STRICT

    name: str = "default"
    seed: int = Field(default=7, ge=0, le=MAX_SEED)
    horizon_days: int = Field(default=DEFAULT_HORIZON_DAYS, ge=1)
    snapshot_spacing_days: int = Field(default=7, ge=1)
    # Contact rows: outbound calls in this many days after each snapshot.
    contact_window_days: int = Field(default=7, ge=1)
    train_snapshots: int = Field(default=12, ge=1)
    validation_snapshots: int = Field(default=3, ge=1)
    test_snapshots: int = Field(default=3, ge=1)
    # Days between the last snapshot of one split and the first of the next (>= horizon).
    gap_days: int = Field(default=DEFAULT_HORIZON_DAYS, ge=1)
    # A snapshot needs this much history before it to give meaningful features.
    min_history_days: int = Field(default=28, ge=0)
    # Cap on training rows per model (uniform sample, seeded) to bound time and memory.
    max_train_rows: int = Field(default=1_500_000, ge=1000)
    # Cap on call rows (all splits, uniform seeded sample) built for the contact model.
    max_contact_rows: int = Field(default=2_000_000, ge=1000)
    # Cap on snapshot rows per as_of date (every split): a seeded uniform sample of the overdue
    # accounts, drawn before features are built; None keeps every row. 60,000 a date keeps a
    # 300,000-account book (~150,000 overdue a week) well within 10 minutes and 8 GiB on 2 cores,
    # and still gives ~180,000 test rows to the repayment model; smaller books are untouched.
    max_rows_per_snapshot: int | None = Field(default=60_000, ge=100)
    repayment: RepaymentConfig = RepaymentConfig()
    contact: ContactConfig = ContactConfig()
    uplift: UpliftConfig = UpliftConfig()
    # A candidate replaces the champion only if its test metric exceeds the champion's by this.
    promotion_margin: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _windows(self) -> TrainConfig:
        if self.gap_days < self.horizon_days:
            raise ValueError(
                f"gap_days ({self.gap_days}) must be >= horizon_days ({self.horizon_days}): "
                "label windows would overlap across splits"
            )
        if self.contact_window_days > self.horizon_days:
            raise ValueError("contact_window_days must not exceed horizon_days")
        if self.uplift.treatment_window_days > self.horizon_days:
            raise ValueError("uplift treatment window must not exceed horizon_days")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Load a YAML config; YAML errors and duplicate keys name `file:line:column`."""
        data = load_yaml(path, error=ConfigError)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping of settings (name: ..., seed: ...)")
        return cls.model_validate(data)

    def resolved(self) -> dict[str, Any]:
        """The full config as plain data, defaults included (logged with each run)."""
        return self.model_dump(mode="json")
