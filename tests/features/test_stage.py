"""Stage features on hand-built accounts: oldest-first coverage, boundaries, buckets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_features
from features.stage import stage, stage_bucket
from tests.features.random_export import AS_OF, account_row, make_export


def due(day: str, amount: float, account_id: str = "A") -> dict:
    return {"account_id": account_id, "due_date": day, "amount_due": amount}


def payment(at: str, amount: float, status: str = "settled", pid: str = "P1", account_id: str = "A") -> dict:
    return {
        "payment_id": pid,
        "account_id": account_id,
        "paid_at": pd.Timestamp(at, tz="UTC"),
        "amount": amount,
        "status": status,
        "channel": "card",
    }


def one(**rows) -> pd.Series:
    return build_features(make_export(accounts=[account_row("A")], **rows)).iloc[0]


def test_payments_go_to_the_oldest_due_first():
    row = one(
        dues=[due("2026-05-01", 100.0), due("2026-05-15", 100.0), due("2026-06-01", 100.0)],
        payments=[payment("2026-05-20 10:00", 150.0)],
    )
    assert row["amount_overdue"] == 150.0
    assert row["days_past_due"] == 31  # from 2026-05-15, half covered, to 2026-06-15
    assert row["oldest_unpaid_remaining"] == 50.0
    assert row["dues_missed_in_row"] == 2
    assert (row["stage"], row["stage_bucket"], row["months_delinquent"]) == ("M2", "M2", 2)
    assert row["limit_use"] == 0.15


def test_due_on_the_as_of_date_is_not_yet_overdue():
    row = one(dues=[due("2026-06-15", 80.0), due("2026-07-15", 90.0)])
    assert (row["amount_overdue"], row["days_past_due"], row["stage"]) == (0.0, 0, "current")
    assert (row["next_due_in_days"], row["next_due_amount"]) == (0, 80.0)
    assert np.isnan(one(dues=[due("2026-06-14", 80.0)])["next_due_in_days"])
    assert one(dues=[due("2026-06-14", 80.0)])["days_past_due"] == 1


def test_returned_payment_and_payment_at_as_of_do_not_count():
    dues = [due("2026-06-01", 100.0)]
    returned = one(dues=dues, payments=[payment("2026-06-02", 100.0, status="returned")])
    at_as_of = one(dues=dues, payments=[payment(str(AS_OF.tz_localize(None)), 100.0)])
    just_before = one(dues=dues, payments=[payment("2026-06-14 23:59:59", 100.0)])
    assert returned["amount_overdue"] == at_as_of["amount_overdue"] == 100.0
    assert returned["days_past_due"] == at_as_of["days_past_due"] == 14
    assert (just_before["amount_overdue"], just_before["days_past_due"]) == (0.0, 0)


def test_overpayment_is_credit_not_negative_overdue():
    row = one(dues=[due("2026-06-01", 100.0), due("2026-07-01", 100.0)], payments=[payment("2026-06-02", 150.0)])
    assert (row["amount_overdue"], row["days_past_due"], row["dues_missed_in_row"]) == (0.0, 0, 0)


def test_stage_and_bucket_boundaries():
    dpd = np.array([0, 1, 5, 6, 18, 19, 30, 31, 60, 61, 180, 181, 400])
    assert list(stage(dpd)) == [
        "current",
        "M1",
        "M1",
        "M1",
        "M1",
        "M1",
        "M1",
        "M2",
        "M2",
        "M3",
        "M6",
        "M7+",
        "M7+",
    ]
    assert list(stage_bucket(dpd)) == [
        "current",
        "early",
        "early",
        "middle",
        "middle",
        "late",
        "late",
        "M2",
        "M2",
        "M3",
        "M6",
        "M7+",
        "M7+",
    ]


def test_limit_use_is_nan_without_a_positive_limit_and_age_counts_days():
    export = make_export(
        accounts=[
            account_row("A", credit_limit=None),
            account_row("B", credit_limit=0.0, opened_date="2026-06-14"),
        ],
        dues=[due("2026-06-01", 10.0), due("2026-06-01", 10.0, "B")],
    )
    features = build_features(export)
    assert features["limit_use"].isna().all()
    assert list(features["account_age_days"]) == [
        (AS_OF.tz_localize(None) - pd.Timestamp("2024-01-01")).days,
        1,
    ]


def test_due_to_limit_takes_the_latest_fallen_due_and_the_next_one():
    row = one(dues=[due("2026-05-15", 100.0), due("2026-06-14", 150.0), due("2026-06-15", 80.0)])
    assert (row["last_due_to_limit"], row["next_due_to_limit"]) == (0.15, 0.08)  # limit 1000
    upcoming_only = one(dues=[due("2026-06-15", 80.0)])
    assert np.isnan(upcoming_only["last_due_to_limit"]) and upcoming_only["next_due_to_limit"] == 0.08
    export = make_export(accounts=[account_row("A", credit_limit=0.0)], dues=[due("2026-06-01", 10.0)])
    assert build_features(export)[["last_due_to_limit", "next_due_to_limit"]].isna().all(axis=None)
