"""Snapshots, labels and split gaps on hand-built frames."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.features.random_export import account_row, make_export
from training.config import TrainConfig
from training.snapshots import (
    SnapshotSplits,
    SplitLeakageError,
    assert_split_gap,
    history_start,
    local_hour_weekday,
    repayment_labels,
    snapshot_splits,
    treatment_flags,
)

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")


def _payments(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "paid_at", "amount", "status"])
    frame["paid_at"] = pd.to_datetime(frame["paid_at"], utc=True).astype("datetime64[us, UTC]")
    frame["account_id"] = frame["account_id"].astype("string")
    return frame


def _rows(rows: list[tuple[str, float, float]], as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "amount_overdue", "oldest_unpaid_remaining"])
    frame["account_id"] = frame["account_id"].astype("string")
    frame["as_of"] = pd.Series(as_of, index=frame.index).astype("datetime64[us, UTC]")
    return frame


def test_labels_window_boundaries_returned_payments_and_threshold():
    rows = _rows(
        [
            ("at_start", 100.0, 100.0),  # paid exactly at as_of: inside [as_of, as_of + 14d)
            ("at_end", 100.0, 100.0),  # paid exactly at as_of + 14d: outside
            ("before", 100.0, 100.0),  # paid just before as_of: outside (feature history)
            ("returned", 100.0, 100.0),  # only a returned payment: counts as not paid
            ("oldest_due", 300.0, 80.0),  # needs min(300, 80) = 80, pays 80 in two parts
            ("short", 300.0, 80.0),  # pays 79.99: one cent short
            ("no_payment", 50.0, 50.0),
        ]
    )
    payments = _payments(
        [
            ("at_start", "2026-06-01T00:00:00Z", 100.0, "settled"),
            ("at_end", "2026-06-15T00:00:00Z", 100.0, "settled"),
            ("before", "2026-05-31T23:59:59Z", 100.0, "settled"),
            ("returned", "2026-06-03T10:00:00Z", 100.0, "returned"),
            ("oldest_due", "2026-06-02T10:00:00Z", 50.0, "settled"),
            ("oldest_due", "2026-06-14T23:59:59Z", 30.0, "settled"),
            ("short", "2026-06-05T10:00:00Z", 79.99, "settled"),
        ]
    )
    labels = repayment_labels(payments, rows, horizon_days=14)
    assert dict(zip(rows["account_id"], labels, strict=True)) == {
        "at_start": 1,
        "at_end": 0,
        "before": 0,
        "returned": 0,
        "oldest_due": 1,
        "short": 0,
        "no_payment": 0,
    }


def test_labels_are_per_snapshot():
    rows = pd.concat([_rows([("a", 10.0, 10.0)]), _rows([("a", 10.0, 10.0)], AS_OF + pd.Timedelta(days=14))])
    rows = rows.reset_index(drop=True)
    payments = _payments([("a", "2026-06-16T00:00:00Z", 10.0, "settled")])
    assert repayment_labels(payments, rows, 14).tolist() == [0, 1]


def test_split_gap_assertion_fires_when_windows_overlap():
    day = pd.Timedelta(days=1)
    ok = SnapshotSplits((AS_OF,), (AS_OF + 14 * day,), (AS_OF + 28 * day,))
    assert_split_gap(ok, horizon_days=14)
    too_close = SnapshotSplits((AS_OF,), (AS_OF + 7 * day,), (AS_OF + 28 * day,))
    with pytest.raises(SplitLeakageError, match="train ends"):
        assert_split_gap(too_close, horizon_days=14)
    with pytest.raises(SplitLeakageError, match="validation ends"):
        assert_split_gap(SnapshotSplits((AS_OF,), (AS_OF + 14 * day,), (AS_OF + 27 * day,)), horizon_days=14)
    with pytest.raises(SplitLeakageError):
        assert_split_gap(SnapshotSplits((AS_OF,), (AS_OF + 14 * day,), (AS_OF + 21 * day,)), 14, gap_days=14)
    with pytest.raises(SplitLeakageError, match="no snapshot"):
        assert_split_gap(SnapshotSplits((), (AS_OF,), (AS_OF + 28 * day,)), horizon_days=14)


def test_config_rejects_gap_shorter_than_horizon():
    with pytest.raises(ValueError, match="gap_days"):
        TrainConfig(horizon_days=14, gap_days=7)


def test_snapshot_splits_are_weekly_gapped_and_end_a_horizon_before_as_of():
    config = TrainConfig(train_snapshots=4, validation_snapshots=2, test_snapshots=2, min_history_days=0)
    splits = snapshot_splits(AS_OF, config, AS_OF - pd.Timedelta(days=365))
    assert max(splits.test) == AS_OF - pd.Timedelta(days=14)
    assert [len(splits.train), len(splits.validation), len(splits.test)] == [4, 2, 2]
    dates = splits.dates()
    assert all(later - earlier >= pd.Timedelta(days=7) for earlier, later in zip(dates, dates[1:], strict=False))
    assert min(splits.test) - max(splits.validation) >= pd.Timedelta(days=14)
    assert min(splits.validation) - max(splits.train) >= pd.Timedelta(days=14)


def test_snapshot_splits_drop_train_dates_without_history_and_fail_when_none_left():
    config = TrainConfig(train_snapshots=10, validation_snapshots=1, test_snapshots=1, min_history_days=28)
    start = AS_OF - pd.Timedelta(days=120)
    splits = snapshot_splits(AS_OF, config, start)
    assert 0 < len(splits.train) < 10
    assert min(splits.train) >= start + pd.Timedelta(days=28)
    with pytest.raises(ValueError, match="too short"):
        snapshot_splits(AS_OF, config, AS_OF - pd.Timedelta(days=40))


def test_short_history_shrinks_validation_and_test_before_train_runs_dry():
    config = TrainConfig()  # 12 train, 3 validation, 3 test, 28 days of history before a snapshot
    day = pd.Timedelta(days=1)
    assert [len(part) for part in snapshot_splits(AS_OF, config, AS_OF - 180 * day).by_split().values()] == [12, 3, 3]
    for history_days, counts in ((120, [6, 2, 2]), (90, [3, 1, 1])):
        splits = snapshot_splits(AS_OF, config, AS_OF - history_days * day)
        assert [len(splits.train), len(splits.validation), len(splits.test)] == counts
        assert max(splits.test) == AS_OF - 14 * day
        assert min(splits.train) >= AS_OF - (history_days - 28) * day
        assert_split_gap(splits, config.horizon_days, config.gap_days)
    with pytest.raises(ValueError, match="too short"):
        snapshot_splits(AS_OF, config, AS_OF - 60 * day)


def test_history_starts_where_payments_and_contacts_are_both_recorded():
    def payment(at: str) -> dict:
        return {
            "payment_id": f"P{at}",
            "account_id": "A",
            "paid_at": pd.Timestamp(at, tz="UTC"),
            "amount": 10.0,
            "status": "settled",
            "channel": "card",
        }

    def contact(at: str) -> dict:
        return {
            "contact_id": f"K{at}",
            "account_id": "A",
            "started_at": pd.Timestamp(at, tz="UTC"),
            "channel": "call",
            "direction": "outbound",
            "outcome": "no_answer",
            "agent_id": None,
            "duration_s": 5,
        }

    dues = [{"account_id": "A", "due_date": "2024-01-15", "amount_due": 50.0}]
    promises = [
        {
            "promise_id": "R1",
            "account_id": "A",
            "created_at": pd.Timestamp("2025-03-01", tz="UTC"),
            "promised_date": "2025-03-05",
            "promised_amount": 20.0,
            "contact_id": None,
        }
    ]
    accounts = [account_row("A")]
    # Dues back to 2024: the events start in 2026 (contacts later than payments).
    export = make_export(
        accounts=accounts,
        dues=dues,
        payments=[payment("2026-01-02"), payment("2026-03-01")],
        contacts=[contact("2026-02-01"), contact("2026-04-01")],
    )
    assert history_start(export) == pd.Timestamp("2026-02-01", tz="UTC")
    # One straggler among a thousand contacts (a migrated record) does not stretch the history.
    many = [contact("2019-05-05")] + [
        contact(f"2026-02-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}") for i in range(1500)
    ]
    export = make_export(accounts=accounts, payments=[payment("2026-01-02")], contacts=many)
    assert history_start(export) >= pd.Timestamp("2026-02-01", tz="UTC")
    # Without payments or contacts, the earliest due or promise stands in; an empty export starts at as_of.
    assert history_start(make_export(accounts=accounts, dues=dues, promises=promises)) == pd.Timestamp(
        "2024-01-15", tz="UTC"
    )
    empty = make_export(accounts=accounts)
    assert history_start(empty) == empty.as_of


def test_treatment_counts_only_outbound_right_party_calls_in_window():
    contacts = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "started_at": pd.to_datetime(
                [
                    "2026-06-02T09:00Z",
                    "2026-06-04T00:00Z",
                    "2026-06-01T10:00Z",
                    "2026-06-01T10:00Z",
                    "2026-06-01T10:00Z",
                ],  # fmt: skip
                utc=True,
            ),
            "channel": ["call", "call", "call", "call", "sms"],
            "direction": ["outbound", "outbound", "inbound", "outbound", "outbound"],
            "outcome": ["promise_to_pay", "right_party", "right_party", "no_answer", "delivered"],
        }
    )
    rows = _rows([(name, 1.0, 1.0) for name in "abcde"])
    # b is reached exactly 3 days after as_of: outside [as_of, as_of + 3d).
    assert treatment_flags(contacts, rows, window_days=3).tolist() == [1, 0, 0, 0, 0]


def test_local_hour_and_weekday_follow_the_debtor_zone():
    times = pd.Series(pd.to_datetime(["2026-06-01T01:30Z", "2026-06-01T01:30Z"], utc=True))
    hours, weekdays = local_hour_weekday(times, pd.Series(["Asia/Shanghai", "America/Chicago"]))
    assert hours.tolist() == [9, 20]
    assert weekdays.tolist() == [0, 6]  # Monday in Shanghai, still Sunday evening in Chicago


def test_a_history_with_nothing_overdue_says_so():
    # No overdue snapshot (no dues, or all paid): the contact model has no call to learn from, and the
    # message says why rather than "no snapshot to attach calls to".
    from training.snapshots import contact_rows

    export = make_export(accounts=[account_row("A1")])
    empty = pd.DataFrame({"account_id": pd.Series(dtype="string"), "as_of": pd.Series(dtype="datetime64[us, UTC]")})
    with pytest.raises(ValueError, match="no account was overdue at any snapshot of the history"):
        contact_rows(export, empty.assign(split=pd.Series(dtype="string")), window_days=7)
