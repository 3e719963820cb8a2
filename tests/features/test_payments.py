"""Payment features on hand-built accounts: windows, lateness, partials, payday."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_features
from features.payments import days_until_day_of_month
from features.timeline import to_us
from tests.features.random_export import AS_OF, account_row, make_export
from tests.features.test_stage import due, payment


def one(timezone: str = "UTC", **rows) -> pd.Series:
    return build_features(make_export(accounts=[account_row("A", timezone=timezone)], **rows)).iloc[0]


def test_windows_include_their_start_and_exclude_as_of():
    start = AS_OF - pd.Timedelta(days=30)
    rows = [
        payment(str(start.tz_localize(None)), 10.0, pid="P1"),
        payment(str((start - pd.Timedelta(seconds=1)).tz_localize(None)), 20.0, pid="P2"),
        payment(str(AS_OF.tz_localize(None)), 40.0, pid="P3"),
        payment("2026-06-01", 80.0, status="returned", pid="P4"),
    ]
    row = one(payments=rows)
    assert (row["payments_settled_sum_30d"], row["payments_settled_count_30d"]) == (10.0, 1)
    assert (row["payments_settled_sum_90d"], row["payments_settled_count_90d"]) == (30.0, 2)
    assert (row["payments_returned_sum_30d"], row["payments_returned_count_30d"]) == (80.0, 1)
    assert row["returned_share_180d"] == 1 / 3
    assert row["days_since_last_payment"] == 30.0  # the returned one is not a payment


def test_lateness_partials_and_dues_covered():
    row = one(
        dues=[due("2026-02-01", 100.0), due("2026-04-01", 100.0), due("2026-05-01", 100.0)],
        payments=[
            payment("2026-02-03 08:00", 100.0, pid="P1"),  # 2 days late, full
            payment("2026-04-11 08:00", 40.0, pid="P2"),  # 10 days late, partial
            payment("2026-04-20 08:00", 60.0, pid="P3"),  # same due (oldest first), 19 days late, partial
        ],
    )
    assert row["payments_partial_count_180d"] == 2
    assert row["payment_lateness_mean_90d"] == (10 + 19) / 2
    assert row["payment_lateness_trend_180d"] == (10 + 19) / 2 - 2
    assert row["dues_covered_share_90d"] == 0.5  # 04-01 covered, 05-01 not
    assert row["dues_covered_share_180d"] == 2 / 3


def test_lateness_counts_the_debtors_own_days():
    # 19:00 on the due date in Los Angeles is 03:00 UTC the next day: on time where the debtor lives.
    dues = [due("2026-04-01", 100.0)]
    evening = [payment("2026-04-02 02:00", 100.0)]  # 19:00 PDT on 04-01
    assert one(timezone="America/Los_Angeles", dues=dues, payments=evening)["payment_lateness_mean_90d"] == 0
    assert one(dues=dues, payments=evening)["payment_lateness_mean_90d"] == 1  # a debtor in UTC paid a day late
    # 00:30 in Shanghai on 04-03 is 16:30 UTC on 04-02: two days late there.
    night = [payment("2026-04-02 16:30", 100.0)]
    assert one(timezone="Asia/Shanghai", dues=dues, payments=night)["payment_lateness_mean_90d"] == 2


def test_a_payment_is_matched_only_to_dues_an_export_taken_then_would_hold():
    # The export taken at as_of holds dues up to 62 days ahead, so a training snapshot must not match
    # a payment to a due further out: a prepayment beyond that has no due (not partial, no lateness).
    dues = [due("2026-04-01", 100.0), due("2026-06-10", 100.0)]
    early = one(dues=dues, payments=[payment("2026-03-25 08:00", 100.0, pid="P1"), payment("2026-04-05", 40.0)])
    assert early["payments_partial_count_180d"] == 0  # 06-10 is 66 days after 04-05
    assert early["payment_lateness_mean_90d"] == 0  # the first payment only (on time)
    ahead = one(dues=dues, payments=[payment("2026-03-25 08:00", 100.0, pid="P1"), payment("2026-04-10", 40.0)])
    assert ahead["payments_partial_count_180d"] == 1  # 06-10 is 61 days after 04-10


def test_payday_is_the_debtor_local_day_of_month():
    # 16:30 UTC is 00:30 the next day in Shanghai: the debtor pays on the 25th.
    rows = [payment(f"2026-0{m}-24 16:30", 50.0, pid=f"P{m}") for m in (2, 3, 4, 5)]
    shanghai = one(timezone="Asia/Shanghai", payments=rows)
    assert (shanghai["payday_day_of_month"], shanghai["next_payday_in_days"]) == (25, 10)
    assert np.isclose(shanghai["payday_concentration"], 1.0, atol=0.01)
    assert one(payments=rows)["payday_day_of_month"] == 24
    assert np.isnan(one()["next_payday_in_days"])


def test_days_until_day_of_month_clamps_to_month_length():
    days = to_us(pd.Series(pd.to_datetime(["2026-06-15", "2026-06-15", "2026-02-28", "2026-06-30", "2026-01-31"])))
    assert list(days_until_day_of_month(days, np.array([15, 31, 30, 1, 30]))) == [0, 15, 0, 1, 28]


def test_paid_to_due_is_window_payments_over_the_dues_fallen_in_the_window():
    row = one(
        dues=[due("2026-03-17", 100.0), due("2026-05-16", 100.0), due("2026-06-15", 100.0)],
        payments=[payment("2026-05-20 08:00", 50.0), payment("2026-06-14 23:00", 100.0, pid="P2")],
    )
    # 30 d: the 05-16 due (the window's first day) only; the due on the as_of date has not fallen.
    assert row["paid_to_due_30d"] == 150.0 / 100.0
    assert row["paid_to_due_90d"] == row["paid_to_due_180d"] == 150.0 / 200.0  # 03-17 and 05-16
    no_recent_due = one(dues=[due("2026-05-15", 100.0)], payments=[payment("2026-06-01", 30.0)])
    assert np.isnan(no_recent_due["paid_to_due_30d"]) and no_recent_due["paid_to_due_90d"] == 0.3
