"""Payment features: how much and how regularly the debtor pays, and warning signs.

Each settled payment is matched, once and independent of as_of, to the due it went to:
the oldest due not fully covered by the settled payments before it (oldest-first rule), if that
due falls at most `MATCH_AHEAD_DAYS` after the payment's UTC date. An export holds the dues up to
62 days after its as_of, so every due a payment before as_of can be matched to is in the export
taken at as_of: training snapshots and today's scoring see the same matches. Lateness and whether
the payment was partial follow from that due; lateness counts debtor-local days (a payment at
19:00 in Los Angeles on its due date is on time, though the UTC date is the next day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.stage import Ledger, StageState, fallen_window_starts, first_uncovered_due
from features.timeline import US_PER_DAY, Snapshots, day_floor, days_between, local_dates

PAYMENT_WINDOWS = (30, 90, 180)
COVERAGE_WINDOWS = (90, 180)  # a subset of PAYMENT_WINDOWS: the dues windows are looked up once
PAYDAY_CYCLE = 31  # payday is a day of month 1..31 on a 31-step circle
MATCH_AHEAD_DAYS = 62  # the contract's horizon of upcoming dues


@dataclass(frozen=True)
class PaymentFacts:
    """Per settled payment (in ledger order): the due it went to, lateness, partial flag, local day."""

    has_due: np.ndarray  # bool: a due falling at most MATCH_AHEAD_DAYS later was still open when it arrived
    lateness_days: np.ndarray  # whole debtor-local days after that due's date, 0 when early; 0 where no due
    partial: np.ndarray  # bool: smaller than the amount of the due it went to
    payday_cos: np.ndarray
    payday_sin: np.ndarray


def payment_facts(ledger: Ledger, zone_of_account: np.ndarray, zones: list[str]) -> PaymentFacts:
    """Match every settled payment to its due (oldest first) and place it on the payday circle."""
    settled = ledger.settled
    account = settled.group
    position = np.arange(len(settled))
    paid_before = ledger.settled_cum[position] - ledger.settled_cum[settled.start(account)]
    due = first_uncovered_due(ledger, account, paid_before)
    has_due = due < ledger.dues.end(account)
    due = np.where(has_due, due, 0)
    local_day = local_dates(settled.time, zone_of_account[account], zones)
    lateness = np.zeros(len(settled), dtype="int64")
    partial = np.zeros(len(settled), dtype=bool)
    if len(ledger.dues):
        has_due &= ledger.dues.time[due] <= day_floor(settled.time) + MATCH_AHEAD_DAYS * US_PER_DAY
        late = (local_day - ledger.dues.time[due]) // US_PER_DAY
        lateness = np.where(has_due, np.maximum(late, 0), 0)
        partial = has_due & (settled.columns["amount"] < ledger.dues.columns["amount"][due])
    local_date = local_day.view("datetime64[us]").astype("datetime64[D]")
    day = (local_date - local_date.astype("datetime64[M]")).astype("int64") + 1
    # A fixed 31-step circle, so a day of month maps back to itself whatever the month's length.
    angle = 2.0 * np.pi * (day.astype("float64") - 1.0) / PAYDAY_CYCLE
    return PaymentFacts(has_due, lateness, partial, np.cos(angle), np.sin(angle))


def _window_sum(cum: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    return cum[end] - cum[start]


def payments_settled_and_returned(ledger: Ledger, snaps: Snapshots) -> dict[str, np.ndarray]:
    """payments_{settled,returned}_{sum,count}_{30,90,180}d: amounts and counts in each window."""
    out: dict[str, np.ndarray] = {}
    for kind, stream in (("settled", ledger.settled), ("returned", ledger.returned)):
        end, starts = stream.windows(snaps.account, snaps.as_of, PAYMENT_WINDOWS)
        cum = stream.cumulative(stream.columns["amount"])
        for days in PAYMENT_WINDOWS:
            out[f"payments_{kind}_sum_{days}d"] = _window_sum(cum, starts[days], end) / 100.0
            out[f"payments_{kind}_count_{days}d"] = end - starts[days]
    return out


def returned_share_180d(counts: dict[str, np.ndarray]) -> np.ndarray:
    """Returned / (settled + returned) payments in the last 180 days; NaN with none."""
    returned = counts["payments_returned_count_180d"]
    total = returned + counts["payments_settled_count_180d"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, returned / total, np.nan)


def dues_covered_share(state: StageState, due_starts: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """dues_covered_share_{90,180}d: share of dues fallen due in the window now fully covered."""
    out = {}
    for days in COVERAGE_WINDOWS:
        start = due_starts[days]
        in_window = state.fallen_end - start
        covered = np.clip(state.uncovered - start, 0, in_window)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"dues_covered_share_{days}d"] = np.where(in_window > 0, covered / in_window, np.nan)
    return out


def paid_to_due(
    ledger: Ledger, state: StageState, due_starts: dict[int, np.ndarray], sums: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """paid_to_due_{30,90,180}d: payments_settled_sum_{d}d / amount of the dues fallen due in the
    last d days (before the as_of date, as due_amount_mean_*); NaN when no due fell in the window."""
    out = {}
    for days in PAYMENT_WINDOWS:
        due_total = (ledger.due_cum[state.fallen_end] - ledger.due_cum[due_starts[days]]) / 100.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"paid_to_due_{days}d"] = np.where(
                due_total > 0, sums[f"payments_settled_sum_{days}d"] / due_total, np.nan
            )
    return out


def days_since_last_payment(ledger: Ledger, snaps: Snapshots) -> np.ndarray:
    """Days from the last settled payment before as_of to as_of; NaN if none."""
    end = ledger.settled.before(snaps.account, snaps.as_of)
    last = ledger.settled.last_time(snaps.account, end)
    return days_between(snaps.as_of, last, last >= 0)


def payment_lateness(ledger: Ledger, facts: PaymentFacts, snaps: Snapshots) -> dict[str, np.ndarray]:
    """payment_lateness_mean_90d and payment_lateness_trend_180d (last 90 d minus the 90 d before)."""
    stream = ledger.settled
    end, starts = stream.windows(snaps.account, snaps.as_of, (90, 180))
    late_cum = stream.cumulative(facts.lateness_days)
    count_cum = stream.cumulative(facts.has_due.astype("int64"))
    with np.errstate(divide="ignore", invalid="ignore"):
        recent_n = _window_sum(count_cum, starts[90], end)
        older_n = _window_sum(count_cum, starts[180], starts[90])
        recent = np.where(recent_n > 0, _window_sum(late_cum, starts[90], end) / recent_n, np.nan)
        older = np.where(older_n > 0, _window_sum(late_cum, starts[180], starts[90]) / older_n, np.nan)
    return {"payment_lateness_mean_90d": recent, "payment_lateness_trend_180d": recent - older}


def payments_partial_count_180d(ledger: Ledger, facts: PaymentFacts, snaps: Snapshots) -> np.ndarray:
    """Settled payments in the last 180 days smaller than the due they went to."""
    stream = ledger.settled
    end, starts = stream.windows(snaps.account, snaps.as_of, (180,))
    return _window_sum(stream.cumulative(facts.partial.astype("int64")), starts[180], end)


def payday(ledger: Ledger, facts: PaymentFacts, snaps: Snapshots) -> dict[str, np.ndarray]:
    """payday_day_of_month (circular mean of local settled-payment days), its concentration
    (mean resultant length, 0..1), and next_payday_in_days from the debtor-local date of as_of;
    NaN without payments."""
    stream = ledger.settled
    end = stream.before(snaps.account, snaps.as_of)
    start = stream.start(snaps.account)
    count = end - start
    cos_sum = _window_sum(stream.cumulative(facts.payday_cos), start, end)
    sin_sum = _window_sum(stream.cumulative(facts.payday_sin), start, end)
    has = count > 0
    angle = np.mod(np.arctan2(sin_sum, cos_sum), 2.0 * np.pi)
    # Rounded to 1e-6 first so that exact ties (two paydays half a month apart) resolve upward,
    # whatever the floating-point noise of the prefix sums.
    position = np.round(angle / (2.0 * np.pi) * PAYDAY_CYCLE, 6)
    day = np.mod(np.floor(position + 0.5).astype("int64"), PAYDAY_CYCLE) + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        concentration = np.where(has, np.hypot(cos_sum, sin_sum) / np.maximum(count, 1), np.nan)
    return {
        "payday_day_of_month": np.where(has, day, np.nan),
        "payday_concentration": np.clip(concentration, 0.0, 1.0),
        "next_payday_in_days": np.where(has, days_until_day_of_month(snaps.local_day, day), np.nan),
    }


def days_until_day_of_month(day_us: np.ndarray, day_of_month: np.ndarray) -> np.ndarray:
    """Days from each date to the next date (same day included) whose day is `day_of_month`,
    clamped to the month's length (payday 31 falls on the 30th in a 30-day month)."""
    date = day_us.view("datetime64[us]").astype("datetime64[D]")
    month = date.astype("datetime64[M]")
    today = (date - month.astype("datetime64[D]")).astype("int64") + 1
    length = (month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")
    length = length.astype("int64")
    next_length = ((month + 2).astype("datetime64[D]") - (month + 1).astype("datetime64[D]")).astype("int64")
    this_month = np.minimum(day_of_month, length)
    next_month = np.minimum(day_of_month, next_length)
    return np.where(this_month >= today, this_month - today, length - today + next_month)


def payment_features(
    ledger: Ledger, state: StageState, snaps: Snapshots, zone_of_account: np.ndarray, zones: list[str]
) -> dict[str, np.ndarray]:
    """Every payments-family column for the snapshots."""
    facts = payment_facts(ledger, zone_of_account, zones)
    out = payments_settled_and_returned(ledger, snaps)
    out["returned_share_180d"] = returned_share_180d(out)
    due_starts = fallen_window_starts(ledger, state, snaps, PAYMENT_WINDOWS)
    out.update(dues_covered_share(state, due_starts))
    out.update(paid_to_due(ledger, state, due_starts, out))
    out["days_since_last_payment"] = days_since_last_payment(ledger, snaps)
    out.update(payment_lateness(ledger, facts, snaps))
    out["payments_partial_count_180d"] = payments_partial_count_180d(ledger, facts, snaps)
    out.update(payday(ledger, facts, snaps))
    return out
