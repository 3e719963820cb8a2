"""CSV exports as real case systems write them: line endings, byte order marks, quoting, headers, empty tables.

Each test writes the tiny export as CSV, rewrites one file the way some writer would, and checks that callq
reads the same data (compared with the Parquet export of the same tables) or refuses it in one line naming
the table, the row and what is wrong.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.contract import SCHEMAS, TABLES
from features.io import ExportError, check_export, load_export, write_export
from features.validate import RULE_MISSING_COLUMN, RULE_UNREADABLE_ROW
from tests.factories import assert_exports_equal, tiny_export


def _csv_export(directory: Path) -> Path:
    write_export(tiny_export(), directory, fmt="csv")
    return directory


def _rewrite(path: Path, change: Callable[[str], str]) -> None:
    path.write_bytes(change(path.read_bytes().decode("utf-8")).encode("utf-8"))


def _text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _same_as_parquet(directory: Path, tmp_path: Path) -> None:
    """The CSV export reads as the Parquet export of the same tables does, and with nothing rejected."""
    write_export(tiny_export(), tmp_path / "parquet")
    expected, _ = load_export(tmp_path / "parquet")
    loaded, report = load_export(directory)
    assert_exports_equal(expected, loaded)
    assert sum(report.rejected.values()) == 0


_DIALECTS: dict[str, Callable[[str], str]] = {
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "bom": lambda text: "\ufeff" + text,
    "no final newline": lambda text: text.rstrip("\n"),
    "a trailing empty line": lambda text: text + "\r\n",
    "an empty line between rows": lambda text: text.replace("\n", "\n\n", 2),
    "empty lines before the header": lambda text: "\r\n\r\n" + text,
    "nothing quoted": lambda text: text.replace('"', ""),
}


@pytest.mark.parametrize("dialect", list(_DIALECTS))
def test_line_endings_bom_and_quoting_read_the_same_data(tmp_path: Path, dialect: str) -> None:
    directory = _csv_export(tmp_path / "csv")
    for name in TABLES:
        _rewrite(directory / f"{name}.csv", _DIALECTS[dialect])
    _same_as_parquet(directory, tmp_path)


def test_every_field_quoted_columns_in_another_order_and_an_extra_column_read_the_same_data(tmp_path: Path) -> None:
    # Columns are found by name; one the contract does not name is ignored, as in Parquet and SQL.
    directory = _csv_export(tmp_path / "csv")
    for name in TABLES:
        frame = _text(directory / f"{name}.csv")
        frame = frame.assign(exported_by="case system")[["exported_by", *reversed(frame.columns)]]
        frame.to_csv(directory / f"{name}.csv", index=False, quoting=csv.QUOTE_ALL)
    _same_as_parquet(directory, tmp_path)


@pytest.mark.parametrize("ending", ["\n", ""])
def test_a_table_with_only_its_header_is_an_empty_table(tmp_path: Path, ending: str) -> None:
    # Some writers end the last line with a newline, some do not: the header alone is an empty table either way.
    directory = _csv_export(tmp_path / "csv")
    header = (directory / "promises.csv").read_text(encoding="utf-8").splitlines()[0]
    (directory / "promises.csv").write_text(header + ending, encoding="utf-8")
    export, report = load_export(directory)
    assert export.promises.empty and list(export.promises.columns) == [c.name for c in SCHEMAS["promises"]]
    assert report.read["promises"] == 0 and report.reconciles()
    assert check_export(directory).ok


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n"])
def test_an_empty_file_is_refused_as_such(tmp_path: Path, content: bytes) -> None:
    # A 0-byte file is what a writer that died leaves: read as "no payments", every debtor would look unpaid.
    directory = _csv_export(tmp_path / "csv")
    (directory / "payments.csv").write_bytes(content)
    message = "payments: row -: column -: payments.csv is empty (no header row; a table without rows is its header)"
    for mode in ("strict", "lenient"):
        with pytest.raises(ExportError, match=f"^{re.escape(message)}$"):
            load_export(directory, mode=mode)


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_another_separator_is_refused_naming_it(tmp_path: Path, separator: str) -> None:
    directory = _csv_export(tmp_path / "csv")
    _rewrite(directory / "dues.csv", lambda text: text.replace('"', "").replace(",", separator))
    header = separator.join(["account_id", "due_date", "amount_due"])
    with pytest.raises(ExportError) as caught:
        check_export(directory)
    assert str(caught.value) == f"dues: row -: column -: dues.csv is not separated by ',' (its header is {header!r})"


@pytest.mark.parametrize("spelled", ["Account_ID", " account_id", "account_id "])
def test_a_header_name_in_another_case_or_with_spaces_is_named(tmp_path: Path, spelled: str) -> None:
    # Names are exact, as in Parquet and SQL: "missing column" alone sent the integrator to a header that has it.
    directory = _csv_export(tmp_path / "csv")
    _rewrite(directory / "payments.csv", lambda text: text.replace('"account_id"', f'"{spelled}"', 1))
    violations = check_export(directory).violations
    assert [(v.table, v.row, v.column, v.rule, v.value) for v in violations] == [
        ("payments", "-", "account_id", RULE_MISSING_COLUMN, spelled)
    ]
    with pytest.raises(
        ExportError, match=f"^payments: row -: column account_id: missing column \\(value '{spelled}'\\)$"
    ):
        load_export(directory, mode="lenient")


@pytest.mark.parametrize("product", ["x{i}\n,y,z", "line one {i}\nline two\n"])
def test_line_breaks_in_quoted_values_read_from_a_file_of_many_blocks(tmp_path: Path, product: str) -> None:
    # Arrow splits a file into 1 MiB blocks at line breaks: at one inside a quoted value, a value's second line
    # was read as a row (the first product: refused as an account without an id; one whose fields fit was read
    # as an account), or the file was refused with Arrow's "out of sync with chunker" (the second).
    directory = _csv_export(tmp_path / "csv")
    accounts = _text(directory / "accounts.csv")
    extra = pd.concat([accounts.iloc[[4]]] * 20_000, ignore_index=True)
    extra["account_id"] = [f"B{i}" for i in range(len(extra))]
    extra["product"] = [product.format(i=i) for i in range(len(extra))]
    written = pd.concat([accounts, extra], ignore_index=True)
    written.to_csv(directory / "accounts.csv", index=False)
    assert (directory / "accounts.csv").stat().st_size > 2 * 2**20
    export, report = load_export(directory)
    assert sum(report.rejected.values()) == 0
    assert export.accounts["account_id"].tolist() == written["account_id"].tolist()
    assert export.accounts["product"].tolist() == written["product"].tolist()


def test_a_quote_left_open_in_a_file_of_many_blocks_is_named_by_its_line(tmp_path: Path) -> None:
    # It takes in every line after it, to the file's end: the file's first block boundary inside it silently lost
    # half of these accounts. Now one row, named by its line and how many lines it takes in.
    directory = _csv_export(tmp_path / "csv")
    accounts = _text(directory / "accounts.csv")
    extra = pd.concat([accounts.iloc[[4]]] * 20_000, ignore_index=True)
    extra["account_id"] = [f"B{i}" for i in range(len(extra))]
    pd.concat([accounts, extra]).to_csv(directory / "accounts.csv", index=False)
    _rewrite(directory / "accounts.csv", lambda text: text.replace("\nB9994,", '\n"B9994,'))
    message = "accounts: row line 10001: column -: row does not split into the header's columns"
    shown = f"{message} (value '1 fields where the header has 15, over 10006 lines')"
    assert [str(v) for v in check_export(directory).violations] == [shown]


def test_a_row_that_does_not_split_is_named_by_its_file_line_after_empty_lines_and_line_breaks(
    tmp_path: Path,
) -> None:
    directory = _csv_export(tmp_path / "csv")
    accounts = _text(directory / "accounts.csv")
    accounts.loc[0, "product"] = "credit\ncard"  # A1's row spans the file's lines 2 and 3
    accounts.to_csv(directory / "accounts.csv", index=False)
    lines = (directory / "accounts.csv").read_text(encoding="utf-8").split("\n")
    lines.insert(4, "")  # an empty line 5, after A2's line 4
    assert lines[6].startswith("A4,")
    lines[6] += ",surplus"  # A4's row, on the file's line 7
    (directory / "accounts.csv").write_text("\n".join(lines), encoding="utf-8")
    violation = check_export(directory).violations[0]
    assert (violation.table, violation.row, violation.rule) == ("accounts", "line 7", RULE_UNREADABLE_ROW)
    load_export(directory, mode="lenient", rejects_dir=tmp_path / "rejects")
    unreadable = pd.read_csv(tmp_path / "rejects" / "accounts.unreadable.csv", dtype=str)
    assert unreadable["line"].tolist() == ["7"] and unreadable.loc[0, "text"].startswith("A4,")


@pytest.mark.parametrize("stamp", ["2026-11-03t01:00:00Z", "2026-11-03t01:00:00z", "2026-11-03 01:00:00z"])
def test_lower_case_t_and_z_of_rfc_3339_are_read(tmp_path: Path, stamp: str) -> None:
    directory = _csv_export(tmp_path / "csv")
    contacts = _text(directory / "contacts.csv")
    contacts.loc[0, "started_at"] = stamp
    contacts.to_csv(directory / "contacts.csv", index=False)
    export, _ = load_export(directory)
    assert export.contacts["started_at"].iloc[0] == pd.Timestamp("2026-11-03T01:00:00Z")


def test_export_json_naming_a_key_twice_is_refused(tmp_path: Path) -> None:
    # A JSON parser keeps one of the two silently (Python's the last): which as_of the case system meant is unknown.
    directory = _csv_export(tmp_path / "csv")
    (directory / "export.json").write_text(
        '{"contract_version": "1", "as_of": "2026-11-20T00:00:00Z", "as_of": "2026-11-23T00:00:00Z"}'
    )
    with pytest.raises(ExportError, match=r"^export.json: row -: column as_of: appears more than once$"):
        load_export(directory, mode="lenient")


def test_export_json_not_in_utf_8_is_named_so(tmp_path: Path) -> None:
    # UTF-16, as Windows tools write by default: it was "not valid JSON (UnicodeDecodeError)".
    directory = _csv_export(tmp_path / "csv")
    (directory / "export.json").write_bytes(json.dumps({"contract_version": "1"}).encode("utf-16"))
    with pytest.raises(ExportError, match=r"^export.json: row -: column -: not UTF-8 \(byte 0xff at position 0\)$"):
        load_export(directory)
