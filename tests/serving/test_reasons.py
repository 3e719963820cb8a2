"""Reasons a collector reads: business triggers first, then the model's positive contributions in words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.reasons import FEATURE_PHRASES, MAX_REASONS, TOP_CONTRIBUTIONS, explain_calls


def _frames():
    features = pd.DataFrame(
        {
            "promise_broken_7d": [True, False],
            "days_since_last_broken_promise": [1.0, np.nan],
            "days_to_pending_promise": [np.nan, 1.0],
            "next_payday_in_days": [2.0, 20.0],
            "payday_concentration": [0.9, 0.9],
            "days_past_due": [35, 8],
            "amount_overdue": [4200.0, 150.0],
            "refusals_disputes_90d": [2.0, 0.0],
            "unanswered_streak": [0.0, 5.0],
        },
        index=pd.Index(["A1", "A2"]),
    )
    contributions = pd.DataFrame(
        {"refusals_disputes_90d": [0.3, 0.5], "unanswered_streak": [-0.2, 0.4], "bias": [1.0, 1.0]},
        index=features.index,
    )
    calls = pd.DataFrame({"account_id": ["A2", "A1"], "local_hour": [19, 9], "p_contact": [0.25, 0.5]})
    return calls, features, contributions


def test_triggers_come_first_and_read_as_facts():
    calls, features, contributions = _frames()
    reasons, _ = explain_calls(calls, features, contributions)
    first, second = reasons.tolist()
    assert second.split("; ")[:4] == [
        "promise broken yesterday",
        "payday in 2 days",
        "best reached 09:00–10:00 local (50% answer chance)",
        "35 DPD and 4,200 overdue",
    ]
    assert first.startswith("promise due tomorrow; best reached 19:00–20:00 local (25% answer chance); 8 DPD")
    assert all(len(text.split("; ")) <= MAX_REASONS for text in reasons)


def test_day_words_are_counted_from_the_list_date_not_the_exports_as_of():
    calls, features, contributions = _frames()
    # The list is for the day after the export's as_of date: everything moves one day.
    first, second = explain_calls(calls, features, contributions, days_ahead=1)[0].tolist()
    assert second.startswith("promise broken 2 days ago; payday in 1 day;")
    assert first.startswith("promise due today;")
    # Two days later the promise's date has passed and the payday too: neither is a reason any more.
    first, second = explain_calls(calls, features, contributions, days_ahead=3)[0].tolist()
    assert "promise due" not in first and "payday" not in second


def test_model_reasons_state_the_value_and_only_positive_contributions():
    calls, features, contributions = _frames()
    reasons, _ = explain_calls(calls.iloc[[0]], features, contributions)
    text = reasons.iloc[0]
    # A2 refused nothing: a positive contribution of a zero count gives no phrase, never a false one.
    assert "refused" not in text
    assert "5 unanswered calls in a row: new hour" in text


def test_explanations_list_the_largest_contributions_per_account():
    calls, features, contributions = _frames()
    _, explanations = explain_calls(calls, features, contributions)
    assert set(explanations["account_id"]) == {"A1", "A2"}
    assert explanations.groupby("account_id").size().max() <= TOP_CONTRIBUTIONS
    a1 = explanations[explanations["account_id"] == "A1"]
    assert a1["feature"].tolist() == ["refusals_disputes_90d", "unanswered_streak"]
    assert a1["value"].tolist() == ["2", "0"]


def test_conversation_shares_read_as_facts_only_where_they_say_something():
    promise, refusal = FEATURE_PHRASES["rpc_promise_share"], FEATURE_PHRASES["rpc_refusal_share"]
    assert promise(0.6) == "promised to pay in 60% of talks"
    assert promise(0.1) is None
    assert refusal(0.0) == "never refused when reached"
    assert refusal(0.08) == "rarely refuses"
    assert refusal(0.5) is None


def test_an_answer_rate_is_stated_with_the_calls_it_counts():
    calls, features, contributions = _frames()
    features = features.assign(rpc_rate_90d=[0.5, 0.0], rpc_90d=[1.0, 0.0], call_attempts_90d=[2.0, 2.0])
    contributions = contributions.assign(rpc_rate_90d=[0.9, 0.9])
    a2 = explain_calls(calls.iloc[[0]], features, contributions)[0].iloc[0]  # A2 has room for a model reason
    # Not "answers 0% of calls" beside the slot's "25% answer chance": two calls say little, and the reason says so.
    assert "reached in 0 of 2 calls in 90 days" in a2 and "answers" not in a2
