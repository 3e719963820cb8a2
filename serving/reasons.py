"""Reasons a collector can read: why an account is on today's list, at this place and hour.

Two sources, merged per call: business triggers read straight from the point-in-time
features (a broken promise, a promise due, payday, the slot's answer chance), and the
call-effect model's per-feature contributions (LightGBM `pred_contrib`), translated into
words. Computed for the listed calls only, never for the whole book.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import is_valid_timezone
from features.payments import days_until_day_of_month
from features.timeline import US_PER_DAY, to_us

MAX_REASONS = 4
TOP_CONTRIBUTIONS = 5
# A slot whose answer chance is within this of the best hour's is a best hour too (hours tie).
BEST_TOLERANCE = 1e-9
US_PER_MINUTE = 60_000_000


# Model features → a phrase that states the account's actual value in words a collector reads,
# or None when the value says nothing worth showing. Phrases come from the value, so a reason is
# always a true statement; the contribution only decides which features are worth a reason.
def _count(value: float, one: str, many: str) -> str:
    n = int(value)
    return one if n == 1 else many.format(n=n)


def _money(value: float) -> str:
    """An amount as the account states it: whole units without decimals, else to the cent (4,199.50)."""
    cents = round(float(value) * 100)
    return f"{cents / 100:,.0f}" if cents % 100 == 0 else f"{cents / 100:,.2f}"


def _share(value: float) -> str:
    """A share below one, rounded down: 99.6% of a due paid is not "100%"."""
    return f"{min(math.floor(value * 100 + 1e-4), 99)}%"


def _ago(days: int) -> str:
    return "today" if days == 0 else _days(days, "yesterday", "{n} days ago")


def _days(n: int, one: str, many: str) -> str:
    return one if n == 1 else many.format(n=n)


FEATURE_PHRASES: dict[str, Callable[[float], str | None]] = {
    "refusals_disputes_90d": lambda v: (
        _count(v, "refused or disputed once lately", "refused or disputed {n} times lately") if v > 0 else None
    ),
    "rpc_promise_share": lambda v: f"promised to pay in {v:.0%} of talks" if v >= 0.3 else None,
    "rpc_refusal_share": lambda v: "never refused when reached" if v == 0 else "rarely refuses" if v <= 0.1 else None,
    "promises_kept_90d": lambda v: _count(v, "kept a promise lately", "kept {n} promises lately") if v > 0 else None,
    "promise_kept_ratio": lambda v: "usually keeps promises" if v >= 0.5 else "often breaks promises",
    "promises_broken_90d": lambda v: (
        _count(v, "broke a promise lately", "broke {n} promises lately") if v > 0 else None
    ),
    "unanswered_streak": lambda v: f"{int(v)} unanswered calls in a row: new hour" if v >= 3 else None,
    "payments_partial_count_180d": lambda v: "pays in part: open to a plan" if v > 0 else None,
    "payments_returned_count_90d": lambda v: "a payment bounced lately" if v > 0 else None,
    "returned_share_180d": lambda v: "payments bounce" if v > 0.2 else None,
    "payment_lateness_trend_180d": lambda v: "payments getting later" if v > 3 else None,
    "dues_covered_share_90d": lambda v: "covered most recent dues" if v >= 0.5 else None,
    "dues_missed_in_row": lambda v: _count(v, "missed the last due", "missed {n} dues in a row") if v > 0 else None,
    "limit_use": lambda v: "near the credit limit" if v >= 0.8 else None,
    "inbound_contacts_90d": lambda v: "contacted us lately" if v > 0 else None,
    "wrong_numbers_90d": lambda v: "number doubtful (wrong number lately)" if v > 0 else None,
}

# Features over a window before as_of: (window in days, value and span → phrase). The span names the window
# ("in 30 days"); on a call after the as_of's date it names where the window ends ("in the 30 days to 22 Nov"):
# a payment 29 days before as_of is not "in the last 30 days" of a call three days later.
WINDOW_PHRASES: dict[str, tuple[int, Callable[[float, str], str | None]]] = {
    "rpc_rate_90d": (90, lambda v, span: f"answered {v:.0%} of calls {span}"),  # with its counts: COUNTED_RATES
    "rpc_rate_30d": (30, lambda v, span: f"answered {v:.0%} of calls {span}"),
    "payments_settled_sum_30d": (30, lambda v, span: f"paid {_money(v)} {span}" if v > 0 else f"no payment {span}"),
    "payments_settled_sum_90d": (90, lambda v, span: f"paid {_money(v)} {span}" if v > 0 else f"no payment {span}"),
    "paid_to_due_90d": (
        90,
        lambda v, span: f"paid {_share(v)} of what fell due {span}" if v < 1 else f"paid all that fell due {span}",
    ),
    "paid_to_due_30d": (30, lambda v, span: f"paid {_share(v)} of what fell due {span}" if v < 1 else None),
}

# Days since an event before as_of: (value, debtor-local days from the event's date to the call's) → phrase.
# Only outbound calls count as "reached by our call": an inbound talk yesterday is not in days_since_last_rpc.
SINCE_PHRASES: dict[str, Callable[[float, int], str | None]] = {
    "days_since_last_rpc": lambda v, ago: f"last reached by our call {_ago(ago)}" if v >= 14 else None,
    "days_since_last_payment": lambda v, ago: f"last paid {_ago(ago)}",
}

PHRASED = frozenset((*FEATURE_PHRASES, *WINDOW_PHRASES, *SINCE_PHRASES))


# A rate is stated with the calls it counts ("reached in 0 of 2 calls in 90 days"): a bare "answers 0%
# of calls" beside a slot's "60% answer chance" (the model's, which knows how little two calls say)
# reads as a contradiction.
COUNTED_RATES = {
    "rpc_rate_90d": ("rpc_90d", "call_attempts_90d"),
    "rpc_rate_30d": ("rpc_30d", "call_attempts_30d"),
}


@dataclass(frozen=True)
class CallDay:
    """One listed call's clock, as the debtor lives it: what the day words and the slot are counted against."""

    shift: int  # debtor-local days from the as_of's date to the call's date
    window_end: str  # the as_of's debtor-local date ("22 Nov"): where the features' windows end
    call_day: int | None  # the call's debtor-local date (days since 1970-01-01); None without a clock
    start_minute: int  # the slot's start on the debtor's clock, minute of the day
    end_minute: int  # and its end (a DST change inside the hour shows as the clock does)
    weekday: int | None  # the call's debtor-local weekday (0 = Monday); None without a clock
    event_days: Mapping[str, int]  # feature → debtor-local date (day number) of the event it counts back to
    payday_in: int | None = None  # days from the call's date to the next payday (with a clock)


def _clock(minute: int) -> str:
    return f"{minute // 60 % 24:02d}:{minute % 60:02d}"


def _span(days: int, clock: CallDay) -> str:
    return f"in {days} days" if clock.shift <= 0 else f"in the {days} days to {clock.window_end}"


def trigger_reasons(
    row: Mapping[str, object], clock: CallDay, best: Mapping[str, object] | None = None
) -> list[tuple[float, str]]:
    """Business triggers for one listed call, each with a priority (higher first).

    Day words ("yesterday", "in 2 days") count debtor-local dates up to the call's own date (`clock`). `best`:
    the account's best hour that day (best_hour_local, p_contact_best, weekday); a slot is called the best only
    where it is (None: no best hours known, as in hand-made frames, and the slot is taken as the best).
    """
    reasons: list[tuple[float, str]] = []
    if bool(row.get("promise_broken_7d")) and pd.notna(row.get("days_since_last_broken_promise")):
        ago = _days_ago(row, "days_since_last_broken_promise", clock)
        reasons.append((100.0, f"promise broken {_ago(ago)}"))
    due_in = row.get("days_to_pending_promise")
    if pd.notna(due_in) and 0 <= int(due_in) - clock.shift <= 2:
        when = ["today", "tomorrow", "in 2 days"][int(due_in) - clock.shift]
        reasons.append((90.0, f"promise due {when}"))
    payday_in = _payday_in(row, clock)
    if payday_in is not None and 0 <= payday_in <= 3 and (row.get("payday_concentration") or 0) >= 0.5:
        when = "today" if payday_in == 0 else _days(payday_in, "in 1 day", "in {n} days")
        reasons.append((70.0, f"payday {when}"))
    hour, chance = row.get("local_hour"), row.get("p_contact")
    if pd.notna(hour):
        reasons.append((60.0, _slot_reason(int(hour), chance, clock, best)))
    dpd = row.get("days_past_due")
    if pd.notna(dpd):
        reasons.append((50.0, f"{int(dpd)} DPD and {_money(row.get('amount_overdue', 0.0))} overdue"))
    return reasons


def _days_ago(row: Mapping[str, object], name: str, clock: CallDay) -> int:
    """Debtor-local days from the date of the event `name` counts back to, to the call's date."""
    if clock.call_day is not None and name in clock.event_days:
        return clock.call_day - clock.event_days[name]
    return int(float(row[name])) + clock.shift  # no clock: whole days before as_of, plus the list's days ahead


def _payday_in(row: Mapping[str, object], clock: CallDay) -> int | None:
    """Days from the call's debtor-local date to the next payday (that day included); None without one."""
    if clock.call_day is not None:
        return clock.payday_in
    payday_in = row.get("next_payday_in_days")
    return None if payday_in is None or pd.isna(payday_in) else int(payday_in) - clock.shift


def _slot_reason(hour: int, chance: object, clock: CallDay, best: Mapping[str, object] | None) -> str:
    """The slot on the debtor's clock and its answer chance; "best" only where no other hour of the day is better."""
    slot = f"{_clock(clock.start_minute)}–{_clock(clock.end_minute)}"
    shown = chance is not None and not math.isnan(float(chance))
    chance_text = f"{float(chance):.0%} answer chance" if shown else ""
    if best is None:  # the caller gave no best hours (hand-made frames): the slot is taken as the best
        return f"best reached {slot} local" + (f" ({chance_text})" if shown else "")
    best_hour = best.get("best_hour_local")
    same_day = clock.weekday is None or clock.weekday == best.get("weekday")
    if best_hour is None or pd.isna(best_hour) or not same_day:
        return f"{slot} local" + (f": {chance_text}" if shown else "")
    p_best = best.get("p_contact_best")
    at_best = int(best_hour) == hour or (
        shown and p_best is not None and pd.notna(p_best) and float(chance) >= float(p_best) - BEST_TOLERANCE
    )
    if at_best:
        return f"best reached {slot} local" + (f" ({chance_text})" if shown else "")
    # Pushed out of the best hour (capacity, the team's shift, the rules): both hours, on the slot's minutes.
    minute = clock.start_minute % 60
    start = int(best_hour) * 60 + minute
    best_text = f"best reached {_clock(start)}–{_clock(start + 60)} local"
    if p_best is not None and pd.notna(p_best):
        best_text += f" ({float(p_best):.0%})"
    return f"{best_text}, this call {slot}" + (f" ({chance_text})" if shown else "")


TRIGGER_COLUMNS = (
    "promise_broken_7d",
    "days_since_last_broken_promise",
    "days_to_pending_promise",
    "next_payday_in_days",
    "payday_day_of_month",
    "payday_concentration",
    "days_past_due",
    "amount_overdue",
)
# "days since" features whose event date is worked out per call (the broken promise's deadline is a local
# midnight: its date is exact once the float's rounding is taken off).
DATED_FEATURES = ("days_since_last_broken_promise", *SINCE_PHRASES)


def contribution_reasons(
    names: Sequence[str], sizes: Sequence[float], features: Mapping[str, object], clock: CallDay | None = None
) -> Iterator[tuple[float, str]]:
    """The features that raise this call's effect most, stated from their values: `names` and `sizes`
    in the order to state them (largest contribution first), read up to the first that does not raise it."""
    clock = clock or _NO_CLOCK
    for name, size in zip(names, sizes, strict=True):
        if size <= 0:
            return
        value = features.get(name)
        if name not in PHRASED or value is None or pd.isna(value):
            continue
        if name in SINCE_PHRASES:
            phrase = SINCE_PHRASES[name](float(value), _days_ago(features, name, clock))
        elif name in WINDOW_PHRASES:
            days, say = WINDOW_PHRASES[name]
            span = _span(days, clock)
            reached, calls = COUNTED_RATES.get(name, (None, None))
            if reached is not None and pd.notna(features.get(reached)) and pd.notna(features.get(calls)):
                made = _count(features[calls], "1 call", "{n} calls")
                phrase = f"reached in {int(features[reached])} of {made} {span}"
            else:
                phrase = say(float(value), span)
        else:
            phrase = FEATURE_PHRASES[name](float(value))
        if phrase:
            yield float(size), phrase


_NO_CLOCK = CallDay(shift=0, window_end="", call_day=None, start_minute=0, end_minute=60, weekday=None, event_days={})


def _wall_clock(instants_us: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Debtor-local wall-clock time (naive µs) of each UTC instant in its zone; an unknown zone reads as UTC."""
    out = np.zeros(len(instants_us), dtype="int64")
    codes, names = pd.factorize(pd.Series(zones, dtype=object).fillna("UTC"))
    for code, zone in enumerate(names):
        rows = np.flatnonzero(codes == code)
        local = pd.DatetimeIndex(instants_us[rows].view("datetime64[us]"), tz="UTC").tz_convert(
            zone if is_valid_timezone(zone) else "UTC"
        )
        out[rows] = local.tz_localize(None).as_unit("us").asi8
    return out


def call_clocks(calls: pd.DataFrame, records: list[dict], as_of: pd.Timestamp, timezones: pd.Series) -> list[CallDay]:
    """Each call's clock in its debtor's zone (`timezones`: IANA zone per account_id): the call's local date,
    weekday and slot minutes, the as_of's local date, and the local dates of the events the day words count from."""
    zones = timezones.reindex(calls["account_id"].astype("string").to_numpy()).to_numpy(dtype=object)
    start = to_us(pd.Series(calls["call_at"]))
    call_wall = _wall_clock(start, zones)
    end_wall = _wall_clock(start + 60 * US_PER_MINUTE, zones)
    as_of_us = int(to_us(pd.Series([as_of]))[0])
    as_of_day = _wall_clock(np.full(len(calls), as_of_us, dtype="int64"), zones) // US_PER_DAY
    event_days = {}
    for name in DATED_FEATURES:
        since = np.asarray([record.get(name, np.nan) for record in records], dtype=float)
        known = ~np.isnan(since)
        # The features hold days since as_of in float32, which brings the instant back to within a second: a
        # broken promise's deadline, a local midnight, is exact once rounded to the minute.
        back = np.where(known, since, 0.0) * US_PER_DAY
        if name == "days_since_last_broken_promise":
            back = np.rint(back / US_PER_MINUTE) * US_PER_MINUTE
        event = as_of_us - np.rint(back).astype("int64")
        event_days[name] = (np.where(known, _wall_clock(event, zones) // US_PER_DAY, 0), known)
    call_day = call_wall // US_PER_DAY
    payday = np.asarray([record.get("payday_day_of_month", np.nan) for record in records], dtype=float)
    has_payday = ~np.isnan(payday)
    payday_in = days_until_day_of_month(call_day * US_PER_DAY, np.where(has_payday, payday, 1).astype("int64"))
    labels = {day: f"{pd.Timestamp(day, unit='D').day} {pd.Timestamp(day, unit='D'):%b}" for day in set(as_of_day)}
    clocks = []
    for row in range(len(calls)):
        start_minute = int(call_wall[row] % US_PER_DAY // US_PER_MINUTE)
        end_minute = int(end_wall[row] % US_PER_DAY // US_PER_MINUTE)
        clocks.append(
            CallDay(
                shift=int(call_day[row] - as_of_day[row]),
                window_end=labels[as_of_day[row]],
                call_day=int(call_day[row]),
                start_minute=start_minute,
                end_minute=end_minute,
                weekday=int((call_day[row] + 3) % 7),  # 1970-01-01 was a Thursday
                event_days={name: int(days[row]) for name, (days, known) in event_days.items() if known[row]},
                payday_in=int(payday_in[row]) if has_payday[row] else None,
            )
        )
    return clocks


def explain_calls(
    calls: pd.DataFrame,
    features: pd.DataFrame,
    contributions: pd.DataFrame,
    days_ahead: int = 0,
    *,
    as_of: pd.Timestamp | None = None,
    timezones: pd.Series | None = None,
    best: pd.DataFrame | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """Reasons (`;`-separated, aligned with `calls`) and the long table of top contributions.

    `calls` has account_id, local_hour, p_contact (and call_at); `features` and `contributions` are indexed by
    account_id (contributions: one column per model feature, from the call-effect model). With the export's
    `as_of` and each account's IANA zone (`timezones`, by account_id), day words count the debtor's dates up to
    the call's own date and the slot reads the debtor's clock (09:30–10:30 in a half-hour zone); without them
    (hand-made frames), the call is `days_ahead` days after the as_of date, in the whole hour `local_hour`.
    `best` (by account_id: best_hour_local, p_contact_best, weekday 0 = Monday): each account's best hour on
    that debtor-local weekday; a call outside it names both hours. Rows are read as plain records and arrays:
    a list of tens of thousands of calls is explained in seconds.
    """
    ids = calls["account_id"].to_numpy()
    phrase_columns = [name for name in PHRASED if name in features.columns]
    counts = [column for columns in COUNTED_RATES.values() for column in columns]
    wanted = [name for name in dict.fromkeys((*TRIGGER_COLUMNS, *phrase_columns, *counts)) if name in features.columns]
    records = features.reindex(ids)[wanted].to_dict("records")
    hours = calls["local_hour"].to_numpy()
    chances = calls["p_contact"].to_numpy(dtype=float)
    if as_of is not None and timezones is not None and "call_at" in calls.columns:
        clocks = call_clocks(calls, records, as_of, timezones)
    else:
        clocks = [
            dataclasses.replace(
                _NO_CLOCK,
                shift=days_ahead,
                window_end=_ago(days_ahead),
                start_minute=int(hour) * 60 if pd.notna(hour) else 0,
                end_minute=int(hour) * 60 + 60 if pd.notna(hour) else 60,
            )
            for hour in hours
        ]
    best_rows: list[dict | None] = [None] * len(ids)
    if best is not None:
        known = best.reindex(ids)
        columns = [known[name].to_numpy(dtype=float, na_value=np.nan) for name in ("best_hour_local", "p_contact_best")]
        best_rows = [
            {"best_hour_local": hour, "p_contact_best": chance, "weekday": weekday}
            for hour, chance, weekday in zip(*columns, known["weekday"].to_numpy(), strict=True)
        ]
    # Only features with a phrase can give a reason: each row's are sorted at once, largest first.
    names = np.asarray([column for column in contributions.columns if column in PHRASED], dtype=object)
    sizes = contributions.reindex(ids)[list(names)].to_numpy(dtype=float)
    order = np.argsort(-sizes, axis=1, kind="stable")
    sizes = np.take_along_axis(sizes, order, axis=1)
    texts = []
    for row, record in enumerate(records):
        slot = {**record, "local_hour": hours[row], "p_contact": chances[row]}
        triggers = trigger_reasons(slot, clocks[row], best_rows[row])
        # Model reasons rank after the triggers (business rules first), by contribution size.
        from_model = contribution_reasons(names[order[row]], sizes[row], record, clocks[row])
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
