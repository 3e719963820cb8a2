"""Each compliance rule of DOMAIN.md at its exact boundaries, read the same way by the ranker's filter and
by the guard: a call the ranker allows passes the guard, and a call the guard refuses has no slot."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.compliance import check_call_list
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

DAY = "2026-11-23"
SHANGHAI_TEN_AM = "2026-11-23T02:00:00Z"  # as_of: 10:00 on D in Shanghai, so D's earlier calls are history
CHICAGO_MIDNIGHT = "2026-11-23T06:00:00Z"  # as_of: 00:00 on D in Chicago


def verdicts(export, ops, at: str, account: str = "A1") -> tuple[bool, set[str]]:
    """Whether the ranker allows `account` at `at`, and the rules the guard says a call then breaks."""
    allowed = pd.Timestamp(at) in candidate_times(export, ops, DAY, account)
    return allowed, rules_broken(one_call(export, at, DAY, account), export, ops, DAY)


def assert_both(export, ops, at: str, rule: str | None, account: str = "A1") -> None:
    """The ranker and the guard agree: allowed (rule None) or refused by `rule`."""
    allowed, broken = verdicts(export, ops, at, account)
    assert (allowed, broken) == ((True, set()) if rule is None else (False, {rule}))


def local(clock: str, zone: str) -> str:
    """D's `clock` in `zone` as a UTC instant."""
    return pd.Timestamp(f"{DAY}T{clock}", tz=zone).tz_convert("UTC").isoformat()


def sms(account_id: str, started_at: str) -> dict:
    return {**call_row(account_id, started_at, "delivered"), "channel": "sms"}


# --- the call window: every minute of the slot hour on the debtor's clock -----------------------------------


@pytest.mark.parametrize(
    ("policy", "zone", "centre", "clock", "rule"),
    [
        ("cn", "Asia/Shanghai", "Asia/Shanghai", "07:00", "call_window"),
        ("cn", "Asia/Shanghai", "Asia/Shanghai", "08:00", None),
        ("cn", "Asia/Shanghai", "Asia/Shanghai", "21:00", None),  # 21:00-22:00: every minute before 22:00
        ("cn", "Asia/Shanghai", "Asia/Shanghai", "22:00", "call_window"),
        # A half-hour zone called from a whole-hour centre: the slot from 21:30 ends at 22:30.
        ("cn", "Asia/Kolkata", "Asia/Shanghai", "07:30", "call_window"),
        ("cn", "Asia/Kolkata", "Asia/Shanghai", "08:30", None),
        ("cn", "Asia/Kolkata", "Asia/Shanghai", "20:30", None),
        ("cn", "Asia/Kolkata", "Asia/Shanghai", "21:30", "call_window"),
        ("us_reg_f", "America/Chicago", "America/Chicago", "07:00", "call_window"),
        ("us_reg_f", "America/Chicago", "America/Chicago", "08:00", None),
        ("us_reg_f", "America/Chicago", "America/Chicago", "20:00", None),
        ("us_reg_f", "America/Chicago", "America/Chicago", "21:00", "call_window"),
        ("us_reg_f", "America/St_Johns", "America/Halifax", "07:30", "call_window"),
        ("us_reg_f", "America/St_Johns", "America/Halifax", "19:30", None),
        ("us_reg_f", "America/St_Johns", "America/Halifax", "20:30", "call_window"),  # ends at 21:30
    ],
)
def test_the_window_holds_at_its_edges_in_the_debtors_zone(policy, zone, centre, clock, rule):
    export = build_export("2026-11-22T00:00:00Z", [account_row("A1", timezone=zone)])
    ops = operations(policy, centre=centre, shift=("06:00", "06:00"))  # 24 hours from 06:00 on D
    assert_both(export, ops, local(clock, zone), rule)


def test_unsure_of_the_zone_every_zone_of_the_customer_must_allow_the_hour():
    # C1 has accounts in Chicago and New York: 20:00-21:00 in Chicago is 21:00-22:00 in New York.
    accounts = [
        account_row("A1", customer_id="C1", timezone="America/Chicago"),
        account_row("A2", customer_id="C1", timezone="America/New_York"),
    ]
    export = build_export("2026-11-22T00:00:00Z", accounts)
    ops = operations("us_reg_f", centre="America/Chicago", shift=("06:00", "06:00"))
    assert_both(export, ops, local("20:00", "America/Chicago"), "call_window")
    assert_both(export, ops, local("19:00", "America/Chicago"), None)
    assert_both(export, ops, local("09:00", "America/New_York"), None)
    assert_both(export, ops, local("08:00", "America/New_York"), "call_window")  # 07:00 in Chicago


# --- cn: per customer (one person, one number) and debtor-local day ------------------------------------------


def shanghai_customer(calls, n_accounts: int = 2):
    accounts = [account_row(f"A{index}", customer_id="C1") for index in range(1, n_accounts + 1)]
    return build_export(SHANGHAI_TEN_AM, accounts, calls)


def unanswered(count: int, account: str = "A2", outcome: str = "no_answer", hour: str = "01") -> list[dict]:
    return [call_row(account, f"2026-11-23T{hour}:{minute:02d}Z", outcome) for minute in range(count)]


ELEVEN_AM = "2026-11-23T03:00:00Z"


@pytest.mark.parametrize(
    ("history", "rule"),
    [
        (unanswered(5), None),  # 5 + the list's call = 6
        (unanswered(6), "daily_unanswered"),
        (unanswered(3) + unanswered(3, outcome="busy", hour="00"), "daily_unanswered"),
        (unanswered(5) + unanswered(1, outcome="voicemail", hour="00"), "daily_unanswered"),
        # Earlier that day in Shanghai, though the day before in UTC (16:00Z is 00:00 on the 23rd there).
        (unanswered(5) + [call_row("A1", "2026-11-22T16:00Z")], "daily_unanswered"),
        # 15:59Z is 23:59 on the 22nd in Shanghai: another day.
        (unanswered(5) + [call_row("A1", "2026-11-22T15:59Z")], None),
        # The debtor's own missed calls and messages are not our unanswered attempts.
        (unanswered(5) + [call_row("A1", "2026-11-23T01:30Z", "no_answer", "inbound")], None),
        (unanswered(5) + [sms("A1", "2026-11-23T01:30Z")], None),
    ],
)
def test_cn_at_most_6_unanswered_attempts_per_customer_and_local_day(history, rule):
    export = shanghai_customer(history)
    assert verdicts(export, operations("cn"), ELEVEN_AM) == (rule is None, set() if rule is None else {rule})


@pytest.mark.parametrize(
    ("history", "allowed"),
    [
        ([call_row("A2", "2026-11-23T01:00Z", "right_party")] * 2, True),
        ([call_row("A2", "2026-11-23T01:00Z", "right_party")] * 3, False),
        ([call_row("A2", "2026-11-23T01:00Z", "right_party", "inbound")] * 3, False),  # the debtor's own
        ([call_row("A2", "2026-11-23T01:00Z", "hung_up")] * 3, False),  # picked up, then hung up: connected
        ([call_row("A2", "2026-11-23T01:00Z", "third_party")] * 3, False),
        # Dialled wrong twice, then the debtor reached (else the number is known wrong and never called at all).
        (
            [call_row("A2", "2026-11-23T01:00Z", "wrong_number")] * 2
            + [call_row("A2", "2026-11-23T01:30Z", "right_party")],
            False,
        ),
        # A call hung up on counts as both: 2 missed + 2 hung up are 4 unanswered and 2 connected, and the list's
        # call makes 5 and 3; one more missed call would make 6 and 3, one more hung up 6 and 4.
        (unanswered(2) + [call_row("A2", "2026-11-23T01:30Z", "hung_up")] * 2, True),
        (unanswered(2) + [call_row("A2", "2026-11-23T01:30Z", "hung_up")] * 3, False),
    ],
)
def test_cn_at_most_3_connected_calls_per_customer_and_local_day(history, allowed):
    history = [{**row, "contact_id": f"K{index}"} for index, row in enumerate(history)]
    export = shanghai_customer(history)
    ops = operations("cn")
    ranker, guard = verdicts(export, ops, ELEVEN_AM)
    assert ranker is allowed
    assert (guard == set()) is allowed


def test_cn_the_lists_own_calls_to_one_customer_count_as_connected():
    # Four accounts of one customer and nothing in the history: each list call may connect, so three at most.
    export = shanghai_customer([], n_accounts=4)
    ops = operations("cn", capacity=(10, 1))
    result = rank_calls(export, ops, DAY, flat_scores(export), constant_contact)
    assert len(result.call_list) == 3
    assert check_call_list(result.call_list, export, ops, DAY) == []
    # One connected call earlier that day leaves room for two.
    talked = shanghai_customer([call_row("A4", "2026-11-23T01:00Z", "right_party")], n_accounts=4)
    result = rank_calls(talked, ops, DAY, flat_scores(talked), constant_contact)
    assert len(result.call_list) == 2
    # The guard counts the list's calls too, in whichever hours they fall.
    four = pd.concat([one_call(export, f"2026-11-23T0{hour}:00Z", DAY, f"A{hour - 2}") for hour in (3, 4, 5, 6)])
    four = four.assign(rank=range(1, 5)).reset_index(drop=True)
    assert rules_broken(four, export, ops, DAY) == {"daily_connected"}
    assert rules_broken(four.iloc[:3], export, ops, DAY) == set()


# --- Reg F: per debt (account), debtor-local days -----------------------------------------------------------


def chicago(calls, accounts=None):
    return build_export(CHICAGO_MIDNIGHT, accounts or [account_row("A1", timezone="America/Chicago")], calls)


def reg_f():
    return operations("us_reg_f", centre="America/Chicago", shift=("08:00", "21:00"))


NOON = local("12:00", "America/Chicago")


def chicago_noon(days_before: float) -> str:
    return (pd.Timestamp(NOON) - pd.Timedelta(days=days_before)).isoformat()


def attempts(days_before, outcome: str = "no_answer", direction: str = "outbound", account: str = "A1"):
    return [
        {**call_row(account, chicago_noon(day), outcome, direction), "contact_id": f"K{account}{index}"}
        for index, day in enumerate(days_before)
    ]


@pytest.mark.parametrize(
    ("history", "rule"),
    [
        (attempts([1, 2, 3, 4, 5, 6]), None),  # 6 in D-6..D-1, the list's call is the 7th
        (attempts([1, 1, 2, 3, 4, 5, 6]), "attempts_7d"),
        (attempts([0.4, 1, 2, 3, 4, 5, 6]), "attempts_7d"),  # earlier on D itself (as_of is D's midnight)
        (attempts([1, 2, 3, 4, 5, 6, 7, 7, 7]), None),  # D-7 lies outside every 7 days holding D
        (attempts([1, 2, 3, 4, 5, 6]) + attempts([6], "busy"), "attempts_7d"),  # every outcome is an attempt
        # A wrong number is an attempt too; our call since that reached the debtor about another debt shows the
        # number right (a number known wrong is never called), and its conversation quiets that other debt only.
        (
            attempts([1, 2, 3, 4, 5, 6])
            + attempts([6], "wrong_number")
            + attempts([5], "right_party", "outbound", "A2"),
            "attempts_7d",
        ),
        (attempts([1, 2, 3, 4, 5, 6]) + attempts([6], "no_answer", "inbound"), None),  # the debtor's own call
        (attempts([1, 2, 3, 4, 5, 6]) + [sms("A1", chicago_noon(6))], None),  # a message is no call
    ],
)
def test_reg_f_at_most_7_call_attempts_in_7_days_per_debt(history, rule):
    history = [{**row, "contact_id": f"K{index}"} for index, row in enumerate(history)]
    accounts = [
        account_row("A1", timezone="America/Chicago"),
        account_row("A2", customer_id="CA1", timezone="America/Chicago"),
    ]
    export = build_export("2026-11-23T17:00:00Z", accounts, history)  # 11:00 in Chicago
    assert_both(export, reg_f(), NOON, rule)


def test_reg_f_attempts_on_another_debt_of_the_customer_do_not_count():
    accounts = [
        account_row("A1", customer_id="C1", timezone="America/Chicago"),
        account_row("A2", customer_id="C1", timezone="America/Chicago"),
    ]
    export = chicago(attempts([1, 2, 3, 4, 5, 6, 6], account="A2"), accounts)
    assert_both(export, reg_f(), NOON, None, "A1")
    assert_both(export, reg_f(), NOON, "attempts_7d", "A2")


@pytest.mark.parametrize(
    ("days_before", "outcome", "direction", "rule"),
    [
        (6, "right_party", "outbound", "quiet_period"),  # day 7 of 7
        (7, "right_party", "outbound", None),  # day 8
        (0, "promise_to_pay", "outbound", "quiet_period"),  # earlier the same local day: day 1
        (6, "refused", "inbound", "quiet_period"),  # the debtor's own call is a conversation too
        (6, "dispute", "inbound", "quiet_period"),
        (1, "hung_up", "outbound", None),  # nobody talked about the debt
        (1, "third_party", "outbound", None),
        (1, "voicemail", "outbound", None),
    ],
)
def test_reg_f_no_call_within_7_days_of_a_conversation_its_day_being_day_1(days_before, outcome, direction, rule):
    at = chicago_noon(days_before) if days_before else local("01:00", "America/Chicago")
    export = build_export(
        "2026-11-23T17:00:00Z",
        [account_row("A1", timezone="America/Chicago")],
        [call_row("A1", at, outcome, direction)],
    )
    assert_both(export, reg_f(), NOON, rule)


def test_reg_f_days_of_the_quiet_period_are_the_debtors():
    # 05:59Z on the 17th is 23:59 on the 16th in Chicago: day 8 on D for the debtor (day 7 in UTC dates).
    export = chicago([call_row("A1", "2026-11-17T05:59Z", "right_party")])
    assert_both(export, reg_f(), NOON, None)
    # 06:00Z is 00:00 on the 17th in Chicago: day 7 on D.
    export = chicago([call_row("A1", "2026-11-17T06:00Z", "right_party")])
    assert_both(export, reg_f(), NOON, "quiet_period")


def test_reg_f_a_conversation_about_another_debt_of_the_customer_leaves_this_one_callable():
    # Regulation F counts the quiet week per debt: A2's conversation blocks A2, not A1.
    accounts = [
        account_row("A1", customer_id="C1", timezone="America/Chicago"),
        account_row("A2", customer_id="C1", timezone="America/Chicago"),
    ]
    export = chicago([call_row("A2", chicago_noon(1), "right_party")], accounts)
    assert_both(export, reg_f(), NOON, None, "A1")
    assert_both(export, reg_f(), NOON, "quiet_period", "A2")


# --- always: flags on any account of the customer ---------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "rule"),
    [
        ("do_not_call", "no_call_flag"),
        ("cease_contact", "no_call_flag"),
        ("deceased", "no_call_flag"),
        ("bankruptcy", "no_call_flag"),
        ("dispute_open", "special_handling"),
        ("complaint_open", "special_handling"),
        ("hardship", "special_handling"),
    ],
)
@pytest.mark.parametrize("policy", ["cn", "us_reg_f"])
def test_a_flag_on_any_account_of_the_customer_keeps_every_account_off_the_dialler(flag, rule, policy):
    accounts = [account_row("A1", customer_id="C1"), account_row("A2", customer_id="C1", **{flag: True})]
    export = build_export("2026-11-22T16:00:00Z", accounts)
    ops = operations(policy, centre="Asia/Shanghai", shift=("09:00", "18:00"))
    for account in ("A1", "A2"):
        assert_both(export, ops, local("10:00", "Asia/Shanghai"), rule, account)
    result = rank_calls(export, ops, DAY, flat_scores(export), constant_contact)
    assert result.call_list.empty
    assert sorted(result.special_handling["account_id"]) == (["A1", "A2"] if rule == "special_handling" else [])


# --- capacity -------------------------------------------------------------------------------------------


def test_no_slot_holds_more_calls_than_the_teams_hourly_capacity():
    accounts = [account_row(f"A{index}") for index in range(7)]
    export = build_export("2026-11-22T16:00:00Z", accounts)
    ops = operations("cn", shift=("09:00", "11:00"), capacity=(3, 1))  # two hours of 3 calls
    result = rank_calls(export, ops, DAY, flat_scores(export), constant_contact)
    assert result.call_list.groupby("call_at").size().tolist() == [3, 3]
    assert check_call_list(result.call_list, export, ops, DAY) == []
    crowded = result.call_list.assign(call_at=result.call_list["call_at"].min(), local_hour=9)
    assert rules_broken(crowded, export, ops, DAY) == {"capacity"}
