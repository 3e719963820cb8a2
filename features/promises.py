"""Promise features: promises made, kept, broken and still pending, as known at as_of.

Kept rule: a promise is kept once the settled payments from its created_at up to the end of
`promised_date + GRACE_DAYS` in the debtor's zone (the debtor promised a date on their own
calendar) add up to its promised_amount; the moment that happens is
`kept_at`, computed once per promise. At a given as_of the promise is
* kept    when kept_at < as_of (payments at or after as_of are never looked at),
* broken  when not kept and its deadline (end of promised_date + grace) is at or before as_of,
* pending otherwise.
A payment may count toward several overlapping promises: each promise asks only whether the
money it promised arrived in its own window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import Export
from features.stage import Ledger
from features.timeline import (
    US_PER_DAY,
    Snapshots,
    Stream,
    account_codes,
    days_between,
    local_midnights,
    to_cents,
    to_us,
)

GRACE_DAYS = 1
PROMISE_WINDOW_DAYS = 90
BROKEN_RECENT_DAYS = 7
_NEVER = np.iinfo("int64").max


@dataclass(frozen=True)
class PromiseHistory:
    """Promises sorted by (account, created_at) with their deadline and the time they were kept."""

    stream: Stream  # columns: promised_day (µs), deadline (µs, exclusive), kept_at (µs or max int)


def build_promise_history(
    export: Export, index: pd.Index, ledger: Ledger, zone_of_account: np.ndarray, zones: list[str]
) -> PromiseHistory:
    """Work out when each promise was kept (if ever) from the settled payments in its window."""
    promises = export.promises
    account = account_codes(promises["account_id"], index)
    created = to_us(promises["created_at"])
    promised_day = to_us(promises["promised_date"])
    amount = to_cents(promises["promised_amount"])
    keep = account >= 0
    account, created, promised_day, amount = (a[keep] for a in (account, created, promised_day, amount))
    deadline = local_midnights(promised_day + (1 + GRACE_DAYS) * US_PER_DAY, zone_of_account[account], zones)
    settled = ledger.settled
    first = settled.before(account, created)  # payments at or after created_at count
    target = ledger.settled_cum[first] + amount
    # settled_cum[k] is the total through payment k-1: the payment that reaches the target is k-1.
    crossing = np.searchsorted(ledger.settled_cum, target, side="left") - 1
    inside = (crossing >= first) & (crossing < settled.end(account))
    kept_at = np.full(len(account), _NEVER, dtype="int64")
    if len(settled):
        crossing_time = settled.time[np.clip(crossing, 0, len(settled) - 1)]
        kept = inside & (crossing_time < deadline)
        kept_at[kept] = crossing_time[kept]
    stream = Stream(account, created, len(index), promised_day=promised_day, deadline=deadline, kept_at=kept_at)
    return PromiseHistory(stream)


def promise_features(history: PromiseHistory, snaps: Snapshots) -> dict[str, np.ndarray]:
    """promises_made_90d, promises_kept_90d, promises_broken_90d, promises_pending,
    days_to_pending_promise, promise_broken_7d, days_since_last_broken_promise, promise_kept_ratio."""
    stream = history.stream
    n = len(snaps)
    start = stream.start(snaps.account)
    end = stream.before(snaps.account, snaps.as_of)
    # Expand to (snapshot, promise) pairs: every promise created before the snapshot's as_of.
    lengths = end - start
    snapshot = np.repeat(np.arange(n), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    promise = np.repeat(start, lengths) + offsets
    as_of = snaps.as_of[snapshot]
    kept = stream.columns["kept_at"][promise] < as_of
    deadline = stream.columns["deadline"][promise]
    broken = ~kept & (deadline <= as_of)
    pending = ~kept & ~broken
    recent = stream.time[promise] >= as_of - PROMISE_WINDOW_DAYS * US_PER_DAY

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(snapshot[mask], minlength=n)

    pending_days = (stream.columns["promised_day"][promise] - snaps.local_day[snapshot]) // US_PER_DAY
    days_to_pending = np.full(n, np.iinfo("int64").max)
    np.minimum.at(days_to_pending, snapshot[pending], pending_days[pending])
    last_broken = np.full(n, -1, dtype="int64")
    np.maximum.at(last_broken, snapshot[broken], deadline[broken])
    kept_all, broken_all = count(kept), count(broken)
    with np.errstate(divide="ignore", invalid="ignore"):
        kept_ratio = np.where(kept_all + broken_all > 0, kept_all / (kept_all + broken_all), np.nan)
    has_broken = last_broken >= 0
    return {
        "promises_made_90d": count(recent),
        "promises_kept_90d": count(recent & kept),
        "promises_broken_90d": count(recent & broken),
        "promises_pending": count(pending),
        "days_to_pending_promise": np.where(
            days_to_pending == np.iinfo("int64").max, np.nan, days_to_pending.astype("float64")
        ),
        "promise_broken_7d": has_broken & (last_broken > snaps.as_of - BROKEN_RECENT_DAYS * US_PER_DAY),
        "days_since_last_broken_promise": days_between(snaps.as_of, last_broken, has_broken),
        "promise_kept_ratio": kept_ratio,
    }
