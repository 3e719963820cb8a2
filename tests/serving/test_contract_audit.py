"""Audit of callq's outputs against the case-system contract (CONTRACT.md sections 3 and 4) and the README's
promises about where they land: one table however its database is named, an output's column types in the
tables callq creates, rejected rows a case system can read back and reconcile on a rerun."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from features.contract import CALL_LIST_SCHEMA, SCORES_SCHEMA, SPECIAL_HANDLING_SCHEMA
from features.io import check_frame_targets, load_export, read_frame, write_export, write_frame
from serving.pipeline import day_targets, write_day
from tests.factories import tiny_export
from tests.serving.api_fixtures import small_run

# ---------------------------------------------------------------------------------------
# Two outputs landing on one table


@pytest.mark.parametrize(
    "other",
    [
        "postgresql://bob:other-secret@db.example.com/cases#call_list",  # another user and password
        "postgresql+psycopg://alice:s3cret@DB.example.com:5432/cases#call_list",  # driver, host case, default port
        "postgres://alice@db.example.com/cases#call_list",  # no password, the short scheme
    ],
)
def test_two_outputs_to_one_table_reached_by_other_credentials_or_spellings_are_refused(other):
    first = "postgresql://alice:s3cret@db.example.com/cases#call_list"
    with pytest.raises(ValueError, match="two outputs name the same target"):
        check_frame_targets([first, other])
    with pytest.raises(ValueError, match="two outputs name the same target"):
        day_targets(first, other)
    # Another table, or the same table name in another database or on another server, is another place.
    check_frame_targets([first, other.replace("#call_list", "#special")])
    check_frame_targets([first, other.replace("/cases#", "/archive#")])
    check_frame_targets([first, other.replace("db.example.com", "replica.example.com").replace("DB.", "replica.")])


# ---------------------------------------------------------------------------------------
# The tables callq creates for its outputs


def _empty(run):
    """The same day with nothing to call and no special handling: frames of untyped (object) columns."""
    return dataclasses.replace(
        run,
        call_list=pd.DataFrame(columns=run.call_list.columns),
        special_handling=pd.DataFrame(columns=run.special_handling.columns),
    )


_SQLITE_TYPES = {"large_string": "TEXT", "date32[day]": "TEXT", "timestamp[us, tz=UTC]": "TEXT"}
_SQLITE_TYPES |= {"int64": "BIGINT", "double": "FLOAT", "bool": "BOOLEAN"}
_POSTGRES_TYPES = {"large_string": "text", "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamp with time zone"}
_POSTGRES_TYPES |= {"int64": "bigint", "double": "double precision", "bool": "boolean"}


def _declared_types(url: str, table: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                return {row[1]: row[2] for row in connection.exec_driver_sql(f"PRAGMA table_info({table})")}
            query = "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :table"
            return dict(connection.execute(sa.text(query), {"table": table}).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_empty_first_output_creates_its_table_with_the_outputs_column_types(tmp_path, kind, request):
    # A first run with nothing to call made every column TEXT: SQLite then sorted the next run's ranks as text
    # (1, 10, 11, ..., 2), and PostgreSQL refused to replace the date's rows (text = date).
    url = request.getfixturevalue("postgres_db_url") if kind == "postgres" else f"sqlite:///{tmp_path / 'case.db'}"
    run = small_run()
    write_day(_empty(run), f"{url}#call_list")
    scores, replaced = run.scores, {"as_of": run.scores["as_of"].iloc[0]}
    write_frame(scores.iloc[:0], f"{url}#scores", replace_where=replaced, schema=SCORES_SCHEMA)
    expected = _POSTGRES_TYPES if kind == "postgres" else _SQLITE_TYPES
    for table, schema in (
        ("call_list", CALL_LIST_SCHEMA),
        ("call_list_special_handling", SPECIAL_HANDLING_SCHEMA),
        ("scores", SCORES_SCHEMA),
    ):
        declared = _declared_types(url, table)
        assert list(declared) == schema.names, table  # the output's columns, in its order
        assert declared == {field.name: expected[str(field.type)] for field in schema}, table

    write_day(run, f"{url}#call_list")  # the date ranked again, now with calls: replaces the empty list
    write_frame(scores, f"{url}#scores", replace_where=replaced, schema=SCORES_SCHEMA)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            ranks = connection.execute(sa.text("SELECT rank FROM call_list ORDER BY rank")).scalars().all()
    finally:
        engine.dispose()
    assert ranks == list(range(1, len(run.call_list) + 1))
    stored = read_frame(f"{url}#call_list").sort_values("rank", ignore_index=True)
    assert stored.dtypes.astype(str).to_dict() == {
        "list_date": "datetime64[s]",
        "rank": "int64",
        **{name: "string" for name in ("account_id", "customer_id", "team", "agent_id")},
        "call_at": "datetime64[us, UTC]",
        "local_hour": "int64",
        **{name: "float64" for name in ("p_repay", "p_contact", "expected_value", "amount_overdue")},
        "days_past_due": "int64",
        **{name: "string" for name in ("stage", "reasons", "model_version")},
    }
    assert stored["account_id"].tolist() == run.call_list["account_id"].tolist()
    assert len(read_frame(f"{url}#call_list_special_handling")) == len(run.special_handling)
    assert read_frame(f"{url}#scores")["eligible"].dtype == bool


# ---------------------------------------------------------------------------------------
# Rejected rows


def _unsplittable_contact(folder: Path) -> None:
    """The export's second contact row with a field too many: a row lenient mode sets aside as unreadable."""
    path = folder / "contacts.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] += ",surplus"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_lenient_rerun_leaves_no_stale_unreadable_rows_behind(tmp_path):
    # The rejects folder is what a case system reconciles read = accepted + rejected from: a file of rows that
    # are no longer lost would count them twice on the next run.
    export = tmp_path / "export"
    write_export(tiny_export(), export, fmt="csv")
    _unsplittable_contact(export)
    _, first = load_export(export, mode="lenient", rejects_dir=tmp_path / "rejects")
    assert first.rejected["contacts"] >= 1 and (tmp_path / "rejects" / "contacts.unreadable.csv").exists()

    write_export(tiny_export(), export, fmt="csv")  # the case system fixed the file
    _, again = load_export(export, mode="lenient", rejects_dir=tmp_path / "rejects")
    assert again.rejected == dict.fromkeys(again.read, 0)
    assert sorted(path.name for path in (tmp_path / "rejects").iterdir()) == [
        f"{name}.rejects.csv" for name in sorted(again.read)
    ]
    for name, count in again.read.items():  # every file agrees with the counts: nothing rejected
        assert len(pd.read_csv(tmp_path / "rejects" / f"{name}.rejects.csv")) == again.rejected[name] == 0, count


def test_rejected_rows_of_a_parquet_export_are_written_in_the_contracts_csv_forms(tmp_path):
    # Contract section 1: in CSV, booleans are true/false and timestamps ISO-8601 with an offset. A row rejected
    # from a Parquet export is written as a CSV export would hold it (pandas would write True and a space).
    export = tmp_path / "export"
    write_export(tiny_export(), export, fmt="parquet")
    accounts = pd.read_parquet(export / "accounts.parquet")
    accounts.loc[accounts["account_id"] == "A5", "timezone"] = "Mars/Olympus"
    accounts.to_parquet(export / "accounts.parquet", index=False)
    payments = pd.read_parquet(export / "payments.parquet")
    payments.loc[payments["payment_id"] == "P3", "amount"] = -5.0
    payments.to_parquet(export / "payments.parquet", index=False)

    _, report = load_export(export, mode="lenient", rejects_dir=tmp_path / "rejects")
    assert report.reconciles() and report.rejected["accounts"] == 1 and report.rejected["payments"] == 1
    account = pd.read_csv(tmp_path / "rejects" / "accounts.rejects.csv", dtype=str, keep_default_na=False)
    assert account.loc[0, "row"] == "A5" and account.loc[0, "timezone"] == "Mars/Olympus"
    assert account.loc[0, ["do_not_call", "hardship", "deceased"]].tolist() == ["false"] * 3
    payment = pd.read_csv(tmp_path / "rejects" / "payments.rejects.csv", dtype=str, keep_default_na=False)
    expected = tiny_export().payments.set_index("payment_id").loc["P3", "paid_at"]
    assert payment.loc[0, "paid_at"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert payment.loc[0, "reason"] == "amount: must be > 0" and payment.loc[0, "channel"] == ""


# ---------------------------------------------------------------------------------------
# The batch commands end to end, field by field (contract sections 3 and 4)


def _flags(text: pd.Series) -> pd.Series:
    """Contract booleans as written to CSV (`true`/`false`), refusing anything else."""
    values = text.map({"true": True, "false": False})
    assert values.notna().all(), sorted(set(text[values.isna()]))
    return values.astype(bool)


def _check_scores(scores: pd.DataFrame, export, eligible: pd.Series) -> None:
    """Contract `scores`: one row per account, each field of its type and range."""
    assert list(scores.columns) == list(SCORES_SCHEMA.names)
    assert sorted(scores["account_id"].astype(str)) == sorted(export.accounts["account_id"].astype(str))
    assert (pd.to_datetime(scores["as_of"], utc=True, format="ISO8601") == export.as_of).all()
    p_repay, p_best = scores["p_repay"].astype(float), scores["p_contact_best"].astype(float)
    hour = pd.to_numeric(scores["best_hour_local"]).astype("Int64")
    assert p_repay.between(0, 1).all() and p_best.dropna().between(0, 1).all()
    assert hour.dropna().between(0, 23).all() and (hour.isna() == p_best.isna()).all()
    assert not (hour.notna() & ~eligible.to_numpy()).any()  # a best hour only where a call is allowed
    for name in ("account_id", "amount_overdue", "days_past_due", "stage", "model_version"):
        assert scores[name].notna().all(), name
    days = pd.to_numeric(scores["days_past_due"])
    assert (days >= 0).all() and ((days == 0) == (scores["amount_overdue"].astype(float) == 0)).all()


def _check_call_list(calls: pd.DataFrame, export, operations, list_date: str) -> None:
    """Contract `call_list`: ranks 1..n, slots on the debtor's clock, within each team's hourly capacity."""
    assert list(calls.columns) == list(CALL_LIST_SCHEMA.names)
    assert len(calls) and sorted(pd.to_numeric(calls["rank"])) == list(range(1, len(calls) + 1))
    assert (pd.to_datetime(calls["list_date"]).dt.strftime("%Y-%m-%d") == list_date).all()
    for name in CALL_LIST_SCHEMA.names:
        assert name == "agent_id" or calls[name].notna().all(), name
    accounts = export.accounts.assign(account_id=export.accounts["account_id"].astype(str)).set_index("account_id")
    listed = accounts.loc[calls["account_id"].astype(str)]
    assert (listed["customer_id"].astype(str).to_numpy() == calls["customer_id"].astype(str).to_numpy()).all()
    call_at = pd.to_datetime(calls["call_at"], utc=True, format="ISO8601")
    local = [at.tz_convert(zone).hour for at, zone in zip(call_at, listed["timezone"], strict=True)]
    assert local == pd.to_numeric(calls["local_hour"]).tolist()
    assert calls["p_repay"].astype(float).between(0, 1).all() and calls["p_contact"].astype(float).between(0, 1).all()
    capacity = {team.team: team.hourly_capacity for team in operations.teams}
    per_hour = calls.assign(call_at=call_at).groupby(["team", "call_at"]).size()
    assert all(count <= capacity[team] for (team, _), count in per_hour.items())


@pytest.mark.slow
def test_score_and_rank_outputs_follow_the_contract_field_by_field(trained_book, tmp_path):
    from features.contract import Operations
    from tests.serving.test_cli import callq

    env = {"MLFLOW_TRACKING_URI": trained_book.tracking_uri}
    export, url = trained_book.simulation.export, f"sqlite:///{tmp_path / 'case.db'}"
    scored = callq("score", "--export", trained_book.export_dir, "--out", tmp_path / "scores.csv", env=env)
    assert scored.returncode == 0, scored.stderr
    text = pd.read_csv(tmp_path / "scores.csv", dtype=str, keep_default_na=False, na_values=[""])
    assert text["as_of"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").all()  # ISO-8601 in UTC
    assert text["amount_overdue"].str.fullmatch(r"\d+\.\d{2}").all()  # money: a plain decimal, two places
    _check_scores(text, export, _flags(text["eligible"]))
    for _ in range(2):  # scoring the same export again replaces its scores
        again = callq("score", "--export", trained_book.export_dir, "--out", f"{url}#scores", env=env)
        assert again.returncode == 0, again.stderr
    stored = read_frame(f"{url}#scores")
    _check_scores(stored, export, stored["eligible"])

    operations = Operations.from_yaml(trained_book.ops_path)
    args = ["rank", "--export", trained_book.export_dir, "--ops", trained_book.ops_path, "--date", "2026-11-23"]
    ranked = callq(*args, "--out", tmp_path / "list.csv", env=env)
    assert ranked.returncode == 0, ranked.stderr
    calls = pd.read_csv(tmp_path / "list.csv", dtype=str, keep_default_na=False, na_values=[""])
    assert calls["call_at"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:00:00Z").all()
    assert calls["list_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    _check_call_list(calls, export, operations, "2026-11-23")
    special = pd.read_csv(tmp_path / "list.special_handling.csv", dtype=str, keep_default_na=False)
    assert list(special.columns) == list(SPECIAL_HANDLING_SCHEMA.names)
    assert not set(special["account_id"]) & set(calls["account_id"])  # never both dialled and held back
    for _ in range(2):  # ranking the date again replaces its rows
        to_table = callq(*args, "--out", f"{url}#call_list", env=env)
        assert to_table.returncode == 0, to_table.stderr
    table = read_frame(f"{url}#call_list").sort_values("rank", ignore_index=True)
    pd.testing.assert_series_equal(table["account_id"], calls["account_id"].astype("string"), check_names=False)
    _check_call_list(table, export, operations, "2026-11-23")
