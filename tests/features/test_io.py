"""Reading and writing exports and output frames: round trips, strict and lenient loading, SQL."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import threading
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from features.contract import CALL_LIST_SCHEMA, TABLES
from features.io import (
    ExportError,
    check_export,
    is_sql_url,
    load_export,
    read_frame,
    shown_location,
    write_export,
    write_frame,
)
from features.simulation import SimulationConfig, simulate
from features.validate import RULE_DATE, RULE_NAIVE_TIMESTAMP, RULE_NULL, RULE_NUMBER, RULE_TIMESTAMP
from tests.factories import DEFAULT_AS_OF, assert_exports_equal, tiny_export


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'export.db'}"


def _sql_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of `kind` ("sqlite" or "postgres"), the PostgreSQL one started only when asked for."""
    return request.getfixturevalue("postgres_db_url") if kind == "postgres" else _sqlite(tmp_path)


@pytest.mark.parametrize("kind", ["csv", "parquet", "sqlite"])
def test_round_trip(tmp_path: Path, kind: str) -> None:
    export = tiny_export()
    target = _sqlite(tmp_path) if kind == "sqlite" else tmp_path / "export"
    write_export(export, target, fmt="csv" if kind == "csv" else "parquet")
    loaded, report = load_export(target)
    assert_exports_equal(export, loaded)
    assert report.read == report.accepted == {name: len(export.table(name)) for name in TABLES}
    assert report.rejected == dict.fromkeys(TABLES, 0) and report.reconciles()
    assert loaded.source == str(target)
    # Enumerated columns come back as categoricals of the contract's values, the same values.
    outcome = loaded.contacts["outcome"]
    assert isinstance(outcome.dtype, pd.CategoricalDtype) and "promise_to_pay" in outcome.cat.categories
    assert outcome.astype("string").tolist() == export.contacts["outcome"].astype("string").tolist()
    assert loaded.contacts["outcome"].isna().sum() == export.contacts["outcome"].isna().sum()


def test_csv_with_every_field_quoted_reads_empty_fields_as_nulls(tmp_path: Path) -> None:
    # Writers that quote every field (Python's csv.QUOTE_ALL) write a null as "": the same null.
    export = tiny_export()
    export.accounts.loc[0, "team"] = None
    write_export(export, tmp_path, fmt="csv")
    for path in tmp_path.glob("*.csv"):
        pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    assert '""' in (tmp_path / "accounts.csv").read_text()
    loaded, report = load_export(tmp_path)
    assert_exports_equal(export, loaded)
    assert sum(report.rejected.values()) == 0


def test_a_blank_team_or_agent_is_no_team_or_agent(tmp_path: Path) -> None:
    export = tiny_export()
    export.accounts["team"] = export.accounts["team"].astype(object)
    export.accounts.loc[0, "team"] = "  "
    export.accounts.loc[1, "agent_id"] = ""
    write_export(export, tmp_path, fmt="parquet")
    loaded, _ = load_export(tmp_path)
    assert pd.isna(loaded.accounts.loc[0, "team"]) and pd.isna(loaded.accounts.loc[1, "agent_id"])


def _column_types(url: str, table: str) -> dict[str, str]:
    """PostgreSQL's name for the type of each column of `table`."""
    engine = sa.create_engine(url)
    query = "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :table"
    with engine.connect() as connection:
        types = dict(connection.execute(sa.text(query), {"table": table}).all())
    engine.dispose()
    return types


@pytest.mark.postgres
def test_round_trip_postgres(postgres_db_url: str) -> None:
    export = tiny_export(as_of="2026-11-23T08:00:00+08:00")
    write_export(export, postgres_db_url)
    write_export(export, postgres_db_url)  # replaces, does not append
    loaded, report = load_export(postgres_db_url)
    assert_exports_equal(export, loaded)
    assert report.reconciles() and sum(report.rejected.values()) == 0
    types = _column_types(postgres_db_url, "payments")
    assert types["paid_at"] == "timestamp with time zone" and types["amount"] == "numeric"


@pytest.mark.postgres
def test_postgres_server_defaults_and_float_money_do_not_change_what_is_read(postgres_db_url: str) -> None:
    export = tiny_export()
    write_export(export, postgres_db_url)
    engine = sa.create_engine(postgres_db_url, isolation_level="AUTOCOMMIT")
    name = sa.engine.make_url(postgres_db_url).database
    with engine.connect() as connection:
        connection.exec_driver_sql(f"""ALTER DATABASE "{name}" SET DateStyle = 'SQL, DMY'""")
        connection.exec_driver_sql(f"""ALTER DATABASE "{name}" SET TimeZone = 'Asia/Shanghai'""")
        # A case system keeping money as DOUBLE PRECISION: 100.1 + 200.2 is 300.29999999999995 there.
        connection.exec_driver_sql("ALTER TABLE payments ALTER COLUMN amount TYPE double precision")
        connection.exec_driver_sql("UPDATE payments SET amount = 100.1::float8 + 200.2::float8 WHERE payment_id = 'P1'")
    engine.dispose()
    loaded, report = load_export(postgres_db_url)
    assert sum(report.rejected.values()) == 0
    export.payments.loc[export.payments["payment_id"] == "P1", "amount"] = 300.3
    # The UPDATE moved P1 to the end of the table's storage: SQL rows come in no particular order.
    loaded.payments = loaded.payments.sort_values("payment_id", ignore_index=True)
    assert_exports_equal(export, loaded)


@pytest.mark.postgres
def test_postgres_tables_read_in_parallel_ranges_keep_storage_order_and_one_snapshot(
    postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import features.io as io

    export = simulate(SimulationConfig(n_accounts=150, days=60, seed=5)).export
    write_export(export, postgres_db_url)
    whole, _ = load_export(postgres_db_url)  # each table in one query, in storage order
    assert whole.contacts["contact_id"].tolist() == export.contacts["contact_id"].tolist()
    # Every table but accounts (export_meta too) split into three ctid ranges, read on three connections.
    monkeypatch.setattr(io, "_PG_SPLIT_BYTES", 0)
    monkeypatch.setattr(io, "_pg_readers", lambda: 3)
    fetched: list[str] = []
    fetch = io._adbc_fetch
    writer = sa.create_engine(postgres_db_url)

    first = threading.Lock()

    def fetch_while_the_case_system_writes(cursor, part):
        with first:
            if not fetched:  # after the snapshot, before any part is read: a new contact is committed
                with writer.begin() as connection:
                    connection.execute(
                        sa.text(
                            "INSERT INTO contacts SELECT 'late-contact', account_id, started_at, channel, direction,"
                            " outcome, agent_id, duration_s FROM contacts LIMIT 1"
                        )
                    )
            fetched.append(part.query)
        return fetch(cursor, part)

    monkeypatch.setattr(io, "_adbc_fetch", fetch_while_the_case_system_writes)
    loaded, report = load_export(postgres_db_url)
    writer.dispose()
    assert sum("ctid" in query for query in fetched) == 3 * len(TABLES)
    assert_exports_equal(whole, loaded)  # rows in the same order, and no late contact
    assert report.read["contacts"] == len(export.contacts)
    assert "late-contact" in set(load_export(postgres_db_url)[0].contacts["contact_id"])


@pytest.mark.postgres
def test_postgres_before_14_reads_tables_whole(postgres_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without TID range scans (PostgreSQL 13 and older) every ctid range would scan the whole table.
    import features.io as io

    export = simulate(SimulationConfig(n_accounts=150, days=60, seed=5)).export
    write_export(export, postgres_db_url)
    monkeypatch.setattr(io, "_PG_SPLIT_BYTES", 0)
    monkeypatch.setattr(io, "_pg_readers", lambda: 3)
    monkeypatch.setattr(io, "_PG_TID_RANGE_SCANS", 10**9)  # this server taken for an old one
    fetched: list[str] = []
    fetch = io._adbc_fetch

    def recorded(cursor, part):
        fetched.append(part.query)
        return fetch(cursor, part)

    monkeypatch.setattr(io, "_adbc_fetch", recorded)
    loaded, _ = load_export(postgres_db_url)
    assert len(fetched) == len(TABLES) + 1 and not any("ctid" in query for query in fetched)  # export_meta too
    assert loaded.contacts["contact_id"].tolist() == export.contacts["contact_id"].tolist()


@pytest.mark.postgres
def test_postgres_columns_of_other_types_read_as_their_text(postgres_db_url: str) -> None:
    # A case system's own DDL: VARCHAR and CHAR(n) ids, INTEGER and NUMERIC, REAL money, a naive TIMESTAMP.
    export = tiny_export()
    write_export(export, postgres_db_url)
    engine = sa.create_engine(postgres_db_url)
    with engine.begin() as connection:
        for statement in (
            "ALTER TABLE accounts ALTER COLUMN account_id TYPE varchar(12)",
            "ALTER TABLE accounts ALTER COLUMN team TYPE char(8)",  # 'early' padded to 8 on the server
            "ALTER TABLE contacts ALTER COLUMN duration_s TYPE integer",
            "ALTER TABLE dues ALTER COLUMN amount_due TYPE real",
            "ALTER TABLE promises ALTER COLUMN promised_amount TYPE numeric(12, 4)",
            "ALTER TABLE payments ALTER COLUMN paid_at TYPE timestamp USING paid_at AT TIME ZONE 'UTC'",
        ):
            connection.exec_driver_sql(statement)
    engine.dispose()
    loaded, report = load_export(postgres_db_url, mode="lenient")
    assert report.rejected["payments"] == len(export.payments)  # a timestamp without its offset, as from text
    assert {violation.rule for violation in report.violations} == {RULE_NAIVE_TIMESTAMP}
    export.payments = export.payments.iloc[:0]
    assert_exports_equal(export, loaded)


@pytest.mark.postgres
def test_postgres_dates_and_times_out_of_range_are_named_as_the_server_writes_them(
    postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import features.io as io

    export = tiny_export()
    write_export(export, postgres_db_url)
    engine = sa.create_engine(postgres_db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE payments SET paid_at = 'infinity' WHERE payment_id = 'P1'")
        connection.exec_driver_sql("UPDATE contacts SET started_at = '-infinity' WHERE contact_id = 'K1'")
        connection.exec_driver_sql("UPDATE dues SET due_date = '12000-01-01' WHERE ctid = (SELECT min(ctid) FROM dues)")
        connection.exec_driver_sql("UPDATE accounts SET opened_date = '0044-03-15 BC' WHERE account_id = 'A2'")
        # A date column kept as a naive TIMESTAMP: midnight is its date, as from a Parquet timestamp; a time is not.
        connection.exec_driver_sql("ALTER TABLE promises ALTER COLUMN promised_date TYPE timestamp")
        connection.exec_driver_sql(
            "UPDATE promises SET promised_date = promised_date + '9 hours' WHERE promise_id = 'R1'"
        )
    engine.dispose()
    monkeypatch.setattr(io, "_PG_SPLIT_BYTES", 0)  # contacts in ranges: only the one holding K1 read as text
    check = check_export(postgres_db_url)
    shown = {(v.table, v.row, v.column): (v.rule, v.value) for v in check.violations}
    assert shown[("payments", "P1", "paid_at")] == (RULE_TIMESTAMP, "infinity")
    assert shown[("contacts", "K1", "started_at")] == (RULE_TIMESTAMP, "-infinity")
    assert ("dues", RULE_DATE, "12000-01-01") in {(t, rule, value) for (t, _, _), (rule, value) in shown.items()}
    assert shown[("accounts", "A2", "opened_date")] == (RULE_DATE, "0044-03-15 BC")
    assert [key for key in shown if key[0] == "promises"] == [("promises", "R1", "promised_date")]
    assert shown[("promises", "R1", "promised_date")] == (RULE_DATE, "2026-11-11 09:00:00")
    # One contact's time is out of range; the rest of its part, read again as text, is read as before.
    assert check.tables["contacts"].reasons.str.contains("started_at", na=False).sum() == 1


@pytest.mark.postgres
def test_postgres_enumerated_columns_read_packed_and_values_outside_the_contract_named(
    postgres_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import features.io as io

    export = simulate(SimulationConfig(n_accounts=150, days=60, seed=5)).export
    write_export(export, postgres_db_url)
    write_export(export, tmp_path)
    from_parquet, _ = load_export(tmp_path)
    engine = sa.create_engine(postgres_db_url)
    with engine.begin() as connection:  # a case system's VARCHAR is packed as TEXT is
        connection.exec_driver_sql("ALTER TABLE contacts ALTER COLUMN direction TYPE varchar(16)")
        connection.exec_driver_sql("ALTER TABLE contacts ALTER COLUMN direction DROP NOT NULL")
    monkeypatch.setattr(io, "_PG_SPLIT_BYTES", 0)
    monkeypatch.setattr(io, "_pg_readers", lambda: 3)
    queries: list[str] = []
    fetch_query = io._adbc_fetch_query

    def recorded(cursor, part, *, packed, times_as_text):
        queries.append(f"{part.table} plain" if part.packed and not packed else part.table)
        return fetch_query(cursor, part, packed=packed, times_as_text=times_as_text)

    monkeypatch.setattr(io, "_adbc_fetch_query", recorded)
    loaded, _ = load_export(postgres_db_url)
    assert_exports_equal(from_parquet, loaded)
    assert queries.count("contacts") == 3 and not any("plain" in query for query in queries)
    assert loaded.contacts["direction"].isna().sum() == export.contacts["direction"].isna().sum()

    last = export.contacts["contact_id"].iloc[-1]
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE contacts SET channel = 'Call ', direction = NULL WHERE contact_id = '{last}'"
        )
        connection.exec_driver_sql("UPDATE payments SET status = '' WHERE ctid = (SELECT min(ctid) FROM payments)")
    engine.dispose()
    queries.clear()
    check = check_export(postgres_db_url)
    shown = {(v.table, v.column): (v.rule, v.value) for v in check.violations}
    assert shown[("contacts", "channel")] == ("not one of call, sms, email, letter, visit", "Call ")
    assert shown[("contacts", "direction")][0] == RULE_NULL
    assert shown[("payments", "status")][1] == ""
    assert {(v.table, v.column) for v in check.violations} == {
        ("contacts", "channel"),
        ("contacts", "direction"),
        ("payments", "status"),
    }
    # Only the parts holding a value outside the contract were read again, unpacked.
    assert sorted(query for query in queries if "plain" in query) == ["contacts plain", "payments plain"]

    with sa.create_engine(postgres_db_url).begin() as connection:  # an empty table is typed as a full one
        connection.exec_driver_sql("DELETE FROM payments")
    emptied, _ = load_export(postgres_db_url, mode="lenient")
    assert len(emptied.payments) == 0
    assert emptied.payments.dtypes.to_dict() == from_parquet.payments.dtypes.to_dict()


def test_parquet_dates_and_times_out_of_range_are_refused(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path)
    for name, column, value in (("dues", "due_date", "date"), ("contacts", "started_at", "timestamp")):
        table = pq.read_table(tmp_path / f"{name}.parquet")
        values = table.column(column).to_pylist()
        far = dt.date(9999, 12, 31) if value == "date" else dt.datetime(1500, 1, 1, tzinfo=dt.UTC)
        values[0] = far
        table = table.set_column(
            table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type)
        )
        pq.write_table(table, tmp_path / f"{name}.parquet")
    check = check_export(tmp_path)
    shown = {(v.table, v.column): (v.rule, v.value) for v in check.violations}
    assert shown[("dues", "due_date")] == (RULE_DATE, "9999-12-31 00:00:00")
    assert shown[("contacts", "started_at")] == (RULE_TIMESTAMP, "1500-01-01 00:00:00+00:00")


def test_a_nan_in_a_parquet_money_column_is_refused_as_not_a_number_not_read_as_missing(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path)
    for name, column in (("payments", "amount"), ("accounts", "credit_limit")):  # required, nullable
        table = pq.read_table(tmp_path / f"{name}.parquet")
        values = table.column(column).to_pylist()
        values[0], values[1] = float("nan"), None  # a NaN beside a null: Parquet keeps them apart
        array = pa.array(values, pa.float64(), from_pandas=False)
        pq.write_table(
            table.set_column(table.schema.get_field_index(column), column, array), tmp_path / f"{name}.parquet"
        )
    check = check_export(tmp_path)
    shown = {(v.table, v.column, v.rule, v.value) for v in check.violations}
    assert ("payments", "amount", RULE_NUMBER, "nan") in shown and ("payments", "amount", RULE_NULL, "") in shown
    # The nullable credit limit: the NaN is refused, the null ("no limit") is not.
    assert [(v.rule, v.value) for v in check.violations if v.column == "credit_limit"] == [(RULE_NUMBER, "nan")]


@pytest.mark.postgres
def test_postgres_refusing_a_read_is_one_line_naming_the_database(postgres_db_url: str) -> None:
    write_export(tiny_export(), postgres_db_url)
    engine = sa.create_engine(postgres_db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("DROP ROLE IF EXISTS callq_reader")
        connection.exec_driver_sql("CREATE ROLE callq_reader LOGIN")
        for table in ("accounts", "dues", "payments", "promises", "export_meta"):  # not contacts
            connection.exec_driver_sql(f"GRANT SELECT ON {table} TO callq_reader")
    reader = sa.engine.make_url(postgres_db_url).set(username="callq_reader", password=None)
    try:
        with pytest.raises(ExportError, match=r"^export .*callq_reader.*: cannot read \(.*permission denied") as caught:
            load_export(reader.render_as_string(hide_password=False))
        assert "\n" not in str(caught.value)
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql("DROP OWNED BY callq_reader")
            connection.exec_driver_sql("DROP ROLE callq_reader")
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_accounts_read_from_sql_come_in_id_order_whatever_the_storage_order(kind, tmp_path, request) -> None:
    url = _sql_url(kind, tmp_path, request)
    export = tiny_export()
    write_export(export, url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # A1 deleted and inserted again: now last in the table's storage
        connection.execute(sa.text("CREATE TEMPORARY TABLE moved AS SELECT * FROM accounts WHERE account_id = 'A1'"))
        connection.execute(sa.text("DELETE FROM accounts WHERE account_id = 'A1'"))
        connection.execute(sa.text("INSERT INTO accounts SELECT * FROM moved"))
        stored = connection.execute(sa.text("SELECT account_id FROM accounts")).scalars().all()
    engine.dispose()
    assert stored[-1] == "A1"
    loaded, _ = load_export(url)
    assert_exports_equal(export, loaded)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_numeric_account_ids_come_in_the_order_of_their_text(kind, tmp_path, request) -> None:
    url = _sql_url(kind, tmp_path, request)
    write_export(tiny_export(), url)
    numbers = {"A1": "9", "A2": "10", "A3": "100", "A4": "11", "A5": "2"}
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for table in TABLES:
            for old, new in numbers.items():
                update = f"UPDATE {table} SET account_id = :new WHERE account_id = :old"
                connection.execute(sa.text(update), {"new": new, "old": old})
        if kind == "postgres":  # a case system keeping numeric ids as numbers
            connection.exec_driver_sql(
                "ALTER TABLE accounts ALTER COLUMN account_id TYPE bigint USING account_id::bigint"
            )
    engine.dispose()
    loaded, _ = load_export(url)
    assert loaded.accounts["account_id"].tolist() == ["10", "100", "11", "2", "9"]


def test_csv_layout_follows_the_contract(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path, fmt="csv")
    assert json.loads((tmp_path / "export.json").read_text()) == {
        "contract_version": "1",
        "as_of": "2026-11-23T00:00:00Z",
    }
    payments = (tmp_path / "payments.csv").read_text().splitlines()
    assert payments[0] == '"payment_id","account_id","paid_at","amount","status","channel"'
    assert payments[1] == '"P1","A1","2026-09-25T03:00:00Z","500.00","settled","bank_transfer"'
    assert payments[3].endswith('"600.10","settled",')  # null channel: an empty, unquoted field
    accounts = (tmp_path / "accounts.csv").read_text().splitlines()
    assert ",2025-10-19," in accounts[1] and accounts[1].endswith("false,false,false,false,false,false,false")


def test_rewriting_an_export_in_the_other_format_removes_the_first(tmp_path: Path) -> None:
    export = tiny_export()
    write_export(export, tmp_path, fmt="csv")
    write_export(export, tmp_path, fmt="parquet")
    assert not list(tmp_path.glob("*.csv"))
    assert_exports_equal(export, load_export(tmp_path)[0])
    write_export(export, tmp_path, fmt="csv")
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".*tmp"))


def _plant_faults(directory: Path) -> None:
    """A4 gets a bad time zone (its rows follow it out), P2 a bad amount, K2 an unknown outcome."""
    accounts = pd.read_csv(directory / "accounts.csv", dtype=str, keep_default_na=False)
    accounts.loc[accounts["account_id"] == "A4", "timezone"] = "Mars/Olympus"
    accounts.to_csv(directory / "accounts.csv", index=False)
    payments = pd.read_csv(directory / "payments.csv", dtype=str, keep_default_na=False)
    payments.loc[payments["payment_id"] == "P2", "amount"] = "-200"
    payments.to_csv(directory / "payments.csv", index=False)
    contacts = pd.read_csv(directory / "contacts.csv", dtype=str, keep_default_na=False)
    contacts.loc[contacts["contact_id"] == "K2", "outcome"] = "maybe"  # R1 was taken in K2
    contacts.to_csv(directory / "contacts.csv", index=False)


def test_strict_raises_one_line_naming_table_row_column_rule(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path, fmt="csv")
    _plant_faults(tmp_path)
    with pytest.raises(ExportError) as caught:
        load_export(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message == "accounts: row A4: column timezone: not an IANA time zone (value 'Mars/Olympus')"


def test_lenient_drops_bad_rows_and_their_dependants(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    _plant_faults(tmp_path / "export")
    export, report = load_export(tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects")
    assert report.reconciles()
    assert report.rejected == {"accounts": 1, "dues": 1, "payments": 2, "contacts": 2, "promises": 1}
    assert report.accepted == {"accounts": 4, "dues": 6, "payments": 2, "contacts": 3, "promises": 1}
    assert len(report.violations) == 3
    assert "A4" not in set(export.accounts["account_id"]) and "A4" not in set(export.dues["account_id"])
    assert list(export.payments["payment_id"]) == ["P1", "P3"]
    assert list(export.promises["promise_id"]) == ["R2"]

    rejects = {name: pd.read_csv(tmp_path / "rejects" / f"{name}.rejects.csv", dtype=str) for name in TABLES}
    payments = rejects["payments"].set_index("payment_id")
    assert payments.loc["P2", "reason"] == "amount: must be > 0"
    assert payments.loc["P2", "amount"] == "-200"
    assert payments.loc["P4", "reason"] == "account_id: account rejected"
    assert list(rejects["accounts"].columns) == [*export.accounts.columns, "reason", "row"]
    assert rejects["accounts"]["row"].tolist() == ["A4"] and payments.loc["P2", "row"] == "P2"
    assert rejects["contacts"].set_index("contact_id")["reason"].to_dict() == {
        "K2": "outcome: unknown outcome",
        "K5": "account_id: account rejected",
    }
    assert rejects["promises"]["reason"].tolist() == ["contact_id: contact rejected"]
    assert rejects["dues"]["reason"].tolist() == ["account_id: account rejected"]

    # What was kept is a valid export on its own.
    write_export(export, tmp_path / "kept")
    assert check_export(tmp_path / "kept").violations == []


def test_lenient_withholds_every_account_of_a_customer_that_lost_rows(tmp_path: Path) -> None:
    # No list may dial a customer whose no-call flags or call history lost a row (features.io.withheld_accounts).
    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    assert load_export(tmp_path / "export", mode="lenient")[0].withheld == frozenset()
    _plant_faults(tmp_path / "export")  # K2, a contact of A1 (customer C1 with A2), and A4 (C3, alone)
    export, _ = load_export(tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects")
    assert export.withheld == {"A1", "A2"}

    write_export(tiny_export(), tmp_path / "sibling", fmt="csv")
    path = tmp_path / "sibling" / "accounts.csv"
    accounts = pd.read_csv(path, dtype=str, keep_default_na=False)
    accounts.loc[accounts["account_id"] == "A2", ["do_not_call", "timezone"]] = ["true", "Mars/Olympus"]
    accounts.to_csv(path, index=False)
    export, report = load_export(tmp_path / "sibling", mode="lenient", rejects_dir=tmp_path / "rejects-sibling")
    assert report.rejected["accounts"] == 1 and "A2" not in set(export.accounts["account_id"])
    assert export.withheld == {"A1"}  # A2's lost do_not_call may have been the customer's


def test_dropped_columns_are_still_checked_and_kept_in_the_rejects(tmp_path: Path) -> None:
    from features.build import UNREAD_COLUMNS

    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    path = tmp_path / "export" / "contacts.csv"
    contacts = pd.read_csv(path, dtype=str, keep_default_na=False)
    contacts.loc[contacts["contact_id"] == "K4", "duration_s"] = "-5"  # a column the pipeline never reads
    contacts.to_csv(path, index=False)
    with pytest.raises(ExportError, match="contacts: row K4: column duration_s: must be >= 0"):
        load_export(tmp_path / "export", drop=UNREAD_COLUMNS)
    export, report = load_export(
        tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects", drop=UNREAD_COLUMNS
    )
    assert report.rejected["contacts"] == 1 and report.reconciles()
    full, _ = load_export(tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects-full")
    for name in TABLES:
        dropped = set(UNREAD_COLUMNS.get(name, ()))
        assert dropped <= set(full.table(name).columns)
        assert list(export.table(name).columns) == [c for c in full.table(name).columns if c not in dropped]
        pd.testing.assert_frame_equal(export.table(name), full.table(name).drop(columns=list(dropped)))
    rejects = pd.read_csv(tmp_path / "rejects" / "contacts.rejects.csv", dtype=str)
    assert rejects["contact_id"].tolist() == ["K4"] and rejects["duration_s"].tolist() == ["-5"]


def test_unknown_enumerated_values_in_parquet_are_named_and_rejected(tmp_path: Path) -> None:
    # Parquet's enumerated columns are read as categoricals; a value outside the contract is still caught.
    write_export(tiny_export(), tmp_path / "export")
    path = tmp_path / "export" / "contacts.parquet"
    contacts = pd.read_parquet(path)
    contacts["outcome"] = contacts["outcome"].astype("string")
    contacts.loc[contacts["contact_id"] == "K4", "outcome"] = "teleported"
    contacts.loc[contacts["contact_id"] == "K1", "direction"] = None
    contacts.to_parquet(path)
    with pytest.raises(ExportError, match="contacts: row K1: column direction: must not be null"):
        load_export(tmp_path / "export")
    export, report = load_export(tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects")
    assert report.rejected["contacts"] == 2 and report.reconciles()
    rejects = pd.read_csv(tmp_path / "rejects" / "contacts.rejects.csv", dtype=str).set_index("contact_id")
    assert rejects.loc["K4", "outcome"] == "teleported" and rejects.loc["K4", "reason"] == "outcome: unknown outcome"
    assert set(export.contacts["contact_id"]) == {"K2", "K3", "K5"}
    outcome = export.contacts["outcome"]
    assert outcome.notna().all() and isinstance(outcome.dtype, pd.CategoricalDtype)


def test_a_rejected_row_whose_key_is_bad_is_named_as_validate_names_it(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    path = tmp_path / "export" / "payments.csv"
    payments = pd.read_csv(path, dtype=str, keep_default_na=False)
    payments.loc[1, "payment_id"] = " "  # the second data row: no key to name it by
    payments.to_csv(path, index=False)
    named = {v.row for v in check_export(tmp_path / "export").violations if v.table == "payments"}
    load_export(tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects")
    rejects = pd.read_csv(tmp_path / "rejects" / "payments.rejects.csv", dtype=str, keep_default_na=False)
    assert rejects["row"].tolist() == ["#2"] and named == {"#2"}


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_structural_faults_fail_in_both_modes(tmp_path: Path, mode: str) -> None:
    write_export(tiny_export(), tmp_path, fmt="csv")
    dues = pd.read_csv(tmp_path / "dues.csv", dtype=str)
    dues.drop(columns="amount_due").to_csv(tmp_path / "dues.csv", index=False)
    with pytest.raises(ExportError, match=r"^dues: row -: column amount_due: missing column$"):
        load_export(tmp_path, mode=mode)
    (tmp_path / "export.json").unlink()
    with pytest.raises(ExportError, match=r"^export.json: row -: column -: missing table"):
        load_export(tmp_path, mode=mode)


def test_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a directory"):
        load_export(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="mode"):
        load_export(tmp_path, mode="sloppy")


def test_shown_location_hides_a_urls_password() -> None:
    assert (
        shown_location("postgresql+psycopg://u:secret@db/cases#scores") == "postgresql+psycopg://u:***@db/cases#scores"
    )
    assert shown_location("sqlite:///out.db#call_list") == "sqlite:///out.db#call_list"
    assert shown_location(Path("callq-out/scores.parquet")) == "callq-out/scores.parquet"
    # A `#` in the password: the table is after the last one, as the writer reads it (the write went through;
    # naming where must not fail the command, nor show the password).
    assert shown_location("postgresql://u:se#cret@db/cases#scores") == "postgresql://u:***@db/cases#scores"
    assert shown_location("postgresql://u:se#cret@db/cases") == "postgresql://u:***@db/cases"
    assert shown_location("postgresql://u:12#34@db/cases") == "postgresql://u:***@db/cases"


def test_is_sql_url() -> None:
    assert is_sql_url("sqlite:///x.db") and is_sql_url("postgresql+psycopg://u@h/db")
    assert not is_sql_url("exports/today") and not is_sql_url(Path("sqlite:///x.db"))
    assert not is_sql_url("C:\\exports") and not is_sql_url("scores.parquet")


def _call_list(list_date: str, accounts: list[str]) -> pd.DataFrame:
    count = len(accounts)
    call_at = pd.Timestamp(f"{list_date}T01:00:00Z")
    return pd.DataFrame(
        {
            "list_date": pd.Series([pd.Timestamp(list_date)] * count, dtype="datetime64[s]"),
            "rank": range(1, count + 1),
            "account_id": pd.array(accounts, dtype="string"),
            "agent_id": pd.array(["007", None][:count] + ["G1"] * (count - 2), dtype="string"),
            "call_at": pd.Series([call_at + pd.Timedelta(hours=i) for i in range(count)]).astype("datetime64[us, UTC]"),
            "local_hour": [9 + i for i in range(count)],
            "p_contact": [0.25, 1e-7, 0.5][:count],
            "eligible": [True, False, True][:count],
            "reasons": pd.array(["broken promise; 35 DPD", "payday in 2 days", "best at 9:00"][:count], "string"),
        }
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_frame_files_round_trip(tmp_path: Path, suffix: str) -> None:
    frame = _call_list("2026-11-23", ["001", "A2", "A3"])
    target = tmp_path / "out" / f"call_list.{suffix}"
    write_frame(frame, target)
    pd.testing.assert_frame_equal(read_frame(target), frame)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left behind
    if suffix == "parquet":  # the contract's date, not a midnight timestamp, for any Parquet reader
        assert pq.read_schema(target).field("list_date").type == pa.date32()


@pytest.mark.parametrize("target", ["list.csv", "list.parquet", "sqlite:///{tmp}/case.db#call_list"])
def test_an_empty_or_all_null_output_reads_back_with_its_outputs_types(tmp_path: Path, target: str) -> None:
    target = target.format(tmp=tmp_path) if "{" in target else str(tmp_path / target)
    empty = CALL_LIST_SCHEMA.empty_table().to_pandas()
    write_frame(empty, target, schema=CALL_LIST_SCHEMA)
    full = _call_list("2026-11-23", ["A1", "A2"])
    typed = {name: str(dtype) for name, dtype in read_frame(target).dtypes.items()}
    assert typed["list_date"] == "datetime64[s]" and typed["call_at"] == "datetime64[us, UTC]"
    assert typed["rank"] == typed["local_hour"] == "int64" and typed["p_contact"] == "float64"
    assert all(typed[name] == str(dtype) for name, dtype in full.dtypes.items() if name in typed)
    # A list whose agent and hour columns are all null keeps them typed (nullable), not as text.
    nulls = full.assign(agent_id=pd.array([None, None], dtype="string"), local_hour=pd.array([None, None], "Int64"))
    write_frame(nulls.reindex(columns=CALL_LIST_SCHEMA.names), target, schema=CALL_LIST_SCHEMA)
    stored = read_frame(target)
    assert str(stored["local_hour"].dtype) == "Int64" and str(stored["agent_id"].dtype) == "string"


@pytest.mark.postgres
def test_frame_postgres_round_trip_keeps_nulls_empty_text_and_quotes(postgres_db_url: str) -> None:
    frame = _call_list("2026-11-23", ["001", "A2", "A3"])
    frame["reasons"] = pd.array(['promise broken "yesterday", call', "", None], dtype="string")
    target = f"{postgres_db_url}#call_list"
    write_frame(frame, target)
    write_frame(frame.iloc[:1], target)  # appended to the table the first write created
    stored = read_frame(target)
    pd.testing.assert_frame_equal(stored.iloc[:3], frame)
    pd.testing.assert_frame_equal(stored.iloc[3:].reset_index(drop=True), frame.iloc[:1])
    types = _column_types(postgres_db_url, "call_list")
    assert types["list_date"] == "date" and types["call_at"] == "timestamp with time zone"
    assert types["eligible"] == "boolean" and types["agent_id"] == "text"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_are_as_readable_as_the_umask_allows(tmp_path: Path, umask: int) -> None:
    # Files are staged as temporary files and renamed: they must not keep a temporary file's owner-only
    # mode, or the case system reading the list (or the export) as another user cannot open it.
    previous = os.umask(umask)
    try:
        write_frame(_call_list("2026-11-23", ["A1"]), tmp_path / "list.csv")
        write_frame(_call_list("2026-11-23", ["A1"]), tmp_path / "list.parquet")
        write_export(tiny_export(), tmp_path / "export")
    finally:
        os.umask(previous)
    written = [tmp_path / "list.csv", tmp_path / "list.parquet", *sorted((tmp_path / "export").iterdir())]
    assert {path.name: path.stat().st_mode & 0o777 for path in written} == {
        path.name: 0o666 & ~umask for path in written
    }


def test_frame_target_must_be_csv_parquet_or_url_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="end in .csv or .parquet"):
        write_frame(_call_list("2026-11-23", ["A1"]), tmp_path / "list.xlsx")
    with pytest.raises(ValueError, match="URL#table"):
        write_frame(_call_list("2026-11-23", ["A1"]), f"sqlite:///{tmp_path / 'x.db'}")


def _replace_by_date(url: str) -> None:
    target = f"{url}#call_list"
    write_frame(_call_list("2026-11-23", ["A1", "A2", "A3"]), target, replace_where={"list_date": "2026-11-23"})
    write_frame(_call_list("2026-11-24", ["A1", "A2"]), target, replace_where={"list_date": "2026-11-24"})
    rerun = _call_list("2026-11-23", ["B1", "B2"])
    write_frame(rerun, target, replace_where={"list_date": pd.Timestamp("2026-11-23")})
    stored = read_frame(target).sort_values(["list_date", "rank"]).reset_index(drop=True)
    assert len(stored) == 4
    assert list(stored["account_id"]) == ["B1", "B2", "A1", "A2"]
    assert stored["list_date"].dtype == "datetime64[s]" and str(stored["call_at"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_series_equal(stored["call_at"].iloc[:2], rerun["call_at"], check_names=False)
    assert stored["agent_id"].iloc[0] == "007"


def test_write_frame_sqlite_replaces_a_dates_rows(tmp_path: Path) -> None:
    _replace_by_date(f"sqlite:///{tmp_path / 'out.db'}")


@pytest.mark.postgres
def test_write_frame_postgres_replaces_a_dates_rows(postgres_db_url: str) -> None:
    _replace_by_date(postgres_db_url)


@pytest.mark.postgres
def test_a_date_replaced_while_another_run_replaces_it_keeps_one_list(postgres_db_url: str) -> None:
    # Each DELETE sees only committed rows: a run that deletes while another's new rows are uncommitted would
    # keep them, and the date would hold two lists (every rank twice).
    target = f"{postgres_db_url}#call_list"
    write_frame(_call_list("2026-11-23", ["A1", "A2"]), target)
    engine = sa.create_engine(postgres_db_url)
    try:
        with engine.connect() as first:
            first.execute(sa.text("DELETE FROM call_list"))
            _call_list("2026-11-23", ["B1", "B2"]).to_sql("call_list", first, if_exists="append", index=False)
            second = threading.Thread(
                target=write_frame,
                args=(_call_list("2026-11-23", ["C1", "C2"]), target),
                kwargs={"replace_where": {"list_date": "2026-11-23"}},
            )
            second.start()
            second.join(timeout=2)
            assert second.is_alive()  # waiting for the first run
            first.commit()
        second.join(timeout=30)
    finally:
        engine.dispose()
    assert sorted(read_frame(target)["account_id"]) == ["C1", "C2"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_write_frame_is_one_transaction(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    url = _sql_url(kind, tmp_path, request)
    write_frame(_call_list("2026-11-23", ["A1", "A2"]), f"{url}#call_list")
    broken = _call_list("2026-11-23", ["B1"]).assign(unknown_column=1)
    with pytest.raises((pd.errors.DatabaseError, psycopg.Error), match="unknown_column"):
        write_frame(broken, f"{url}#call_list", replace_where={"list_date": "2026-11-23"})
    assert list(read_frame(f"{url}#call_list")["account_id"]) == ["A1", "A2"]  # the delete rolled back


def test_as_of_with_offset_in_export_json(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path, fmt="csv")
    (tmp_path / "export.json").write_text('{"contract_version": "1", "as_of": "2026-11-23T08:00:00+08:00"}')
    assert load_export(tmp_path)[0].as_of == DEFAULT_AS_OF


@pytest.mark.parametrize("kind", ["csv", "parquet", "sqlite", "postgres"])
def test_empty_tables_round_trip(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    export = tiny_export()
    export.promises = export.promises.iloc[:0]
    export.payments = export.payments.iloc[:0]
    target = _sql_url(kind, tmp_path, request) if kind in ("sqlite", "postgres") else tmp_path / "export"
    write_export(export, target, fmt="csv" if kind == "csv" else "parquet")
    loaded, report = load_export(target)
    assert_exports_equal(export, loaded)
    assert report.read["promises"] == report.read["payments"] == 0


def test_unreadable_sources_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such SQLite database file"):
        load_export(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ExportError, match=r"^export postgresql\+psycopg://u:\*\*\*@/db.*: cannot read \(") as caught:
        load_export(f"postgresql://u:secret@/db?host={tmp_path / 'no-server'}")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)
    write_export(tiny_export(), tmp_path, fmt="csv")
    (tmp_path / "payments.csv").write_bytes(b'"payment_id","account_id"\n"P\xe91","A1"\n')  # Latin-1, not UTF-8
    with pytest.raises(ExportError, match=r"^payments: row -: column -: unreadable file payments.csv \(") as caught:
        check_export(tmp_path)
    assert "\n" not in str(caught.value)


def test_a_table_kept_both_as_parquet_and_as_csv_is_refused(tmp_path: Path) -> None:
    # A stale copy beside the new file: reading either one would silently ignore the other.
    write_export(tiny_export(), tmp_path, fmt="csv")
    write_export(tiny_export(), tmp_path / "parquet", fmt="parquet")
    (tmp_path / "parquet" / "payments.parquet").rename(tmp_path / "payments.parquet")
    with pytest.raises(ExportError, match=r"^payments: row -: column -: both payments.parquet and payments.csv"):
        check_export(tmp_path)


# --- inputs found by an adversarial audit of loading ------------------------------------------------


def test_a_column_named_twice_is_refused_naming_it(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path / "csv", fmt="csv")
    path = tmp_path / "csv" / "accounts.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    path.write_text("\n".join([",".join([*header, "do_not_call"])] + [f"{line},false" for line in lines[1:]]) + "\n")
    for mode in ("strict", "lenient"):
        with pytest.raises(ExportError, match=r"^accounts: row -: column do_not_call: appears more than once in"):
            load_export(tmp_path / "csv", mode=mode)
    write_export(tiny_export(), tmp_path / "pq")
    table = pq.read_table(tmp_path / "pq" / "accounts.parquet")
    pq.write_table(table.append_column("do_not_call", table["do_not_call"]), tmp_path / "pq" / "accounts.parquet")
    with pytest.raises(ExportError, match="column do_not_call: appears more than once in accounts.parquet"):
        load_export(tmp_path / "pq")


@pytest.mark.parametrize(
    ("column", "values", "shown"),
    [
        ("product", pa.array([["card"]] * 5), "a Parquet list<element: string> column"),
        ("account_id", pa.array([1.0, 2.0, 3.0, 4.0, 5.0]), "a Parquet double column"),  # 2^53 + 1 would merge
    ],
)
def test_parquet_text_columns_stored_as_floats_or_lists_are_refused(tmp_path: Path, column, values, shown) -> None:
    write_export(tiny_export(), tmp_path)
    table = pq.read_table(tmp_path / "accounts.parquet")
    pq.write_table(
        table.set_column(table.schema.get_field_index(column), column, values), tmp_path / "accounts.parquet"
    )
    with pytest.raises(ExportError, match=f"accounts: row -: column {column}: {shown}, where the contract has text"):
        load_export(tmp_path)


def test_integers_stay_exact_and_dates_take_ascii_digits_only(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path, fmt="csv")
    contacts = pd.read_csv(tmp_path / "contacts.csv", dtype=str, keep_default_na=False)
    contacts.loc[0, "duration_s"] = "9007199254740993"  # 2^53 + 1: a float would make it ...992
    contacts.loc[1, "duration_s"] = "+9223372036854775807"  # int64's largest, with a sign
    contacts.loc[2, "duration_s"] = ""
    contacts.to_csv(tmp_path / "contacts.csv", index=False)
    export, _ = load_export(tmp_path)
    assert export.contacts["duration_s"].tolist()[:3] == [9007199254740993, 9223372036854775807, pd.NA]
    accounts = pd.read_csv(tmp_path / "accounts.csv", dtype=str, keep_default_na=False)
    accounts.loc[0, "opened_date"] = "２０２４-01-05"  # fullwidth digits
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    with pytest.raises(ExportError, match=f"accounts: row A1: column opened_date: {re.escape(RULE_DATE)}"):
        load_export(tmp_path)


def test_export_json_with_a_bom_is_read_and_a_nan_as_of_is_named(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path)
    meta = json.loads((tmp_path / "export.json").read_text())
    (tmp_path / "export.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(meta).encode())
    assert load_export(tmp_path)[0].as_of == tiny_export().as_of
    (tmp_path / "export.json").write_text('{"contract_version": "1", "as_of": NaN}')
    with pytest.raises(ExportError, match=f"export.json: row -: column as_of: {RULE_TIMESTAMP}"):
        load_export(tmp_path)


def test_a_csv_row_that_does_not_split_is_named_by_line_and_set_aside_when_lenient(tmp_path: Path) -> None:
    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    path = tmp_path / "export" / "contacts.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] += ",surplus"  # the second contact (K2, A1's), on the file's line 3
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = "contacts: row line 3: column -: row does not split into the header's columns (value '9 fields"
    with pytest.raises(ExportError, match=re.escape(message)):
        load_export(tmp_path / "export")
    assert str(check_export(tmp_path / "export").violations[0]).startswith(message)
    export, report = load_export(tmp_path / "export", mode="lenient", rejects_dir=tmp_path / "rejects")
    assert report.reconciles() and report.read["contacts"] == 5 and report.rejected["contacts"] >= 1
    assert "K2" not in set(export.contacts["contact_id"])
    unreadable = pd.read_csv(tmp_path / "rejects" / "contacts.unreadable.csv", dtype=str)
    assert unreadable["line"].tolist() == ["3"] and unreadable.loc[0, "text"].endswith(",surplus")
    assert export.withheld == {"A1", "A2"}  # the lost call was C1's: neither of C1's accounts is dialled
