"""Right-party-contact model: P(the debtor answers | account features, debtor-local hour, weekday).

Rows are historical outbound calls in the week after each snapshot, with that snapshot's
features. Compared on the test window with the collectors' rule (the portfolio's best hour
per weekday, from train) and each debtor's raw historical best hour, by ROC AUC and by a
replay estimate of the right-party rate each method's chosen hours would have reached. A model
clearly worse than either baseline on test ROC AUC fails the run, as the repayment model's gate does
(`training.repayment.gate_baseline`); a tie within the test window's noise is noted in the report.

Replay estimator: for each held-out account-day, every method picks one hour; the estimate
is the right-party rate among the held-out calls that happened to be placed in that hour.
It is unbiased for the rate of the method's hours only when the historical hour of a call
does not depend on the debtor's unobserved answering pattern beyond the features, e.g.
when call hours were partly random (as in the simulator and in dialers that spread load).
Where collectors already called debtors at hours known to work, it flatters every method
that agrees with them. `matched_calls` says how many calls each estimate rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.config import LightGBMParams, TrainConfig
from training.evaluation import binary_metrics
from training.models import RATE_INPUT, SLOT_COLUMNS, ContactModel, LightGBMClassifier, fit_rate_calibration
from training.repayment import ModelQualityError, gate_baseline, monotone_for, sample_rows
from training.snapshots import TrainingData, local_hour_weekday
from training.tuning import fit_calibrated

LABEL = "label_rpc"
# Smoothing of raw per-hour rates toward the portfolio rate, in pseudo-calls.
PRIOR_CALLS = 5.0


@dataclass
class ContactFit:
    """A fitted contact model and what it measured."""

    model: ContactModel
    params: LightGBMParams
    metrics: dict[str, float]
    heatmap: pd.DataFrame  # observed right-party rate, weekday x local hour (all labelled calls)
    importance: pd.Series
    notes: list[str] = field(default_factory=list)


def portfolio_rates(calls: pd.DataFrame) -> pd.DataFrame:
    """Right-party rate per (weekday, local_hour) over the given calls: the collectors' rule table."""
    return calls.groupby(["weekday", "local_hour"], observed=True)[LABEL].agg(["mean", "size"]).reset_index()


def heatmap(calls: pd.DataFrame) -> pd.DataFrame:
    """Weekday (rows, 0 = Monday) x local hour (columns) right-party rate."""
    table = portfolio_rates(calls)
    return table.pivot(index="weekday", columns="local_hour", values="mean").sort_index()


def debtor_hour_rates(history: pd.DataFrame, portfolio_hour: pd.Series) -> pd.DataFrame:
    """Each debtor's smoothed right-party rate per local hour, from their own past calls."""
    grouped = history.groupby(["account_id", "local_hour"], observed=True)[LABEL].agg(["sum", "size"]).reset_index()
    prior = grouped["local_hour"].map(portfolio_hour).fillna(portfolio_hour.mean()).to_numpy()
    grouped["rate"] = (grouped["sum"] + PRIOR_CALLS * prior) / (grouped["size"] + PRIOR_CALLS)
    return grouped[["account_id", "local_hour", "rate"]]


def _score_by_lookup(calls: pd.DataFrame, table: pd.DataFrame, keys: list[str], fallback: float) -> np.ndarray:
    merged = calls[keys].merge(table, on=keys, how="left")
    return merged.iloc[:, -1].astype(float).fillna(fallback).to_numpy()


def replay_rates(held_out: pd.DataFrame, chosen_hour: pd.Series) -> tuple[float, int]:
    """Right-party rate of held-out calls placed in the hour chosen for their account-day."""
    hour = held_out["account_day"].map(chosen_hour)
    matched = held_out[held_out["local_hour"].to_numpy() == hour.to_numpy()]
    return (float(matched[LABEL].mean()) if len(matched) else float("nan")), len(matched)


def history_calls(export, before: pd.Timestamp, accounts: pd.Series) -> pd.DataFrame:
    """Every outbound call of `accounts` strictly before `before`, with local hour and RPC label."""
    from features.contract import RIGHT_PARTY_OUTCOMES

    contacts = export.contacts
    calls = contacts.loc[
        (contacts["channel"] == "call")
        & (contacts["direction"] == "outbound")
        & (contacts["started_at"] < before)
        & contacts["account_id"].isin(accounts.unique()),
        ["account_id", "started_at", "outcome"],
    ]
    zones = calls["account_id"].map(export.accounts.set_index("account_id")["timezone"])
    hours, weekdays = local_hour_weekday(calls["started_at"], zones)
    return pd.DataFrame(
        {
            "account_id": calls["account_id"].to_numpy(),
            "local_hour": hours,
            "weekday": weekdays,
            LABEL: calls["outcome"].isin(RIGHT_PARTY_OUTCOMES).to_numpy().astype(np.int8),
        }
    )


def fit_contact(data: TrainingData, config: TrainConfig, export) -> ContactFit:
    """Fit (train), calibrate (validation) and evaluate (test) the right-party-contact model."""
    calls = data.contacts
    frames = {name: calls[calls["split"] == name] for name in ("train", "validation", "test")}
    for name, frame in frames.items():
        if len(frame) == 0:
            dates = getattr(data.splits, name)
            raise ModelQualityError(
                f"contact: no outbound call in the {name} window (snapshots {min(dates):%Y-%m-%d} to "
                f"{max(dates):%Y-%m-%d}); the contact model learns from calls in every window: was calling "
                "paused? Train on an export whose last weeks hold calls"
            )
        if frame[LABEL].nunique() < 2:
            if frame[LABEL].any():
                raise ModelQualityError(
                    f"contact: every one of the {len(frame)} outbound calls in the {name} window reached the "
                    "debtor: nothing to learn from"
                )
            raise ModelQualityError(
                f"contact: none of the {len(frame)} outbound calls in the {name} window reached the debtor "
                "(no right-party outcome): nothing to learn from"
            )
    train = sample_rows(frames["train"], config.max_train_rows, config.seed)
    validation, test = frames["validation"], frames["test"]
    features = [*data.feature_names, *SLOT_COLUMNS]
    constraints, notes = monotone_for(features, config.contact.monotone_constraints)

    def fit(params: LightGBMParams) -> LightGBMClassifier:
        return LightGBMClassifier(features, params, config.seed, constraints).fit(
            train, train[LABEL], eval_set=(validation, validation[LABEL])
        )

    with_rate = config.contact.calibration == "sigmoid_with_rate"
    estimator, calibration, params = fit_calibrated(
        fit,
        config.contact.params,
        config.contact.tuning,
        None if with_rate else config.contact.calibration,
        validation,
        validation[LABEL].to_numpy(),
        notes,
        seed=config.seed,
        max_trees=150,
        max_leaves=31,
    )
    if with_rate:
        calibration = fit_rate_calibration(
            estimator.decision_function(validation), validation[RATE_INPUT], validation[LABEL]
        )
        notes.append(
            f"calibration on validation: {calibration['a']:.3f} x trees' score + {calibration['a_rate']:.3f} x "
            f"log-odds of the debtor's own rate at the hour ({RATE_INPUT})"
        )
    model = ContactModel.from_estimator(
        estimator,
        calibration=calibration,
        metadata={
            "label": LABEL,
            "candidate_hours": list(config.contact.candidate_hours),
            "monotone_constraints": constraints,
            # Training calls per debtor-local hour: where the model has evidence (`supported_hours`).
            "hour_support": np.bincount(frames["train"]["local_hour"].to_numpy(dtype=int), minlength=24).tolist(),
        },
    )

    labels = test[LABEL].to_numpy()
    probabilities = model.predict_proba(test)
    metrics = binary_metrics(labels, probabilities, prefix="test_")

    # Baselines. Collectors' rule: portfolio rate of (weekday, hour) on train calls.
    rule = portfolio_rates(train)[["weekday", "local_hour", "mean"]]
    base_rate = float(train[LABEL].mean())
    rule_score = _score_by_lookup(test, rule, ["weekday", "local_hour"], base_rate)
    metrics["baseline_rule_roc_auc"] = binary_metrics(labels, rule_score)["roc_auc"]
    # Debtor's raw history: every call before the test window starts (validation included).
    test_start = min(data.splits.test)
    history = history_calls(export, test_start, test["account_id"])
    portfolio_hour = train.groupby("local_hour")[LABEL].mean()
    debtor = debtor_hour_rates(history, portfolio_hour)
    debtor_score = _score_by_lookup(test, debtor, ["account_id", "local_hour"], np.nan)
    debtor_score = np.where(
        np.isnan(debtor_score),
        test["local_hour"].map(portfolio_hour).fillna(base_rate).to_numpy(),
        debtor_score,
    )
    metrics["baseline_debtor_roc_auc"] = binary_metrics(labels, debtor_score)["roc_auc"]
    # As the repayment model's: clearly worse than a baseline fails the run, a tie within noise is noted.
    for baseline, scores in (("baseline_rule_", rule_score), ("baseline_debtor_", debtor_score)):
        gate_baseline(
            metrics, baseline, labels, probabilities, scores, test["account_id"], config.seed, notes, model="contact"
        )

    metrics.update(replay_metrics(model, test, rule, debtor, portfolio_hour, config, export))
    importance = pd.Series(
        estimator.booster_.feature_importance(importance_type="gain"), index=model.feature_names, name="gain"
    ).sort_values(ascending=False)
    return ContactFit(
        model=model,
        params=params,
        metrics=metrics,
        heatmap=heatmap(calls),
        importance=importance,
        notes=notes,
    )


def replay_metrics(
    model: ContactModel,
    test: pd.DataFrame,
    rule: pd.DataFrame,
    debtor: pd.DataFrame,
    portfolio_hour: pd.Series,
    config: TrainConfig,
    export,
) -> dict[str, float]:
    """Replay right-party rate of each method's chosen hour per held-out account-day (see module doc)."""
    hours = np.asarray(config.contact.candidate_hours, dtype=int)
    zones = test["account_id"].map(export.accounts.set_index("account_id")["timezone"]).astype(str)
    local_dates = np.empty(len(test), dtype="datetime64[D]")
    instants = pd.DatetimeIndex(test["started_at"])
    for zone in pd.unique(zones):
        mask = (zones == zone).to_numpy()
        local_dates[mask] = instants[mask].tz_convert(zone).tz_localize(None).to_numpy().astype("datetime64[D]")
    held_out = test.assign(local_date=local_dates)
    held_out["account_day"] = held_out["account_id"].astype(str) + "|" + held_out["local_date"].astype(str)

    days = held_out.drop_duplicates("account_day")
    by_model = model.predict_hours(days, hours, days["weekday"].to_numpy())
    chosen = {"model": pd.Series(hours[np.argmax(by_model, axis=1)], index=days["account_day"].to_numpy())}

    rule_table = rule.pivot(index="weekday", columns="local_hour", values="mean").reindex(columns=hours)
    best_by_weekday = rule_table.fillna(-1).idxmax(axis=1)
    fallback_hour = int(portfolio_hour.reindex(hours).fillna(-1).idxmax())
    chosen["rule"] = pd.Series(
        days["weekday"].map(best_by_weekday).fillna(fallback_hour).astype(int).to_numpy(),
        index=days["account_day"].to_numpy(),
    )
    own = debtor[debtor["local_hour"].isin(hours)].sort_values(
        ["account_id", "rate", "local_hour"], ascending=[True, False, True]
    )
    own_best = own.drop_duplicates("account_id").set_index("account_id")["local_hour"]
    chosen["debtor"] = pd.Series(
        days["account_id"].map(own_best).fillna(fallback_hour).astype(int).to_numpy(),
        index=days["account_day"].to_numpy(),
    )
    metrics = {
        "replay_as_placed_rpc_rate": float(held_out[LABEL].mean()),
        "replay_account_days": float(len(days)),
    }
    for name, hour in chosen.items():
        rate, matched = replay_rates(held_out, hour)
        metrics[f"replay_{name}_rpc_rate"] = rate
        metrics[f"replay_{name}_matched_calls"] = float(matched)
    return metrics
