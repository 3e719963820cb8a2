"""The compliance guard catches every rule, one deliberately broken list (or export) at a time."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from serving.compliance import ComplianceError, assert_compliant, check_call_list
from serving.ranking import rank_calls
from tests.serving.portfolios import account_row, build_export, call_row, constant_contact, flat_scores, operations

DAY = "2026-11-23"
AS_OF = "2026-11-22T16:00:00Z"  # 00:00 of D in Shanghai


def shanghai():
    accounts = [
        account_row("A1", customer_id="C1"),
        account_row("A2", customer_id="C1"),
        account_row("A3"),
        account_row("A4", team=None),
    ]
    default = {"team": "default", "agents": 2, "calls_per_agent_hour": 1, "shift": {"start": "09:00", "end": "18:00"}}
    ops = operations("cn", shift=("09:00", "18:00"), capacity=(2, 1), teams=[default])
    export = build_export(AS_OF, accounts)
    calls = rank_calls(export, ops, DAY, flat_scores(export), constant_contact).call_list
    assert len(calls) == 4
    return export, ops, calls


def chicago():
    export = build_export("2026-11-23T06:00:00Z", [account_row("A1", timezone="America/Chicago")])
    ops = operations("us_reg_f", centre="America/Chicago", shift=("09:00", "18:00"))
    calls = rank_calls(export, ops, DAY, flat_scores(export), constant_contact).call_list
    assert len(calls) == 1
    return export, ops, calls


def rules_broken(calls, export, ops, day=DAY) -> set[str]:
    return {violation.rule for violation in check_call_list(calls, export, ops, day)}


def with_accounts(export, **changes):
    """The export with account A1's columns changed."""
    accounts = export.accounts.copy()
    for column, value in changes.items():
        accounts.loc[accounts["account_id"] == "A1", column] = value
    return dataclasses.replace(export, accounts=accounts)


def with_calls(export, calls):
    contacts = pd.concat([export.contacts, build_export(str(export.as_of), [], calls).contacts], ignore_index=True)
    return dataclasses.replace(export, contacts=contacts)


def row_of(calls, account="A1"):
    return calls.index[calls["account_id"] == account][0]


def test_a_ranked_list_is_clean():
    export, ops, calls = shanghai()
    assert check_call_list(calls, export, ops, DAY) == []
    assert_compliant(calls, export, ops, DAY)
    assert check_call_list(calls.iloc[0:0], export, ops, DAY) == []


def test_columns_list_date_and_ranks():
    export, ops, calls = shanghai()
    assert rules_broken(calls.drop(columns="call_at"), export, ops) == {"columns"}
    assert rules_broken(calls, export, ops, "2026-11-24") >= {"list_date"}
    duplicate = calls.assign(rank=[1, 1, 2, 3])
    assert rules_broken(duplicate, export, ops) == {"rank"}
    gap = calls.assign(rank=[1, 2, 3, 5])
    assert rules_broken(gap, export, ops) == {"rank"}


def test_accounts_customers_and_teams():
    export, ops, calls = shanghai()
    assert "unknown_account" in rules_broken(calls.assign(account_id=["A1", "A2", "A3", "ZZ"]), export, ops)
    twice = pd.concat([calls, calls.iloc[[0]].assign(rank=5)], ignore_index=True)
    assert "duplicate_account" in rules_broken(twice, export, ops)
    wrong_customer = calls.assign(customer_id=calls["customer_id"].where(calls["account_id"] != "A3", "C1"))
    assert rules_broken(wrong_customer, export, ops) == {"customer_mismatch"}
    # A4 has no team: it belongs to `default`, not `early`.
    wrong_team = calls.assign(team="early")
    assert rules_broken(wrong_team, export, ops) == {"team_mismatch"}
    ghost = with_accounts(export, team="ghost")
    assert "unknown_team" in rules_broken(
        calls.assign(team=calls["team"].mask(calls["account_id"] == "A1", "ghost")), ghost, ops
    )


def test_slot_must_be_a_whole_shift_hour_on_the_list_date_and_not_past():
    export, ops, calls = shanghai()
    row = calls["call_at"].idxmin()  # the shift's first hour: five hours earlier is outside the shift
    assert calls.loc[row, "call_at"].tz_convert("Asia/Shanghai").hour == 9
    for moved in (pd.Timedelta(minutes=30), pd.Timedelta(hours=-5), pd.Timedelta(days=1)):
        broken = calls.copy()
        broken.loc[row, "call_at"] = calls.loc[row, "call_at"] + moved
        broken.loc[row, "local_hour"] = (broken.loc[row, "call_at"].tz_convert("Asia/Shanghai")).hour
        assert "shift_slot" in rules_broken(broken, export, ops), moved
    late = dataclasses.replace(export, as_of=pd.Timestamp("2026-11-23T09:00Z"))
    assert "slot_in_past" in rules_broken(calls, late, ops)


def test_local_hour_must_match_the_debtors_zone():
    export, ops, calls = shanghai()
    assert rules_broken(calls.assign(local_hour=calls["local_hour"] + 1), export, ops) == {"local_hour"}


def test_capacity_per_team_and_slot():
    export, ops, calls = shanghai()
    crowded = calls.assign(call_at=calls["call_at"].iloc[0], local_hour=calls["local_hour"].iloc[0], team="early")
    crowded = crowded[crowded["account_id"] != "A4"].assign(rank=[1, 2, 3])
    assert rules_broken(crowded, export, ops) == {"capacity"}


@pytest.mark.parametrize("flag", ["do_not_call", "cease_contact", "deceased", "bankruptcy"])
def test_no_call_flags_on_any_account_of_the_customer(flag):
    export, ops, calls = shanghai()
    flagged = with_accounts(export, **{flag: True})
    broken = check_call_list(calls, flagged, ops, DAY)
    assert {(v.account_id, v.rule) for v in broken} == {("A1", "no_call_flag"), ("A2", "no_call_flag")}


@pytest.mark.parametrize("flag", ["dispute_open", "complaint_open", "hardship"])
def test_special_handling_flags_keep_the_customers_accounts_off_the_list(flag):
    export, ops, calls = shanghai()  # A1 and A2 are C1's
    broken = check_call_list(calls, with_accounts(export, **{flag: True}), ops, DAY)
    assert sorted((v.account_id, v.rule) for v in broken) == [("A1", "special_handling"), ("A2", "special_handling")]


def test_accounts_withheld_by_a_lenient_load_are_neither_ranked_nor_passed():
    export, ops, calls = shanghai()
    withheld = dataclasses.replace(export, withheld=frozenset({"A1", "A2"}))  # C1 lost a row
    broken = check_call_list(calls, withheld, ops, DAY)
    assert {(v.account_id, v.rule) for v in broken} == {("A1", "rejected_rows"), ("A2", "rejected_rows")}
    result = rank_calls(withheld, ops, DAY, flat_scores(withheld), constant_contact)
    assert set(result.call_list["account_id"]) == {"A3", "A4"}
    assert result.diagnostics.excluded["rejected_rows"] == 2
    assert check_call_list(result.call_list, withheld, ops, DAY) == []


def test_nothing_overdue():
    export, ops, calls = shanghai()
    paid = dataclasses.replace(export, dues=export.dues[export.dues["account_id"] != "A1"])
    assert rules_broken(calls, paid, ops) == {"nothing_overdue"}


@pytest.mark.parametrize(("local_hour", "allowed"), [(7, False), (8, True), (21, True), (22, False)])
def test_cn_window_boundaries(local_hour, allowed):
    export, _, calls = shanghai()
    ops = operations("cn", shift=("00:00", "23:59"), capacity=(9, 1))
    broken = calls.assign(
        call_at=pd.Timestamp(f"{DAY}T{local_hour:02d}:00", tz="Asia/Shanghai").tz_convert("UTC"),
        local_hour=local_hour,
        team="early",
    )
    broken = broken[broken["account_id"] != "A4"]
    assert ("call_window" not in rules_broken(broken, export, ops)) is allowed


def test_reg_f_window_ends_at_21():
    export, ops, calls = chicago()
    at_21 = calls.assign(call_at=pd.Timestamp(f"{DAY}T21:00", tz="America/Chicago").tz_convert("UTC"), local_hour=21)
    ops_late = operations("us_reg_f", centre="America/Chicago", shift=("09:00", "23:00"))
    assert rules_broken(at_21, export, ops_late) == {"call_window"}


def test_reg_f_quiet_period_after_a_conversation():
    export, ops, calls = chicago()
    assert rules_broken(calls, export, ops) == set()
    talked = with_calls(export, [call_row("A1", "2026-11-17T18:00Z", "refused", "inbound")])
    assert rules_broken(calls, talked, ops) == {"quiet_period"}
    week_ago = with_calls(export, [call_row("A1", "2026-11-16T18:00Z", "refused", "inbound")])
    assert rules_broken(calls, week_ago, ops) == set()


def test_reg_f_seven_attempts_in_seven_days():
    export, ops, calls = chicago()
    six = [call_row("A1", f"2026-11-{day}T18:00Z") for day in range(17, 23)]
    assert rules_broken(calls, with_calls(export, six), ops) == set()
    seven = [*six, call_row("A1", "2026-11-22T19:00Z", "busy")]
    assert rules_broken(calls, with_calls(export, seven), ops) == {"attempts_7d"}


def test_reg_f_days_are_counted_in_every_zone_of_the_customer():
    # C1's accounts are in Chicago and New York (unsure of the zone). 05:30Z on the 16th is the 15th in
    # Chicago but the 16th in New York, so on the 22nd a conversation then is day 8 or day 7.
    accounts = [
        account_row("A1", customer_id="C1", timezone="America/Chicago"),
        account_row("A2", customer_id="C1", timezone="America/New_York"),
    ]
    ops = operations("us_reg_f", centre="America/Chicago", shift=("09:00", "18:00"))
    day = "2026-11-22"
    six = [call_row("A1", f"2026-11-{date}T18:00Z") for date in range(17, 23)]
    for history, rule in (
        ([call_row("A1", "2026-11-16T05:30Z", "right_party")], "quiet_period"),
        ([*six, call_row("A1", "2026-11-16T05:30Z", "busy")], "attempts_7d"),  # 7 in New York's week
    ):
        export = build_export("2026-11-22T06:00:00Z", accounts, history)
        calls = rank_calls(export, ops, day, flat_scores(export), constant_contact).call_list
        assert calls["account_id"].tolist() == ["A2"]
        assert check_call_list(calls, export, ops, day) == []
        a1 = calls.assign(account_id="A1", local_hour=calls["call_at"].dt.tz_convert("America/Chicago").dt.hour)
        assert rules_broken(a1, export, ops, day) == {rule}
        alone = build_export("2026-11-22T06:00:00Z", accounts[:1], history)  # Chicago only: day 8, 7 attempts
        assert rank_calls(alone, ops, day, flat_scores(alone), constant_contact).call_list["account_id"].tolist() == [
            "A1"
        ]


def test_cn_daily_limits_per_customer_count_history_and_list():
    export, ops, calls = shanghai()
    # A1 and A2 share customer C1: both on the list, each list call counts as unanswered and connected.
    two_connected = [call_row("A2", "2026-11-22T23:00Z", "right_party"), call_row("A1", "2026-11-22T23:30Z", "hung_up")]
    assert rules_broken(calls, with_calls(export, two_connected), ops) == {"daily_connected"}
    five_unanswered = [call_row("A2", f"2026-11-22T23:{minute:02d}Z") for minute in range(5)]
    assert rules_broken(calls, with_calls(export, five_unanswered), ops) == {"daily_unanswered"}
    four_unanswered = five_unanswered[:4]
    assert rules_broken(calls, with_calls(export, four_unanswered), ops) == set()
    yesterday = [call_row("A2", f"2026-11-22T15:{minute:02d}Z") for minute in range(6)]  # 23:xx on the 22nd
    assert rules_broken(calls, with_calls(export, yesterday), ops) == set()
    # The debtor's own calls that were answered are connected calls too; missed ones are not our attempts.
    inbound = [
        call_row("A2", "2026-11-22T23:00Z", "right_party", "inbound"),
        call_row("A1", "2026-11-22T23:30Z", "refused", "inbound"),
    ]
    assert rules_broken(calls, with_calls(export, inbound), ops) == {"daily_connected"}
    missed = [call_row("A2", f"2026-11-22T23:{minute:02d}Z", "no_answer", "inbound") for minute in range(5)]
    assert rules_broken(calls, with_calls(export, missed), ops) == set()


def test_assert_compliant_names_account_slot_and_rule():
    export, ops, calls = shanghai()
    with pytest.raises(ComplianceError) as raised:
        assert_compliant(calls, with_accounts(export, cease_contact=True), ops, DAY)
    lines = str(raised.value).splitlines()
    assert len(lines) == 3 and "account A1 at 2026-11-23T" in lines[1] and "no_call_flag" in lines[1]
    assert len(raised.value.violations) == 2
