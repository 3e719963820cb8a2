"""Contract section 1 checks: every planted fault is reported with its table, row, column and rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.contract import Violation
from features.io import check_export, write_export
from features.validate import (
    RULE_AFTER_AS_OF,
    RULE_BOOL,
    RULE_DATE,
    RULE_DECIMALS,
    RULE_DUE_TOO_LATE,
    RULE_DURATION_CHANNEL,
    RULE_EMPTY,
    RULE_EMPTY_ID,
    RULE_INT,
    RULE_MISSING_COLUMN,
    RULE_MISSING_TABLE,
    RULE_NAIVE_TIMESTAMP,
    RULE_NON_NEGATIVE,
    RULE_NOT_BEFORE_AS_OF,
    RULE_NOT_IN_ACCOUNTS,
    RULE_NOT_IN_CONTACTS,
    RULE_NOT_UNIQUE,
    RULE_NULL,
    RULE_NUMBER,
    RULE_OUTCOME_FOR_CHANNEL,
    RULE_POSITIVE,
    RULE_PROMISE_BEFORE_CREATED,
    RULE_TIMESTAMP,
    RULE_TIMEZONE,
    RULE_TOO_LARGE,
    RULE_UNKNOWN_OUTCOME,
    WHOLE,
    check_meta,
    check_tables,
    format_violations,
    validate_tables,
)
from tests.factories import DEFAULT_AS_OF, tiny_export

AS_OF = DEFAULT_AS_OF


def _text_tables(directory: Path) -> dict[str, pd.DataFrame]:
    """The CSV tables as plain text frames ('' where a field is empty), for planting faults."""
    return {
        name: pd.read_csv(directory / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("accounts", "dues", "payments", "contacts", "promises")
    }


def _set(frame: pd.DataFrame, key: str, value: str, column: str, new: str) -> None:
    frame.loc[frame[key] == value, column] = new


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    return tmp_path / "export"


def _found(violations: list[Violation]) -> set[tuple[str, str, str, str]]:
    return {(v.table, v.row, v.column, v.rule) for v in violations}


def test_valid_export_has_no_violations(csv_dir: Path) -> None:
    result = check_export(csv_dir)
    assert result.violations == [] and result.ok
    assert format_violations(result.violations) == "no violations"


def test_every_planted_fault_is_reported_in_one_run(csv_dir: Path) -> None:
    tables = _text_tables(csv_dir)
    accounts, dues, payments = tables["accounts"], tables["dues"], tables["payments"]
    contacts, promises = tables["contacts"], tables["promises"]
    _set(payments, "payment_id", "P3", "payment_id", "P1")  # duplicate id
    _set(payments, "payment_id", "P4", "account_id", "A9")  # orphan payment
    _set(dues, "amount_due", "1200.25", "amount_due", "-5.00")  # negative amount
    _set(contacts, "contact_id", "K1", "outcome", "answered")  # unknown outcome
    _set(contacts, "contact_id", "K3", "started_at", "2026-11-23T01:00:00Z")  # after as_of
    _set(promises, "promise_id", "R2", "created_at", "2026-11-23T08:00:00+08:00")  # exactly at as_of
    _set(accounts, "account_id", "A5", "timezone", "Mars/Olympus")  # bad time zone
    tables["contacts"] = contacts.drop(columns="agent_id")  # missing column
    _set(payments, "payment_id", "P2", "paid_at", "2026-10-26T05:30:00")  # naive timestamp
    _set(accounts, "account_id", "A1", "credit_limit", "20000.125")  # three decimals
    for name, frame in tables.items():
        frame.to_csv(csv_dir / f"{name}.csv", index=False)

    result = check_export(csv_dir)
    due_date = (AS_OF.tz_localize(None) - pd.Timedelta(days=10)).strftime("%Y-%m-%d")
    expected = {
        ("payments", "P1", "payment_id", RULE_NOT_UNIQUE),
        ("payments", "P4", "account_id", RULE_NOT_IN_ACCOUNTS),
        ("dues", f"A2/{due_date}", "amount_due", RULE_POSITIVE),
        ("contacts", "K1", "outcome", RULE_UNKNOWN_OUTCOME),
        ("contacts", "K3", "started_at", RULE_NOT_BEFORE_AS_OF),
        ("promises", "R2", "created_at", RULE_NOT_BEFORE_AS_OF),
        ("accounts", "A5", "timezone", RULE_TIMEZONE),
        ("contacts", WHOLE, "agent_id", RULE_MISSING_COLUMN),
        ("payments", "P2", "paid_at", RULE_NAIVE_TIMESTAMP),
        ("accounts", "A1", "credit_limit", RULE_DECIMALS),
    }
    assert _found(result.violations) == expected
    duplicates = [v for v in result.violations if v.rule == RULE_NOT_UNIQUE]
    assert len(duplicates) == 2 and {v.value for v in duplicates} == {"P1"}
    by_rule = {(v.table, v.rule): v for v in result.violations}
    assert by_rule[("accounts", RULE_DECIMALS)].value == "20000.125"
    assert by_rule[("payments", RULE_NAIVE_TIMESTAMP)].value == "2026-10-26T05:30:00"
    assert by_rule[("contacts", RULE_UNKNOWN_OUTCOME)].value == "answered"
    text = format_violations(result.violations)
    assert "payments: row P4: column account_id: not in accounts (value 'A9')" in text
    assert text.splitlines()[-1].startswith("11 violations of 10 rules")


def _raw(**changes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    export = tiny_export()
    return {**export.tables(), **changes}


def test_typed_export_from_memory_is_valid() -> None:
    assert validate_tables(AS_OF, tiny_export().tables()) == []


def test_missing_table_and_key_less_rows_use_data_row_numbers() -> None:
    export = tiny_export()
    dues = export.dues.astype({"account_id": object, "due_date": object})
    dues.loc[1, "account_id"] = None
    dues.loc[2, "account_id"] = "  "
    dues.loc[3, "due_date"] = "2026-02-30"
    raw = {**export.tables(), "dues": dues, "promises": None}
    found = _found(validate_tables(AS_OF, raw))
    assert ("promises", WHOLE, WHOLE, RULE_MISSING_TABLE) in found
    assert ("dues", "#2", "account_id", RULE_NULL) in found
    assert ("dues", "#3", "account_id", RULE_EMPTY_ID) in found
    assert ("dues", "#4", "due_date", RULE_DATE) in found


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("true", None),
        ("FALSE", None),
        ("1", None),
        ("0", None),
        ("yes", RULE_BOOL),
        ("2", RULE_BOOL),
        (None, RULE_NULL),
    ],
)
def test_boolean_text(value: str | None, rule: str | None) -> None:
    accounts = tiny_export().accounts.astype({"deceased": object})
    accounts.loc[0, "deceased"] = value
    found = _found(validate_tables(AS_OF, _raw(accounts=accounts)))
    assert found == (set() if rule is None else {("accounts", "A1", "deceased", rule)})


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("12", None),
        ("12.5", None),
        ("12.50", None),
        ("12.500", None),  # trailing zeros are not extra precision
        (".5", None),
        ("12.501", RULE_DECIMALS),
        ("1e3", RULE_NUMBER),
        ("12,50", RULE_NUMBER),
        ("abc", RULE_NUMBER),
        ("0", RULE_POSITIVE),
        ("-3", RULE_POSITIVE),
        ("9999999999999.99", None),
        ("10000000000000", RULE_TOO_LARGE),
        ("99999999999999999999999", RULE_TOO_LARGE),
    ],
)
def test_money_text(value: str, rule: str | None) -> None:
    payments = tiny_export().payments.astype({"amount": object})
    payments.loc[0, "amount"] = value
    found = _found(validate_tables(AS_OF, _raw(payments=payments)))
    assert found == (set() if rule is None else {("payments", "P1", "amount", rule)})


@pytest.mark.parametrize(
    ("value", "rule"),
    [(12.34, None), (12.345, RULE_DECIMALS), (np.inf, RULE_NUMBER), (-1.0, RULE_POSITIVE), (1e308, RULE_TOO_LARGE)],
)
def test_money_numbers(value: float, rule: str | None) -> None:
    payments = tiny_export().payments
    payments.loc[0, "amount"] = value
    found = _found(validate_tables(AS_OF, _raw(payments=payments)))
    assert found == (set() if rule is None else {("payments", "P1", "amount", rule)})


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("2026-11-01T10:00:00Z", None),
        ("2026-11-01 10:00:00+08:00", None),
        ("2026-11-01T10:00:00.5-0500", None),
        ("2026-11-01T10:00:00", RULE_NAIVE_TIMESTAMP),
        ("2026-11-01", RULE_NAIVE_TIMESTAMP),
        ("2026-13-01T10:00:00Z", RULE_TIMESTAMP),
        ("01/11/2026 10:00", RULE_TIMESTAMP),
        ("2026-11-23T00:00:00Z", RULE_NOT_BEFORE_AS_OF),
        ("2026-11-22T23:59:59.999999Z", None),
        ("2026-11-01T10:00:00,5Z", None),  # ISO-8601's decimal comma
        ("2026-11-01T10:00:00z", None),  # RFC 3339's lower-case Z
    ],
)
def test_timestamp_text(value: str, rule: str | None) -> None:
    payments = tiny_export().payments.astype({"paid_at": object})
    payments.loc[0, "paid_at"] = value
    found = _found(validate_tables(AS_OF, _raw(payments=payments)))
    assert found == (set() if rule is None else {("payments", "P1", "paid_at", rule)})


def test_arrow_and_pandas_parse_text_alike(monkeypatch) -> None:
    """Text columns are parsed by Arrow when it takes every value, else by pandas: the same values."""
    import features.validate as validate

    stamps = pd.Series(
        ["2026-11-01T10:00:00Z", "2026-11-01 10:00:00+08:00", "2026-11-01T10:00:00.5-0500", None, "2026-11-01T23:59Z"],
        dtype="string",
    )
    money = pd.Series(["12", "12.50", ".5", "+3.", None, "1234567.89"], dtype="string")
    counts = pd.Series(["0", " 17 ", "3", None, "-4"], dtype="string")  # "+3" Arrow refuses: pandas parses it
    # Arrow takes every value here (else both sides below would be pandas').
    for text, to in ((stamps, pa.timestamp("us", tz="UTC")), (money, pa.float64()), (counts.str.strip(), pa.int64())):
        assert validate._arrow_cast(text, to) is not None
    fast = [validate._parse_timestamp(stamps), validate._parse_money(money), validate._parse_int(counts)]
    monkeypatch.setattr(validate, "_arrow_cast", lambda text, to: None)
    slow = [validate._parse_timestamp(stamps), validate._parse_money(money), validate._parse_int(counts)]
    for arrow, pandas in zip(fast, slow, strict=True):
        pd.testing.assert_series_equal(arrow.values, pandas.values, check_names=False)
        assert [(rule, mask.tolist()) for rule, mask in arrow.issues] == [
            (rule, mask.tolist()) for rule, mask in pandas.issues
        ]
    assert fast[0].values.notna().sum() == 4 and fast[2].values.tolist()[:3] == [0, 17, 3]


@pytest.mark.parametrize("value", ["99999999999999999999", "-9300000000000000000"])
def test_integers_beyond_int64_are_not_integers(value: str) -> None:
    contacts = tiny_export().contacts.astype({"duration_s": object})
    contacts.loc[0, "duration_s"] = value
    found = _found(validate_tables(AS_OF, _raw(contacts=contacts)))
    assert found == {("contacts", "K1", "duration_s", RULE_INT)}


def test_naive_timestamps_from_parquet_are_violations() -> None:
    payments = tiny_export().payments
    payments["paid_at"] = payments["paid_at"].dt.tz_localize(None)
    found = _found(validate_tables(AS_OF, _raw(payments=payments)))
    assert found == {("payments", f"P{i}", "paid_at", RULE_NAIVE_TIMESTAMP) for i in range(1, 5)}


def test_dates_may_be_the_as_of_date_of_a_zone_ahead_of_utc() -> None:
    # as_of is 00:00 of 2026-11-24 in Auckland, still 2026-11-23 in UTC: an Auckland case system writes
    # the day's new account and a due 62 days after its own date. One day more is too late.
    as_of = pd.Timestamp("2026-11-23T11:00:00Z")
    export = tiny_export()
    export.accounts.loc[2, "opened_date"] = pd.Timestamp("2026-11-24")
    export.dues.loc[6, "due_date"] = pd.Timestamp("2027-01-25")
    assert _found(validate_tables(as_of, export.tables())) == set()
    export.dues.loc[6, "due_date"] = pd.Timestamp("2027-01-26")
    assert _found(validate_tables(as_of, export.tables())) == {("dues", "A5/2027-01-26", "due_date", RULE_DUE_TOO_LATE)}


def test_row_rules_of_every_table() -> None:
    export = tiny_export()
    accounts, dues, contacts, promises = export.accounts, export.dues, export.contacts, export.promises
    # Loaded, the enumerated columns are categoricals of the contract's values; as read they are text.
    contacts[["direction", "outcome"]] = contacts[["direction", "outcome"]].astype("string")
    export.payments["status"] = export.payments["status"].astype("string")
    accounts.loc[1, "credit_limit"] = -1.0
    accounts.loc[2, "opened_date"] = pd.Timestamp("2026-11-24")
    dues.loc[6, "due_date"] = pd.Timestamp("2027-01-25")  # 63 days after as_of
    contacts.loc[2, "duration_s"] = 5  # an SMS with a duration
    contacts.loc[0, "duration_s"] = -1
    contacts.loc[4, "outcome"] = "delivered"  # a visit cannot be "delivered"
    contacts.loc[1, "direction"] = "sideways"
    promises.loc[1, "contact_id"] = "K9"
    promises.loc[0, "promised_date"] = pd.Timestamp("2026-11-03")  # created on 2026-11-04
    payments = export.payments
    payments.loc[0, "status"] = "pending"
    found = _found(validate_tables(AS_OF, export.tables()))
    assert found == {
        ("accounts", "A2", "credit_limit", RULE_NON_NEGATIVE),
        ("accounts", "A3", "opened_date", RULE_AFTER_AS_OF),
        ("dues", "A5/2027-01-25", "due_date", RULE_DUE_TOO_LATE),
        ("contacts", "K3", "duration_s", RULE_DURATION_CHANNEL),
        ("contacts", "K1", "duration_s", RULE_NON_NEGATIVE),
        ("contacts", "K5", "outcome", RULE_OUTCOME_FOR_CHANNEL),
        ("contacts", "K2", "direction", "not one of outbound, inbound"),
        ("promises", "R2", "contact_id", RULE_NOT_IN_CONTACTS),
        ("promises", "R1", "promised_date", RULE_PROMISE_BEFORE_CREATED),
        ("payments", "P1", "status", "not one of settled, returned"),
    }


def test_promise_date_is_the_debtors_local_date() -> None:
    export = tiny_export()
    promises = export.promises
    # 20:00 on 2026-11-20 in Chicago is 02:00 on 2026-11-21 UTC: a promise for the 20th is valid.
    promises.loc[1, "created_at"] = pd.Timestamp("2026-11-21T02:00:00Z")
    promises.loc[1, "promised_date"] = pd.Timestamp("2026-11-20")
    assert validate_tables(AS_OF, export.tables()) == []
    promises.loc[1, "promised_date"] = pd.Timestamp("2026-11-19")
    assert _found(validate_tables(AS_OF, export.tables())) == {
        ("promises", "R2", "promised_date", RULE_PROMISE_BEFORE_CREATED)
    }


def test_as_of_rules_are_skipped_without_as_of() -> None:
    payments = tiny_export().payments
    payments.loc[0, "paid_at"] = pd.Timestamp("2030-01-01T00:00:00Z")
    assert validate_tables(None, _raw(payments=payments)) == []


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (None, {("export_meta", WHOLE, WHOLE, RULE_MISSING_TABLE)}),
        (
            {"as_of": "2026-11-23T00:00:00Z"},
            {("export_meta", WHOLE, "contract_version", RULE_MISSING_COLUMN)},
        ),
        (
            {"contract_version": "2", "as_of": "2026-11-23T00:00:00Z"},
            {("export_meta", WHOLE, "contract_version", "must be '1'")},
        ),
        (
            {"contract_version": "1", "as_of": "2026-11-23T00:00:00"},
            {("export_meta", WHOLE, "as_of", RULE_NAIVE_TIMESTAMP)},
        ),
        ({"contract_version": "1", "as_of": "soon"}, {("export_meta", WHOLE, "as_of", RULE_TIMESTAMP)}),
        ({"contract_version": "1"}, {("export_meta", WHOLE, "as_of", RULE_MISSING_COLUMN)}),
    ],
)
def test_meta_rules(meta: dict | None, expected: set) -> None:
    as_of, violations = check_meta(meta)
    assert _found(violations) == expected


def test_meta_as_of_with_offset_is_utc() -> None:
    as_of, violations = check_meta({"contract_version": 1, "as_of": "2026-11-23T08:00:00+08:00"})
    assert violations == [] and as_of == AS_OF and str(as_of.tz) == "UTC"


def test_bad_export_json_is_reported(csv_dir: Path) -> None:
    (csv_dir / "export.json").write_text("{not json", encoding="utf-8")
    result = check_export(csv_dir)
    assert [(v.table, v.rule) for v in result.violations] == [("export.json", "not valid JSON (JSONDecodeError)")]
    (csv_dir / "export.json").write_text(json.dumps({"contract_version": "1"}), encoding="utf-8")
    assert _found(check_export(csv_dir).violations) == {("export.json", WHOLE, "as_of", RULE_MISSING_COLUMN)}


def test_cap_per_rule_keeps_true_totals_and_formatter_summarises() -> None:
    payments = tiny_export().payments
    payments["amount"] = -1.0
    result = check_tables(AS_OF, _raw(payments=payments), max_per_rule=2)
    assert len(result.violations) == 2 and result.totals == {("payments", "amount", RULE_POSITIVE): 4}
    text = format_violations(result.violations, limit_per_rule=1, totals=result.totals).splitlines()
    assert text == [
        "payments: row P1: column amount: must be > 0 (value '-1.0')",
        "payments: ... and 3 more rows: column amount: must be > 0",
        "4 violations of 1 rule in payments",
    ]


def test_rejections_cascade_to_rows_of_rejected_accounts() -> None:
    export = tiny_export()
    accounts = export.accounts.astype({"timezone": object})
    accounts.loc[0, "timezone"] = "Nowhere/Land"  # A1: its dues, payments, contacts, promises go too
    result = check_tables(AS_OF, _raw(accounts=accounts))
    assert [v.row for v in result.violations] == ["A1"]
    rejected = {name: int(table.rejected.sum()) for name, table in result.tables.items()}
    assert rejected == {"accounts": 1, "dues": 3, "payments": 2, "contacts": 2, "promises": 1}
    assert set(result.tables["dues"].reasons) == {"account_id: account rejected"}
    assert result.tables["accounts"].reasons.tolist() == ["timezone: not an IANA time zone"]


@pytest.mark.parametrize("values", [["a", "b", None], ["a", "a", None], [None, None], []])
def test_duplicates_mark_every_copy_and_never_nulls(values: list) -> None:
    from features.validate import _duplicated

    series = pd.Series(values, dtype="string")
    expected = (series.duplicated(keep=False) & series.notna()).to_numpy(dtype=bool)
    np.testing.assert_array_equal(_duplicated(series), expected)


@pytest.mark.parametrize("orphans", [0, 3])
def test_membership_in_a_large_id_set_matches_arrow(orphans: int) -> None:
    """Above `_LARGE_VALUE_SET` ids, membership is counted by DuckDB first; the mask must not change."""
    from features.validate import _LARGE_VALUE_SET, _in

    ids = pd.array([f"A{i}" for i in range(_LARGE_VALUE_SET + 5)], dtype="string")
    rng = np.random.default_rng(0)
    rows = pd.Series(ids[rng.integers(0, len(ids), 50_000)], dtype="string")
    rows[[7, 70]] = pd.NA
    rows[rng.choice(np.arange(100, 50_000), orphans, replace=False)] = "Z"
    found = _in(rows, ids)
    known = set(ids)
    expected = np.array([value is not pd.NA and value in known for value in rows.astype(object)])
    np.testing.assert_array_equal(found, expected)
    assert (~found).sum() == orphans + 2


@pytest.mark.parametrize(
    ("zone", "valid"),
    [
        ("Asia/Kolkata", True),
        ("US/Eastern", True),  # an IANA backward link
        ("Etc/GMT+5", True),
        ("localtime", False),  # the machine's own setting, not a place
        ("Factory", False),
        ("posixrules", False),
        ("right/UTC", False),
        ("posix/Asia/Shanghai", False),
    ],
)
def test_time_zones_are_names_of_the_iana_list(zone: str, valid: bool) -> None:
    accounts = tiny_export().accounts
    accounts.loc[0, "timezone"] = zone
    found = _found(validate_tables(AS_OF, _raw(accounts=accounts)))
    assert found == (set() if valid else {("accounts", "A1", "timezone", RULE_TIMEZONE)})


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (1234567890.12, None),
        (12345678901.23, None),
        (9999999999999.99, None),
        (0.1 + 0.2, None),  # arithmetic noise far below a cent
        (1234567.891, RULE_DECIMALS),
        (123456789.125, RULE_DECIMALS),
    ],
)
def test_money_floats_are_judged_at_their_own_precision(value: float, rule: str | None) -> None:
    """A float's rounding error grows with its size: 1234567890.12 is two decimals, as its text is."""
    accounts = tiny_export().accounts
    accounts.loc[4, "credit_limit"] = value
    found = _found(validate_tables(AS_OF, _raw(accounts=accounts)))
    assert found == (set() if rule is None else {("accounts", "A5", "credit_limit", rule)})


def test_money_written_to_parquet_is_read_back_valid(tmp_path: Path) -> None:
    export = tiny_export()
    export.accounts.loc[4, "credit_limit"] = 1234567890.12
    write_export(export, tmp_path / "export", fmt="parquet")
    assert check_export(tmp_path / "export").violations == []


def test_parquet_decimals_are_read_as_their_digits() -> None:
    """Parquet decimals arrive as Python Decimals: a zero of scale 10 prints as 0E-10, yet is 0."""
    from decimal import Decimal

    accounts = tiny_export().accounts.astype({"credit_limit": object})
    accounts["credit_limit"] = [
        Decimal("20000.0000000000"),
        None,
        Decimal("0E-10"),
        Decimal("5000.50"),
        Decimal("1E+3"),
    ]
    assert validate_tables(AS_OF, _raw(accounts=accounts)) == []
    accounts.loc[0, "credit_limit"] = Decimal("0.0010000000")
    assert _found(validate_tables(AS_OF, _raw(accounts=accounts))) == {
        ("accounts", "A1", "credit_limit", RULE_DECIMALS)
    }


@pytest.mark.parametrize(("table", "column"), [("accounts", "account_id"), ("contacts", "contact_id")])
def test_a_missing_key_column_is_one_violation_not_an_orphan_per_row(table: str, column: str) -> None:
    export = tiny_export()
    frame = export.table(table).drop(columns=column)
    assert _found(validate_tables(AS_OF, _raw(**{table: frame}))) == {(table, WHOLE, column, RULE_MISSING_COLUMN)}


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_product_is_refused_as_csv_refuses_it(value: str) -> None:
    """CSV reads an empty field as null (refused); Parquet and SQL keep "": the same value, the same verdict."""
    accounts = tiny_export().accounts
    accounts.loc[0, "product"] = value
    found = _found(validate_tables(AS_OF, _raw(accounts=accounts)))
    assert found == {("accounts", "A1", "product", RULE_EMPTY)}


@pytest.mark.parametrize(("value", "rule"), [("184.0", None), ("184.00", None), ("184.5", RULE_INT), ("1e2", RULE_INT)])
def test_integral_decimal_text_is_an_integer(value: str, rule: str | None) -> None:
    """A float 184.0 from Parquet is the integer 184; so is its text from SQLite (REAL) or a NUMERIC column."""
    contacts = tiny_export().contacts.astype({"duration_s": object})
    contacts.loc[1, "duration_s"] = value
    found = _found(validate_tables(AS_OF, _raw(contacts=contacts)))
    assert found == (set() if rule is None else {("contacts", "K2", "duration_s", rule)})
