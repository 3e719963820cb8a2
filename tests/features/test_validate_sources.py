"""The same values are accepted or refused the same way from CSV, Parquet, SQLite and PostgreSQL.

Each test plants values in the text of a small valid export, writes it to every source (CSV text;
Parquet, SQLite and PostgreSQL text columns unless a test gives a column a type of its own there), and
compares what `check_export` reports: the same rows, named the same way, refused by the same rules.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from features.contract import TABLES
from features.io import ExportError, check_export, load_export, write_export
from features.validate import (
    RULE_BOOL,
    RULE_DATE,
    RULE_DECIMALS,
    RULE_EMPTY,
    RULE_EMPTY_ID,
    RULE_INT,
    RULE_NAIVE_TIMESTAMP,
    RULE_NULL,
    RULE_NUMBER,
    RULE_TIMEZONE,
)
from tests.factories import DEFAULT_AS_OF, tiny_export

SOURCES = ("csv", "parquet", "sqlite", "postgres")
AS_OF_TEXT = "2026-11-23T00:00:00Z"
assert pd.Timestamp(AS_OF_TEXT) == DEFAULT_AS_OF

# A column's type where a source stores it as something other than text: {(table, column): {source: type}}
# with an Arrow type for Parquet and a SQL type name for SQLite and PostgreSQL.
ColumnTypes = Mapping[tuple[str, str], Mapping[str, object]]
Found = set[tuple[str, str, str, str]]


def _text_tables(tmp_path: Path) -> dict[str, pd.DataFrame]:
    """The tiny export's tables as text (object columns, None for null), as its CSV files hold them."""
    directory = tmp_path / "base"
    write_export(tiny_export(), directory, fmt="csv")
    tables = {}
    for name in TABLES:
        frame = pd.read_csv(directory / f"{name}.csv", dtype=str, keep_default_na=False).astype(object)
        tables[name] = frame.where(frame != "", None)
    return tables


def _write_csv(directory: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        with open(directory / f"{name}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(frame.columns)
            writer.writerows([["" if v is None else v for v in row] for row in frame.itertuples(index=False)])


def _write_parquet(directory: Path, tables: Mapping[str, pd.DataFrame], types: ColumnTypes) -> None:
    for name, frame in tables.items():
        arrays = []
        for column in frame.columns:
            array = pa.array(frame[column].tolist(), pa.string())
            kind = types.get((name, column), {}).get("parquet")
            arrays.append(array if kind is None else array.cast(kind))
        pq.write_table(pa.Table.from_arrays(arrays, names=list(frame.columns)), directory / f"{name}.parquet")


def _sql_type(types: ColumnTypes, name: str, column: str, source: str) -> str:
    return str(types.get((name, column), {}).get(source, "TEXT"))


def _write_sqlite(path: Path, tables: Mapping[str, pd.DataFrame], types: ColumnTypes) -> None:
    with sqlite3.connect(path) as connection:
        for name, frame in tables.items():
            columns = ", ".join(f'"{c}" {_sql_type(types, name, c, "sqlite")}' for c in frame.columns)
            connection.execute(f'CREATE TABLE "{name}" ({columns})')
            marks = ", ".join("?" for _ in frame.columns)
            connection.executemany(f'INSERT INTO "{name}" VALUES ({marks})', frame.itertuples(index=False))
        connection.execute("CREATE TABLE export_meta (contract_version TEXT, as_of TEXT)")
        connection.execute("INSERT INTO export_meta VALUES ('1', ?)", (AS_OF_TEXT,))
    connection.close()


def _write_postgres(url: str, tables: Mapping[str, pd.DataFrame], types: ColumnTypes) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for name, frame in tables.items():
            kinds = {c: _sql_type(types, name, c, "postgres") for c in frame.columns}
            connection.exec_driver_sql(f'CREATE TABLE "{name}" ({", ".join(f"{c} {k}" for c, k in kinds.items())})')
            values = ", ".join(f"CAST(:{c} AS {kinds[c]})" for c in frame.columns)
            rows = [dict(zip(frame.columns, row, strict=True)) for row in frame.itertuples(index=False)]
            connection.execute(sa.text(f'INSERT INTO "{name}" VALUES ({values})'), rows)
        connection.exec_driver_sql("CREATE TABLE export_meta (contract_version TEXT, as_of TIMESTAMPTZ)")
        connection.exec_driver_sql(f"INSERT INTO export_meta VALUES ('1', '{AS_OF_TEXT}')")
    engine.dispose()


def _sources(
    tmp_path: Path, request: pytest.FixtureRequest, tables: Mapping[str, pd.DataFrame], types: ColumnTypes | None = None
) -> dict[str, str | Path]:
    """`tables` written as an export to every source: source -> its directory or URL."""
    types = types or {}
    written: dict[str, str | Path] = {}
    for source in SOURCES:
        if source in ("csv", "parquet"):
            directory = tmp_path / source
            directory.mkdir()
            (directory / "export.json").write_text(json.dumps({"contract_version": "1", "as_of": AS_OF_TEXT}))
            if source == "csv":
                _write_csv(directory, tables)
            else:
                _write_parquet(directory, tables, types)
            written[source] = directory
        elif source == "sqlite":
            _write_sqlite(tmp_path / "export.db", tables, types)
            written[source] = f"sqlite:///{tmp_path / 'export.db'}"
        else:
            url = request.getfixturevalue("postgres_db_url")
            _write_postgres(url, tables, types)
            written[source] = url
    return written


def _found_everywhere(sources: Mapping[str, str | Path]) -> dict[str, Found]:
    return {
        source: {(v.table, v.row, v.column, v.rule) for v in check_export(where).violations}
        for source, where in sources.items()
    }


def _assert_same(found: Mapping[str, Found], expected: Found) -> None:
    assert found == dict.fromkeys(SOURCES, expected)


def _set(tables: dict[str, pd.DataFrame], table: str, row: int, column: str, value: str | None) -> None:
    tables[table].loc[row, column] = value


# ---------------------------------------------------------------------------------------
# Dates stored as naive timestamps

_MIDNIGHT_COLUMNS = (("accounts", "opened_date"), ("dues", "due_date"), ("promises", "promised_date"))
_NAIVE = {"parquet": pa.timestamp("us"), "sqlite": "TIMESTAMP", "postgres": "TIMESTAMP"}
_AWARE = {"parquet": pa.timestamp("us", tz="UTC"), "sqlite": "TIMESTAMP", "postgres": "TIMESTAMPTZ"}


@pytest.mark.postgres
@pytest.mark.parametrize("time", [" 00:00:00", "T00:00:00", " 00:00", "T00:00:00.000000"])
def test_a_date_kept_as_a_naive_midnight_timestamp_is_that_date_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest, time: str
) -> None:
    # Parquet timestamp[us] and PostgreSQL TIMESTAMP columns; their text (as SQLite or a CSV writer holds it).
    tables = _text_tables(tmp_path)
    for table, column in _MIDNIGHT_COLUMNS:
        tables[table][column] = tables[table][column] + time
    sources = _sources(tmp_path, request, tables, dict.fromkeys(_MIDNIGHT_COLUMNS, _NAIVE))
    _assert_same(_found_everywhere(sources), set())
    expected = tiny_export()
    for source, where in sources.items():
        loaded, _ = load_export(where)
        for table, column in _MIDNIGHT_COLUMNS:
            assert loaded.table(table)[column].tolist() == expected.table(table)[column].tolist(), source


@pytest.mark.postgres
def test_a_time_of_day_in_a_date_column_is_refused_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tables = _text_tables(tmp_path)
    tables["dues"]["due_date"] = tables["dues"]["due_date"] + " 00:00:00"
    _set(tables, "dues", 1, "due_date", "2026-10-24 13:00:00")
    _set(tables, "dues", 3, "due_date", "2026-11-13 00:00:00.5")  # not midnight either, by half a second
    sources = _sources(tmp_path, request, tables, {("dues", "due_date"): _NAIVE})
    _assert_same(
        _found_everywhere(sources), {("dues", "#2", "due_date", RULE_DATE), ("dues", "#4", "due_date", RULE_DATE)}
    )
    shown = {v.value for v in check_export(sources["postgres"]).violations}
    assert shown == {"2026-10-24 13:00:00", "2026-11-13 00:00:00.5"}


@pytest.mark.postgres
def test_a_timestamp_with_a_zone_in_a_date_column_is_refused_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Even at midnight UTC: which calendar date it is depends on a zone the contract's dates do not have.
    tables = _text_tables(tmp_path)
    tables["promises"]["promised_date"] = tables["promises"]["promised_date"] + "T00:00:00Z"
    sources = _sources(tmp_path, request, tables, {("promises", "promised_date"): _AWARE})
    _assert_same(
        _found_everywhere(sources),
        {("promises", "R1", "promised_date", RULE_DATE), ("promises", "R2", "promised_date", RULE_DATE)},
    )


@pytest.mark.postgres
def test_a_timestamp_without_an_offset_is_refused_alike_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tables = _text_tables(tmp_path)
    tables["payments"]["paid_at"] = tables["payments"]["paid_at"].str.removesuffix("Z")
    naive = {"parquet": pa.timestamp("us"), "sqlite": "TIMESTAMP", "postgres": "TIMESTAMP"}
    sources = _sources(tmp_path, request, tables, {("payments", "paid_at"): naive})
    _assert_same(
        _found_everywhere(sources), {("payments", f"P{i}", "paid_at", RULE_NAIVE_TIMESTAMP) for i in range(1, 5)}
    )


# ---------------------------------------------------------------------------------------
# Padding and empty text


@pytest.mark.postgres
def test_padded_numbers_flags_dates_and_times_are_their_values_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A CSV writer padding its fields, a SQL text column holding " 12.50": the value, as an integer's always was.
    tables = _text_tables(tmp_path)
    for table, row, column, pad in (
        ("payments", 0, "amount", " {}"),
        ("payments", 1, "amount", "{} "),
        ("dues", 0, "amount_due", "\t{}\t"),
        ("accounts", 0, "credit_limit", "  {}  "),
        ("promises", 0, "promised_amount", " {}"),
        ("contacts", 1, "duration_s", " {}"),
        ("accounts", 0, "deceased", " {} "),
        ("dues", 2, "due_date", " {}"),
        ("payments", 2, "paid_at", "{} "),
    ):
        _set(tables, table, row, column, pad.format(tables[table].loc[row, column]))
    sources = _sources(tmp_path, request, tables)
    _assert_same(_found_everywhere(sources), set())
    expected = tiny_export()
    for source, where in sources.items():
        loaded, _ = load_export(where)
        for name in TABLES:
            pd.testing.assert_frame_equal(loaded.table(name), expected.table(name), obj=f"{source} {name}")


@pytest.mark.postgres
@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_numbers_flags_dates_and_times_are_null_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest, blank: str
) -> None:
    # CSV reads an empty field as null; Parquet, SQLite and PostgreSQL text columns hold "": the same verdict
    # (a nullable one is no value, as a blank team is no team; a required one is refused as null).
    tables = _text_tables(tmp_path)
    for table, row, column in (
        ("accounts", 0, "credit_limit"),  # nullable: no limit
        ("contacts", 0, "duration_s"),  # nullable
        ("accounts", 1, "deceased"),
        ("dues", 0, "due_date"),
        ("dues", 1, "amount_due"),
        ("payments", 0, "amount"),
        ("payments", 1, "paid_at"),
    ):
        _set(tables, table, row, column, blank)
    expected = {
        ("accounts", "A2", "deceased", RULE_NULL),
        ("dues", "#1", "due_date", RULE_NULL),
        ("dues", "A1/2026-10-24", "amount_due", RULE_NULL),
        ("payments", "P1", "amount", RULE_NULL),
        ("payments", "P2", "paid_at", RULE_NULL),
    }
    sources = _sources(tmp_path, request, tables)
    _assert_same(_found_everywhere(sources), expected)
    for source, where in sources.items():
        loaded, _ = load_export(where, mode="lenient")
        assert pd.isna(loaded.accounts.loc[0, "credit_limit"]), source
        assert pd.isna(loaded.contacts.loc[0, "duration_s"]), source


@pytest.mark.postgres
@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_required_text_is_refused_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest, blank: str
) -> None:
    tables = _text_tables(tmp_path)
    _set(tables, "payments", 0, "account_id", blank)
    _set(tables, "accounts", 1, "product", blank)
    _set(tables, "payments", 2, "status", blank)
    _set(tables, "accounts", 2, "timezone", blank)
    _set(tables, "accounts", 3, "team", blank)  # nullable: no team
    found = _found_everywhere(_sources(tmp_path, request, tables))
    as_text = {
        ("payments", "P1", "account_id", RULE_EMPTY_ID),
        ("accounts", "A2", "product", RULE_EMPTY),
        ("payments", "P3", "status", "not one of settled, returned"),
        ("accounts", "A3", "timezone", RULE_TIMEZONE),
    }
    # The same rows refused everywhere. Spaces are a value in every source; "" is one except in CSV, which
    # cannot tell it from null (README, "Pointing callq at a real case system").
    assert found["parquet"] == found["sqlite"] == found["postgres"] == as_text
    as_null = {(table, row, column, RULE_NULL) for table, row, column, _ in as_text}
    assert found["csv"] == (as_null if blank == "" else as_text)


# ---------------------------------------------------------------------------------------
# Numbers stored as floats or NUMERIC

_FLOAT = {"parquet": pa.float64(), "sqlite": "REAL", "postgres": "NUMERIC"}
_DOUBLE = {"parquet": pa.float64(), "sqlite": "REAL", "postgres": "DOUBLE PRECISION"}


@pytest.mark.postgres
def test_flags_and_integers_with_a_zero_fraction_are_read_alike_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A case system keeping flags and counts as floats: 1.0 is 1 (true), 184.0 is 184; 0.5 is neither.
    tables = _text_tables(tmp_path)
    flags = ("hardship", "deceased")
    for flag in flags:
        tables["accounts"][flag] = tables["accounts"][flag].map({"true": "1.0", "false": "0.0"})
    durations = [None if v is None else f"{v}.0" for v in tables["contacts"]["duration_s"]]
    tables["contacts"]["duration_s"] = pd.Series(durations, dtype=object)
    _set(tables, "accounts", 4, "deceased", "0.5")
    _set(tables, "contacts", 3, "duration_s", "62.5")
    types = {("accounts", flag): _FLOAT for flag in flags} | {("contacts", "duration_s"): _FLOAT}
    sources = _sources(tmp_path, request, tables, types)
    expected = {("accounts", "A5", "deceased", RULE_BOOL), ("contacts", "K4", "duration_s", RULE_INT)}
    _assert_same(_found_everywhere(sources), expected)
    export = tiny_export()
    for source, where in sources.items():
        loaded, _ = load_export(where, mode="lenient")
        kept = export.accounts["account_id"] != "A5"
        assert loaded.accounts["hardship"].tolist() == export.accounts.loc[kept, "hardship"].tolist(), source
        durations = export.contacts.loc[export.contacts["contact_id"] != "K4", "duration_s"]
        assert loaded.contacts["duration_s"].tolist() == durations.tolist(), source


@pytest.mark.postgres
def test_an_integer_beyond_int64_is_refused_from_every_source(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    tables = _text_tables(tmp_path)
    _set(tables, "contacts", 1, "duration_s", "100000000000000000000")  # 1e20
    sources = _sources(tmp_path, request, tables, {("contacts", "duration_s"): _DOUBLE})
    _assert_same(_found_everywhere(sources), {("contacts", "K2", "duration_s", RULE_INT)})


@pytest.mark.postgres
def test_a_text_column_stored_as_floats_is_refused_whole_from_every_typed_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Ids kept as floats read as "1001.0" (SQLite) or, past 15 digits, as "1.23456789012346e+18" (PostgreSQL):
    # refused whole, naming the column, as a Parquet file's float column is. A CSV file has only text.
    tables = _text_tables(tmp_path)
    tables["accounts"]["customer_id"] = [str(1234567890123456700 + i) for i in range(len(tables["accounts"]))]
    sources = _sources(tmp_path, request, tables, {("accounts", "customer_id"): _DOUBLE})
    assert check_export(sources["csv"]).ok
    for source in ("parquet", "sqlite", "postgres"):
        with pytest.raises(
            ExportError, match=r"^accounts: row -: column customer_id: a \w+ .*column, where the contract has text$"
        ):
            check_export(sources[source])


_SINGLE = {"parquet": pa.float32(), "sqlite": "REAL", "postgres": "REAL"}


@pytest.mark.postgres
def test_money_in_32_bit_floats_is_read_to_the_cent_from_every_source(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A float32 holds 12345.67 as 12345.669921875: its cents, as PostgreSQL's REAL and Parquet's float32 hold
    # them, not PostgreSQL's 6-digit text of it (12345.7) nor the float's 3rd decimal.
    tables = _text_tables(tmp_path)
    amounts = ["12345.67", "99999.99", "0.01", "131071.99"]
    tables["payments"]["amount"] = amounts
    sources = _sources(tmp_path, request, tables, {("payments", "amount"): _SINGLE})
    _assert_same(_found_everywhere(sources), set())
    for source, where in sources.items():
        loaded, _ = load_export(where)
        assert loaded.payments["amount"].tolist() == [float(a) for a in amounts], source


@pytest.mark.postgres
def test_money_a_32_bit_float_cannot_hold_to_the_cent_is_refused_from_float_sources(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Above 2^17 a float32 is 1/64 apart: 200000.37 is held as 200000.375, whose cent is not known. A NaN is no
    # number, not a missing credit limit.
    tables = _text_tables(tmp_path)
    _set(tables, "payments", 0, "amount", "200000.37")
    _set(tables, "payments", 1, "amount", "1000000")  # whole: exact
    _set(tables, "accounts", 0, "credit_limit", "NaN")
    types = {("payments", "amount"): _SINGLE, ("accounts", "credit_limit"): _SINGLE}
    sources = _sources(tmp_path, request, tables, types)
    found = _found_everywhere(sources)
    nan = ("accounts", "A1", "credit_limit", RULE_NUMBER)
    assert found["csv"] == found["sqlite"] == {nan}  # text and doubles hold 200000.37 itself
    assert (
        found["parquet"]
        == found["postgres"]
        == {
            nan,
            ("payments", "P1", "amount", RULE_DECIMALS),
            ("accounts", "A5", "credit_limit", RULE_DECIMALS),  # 1234567.89, held as 1234567.875
        }
    )
