"""Promise features on hand-built accounts: kept within the grace day, broken, pending, point in time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_features
from tests.features.random_export import account_row, make_export
from tests.features.test_stage import payment


def promise(created: str, promised: str, amount: float, pid: str) -> dict:
    return {
        "promise_id": pid,
        "account_id": "A",
        "created_at": pd.Timestamp(created, tz="UTC"),
        "promised_date": promised,
        "promised_amount": amount,
        "contact_id": None,
    }


def at(export, *stamps: str) -> list[pd.Series]:
    snapshots = pd.DataFrame(
        {"account_id": ["A"] * len(stamps), "as_of": pd.to_datetime(list(stamps), utc=True, format="ISO8601")}
    )
    return [row for _, row in build_features(export, snapshots).iterrows()]


def test_kept_in_the_grace_day_broken_after_it_and_pending_before():
    export = make_export(
        accounts=[account_row("A")],
        promises=[
            promise("2026-06-01 10:00", "2026-06-05", 100.0, "kept"),
            promise("2026-06-02 10:00", "2026-06-10", 100.0, "broken"),
            promise("2026-06-12 10:00", "2026-06-20", 50.0, "pending"),
        ],
        payments=[
            payment("2026-05-31 10:00", 500.0, pid="P0"),  # before the promises: counts for none
            payment("2026-06-06 12:00", 60.0, pid="P1"),  # grace day of "kept", also inside "broken"'s window
            payment("2026-06-06 13:00", 40.0, pid="P2"),
            payment("2026-06-15 00:00", 100.0, pid="P3"),  # exactly at as_of: invisible
        ],
    )
    (row,) = at(export, "2026-06-15")
    assert (row["promises_made_90d"], row["promises_kept_90d"], row["promises_broken_90d"]) == (3, 2, 0)
    assert row["promises_pending"] == 1
    assert row["days_to_pending_promise"] == 5
    assert not row["promise_broken_7d"]
    assert row["promise_kept_ratio"] == 1.0


def test_broken_promise_is_recent_for_seven_days():
    export = make_export(
        pd.Timestamp("2026-06-20", tz="UTC"),
        accounts=[account_row("A")],
        promises=[promise("2026-06-02 10:00", "2026-06-10", 100.0, "Q")],
        payments=[payment("2026-06-13 10:00", 100.0)],  # too late for the promise
    )
    during, grace, after, week_later = at(export, "2026-06-10 12:00", "2026-06-11 23:00", "2026-06-15", "2026-06-19")
    assert (during["promises_pending"], during["days_to_pending_promise"]) == (1, 0)
    assert (grace["promises_pending"], grace["days_to_pending_promise"]) == (1, -1)
    assert (after["promises_broken_90d"], after["promise_broken_7d"]) == (1, True)
    assert after["days_since_last_broken_promise"] == 3.0  # deadline: end of 2026-06-11
    assert after["promise_kept_ratio"] == 0.0
    assert not week_later["promise_broken_7d"]


def test_the_grace_day_ends_at_the_debtors_midnight():
    # Promised for 06-10 in Los Angeles: the grace day 06-11 ends at 07:00 UTC on 06-12 (PDT).
    def seen(timezone: str, paid: str, as_of: str) -> pd.Series:
        export = make_export(
            pd.Timestamp("2026-06-20", tz="UTC"),
            accounts=[account_row("A", timezone=timezone)],
            promises=[promise("2026-06-02 10:00", "2026-06-10", 100.0, "Q")],
            payments=[payment(paid, 100.0)],
        )
        return at(export, as_of)[0]

    evening = seen("America/Los_Angeles", "2026-06-12 02:00", "2026-06-15")  # 19:00 local on the grace day
    assert (evening["promises_kept_90d"], evening["promises_broken_90d"]) == (1, 0)
    assert seen("UTC", "2026-06-12 02:00", "2026-06-15")["promises_broken_90d"] == 1
    late = seen("America/Los_Angeles", "2026-06-12 08:00", "2026-06-15")  # 01:00 local on 06-12
    assert (late["promises_broken_90d"], late["days_since_last_broken_promise"]) == (1, (3 * 24 - 7) / 24)
    # Shanghai's grace day ends at 16:00 UTC on 06-11: broken then, already at 18:00 UTC.
    assert seen("Asia/Shanghai", "2026-06-11 17:00", "2026-06-11 18:00")["promise_broken_7d"]


def test_a_promise_kept_later_is_pending_before_the_payment():
    export = make_export(
        accounts=[account_row("A")],
        promises=[promise("2026-06-01 10:00", "2026-06-05", 100.0, "Q")],
        payments=[payment("2026-06-04 10:00", 100.0)],
    )
    before, after = at(export, "2026-06-04 10:00", "2026-06-04 10:00:01")
    assert (before["promises_pending"], before["promises_kept_90d"]) == (1, 0)
    assert (after["promises_pending"], after["promises_kept_90d"]) == (0, 1)
    assert np.isnan(after["days_to_pending_promise"])
    assert np.isnan(at(export, "2026-06-01 10:00")[0]["promise_kept_ratio"])  # created exactly at as_of
