"""A small hand-made DailyRun (two teams, 30 calls) and tokens, shared by the API and page tests."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from features.contract import CALL_LIST_COLUMNS, SCORES_COLUMNS
from serving.auth import TokenAuth
from serving.daily import DailyRun

AS_OF = pd.Timestamp("2026-11-23T00:00:00Z")
LIST_DATE = dt.date(2026, 11, 23)
ZONE = "Asia/Shanghai"
MODEL_VERSION = "repayment:3;contact:2;call-effect:1"
TOKENS = "admin-token-123:*;early-token-456:early;late-token-789:late"
ADMIN = {"Authorization": "Bearer admin-token-123"}
EARLY = {"Authorization": "Bearer early-token-456"}
LATE = {"Authorization": "Bearer late-token-789"}

# Shift 09:00-13:00 centre time = 01:00-05:00 UTC; hourly capacity per team.
SHIFT_UTC_HOURS = (1, 2, 3, 4)
CAPACITY = {"early": 5, "late": 4}
CALLS = {"early": 18, "late": 12}


def small_run(list_date: dt.date = LIST_DATE) -> DailyRun:
    """30 scheduled calls (early 18, late 12), 2 special-handling and 1 ineligible account."""
    rows = []
    rank = 0
    for team, count in CALLS.items():
        for i in range(count):
            rank += 1
            slot = SHIFT_UTC_HOURS[i // CAPACITY[team]]
            stage = ("early", "middle", "late")[i % 3] if team == "early" else ("M2", "M3")[i % 2]
            rows.append(
                {
                    "list_date": pd.Timestamp(list_date),
                    "rank": rank,
                    "account_id": f"{team[0].upper()}{i:03d}",
                    "customer_id": f"C{team[0].upper()}{i:03d}",
                    "team": team,
                    "agent_id": f"G{i % 4}" if i % 5 else None,
                    "call_at": pd.Timestamp(f"2026-11-23T{slot:02d}:00:00Z"),
                    "local_hour": (slot + 8) % 24,
                    "p_repay": round(0.9 - 0.02 * i, 4),
                    "p_contact": round(0.5 - 0.01 * i, 4),
                    "expected_value": round(1200.0 - 37.5 * rank, 2),
                    "amount_overdue": 500.0 + 125.0 * i,
                    "days_past_due": 3 + 4 * i,
                    "stage": stage,
                    "reasons": f"{3 + 4 * i} DPD and {500 + 125 * i} overdue"
                    + f";best reached at {(slot + 8) % 24}:00"
                    + (";broken promise yesterday" if i % 4 == 0 else ""),
                    "model_version": MODEL_VERSION,
                }
            )
    call_list = pd.DataFrame(rows, columns=list(CALL_LIST_COLUMNS))
    call_list["list_date"] = call_list["list_date"].astype("datetime64[s]")
    call_list["call_at"] = call_list["call_at"].astype("datetime64[us, UTC]")
    call_list["agent_id"] = call_list["agent_id"].astype("string")

    extra = pd.DataFrame(
        {
            "account_id": ["L900", "L901", "E900"],
            "p_repay": [0.2, 0.3, 0.95],
            "best_hour_local": [pd.NA, pd.NA, pd.NA],
            "p_contact_best": [None, None, None],
            "amount_overdue": [4200.0, 800.0, 0.0],
            "days_past_due": [75, 40, 0],
            "stage": ["M3", "M2", "current"],
            "eligible": [False, False, False],
        }
    )
    listed = call_list.assign(best_hour_local=call_list["local_hour"], p_contact_best=call_list["p_contact"])
    scores = pd.concat(
        [
            listed[
                [
                    "account_id",
                    "p_repay",
                    "best_hour_local",
                    "p_contact_best",
                    "amount_overdue",
                    "days_past_due",
                    "stage",
                ]
            ].assign(eligible=True),
            extra,
        ],
        ignore_index=True,
    )
    scores = scores.assign(as_of=AS_OF, model_version=MODEL_VERSION)
    scores["best_hour_local"] = scores["best_hour_local"].astype("Int64")
    scores["p_contact_best"] = scores["p_contact_best"].astype("float64")
    scores = scores.loc[:, list(SCORES_COLUMNS)]

    special = pd.DataFrame(
        {
            "account_id": ["L900", "L901"],
            "customer_id": ["CL900", "CL901"],
            "team": ["late", "late"],
            "reason": ["dispute_open", "hardship"],
            "amount_overdue": [4200.0, 800.0],
            "days_past_due": [75, 40],
        }
    )
    capacity_rows = []
    for team, per_hour in CAPACITY.items():
        for k, slot in enumerate(SHIFT_UTC_HOURS):
            scheduled = min(per_hour, max(0, CALLS[team] - k * per_hour))
            capacity_rows.append(
                {
                    "team": team,
                    "call_at": pd.Timestamp(f"2026-11-23T{slot:02d}:00:00Z"),
                    "centre_hour": slot + 8,
                    "capacity": per_hour,
                    "scheduled": scheduled,
                }
            )
    capacity = pd.DataFrame(capacity_rows)
    explanations = pd.DataFrame(
        [
            {"account_id": account, "feature": feature, "value": value, "contribution": contribution}
            for account in call_list["account_id"]
            for feature, value, contribution in (
                ("days_past_due", 13.0, 0.41),
                ("promise_broken_7d", 1.0, -0.73),
                ("payments_settled_sum_90d", 250.0, 0.12),
            )
        ]
    )
    return DailyRun(
        as_of=AS_OF,
        list_date=list_date,
        centre_timezone=ZONE,
        scores=scores,
        call_list=call_list,
        special_handling=special,
        capacity=capacity,
        explanations=explanations,
        models={
            "callq-repayment": {"version": "3", "metrics": {"auc": 0.781, "brier": 0.171}},
            "callq-contact": {"version": "2", "metrics": {"auc": 0.702, "log_loss": 0.41}},
        },
        model_version=MODEL_VERSION,
    )


def token_auth() -> TokenAuth:
    return TokenAuth.parse(TOKENS)
