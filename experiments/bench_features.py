"""Benchmark build_features on a large random contract-shaped export; prints wall time and peak RSS.

    python experiments/bench_features.py --accounts 1000000 [--snapshot-dates 1] [--seed 0]

Volumes per account follow the target portfolio: ~4 dues, ~6 payments, ~28 contacts, ~2 promises.
The export is random (not the simulation), only shaped like the contract: it measures speed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.build import FEATURES, build_features
from features.contract import FLAG_COLUMNS, VOICE_OUTCOMES, Export

ZONES = ("Asia/Shanghai", "Asia/Urumqi", "America/Chicago", "America/New_York")
OUTCOMES = VOICE_OUTCOMES
OUTCOME_WEIGHTS = (0.40, 0.08, 0.12, 0.06, 0.02, 0.04, 0.12, 0.10, 0.04, 0.02)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (the machine is shared: wall time varies)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def strings(values: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas `string` column without a Python object per row."""
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([values.cast(pa.large_string())])))


def ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(n)), pa.string()), "")


def pick(rng: np.random.Generator, choices: tuple[str, ...], n: int, p=None) -> pd.Series:
    codes = rng.choice(len(choices), size=n, p=p).astype("int32")
    return strings(pa.array(choices).take(pa.array(codes)))


def random_times(rng, n: int, as_of: pd.Timestamp, days: int) -> pd.Series:
    micros = rng.integers(1, days * 86_400 * 10**6, size=n)
    values = as_of.value // 1000 - micros  # as_of.value is ns
    return pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC")


def make_export(n_accounts: int, seed: int, as_of: pd.Timestamp, days: int = 365) -> Export:
    """Random frames with the contract's columns and dtypes at the target volume."""
    rng = np.random.default_rng(seed)
    account_ids = ids("A", n_accounts)
    accounts = pd.DataFrame(
        {
            "account_id": strings(account_ids),
            "customer_id": strings(ids("C", n_accounts)),
            "product": pick(rng, ("credit_card", "personal_loan", "auto_loan"), n_accounts),
            "opened_date": pd.Series(
                as_of.tz_localize(None).normalize() - pd.to_timedelta(rng.integers(400, 3000, n_accounts), "D")
            ).astype("datetime64[s]"),
            "credit_limit": np.round(rng.uniform(0, 50_000, n_accounts), 2),
            "timezone": pick(rng, ZONES, n_accounts),
            "team": pick(rng, ("early", "middle", "late"), n_accounts),
            "agent_id": pd.Series(pd.NA, index=range(n_accounts), dtype="string"),
            **{flag: rng.random(n_accounts) < 0.02 for flag in FLAG_COLUMNS},
        }
    )

    def owners(per_account: float) -> np.ndarray:
        return np.sort(rng.integers(0, n_accounts, int(per_account * n_accounts))).astype("int64")

    due_owner = owners(4)
    base = as_of.tz_localize(None).normalize() - pd.Timedelta(days=days)
    dues = pd.DataFrame(
        {
            "account_id": strings(account_ids.take(pa.array(due_owner))),
            "due_date": pd.Series(base + pd.to_timedelta(rng.integers(0, days + 60, len(due_owner)), "D")).astype(
                "datetime64[s]"
            ),
            "amount_due": np.round(rng.uniform(20, 2000, len(due_owner)), 2),
        }
    )
    pay_owner = owners(6)
    payments = pd.DataFrame(
        {
            "payment_id": strings(ids("P", len(pay_owner))),
            "account_id": strings(account_ids.take(pa.array(pay_owner))),
            "paid_at": random_times(rng, len(pay_owner), as_of, days),
            "amount": np.round(rng.uniform(5, 2000, len(pay_owner)), 2),
            "status": pick(rng, ("settled", "returned"), len(pay_owner), p=(0.93, 0.07)),
            "channel": pick(rng, ("bank_transfer", "card", "auto_debit", "cash"), len(pay_owner)),
        }
    )
    contact_owner = owners(28)
    n_contacts = len(contact_owner)
    contacts = pd.DataFrame(
        {
            "contact_id": strings(ids("K", n_contacts)),
            "account_id": strings(account_ids.take(pa.array(contact_owner))),
            "started_at": random_times(rng, n_contacts, as_of, days),
            "channel": pick(rng, ("call", "sms"), n_contacts, p=(0.85, 0.15)),
            "direction": pick(rng, ("outbound", "inbound"), n_contacts, p=(0.95, 0.05)),
            "outcome": pick(rng, OUTCOMES, n_contacts, p=OUTCOME_WEIGHTS),
            "agent_id": pd.Series(pd.NA, index=range(n_contacts), dtype="string"),
            "duration_s": pd.array(rng.integers(0, 600, n_contacts), dtype="Int64"),
        }
    )
    promise_owner = owners(2)
    created = random_times(rng, len(promise_owner), as_of, days)
    promises = pd.DataFrame(
        {
            "promise_id": strings(ids("Q", len(promise_owner))),
            "account_id": strings(account_ids.take(pa.array(promise_owner))),
            "created_at": created,
            "promised_date": (
                created.dt.tz_localize(None).dt.normalize()
                + pd.to_timedelta(rng.integers(0, 14, len(promise_owner)), "D")
            ).astype("datetime64[s]"),
            "promised_amount": np.round(rng.uniform(20, 2000, len(promise_owner)), 2),
            "contact_id": pd.Series(pd.NA, index=range(len(promise_owner)), dtype="string"),
        }
    )
    return Export(as_of=as_of, accounts=accounts, dues=dues, payments=payments, contacts=contacts, promises=promises)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--snapshot-dates", type=int, default=1, help="distinct as_of dates, 7 days apart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    as_of = pd.Timestamp("2026-11-23", tz="UTC")

    started = time.perf_counter()
    export = make_export(args.accounts, args.seed, as_of)
    events = sum(len(export.table(name)) for name in ("dues", "payments", "contacts", "promises"))
    print(
        f"generated {args.accounts:,} accounts, {events:,} events in {time.perf_counter() - started:.1f} s; "
        f"peak RSS {peak_rss_gib():.2f} GiB",
        flush=True,
    )

    snapshots = None
    if args.snapshot_dates > 1:
        dates = [as_of - pd.Timedelta(days=7 * k) for k in range(args.snapshot_dates)]
        snapshots = pd.DataFrame(
            {
                "account_id": np.tile(export.accounts["account_id"].to_numpy(), len(dates)),
                "as_of": pd.Series(np.repeat(pd.DatetimeIndex(dates), args.accounts)),
            }
        )
    started, cpu = time.perf_counter(), cpu_seconds()
    features = build_features(export, snapshots)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    print(
        f"build_features: {len(features):,} rows x {len(FEATURES)} features in {wall:.1f} s wall "
        f"({cpu:.1f} s CPU); "
        f"peak RSS {peak_rss_gib():.2f} GiB",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
