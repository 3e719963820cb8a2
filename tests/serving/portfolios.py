"""Random small portfolios and operations files for the ranking and compliance tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import FLAG_COLUMNS, Operations
from tests.factories import typed_frame

# Zones that stress the clock: date line (+14, -11), half and quarter hours, DST in both hemispheres.
ZONES = (
    "Asia/Shanghai",
    "America/Chicago",
    "America/New_York",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Europe/Berlin",
)
OUTCOMES = (
    "no_answer",
    "busy",
    "voicemail",
    "hung_up",
    "third_party",
    "right_party",
    "promise_to_pay",
    "refused",
)


def random_export(seed: int, n_accounts: int, as_of: pd.Timestamp, *, flag_rate: float = 0.08):
    """An Export with `n_accounts` accounts, few customers (shared), dues, payments and recent calls."""
    from features.contract import Export

    rng = np.random.default_rng(seed)
    day = as_of.tz_convert("UTC").tz_localize(None).normalize()
    n_customers = max(1, int(n_accounts * 0.6))
    accounts = []
    for index in range(n_accounts):
        flags = {flag: bool(rng.random() < flag_rate) for flag in FLAG_COLUMNS}
        accounts.append(
            {
                "account_id": f"A{index}",
                "customer_id": f"C{rng.integers(n_customers)}",
                "product": "credit_card",
                "opened_date": day - pd.Timedelta(days=400),
                "credit_limit": 1000.0,
                "timezone": ZONES[rng.integers(len(ZONES))],
                "team": [None, "early", "late", "ghost"][rng.integers(4)],
                "agent_id": None if rng.random() < 0.5 else f"G{rng.integers(3)}",
                **flags,
            }
        )
    dues = [
        {
            "account_id": f"A{index}",
            "due_date": day - pd.Timedelta(days=int(rng.integers(1, 90))),
            "amount_due": 100.0,
        }
        for index in range(n_accounts)
        if rng.random() < 0.9
    ]
    payments = [
        {
            "payment_id": f"P{index}",
            "account_id": f"A{index}",
            "paid_at": as_of - pd.Timedelta(days=1),
            "amount": 100.0,
            "status": "settled",
            "channel": None,
        }
        for index in range(n_accounts)
        if rng.random() < 0.1
    ]
    contacts = []
    for index in range(n_accounts):
        for _ in range(int(rng.poisson(3))):
            contacts.append(
                {
                    "contact_id": f"K{len(contacts)}",
                    "account_id": f"A{index}",
                    "started_at": as_of - pd.Timedelta(minutes=int(rng.integers(1, 9 * 24 * 60))),
                    "channel": "call" if rng.random() < 0.9 else "sms",
                    "direction": "outbound" if rng.random() < 0.85 else "inbound",
                    "outcome": OUTCOMES[rng.integers(len(OUTCOMES))],
                    "agent_id": None,
                    "duration_s": None,
                }
            )
    for contact in contacts:
        if contact["channel"] == "sms":
            contact["outcome"] = "delivered"
    export = Export(
        as_of=as_of,
        accounts=typed_frame("accounts", accounts),
        dues=typed_frame("dues", dues),
        payments=typed_frame("payments", payments),
        contacts=typed_frame("contacts", contacts),
        promises=typed_frame("promises", []),
    )
    return export


def scores_for(export, seed: int, *, score_share: float = 1.0) -> pd.DataFrame:
    """account_scores for the ranker: overdue from dues less settled payments, random model outputs."""
    rng = np.random.default_rng(seed + 1)
    due = export.dues.groupby("account_id")["amount_due"].sum()
    settled = export.payments[export.payments["status"] == "settled"].groupby("account_id")["amount"].sum()
    ids = export.accounts["account_id"]
    overdue = due.sub(settled, fill_value=0.0).reindex(ids).fillna(0.0).clip(lower=0.0).to_numpy()
    n = len(ids)
    frame = pd.DataFrame(
        {
            "account_id": ids.to_numpy(),
            "p_repay": rng.uniform(0, 1, n),
            "uplift": rng.uniform(0, 0.3, n),
            "value_at_stake": overdue * rng.uniform(0.5, 1.5, n),
            "amount_overdue": overdue,
            "days_past_due": rng.integers(0, 120, n) * (overdue > 0),
            "stage": np.where(overdue > 0, "M1", "current"),
            "promise_followup": rng.random(n) < 0.15,
        }
    )
    return frame[rng.random(n) < score_share].reset_index(drop=True)


def random_operations(seed: int) -> Operations:
    """An operations file with a random policy, centre zone, teams and shifts."""
    rng = np.random.default_rng(seed + 2)
    policy = ["cn", "us_reg_f", "custom"][rng.integers(3)]
    teams = []
    for name in ("default", "early", "late"):
        if rng.random() < 0.2:
            continue
        start = int(rng.integers(0, 24))
        end = (start + int(rng.integers(1, 13))) % 24  # some shifts run past midnight
        teams.append(
            {
                "team": name,
                "agents": int(rng.integers(0, 3)),
                "calls_per_agent_hour": int(rng.integers(1, 3)),
                "shift": {
                    "start": f"{start:02d}:{['00', '30'][rng.integers(2)]}",
                    "end": ["24:00", "00:00"][rng.integers(2)] if end == 0 else f"{end:02d}:00",
                },
            }
        )
    if not teams:
        teams.append(
            {
                "team": "default",
                "agents": 1,
                "calls_per_agent_hour": 1,
                "shift": {"start": "08:00", "end": "20:00"},
            }
        )
    data = {"centre_timezone": ZONES[rng.integers(len(ZONES))], "policy": policy, "teams": teams}
    if policy == "custom":
        window_start = int(rng.integers(0, 12))
        data["rules"] = {
            "call_window_start": window_start,
            "call_window_end": int(rng.integers(window_start + 1, 25)),
            "max_unanswered_per_day": None if rng.random() < 0.3 else int(rng.integers(0, 4)),
            "max_connected_per_day": None if rng.random() < 0.3 else int(rng.integers(0, 3)),
            "max_attempts_7d": None if rng.random() < 0.3 else int(rng.integers(0, 8)),
            "quiet_days_after_conversation": int(rng.integers(0, 8)),
        }
    return Operations.model_validate(data)


def hour_curve(
    accounts: pd.DataFrame, account_pos: np.ndarray, local_hour: np.ndarray, local_weekday: np.ndarray
) -> np.ndarray:
    """A simple contact model for tests: evenings and Fridays answer more, per-account noise."""
    rows = accounts.iloc[account_pos]
    base = 0.15 + 0.25 * np.exp(-(((local_hour - 19) / 3.0) ** 2)) + 0.05 * (local_weekday == 4)
    jitter = (pd.util.hash_pandas_object(rows["account_id"], index=False).to_numpy() % 100) / 1000.0
    return np.clip(base + jitter, 0.0, 1.0)


def account_row(account_id: str, **overrides) -> dict:
    """An accounts row with every flag off; override any column."""
    row = {
        "account_id": account_id,
        "customer_id": f"C{account_id}",
        "product": "credit_card",
        "opened_date": pd.Timestamp("2025-01-01"),
        "credit_limit": 1000.0,
        "timezone": "Asia/Shanghai",
        "team": "early",
        "agent_id": None,
        **dict.fromkeys(FLAG_COLUMNS, False),
    }
    row.update(overrides)
    return row


def call_row(account_id: str, started_at: str, outcome: str = "no_answer", direction: str = "outbound") -> dict:
    """A contacts row for a telephone call."""
    return {
        "contact_id": f"K{account_id}-{started_at}-{outcome}-{direction}",
        "account_id": account_id,
        "started_at": pd.Timestamp(started_at),
        "channel": "call",
        "direction": direction,
        "outcome": outcome,
        "agent_id": None,
        "duration_s": None,
    }


def build_export(as_of: str, accounts: list[dict], calls: list[dict] = (), overdue: dict | None = None):
    """An Export of hand-built accounts, each with one due of 100 ten days before as_of (or `overdue`)."""
    from features.contract import Export

    stamp = pd.Timestamp(as_of)
    day = stamp.tz_convert("UTC").tz_localize(None).normalize()
    overdue = overdue or {}
    dues = [
        {"account_id": row["account_id"], "due_date": day - pd.Timedelta(days=10), "amount_due": amount}
        for row in accounts
        if (amount := overdue.get(row["account_id"], 100.0)) > 0
    ]
    return Export(
        as_of=stamp,
        accounts=typed_frame("accounts", accounts),
        dues=typed_frame("dues", dues),
        payments=typed_frame("payments", []),
        contacts=typed_frame("contacts", list(calls)),
        promises=typed_frame("promises", []),
    )


def flat_scores(export, value: dict | None = None, followup: tuple = ()) -> pd.DataFrame:
    """account_scores with uplift 0.1 and value_at_stake from `value` (default 100) per account."""
    ids = export.accounts["account_id"].to_numpy()
    value = value or {}
    due = export.dues.groupby("account_id")["amount_due"].sum().reindex(ids).fillna(0.0).to_numpy()
    return pd.DataFrame(
        {
            "account_id": ids,
            "p_repay": 0.5,
            "uplift": 0.1,
            "value_at_stake": [value.get(account, 100.0) for account in ids],
            "amount_overdue": due,
            "days_past_due": np.where(due > 0, 10, 0),
            "stage": np.where(due > 0, "M1", "current"),
            "promise_followup": [account in followup for account in ids],
        }
    )


def operations(policy: str = "cn", centre: str = "Asia/Shanghai", shift=("00:00", "23:59"), capacity=(10, 1), **extra):
    """Operations with one team `early` (plus `extra` teams as dicts) and the given policy."""
    teams = [
        {
            "team": "early",
            "agents": capacity[0],
            "calls_per_agent_hour": capacity[1],
            "shift": {"start": shift[0], "end": shift[1]},
        },
        *extra.pop("teams", []),
    ]
    return Operations.model_validate({"centre_timezone": centre, "policy": policy, "teams": teams, **extra})


def constant_contact(
    accounts: pd.DataFrame, account_pos: np.ndarray, local_hour: np.ndarray, local_weekday: np.ndarray
) -> np.ndarray:
    """P(contact) = 0.5 everywhere: value then depends on the account only."""
    return np.full(len(account_pos), 0.5)


def one_call(export, at: str, day: str, account: str = "A1") -> pd.DataFrame:
    """A one-row call list: `account` called at `at` (UTC) on list date `day`, by its own team."""
    row = export.accounts.set_index("account_id").loc[account]
    call_at = pd.Timestamp(at)
    return pd.DataFrame(
        {
            "list_date": [pd.Timestamp(day)],
            "rank": [1],
            "account_id": [account],
            "customer_id": [row["customer_id"]],
            "team": [row["team"] if isinstance(row["team"], str) else "default"],
            "call_at": [call_at],
            "local_hour": [call_at.tz_convert(row["timezone"]).hour],
            "amount_overdue": [100.0],
        }
    )


def rules_broken(calls, export, ops, day) -> set[str]:
    """The guard's rules `calls` break."""
    from serving.compliance import check_call_list

    return {violation.rule for violation in check_call_list(calls, export, ops, day)}


def candidate_times(export, ops, day, account: str | None = None) -> set[pd.Timestamp]:
    """The slots the ranker's eligibility allows (for `account` only, when given)."""
    from serving.eligibility import find_candidates

    candidates = find_candidates(export, ops, day, flat_scores(export))
    slot_id = candidates.slot_id
    if account is not None:
        slot_id = slot_id[candidates.accounts["account_id"].to_numpy()[candidates.account_pos] == account]
    return set(candidates.slots["call_at"].to_numpy()[slot_id])
