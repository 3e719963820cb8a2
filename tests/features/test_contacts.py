"""Contact features on hand-built accounts: attempts, streaks, local hours, smoothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import features.contacts as contacts_module
from features.build import build_features
from features.contacts import (
    HOUR_BUCKETS,
    HOUR_SMOOTHING_ATTEMPTS,
    SMOOTHING_ATTEMPTS,
    AnswerMixture,
    hour_bucket,
)
from tests.features.random_export import AS_OF, account_row, make_export, random_export

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


def test_rpc_outcome_shares_count_right_party_outbound_calls_of_all_history():
    contacts = [
        call("2025-01-05 02:00", "promise_to_pay"),  # over a year back: still counted
        call("2026-05-01 02:00", "refused"),
        call("2026-06-01 02:00", "promise_to_pay"),
        call("2026-06-02 02:00", "right_party"),
        call("2026-06-03 02:00", "no_answer"),  # not a right-party contact
        call("2026-06-04 02:00", "dispute", direction="inbound"),  # inbound: not an outbound call
        call(str(AS_OF.tz_localize(None)), "refused"),  # at as_of: invisible
        call("2026-06-01 02:00", "no_answer", account_id="B"),
    ]
    frame = build_features(make_export(accounts=[account_row("A"), account_row("B")], contacts=contacts))
    a, b = frame.set_index("account_id").loc["A"], frame.set_index("account_id").loc["B"]
    assert (a["rpc_promise_share"], a["rpc_refusal_share"]) == (0.5, 0.25)
    assert np.isnan(b["rpc_promise_share"]) and np.isnan(b["rpc_refusal_share"])


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


def _two_pattern_counts(n_customers: int, calls_each: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer x hour (attempts, reached): half answer at 08-10h, half at 19-21h; calls at 08-21h."""
    rng = np.random.default_rng(seed)
    morning = np.arange(n_customers) % 2 == 0
    rate = np.full((n_customers, 24), 0.05)
    rate[morning, 8:11] = 0.6
    rate[~morning, 19:22] = 0.6
    attempts = np.zeros((n_customers, 24))
    reached = np.zeros((n_customers, 24))
    for customer in range(n_customers):
        hours = rng.integers(8, 22, calls_each)
        answered = rng.random(calls_each) < rate[customer, hours]
        np.add.at(attempts[customer], hours, 1)
        np.add.at(reached[customer], hours, answered)
    return attempts, reached, morning


def test_answer_mixture_tells_morning_from_evening_answerers():
    attempts, reached, morning = _two_pattern_counts(2000, 14, seed=0)
    rates = AnswerMixture.fit(attempts, reached).hour_rates(attempts, reached)
    # Each customer's posterior curve ranks its own pattern's hours first far more often than chance.
    prefers_morning = rates[:, 9] > rates[:, 20]
    assert (prefers_morning == morning).mean() > 0.8
    # And the curves are rates: the pattern's hours near 0.6, the others near 0.05, on average.
    assert rates[morning, 9].mean() > 0.4 and rates[morning, 15].mean() < 0.15
    assert rates[~morning, 20].mean() > 0.4 and rates[~morning, 15].mean() < 0.15
    # The raw per-hour rate of the same calls is far noisier: the mixture pools the portfolio.
    raw = np.where(attempts > 0, reached / np.maximum(attempts, 1), np.nan)
    assert np.nanmean(np.abs(raw[morning, 9] - 0.6)) > np.mean(np.abs(rates[morning, 9] - 0.6))


def test_answer_mixture_is_deterministic_and_gives_the_uncalled_the_portfolio_mix(monkeypatch):
    attempts, reached, _ = _two_pattern_counts(300, 10, seed=1)
    first, second = AnswerMixture.fit(attempts, reached), AnswerMixture.fit(attempts, reached)
    np.testing.assert_array_equal(first.rates, second.rates)
    np.testing.assert_array_equal(first.weights, second.weights)
    nobody = np.zeros((1, 24))
    np.testing.assert_allclose(first.hour_rates(nobody, nobody)[0], first.weights @ first.rates)
    assert first.weights.sum() == pytest.approx(1.0)
    # Fitted on a seeded sample when the book is large: still deterministic, still separating.
    monkeypatch.setattr(contacts_module, "MIXTURE_FIT_CUSTOMERS", 100)
    sampled = AnswerMixture.fit(attempts, reached)
    np.testing.assert_array_equal(sampled.rates, AnswerMixture.fit(attempts, reached).rates)
    assert not np.array_equal(sampled.rates, first.rates)


def test_answer_mixture_without_calls_keeps_its_start():
    empty = np.zeros((3, 24))
    mixture = AnswerMixture.fit(empty, empty)
    assert np.isfinite(mixture.rates).all()
    np.testing.assert_allclose(mixture.weights, 1 / len(mixture.weights))


def test_mixture_columns_are_missing_when_too_few_customers_were_called():
    # A handful of accounts (e.g. posted to the API) cannot teach the portfolio's answering patterns.
    features = build_features(random_export(1, n_accounts=6))
    assert contacts_module.MIXTURE_MIN_CUSTOMERS > 6
    assert features[[f"rpc_mixture_hour_{hour}" for hour in range(24)]].isna().all().all()
    assert features["rpc_rate_hour_9"].notna().any()  # the customer's own shrunk rates are still there
