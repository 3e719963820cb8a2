"""The guard and the ranker's filter where a rule is easy to read loosely: a debtor clock set back inside
the call hour, and an export whose compliance facts are missing or unknown (the guard refuses, never guesses)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from serving.ranking import rank_calls
from tests.serving.portfolios import (
    account_row,
    build_export,
    call_row,
    candidate_times,
    constant_contact,
    flat_scores,
    one_call,
    operations,
    rules_broken,
)

# Easter Island sets its clocks back from 22:00 (-05) to 21:00 (-06) at 03:00Z on 2026-04-05.
EASTER_DAY = "2026-04-04"
EASTER_AS_OF = "2026-04-04T12:00:00Z"


def test_an_hour_after_the_window_end_stays_outside_when_the_clock_goes_back_inside_it():
    # 02:00Z-03:00Z is 21:00-22:00 (-05) on Easter Island: all after Reg F's 21:00, though it ends at 21:00 (-06).
    export = build_export(EASTER_AS_OF, [account_row("A1", timezone="Pacific/Easter")])
    reg_f = operations("us_reg_f", centre="America/Chicago", shift=("09:00", "23:00"))
    late = one_call(export, "2026-04-05T02:00Z", EASTER_DAY)
    assert rules_broken(late, export, reg_f, EASTER_DAY) == {"call_window"}
    allowed = candidate_times(export, reg_f, EASTER_DAY)
    assert pd.Timestamp("2026-04-05T01:00Z") in allowed  # 20:00-21:00 (-05)
    assert pd.Timestamp("2026-04-05T02:00Z") not in allowed
    # Under cn's 22:00 both hours that read 21:00 lie inside the window: nothing more is refused.
    cn = operations("cn", centre="America/Chicago", shift=("09:00", "23:00"))
    for at in ("2026-04-05T02:00Z", "2026-04-05T03:00Z"):
        assert rules_broken(one_call(export, at, EASTER_DAY), export, cn, EASTER_DAY) == set(), at
        assert pd.Timestamp(at) in candidate_times(export, cn, EASTER_DAY)


SHANGHAI_DAY = "2026-11-23"
SHANGHAI_AS_OF = "2026-11-22T16:00:00Z"
TEN_AM = "2026-11-23T02:00Z"  # 10:00 in Shanghai


def shanghai_pair(**sibling):
    """A1 and A2 of customer C1 in Shanghai; `sibling` changes A2's columns."""
    return [account_row("A1", customer_id="C1"), account_row("A2", customer_id="C1", **sibling)]


@pytest.mark.parametrize("zone", ["Factory", "+08:00", "Mars/Olympus", ""])
def test_a_customer_in_no_known_zone_is_refused(zone):
    export = build_export(SHANGHAI_AS_OF, shanghai_pair(timezone=zone))
    calls = one_call(export, TEN_AM, day=SHANGHAI_DAY)
    assert rules_broken(calls, export, operations("cn"), SHANGHAI_DAY) == {"timezone"}


def test_a_null_flag_counts_as_set():
    export = build_export(SHANGHAI_AS_OF, shanghai_pair())
    accounts = export.accounts.astype({"do_not_call": "boolean", "hardship": "boolean"})
    accounts.loc[accounts["account_id"] == "A2", ["do_not_call", "hardship"]] = pd.NA
    unknown = dataclasses.replace(export, accounts=accounts)
    calls = one_call(export, TEN_AM, day=SHANGHAI_DAY)
    assert rules_broken(calls, unknown, operations("cn"), SHANGHAI_DAY) == {"no_call_flag", "special_handling"}


def test_a_withheld_sibling_keeps_the_customer_off_the_list():
    export = build_export(SHANGHAI_AS_OF, shanghai_pair())
    withheld = dataclasses.replace(export, withheld=frozenset({"A2"}))
    calls = one_call(export, TEN_AM, day=SHANGHAI_DAY)
    assert rules_broken(calls, withheld, operations("cn"), SHANGHAI_DAY) == {"rejected_rows"}


CHICAGO_DAY = "2026-11-23"
CHICAGO_AS_OF = "2026-11-23T06:00:00Z"


def reg_f_with(history):
    export = build_export(CHICAGO_AS_OF, [account_row("A1", timezone="America/Chicago")], history)
    return export, operations("us_reg_f", centre="America/Chicago", shift=("09:00", "18:00"))


def blank(row: dict, **nulls) -> dict:
    return {**row, **nulls}


def busy_week(**nulls) -> list[dict]:
    """Two unanswered calls a day on the six days before the 23rd, with `nulls` blanked."""
    return [blank(call_row("A1", f"2026-11-{d}T{h}:00Z"), **nulls) for d in range(17, 23) for h in (15, 18)]


@pytest.mark.parametrize(
    ("history", "rule"),
    [
        # An answered call of unknown outcome may have been a conversation: the quiet period holds.
        ([blank(call_row("A1", "2026-11-20T18:00Z", "right_party"), outcome=None)], "quiet_period"),
        # Calls in no known direction, or on no known channel, are our attempts: 12 in the six days before.
        (busy_week(direction=None), "attempts_7d"),
        (busy_week(channel=None), "attempts_7d"),
    ],
)
def test_reg_f_history_with_unknown_values_is_read_strictly(history, rule):
    export, ops = reg_f_with(history)
    calls = one_call(export, "2026-11-23T16:00Z", day=CHICAGO_DAY)  # 10:00 in Chicago
    assert rules_broken(calls, export, ops, CHICAGO_DAY) == {rule}
    assert rank_calls(export, ops, CHICAGO_DAY, flat_scores(export), constant_contact).call_list.empty


def test_cn_calls_of_unknown_outcome_count_as_unanswered_and_connected():
    ours = [blank(call_row("A1", f"2026-11-22T23:{m:02d}Z"), outcome=None) for m in range(6)]
    export = build_export(SHANGHAI_AS_OF, [account_row("A1")], ours)  # 07:xx on the 23rd in Shanghai
    ops = operations("cn")
    calls = one_call(export, TEN_AM, day=SHANGHAI_DAY)
    assert rules_broken(calls, export, ops, SHANGHAI_DAY) == {"daily_unanswered", "daily_connected"}
    assert rank_calls(export, ops, SHANGHAI_DAY, flat_scores(export), constant_contact).call_list.empty


def test_cn_a_call_hung_up_on_counts_as_unanswered_and_as_connected():
    # Five calls nobody answered and one the debtor hung up on: the six unanswered attempts of the day.
    history = [call_row("A1", f"2026-11-22T23:{m:02d}Z") for m in range(5)]
    history.append(call_row("A1", "2026-11-22T23:30Z", outcome="hung_up"))
    export = build_export(SHANGHAI_AS_OF, [account_row("A1")], history)
    ops = operations("cn")
    assert rules_broken(one_call(export, TEN_AM, day=SHANGHAI_DAY), export, ops, SHANGHAI_DAY) == {"daily_unanswered"}
    assert rank_calls(export, ops, SHANGHAI_DAY, flat_scores(export), constant_contact).call_list.empty
    # Two hung up on and one conversation: three connected, the day's connected limit.
    history = [call_row("A1", f"2026-11-22T23:0{m}Z", outcome="hung_up") for m in range(2)]
    history.append(call_row("A1", "2026-11-22T23:30Z", outcome="right_party"))
    export = build_export(SHANGHAI_AS_OF, [account_row("A1")], history)
    assert rules_broken(one_call(export, TEN_AM, day=SHANGHAI_DAY), export, ops, SHANGHAI_DAY) == {"daily_connected"}
