"""Adversarial cases found by an audit of the ranker's filter (`serving.eligibility`, `serving.slots`) against
the guard (`serving.compliance`): each case is judged by both, and by README's reading of DOMAIN.md."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from features.contract import Operations
from serving.compliance import check_call_list
from serving.ranking import rank_calls
from tests.serving.portfolios import (
    account_row,
    build_export,
    candidate_times,
    constant_contact,
    flat_scores,
    one_call,
    operations,
    rules_broken,
)

# --- the call window where the debtor's clock jumps inside or at the end of the hour ----------------------


def test_an_hour_that_ends_where_the_clock_springs_forward_past_the_window_end_is_inside():
    # Easter Island springs forward from 22:00 (-06) to 23:00 (-05) at 04:00Z on 2026-09-06: the hour from
    # 03:00Z reads 21:00-21:59:59 and ends as the clock jumps. All of it lies before cn's 22:00.
    export = build_export("2026-09-05T12:00:00Z", [account_row("A1", timezone="Pacific/Easter")])
    cn = operations("cn", centre="America/Chicago", shift=("09:00", "23:00"))  # 22:00 CDT is 03:00Z
    day = "2026-09-05"
    assert rules_broken(one_call(export, "2026-09-06T03:00Z", day), export, cn, day) == set()
    assert pd.Timestamp("2026-09-06T03:00Z") in candidate_times(export, cn, day)


def test_an_hour_the_clock_sets_back_inside_is_read_minute_by_minute():
    # Easter Island sets back from 22:00 (-05) to 21:00 (-06) at 03:00Z on 2026-04-05. A Kathmandu centre
    # (+05:45) starts hours at :15 Easter time: from 02:15Z the debtor's clock reads 21:15-21:59 (-05), then
    # 21:00-21:14 (-06): all before cn's 22:00, all after Reg F's 21:00.
    export = build_export("2026-04-04T18:15:00Z", [account_row("A1", timezone="Pacific/Easter")])
    day = "2026-04-05"
    cn = operations("cn", centre="Asia/Kathmandu", shift=("08:00", "09:00"))
    assert rules_broken(one_call(export, "2026-04-05T02:15Z", day), export, cn, day) == set()
    assert candidate_times(export, cn, day) == {pd.Timestamp("2026-04-05T02:15Z")}
    reg_f = operations("us_reg_f", centre="Asia/Kathmandu", shift=("08:00", "09:00"))
    assert rules_broken(one_call(export, "2026-04-05T02:15Z", day), export, reg_f, day) == {"call_window"}
    assert candidate_times(export, reg_f, day) == set()


def test_an_hour_the_clock_springs_forward_inside_still_reaches_past_the_window_end():
    # From 03:30Z on 2026-09-06 Easter Island reads 21:30-21:59 (-06), then 23:00-23:29 (-05): after 22:00.
    export = build_export("2026-09-05T18:30:00Z", [account_row("A1", timezone="Pacific/Easter")])
    day = "2026-09-06"
    cn = operations("cn", centre="Asia/Kolkata", shift=("09:00", "10:00"))  # 09:00 IST is 03:30Z
    assert rules_broken(one_call(export, "2026-09-06T03:30Z", day), export, cn, day) == {"call_window"}
    assert candidate_times(export, cn, day) == set()


def test_an_all_day_window_allows_an_hour_across_the_debtors_midnight():
    # A custom window of 00:00-24:00 allows every hour; a Kolkata debtor's 23:30-00:30 is one of them.
    export = build_export("2026-11-23T00:00:00Z", [account_row("A1", timezone="Asia/Kolkata")])
    day = "2026-11-23"
    ops = Operations.model_validate(
        {
            "centre_timezone": "UTC",
            "policy": "custom",
            "rules": {"call_window_start": 0, "call_window_end": 24},
            "teams": [
                {"team": "early", "agents": 1, "calls_per_agent_hour": 1, "shift": {"start": "00:00", "end": "24:00"}}
            ],
        }
    )
    assert rules_broken(one_call(export, "2026-11-23T18:00Z", day), export, ops, day) == set()
    assert len(candidate_times(export, ops, day)) == 24
    # Any shorter window keeps that hour out: half of it is on the next day, before 01:00 or after 23:00.
    for start, end in ((0, 23), (1, 24)):
        narrower = ops.model_copy(
            update={"rules": ops.rules.model_copy(update={"call_window_start": start, "call_window_end": end})}
        )
        assert rules_broken(one_call(export, "2026-11-23T18:00Z", day), export, narrower, day) == {"call_window"}
        assert pd.Timestamp("2026-11-23T18:00Z") not in candidate_times(export, narrower, day)


# --- compliance facts an export should not hold: the ranker reads them as the guard does ---------------------

SHANGHAI_DAY = "2026-11-23"
SHANGHAI_AS_OF = "2026-11-22T16:00:00Z"  # 00:00 of the 23rd in Shanghai


def shanghai_customer(**sibling):
    """C1 with A1 and A2 in Shanghai (`sibling` changes A2), and C3 with A3, who may always be called."""
    accounts = [account_row("A1", customer_id="C1"), account_row("A2", customer_id="C1", **sibling), account_row("A3")]
    return build_export(SHANGHAI_AS_OF, accounts)


def ranked(export, ops=None):
    ops = ops or operations("cn")
    result = rank_calls(export, ops, SHANGHAI_DAY, flat_scores(export), constant_contact)
    assert check_call_list(result.call_list, export, ops, SHANGHAI_DAY) == []
    return result


@pytest.mark.parametrize("zone", ["Factory", "+08:00", "", None, "Mars/Olympus", "posix/Asia/Shanghai", "localtime"])
def test_a_customer_in_no_known_zone_is_not_ranked(zone):
    # The guard refuses a call to a customer with an account in no known zone (its hours cannot be read): the
    # ranker must leave the customer off, not crash, and not put the whole day's list in the guard's way.
    export = shanghai_customer(timezone=zone)
    assert rules_broken(
        one_call(export, "2026-11-23T02:00Z", SHANGHAI_DAY), export, operations("cn"), SHANGHAI_DAY
    ) == {"timezone"}
    result = ranked(export)
    assert result.call_list["account_id"].tolist() == ["A3"]
    assert result.diagnostics.excluded["call_window"] == 2


@pytest.mark.parametrize("dtype", ["object", "boolean"])
def test_the_ranker_reads_a_null_flag_as_set(dtype):
    # As the guard does: a flag nobody knows may be set (a do_not_call on A2 stops calls to A1 too).
    export = shanghai_customer()
    for flag in ("do_not_call", "hardship"):
        accounts = export.accounts.astype({flag: dtype})
        accounts.loc[accounts["account_id"] == "A2", flag] = None if dtype == "object" else pd.NA
        unknown = dataclasses.replace(export, accounts=accounts)
        result = ranked(unknown)
        assert result.call_list["account_id"].tolist() == ["A3"], flag
        if flag == "hardship":
            assert sorted(result.special_handling["account_id"]) == ["A1", "A2"]


def test_a_withheld_sibling_keeps_the_customer_off_the_ranked_list():
    # A lenient load withholds every account of the customer; an Export naming one account must be read the same.
    export = dataclasses.replace(shanghai_customer(), withheld=frozenset({"A2"}))
    result = ranked(export)
    assert result.call_list["account_id"].tolist() == ["A3"]
    assert result.diagnostics.excluded["rejected_rows"] == 2


def test_a_shift_starting_a_moment_after_the_hour_has_no_slot_in_that_hour():
    # "09:00:00.5" parses (pydantic reads the fraction); the hour 09:00-10:00 is not whole inside the shift, so
    # it is no slot (the guard refuses a call in it, as it would any call outside the shift's whole hours).
    ops = operations("cn", shift=("09:00:00.5", "12:00"))
    export = shanghai_customer()
    assert not ranked(export, ops).call_list.empty
    assert candidate_times(export, ops, SHANGHAI_DAY) == {
        pd.Timestamp("2026-11-23T02:00Z"),
        pd.Timestamp("2026-11-23T03:00Z"),
    }
    assert rules_broken(one_call(export, "2026-11-23T01:00Z", SHANGHAI_DAY), export, ops, SHANGHAI_DAY) == {
        "shift_slot"
    }


# --- the call window against a minute-by-minute reading of the debtor's clock --------------------------------

# Zones whose clocks jump: DST in both hemispheres, at midnight (Santiago), by 30 minutes (Lord Howe), at :45
# (Chatham), at the cn window's end (Easter Island); half and quarter hour offsets without DST.
JUMPING_ZONES = (
    "America/New_York",
    "Australia/Sydney",
    "Europe/London",
    "America/Santiago",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "Pacific/Easter",
    "America/St_Johns",
    "Asia/Kathmandu",
)


def _transitions(zone: str) -> list[pd.Timestamp]:
    """The instants of 2026 at which the zone's UTC offset changes (quarter-hour resolution)."""
    grid = pd.date_range("2026-01-01", "2027-01-01", freq="15min", tz="UTC")
    offsets = grid.tz_convert(zone).tz_localize(None) - grid.tz_localize(None)
    changed = offsets[1:] != offsets[:-1]
    return list(grid[1:][changed]) or [pd.Timestamp("2026-06-01", tz="UTC")]


def _minute_by_minute(at: pd.Timestamp, zone: str, start: int, end: int) -> bool:
    """Every minute of the hour from `at`, as the debtor's clock reads it, inside [start:00, end:00] of its day."""
    clock = (at + pd.to_timedelta(range(60), unit="min")).tz_convert(zone)
    minute = clock.hour * 60 + clock.minute
    return bool(((minute >= start * 60) & (minute + 1 <= end * 60)).all())


@pytest.mark.parametrize(("start", "end"), [(8, 22), (8, 21), (0, 24), (1, 23), (0, 12), (12, 24)])
def test_the_window_of_ranker_and_guard_matches_the_debtors_clock_read_minute_by_minute(start, end):
    from serving.slots import in_call_window, local_slot_table

    rows = []
    for zone in JUMPING_ZONES:
        for change in _transitions(zone):
            for at in pd.date_range(change - pd.Timedelta(hours=14), change + pd.Timedelta(hours=14), freq="15min"):
                rows.append((zone, at))
    rules = Operations.model_validate(
        {
            "centre_timezone": "UTC",
            "policy": "custom",
            "rules": {"call_window_start": start, "call_window_end": end},
            "teams": [
                {"team": "early", "agents": 1, "calls_per_agent_hour": 1, "shift": {"start": "00:00", "end": "24:00"}}
            ],
        }
    )
    expected = [_minute_by_minute(at, zone, start, end) for zone, at in rows]
    # The ranker: its table of every (zone, instant).
    instants = pd.DatetimeIndex(sorted({at for _, at in rows}))
    table = local_slot_table(list(JUMPING_ZONES), instants)
    window = in_call_window(table["low_minute"], table["high_minute"], rules.policy_rules)
    ranker = [bool(window[JUMPING_ZONES.index(zone), instants.get_loc(at)]) for zone, at in rows]
    assert [row for row, (a, b) in zip(rows, zip(ranker, expected, strict=True), strict=True) if a != b] == []
    # The guard: one call per row, each to its own debtor (other rules, such as the shift's hours, are not read).
    accounts = [account_row(f"A{i}", timezone=zone) for i, (zone, _) in enumerate(rows)]
    export = build_export("2025-12-01T00:00:00Z", accounts)
    calls = pd.DataFrame(
        {
            "list_date": pd.Timestamp("2026-01-01"),
            "rank": range(1, len(rows) + 1),
            "account_id": [f"A{i}" for i in range(len(rows))],
            "customer_id": [f"CA{i}" for i in range(len(rows))],
            "team": "early",
            "call_at": [at for _, at in rows],
            "local_hour": [at.tz_convert(zone).hour for zone, at in rows],
            "amount_overdue": 100.0,
        }
    )
    refused = {v.account_id for v in check_call_list(calls, export, rules, "2026-01-01") if v.rule == "call_window"}
    guard = [f"A{i}" not in refused for i in range(len(rows))]
    assert [row for row, (a, b) in zip(rows, zip(guard, expected, strict=True), strict=True) if a != b] == []
