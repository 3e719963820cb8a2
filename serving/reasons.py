"""Reasons a collector can read: why an account is on today's list, at this place and hour.

Two sources, merged per call: business triggers read straight from the point-in-time
features (a broken promise, a promise due, payday, the slot's answer chance), and the
call-effect model's per-feature contributions (LightGBM `pred_contrib`), translated into
words. Computed for the listed calls only, never for the whole book.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

MAX_REASONS = 4
TOP_CONTRIBUTIONS = 5


# Model features → a phrase that states the account's actual value in words a collector reads,
# or None when the value says nothing worth showing. Phrases come from the value, so a reason is
# always a true statement; the contribution only decides which features are worth a reason.
def _count(value: float, one: str, many: str) -> str:
    n = int(value)
    return one if n == 1 else many.format(n=n)


FEATURE_PHRASES: dict[str, Callable[[float], str | None]] = {
    "refusals_disputes_90d": lambda v: _count(v, "refused once lately", "refused {n} times lately") if v > 0 else None,
    "rpc_promise_share": lambda v: f"promised to pay in {v:.0%} of talks" if v >= 0.3 else None,
    "rpc_refusal_share": lambda v: "never refused when reached" if v == 0 else "rarely refuses" if v <= 0.1 else None,
    "promises_kept_90d": lambda v: _count(v, "kept a promise lately", "kept {n} promises lately") if v > 0 else None,
    "promise_kept_ratio": lambda v: "usually keeps promises" if v >= 0.5 else "often breaks promises",
    "promises_broken_90d": lambda v: (
        _count(v, "broke a promise lately", "broke {n} promises lately") if v > 0 else None
    ),
    "rpc_rate_90d": lambda v: f"answers {v:.0%} of calls",  # with its counts: see COUNTED_RATES
    "rpc_rate_30d": lambda v: f"answered {v:.0%} of calls this month",
    "days_since_last_rpc": lambda v: f"not spoken to for {int(v)} days" if v >= 14 else None,
    "unanswered_streak": lambda v: f"{int(v)} unanswered calls in a row: new hour" if v >= 3 else None,
    "payments_settled_sum_30d": lambda v: f"paid {v:,.0f} in the last 30 days" if v > 0 else "no payment in 30 days",
    "payments_settled_sum_90d": lambda v: f"paid {v:,.0f} in the last 90 days" if v > 0 else "no payment in 90 days",
    "payments_partial_count_180d": lambda v: "pays in part: open to a plan" if v > 0 else None,
    "payments_returned_count_90d": lambda v: "a payment bounced lately" if v > 0 else None,
    "returned_share_180d": lambda v: "payments bounce" if v > 0.2 else None,
    "days_since_last_payment": lambda v: f"last paid {int(v)} days ago",
    "payment_lateness_trend_180d": lambda v: "payments getting later" if v > 3 else None,
    "dues_covered_share_90d": lambda v: "covered most recent dues" if v >= 0.5 else None,
    "dues_missed_in_row": lambda v: _count(v, "missed the last due", "missed {n} dues in a row") if v > 0 else None,
    "limit_use": lambda v: "near the credit limit" if v >= 0.8 else None,
    "paid_to_due_90d": lambda v: f"paid {v:.0%} of what fell due in 90 days" if v < 1 else "paid all that fell due",
    "paid_to_due_30d": lambda v: f"paid {v:.0%} of this month's due" if v < 1 else None,
    "inbound_contacts_90d": lambda v: "contacted us lately" if v > 0 else None,
    "wrong_numbers_90d": lambda v: "number doubtful (wrong number lately)" if v > 0 else None,
}


# A rate is stated with the calls it counts ("reached in 0 of 2 calls in 90 days"): a bare "answers 0%
# of calls" beside a slot's "60% answer chance" (the model's, which knows how little two calls say)
# reads as a contradiction.
COUNTED_RATES = {
    "rpc_rate_90d": ("rpc_90d", "call_attempts_90d", "in 90 days"),
    "rpc_rate_30d": ("rpc_30d", "call_attempts_30d", "this month"),
}


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _days(n: int, one: str, many: str) -> str:
    return one if n == 1 else many.format(n=n)


def trigger_reasons(row: Mapping[str, object], days_ahead: int = 0) -> list[tuple[float, str]]:
    """Business triggers for one listed call, each with a priority (higher first).

    The features count days from the export's as_of date; `days_ahead` is how many days the list
    date lies after it, so "today" and "yesterday" are the list date's, as the collector reads them.
    """
    reasons: list[tuple[float, str]] = []
    broken_ago = row.get("days_since_last_broken_promise")
    if bool(row.get("promise_broken_7d")) and pd.notna(broken_ago):
        ago = int(broken_ago) + days_ahead
        when = "today" if ago == 0 else _days(ago, "yesterday", "{n} days ago")
        reasons.append((100.0, f"promise broken {when}"))
    due_in = row.get("days_to_pending_promise")
    if pd.notna(due_in) and 0 <= due_in - days_ahead <= 2:
        when = ["today", "tomorrow", "in 2 days"][int(due_in) - days_ahead]
        reasons.append((90.0, f"promise due {when}"))
    payday_in = row.get("next_payday_in_days")
    if pd.notna(payday_in) and 0 <= payday_in - days_ahead <= 3 and (row.get("payday_concentration") or 0) >= 0.5:
        days = int(payday_in) - days_ahead
        when = "today" if days == 0 else _days(days, "in 1 day", "in {n} days")
        reasons.append((70.0, f"payday {when}"))
    hour = row.get("local_hour")
    if pd.notna(hour):
        hour = int(hour)
        chance = row.get("p_contact")
        shown = f" ({chance:.0%} answer chance)" if chance is not None and not math.isnan(chance) else ""
        reasons.append((60.0, f"best reached {hour:02d}:00–{(hour + 1) % 24:02d}:00 local{shown}"))
    dpd = row.get("days_past_due")
    if pd.notna(dpd):
        reasons.append((50.0, f"{int(dpd)} DPD and {_money(row.get('amount_overdue', 0.0))} overdue"))
    return reasons


TRIGGER_COLUMNS = (
    "promise_broken_7d",
    "days_since_last_broken_promise",
    "days_to_pending_promise",
    "next_payday_in_days",
    "payday_concentration",
    "days_past_due",
    "amount_overdue",
)


def contribution_reasons(
    names: Sequence[str], sizes: Sequence[float], features: Mapping[str, object]
) -> Iterator[tuple[float, str]]:
    """The features that raise this call's effect most, stated from their values: `names` and `sizes`
    in the order to state them (largest contribution first), read up to the first that does not raise it."""
    for name, size in zip(names, sizes, strict=True):
        if size <= 0:
            return
        value = features.get(name)
        if name not in FEATURE_PHRASES or value is None or pd.isna(value):
            continue
        reached, calls, span = COUNTED_RATES.get(name, (None, None, ""))
        if reached is not None and pd.notna(features.get(reached)) and pd.notna(features.get(calls)):
            phrase = f"reached in {int(features[reached])} of {_count(features[calls], '1 call', '{n} calls')} {span}"
        else:
            phrase = FEATURE_PHRASES[name](float(value))
        if phrase:
            yield float(size), phrase


def explain_calls(
    calls: pd.DataFrame, features: pd.DataFrame, contributions: pd.DataFrame, days_ahead: int = 0
) -> tuple[pd.Series, pd.DataFrame]:
    """Reasons (`;`-separated, aligned with `calls`) and the long table of top contributions.

    `days_ahead`: days from the export's as_of date (UTC, the features' day count) to the list date.

    `calls` has account_id, local_hour, p_contact; `features` and `contributions` are indexed by
    account_id (contributions: one column per model feature, from the call-effect model). Rows are
    read as plain records and arrays: a list of tens of thousands of calls is explained in seconds.
    """
    ids = calls["account_id"].to_numpy()
    phrase_columns = [name for name in FEATURE_PHRASES if name in features.columns]
    counts = [column for columns in COUNTED_RATES.values() for column in columns[:2]]
    wanted = [name for name in dict.fromkeys((*TRIGGER_COLUMNS, *phrase_columns, *counts)) if name in features.columns]
    records = features.reindex(ids)[wanted].to_dict("records")
    # Only features with a phrase can give a reason: each row's are sorted at once, largest first.
    names = np.asarray([column for column in contributions.columns if column in FEATURE_PHRASES], dtype=object)
    sizes = contributions.reindex(ids)[list(names)].to_numpy(dtype=float)
    order = np.argsort(-sizes, axis=1, kind="stable")
    sizes = np.take_along_axis(sizes, order, axis=1)
    hours = calls["local_hour"].to_numpy()
    chances = calls["p_contact"].to_numpy(dtype=float)
    texts = []
    for row, record in enumerate(records):
        triggers = trigger_reasons({**record, "local_hour": hours[row], "p_contact": chances[row]}, days_ahead)
        # Model reasons rank after the triggers (business rules first), by contribution size.
        from_model = contribution_reasons(names[order[row]], sizes[row], record)
        chosen: list[str] = []
        for _, text in itertools.chain(sorted(triggers, key=lambda item: -item[0]), from_model):
            if text not in chosen:
                chosen.append(text)
            if len(chosen) == MAX_REASONS:
                break
        texts.append("; ".join(chosen))
    explanations = top_contributions(contributions.loc[contributions.index.isin(ids)], features)
    return pd.Series(texts, index=calls.index, dtype="string"), explanations


def top_contributions(contributions: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The largest contributions per account in long form: account_id, feature, value, contribution."""
    columns = ["account_id", "feature", "value", "contribution"]
    if contributions.empty:
        return pd.DataFrame(columns=columns)
    names = np.asarray([column for column in contributions.columns if column != "bias"])
    values = contributions[names].to_numpy(dtype=float)
    top = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :TOP_CONTRIBUTIONS]
    rows = np.repeat(np.arange(len(values)), top.shape[1])
    picked = top.reshape(-1)
    account_ids = contributions.index.to_numpy()[rows]
    feature_names = names[picked]
    known = features.reindex(pd.unique(account_ids))
    position = known.index.get_indexer(account_ids)
    shown = np.full(len(account_ids), "", dtype=object)
    for feature in pd.unique(feature_names):  # column by column: a cell lookup per row costs seconds
        if feature in known.columns:
            where = np.flatnonzero(feature_names == feature)
            column = known[feature].to_numpy(dtype=object)
            shown[where] = [_as_text(value) for value in column[position[where]]]
    long = pd.DataFrame(
        {"account_id": account_ids, "feature": feature_names, "value": shown, "contribution": values[rows, picked]}
    )
    return long.sort_values("account_id", kind="stable").reset_index(drop=True)


def _as_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)
