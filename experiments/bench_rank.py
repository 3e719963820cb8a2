"""Benchmark: rank_calls, the compliance guard and the assignment on a large synthetic book.

Run: `.venv/bin/python experiments/bench_rank.py --accounts 1000000`. Prints seconds per step;
the contact model is a cheap stand-in whose own time is measured and reported apart.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from features.contract import FLAG_COLUMNS, Export, Operations
from features.validate import contract_dtypes
from serving.assignment import assign_greedy
from serving.compliance import check_call_list
from serving.ranking import RankConfig, rank_calls, supervisor_sort_list

ZONES = np.array(["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "America/Chicago", "Pacific/Kiritimati"])
ZONE_WEIGHTS = np.array([0.85, 0.05, 0.05, 0.04, 0.01])
OUTCOMES = np.array(["no_answer", "busy", "voicemail", "hung_up", "right_party", "promise_to_pay"])


def synthetic_book(n_accounts: int, calls_per_account: float, seed: int) -> tuple[Export, pd.DataFrame]:
    """A contract-typed export (accounts, one due each, recent calls) and matching account_scores."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp("2026-11-22T16:00:00Z")
    ids = pd.array([f"A{index}" for index in range(n_accounts)], dtype="string")
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "customer_id": pd.array([f"C{c}" for c in rng.integers(0, int(n_accounts * 0.7), n_accounts)], "string"),
            "product": "credit_card",
            "opened_date": pd.Timestamp("2025-01-01"),
            "credit_limit": 5000.0,
            "timezone": rng.choice(ZONES, n_accounts, p=ZONE_WEIGHTS),
            "team": rng.choice(np.array(["early", "late", None], dtype=object), n_accounts, p=[0.5, 0.4, 0.1]),
            "agent_id": None,
            **{flag: rng.random(n_accounts) < 0.005 for flag in FLAG_COLUMNS},
        }
    ).astype(contract_dtypes("accounts"))
    overdue = np.round(rng.lognormal(6.5, 1.0, n_accounts) * (rng.random(n_accounts) < 0.9), 2)
    dues = pd.DataFrame(
        {"account_id": ids, "due_date": pd.Timestamp("2026-11-01"), "amount_due": np.maximum(overdue, 1.0)}
    ).astype(contract_dtypes("dues"))
    n_calls = int(n_accounts * calls_per_account)
    contacts = pd.DataFrame(
        {
            "contact_id": pd.array([f"K{index}" for index in range(n_calls)], dtype="string"),
            "account_id": ids[rng.integers(0, n_accounts, n_calls)],
            "started_at": as_of - pd.to_timedelta(rng.integers(60, 10 * 86400, n_calls), unit="s"),
            "channel": "call",
            "direction": np.where(rng.random(n_calls) < 0.9, "outbound", "inbound"),
            "outcome": rng.choice(OUTCOMES, n_calls),
            "agent_id": None,
            "duration_s": None,
        }
    ).astype(contract_dtypes("contacts"))
    empty = {
        name: pd.DataFrame(columns=list(contract_dtypes(name))).astype(contract_dtypes(name))
        for name in ("payments", "promises")
    }
    export = Export(as_of=as_of, accounts=accounts, dues=dues, contacts=contacts, **empty)
    scores = pd.DataFrame(
        {
            "account_id": ids,
            "p_repay": rng.uniform(0, 1, n_accounts),
            "uplift": rng.uniform(0, 0.3, n_accounts),
            "value_at_stake": overdue,
            "amount_overdue": overdue,
            "days_past_due": rng.integers(1, 120, n_accounts),
            "stage": rng.choice(np.array(["M1", "M2", "M3", "M4+"]), n_accounts),
            "promise_followup": rng.random(n_accounts) < 0.02,
        }
    )
    return export, scores


OPERATIONS = Operations.model_validate(
    {
        "centre_timezone": "Asia/Shanghai",
        "policy": "cn",
        "teams": [
            {"team": "early", "agents": 150, "calls_per_agent_hour": 12, "shift": {"start": "09:00", "end": "18:00"}},
            {"team": "late", "agents": 120, "calls_per_agent_hour": 10, "shift": {"start": "10:00", "end": "21:00"}},
            {"team": "default", "agents": 30, "calls_per_agent_hour": 10, "shift": {"start": "09:00", "end": "18:00"}},
        ],
    }
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--calls-per-account", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    export, scores = synthetic_book(args.accounts, args.calls_per_account, args.seed)
    print(f"book: {args.accounts:,} accounts, {len(export.contacts):,} calls ({time.perf_counter() - started:.1f} s)")

    model_seconds = [0.0]
    model_rows = [0]

    def contact_probability(
        accounts: pd.DataFrame, account_pos: np.ndarray, local_hour: np.ndarray, local_weekday: np.ndarray
    ) -> np.ndarray:
        tick = time.perf_counter()
        rows = accounts.iloc[account_pos]
        base = 0.15 + 0.25 * np.exp(-(((local_hour - 19) / 3.0) ** 2)) + 0.05 * (local_weekday == 4)
        out = np.clip(base * (0.5 + rows["p_repay"].to_numpy()), 0, 1)
        model_seconds[0] += time.perf_counter() - tick
        model_rows[0] += len(rows)
        return out

    day = "2026-11-23"
    tick, cpu = time.perf_counter(), time.process_time()
    result = rank_calls(export, OPERATIONS, day, scores, contact_probability)
    ranked = time.perf_counter() - tick
    print(f"rank_calls CPU time: {time.process_time() - cpu:.1f} s (wall is inflated on a busy machine)")
    diagnostics = result.diagnostics
    print(
        f"rank_calls: {ranked:.1f} s total, {ranked - model_seconds[0]:.1f} s without the contact model "
        f"({model_rows[0]:,} candidate rows scored, {diagnostics.evaluated_accounts:,} accounts); "
        f"{len(result.call_list):,} calls of {int(diagnostics.slot_load['capacity'].sum()):,} capacity; "
        f"expected value {diagnostics.expected_value_total:,.0f}; certified={diagnostics.prefilter_certified}; "
        f"assignment {diagnostics.assignment}"
    )
    print(f"excluded: {diagnostics.excluded}")

    tick, cpu = time.perf_counter(), time.process_time()
    violations = check_call_list(result.call_list, export, OPERATIONS, day)
    print(
        f"check_call_list: {time.perf_counter() - tick:.1f} s wall, {time.process_time() - cpu:.1f} s CPU, "
        f"{len(violations)} violations"
    )

    tick = time.perf_counter()
    baseline = supervisor_sort_list(export, OPERATIONS, day, scores, contact_probability)
    supervisor_value = baseline.diagnostics.expected_value_total
    print(
        f"supervisor_sort_list: {time.perf_counter() - tick:.1f} s, expected value {supervisor_value:,.0f} "
        f"(ranker / supervisor = {diagnostics.expected_value_total / max(supervisor_value, 1e-9):.2f})"
    )

    by_value = rank_calls(export, OPERATIONS, day, scores, contact_probability, RankConfig(followup_first=False))
    print(
        f"without follow-up priority: expected value {by_value.diagnostics.expected_value_total:,.0f} "
        f"(ranker / supervisor = {by_value.diagnostics.expected_value_total / max(supervisor_value, 1e-9):.2f})"
    )

    rng = np.random.default_rng(args.seed)
    n, n_slots = args.accounts, 9
    account = np.repeat(np.arange(n), n_slots)
    slot = np.tile(np.arange(n_slots), n)
    value = rng.lognormal(0, 1, n)[account] * rng.uniform(0.1, 1, n * n_slots)
    tick, cpu = time.perf_counter(), time.process_time()
    chosen = assign_greedy(account, slot, value, np.full(n_slots, n // 50))
    print(
        f"assign_greedy {n:,} accounts x {n_slots} slots: {time.perf_counter() - tick:.1f} s, {chosen.sum():,} chosen"
    )


if __name__ == "__main__":
    main()
