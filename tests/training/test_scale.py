"""Training at scale: the overdue pre-filter, per-snapshot sampling and the stage clock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from tests.features.random_export import random_export
from training.pipeline import StageClock
from training.snapshots import MONEY_TOLERANCE, TRAINING_COLUMNS, overdue_candidates, sample_per_snapshot


def _naive_candidates(export, dates) -> set[tuple[str, pd.Timestamp]]:
    """Per account and date: opened before the day, dues before the day exceed settled payments before as_of."""
    out = set()
    for as_of in dates:
        day = as_of.tz_localize(None).normalize()
        for account in export.accounts.itertuples():
            if not account.opened_date < day:
                continue
            due = export.dues.loc[
                (export.dues["account_id"] == account.account_id) & (export.dues["due_date"] < day), "amount_due"
            ].sum()
            payments = export.payments
            paid = payments.loc[
                (payments["account_id"] == account.account_id)
                & (payments["status"] == "settled")
                & (payments["paid_at"] < as_of),
                "amount",
            ].sum()
            if due - paid > MONEY_TOLERANCE:
                out.add((account.account_id, as_of))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_overdue_candidates_match_a_naive_reference_and_the_features(seed):
    export = random_export(seed, n_accounts=8)
    dates = [export.as_of - pd.Timedelta(days=days, hours=hours) for days, hours in ((90, 0), (30, 5), (1, 0))]
    candidates = overdue_candidates(export, dates)
    assert 0 < len(candidates) < len(dates) * len(export.accounts)
    assert set(zip(candidates["account_id"], candidates["as_of"], strict=True)) == _naive_candidates(export, dates)
    assert str(candidates["as_of"].dtype) == "datetime64[us, UTC]"
    # The pre-filter keeps exactly the rows the feature build calls overdue, among all opened accounts.
    features = build_features(export, candidates, columns=TRAINING_COLUMNS, compact=True)
    assert (features["amount_overdue"] > MONEY_TOLERANCE).all()


def test_sample_per_snapshot_caps_each_date_uniformly_and_deterministically():
    dates = pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19"], utc=True)
    rows = pd.DataFrame(
        {
            "account_id": pd.array([f"A{i}" for i in range(300)] * 3, dtype="string"),
            "as_of": np.repeat(dates, 300),
        }
    )
    rows = rows[~((rows["as_of"] == dates[2]) & (rows.index % 300 >= 40))].reset_index(drop=True)
    sampled = sample_per_snapshot(rows, 100, seed=3)
    assert sampled.groupby("as_of").size().tolist() == [100, 100, 40]
    assert sampled.equals(sample_per_snapshot(rows, 100, seed=3))
    assert not sampled.equals(sample_per_snapshot(rows, 100, seed=4))
    # A subset of the input, in input order.
    positions = rows.reset_index().merge(sampled, on=["account_id", "as_of"])["index"]
    assert positions.is_monotonic_increasing and len(positions) == len(sampled)
    assert sample_per_snapshot(rows, None, seed=3) is rows
    # Uniform: over many seeds every account of a date is drawn about equally often.
    counts = pd.concat([sample_per_snapshot(rows, 100, seed=s) for s in range(60)])
    share = counts[counts["as_of"] == dates[0]]["account_id"].value_counts() / 60
    assert len(share) == 300 and share.between(0.1, 0.6).all()


def test_stage_clock_records_each_stage_even_when_it_fails():
    clock = StageClock()
    with clock.stage("first"):
        pass
    with pytest.raises(RuntimeError), clock.stage("second"):
        raise RuntimeError("boom")
    assert list(clock.seconds) == list(clock.peak_rss_gib) == list(clock.rss_after_gib) == ["first", "second"]
    metrics = clock.metrics()
    assert set(metrics) >= {"time.first_s", "time.second_s"}
    assert all(value >= 0 for value in metrics.values())
