"""What `callq rank` and `callq score` write: both lists or neither, each output's types, money as plain decimals."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from features.contract import CALL_LIST_SCHEMA, SCORES_SCHEMA, SPECIAL_HANDLING_SCHEMA
from features.io import check_frame_targets, read_frame, write_export, write_frame
from serving.pipeline import day_targets, write_day
from tests.factories import tiny_export
from tests.serving.api_fixtures import small_run


def _rerun(run):
    """The same date ranked again, to fewer calls and no special handling."""
    return dataclasses.replace(run, call_list=run.call_list.iloc[:3], special_handling=run.special_handling.iloc[:0])


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("special", ["list.special.xlsx", "blocker/list.special.csv", "folder.csv"])
def test_a_special_list_that_cannot_be_written_leaves_the_call_list_as_it_was(tmp_path, special):
    run = small_run()
    write_day(run, str(tmp_path / "list.csv"))
    (tmp_path / "blocker").write_text("a file where a folder would have to be\n")
    (tmp_path / "folder.csv").mkdir()
    before = (tmp_path / "list.csv").read_bytes()
    with pytest.raises((ValueError, OSError)):
        write_day(_rerun(run), str(tmp_path / "list.csv"), str(tmp_path / special))
    assert (tmp_path / "list.csv").read_bytes() == before
    assert _files(tmp_path) == ["blocker", "folder.csv", "list.csv", "list.special_handling.csv"]  # no temp file


def _break_special_table(url: str) -> None:
    """A special-handling table of another shape: appending the list's rows to it fails."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE call_list_special_handling"))
            connection.execute(sa.text("CREATE TABLE call_list_special_handling (other TEXT)"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_both_tables_of_one_database_are_written_in_one_transaction(tmp_path, kind, request):
    url = request.getfixturevalue("postgres_db_url") if kind == "postgres" else f"sqlite:///{tmp_path / 'case.db'}"
    run = small_run()
    write_day(run, f"{url}#call_list")
    _break_special_table(url)
    with pytest.raises((sa.exc.SQLAlchemyError, pd.errors.DatabaseError, psycopg.Error)):
        write_day(_rerun(run), f"{url}#call_list")
    assert len(read_frame(f"{url}#call_list")) == len(run.call_list)  # the date's rows were not replaced


def test_a_table_created_by_a_failed_write_is_not_left_behind(tmp_path):
    # SQLite's driver commits a CREATE TABLE on its own: the new call-list table must go with the rest.
    url = f"sqlite:///{tmp_path / 'case.db'}"
    write_day(small_run(), f"{url}#call_list")
    _break_special_table(url)
    with pytest.raises((sa.exc.SQLAlchemyError, pd.errors.DatabaseError)):
        write_day(small_run(), f"{url}#new_list", f"{url}#call_list_special_handling")
    engine = sa.create_engine(url)
    try:
        assert not sa.inspect(engine).has_table("new_list")
    finally:
        engine.dispose()


def test_one_database_named_two_ways_is_written_in_one_transaction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = small_run()
    write_day(run, f"sqlite:///{tmp_path / 'case.db'}#call_list", "sqlite:///case.db#special")  # was: locked
    assert len(read_frame("sqlite:///case.db#call_list")) == len(run.call_list)
    assert len(read_frame(f"sqlite:///{tmp_path / 'case.db'}#special")) == len(run.special_handling)


@pytest.mark.parametrize(
    ("call_list", "special"),
    [
        ("list.csv", "./sub/../list.csv"),  # one file, two spellings: one list would replace the other
        ("sqlite:///case.db#call_list", "sqlite:///{tmp}/case.db#CALL_LIST"),  # SQLite's names ignore case
    ],
)
def test_the_two_lists_are_refused_one_target(tmp_path, monkeypatch, call_list, special):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="two outputs name the same target"):
        day_targets(call_list, special.format(tmp=tmp_path))
    assert _files(tmp_path) == ["sub"]


def test_a_call_list_file_is_not_replaced_when_the_special_table_fails(tmp_path):
    url = f"sqlite:///{tmp_path / 'case.db'}"
    run = small_run()
    write_day(run, str(tmp_path / "list.csv"), f"{url}#call_list_special_handling")
    _break_special_table(url)
    before = (tmp_path / "list.csv").read_bytes()
    with pytest.raises((sa.exc.SQLAlchemyError, pd.errors.DatabaseError)):
        write_day(_rerun(run), str(tmp_path / "list.csv"), f"{url}#call_list_special_handling")
    assert (tmp_path / "list.csv").read_bytes() == before
    assert _files(tmp_path) == ["case.db", "list.csv"]


def test_rewriting_a_day_replaces_both_files(tmp_path):
    run = small_run()
    write_day(run, str(tmp_path / "list.parquet"))
    write_day(_rerun(run), str(tmp_path / "list.parquet"))
    assert len(pd.read_parquet(tmp_path / "list.parquet")) == 3
    assert pd.read_parquet(tmp_path / "list.special_handling.parquet").empty


def test_empty_outputs_have_the_schema_of_full_ones(tmp_path):
    # An empty run's frames hold untyped (object) columns: pandas alone would write them as Arrow `null`.
    run = small_run()
    empty = dataclasses.replace(
        run,
        call_list=pd.DataFrame(columns=run.call_list.columns),
        special_handling=pd.DataFrame(columns=run.special_handling.columns),
    )
    write_day(run, str(tmp_path / "full.parquet"))
    write_day(empty, str(tmp_path / "empty.parquet"))
    write_frame(run.scores, tmp_path / "scores.parquet", schema=SCORES_SCHEMA)
    write_frame(pd.DataFrame(columns=run.scores.columns), tmp_path / "no_scores.parquet", schema=SCORES_SCHEMA)
    for full, none, schema in (
        ("full.parquet", "empty.parquet", CALL_LIST_SCHEMA),
        ("full.special_handling.parquet", "empty.special_handling.parquet", SPECIAL_HANDLING_SCHEMA),
        ("scores.parquet", "no_scores.parquet", SCORES_SCHEMA),
    ):
        tables = [pq.read_table(tmp_path / name) for name in (full, none)]
        assert [table.schema.remove_metadata() for table in tables] == [schema, schema], full
        assert pa.concat_tables(tables).num_rows == tables[0].num_rows
    assert pq.read_schema(tmp_path / "full.special_handling.parquet").field("days_past_due").type == pa.int64()


def test_money_is_written_as_plain_decimals_however_large(tmp_path):
    run = small_run()
    large = [15_000_003_916.95, 9_999_999_999_999.99, 0.1 + 0.2]
    calls = run.call_list.iloc[:3].assign(amount_overdue=large)
    special = run.special_handling.assign(amount_overdue=large[:2])
    write_day(dataclasses.replace(run, call_list=calls, special_handling=special), str(tmp_path / "list.csv"))
    write_frame(run.scores.iloc[:3].assign(amount_overdue=large), tmp_path / "scores.csv", schema=SCORES_SCHEMA)
    for name, count in (("list.csv", 3), ("list.special_handling.csv", 2), ("scores.csv", 3)):
        written = pd.read_csv(tmp_path / name, dtype=str)["amount_overdue"].tolist()
        assert written == ["15000003916.95", "9999999999999.99", "0.30"][:count], name
        assert read_frame(tmp_path / name)["amount_overdue"].tolist() == pytest.approx(large[:count])


@pytest.mark.postgres
def test_money_sent_to_postgres_through_copy_is_plain_decimals(postgres_db_url):
    calls = small_run().call_list.iloc[:3].assign(amount_overdue=[15_000_003_916.95, 9_999_999_999_999.99, 0.1 + 0.2])
    engine = sa.create_engine(postgres_db_url)
    try:
        with engine.begin() as connection:  # a case system's own table, keeping what COPY sends as text
            columns = ", ".join(f"{name} TEXT" for name in calls.columns)
            connection.execute(sa.text(f"CREATE TABLE call_list ({columns})"))
        write_frame(calls, f"{postgres_db_url}#call_list", schema=CALL_LIST_SCHEMA)
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT amount_overdue FROM call_list ORDER BY rank::int")).scalars()
            assert list(stored) == ["15000003916.95", "9999999999999.99", "0.30"]
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------
# Where an output may land: never on the export being read; through a symlink to its target.


@pytest.fixture
def export_dir(tmp_path) -> Path:
    write_export(tiny_export(), tmp_path / "export", fmt="csv")
    return tmp_path / "export"


@pytest.mark.parametrize(
    "name",
    [
        "accounts.csv",  # the table file itself
        "payments.parquet",  # the other format: the reader would prefer it to the CSV the export holds
        "./sub/../promises.csv",  # another spelling of the same file
        "linked.csv",  # a link to one of its files
    ],
)
def test_an_output_is_refused_a_file_of_the_export_it_reads(export_dir, name):
    (export_dir / "sub").mkdir()
    (export_dir / "linked.csv").symlink_to(export_dir / "dues.csv")
    before = {path.name: path.read_bytes() for path in export_dir.iterdir() if path.is_file()}
    target = str(export_dir / name)
    for attempt in (
        lambda: check_frame_targets([target], protect=str(export_dir)),
        lambda: write_frame(small_run().scores, target, schema=SCORES_SCHEMA, protect=export_dir),
        lambda: day_targets(str(export_dir / "list.csv"), target, protect=str(export_dir)),
        lambda: write_day(small_run(), target, protect=str(export_dir)),
    ):
        with pytest.raises(ValueError, match="would replace the export's own"):
            attempt()
    assert {path.name: path.read_bytes() for path in export_dir.iterdir() if path.is_file()} == before
    # Beside the export is fine, as is its folder for an output of another name; without `protect`, as before.
    check_frame_targets([export_dir / "scores.csv", export_dir.parent / "accounts.csv"], protect=str(export_dir))
    check_frame_targets([target])


@pytest.mark.parametrize("table", ["accounts", "Promises", "export_meta"])
def test_an_output_is_refused_a_table_of_the_sql_export_it_reads(tmp_path, monkeypatch, table):
    monkeypatch.chdir(tmp_path)
    write_export(tiny_export(), f"sqlite:///{tmp_path / 'case.db'}")
    before = (tmp_path / "case.db").read_bytes()
    source = "sqlite:///case.db"  # the same database named by a relative path
    target = f"sqlite:///{tmp_path / 'case.db'}#{table}"  # SQLite's names ignore case
    with pytest.raises(ValueError, match="would replace the export's own"):
        day_targets("sqlite:///case.db#call_list", target, protect=source)
    with pytest.raises(ValueError, match="would replace the export's own"):
        write_day(small_run(), target, protect=source)
    assert (tmp_path / "case.db").read_bytes() == before
    written = write_day(small_run(), f"{source}#call_list", protect=source)  # its own tables in the same database
    assert len(read_frame(written.special_handling)) == len(small_run().special_handling)
    check_frame_targets([f"sqlite:///{tmp_path / 'other.db'}#{table}"], protect=source)  # another database


def test_a_symlinked_output_is_written_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "list.csv").write_text("old\n")
    (tmp_path / "list.csv").symlink_to("real/list.csv")  # relative, as `ln -s` makes them
    (tmp_path / "scores.parquet").symlink_to(tmp_path / "real" / "scores.parquet")  # dangling, its folder there
    run = small_run()
    write_day(run, str(tmp_path / "list.csv"), str(tmp_path / "special.csv"))
    write_frame(run.scores, tmp_path / "scores.parquet", schema=SCORES_SCHEMA)
    for link in ("list.csv", "scores.parquet"):
        assert (tmp_path / link).is_symlink(), link
    assert len(read_frame(tmp_path / "real" / "list.csv")) == len(run.call_list)
    assert len(read_frame(tmp_path / "real" / "scores.parquet")) == len(run.scores)
    assert _files(tmp_path / "real") == ["list.csv", "scores.parquet"]  # no temp file left
    assert _files(tmp_path) == ["list.csv", "real", "scores.parquet", "special.csv"]


def test_a_dangling_symlink_into_a_missing_folder_is_refused_before_any_write(tmp_path):
    (tmp_path / "list.csv").symlink_to(tmp_path / "gone" / "list.csv")
    with pytest.raises(FileNotFoundError) as raised:
        day_targets(str(tmp_path / "list.csv"))
    assert raised.value.filename == str(tmp_path / "list.csv")
    with pytest.raises(FileNotFoundError):
        write_day(small_run(), str(tmp_path / "list.csv"))
    assert _files(tmp_path) == ["list.csv"]  # no folder made for it, the link left as it was
    assert not (tmp_path / "gone").exists()


def test_an_output_under_a_file_is_refused_before_any_write(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder would have to be\n")
    with pytest.raises(NotADirectoryError) as raised:
        check_frame_targets([tmp_path / "blocker" / "deeper" / "list.csv"])
    assert raised.value.filename == str(tmp_path / "blocker" / "deeper" / "list.csv")


def test_a_missing_folder_is_made_for_an_output_and_removed_when_the_write_fails(tmp_path):
    url = f"sqlite:///{tmp_path / 'case.db'}"
    run = small_run()
    write_day(run, str(tmp_path / "new" / "deeper" / "list.csv"))  # made, as score and features make theirs
    assert len(read_frame(tmp_path / "new" / "deeper" / "list.csv")) == len(run.call_list)
    write_day(run, f"{url}#call_list")
    _break_special_table(url)
    with pytest.raises((sa.exc.SQLAlchemyError, pd.errors.DatabaseError)):
        write_day(run, str(tmp_path / "other" / "list.csv"), f"{url}#call_list_special_handling")
    assert _files(tmp_path) == ["case.db", "new"]  # neither a temp file nor an empty folder left


def test_an_unwritable_folder_is_named_in_one_line_before_any_write(tmp_path, monkeypatch):
    # As root (the CI's containers) chmod does not stop a write: the folder's access is what callq asks.
    (tmp_path / "locked").mkdir()
    real_access = os.access

    def access(path, mode, **kw):
        return Path(path) != tmp_path / "locked" and real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    target = tmp_path / "locked" / "sub" / "list.csv"
    with pytest.raises(PermissionError) as raised:
        check_frame_targets([target])
    assert raised.value.filename == str(target)
    assert "\n" not in str(raised.value)


def test_a_refused_temporary_file_is_named_by_its_target(tmp_path, monkeypatch):
    # The folder refuses the temporary file (a read-only mount, an ACL): the error names the output, not
    # `.list.csv.<random>.tmp`, which the user never asked for.
    real_open = os.open

    def refuse(path, flags, mode=0o777, **kw):
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError) as raised:
        write_frame(small_run().scores, tmp_path / "scores.csv", schema=SCORES_SCHEMA)
    assert raised.value.filename == str(tmp_path / "scores.csv")
    assert _files(tmp_path) == []
