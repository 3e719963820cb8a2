"""A naive per-snapshot oracle for build_features: plain Python loops, straight from the definitions.

Slow on purpose and written without the vectorised code's tricks (no cumulative sums, no
searchsorted): it allocates payments to dues one by one, walks contacts in time order, and
converts times with zoneinfo row by row.
"""

from __future__ import annotations

import datetime as dt
import math
from calendar import monthrange
from zoneinfo import ZoneInfo

import pandas as pd

import features.contacts as contacts_module
from features.contract import FLAG_COLUMNS, Export

DAY = dt.timedelta(days=1)
RPC = {"right_party", "promise_to_pay", "refused", "dispute"}


def _cents(x: float) -> int:
    return int(round(x * 100))


def _bucket(hour: int) -> int:
    if 8 <= hour < 10:
        return 0
    if 10 <= hour < 12:
        return 1
    if 12 <= hour < 14:
        return 2
    if 14 <= hour < 17:
        return 3
    if 17 <= hour < 19:
        return 4
    if 19 <= hour < 22:
        return 5
    return 6


def _days(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds() / 86_400


def _stage(dpd: int) -> tuple[str, str, int]:
    months = math.ceil(dpd / 30)
    if dpd == 0:
        return "current", "current", 0
    stage = f"M{months}" if months <= 6 else "M7+"
    if months == 1:
        bucket = "early" if dpd <= 5 else ("middle" if dpd <= 18 else "late")
    else:
        bucket = stage
    return stage, bucket, months


def _records(frame: pd.DataFrame) -> list[dict]:
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.to_pydatetime()
    return rows


def _as_date(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _allocate(dues: list[dict], payments: list[dict]) -> tuple[list[int], list[dict]]:
    """Apply payments (time order) to dues (date order), oldest first: remaining cents per due,
    and for each payment the due it went to (the oldest one still open when it arrived)."""
    remaining = [_cents(d["amount_due"]) for d in dues]
    went_to = []
    for payment in payments:
        target = next((i for i, left in enumerate(remaining) if left > 0), None)
        # Matched only to a due at most 62 days after the payment's UTC date (the export's horizon).
        horizon = payment["paid_at"].astimezone(dt.UTC).date() + dt.timedelta(days=62)
        went_to.append(target if target is not None and _as_date(dues[target]["due_date"]) <= horizon else None)
        money = _cents(payment["amount"])
        for i in range(len(remaining)):
            if money == 0:
                break
            take = min(money, remaining[i])
            remaining[i] -= take
            money -= take
    return remaining, went_to


def _pattern_posterior(weights: list[float], patterns: list[list[float]], calls: list[list[int]]) -> list[float]:
    """P(pattern | a customer's (attempts, reached) per hour), by Bayes' rule."""
    logs = []
    for weight, rates in zip(weights, patterns, strict=True):
        log = math.log(max(weight, 1e-300))
        for (attempts, reached), rate in zip(calls, rates, strict=True):
            log += reached * math.log(rate) + (attempts - reached) * math.log1p(-rate)
        logs.append(log)
    top = max(logs)
    odds = [math.exp(log - top) for log in logs]
    return [value / sum(odds) for value in odds]


def _fit_mixture(customers: list[list[list[int]]]) -> tuple[list[float], list[list[float]]]:
    """EM for the mixture of per-hour binomials (features.contacts.AnswerMixture), one customer at a time."""
    from features.contacts import (
        MIXTURE_COMPONENTS,
        MIXTURE_ITERATIONS,
        MIXTURE_MAX_RATE,
        MIXTURE_MIN_RATE,
        MIXTURE_PRIOR_ATTEMPTS,
        MIXTURE_START_JITTER,
        MIXTURE_START_LEVELS,
    )

    def clip(rate: float) -> float:
        return min(max(rate, MIXTURE_MIN_RATE), MIXTURE_MAX_RATE)

    hour_attempts = [sum(c[h][0] for c in customers) for h in range(24)]
    hour_reached = [sum(c[h][1] for c in customers) for h in range(24)]
    overall = sum(hour_reached) / sum(hour_attempts) if sum(hour_attempts) else 0.0
    portfolio = [hour_reached[h] / hour_attempts[h] if hour_attempts[h] else overall for h in range(24)]
    weights = [1.0 / MIXTURE_COMPONENTS] * MIXTURE_COMPONENTS
    patterns = [
        [clip(portfolio[h] * MIXTURE_START_LEVELS[k] * MIXTURE_START_JITTER[k, h]) for h in range(24)]
        for k in range(MIXTURE_COMPONENTS)
    ]
    if not customers:
        return weights, patterns
    for _ in range(MIXTURE_ITERATIONS):
        posteriors = [_pattern_posterior(weights, patterns, c) for c in customers]
        weights = [sum(p[k] for p in posteriors) / len(customers) for k in range(MIXTURE_COMPONENTS)]
        patterns = [
            [
                clip(
                    (
                        sum(p[k] * c[h][1] for p, c in zip(posteriors, customers, strict=True))
                        + MIXTURE_PRIOR_ATTEMPTS * portfolio[h]
                    )
                    / (sum(p[k] * c[h][0] for p, c in zip(posteriors, customers, strict=True)) + MIXTURE_PRIOR_ATTEMPTS)
                )
                for h in range(24)
            ]
            for k in range(MIXTURE_COMPONENTS)
        ]
    return weights, patterns


def reference_row(
    tables: dict[str, list[dict]], accounts: dict[str, dict], account_id: str, as_of: dt.datetime
) -> dict:
    account = accounts[account_id]
    zone = ZoneInfo(account["timezone"])
    as_of_date = as_of.astimezone(dt.UTC).date()
    row: dict = {"account_id": account_id, "as_of": as_of}

    # Stage ---------------------------------------------------------------------------
    dues = sorted((d for d in tables["dues"] if d["account_id"] == account_id), key=lambda d: _as_date(d["due_date"]))
    mine_payments = [p for p in tables["payments"] if p["account_id"] == account_id and p["paid_at"] < as_of]
    settled = sorted((p for p in mine_payments if p["status"] == "settled"), key=lambda p: p["paid_at"])
    returned = [p for p in mine_payments if p["status"] == "returned"]
    remaining, went_to = _allocate(dues, settled)
    fallen = [i for i, d in enumerate(dues) if _as_date(d["due_date"]) < as_of_date]
    paid = sum(_cents(p["amount"]) for p in settled)
    overdue = max(0, sum(_cents(dues[i]["amount_due"]) for i in fallen) - paid)
    open_fallen = [i for i in fallen if remaining[i] > 0]
    dpd = (as_of_date - _as_date(dues[open_fallen[0]]["due_date"])).days if open_fallen else 0
    row["amount_overdue"] = overdue / 100
    row["days_past_due"] = dpd
    row["oldest_unpaid_remaining"] = remaining[open_fallen[0]] / 100 if open_fallen else 0.0
    row["stage"], row["stage_bucket"], row["months_delinquent"] = _stage(dpd)
    streak = 0
    for i in reversed(fallen):
        if remaining[i] == 0:
            break
        streak += 1
    row["dues_missed_in_row"] = streak
    row["product"] = account["product"]
    limit = account["credit_limit"]
    row["limit_use"] = overdue / 100 / limit if limit is not None and limit > 0 else math.nan
    row["credit_limit"] = limit if limit is not None else math.nan
    row["account_age_days"] = (as_of_date - _as_date(account["opened_date"])).days
    upcoming = [d for d in dues if _as_date(d["due_date"]) >= as_of_date]
    row["next_due_in_days"] = (_as_date(upcoming[0]["due_date"]) - as_of_date).days if upcoming else math.nan
    row["next_due_amount"] = upcoming[0]["amount_due"] if upcoming else math.nan

    def due_mean(newest_days: int, oldest_days: int) -> float:
        oldest, newest = as_of_date - oldest_days * DAY, as_of_date - newest_days * DAY
        amounts = [d["amount_due"] for d in dues if oldest <= _as_date(d["due_date"]) < newest]
        return sum(amounts) / len(amounts) if amounts else math.nan

    row["due_amount_mean_90d"] = due_mean(0, 90)
    row["due_amount_mean_180d"] = due_mean(0, 180)
    row["due_amount_trend_180d"] = row["due_amount_mean_90d"] - due_mean(90, 180)
    mean_180 = row["due_amount_mean_180d"]
    row["overdue_in_dues"] = overdue / 100 / mean_180 if mean_180 == mean_180 and mean_180 > 0 else math.nan
    has_limit = limit is not None and limit > 0
    last_fallen = dues[fallen[-1]]["amount_due"] if fallen else None
    row["last_due_to_limit"] = last_fallen / limit if has_limit and last_fallen is not None else math.nan
    row["next_due_to_limit"] = upcoming[0]["amount_due"] / limit if has_limit and upcoming else math.nan

    # Payments ------------------------------------------------------------------------
    for kind, items in (("settled", settled), ("returned", returned)):
        for days in (30, 90, 180):
            inside = [p for p in items if p["paid_at"] >= as_of - days * DAY]
            row[f"payments_{kind}_sum_{days}d"] = sum(_cents(p["amount"]) for p in inside) / 100
            row[f"payments_{kind}_count_{days}d"] = len(inside)
    total = row["payments_settled_count_180d"] + row["payments_returned_count_180d"]
    row["returned_share_180d"] = row["payments_returned_count_180d"] / total if total else math.nan
    for days in (90, 180):
        start = as_of_date - dt.timedelta(days=days)
        window = [i for i in fallen if _as_date(dues[i]["due_date"]) >= start]
        covered = [i for i in window if remaining[i] == 0]
        row[f"dues_covered_share_{days}d"] = len(covered) / len(window) if window else math.nan
    for days in (30, 90, 180):
        start = as_of_date - dt.timedelta(days=days)
        due_cents = sum(_cents(dues[i]["amount_due"]) for i in fallen if _as_date(dues[i]["due_date"]) >= start)
        paid_cents = sum(_cents(p["amount"]) for p in settled if p["paid_at"] >= as_of - days * DAY)
        row[f"paid_to_due_{days}d"] = paid_cents / due_cents if due_cents else math.nan
    row["days_since_last_payment"] = _days(as_of, settled[-1]["paid_at"]) if settled else math.nan
    recent, older, partial = [], [], 0
    for payment, due in zip(settled, went_to, strict=True):
        if due is None:
            continue
        late = max(0, (payment["paid_at"].astimezone(zone).date() - _as_date(dues[due]["due_date"])).days)
        if payment["paid_at"] >= as_of - 90 * DAY:
            recent.append(late)
        elif payment["paid_at"] >= as_of - 180 * DAY:
            older.append(late)
        if payment["paid_at"] >= as_of - 180 * DAY and _cents(payment["amount"]) < _cents(dues[due]["amount_due"]):
            partial += 1
    mean_recent = sum(recent) / len(recent) if recent else math.nan
    mean_older = sum(older) / len(older) if older else math.nan
    row["payment_lateness_mean_90d"] = mean_recent
    row["payment_lateness_trend_180d"] = mean_recent - mean_older
    row["payments_partial_count_180d"] = partial
    if settled:
        xs, ys = 0.0, 0.0
        for payment in settled:
            local = payment["paid_at"].astimezone(zone)
            angle = 2 * math.pi * (local.day - 1) / 31
            xs, ys = xs + math.cos(angle), ys + math.sin(angle)
        mean_angle = math.atan2(ys, xs) % (2 * math.pi)
        payday = math.floor(round(mean_angle / (2 * math.pi) * 31, 6) + 0.5) % 31 + 1
        row["payday_day_of_month"] = payday
        row["payday_concentration"] = min(1.0, math.hypot(xs, ys) / len(settled))
        day = local_as_of_date = as_of.astimezone(zone).date()
        while day.day != min(payday, monthrange(day.year, day.month)[1]):
            day += DAY
        row["next_payday_in_days"] = (day - local_as_of_date).days
    else:
        row["payday_day_of_month"] = row["payday_concentration"] = row["next_payday_in_days"] = math.nan

    # Contacts ------------------------------------------------------------------------
    contacts = sorted(
        (c for c in tables["contacts"] if c["account_id"] == account_id and c["started_at"] < as_of),
        key=lambda c: c["started_at"],
    )
    calls = [c for c in contacts if c["channel"] == "call" and c["direction"] == "outbound"]
    for days in (7, 30, 90):
        inside = [c for c in calls if c["started_at"] >= as_of - days * DAY]
        reached = sum(c["outcome"] in RPC for c in inside)
        row[f"call_attempts_{days}d"] = len(inside)
        row[f"rpc_{days}d"] = reached
        row[f"rpc_rate_{days}d"] = reached / len(inside) if inside else math.nan
    rpcs = [c for c in calls if c["outcome"] in RPC]
    row["days_since_last_rpc"] = _days(as_of, rpcs[-1]["started_at"]) if rpcs else math.nan
    row["days_since_last_call_attempt"] = _days(as_of, calls[-1]["started_at"]) if calls else math.nan
    unanswered = 0
    for call in reversed(calls):
        if call["outcome"] in RPC:
            break
        unanswered += 1
    row["unanswered_streak"] = unanswered
    last90 = [c for c in contacts if c["started_at"] >= as_of - 90 * DAY]
    row["wrong_numbers_90d"] = sum(c["outcome"] == "wrong_number" for c in last90)
    row["inbound_contacts_90d"] = sum(c["direction"] == "inbound" for c in last90)
    row["refusals_disputes_90d"] = sum(c["outcome"] in ("refused", "dispute") for c in last90)
    promised = sum(c["outcome"] == "promise_to_pay" for c in rpcs)
    refused = sum(c["outcome"] in ("refused", "dispute") for c in rpcs)
    row["rpc_promise_share"] = promised / len(rpcs) if rpcs else math.nan
    row["rpc_refusal_share"] = refused / len(rpcs) if rpcs else math.nan

    def local(call: dict) -> dt.datetime:
        return call["started_at"].astimezone(ZoneInfo(accounts[call["account_id"]]["timezone"]))

    everyone = [
        c
        for c in tables["contacts"]
        if c["channel"] == "call" and c["direction"] == "outbound" and c["started_at"] < as_of
    ]
    overall = sum(c["outcome"] in RPC for c in everyone) / len(everyone) if everyone else math.nan
    for name, part, count in (
        ("hour_bucket", lambda c: _bucket(local(c).hour), 7),
        ("weekday", lambda c: local(c).weekday(), 7),
    ):
        for value in range(count):
            pool = [c for c in everyone if part(c) == value]
            prior = sum(c["outcome"] in RPC for c in pool) / len(pool) if pool else overall
            own = [c for c in calls if part(c) == value]
            row[f"rpc_rate_{name}_{value}"] = (sum(c["outcome"] in RPC for c in own) + 5 * prior) / (len(own) + 5)
    # Exact-hour rates over every call to the customer's accounts, shrunk hour -> bucket -> level.
    customer = account["customer_id"]
    theirs = [c for c in everyone if accounts[c["account_id"]]["customer_id"] == customer]

    def rate_of(pool: list[dict], fallback: float) -> float:
        return sum(c["outcome"] in RPC for c in pool) / len(pool) if pool else fallback

    level = (sum(c["outcome"] in RPC for c in theirs) + 5 * overall) / (len(theirs) + 5) / max(overall, 1e-9)
    for hour in range(24):
        bucket = _bucket(hour)
        portfolio_bucket = rate_of([c for c in everyone if _bucket(local(c).hour) == bucket], overall)
        portfolio_hour = rate_of([c for c in everyone if local(c).hour == hour], portfolio_bucket)
        own_bucket = [c for c in theirs if _bucket(local(c).hour) == bucket]
        bucket_rate = (sum(c["outcome"] in RPC for c in own_bucket) + 5 * min(portfolio_bucket * level, 1.0)) / (
            len(own_bucket) + 5
        )
        prior = min(bucket_rate * portfolio_hour / max(portfolio_bucket, 1e-9), 1.0)
        own_hour = [c for c in theirs if local(c).hour == hour]
        row[f"rpc_rate_hour_{hour}"] = (sum(c["outcome"] in RPC for c in own_hour) + 3 * prior) / (len(own_hour) + 3)
    # Answering-pattern mixture: fitted on every customer's calls before as_of, read for this customer.
    counts: dict[str, list[list[int]]] = {}
    for c in everyone:
        per_hour = counts.setdefault(accounts[c["account_id"]]["customer_id"], [[0, 0] for _ in range(24)])
        per_hour[local(c).hour][0] += 1
        per_hour[local(c).hour][1] += c["outcome"] in RPC
    weights, patterns = _fit_mixture(list(counts.values()))
    mine = counts.get(customer, [[0, 0] for _ in range(24)])
    posterior = _pattern_posterior(weights, patterns, mine)
    for hour in range(24):
        row[f"rpc_mixture_hour_{hour}"] = (
            math.nan
            if len(counts) < contacts_module.MIXTURE_MIN_CUSTOMERS
            else sum(posterior[k] * patterns[k][hour] for k in range(len(patterns)))
        )
    rates = [row[f"rpc_rate_hour_bucket_{b}"] for b in range(6)]
    if all(math.isnan(r) for r in rates):
        row["best_hour_bucket_hist"] = math.nan
    else:
        row["best_hour_bucket_hist"] = max(range(6), key=lambda b: (rates[b], -b))

    # Promises ------------------------------------------------------------------------
    made = kept_90 = broken_90 = pending = kept_all = broken_all = 0
    soonest = None
    last_broken = None
    for promise in tables["promises"]:
        if promise["account_id"] != account_id or promise["created_at"] >= as_of:
            continue
        promised = _as_date(promise["promised_date"])
        deadline = dt.datetime.combine(promised + 2 * DAY, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        toward = sum(
            _cents(p["amount"]) for p in settled if promise["created_at"] <= p["paid_at"] < min(deadline, as_of)
        )
        is_kept = toward >= _cents(promise["promised_amount"])
        is_broken = not is_kept and deadline <= as_of
        recent_promise = promise["created_at"] >= as_of - 90 * DAY
        made += recent_promise
        kept_90 += recent_promise and is_kept
        broken_90 += recent_promise and is_broken
        kept_all += is_kept
        broken_all += is_broken
        if not is_kept and not is_broken:
            pending += 1
            wait = (promised - as_of.astimezone(zone).date()).days
            soonest = wait if soonest is None else min(soonest, wait)
        if is_broken and (last_broken is None or deadline > last_broken):
            last_broken = deadline
    row["promises_made_90d"] = made
    row["promises_kept_90d"] = kept_90
    row["promises_broken_90d"] = broken_90
    row["promises_pending"] = pending
    row["days_to_pending_promise"] = math.nan if soonest is None else soonest
    row["promise_broken_7d"] = last_broken is not None and last_broken > as_of - 7 * DAY
    row["days_since_last_broken_promise"] = math.nan if last_broken is None else _days(as_of, last_broken)
    row["promise_kept_ratio"] = kept_all / (kept_all + broken_all) if kept_all + broken_all else math.nan

    # Flags ---------------------------------------------------------------------------
    for flag in FLAG_COLUMNS:
        row[flag] = bool(account[flag])
    row["no_call"] = any(account[f] for f in ("do_not_call", "cease_contact", "deceased", "bankruptcy"))
    row["special_handling"] = any(account[f] for f in ("dispute_open", "complaint_open", "hardship"))
    return row


def reference_features(export: Export, snapshots: pd.DataFrame) -> pd.DataFrame:
    """The oracle: one dict per snapshot, computed independently, as a frame."""
    tables = {name: _records(export.table(name)) for name in ("dues", "payments", "contacts", "promises")}
    accounts = {row["account_id"]: row for row in _records(export.accounts)}
    rows = [
        reference_row(tables, accounts, account_id, as_of.to_pydatetime())
        for account_id, as_of in zip(snapshots["account_id"], snapshots["as_of"], strict=True)
    ]
    return pd.DataFrame(rows)
