"""Every reason a collector reads is true on the call's day and clock: hand-made books through `run_day`.

The models are stand-ins with known answers (`FakeChampions`): the contact chance peaks at one debtor-local
hour per account, the call effect is the same for everyone, and its contributions are fixed, so each reason
can be checked against facts worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from features.contract import Export
from serving.pipeline import policy_hours, run_day
from serving.reasons import FEATURE_PHRASES, WINDOW_PHRASES, explain_calls
from tests.factories import typed_frame
from tests.serving.portfolios import account_row, call_row, operations, random_export, random_operations

AS_OF = "2026-11-23T00:00:00Z"
PEAK_HOUR = 10


def _chance(hours: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    return np.clip(0.7 - 0.04 * np.abs(hours - peaks), 0.05, 0.95)


class FakeContact:
    """P(right-party contact) = 0.70 at the account's peak hour (default 10:00), 4 points less per hour away."""

    def __init__(self, peaks: dict[str, int]):
        self.peaks = peaks

    def _peaks(self, ids) -> np.ndarray:
        return np.asarray([self.peaks.get(str(account), PEAK_HOUR) for account in ids])

    def predict_hours(self, rows: pd.DataFrame, hours, weekdays) -> np.ndarray:
        return _chance(np.asarray(hours)[None, :], self._peaks(rows["account_id"])[:, None])

    def predict_proba(self, slots: pd.DataFrame) -> np.ndarray:
        return _chance(slots["local_hour"].to_numpy(), self._peaks(slots["account_id"]))


class FakeCallEffect:
    """The same effect for every account, with fixed contributions (largest first, as given)."""

    metadata = {"reference_uplift": 0.1}

    def __init__(self, contributions: dict[str, float]):
        self.sizes = contributions

    def predict_uplift(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), 0.1)

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame({name: np.full(len(features), size) for name, size in self.sizes.items()})
        return frame.assign(bias=0.1).set_index(features.index)


class FakeRepayment:
    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), 0.4)


class FakeChampions:
    def __init__(self, peaks: dict[str, int] | None = None, contributions: dict[str, float] | None = None):
        self.repayment = FakeRepayment()
        self.contact = FakeContact(peaks or {})
        self.call_effect = FakeCallEffect(contributions or {"unanswered_streak": -0.1})
        self.versions = {"repayment": "1", "contact": "1", "call_effect": "1"}
        self.metrics: dict = {}
        self.model_version = "fake"


def _export(as_of, accounts, dues, payments=(), promises=(), contacts=()) -> Export:
    return Export(
        as_of=pd.Timestamp(as_of),
        accounts=typed_frame("accounts", accounts),
        dues=typed_frame("dues", dues),
        payments=typed_frame("payments", list(payments)),
        contacts=typed_frame("contacts", list(contacts)),
        promises=typed_frame("promises", list(promises)),
    )


def _due(account: str, amount: float = 100.0, date: str = "2026-10-20") -> dict:
    return {"account_id": account, "due_date": pd.Timestamp(date), "amount_due": amount}


def _payment(payment_id: str, account: str, at: str, amount: float = 10.0) -> dict:
    return {
        "payment_id": payment_id,
        "account_id": account,
        "paid_at": pd.Timestamp(at),
        "amount": amount,
        "status": "settled",
        "channel": None,
    }


def _promise(promise_id: str, account: str, created: str, date: str) -> dict:
    return {
        "promise_id": promise_id,
        "account_id": account,
        "created_at": pd.Timestamp(created),
        "promised_date": pd.Timestamp(date),
        "promised_amount": 50.0,
        "contact_id": None,
    }


def _reasons(export, ops, day: str, champions=None) -> dict[str, list[str]]:
    run = run_day(export, ops, dt.date.fromisoformat(day), champions or FakeChampions())
    return {row.account_id: row.reasons.split("; ") for row in run.call_list.itertuples()}


# --- day words: the debtor's calendar, up to the call's own date ---------------------------------------------


def _los_angeles_book() -> Export:
    """A New York centre's Los Angeles debtors, as_of 16:00 on 22 Nov in LA: a promise for 20 Nov (its grace day,
    21 Nov, ended at the start of 22 Nov), a promise for 23 Nov, and a payday on the 25th."""
    accounts = [account_row(account, timezone="America/Los_Angeles") for account in ("BROKE", "DUE", "PAYDAY")]
    payments = [_payment(f"P{month}", "PAYDAY", f"2026-{month:02d}-25T20:00:00Z") for month in range(6, 11)]
    promises = [
        _promise("R1", "BROKE", "2026-11-15T20:00:00Z", "2026-11-20"),
        _promise("R2", "DUE", "2026-11-15T20:00:00Z", "2026-11-23"),
    ]
    return _export(AS_OF, accounts, [_due(row["account_id"]) for row in accounts], payments, promises)


NEW_YORK = operations(policy="us_reg_f", centre="America/New_York", shift=("09:00", "18:00"))


def test_a_broken_promise_is_counted_in_the_debtors_calendar_to_the_calls_date():
    book = _los_angeles_book()
    # The calls are at 10:00 in Los Angeles on the list date; the promise broke at the start of 22 Nov there.
    assert "promise broken yesterday" in _reasons(book, NEW_YORK, "2026-11-23")["BROKE"]
    assert "promise broken 2 days ago" in _reasons(book, NEW_YORK, "2026-11-24")["BROKE"]


def test_an_export_taken_before_the_centres_midnight_counts_from_its_local_date():
    # as_of is 04:00 on 23 Nov in Shanghai (20:00 UTC the day before); the promise for 21 Nov broke at the
    # start of 23 Nov in Shanghai: on a 23 Nov list it broke today, not "yesterday" (the UTC date's count).
    book = _export(
        "2026-11-22T20:00:00Z",
        [account_row("A1")],
        [_due("A1")],
        promises=[_promise("R1", "A1", "2026-11-18T04:00:00Z", "2026-11-21")],
    )
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"))
    assert _reasons(book, ops, "2026-11-23")["A1"][0] == "promise broken today"
    assert _reasons(book, ops, "2026-11-28")["A1"][0] == "promise broken 5 days ago"


def test_a_promise_due_and_a_payday_are_counted_to_the_calls_local_date():
    reasons = _reasons(_los_angeles_book(), NEW_YORK, "2026-11-23")
    assert reasons["DUE"][0] == "promise due today"  # the 23rd, and the call is on the 23rd in Los Angeles
    assert reasons["PAYDAY"][0] == "payday in 2 days"  # the 25th
    reasons = _reasons(_los_angeles_book(), NEW_YORK, "2026-11-24")
    assert not any(text.startswith("promise due") for text in reasons["DUE"])
    assert reasons["PAYDAY"][0] == "payday in 1 day"


def test_a_payday_on_the_31st_falls_on_the_months_last_day():
    # Paid on the 31st (12:00 in Shanghai) every month that has one: payday 31, the 30th in November.
    months = (1, 3, 5, 7, 8, 10)
    payments = [_payment(f"P{month}", "A1", f"2026-{month:02d}-31T04:00:00Z") for month in months]
    book = _export(AS_OF, [account_row("A1")], [_due("A1", 500.0)], payments)
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"))
    assert _reasons(book, ops, "2026-11-28")["A1"][0] == "payday in 2 days"
    assert not any(text.startswith("payday") for text in _reasons(book, ops, "2026-11-23")["A1"])


def test_days_since_an_event_count_to_the_calls_date_and_say_what_was_counted():
    # Last reached by an outbound call 20 days before as_of; the debtor called in two days before as_of.
    calls = [
        call_row("A1", "2026-11-03T02:00:00Z", "right_party"),
        call_row("A1", "2026-11-21T02:00:00Z", "right_party", direction="inbound"),
    ]
    payments = [_payment("P1", "A1", "2026-11-10T02:00:00Z")]
    book = _export(AS_OF, [account_row("A1")], [_due("A1")], payments, contacts=calls)
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"))
    champions = FakeChampions(contributions={"days_since_last_rpc": 0.2, "days_since_last_payment": 0.1})
    first = _reasons(book, ops, "2026-11-23", champions)["A1"]
    assert first[2:] == ["last reached by our call 20 days ago", "last paid 13 days ago"]
    later = _reasons(book, ops, "2026-11-26", champions)["A1"]
    assert later[2:] == ["last reached by our call 23 days ago", "last paid 16 days ago"]


# --- the slot: the debtor's clock, and "best" only where it is ------------------------------------------------


def test_a_half_hour_zone_reads_the_slot_on_the_debtors_clock():
    # Shanghai's 13:00 is 10:30 in Kolkata and 10:45 in Kathmandu.
    accounts = [account_row("IN", timezone="Asia/Kolkata"), account_row("NP", timezone="Asia/Kathmandu")]
    book = _export(AS_OF, accounts, [_due("IN"), _due("NP")])
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"))
    reasons = _reasons(book, ops, "2026-11-23")
    assert reasons["IN"][0] == "best reached 10:30–11:30 local (70% answer chance)"
    assert reasons["NP"][0] == "best reached 10:45–11:45 local (70% answer chance)"


def test_a_call_pushed_out_of_its_best_hour_names_both_hours():
    # One call an hour and three debtors who all answer best at 10:00: two are called at another hour.
    accounts = [account_row(f"A{index}") for index in range(3)]
    book = _export(AS_OF, accounts, [_due(f"A{index}", 100.0 + index) for index in range(3)])
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"), capacity=(1, 1))
    run = run_day(book, ops, dt.date(2026, 11, 23), FakeChampions())
    slots = dict(zip(run.call_list["account_id"], run.call_list["local_hour"], strict=True))
    texts = {row.account_id: row.reasons.split("; ")[0] for row in run.call_list.itertuples()}
    assert sorted(slots.values()) == [9, 10, 11]
    for account, hour in slots.items():
        if hour == PEAK_HOUR:
            assert texts[account] == "best reached 10:00–11:00 local (70% answer chance)"
        else:
            slot = f"{hour:02d}:00–{hour + 1:02d}:00"
            assert texts[account] == f"best reached 10:00–11:00 local (70%), this call {slot} (66% answer chance)"


def test_a_call_on_another_local_weekday_claims_no_best_hour():
    # Shanghai's Monday 09:00 is Sunday 17:00 in Los Angeles: the best hour was searched for Monday.
    book = _export(AS_OF, [account_row("LA", timezone="America/Los_Angeles")], [_due("LA")])
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"))
    first = _reasons(book, ops, "2026-11-23")["LA"][0]
    assert re.fullmatch(r"\d\d:00–\d\d:00 local: \d+% answer chance", first), first


# --- amounts and windows -----------------------------------------------------------------------------------


def test_amounts_are_stated_to_the_cent_as_the_amount_overdue_column():
    accounts = [account_row("A1"), account_row("A2")]
    book = _export(
        AS_OF, accounts, [_due("A1", 1234.5), _due("A2", 0.4)], [_payment("P1", "A1", "2026-11-20T00:00:00Z", 0.25)]
    )
    ops = operations(centre="Asia/Shanghai", shift=("09:00", "18:00"))
    champions = FakeChampions(contributions={"payments_settled_sum_30d": 0.1})
    run = run_day(book, ops, dt.date(2026, 11, 23), champions)
    calls = run.call_list.set_index("account_id")
    assert calls.loc["A1", "amount_overdue"] == 1234.25
    assert calls.loc["A1", "reasons"].split("; ")[1:] == ["34 DPD and 1,234.25 overdue", "paid 0.25 in 30 days"]
    assert calls.loc["A2", "reasons"].split("; ")[1] == "34 DPD and 0.40 overdue"


def test_windows_are_named_by_their_end_on_a_later_day_and_never_as_this_month():
    features = pd.DataFrame(
        {"rpc_rate_30d": [0.5], "rpc_30d": [1.0], "call_attempts_30d": [2.0], "paid_to_due_30d": [0.996]},
        index=pd.Index(["A1"]),
    )
    contributions = pd.DataFrame({"rpc_rate_30d": [0.2], "paid_to_due_30d": [0.1]}, index=features.index)
    calls = pd.DataFrame({"account_id": ["A1"], "local_hour": [10], "p_contact": [0.5]})
    today = explain_calls(calls, features, contributions)[0].iloc[0].split("; ")
    assert today[1:] == ["reached in 1 of 2 calls in 30 days", "paid 99% of what fell due in 30 days"]
    later = explain_calls(calls, features, contributions, days_ahead=2)[0].iloc[0].split("; ")
    assert later[1:] == [
        "reached in 1 of 2 calls in the 30 days to 2 days ago",
        "paid 99% of what fell due in the 30 days to 2 days ago",
    ]
    # With the export's clock the window's end is the debtor's date of as_of.
    clocked = calls.assign(call_at=pd.Timestamp("2026-11-25T02:00:00Z"))
    zones = pd.Series(["Asia/Shanghai"], index=["A1"])
    text = explain_calls(clocked, features, contributions, as_of=pd.Timestamp(AS_OF), timezones=zones)[0].iloc[0]
    assert text.split("; ")[1] == "reached in 1 of 2 calls in the 30 days to 23 Nov"
    assert WINDOW_PHRASES["rpc_rate_30d"][1](0.5, "in 30 days") == "answered 50% of calls in 30 days"


def test_refusals_counted_with_disputes_say_so():
    assert FEATURE_PHRASES["refusals_disputes_90d"](2.0) == "refused or disputed 2 times lately"


# --- any book: every reason is one of the known statements, and true of its row ----------------------------------

SLOT = r"(\d\d):(\d\d)–(\d\d):(\d\d)"
KNOWN = [
    re.compile(pattern)
    for pattern in (
        r"promise broken (today|yesterday|\d+ days ago)",
        r"promise due (today|tomorrow|in 2 days)",
        r"payday (today|in 1 day|in [23] days)",
        rf"best reached {SLOT} local \(\d+% answer chance\)",
        rf"best reached {SLOT} local \(\d+%\), this call {SLOT} \(\d+% answer chance\)",
        rf"{SLOT} local: \d+% answer chance",
        r"\d+ DPD and [\d,]+(\.\d\d)? overdue",
        r"(no payment|paid [\d,]+(\.\d\d)?) in (\d+ days|the \d+ days to \d+ [A-Z][a-z]{2})",
        r"last paid (today|yesterday|\d+ days ago)",
        r"\d+ unanswered calls in a row: new hour",
    )
]


def _clock(stamp: pd.Timestamp) -> str:
    return f"{stamp.hour:02d}:{stamp.minute:02d}"


@pytest.mark.parametrize("seed", range(6))
def test_every_reason_on_a_random_book_is_a_known_true_statement(seed):
    export = random_export(seed, 40, pd.Timestamp("2026-11-23T00:00:00Z"), flag_rate=0.02)
    ops = random_operations(seed)
    peaks = {f"A{index}": 8 + (index * 7) % 13 for index in range(40)}
    champions = FakeChampions(peaks, {"unanswered_streak": 0.1, "payments_settled_sum_30d": 0.05})
    day = dt.date(2026, 11, 23) + dt.timedelta(days=seed % 3)
    run = run_day(export, ops, day, champions)
    zones = export.accounts.set_index("account_id")["timezone"]
    hours = np.asarray(policy_hours(ops))
    for row in run.call_list.itertuples():
        assert "\n" not in row.reasons and "_" not in row.reasons
        parts = row.reasons.split("; ")
        for part in parts:
            assert any(pattern.fullmatch(part) for pattern in KNOWN), part
        start = row.call_at.tz_convert(zones[row.account_id])
        end = (row.call_at + pd.Timedelta(hours=1)).tz_convert(zones[row.account_id])
        slot = f"{_clock(start)}–{_clock(end)}"
        chance = f"{row.p_contact:.0%} answer chance"
        assert f"{row.days_past_due} DPD and " in row.reasons
        # The best hour of the day, where it was searched (the list date's weekday): the stand-in's peak.
        best = hours[np.argmax(_chance(hours, np.full(len(hours), peaks[row.account_id])))]
        if start.weekday() != day.weekday():
            assert f"{slot} local: {chance}" in parts
        elif row.local_hour == best:
            assert f"best reached {slot} local ({chance})" in parts
        else:
            best_slot = f"{best:02d}:{start.minute:02d}–{(best + 1) % 24:02d}:{start.minute:02d}"
            assert any(part.startswith(f"best reached {best_slot} local (") for part in parts), row.reasons
            assert any(part.endswith(f"this call {slot} ({chance})") for part in parts), row.reasons
