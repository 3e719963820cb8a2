"""Stage features: what is owed, since when, and how far into delinquency the account is.

Payments are applied to the oldest dues first (contract), so with cumulative sums the first
due not fully covered is one searchsorted away: the first due whose running total exceeds
everything settled before as_of. Returned payments count as not paid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import Export
from features.timeline import US_PER_DAY, Snapshots, Stream, account_codes, to_cents, to_us

STAGES = ("current", "M1", "M2", "M3", "M4", "M5", "M6", "M7+")
STAGE_BUCKETS = ("current", "early", "middle", "late", "M2", "M3", "M4", "M5", "M6", "M7+")
CYCLE_DAYS = 30


@dataclass(frozen=True)
class Ledger:
    """Dues and settled payments of every account, sorted, with exact cumulative cents."""

    dues: Stream  # time = due_date (UTC midnight), column amount (cents)
    due_cum: np.ndarray  # global prefix sums of due amounts (strictly increasing)
    settled: Stream  # time = paid_at, column amount (cents)
    settled_cum: np.ndarray  # global prefix sums of settled amounts
    returned: Stream  # time = paid_at, column amount (cents)


def build_ledger(export: Export, index: pd.Index) -> Ledger:
    """Sort dues and payments by (account, time) once for every family that needs them."""
    n = len(index)
    dues = export.dues
    due_stream = Stream(
        account_codes(dues["account_id"], index),
        to_us(dues["due_date"]),
        n,
        amount=to_cents(dues["amount_due"]),
    )
    payments = export.payments
    codes = account_codes(payments["account_id"], index)
    paid_at = to_us(payments["paid_at"])
    cents = to_cents(payments["amount"])
    settled = (payments["status"] == "settled").fillna(False).to_numpy(dtype=bool)
    settled_stream = Stream(codes[settled], paid_at[settled], n, amount=cents[settled])
    returned_stream = Stream(codes[~settled], paid_at[~settled], n, amount=cents[~settled])
    return Ledger(
        dues=due_stream,
        due_cum=due_stream.cumulative(due_stream.columns["amount"]),
        settled=settled_stream,
        settled_cum=settled_stream.cumulative(settled_stream.columns["amount"]),
        returned=returned_stream,
    )


def first_uncovered_due(ledger: Ledger, account: np.ndarray, paid_cents: np.ndarray) -> np.ndarray:
    """Global position of the account's oldest due not fully covered by `paid_cents` (oldest first).

    Equals the account's end position when every due (fallen or upcoming) is covered.
    """
    start = ledger.dues.start(account)
    target = ledger.due_cum[start] + paid_cents
    # due_cum[i + 1] is the total through due i: the first due with total > paid is uncovered.
    position = np.searchsorted(ledger.due_cum, target, side="right") - 1
    return np.minimum(np.maximum(position, start), ledger.dues.end(account))


@dataclass(frozen=True)
class StageState:
    """Per-snapshot positions shared by the stage features (and the payments family)."""

    paid_cents: np.ndarray  # settled before as_of
    fallen_end: np.ndarray  # position past the last due with due_date < as_of date
    due_start: np.ndarray  # position of the account's first due
    uncovered: np.ndarray  # position of the oldest due not fully covered


def stage_state(ledger: Ledger, snaps: Snapshots) -> StageState:
    """Where each snapshot stands in its account's due schedule."""
    settled_end = ledger.settled.before(snaps.account, snaps.as_of)
    settled_start = ledger.settled.start(snaps.account)
    paid = ledger.settled_cum[settled_end] - ledger.settled_cum[settled_start]
    return StageState(
        paid_cents=paid,
        fallen_end=ledger.dues.before(snaps.account, snaps.as_of_day),
        due_start=ledger.dues.start(snaps.account),
        uncovered=first_uncovered_due(ledger, snaps.account, paid),
    )


def amount_overdue(ledger: Ledger, state: StageState) -> np.ndarray:
    """Dues fallen due before the as_of date minus settled payments before as_of, at least 0."""
    fallen = ledger.due_cum[state.fallen_end] - ledger.due_cum[state.due_start]
    return np.maximum(fallen - state.paid_cents, 0) / 100.0


def days_past_due(ledger: Ledger, state: StageState, snaps: Snapshots) -> np.ndarray:
    """Days from the oldest fallen due not fully covered to the as_of date; 0 if current."""
    late = state.uncovered < state.fallen_end
    out = np.zeros(len(snaps), dtype="int64")
    out[late] = (snaps.as_of_day[late] - ledger.dues.time[state.uncovered[late]]) // US_PER_DAY
    return out


def oldest_unpaid_remaining(ledger: Ledger, state: StageState) -> np.ndarray:
    """Unpaid remainder of the oldest fallen due not fully covered; 0 if current."""
    late = state.uncovered < state.fallen_end
    out = np.zeros(len(late), dtype="int64")
    through = ledger.due_cum[state.uncovered[late] + 1] - ledger.due_cum[state.due_start[late]]
    out[late] = through - state.paid_cents[late]
    return out / 100.0


def dues_missed_in_row(state: StageState) -> np.ndarray:
    """Fallen dues not fully covered: with oldest-first payment they are the latest ones, in a row."""
    return np.maximum(state.fallen_end - state.uncovered, 0)


def months_delinquent(dpd: np.ndarray) -> np.ndarray:
    """30-day delinquency cycles started: 0 current, 1 for 1–30 DPD, 2 for 31–60, ..."""
    return (dpd + CYCLE_DAYS - 1) // CYCLE_DAYS


def stage(dpd: np.ndarray) -> pd.Categorical:
    """`current`, `M1`…`M6` by 30-day cycles, `M7+` past 180 DPD."""
    codes = np.minimum(months_delinquent(dpd), len(STAGES) - 1)
    return pd.Categorical.from_codes(codes, categories=list(STAGES))


def stage_bucket(dpd: np.ndarray) -> pd.Categorical:
    """`current`, `early` (1–5 DPD), `middle` (6–18), `late` (19–30), then `M2`…`M6`, `M7+`."""
    cycles = np.minimum(months_delinquent(dpd), 7)
    first_cycle = np.select([dpd <= 0, dpd <= 5, dpd <= 18], [0, 1, 2], default=3)
    codes = np.where(cycles <= 1, first_cycle, cycles + 2)
    return pd.Categorical.from_codes(codes, categories=list(STAGE_BUCKETS))


def per_limit(amount: np.ndarray, credit_limit: np.ndarray) -> np.ndarray:
    """amount / credit_limit (limit_use, due-to-limit); NaN without a positive credit limit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(credit_limit > 0, amount / credit_limit, np.nan)


def account_age_days(opened_us: np.ndarray, snaps: Snapshots) -> np.ndarray:
    """Whole days from the opening date to the as_of date."""
    return (snaps.as_of_day - opened_us) // US_PER_DAY


def fallen_window_starts(
    ledger: Ledger, state: StageState, snaps: Snapshots, windows: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """Position of the first due of each window: the dues fallen due in the last `days` days
    (as_of date - days <= due_date < as_of date) are [start, fallen_end)."""
    n = len(snaps)
    starts = ledger.dues.before(
        np.tile(snaps.account, len(windows)),
        np.concatenate([snaps.as_of_day - days * US_PER_DAY for days in windows]),
    )
    return {days: np.minimum(starts[i * n : (i + 1) * n], state.fallen_end) for i, days in enumerate(windows)}


def due_amounts(ledger: Ledger, state: StageState, snaps: Snapshots) -> dict[str, np.ndarray]:
    """Size of the dues fallen due recently: due_amount_mean_{90,180}d, due_amount_trend_180d, overdue_in_dues.

    The instalment or minimum due tracks the debt's size (a card's minimum is a share of the
    statement), and a growing due is a warning sign; `overdue_in_dues` counts the overdue amount in
    typical dues.
    """
    starts = fallen_window_starts(ledger, state, snaps, (90, 180))
    means = {}
    for days, start in starts.items():
        count = state.fallen_end - start
        total = ledger.due_cum[state.fallen_end] - ledger.due_cum[start]
        with np.errstate(divide="ignore", invalid="ignore"):
            means[days] = np.where(count > 0, total / np.maximum(count, 1) / 100.0, np.nan)
    start_90, start_180 = starts[90], starts[180]
    count_old = start_90 - start_180
    total_old = ledger.due_cum[start_90] - ledger.due_cum[start_180]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_old = np.where(count_old > 0, total_old / np.maximum(count_old, 1) / 100.0, np.nan)
        overdue_in_dues = np.where(means[180] > 0, amount_overdue(ledger, state) / means[180], np.nan)
    return {
        "due_amount_mean_90d": means[90],
        "due_amount_mean_180d": means[180],
        "due_amount_trend_180d": means[90] - mean_old,
        "overdue_in_dues": overdue_in_dues,
    }


def last_due_amount(ledger: Ledger, state: StageState) -> np.ndarray:
    """Amount of the latest due fallen due before the as_of date; NaN if none."""
    has = state.fallen_end > state.due_start
    amount = np.full(len(has), np.nan)
    amount[has] = ledger.dues.columns["amount"][state.fallen_end[has] - 1] / 100.0
    return amount


def next_due(ledger: Ledger, state: StageState, snaps: Snapshots) -> tuple[np.ndarray, np.ndarray]:
    """Days until the next due on or after the as_of date, and its amount (NaN when none)."""
    has = state.fallen_end < ledger.dues.end(snaps.account)
    days = np.full(len(snaps), np.nan)
    amount = np.full(len(snaps), np.nan)
    position = state.fallen_end[has]
    days[has] = (ledger.dues.time[position] - snaps.as_of_day[has]) // US_PER_DAY
    amount[has] = ledger.dues.columns["amount"][position] / 100.0
    return days, amount


def stage_features(ledger: Ledger, state: StageState, accounts: pd.DataFrame, snaps: Snapshots) -> dict[str, object]:
    """Every stage-family column for the snapshots."""
    rows = snaps.account
    overdue = amount_overdue(ledger, state)
    dpd = days_past_due(ledger, state, snaps)
    credit_limit = accounts["credit_limit"].to_numpy(dtype="float64", na_value=np.nan)[rows]
    products = accounts["product"].astype("string").fillna("unknown")
    categories = sorted(products.unique())
    next_days, next_amount = next_due(ledger, state, snaps)
    return {
        "amount_overdue": overdue,
        "days_past_due": dpd,
        "oldest_unpaid_remaining": oldest_unpaid_remaining(ledger, state),
        "stage": stage(dpd),
        "stage_bucket": stage_bucket(dpd),
        "months_delinquent": months_delinquent(dpd),
        "dues_missed_in_row": dues_missed_in_row(state),
        "product": pd.Categorical(products.to_numpy()[rows], categories=categories),
        "limit_use": per_limit(overdue, credit_limit),
        "credit_limit": credit_limit,
        "account_age_days": account_age_days(to_us(accounts["opened_date"])[rows], snaps),
        "next_due_in_days": next_days,
        "next_due_amount": next_amount,
        **due_amounts(ledger, state, snaps),
        "last_due_to_limit": per_limit(last_due_amount(ledger, state), credit_limit),
        "next_due_to_limit": per_limit(next_amount, credit_limit),
    }
