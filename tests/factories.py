"""Small hand-built exports for tests: valid by construction, with the contract's exact dtypes."""

from __future__ import annotations

import pandas as pd

from features.contract import FLAG_COLUMNS, SCHEMAS, Export
from features.validate import contract_dtypes

DEFAULT_AS_OF = pd.Timestamp("2026-11-23T00:00:00Z")


def typed_frame(table: str, rows: list[dict]) -> pd.DataFrame:
    """A frame of `table` from row dicts, with exactly the contract columns and dtypes."""
    columns = [column.name for column in SCHEMAS[table]]
    frame = pd.DataFrame(rows, columns=columns)
    for column in SCHEMAS[table]:
        if column.type.value == "date":
            frame[column.name] = pd.to_datetime(frame[column.name])
        elif column.type.value == "timestamp":
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
    return frame.astype(contract_dtypes(table))


def tiny_export(as_of: pd.Timestamp | str = DEFAULT_AS_OF) -> Export:
    """Five accounts (two of one customer) with dues, payments, contacts and promises before `as_of`.

    Event times are offsets from `as_of`, so any `as_of` gives a valid export. Covers nulls in every
    nullable column, several time zones, a returned payment, a broken and a kept promise, a
    right-party contact, an SMS, and one timestamp with microseconds.
    """
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    day = as_of.tz_localize(None).normalize()

    def date(days: int) -> pd.Timestamp:
        return day + pd.Timedelta(days=days)

    def at(days: float, hours: float = 0.0) -> pd.Timestamp:
        return as_of + pd.Timedelta(days=days) + pd.Timedelta(hours=hours)

    flags = dict.fromkeys(FLAG_COLUMNS, False)
    accounts = typed_frame(
        "accounts",
        [
            {
                "account_id": "A1",
                "customer_id": "C1",
                "product": "credit_card",
                "opened_date": date(-400),
                "credit_limit": 20000.0,
                "timezone": "Asia/Shanghai",
                "team": "early",
                "agent_id": "G1",
                **flags,
            },
            {
                "account_id": "A2",
                "customer_id": "C1",
                "product": "personal_loan",
                "opened_date": date(-200),
                "credit_limit": None,
                "timezone": "Asia/Shanghai",
                "team": "early",
                "agent_id": None,
                **flags,
            },
            {
                "account_id": "A3",
                "customer_id": "C2",
                "product": "auto_loan",
                "opened_date": date(-900),
                "credit_limit": 0.0,
                "timezone": "America/Chicago",
                "team": None,
                "agent_id": None,
                **{**flags, "hardship": True},
            },
            {
                "account_id": "A4",
                "customer_id": "C3",
                "product": "credit_card",
                "opened_date": date(-60),
                "credit_limit": 5000.5,
                "timezone": "Europe/Berlin",
                "team": "late",
                "agent_id": "G2",
                **{**flags, "do_not_call": True},
            },
            {
                "account_id": "A5",
                "customer_id": "C4",
                "product": "gold_card",
                "opened_date": date(0),
                "credit_limit": 1234567.89,
                "timezone": "America/New_York",
                "team": "late",
                "agent_id": "G2",
                **flags,
            },
        ],
    )
    dues = typed_frame(
        "dues",
        [
            {"account_id": "A1", "due_date": date(-60), "amount_due": 500.0},
            {"account_id": "A1", "due_date": date(-30), "amount_due": 500.0},
            {"account_id": "A1", "due_date": date(0), "amount_due": 500.0},
            {"account_id": "A2", "due_date": date(-10), "amount_due": 1200.25},
            {"account_id": "A3", "due_date": date(-95), "amount_due": 310.1},
            {"account_id": "A4", "due_date": date(-5), "amount_due": 80.0},
            {"account_id": "A5", "due_date": date(62), "amount_due": 99.99},
        ],
    )
    payments = typed_frame(
        "payments",
        [
            {
                "payment_id": "P1",
                "account_id": "A1",
                "paid_at": at(-59, 3),
                "amount": 500.0,
                "status": "settled",
                "channel": "bank_transfer",
            },
            {
                "payment_id": "P2",
                "account_id": "A1",
                "paid_at": at(-28, 5.5),
                "amount": 200.0,
                "status": "returned",
                "channel": "auto_debit",
            },
            {
                "payment_id": "P3",
                "account_id": "A2",
                "paid_at": at(-3, 1),
                "amount": 600.1,
                "status": "settled",
                "channel": None,
            },
            {
                "payment_id": "P4",
                "account_id": "A4",
                "paid_at": at(0, -0.25),
                "amount": 80.0,
                "status": "settled",
                "channel": "card",
            },
        ],
    )
    contacts = typed_frame(
        "contacts",
        [
            {
                "contact_id": "K1",
                "account_id": "A1",
                "started_at": at(-20, 1),
                "channel": "call",
                "direction": "outbound",
                "outcome": "no_answer",
                "agent_id": "G1",
                "duration_s": 0,
            },
            {
                "contact_id": "K2",
                "account_id": "A1",
                "started_at": at(-19, 2),
                "channel": "call",
                "direction": "outbound",
                "outcome": "promise_to_pay",
                "agent_id": "G1",
                "duration_s": 184,
            },
            {
                "contact_id": "K3",
                "account_id": "A2",
                "started_at": at(-2, 4),
                "channel": "sms",
                "direction": "outbound",
                "outcome": "delivered",
                "agent_id": None,
                "duration_s": None,
            },
            {
                "contact_id": "K4",
                "account_id": "A3",
                "started_at": at(-1, 15) + pd.Timedelta(microseconds=123456),
                "channel": "call",
                "direction": "inbound",
                "outcome": "right_party",
                "agent_id": "G3",
                "duration_s": 62,
            },
            {
                "contact_id": "K5",
                "account_id": "A4",
                "started_at": at(-7),
                "channel": "visit",
                "direction": "outbound",
                "outcome": "third_party",
                "agent_id": "G2",
                "duration_s": None,
            },
        ],
    )
    promises = typed_frame(
        "promises",
        [
            {
                "promise_id": "R1",
                "account_id": "A1",
                "created_at": at(-19, 2.1),
                "promised_date": date(-12),
                "promised_amount": 500.0,
                "contact_id": "K2",
            },
            {
                "promise_id": "R2",
                "account_id": "A3",
                "created_at": at(-1, 15.2),
                "promised_date": date(3),
                "promised_amount": 310.1,
                "contact_id": None,
            },
        ],
    )
    return Export(as_of=as_of, accounts=accounts, dues=dues, payments=payments, contacts=contacts, promises=promises)


def assert_exports_equal(left: Export, right: Export) -> None:
    """Same as_of, version and identical frames (values and dtypes), table by table."""
    assert left.as_of == right.as_of
    assert left.contract_version == right.contract_version
    for name, frame in left.tables().items():
        pd.testing.assert_frame_equal(frame, right.table(name), check_dtype=True, obj=name)
