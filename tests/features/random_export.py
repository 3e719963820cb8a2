"""Tiny random contract-shaped exports for feature tests (independent of features.simulation)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import CONTACT_CHANNELS, FLAG_COLUMNS, VOICE_OUTCOMES, Export

AS_OF = pd.Timestamp("2026-06-15 00:00:00", tz="UTC")
ZONES = ("Asia/Shanghai", "America/Chicago", "Europe/London", "UTC")
PRODUCTS = ("credit_card", "personal_loan", "auto_loan")


def _times(rng: np.random.Generator, n: int, as_of: pd.Timestamp, days: int) -> pd.Series:
    """n random whole-second times in [as_of - days, as_of)."""
    seconds = rng.integers(1, days * 86_400, size=n)
    stamps = as_of - pd.to_timedelta(seconds, unit="s")
    return pd.Series(stamps, dtype="datetime64[us, UTC]")


def frames(
    accounts: list[dict], dues: list[dict], payments: list[dict], contacts: list[dict], promises: list[dict]
) -> dict[str, pd.DataFrame]:
    """Contract-typed frames from plain rows (used by hand-built tests and the generator)."""

    def typed(rows: list[dict], strings: tuple[str, ...], dates=(), stamps=(), money=(), ints=(), bools=()):
        frame = pd.DataFrame(rows, columns=list(strings + dates + stamps + money + ints + bools))
        for column in strings:
            frame[column] = frame[column].astype("string")
        for column in dates:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
        for column in stamps:
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
        for column in money:
            frame[column] = frame[column].astype("float64")
        for column in ints:
            frame[column] = frame[column].astype("Int64")
        for column in bools:
            frame[column] = frame[column].astype(bool)
        return frame

    return {
        "accounts": typed(
            accounts,
            ("account_id", "customer_id", "product", "timezone", "team", "agent_id"),
            dates=("opened_date",),
            money=("credit_limit",),
            bools=FLAG_COLUMNS,
        ),
        "dues": typed(dues, ("account_id",), dates=("due_date",), money=("amount_due",)),
        "payments": typed(
            payments,
            ("payment_id", "account_id", "status", "channel"),
            stamps=("paid_at",),
            money=("amount",),
        ),
        "contacts": typed(
            contacts,
            ("contact_id", "account_id", "channel", "direction", "outcome", "agent_id"),
            stamps=("started_at",),
            ints=("duration_s",),
        ),
        "promises": typed(
            promises,
            ("promise_id", "account_id", "contact_id"),
            dates=("promised_date",),
            stamps=("created_at",),
            money=("promised_amount",),
        ),
    }


def account_row(account_id: str, timezone: str = "UTC", **overrides) -> dict:
    """One accounts row with sensible defaults (all flags off)."""
    row = {
        "account_id": account_id,
        "customer_id": f"C{account_id}",
        "product": "credit_card",
        "opened_date": "2024-01-01",
        "credit_limit": 1000.0,
        "timezone": timezone,
        "team": None,
        "agent_id": None,
        **dict.fromkeys(FLAG_COLUMNS, False),
    }
    row.update(overrides)
    return row


def make_export(as_of: pd.Timestamp = AS_OF, **rows: list[dict]) -> Export:
    """An Export from plain rows; tables not given are empty."""
    tables = frames(*(rows.get(name, []) for name in ("accounts", "dues", "payments", "contacts", "promises")))
    return Export(as_of=as_of, **tables)


def random_export(seed: int, n_accounts: int = 5, days: int = 200, as_of: pd.Timestamp = AS_OF) -> Export:
    """A few accounts with random dues, payments, contacts and promises in the `days` before as_of."""
    rng = np.random.default_rng(seed)
    accounts, dues, payments, contacts, promises = [], [], [], [], []
    as_of_day = as_of.tz_convert("UTC").tz_localize(None).normalize()
    for a in range(n_accounts):
        account_id = f"A{a}"
        accounts.append(
            account_row(
                account_id,
                timezone=str(rng.choice(ZONES)),
                product=str(rng.choice(PRODUCTS)),
                credit_limit=None if rng.random() < 0.3 else float(rng.integers(0, 3000)),
                opened_date=str((as_of_day - pd.Timedelta(days=int(rng.integers(days, 3 * days)))).date()),
                **{flag: bool(rng.random() < 0.2) for flag in FLAG_COLUMNS},
            )
        )
        # Monthly dues from before the window to up to ~40 days after as_of; one may fall on as_of.
        first = as_of_day - pd.Timedelta(days=int(rng.integers(60, days)))
        due_amounts = []
        for k in range(int(rng.integers(0, 10))):
            due_date = first + pd.Timedelta(days=30 * k + int(rng.integers(0, 3)))
            if due_date > as_of_day + pd.Timedelta(days=40):
                break
            amount = round(float(rng.integers(20, 400)) + float(rng.integers(0, 100)) / 100, 2)
            due_amounts.append(amount)
            dues.append({"account_id": account_id, "due_date": str(due_date.date()), "amount_due": amount})
        if rng.random() < 0.3 and dues:
            dues.append({"account_id": account_id, "due_date": str(as_of_day.date()), "amount_due": 50.0})
        n_pay = int(rng.integers(0, 8))
        for p, paid_at in enumerate(_times(rng, n_pay, as_of, days)):
            if due_amounts and rng.random() < 0.5:
                amount = float(rng.choice(due_amounts))  # exactly a due: full coverage edge cases
            else:
                amount = round(float(rng.integers(5, 500)) + float(rng.integers(0, 100)) / 100, 2)
            payments.append(
                {
                    "payment_id": f"P{a}-{p}",
                    "account_id": account_id,
                    "paid_at": paid_at,
                    "amount": amount,
                    "status": "returned" if rng.random() < 0.15 else "settled",
                    "channel": str(rng.choice(["bank_transfer", "card", "cash"])),
                }
            )
        n_contacts = int(rng.integers(0, 30))
        for c, started_at in enumerate(_times(rng, n_contacts, as_of, days)):
            channel = "call" if rng.random() < 0.75 else str(rng.choice(CONTACT_CHANNELS))
            voice = channel in ("call", "visit")
            outcome = str(rng.choice(VOICE_OUTCOMES)) if voice else str(rng.choice(["delivered", "failed"]))
            contacts.append(
                {
                    "contact_id": f"K{a}-{c}",
                    "account_id": account_id,
                    "started_at": started_at,
                    "channel": channel,
                    "direction": "inbound" if rng.random() < 0.15 else "outbound",
                    "outcome": outcome,
                    "agent_id": None,
                    "duration_s": int(rng.integers(0, 300)) if voice else None,
                }
            )
        n_promises = int(rng.integers(0, 5))
        for q, created_at in enumerate(_times(rng, n_promises, as_of, days)):
            promised = created_at.tz_localize(None).normalize() + pd.Timedelta(days=int(rng.integers(0, 12)))
            amount = float(rng.choice(due_amounts)) if due_amounts and rng.random() < 0.5 else 100.0
            promises.append(
                {
                    "promise_id": f"Q{a}-{q}",
                    "account_id": account_id,
                    "created_at": created_at,
                    "promised_date": str(promised.date()),
                    "promised_amount": amount,
                    "contact_id": None,
                }
            )
    return make_export(as_of, accounts=accounts, dues=dues, payments=payments, contacts=contacts, promises=promises)


def random_snapshots(export: Export, seed: int, per_account: int = 4) -> pd.DataFrame:
    """Several as_of per account: random times, event times exactly, midnights, and the export's as_of."""
    rng = np.random.default_rng(seed)
    event_times = pd.concat(
        [export.payments["paid_at"], export.contacts["started_at"], export.promises["created_at"]],
        ignore_index=True,
    )
    rows = []
    for account_id in export.accounts["account_id"]:
        for k in range(per_account):
            choice = k % 4
            if choice == 0:
                as_of = export.as_of
            elif choice == 1 and len(event_times):
                as_of = event_times.iloc[int(rng.integers(len(event_times)))]
            elif choice == 2:
                as_of = (export.as_of - pd.Timedelta(days=int(rng.integers(1, 150)))).normalize()
            else:
                as_of = export.as_of - pd.Timedelta(seconds=int(rng.integers(1, 150 * 86_400)))
            rows.append({"account_id": account_id, "as_of": as_of})
    frame = pd.DataFrame(rows)
    frame["account_id"] = frame["account_id"].astype("string")
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True).astype("datetime64[us, UTC]")
    return frame
