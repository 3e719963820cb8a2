"""Contact features on hand-built accounts: attempts, streaks, local hours, smoothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.contacts import HOUR_BUCKETS, HOUR_SMOOTHING_ATTEMPTS, SMOOTHING_ATTEMPTS, hour_bucket
from tests.features.random_export import AS_OF, account_row, make_export

_ids = iter(range(10**6))


def call(at: str, outcome: str, account_id: str = "A", channel: str = "call", direction: str = "outbound") -> dict:
    return {
        "contact_id": f"K{next(_ids)}",
        "account_id": account_id,
        "started_at": pd.Timestamp(at, tz="UTC"),
        "channel": channel,
        "direction": direction,
        "outcome": outcome,
        "agent_id": None,
        "duration_s": 10,
    }


def test_hour_buckets_cover_the_day():
    assert [hour_bucket(h) for h in (7, 8, 9, 10, 13, 14, 16, 17, 19, 21, 22, 23)] == [
        6,
        0,
        0,
        1,
        2,
        3,
        3,
        4,
        5,
        5,
        6,
        6,
    ]
    assert list(hour_bucket(np.array([8, 22]))) == [0, 6]
    assert set(HOUR_BUCKETS) == {0, 1, 2, 3, 4, 5}


def test_attempts_rpc_streak_and_recency():
    contacts = [
        call("2026-06-01 02:00", "promise_to_pay"),
        call("2026-06-10 02:00", "no_answer"),
        call("2026-06-12 02:00", "busy"),
        call("2026-06-13 02:00", "wrong_number"),
        call("2026-06-14 02:00", "delivered", channel="sms"),
        call("2026-06-14 03:00", "right_party", direction="inbound"),
        call(str(AS_OF.tz_localize(None)), "right_party"),  # at as_of: invisible
    ]
    row = build_features(make_export(accounts=[account_row("A")], contacts=contacts)).iloc[0]
    assert (row["call_attempts_7d"], row["rpc_7d"], row["rpc_rate_7d"]) == (3, 0, 0.0)
    assert (row["call_attempts_30d"], row["rpc_30d"], row["rpc_rate_30d"]) == (4, 1, 0.25)
    assert row["unanswered_streak"] == 3
    assert row["days_since_last_rpc"] == pytest.approx(14 - 2 / 24)
    assert row["days_since_last_call_attempt"] == pytest.approx(2 - 2 / 24)
    assert (row["wrong_numbers_90d"], row["inbound_contacts_90d"], row["refusals_disputes_90d"]) == (1, 1, 0)
    assert np.isnan(build_features(make_export(accounts=[account_row("A")])).iloc[0]["rpc_rate_90d"])


def test_smoothed_rates_use_debtor_local_hours_and_shrink_to_the_portfolio():
    # 01:30 UTC is 09:30 in Shanghai (bucket 0) and 20:30 the day before in Chicago (bucket 5).
    contacts = [
        call("2026-06-01 01:30", "right_party", "S"),
        call("2026-06-02 01:30", "right_party", "S"),
        call("2026-06-03 01:30", "no_answer", "C"),
        call("2026-06-04 01:30", "right_party", "C"),
    ]
    export = make_export(
        accounts=[account_row("S", "Asia/Shanghai"), account_row("C", "America/Chicago")], contacts=contacts
    )
    shanghai, chicago = (row for _, row in build_features(export).iterrows())
    k = SMOOTHING_ATTEMPTS
    assert shanghai["rpc_rate_hour_bucket_0"] == pytest.approx((2 + k * 1.0) / (2 + k))
    assert chicago["rpc_rate_hour_bucket_5"] == pytest.approx((1 + k * 0.5) / (2 + k))
    # No own attempts in a bucket: the portfolio rate; no portfolio attempts there: the overall rate.
    assert chicago["rpc_rate_hour_bucket_0"] == pytest.approx(1.0)
    assert shanghai["rpc_rate_hour_bucket_3"] == pytest.approx(0.75)
    assert (shanghai["best_hour_bucket_hist"], chicago["best_hour_bucket_hist"]) == (0, 0)
    # Local weekdays: Shanghai calls fall on Mon and Tue, Chicago's on Tue (no answer) and Wed evenings.
    assert shanghai["rpc_rate_weekday_0"] == pytest.approx((1 + k * 1.0) / (1 + k))
    assert chicago["rpc_rate_weekday_1"] == pytest.approx((0 + k * 0.5) / (1 + k))
    assert chicago["rpc_rate_weekday_6"] == pytest.approx(0.75)


def test_portfolio_rates_are_point_in_time_too():
    contacts = [call("2026-06-01 09:00", "no_answer", "A"), call("2026-06-10 09:00", "right_party", "B")]
    export = make_export(accounts=[account_row("A"), account_row("B")], contacts=contacts)
    snapshots = pd.DataFrame(
        {"account_id": ["A", "A"], "as_of": pd.to_datetime(["2026-06-05", "2026-06-15"], utc=True)}
    )
    early, late = (row for _, row in build_features(export, snapshots).iterrows())
    assert early["rpc_rate_hour_bucket_0"] == pytest.approx(0.0)  # portfolio then: 0 of 1
    assert late["rpc_rate_hour_bucket_0"] == pytest.approx((0 + SMOOTHING_ATTEMPTS * 0.5) / (1 + SMOOTHING_ATTEMPTS))


def test_exact_hour_rates_pool_the_customer_and_shrink_hour_to_bucket_to_level():
    # A and B belong to one customer (one person answers both); C is someone else. All in UTC.
    contacts = [
        call("2026-06-01 09:00", "right_party", "A"),
        call("2026-06-02 09:00", "promise_to_pay", "B"),
        call("2026-06-02 11:00", "no_answer", "B"),
        call("2026-06-03 09:00", "no_answer", "C"),
        call("2026-06-03 20:00", "no_answer", "C"),
    ]
    accounts = [account_row("A", customer_id="P"), account_row("B", customer_id="P"), account_row("C")]
    a, b, c = (row for _, row in build_features(make_export(accounts=accounts, contacts=contacts)).iterrows())
    hours = [f"rpc_rate_hour_{hour}" for hour in range(24)]
    assert list(a[hours]) == pytest.approx(list(b[hours]))
    k, k_hour = SMOOTHING_ATTEMPTS, HOUR_SMOOTHING_ATTEMPTS
    overall, portfolio_09 = 2 / 5, 2 / 3  # bucket 0 (08-10) holds only the 09:00 calls
    level = (2 + k * overall) / (3 + k) / overall
    bucket_0 = (2 + k * min(portfolio_09 * level, 1.0)) / (2 + k)
    assert a["rpc_rate_hour_9"] == pytest.approx((2 + k_hour * bucket_0) / (2 + k_hour))
    # 08:00 was never called by anyone: the customer's bucket rate, as is.
    assert a["rpc_rate_hour_8"] == pytest.approx(bucket_0)
    # C never answered: never above A, and below it wherever the portfolio answers at all.
    assert (c[hours].to_numpy(dtype=float) <= a[hours].to_numpy(dtype=float)).all()
    assert c["rpc_rate_hour_9"] < a["rpc_rate_hour_9"]
    # Nobody answered at 10-12 (bucket 1): zero for everyone, whatever their level.
    assert a["rpc_rate_hour_11"] == c["rpc_rate_hour_11"] == 0.0
    assert c["rpc_rate_hour_9"] == pytest.approx(
        (0 + k_hour * (0 + k * portfolio_09 * (0 + k * overall) / (2 + k) / overall) / (1 + k)) / (1 + k_hour)
    )
