"""Read and write exports (a directory of CSV/Parquet files or a SQL database) and output frames.

Loading parses each column once, vectorised, through `features.validate`; strict mode refuses a
bad export, lenient mode drops bad rows (and rows hanging off dropped accounts) into reject files.
Files are written atomically (temp file + rename), SQL in one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import secrets
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from features.contract import (
    CALL_LIST_SCHEMA,
    CONTRACT_VERSION,
    ENUM_COLUMNS,
    MONEY_OUTPUT_COLUMNS,
    SCHEMAS,
    SCORES_SCHEMA,
    SPECIAL_HANDLING_SCHEMA,
    TABLES,
    ColumnType,
    Export,
    LoadReport,
    Violation,
)
from features.validate import (
    EARLIEST,
    LATEST,
    META_TABLE,
    RULE_UNREADABLE_ROW,
    WHOLE,
    ExportCheck,
    check_meta,
    check_tables,
    row_names,
)

META_FILE = "export.json"
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_ISO_DATE_RE = r"\d{4}-\d{2}-\d{2}"
_ISO_TIMESTAMP_RE = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)"
_COPY_CHUNK_ROWS = 500_000
REPORT_VIOLATIONS_PER_RULE = 1000  # violations kept per rule in a lenient `LoadReport`
_INSERT_CHUNK_ROWS = 50_000
# Output columns that hold text even when every value looks like a number (ids keep leading zeros).
_TEXT_OUTPUT_COLUMNS = ("account_id", "customer_id", "team", "agent_id", "stage", "reasons", "model_version")


class ExportError(Exception):
    """An export that breaks the contract; the message is one line naming table, row, column and rule."""


class _DatabaseReadError(Exception):
    """The database refused a read (ADBC's errors, which are not SQLAlchemy's)."""


def is_sql_url(source: str | Path) -> bool:
    """True for a SQLAlchemy URL (`sqlite:///x.db`, `postgresql+psycopg://...`), False for a path."""
    return isinstance(source, str) and bool(_URL_RE.match(source))


def shown_location(target: str | Path) -> str:
    """A path, or a URL (`URL#table` too) with its password hidden, for messages and logs."""
    if not is_sql_url(target):
        return str(target)
    # The table follows the last `#`, as the writer reads `URL#table` (`_frame_target`); a `#` before the host
    # (a source URL has no table) is the password's.
    url, hash_, table = str(target).rpartition("#")
    if not hash_ or "@" in table:
        url, hash_, table = str(target), "", ""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True) + hash_ + table
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return str(target)


def _normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(_normalise_url(url))


def _is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


# ---------------------------------------------------------------------------------------
# Raw reading: as stored, no typing


@dataclass(frozen=True)
class UnreadableRow:
    """A CSV row that does not split into the header's columns."""

    line: int | None  # the file's line (1 = the header), None where the reader could not tell
    text: str
    found: str


@dataclass
class RawExport:
    """An export as read: the meta record and each table's frame (None where missing), untyped."""

    source: str
    meta: dict | None
    tables: dict[str, pd.DataFrame | None]
    meta_table: str = META_FILE
    meta_error: str | None = None
    # Per CSV table, the rows that could not be split into its columns (a field too many or too few, an
    # unclosed quote): their file line and text. They count as read and as rejected.
    unreadable: dict[str, list[UnreadableRow]] = field(default_factory=dict)


# A quoted value may hold line breaks (a note on two lines). Arrow splits a file into blocks at line breaks
# and, unless told that values may hold them, at one inside quotes too: past its first block (1 MiB) such a
# file read silently wrong (a value's second line became a row of its own; a quote left open lost the rows
# after it) or was refused. Following the quotes makes Arrow's read a fifth slower (3M contacts rows on 2
# cores: 0.43 s instead of 0.36 s).
_CSV_PARSE = {"newlines_in_values": True}
# A header of one field holding one of these is a file with another separator (the contract's is ",").
_OTHER_SEPARATORS = (";", "\t", "|")
_SCAN_BYTES = 8 * 2**20


def _read_csv_text(path: Path) -> tuple[pd.DataFrame, list[UnreadableRow]]:
    """Read a CSV with every column as text; an empty field is null, quoted (`""`, as writers that quote
    every field put it) or not. Rows that do not split into the header's columns come back apart."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next((row for row in csv.reader(handle) if row), None)  # empty lines before it skipped
        rows_follow = bool(header) and handle.read(1) != ""
    if not header:
        # What a writer that failed may leave behind: read as a table without rows, its rows would be lost unseen.
        raise ExportError(
            f"{path.stem}: row -: column -: {path.name} is empty (no header row; a table without rows is its header)"
        )
    _refuse_other_separator(path, header)
    _refuse_repeated_columns(path, header)
    # Enumerated columns come back dictionary-encoded (categoricals), as from Parquet.
    enums = ENUM_COLUMNS.get(path.stem, {})
    types = {name: pa.dictionary(pa.int32(), pa.string()) if name in enums else pa.string() for name in header}
    if not rows_follow:  # the header alone, its line ended or not (Arrow cannot read the second)
        return _to_pandas(pa.schema(types.items()).empty_table()), []
    convert = pa_csv.ConvertOptions(
        column_types=types,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
    )
    try:
        table = pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(**_CSV_PARSE), convert_options=convert)
        return _to_pandas(table), []
    except pa.ArrowInvalid as error:
        if "CSV parse error" not in str(error):
            raise
    # Read again on one thread, which numbers the rows it cannot split, and set those rows aside.
    lost: list[tuple[int | None, str, str]] = []

    def set_aside(row) -> str:
        found = f"{row.actual_columns} fields where the header has {row.expected_columns}"
        if breaks := row.text.rstrip("\r\n").count("\n"):  # a quote left open takes in the lines after it
            found += f", over {breaks + 1} lines"
        lost.append((row.number, row.text, found))
        return "skip"

    table = pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(use_threads=False),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=set_aside, **_CSV_PARSE),
        convert_options=convert,
    )
    lines = _file_lines(path, [number for number, _, _ in lost if number is not None])
    return _to_pandas(table), [UnreadableRow(lines.get(number), text, found) for number, text, found in lost]


def _file_lines(path: Path, rows: Collection[int]) -> dict[int, int]:
    """The file line on which each of `rows` begins, the rows numbered as Arrow numbers them (1 = the header,
    an empty line not counted, a row whose quoted values hold line breaks counted once).

    A vectorised scan of the bytes, run only for a file with rows that do not split: a line ends at "\n" or a
    lone "\r", a row at a line end outside quotes (after an even number of `"`: a quote written twice inside
    a value keeps the count even), and a row that begins with a line end is an empty line.
    """
    wanted = np.unique(np.asarray(list(rows), dtype=np.int64))
    lines: dict[int, int] = {}
    begun, line, quoted, at_row_start = 0, 1, 0, True  # before the chunk: rows begun, its line, quote parity
    with open(path, "rb") as handle:
        while len(lines) < len(wanted) and (chunk := handle.read(_SCAN_BYTES)):
            if chunk.endswith(b"\r"):
                chunk += handle.read(1)  # a "\r\n" split between chunks is one line end
            data = np.frombuffer(chunk, dtype=np.uint8)
            newline, carriage = data == ord("\n"), data == ord("\r")
            line_end = newline | (carriage & ~np.append(newline[1:], False))
            outside = (np.cumsum(data == ord('"'), dtype=np.int64) + quoted) % 2 == 0
            row_end = line_end & outside
            starts = np.flatnonzero(np.concatenate(([at_row_start], row_end[:-1])))
            starts = starts[~(newline[starts] | carriage[starts])]
            numbers = begun + 1 + np.arange(len(starts))
            hit = np.isin(numbers, wanted)
            ends_before = np.cumsum(line_end, dtype=np.int64) - line_end
            lines.update(zip(numbers[hit].tolist(), (line + ends_before[starts[hit]]).tolist(), strict=True))
            begun, line = begun + len(starts), line + int(line_end.sum())
            quoted, at_row_start = int(not outside[-1]), bool(row_end[-1])
    return lines


def _refuse_other_separator(path: Path, header: list[str]) -> None:
    """A file separated by ";", tabs or "|" reads as one column named by the whole header: say so, rather
    than name every column of the contract as missing."""
    names = {column.name for column in SCHEMAS.get(path.stem, ())}
    if len(header) == 1 and header[0] not in names and any(mark in header[0] for mark in _OTHER_SEPARATORS):
        raise ExportError(
            f"{path.stem}: row -: column -: {path.name} is not separated by ',' (its header is {header[0]!r})"
        )


def _refuse_repeated_columns(path: Path, names: list[str]) -> None:
    """A column named twice cannot be read as one: the whole table is refused, naming the column."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ExportError(f"{path.stem}: row -: column {repeated[0]}: appears more than once in {path.name}")


def _refuse_untextual_columns(path: Path, schema: pa.Schema) -> None:
    """A text column of the contract stored as floats (ids 1.0, 2.0; above 2^53 two ids would merge) or as
    lists, structs or maps (read, they would become the text of a Python object) is refused whole."""
    text_columns = {column.name for column in SCHEMAS.get(path.stem, ()) if column.type is ColumnType.STR}
    for column in schema:
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if column.name in text_columns and (pa.types.is_floating(kind) or pa.types.is_nested(kind)):
            raise ExportError(
                f"{path.stem}: row -: column {column.name}: a Parquet {kind} column, where the contract has text"
            )


def _refuse_float_text_column(table: str, column: str, stored: str) -> None:
    """A text column of the contract kept in a SQL float column is refused whole, as a Parquet one is: its
    text is "1001.0", or past 15 digits "1.23456789012346e+18", where distinct ids would silently merge."""
    if any(c.name == column and c.type is ColumnType.STR for c in SCHEMAS.get(table, ())):
        raise ExportError(f"{table}: row -: column {column}: a {stored} column, where the contract has text")


def _read_parquet_raw(path: Path) -> pd.DataFrame:
    schema = pq.read_schema(path)
    _refuse_repeated_columns(path, schema.names)
    _refuse_untextual_columns(path, schema)
    # The enumerated columns are read as categoricals straight from Parquet's dictionary pages: as
    # strings, a year of contacts for a million accounts holds 2.2 GiB more while it is checked.
    enums = set(ENUM_COLUMNS.get(path.stem, {})) & set(schema.names)
    return _to_pandas(pq.read_table(path, read_dictionary=sorted(enums)))


_INTEGERS = {pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32()}


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """The table as pandas, converted column by column, each Arrow column freed once converted.

    A year of contacts for a million accounts peaks 1.1 GiB lower and converts in 3 s instead of 12
    (no block consolidation). Integers stay integers (nullable), not floats with NaN that would have
    to be checked for fractions. `table` is unusable afterwards.

    Arrow (Parquet, PostgreSQL's REAL) tells a NaN from a null, pandas' float64 does not: a float column
    holding NaN keeps them apart (a nullable Float64 or Float32 column), so that a NaN amount is refused as
    not a number instead of being read as missing (and, where the column is nullable, accepted as "no
    credit limit").
    """
    nulls = {
        name: column.is_null().to_numpy(zero_copy_only=False)
        for name, column in zip(table.column_names, table.columns, strict=True)
        if pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py()
    }
    frame = table.to_pandas(
        date_as_object=False,
        split_blocks=True,
        self_destruct=True,
        types_mapper=lambda arrow_type: pd.Int64Dtype() if arrow_type in _INTEGERS else None,
    )
    del table
    pa.default_memory_pool().release_unused()
    for name, null in nulls.items():
        frame[name] = pd.arrays.FloatingArray(frame[name].to_numpy(), null)
    return frame


def _json_object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are all different: a parser keeps one of a key's two values (Python's the last),
    so which `as_of` the case system meant is unknown."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ExportError(f"{META_FILE}: row -: column {repeated[0]}: appears more than once")
    return dict(pairs)


def _read_dir_raw(directory: Path) -> RawExport:
    meta, meta_error = None, None
    meta_path = directory / META_FILE
    if meta_path.exists():
        try:
            # A BOM, as CSV files may have.
            loaded = json.loads(meta_path.read_text(encoding="utf-8-sig"), object_pairs_hook=_json_object)
            meta = loaded if isinstance(loaded, dict) else None
            meta_error = None if meta is not None else "not a JSON object"
        except json.JSONDecodeError as error:
            meta_error = f"not valid JSON ({error.__class__.__name__})"
        except UnicodeDecodeError as error:
            meta_error = f"not UTF-8 (byte {error.object[error.start]:#04x} at position {error.start})"
    tables: dict[str, pd.DataFrame | None] = {}
    unreadable: dict[str, list[UnreadableRow]] = {}
    for name in TABLES:
        parquet, csv_path = directory / f"{name}.parquet", directory / f"{name}.csv"
        if parquet.exists() and csv_path.exists():
            # One file per table: either could be a stale copy, and reading one would silently drop the other.
            raise ExportError(
                f"{name}: row -: column -: both {parquet.name} and {csv_path.name} are in the export "
                "(the contract has one file per table; remove the stale one)"
            )
        path = parquet if parquet.exists() else csv_path if csv_path.exists() else None
        try:
            if path is None:
                tables[name] = None
            elif path.suffix == ".parquet":
                tables[name] = _read_parquet_raw(path)
            else:
                tables[name], rows = _read_csv_text(path)
                if rows:
                    unreadable[name] = rows
        except (pa.ArrowException, UnicodeDecodeError, csv.Error) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise ExportError(f"{name}: row -: column -: unreadable file {path.name} ({reason})") from error
    return RawExport(str(directory), meta, tables, META_FILE, meta_error, unreadable)


def _quote(engine: sa.Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


# PostgreSQL columns of these types are read in binary, straight into Arrow, and typed as Parquet's
# are (REAL as the float32 it is: its 6-digit text would make 12345.67 12345.7). Any other type (NUMERIC,
# DOUBLE PRECISION, CHAR(n), UUID, TIMESTAMP without a zone, ...)
# is cast to text on the server and parsed as a CSV value is: money reads the same whichever numeric
# type the case system chose (DOUBLE PRECISION's 300.29999999999995 is 300.3 as text), CHAR(n) loses
# its padding, and a naive TIMESTAMP in a date column reads as its text '2026-07-27 00:00:00' does: at
# midnight, that date (as a Parquet timestamp is); at any other time, refused.
_PG_BINARY_TYPES = frozenset({"text", "varchar", "int2", "int4", "int8", "float4", "bool", "date", "timestamptz"})
_PG_TIME_TYPES = frozenset({"date", "timestamptz"})
_EPOCH = pd.Timestamp("1970-01-01")
# A table larger than this is read in as many ctid ranges as there are readers, in parallel.
_PG_SPLIT_BYTES = 32 * 2**20
# TID range scans came with PostgreSQL 14: before it, every range would scan the whole table.
_PG_TID_RANGE_SCANS = 140000


def _pg_readers() -> int:
    return max(2, min(4, os.cpu_count() or 1))


def _adbc_conninfo(engine: sa.Engine) -> str:
    """libpq's connection string for the URL, as SQLAlchemy's psycopg dialect would connect."""
    import psycopg

    _, kwargs = engine.dialect.create_connect_args(engine.url)
    keywords = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    return psycopg.conninfo.make_conninfo("", **{key: value for key, value in kwargs.items() if key in keywords})


@dataclass(frozen=True)
class _PgPart:
    """One query of a PostgreSQL read: a table, or one ctid range of it (its WHERE in `source`).

    `enums` are its enumerated columns, dictionary-encoded as from Parquet; `packed` those of them sent
    as one number (`_packed_codes`). `select` writes the query: `query` is what is read first; unpacked
    where a part holds a value outside the contract (read again so, and checked as any other), and with
    dates and times cast to text where one is out of range.
    """

    table: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type) in the table's order
    source: str  # quoted FROM clause and the part's WHERE / ORDER BY
    text_only: bool
    enums: tuple[str, ...]
    packed: tuple[str, ...]
    quote: Callable[[str], str]

    def select(self, *, packed: bool, times_as_text: bool) -> str:
        binary = _PG_BINARY_TYPES - _PG_TIME_TYPES if times_as_text else _PG_BINARY_TYPES
        fields = [
            self.quote(name)
            if kind in binary and not self.text_only
            else f"CAST({self.quote(name)} AS TEXT) AS {self.quote(name)}"
            for name, kind in self.columns
            if not (packed and name in self.packed)
        ]
        if packed and self.packed:
            fields.append(_packed_codes(self.table, self.packed, self.quote))
        return f"SELECT {', '.join(fields)}{self.source}"

    @property
    def query(self) -> str:
        return self.select(packed=True, times_as_text=False)


# ADBC's decoding of the binary COPY costs about the same for every field of every row, whatever its type
# (some 3 s a column on a year of contacts for a million accounts): the enumerated text columns of a
# table travel as one number, a byte per column holding the value's place in the contract's list (0 for
# null, `_PACKED_OTHER` for any other text), which makes the contacts' read a third faster.
_PACKED_FIELD = "callq_enum_codes"
_PACKED_OTHER = 255


def _packed_codes(table: str, names: tuple[str, ...], quote: Callable[[str], str]) -> str:
    """The SQL expression packing the enumerated columns `names` of `table` into one BIGINT."""
    terms = []
    for position, name in enumerate(names):
        column = quote(name)
        cases = " ".join(
            f"WHEN {column} = {_pg_literal(value)} THEN {code}"
            for code, value in enumerate(ENUM_COLUMNS[table][name], start=1)
        )
        # Parenthesised: PostgreSQL gives << and | the same precedence, left to right.
        terms.append(
            f"((CASE WHEN {column} IS NULL THEN 0 {cases} ELSE {_PACKED_OTHER} END)::bigint << {8 * position})"
        )
    return f"({' | '.join(terms)}) AS {quote(_PACKED_FIELD)}"


def _unpack_codes(part: _PgPart, batch: pa.RecordBatch) -> pa.RecordBatch | None:
    """The batch with its packed codes as the enumerated columns they stand for, in the table's order;
    None where one of them holds a value outside the contract."""
    codes = batch.column(_PACKED_FIELD).to_numpy(zero_copy_only=False)
    arrays = {}
    for position, name in enumerate(part.packed):
        code = (codes >> (8 * position)) & 0xFF
        if (code == _PACKED_OTHER).any():
            return None
        values = ENUM_COLUMNS[part.table][name]
        indices = pa.array((code - 1).astype(np.int32), mask=code == 0)
        arrays[name] = pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string()))
    columns, names = [], []
    for name, _ in part.columns:
        names.append(name)
        columns.append(arrays[name] if name in arrays else batch.column(name))
    return pa.RecordBatch.from_arrays(columns, names=names)


# In binary, PostgreSQL's 'infinity' and years like 12000 or 44 BC come out of the driver as garbage or
# outside the dates callq computes with (`features.validate.EARLIEST`..`LATEST`): a part holding one is
# read again with its dates and times as text, so the checks name the value.
def _out_of_range(column: pa.ChunkedArray) -> bool:
    """Whether a date or timestamp column holds a value outside the dates callq computes with."""
    if pa.types.is_date32(column.type):
        extremes = pc.min_max(column.cast(pa.int32()))
        low, high = (EARLIEST - _EPOCH).days, (LATEST - _EPOCH).days
    elif pa.types.is_timestamp(column.type):
        extremes = pc.min_max(column.cast(pa.int64()))
        low, high = EARLIEST.value // 1000, LATEST.value // 1000  # microseconds, as the driver gives them
    else:
        return False
    least, most = extremes["min"].as_py(), extremes["max"].as_py()
    return least is not None and (least < low or most > high)


def _adbc_fetch(cursor, part: _PgPart) -> pa.Table:
    """The part's rows as Arrow, enumerated columns dictionary-encoded (as from Parquet); read again
    unpacked where an enumerated column holds a value outside the contract, and with dates and times as
    text where one is out of range."""
    packed = bool(part.packed)
    table = _adbc_fetch_query(cursor, part, packed=packed, times_as_text=False)
    if table is None:
        packed = False
        table = _adbc_fetch_query(cursor, part, packed=False, times_as_text=False)
    if any(kind in _PG_TIME_TYPES for _, kind in part.columns) and not part.text_only:
        if any(_out_of_range(column) for column in table.columns):
            del table
            table = _adbc_fetch_query(cursor, part, packed=packed, times_as_text=True)
    return table


def _adbc_fetch_query(cursor, part: _PgPart, *, packed: bool, times_as_text: bool) -> pa.Table | None:
    """One reading of the part; None where packed codes stand for a value outside the contract."""
    cursor.execute(part.select(packed=packed, times_as_text=times_as_text))
    reader = cursor.fetch_record_batch()
    batches = []
    for batch in reader:
        converted = _converted_batch(part, batch, packed)
        if converted is None:
            reader.close()
            return None
        batches.append(converted)
    if not batches:  # an empty part is typed as a full one
        empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in reader.schema], schema=reader.schema)
        batches.append(_converted_batch(part, empty, packed))
    return pa.Table.from_batches(batches)


def _converted_batch(part: _PgPart, batch: pa.RecordBatch, packed: bool) -> pa.RecordBatch | None:
    """A fetched batch as the part's table holds it: packed codes unpacked (None for a value outside the
    contract), the other enumerated columns dictionary-encoded."""
    if packed and part.packed:
        batch = _unpack_codes(part, batch)
        if batch is None:
            return None
    # Copied into Arrow's own pool at their exact sizes: the driver's buffers grow by doubling, and kept as
    # they are they held 0.3 GiB more on a 200,000-account book.
    columns = [
        column
        if pa.types.is_dictionary(column.type)
        else pc.dictionary_encode(column)
        if name in part.enums
        else pa.concat_arrays([column])
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _read_postgres(engine: sa.Engine, tables: list[str], text_only: Collection[str] = ()) -> dict[str, pd.DataFrame]:
    """Read whole tables from PostgreSQL through ADBC's binary COPY, from one snapshot.

    The psycopg text COPY spent most of its time in Python, a row a call: this loads a million-account
    book twice as fast. Large tables are split into ctid ranges read on parallel connections that
    share the first connection's exported snapshot (as `pg_dump -j` does), so every table is read as
    of the same moment even while the case system writes. `text_only` tables are cast to text whole.
    """
    import adbc_driver_manager

    try:
        return _read_postgres_tables(engine, tables, text_only)
    except adbc_driver_manager.Error as error:
        raise _DatabaseReadError(str(error)) from error


# Text casts of floats give 15 digits (300.3, not 300.29999999999995), as SQLite does; dates and times
# in ISO, in UTC, whatever the server's defaults.
_PG_SETTINGS = ("SET extra_float_digits = 0", "SET TIME ZONE 'UTC'", "SET DateStyle = 'ISO, YMD'")


def _begin_read(cursor, snapshot: str | None = None) -> None:
    """The session settings and a read-only snapshot transaction: the leader's own, or its `snapshot`."""
    for setting in _PG_SETTINGS:
        cursor.execute(setting)
    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot is not None:
        cursor.execute(f"SET TRANSACTION SNAPSHOT {_pg_literal(snapshot)}")


def _pg_parts(cursor, engine: sa.Engine, table: str, text_only: bool, readers: int, block: int) -> list[_PgPart]:
    """The queries that read `table`: one, or one per reader over ranges of its pages."""
    cursor.execute(
        "SELECT a.attname AS name, t.typname AS type FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        f" WHERE a.attrelid = {_pg_literal(_quote(engine, table))}::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum"
    )
    columns = cursor.fetchall()
    for name, kind in columns:
        if kind in ("float4", "float8"):
            _refuse_float_text_column(table, name, f"PostgreSQL {kind}")

    # Enumerated text columns come dictionary-encoded, as from Parquet (a year of contacts as plain
    # strings holds gigabytes more).
    enums = tuple(
        name
        for name, kind in columns
        if name in ENUM_COLUMNS.get(table, {}) and (kind in ("text", "varchar") or text_only)
    )
    packed = () if text_only else enums
    source = f" FROM {_quote(engine, table)}"

    def part(suffix: str) -> _PgPart:
        return _PgPart(
            table, tuple(columns), source + suffix, text_only, enums, packed, lambda name: _quote(engine, name)
        )

    if table == "accounts" and any(name == "account_id" for name, _ in columns):
        # SQL rows come in storage order, which an UPDATE or VACUUM changes: accounts, whose order
        # the models' sampling and the ranker's ties follow, come sorted by their id, as text compared
        # byte by byte whatever the column's type or the database's collation (as SQLite sorts it).
        return [part(f' ORDER BY CAST({_quote(engine, "account_id")} AS TEXT) COLLATE "C"')]
    cursor.execute(f"SELECT pg_relation_size({_pg_literal(_quote(engine, table))}::regclass) AS bytes")
    pages = -(-cursor.fetchone()[0] // block)
    if readers < 2 or pages * block <= _PG_SPLIT_BYTES:
        return [part("")]
    # Storage order kept: the ranges in page order, a TID range scan each (PostgreSQL 14+).
    bounds = [pages * i // readers for i in range(readers)] + [None]
    return [
        part(f" WHERE ctid >= '({start},0)'::tid" + ("" if end is None else f" AND ctid < '({end},0)'::tid"))
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _read_postgres_tables(engine: sa.Engine, tables: list[str], text_only: Collection[str]) -> dict[str, pd.DataFrame]:
    import adbc_driver_postgresql.dbapi as adbc

    conninfo = _adbc_conninfo(engine)
    readers = _pg_readers()
    with adbc.connect(conninfo, autocommit=True) as leader, leader.cursor() as cursor:
        _begin_read(cursor)
        cursor.execute(
            "SELECT pg_export_snapshot() AS snapshot, current_setting('block_size')::int AS block,"
            " current_setting('server_version_num')::int AS version"
        )
        snapshot, block, version = cursor.fetchone()
        # Older servers read each table whole; the tables are still spread over the readers.
        ranges = readers if version >= _PG_TID_RANGE_SCANS else 1
        parts = [
            part for table in tables for part in _pg_parts(cursor, engine, table, table in text_only, ranges, block)
        ]

        # A table is made a frame as soon as its last part is in, by the reader that fetched it, while the
        # others go on reading: a year of contacts converts in ~4 s, no longer after every table is read.
        results: dict[int, pa.Table] = {}
        unread = Counter(part.table for part in parts)
        frames: dict[str, pd.DataFrame] = {}
        lock = threading.Lock()

        def fetched(index: int, table: pa.Table) -> None:
            name = parts[index].table
            with lock:
                results[index] = table
                unread[name] -= 1
                if unread[name]:
                    return
                pieces = _same_types([results.pop(i) for i, part in enumerate(parts) if part.table == name])
            frames[name] = _to_pandas(pa.concat_tables(pieces).unify_dictionaries() if len(pieces) > 1 else pieces[0])

        # Each reader takes the next part left when it is free (one converting a table falls behind);
        # contacts (the largest table) first; reader 0 is the leader.
        queue = iter(sorted(range(len(parts)), key=lambda i: (parts[i].table != "contacts", i)))

        def read_parts(reader) -> None:
            while (index := next(queue, None)) is not None:
                fetched(index, _adbc_fetch(reader, parts[index]))

        def read_own() -> None:
            with adbc.connect(conninfo, autocommit=True) as connection, connection.cursor() as own:
                _begin_read(own, snapshot)
                read_parts(own)
                own.execute("COMMIT")

        with ThreadPoolExecutor(max_workers=max(1, readers - 1)) as pool:
            futures = [pool.submit(read_own) for _ in range(min(readers, len(parts)) - 1)]
            read_parts(cursor)
            for future in futures:
                future.result()
        cursor.execute("COMMIT")
    return {table: frames[table] for table in tables}


def _same_types(pieces: list[pa.Table]) -> list[pa.Table]:
    """Parts of one table where one part was read again with its dates and times as text: the others'
    dates and times as text too (ISO-8601, as PostgreSQL writes them), so the parts concatenate."""
    if len({piece.schema for piece in pieces}) == 1:
        return pieces
    text = {f.name for piece in pieces for f in piece.schema if pa.types.is_string(f.type)}
    unified = []
    for piece in pieces:
        columns = []
        for f, column in zip(piece.schema, piece.columns, strict=True):
            if f.name in text and pa.types.is_timestamp(f.type):
                column = _iso_utc(column)
            elif f.name in text and pa.types.is_date32(f.type):
                column = column.cast(pa.string())
            columns.append(column)
        unified.append(pa.Table.from_arrays(columns, names=piece.column_names))
    return unified


def _pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_text_table(connection: sa.Connection, inspector: sa.Inspector, table: str) -> pd.DataFrame:
    """A table of a database other than PostgreSQL, every column as text: one parser for every source."""
    engine = connection.engine
    described = inspector.get_columns(table)
    for column in described:
        if isinstance(column["type"], sa.Float):  # REAL, FLOAT, DOUBLE
            _refuse_float_text_column(table, column["name"], f"{engine.dialect.name} {column['type']}")
    columns = [column["name"] for column in described]
    cast = ", ".join(f"CAST({_quote(engine, c)} AS TEXT) AS {_quote(engine, c)}" for c in columns)
    query = f"SELECT {cast} FROM {_quote(engine, table)}"
    if table == "accounts" and "account_id" in columns:
        # SQL rows come in storage order, which an UPDATE or VACUUM changes: accounts, whose order the
        # models' sampling and the ranker's ties follow, come sorted by their id.
        query += f" ORDER BY {_quote(engine, 'account_id')}"
    frame = pd.read_sql_query(sa.text(query), connection)
    return frame.astype({column: "string" for column in frame.columns})


def _read_sql_raw(url: str) -> RawExport:
    engine = _engine(url)
    postgres = _is_postgres(engine)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            present = set(inspector.get_table_names())
            wanted = [name for name in (*TABLES, META_TABLE) if name in present]
            if not postgres:
                frames = {name: _read_text_table(connection, inspector, name) for name in wanted}
        if postgres:  # on ADBC's own connections, once SQLAlchemy's is back in the pool
            frames = _read_postgres(engine, wanted, text_only=[META_TABLE])
    finally:
        engine.dispose()
    tables = {name: frames.get(name) for name in TABLES}
    meta, meta_error, meta_rows = None, None, frames.get(META_TABLE)
    if meta_rows is not None:
        if len(meta_rows) != 1:
            meta_error = f"must hold exactly one row, holds {len(meta_rows)}"
        else:
            meta = {key: (None if pd.isna(value) else value) for key, value in meta_rows.iloc[0].items()}
    return RawExport(url, meta, tables, META_TABLE, meta_error)


def read_raw_export(source: str | Path) -> RawExport:
    """Read an export as stored (directory or SQLAlchemy URL), without typing or checks."""
    if is_sql_url(source):
        url = sa.engine.make_url(_normalise_url(str(source)))
        shown = shown_location(_normalise_url(str(source)))
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            if not Path(url.database).is_file():
                # SQLite would silently create an empty database: say what is wrong instead.
                raise ExportError(f"export {shown}: no such SQLite database file")
        try:
            return _read_sql_raw(str(source))
        except (sa.exc.SQLAlchemyError, _DatabaseReadError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise ExportError(f"export {shown}: cannot read ({reason})") from error
    directory = Path(source)
    if not directory.is_dir():
        raise ExportError(f"export {source}: not a directory or a SQLAlchemy URL")
    return _read_dir_raw(directory)


def _check_raw(raw: RawExport, *, max_per_rule: int | None = None) -> ExportCheck:
    if raw.meta_error is not None:
        as_of, meta_violations = None, [Violation(raw.meta_table, WHOLE, WHOLE, raw.meta_error)]
    else:
        as_of, meta_violations = check_meta(raw.meta, table=raw.meta_table)
    result = check_tables(as_of, raw.tables, max_per_rule=max_per_rule)
    result.violations[:0] = meta_violations
    for violation in meta_violations:
        key = (violation.table, violation.column, violation.rule)
        result.totals[key] = result.totals.get(key, 0) + 1
    if raw.unreadable:  # each table's unreadable rows first in it, the tables in contract order
        for name, rows in raw.unreadable.items():
            shown = rows if max_per_rule is None else rows[:max_per_rule]
            result.violations[:0] = [
                Violation(
                    name, WHOLE if row.line is None else f"line {row.line}", WHOLE, RULE_UNREADABLE_ROW, row.found
                )
                for row in shown
            ]
            result.totals[(name, WHOLE, RULE_UNREADABLE_ROW)] = len(rows)
        order = {raw.meta_table: -1, **{name: i for i, name in enumerate(TABLES)}}
        result.violations.sort(key=lambda violation: order.get(violation.table, len(TABLES)))
    return result


def check_export(source: str | Path, *, max_per_rule: int | None = None) -> ExportCheck:
    """Read an export as stored and check it against every rule of contract section 1 (meta included)."""
    return _check_raw(read_raw_export(source), max_per_rule=max_per_rule)


def validate_export(source: str | Path, *, max_per_rule: int | None = None) -> list[Violation]:
    """Every contract violation of the export at `source` (`callq validate`)."""
    return check_export(source, max_per_rule=max_per_rule).violations


# ---------------------------------------------------------------------------------------
# Typed loading


def _first_error(check: ExportCheck, table: str) -> ExportError:
    first = next(v for v in check.violations if v.table == table)
    more = check.total(table) - 1
    suffix = f" (and {more} more violation{'s' if more != 1 else ''} in {table})" if more else ""
    return ExportError(f"{first}{suffix}")


def _write_rejects(check: ExportCheck, rejects_dir: Path, unreadable: Mapping[str, list[UnreadableRow]]) -> None:
    rejects_dir.mkdir(parents=True, exist_ok=True)
    for name, table in check.tables.items():
        rows = np.flatnonzero(table.rejected)
        frame = table.raw.iloc[rows].copy()
        frame["reason"] = table.reasons.loc[rows].to_numpy()
        # The name `validate` and the report give the row: its key, or "#N" where the key itself is bad.
        frame["row"] = row_names(name, table.raw, table.typed, rows) if len(rows) else pd.Series(dtype=object)
        frame = _export_csv_text(frame)
        _atomic_write(rejects_dir / f"{name}.rejects.csv", lambda path, f=frame: f.to_csv(path, index=False))
    for name in TABLES:  # a run again: a table whose rows all split now has no unreadable rows left to count
        if name not in unreadable:
            (rejects_dir / f"{name}.unreadable.csv").unlink(missing_ok=True)
    for name, lost in unreadable.items():  # kept as the file had them: they have no columns to put them in
        frame = pd.DataFrame(
            {
                "line": pd.array([row.line for row in lost], dtype="Int64"),
                "text": [row.text for row in lost],
                "reason": [f"{RULE_UNREADABLE_ROW}: {row.found}" for row in lost],
            }
        )
        _atomic_write(rejects_dir / f"{name}.unreadable.csv", lambda path, f=frame: f.to_csv(path, index=False))


def _export_csv_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as a CSV export holds them (contract section 1), where Parquet or PostgreSQL gave them typed: flags
    `true`/`false` (pandas writes True/False), timestamps ISO-8601 in UTC ending in Z; text stays as it was."""
    out = {}
    for name, series in frame.items():
        if pd.api.types.is_bool_dtype(series.dtype):
            series = series.map({True: "true", False: "false"}, na_action="ignore").astype(object)
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            series = pd.Series(_iso_utc(_arrow_array(series)).to_pandas().to_numpy(), index=series.index)
        out[name] = series
    return pd.DataFrame(out, index=frame.index)


def _rejected_text(check: ExportCheck, table: str, column: str) -> set[str]:
    """The non-empty values of `column` in `table`'s rejected rows, as text (as stored, before typing)."""
    checked = check.tables[table]
    if checked.raw is None or column not in checked.raw.columns or not checked.rejected.any():
        return set()
    values = checked.raw[column].iloc[np.flatnonzero(checked.rejected)].dropna()
    return {text for text in values.astype(str) if text.strip()}


def _fields_of(text: str) -> list[str]:
    """The fields of a CSV row's text as well as they can be told apart (a row that failed to split)."""
    try:
        return [value for line in csv.reader(io.StringIO(text)) for value in line]
    except csv.Error:
        return text.replace('"', "").replace("\n", ",").split(",")


def withheld_accounts(
    check: ExportCheck, accounts: pd.DataFrame, unreadable: Mapping[str, list[UnreadableRow]]
) -> frozenset[str]:
    """Kept accounts no list may dial after a lenient load: every account of a customer that lost an
    accounts row (its no-call flags may have been set) or a contact (the frequency limits would not count it).

    Rows are matched by the ids they carry as stored; a rejected row whose customer or account id is itself
    unreadable names nobody (its siblings cannot be found). An accounts or contacts row that did not even
    split into columns names every customer or account id among its fields.
    """
    customers = _rejected_text(check, "accounts", "customer_id")
    contacted = _rejected_text(check, "contacts", "account_id")
    fields = {
        value.strip()
        for name in ("accounts", "contacts")
        for row in unreadable.get(name, ())
        for value in _fields_of(row.text)
    }
    if not customers and not contacted and not fields:
        return frozenset()
    ids = accounts["account_id"].astype(str)
    owners = accounts["customer_id"].astype(str)
    customers |= set(owners[ids.isin(contacted | fields)]) | (fields & set(owners))
    return frozenset(ids[owners.isin(customers)])


def load_export(
    source: str | Path,
    *,
    mode: Literal["strict", "lenient"] = "strict",
    rejects_dir: str | Path | None = None,
    drop: Mapping[str, Collection[str]] | None = None,
) -> tuple[Export, LoadReport]:
    """Load and type an export; strict raises `ExportError` on the first bad table, lenient drops bad rows.

    A missing table, a missing column or a bad `export.json`/`export_meta` fails in both modes:
    rows cannot be judged one by one then. Lenient mode writes `rejects_dir/<table>.rejects.csv`.
    `drop` names columns per table that are checked like every other, then left out of the `Export`
    (rejects files keep them).
    """
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    raw = read_raw_export(source)
    # Strict mode needs one violation per rule to name; lenient keeps a sample per rule in the report
    # (every rejected row, with its reason, goes to the rejects files).
    check = _check_raw(raw, max_per_rule=1 if mode == "strict" else REPORT_VIOLATIONS_PER_RULE)
    bad = [name for name in (raw.meta_table, *TABLES) if check.total(name)]
    if mode == "lenient":
        # Only a broken meta record, a missing table or a missing column stop a lenient load.
        bad = [name for name in bad if name == raw.meta_table or check.tables[name].structural]
    if bad:
        raise _first_error(check, bad[0])

    report = LoadReport(violations=list(check.violations))
    frames: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        table = check.tables[name]
        frames[name] = check.accepted(name, (drop or {}).get(name, ()))
        lost = len(raw.unreadable.get(name, ()))  # rows that never became a row of the table
        report.read[name] = table.read + lost
        report.accepted[name] = len(frames[name])
        report.rejected[name] = int(table.rejected.sum()) + lost
    if rejects_dir is not None and mode == "lenient":
        _write_rejects(check, Path(rejects_dir), raw.unreadable)
    withheld = withheld_accounts(check, frames["accounts"], raw.unreadable) if mode == "lenient" else frozenset()
    export = Export(as_of=check.as_of, source=str(source), withheld=withheld, **frames)
    del raw, check, table
    # The raw columns live in Arrow's own allocator, which keeps freed pages for reuse; numpy
    # (features, models) allocates elsewhere, so hand them back: ~0.9 GiB on a 1M-account export.
    pa.default_memory_pool().release_unused()
    return export, report


# ---------------------------------------------------------------------------------------
# Writing exports


_ARROW_TYPES = {
    ColumnType.STR: pa.string(),
    ColumnType.DATE: pa.date32(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    ColumnType.MONEY: pa.float64(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.INT: pa.int64(),
}


def _arrow_array(series: pd.Series) -> pa.Array:
    """A column as Arrow, nulls kept, tz-aware times as UTC (avoids pandas' deprecated `.values`)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        naive = pa.array(series.dt.tz_convert(None).to_numpy(), from_pandas=True)
        return naive.cast(pa.timestamp(naive.type.unit, tz="UTC"))
    values = series.array if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) else series.to_numpy()
    return pa.array(values, from_pandas=True)


def _arrow_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """The contract columns of a typed table as Arrow, with the contract's storage types."""
    arrays, fields = [], []
    for column in SCHEMAS[name]:
        series = frame[column.name]
        if column.type is ColumnType.DATE:
            series = pd.to_datetime(series).astype("datetime64[s]")
        elif column.type is ColumnType.TIMESTAMP:
            series = pd.to_datetime(series, utc=True)
        array = _arrow_array(series)
        arrays.append(array.cast(_ARROW_TYPES[column.type]))
        fields.append(pa.field(column.name, _ARROW_TYPES[column.type], nullable=column.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _iso_utc(array: pa.ChunkedArray | pa.Array) -> pa.Array:
    """UTC timestamps as ISO-8601 text ending in Z, to the second where no value has a fraction."""
    seconds = array.cast(pa.timestamp("s", tz="UTC"), safe=False)
    whole = pc.all(pc.equal(seconds.cast(array.type), array)).as_py() in (True, None)
    if whole:
        return pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    return pc.strftime(array.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")


def _money_decimal(array: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Money as exact two-place decimals (float money rounded to whole cents; NaN as null): written to CSV
    as plain numbers ("15000003916.95"), never in the exponent notation a float takes from 1e10."""
    values = pc.if_else(pc.is_nan(array), pa.scalar(None, pa.float64()), array)
    cents = pc.round(pc.multiply(values, 100.0)).cast(pa.int64())
    return pc.multiply(cents.cast(pa.decimal128(35, 0)), pa.scalar(Decimal("0.01"), pa.decimal128(2, 2)))


def money_text(array: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Money as plain decimal text with two places ("1234567.80"), never exponent notation: how every CSV
    callq writes (exports, outputs, the API's download) shows money."""
    return _money_decimal(array).cast(pa.string())


def _csv_ready(table: pa.Table, money: tuple[str, ...] = ()) -> pa.Table:
    """Text forms the contract fixes for CSV: timestamps ISO-8601 with Z, money plain decimals."""
    columns = []
    for field_, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field_.type) and field_.type.tz is not None:
            column = _iso_utc(column)
        elif field_.name in money:
            column = money_text(column)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _money_columns(name: str) -> tuple[str, ...]:
    return tuple(column.name for column in SCHEMAS[name] if column.type is ColumnType.MONEY)


def _write_csv_table(table: pa.Table, sink, money: tuple[str, ...] = ()) -> None:
    pa_csv.write_csv(_csv_ready(table, money), sink, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def _landing(path: Path) -> Path:
    """Where a file written at `path` lands: a symlink's target (however many links deep, relative ones
    too), so that the rename replaces the file it points to and the link stays; `path` itself otherwise.

    A dangling link is written through where its target's folder exists; FileNotFoundError (naming
    `path`) where it does not, and OSError for a loop of links."""
    if not os.path.islink(path):
        return path
    import errno

    target = Path(os.path.realpath(path))
    if os.path.islink(target):  # realpath stops where the links go round in a loop
        raise OSError(errno.ELOOP, "Too many levels of symbolic links", str(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "Dangling symlink: its target's folder does not exist", str(path))
    return target


def _check_folder(path: Path, shown: Path) -> None:
    """OSError naming `shown` where no file can be made at `path`: a file stands where one of its folders
    would be, or the nearest folder that exists is not writable (checked now, before any work, not after)."""
    import errno

    ancestor = path.parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory: a file stands where its folder would be", str(shown))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied: its folder is not writable", str(shown))


def _make_folder(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents (an output's folder is made, as `mkdir -p` would); the ones
    made, for `_remove_folders` to take away again where the write fails."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    if missing:
        missing[0].mkdir(parents=True, exist_ok=True)
    return missing


def _remove_folders(folders: Sequence[Path]) -> None:
    """Remove the folders a failed write made, deepest first, where they are still empty."""
    for folder in sorted(folders, key=lambda one: len(one.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass


def _staged_file(path: Path, write, shown: Path | None = None) -> str:
    """Call `write(temp_path)` on a new temporary file next to `path` (whose folder exists), for the caller
    to rename over it. A folder that refuses the temporary file is an OSError naming `shown` (default `path`),
    the file asked for, not the temporary one.

    The file is created as `open` creates one (read-write for all, less the umask), not with `mkstemp`'s
    owner-only mode: renamed over `path`, that would leave the output unreadable to the case system's user.
    """
    temp = str(path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # O_EXCL: never another's file
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(shown or path)) from error
    try:
        write(temp)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def _atomic_write(path: Path, write) -> None:
    """Call `write(temp_path)` next to `path` (a symlink's target: `_landing`), then rename over it: readers
    never see half a file. Folders it makes for it are taken away again where the write fails."""
    path = Path(path)
    landing = _landing(path)
    made = _make_folder(landing.parent)
    try:
        temp = _staged_file(landing, write, shown=path)
        try:
            os.replace(temp, landing)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except BaseException:
        _remove_folders(made)
        raise


def _meta_json(export: Export) -> str:
    as_of = pd.Timestamp(export.as_of).tz_convert("UTC")
    return json.dumps({"contract_version": CONTRACT_VERSION, "as_of": _iso_text(as_of)}) + "\n"


def _iso_text(timestamp: pd.Timestamp) -> str:
    text = timestamp.tz_convert("UTC").tz_localize(None).isoformat()
    return text + "Z"


def _write_dir(export: Export, directory: Path, fmt: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    other = "csv" if fmt == "parquet" else "parquet"
    for name in TABLES:
        table = _arrow_table(name, export.table(name))
        if fmt == "parquet":
            _atomic_write(directory / f"{name}.parquet", lambda path, t=table: pq.write_table(t, path))
        else:
            _atomic_write(
                directory / f"{name}.csv",
                lambda path, t=table, n=name: _write_csv_table(t, path, _money_columns(n)),
            )
        # A stale file of the other format would shadow or confuse the one just written.
        (directory / f"{name}.{other}").unlink(missing_ok=True)
    _atomic_write(directory / META_FILE, lambda path: Path(path).write_text(_meta_json(export), encoding="utf-8"))


_PG_TYPES = {
    ColumnType.STR: "TEXT",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP: "TIMESTAMPTZ",
    ColumnType.MONEY: "NUMERIC(18, 2)",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.INT: "BIGINT",
}
# SQLite and other databases without date types keep dates and timestamps as ISO-8601 text.
_GENERIC_TYPES = {
    ColumnType.STR: "TEXT",
    ColumnType.DATE: "TEXT",
    ColumnType.TIMESTAMP: "TEXT",
    ColumnType.MONEY: "REAL",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.INT: "INTEGER",
}


def _create_table_sql(engine: sa.Engine, name: str) -> str:
    types = _PG_TYPES if _is_postgres(engine) else _GENERIC_TYPES
    columns = ", ".join(
        f"{_quote(engine, c.name)} {types[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in SCHEMAS[name]
    )
    return f"CREATE TABLE {_quote(engine, name)} ({columns})"


def _copy_in(connection: sa.Connection, name: str, table: pa.Table, money: tuple[str, ...] = ()) -> None:
    """PostgreSQL: append `table`'s rows to table `name` through COPY (null as an empty field, "" as "")."""
    driver = connection.connection.driver_connection
    engine = connection.engine
    columns = ", ".join(_quote(engine, column) for column in table.column_names)
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {_quote(engine, name)} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        for batch in table.to_batches(max_chunksize=_COPY_CHUNK_ROWS):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(
                _csv_ready(pa.Table.from_batches([batch]), money),
                sink,
                write_options=pa_csv.WriteOptions(include_header=False, quoting_style="needed"),
            )
            copy.write(sink.getvalue().to_pybytes())


def _generic_rows(table: pa.Table) -> Iterator[list[tuple]]:
    """Rows for a DBAPI executemany, dates and timestamps as ISO text, in chunks."""
    columns = []
    for field_, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field_.type):
            column = _iso_utc(column)
        elif pa.types.is_date(field_.type):
            column = pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d")
        columns.append(column)
    for start in range(0, table.num_rows, _INSERT_CHUNK_ROWS):
        chunk = [column.slice(start, _INSERT_CHUNK_ROWS).to_pylist() for column in columns]
        yield list(zip(*chunk, strict=True))


def _write_sql(export: Export, url: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            postgres = _is_postgres(engine)
            for name in (*TABLES, META_TABLE):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(engine, name)}")
            for name in TABLES:
                connection.exec_driver_sql(_create_table_sql(engine, name))
                table = _arrow_table(name, export.table(name))
                if postgres:
                    _copy_in(connection, name, table, _money_columns(name))
                    continue
                marks = ", ".join("?" if engine.dialect.paramstyle == "qmark" else "%s" for _ in table.column_names)
                insert = f"INSERT INTO {_quote(engine, name)} VALUES ({marks})"
                for rows in _generic_rows(table):
                    if rows:
                        connection.exec_driver_sql(insert, rows)
            as_of_type = "TIMESTAMPTZ" if postgres else "TEXT"
            connection.exec_driver_sql(
                f"CREATE TABLE {META_TABLE} (contract_version TEXT NOT NULL, as_of {as_of_type} NOT NULL)"
            )
            connection.execute(
                sa.text(f"INSERT INTO {META_TABLE} (contract_version, as_of) VALUES (:version, :as_of)"),
                {"version": CONTRACT_VERSION, "as_of": _iso_text(pd.Timestamp(export.as_of))},
            )
    finally:
        engine.dispose()


def write_export(export: Export, target: str | Path, *, fmt: Literal["parquet", "csv"] = "parquet") -> None:
    """Write a typed export to a directory (`export.json` + one file per table) or a SQLAlchemy URL.

    SQL targets get every table and `export_meta` replaced in one transaction; `fmt` is for directories.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    if is_sql_url(target):
        _write_sql(export, str(target))
    else:
        _write_dir(export, Path(target), fmt)


# ---------------------------------------------------------------------------------------
# Output frames (scores, call lists): files or URL#table


def _frame_target(target: str | Path) -> tuple[str, str] | Path:
    """(url, table) for `URL#table`, else the file path (which must end in .csv or .parquet)."""
    if is_sql_url(target):
        url, _, table = str(target).rpartition("#")
        if not url or not table:
            raise ValueError(f"a SQL frame target must look like URL#table, got {target!r}")
        return url, table
    path = Path(target)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"a frame file must end in .csv or .parquet, got {target!r}")
    return path


def _is_date_column(series: pd.Series) -> bool:
    """A naive datetime column whose values are all midnights holds calendar dates."""
    if not pd.api.types.is_datetime64_dtype(series.dtype) or isinstance(series.dtype, pd.DatetimeTZDtype):
        return False
    values = series.dropna()
    return bool((values == values.dt.normalize()).all())


# The outputs' column types by name (the three schemas agree where they share a name): a column read back
# with no value to tell its type by (an empty list, an all-null column) gets its output's type.
_OUTPUT_TYPES = {
    field.name: field.type for schema in (SCORES_SCHEMA, CALL_LIST_SCHEMA, SPECIAL_HANDLING_SCHEMA) for field in schema
}


def _output_dtype(name: str, rows: int) -> str | None:
    """The dtype a read gives output column `name` when it holds no value; None for other columns."""
    kind = _OUTPUT_TYPES.get(name)
    if kind is None or pa.types.is_large_string(kind):
        return None
    if pa.types.is_timestamp(kind):
        return "datetime64[us, UTC]"
    if pa.types.is_date32(kind):
        return "datetime64[s]"
    if pa.types.is_integer(kind):
        return "Int64" if rows else "int64"  # nullable where there are rows, all of them null
    if pa.types.is_boolean(kind):
        return "boolean" if rows else "bool"
    return "float64"


def _typed_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Type text columns read back from CSV or SQLite: ISO dates and timestamps, the rest `string`; an
    output's column with no value, its output's type."""
    out = {}
    for name, series in frame.items():
        if series.isna().all() and (dtype := _output_dtype(name, len(series))) is not None:
            series = series.astype(object).astype(dtype) if len(series) else pd.Series([], dtype=dtype)
        elif series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            text = series.astype("string")
            present = text.dropna()
            if name not in _TEXT_OUTPUT_COLUMNS and len(present):
                if present.str.fullmatch(_ISO_TIMESTAMP_RE).all():
                    series = pd.to_datetime(text, utc=True, format="ISO8601").astype("datetime64[us, UTC]")
                elif present.str.fullmatch(_ISO_DATE_RE).all():
                    series = pd.to_datetime(text, format="%Y-%m-%d").astype("datetime64[s]")
                else:
                    series = text
            else:
                series = text
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        elif pd.api.types.is_datetime64_dtype(series.dtype):
            series = series.astype("datetime64[s]") if _is_date_column(series) else series
        out[name] = series
    return pd.DataFrame(out, index=frame.index)


def _read_csv_frame(path: Path) -> pd.DataFrame:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), None) or []
    table = pa_csv.read_csv(
        path,
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in header if name in _TEXT_OUTPUT_COLUMNS},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            timestamp_parsers=[],  # dates and timestamps are typed by `_typed_text`, one rule for all
        ),
    )
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) and column.null_count:
            columns[name] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get)
        elif pa.types.is_boolean(column.type) and column.null_count:
            columns[name] = column.to_pandas(types_mapper={column.type: pd.BooleanDtype()}.get)
        else:
            columns[name] = column.to_pandas(date_as_object=False)
    return _typed_text(pd.DataFrame(columns))


def read_frame(source: str | Path) -> pd.DataFrame:
    """Read an output frame from a `.csv`/`.parquet` file or `URL#table`, with dates and times typed."""
    target = _frame_target(source)
    if isinstance(target, Path):
        if target.suffix == ".parquet":
            return _typed_text(pd.read_parquet(target))
        return _read_csv_frame(target)
    url, table = target
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return _typed_text(pd.read_sql_table(table, connection))
    finally:
        engine.dispose()


def _frame_table(frame: pd.DataFrame, schema: pa.Schema | None) -> pa.Table:
    """An output frame as Arrow: in its output's schema where it has one (an empty frame's columns keep their
    types), else with the types its dtypes give, naive midnights as calendar dates."""
    if schema is not None:
        with warnings.catch_warnings():  # pyarrow reads tz-aware columns through pandas' deprecated `.values`
            warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
            return pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)
    table = pa.Table.from_arrays([_arrow_array(frame[name]) for name in frame.columns], names=list(frame.columns))
    columns = []
    for field_, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field_.type) and field_.type.tz is None and _is_date_column(frame[field_.name]):
            column = column.cast(pa.date32())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _csv_frame_table(frame: pd.DataFrame, schema: pa.Schema | None) -> pa.Table:
    """An output frame as CSV and COPY write it: an output's money as two-place decimals (`_money_decimal`),
    which callq's own parser reads back, where a float from 1e10 would take exponent notation."""
    table = _frame_table(frame, schema)
    for name in [name for name in MONEY_OUTPUT_COLUMNS if schema is not None and name in schema.names]:
        table = table.set_column(table.schema.get_field_index(name), name, _money_decimal(table.column(name)))
    return table


def _write_parquet_frame(frame: pd.DataFrame, path: str) -> None:
    # pandas' own writer keeps the exact dtypes (string, Int64, ...) in the file's metadata; the
    # warning it raises comes from pyarrow reading tz-aware columns through `.values` and is harmless.
    # Calendar dates (`list_date`) are stored as Parquet DATE, as the contract types them, not as midnights.
    dates = {name: frame[name].dt.date for name in frame.columns if _is_date_column(frame[name])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        frame.assign(**dates).to_parquet(path, index=False)


def _sql_value(value: object, postgres: bool) -> object:
    """A `replace_where` value in the form the column was written in."""
    if isinstance(value, str | dt.date | pd.Timestamp | np.datetime64) and not isinstance(value, bool):
        try:
            stamp = pd.Timestamp(value)
        except ValueError:
            return value
        if stamp.tzinfo is None and stamp == stamp.normalize():
            return stamp.date() if postgres else stamp.strftime("%Y-%m-%d")
        if stamp.tzinfo is not None:
            return stamp.tz_convert("UTC").to_pydatetime() if postgres else _iso_text(stamp)
    return value


def _sql_frame(frame: pd.DataFrame, postgres: bool) -> tuple[pd.DataFrame, dict]:
    """The frame as stored: dates as DATE (or ISO text), timestamps as TIMESTAMPTZ (or ISO text)."""
    out, types = {}, {}
    for name, series in frame.items():
        if _is_date_column(series):
            if postgres:
                series, types[name] = series.dt.date.astype(object).where(series.notna(), None), sa.Date()
            else:
                series, types[name] = series.dt.strftime("%Y-%m-%d"), sa.Text()
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            if postgres:
                types[name] = sa.DateTime(timezone=True)
            else:
                text = pd.Series(_iso_utc(_arrow_array(series)).to_pandas(), index=series.index)
                series, types[name] = text, sa.Text()
        elif isinstance(series.dtype, pd.StringDtype) or series.dtype == object:
            types[name] = sa.Text()
        out[name] = series
    return pd.DataFrame(out, index=frame.index), types


@contextmanager
def _sql_transaction(url: str) -> Iterator[tuple[sa.Connection, sa.Engine]]:
    engine = _engine(url)
    if engine.dialect.name == "sqlite":
        # Python's sqlite3 commits a CREATE TABLE on its own, outside the transaction: it begins
        # nothing itself here and SQLAlchemy says BEGIN, so a failed write leaves no new empty table.
        sa.event.listen(engine, "connect", lambda dbapi, _: setattr(dbapi, "isolation_level", None))
        sa.event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    try:
        with engine.begin() as connection:
            yield connection, engine
    finally:
        engine.dispose()


def _same_database(url: str) -> str:
    """One key per database, however its URL is written (a SQLite file by relative or absolute path)."""
    parsed = sa.engine.make_url(_normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return f"sqlite:{Path(parsed.database).resolve()}"
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True)
class FrameWrite:
    """One output frame to write: where, which rows of a table it replaces, and its output's schema
    (`features.contract.CALL_LIST_SCHEMA`, ...; None for frames without one, such as features)."""

    frame: pd.DataFrame
    target: str | Path
    replace_where: Mapping[str, object] | None = None
    schema: pa.Schema | None = None


def _write_frame_file(write: FrameWrite, destination: Path, path: str) -> None:
    """Write the frame to `path` (a temporary file) in the format `destination`'s suffix names."""
    if destination.suffix == ".parquet" and write.schema is None:
        _write_parquet_frame(write.frame, path)
    elif destination.suffix == ".parquet":
        pq.write_table(_frame_table(write.frame, write.schema), path)
    else:
        _write_csv_table(_csv_frame_table(write.frame, write.schema), path)


def _output_sql_type(kind: pa.DataType, postgres: bool) -> str:
    """The SQL type of an output column of Arrow type `kind`, as pandas gives a full frame's column: SQLite
    keeps dates and timestamps as ISO-8601 text (as `_sql_frame` writes them), PostgreSQL as DATE and
    TIMESTAMPTZ."""
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP WITH TIME ZONE" if postgres else "TEXT"
    if pa.types.is_date(kind):
        return "DATE" if postgres else "TEXT"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE PRECISION" if postgres else "FLOAT"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    return "TEXT"


def _output_table_sql(engine: sa.Engine, table: str, schema: pa.Schema) -> str:
    """CREATE TABLE for an output (`features.contract.SCORES_SCHEMA`, ...): its columns in its order and types."""
    postgres = _is_postgres(engine)
    columns = ", ".join(f"{_quote(engine, f.name)} {_output_sql_type(f.type, postgres)}" for f in schema)
    return f"CREATE TABLE {_quote(engine, table)} ({columns})"


def _write_frame_sql(connection: sa.Connection, engine: sa.Engine, write: FrameWrite, table: str) -> None:
    """Replace `write.replace_where`'s rows of `table` (created when absent) with the frame's, in the caller's
    transaction."""
    frame = write.frame
    postgres = _is_postgres(engine)
    exists = sa.inspect(connection).has_table(table)
    if write.replace_where and exists:
        if postgres:
            # A DELETE sees only committed rows: beside another run replacing the same date, both lists would
            # stay (every rank twice). One replacing run at a time; readers are not blocked.
            connection.execute(sa.text(f"LOCK TABLE {_quote(engine, table)} IN SHARE ROW EXCLUSIVE MODE"))
        clauses, params = [], {}
        for i, (column, value) in enumerate(write.replace_where.items()):
            values = list(value) if isinstance(value, list | tuple) else [value]  # several: any of them
            names = [f"p{i}_{j}" for j in range(len(values))]
            clauses.append(f"{_quote(engine, column)} IN ({', '.join(f':{name}' for name in names)})")
            params.update({name: _sql_value(one, postgres) for name, one in zip(names, values, strict=True)})
        condition = " AND ".join(clauses)
        connection.execute(sa.text(f"DELETE FROM {_quote(engine, table)} WHERE {condition}"), params)
    if not exists and write.schema is not None:
        # An output's table takes its columns' types from the output, not from the frame's dtypes: an empty
        # list's untyped columns made every column TEXT, and the next run's ranks then sorted as text.
        connection.exec_driver_sql(_output_table_sql(engine, table, write.schema))
        exists = True
    if not postgres:
        stored, types = _sql_frame(frame, postgres)
        stored.to_sql(table, connection, if_exists="append", index=False, dtype=types, chunksize=_INSERT_CHUNK_ROWS)
        return
    # PostgreSQL: a frame of no output gets the table pandas would create (when absent); the rows go through
    # COPY (a million scores: 4 s, against 18 s as INSERTs).
    if not exists:
        stored, types = _sql_frame(frame, postgres)
        stored.head(0).to_sql(table, connection, index=False, dtype=types)
    _copy_in(connection, table, _csv_frame_table(frame, write.schema))


def write_frame(
    frame: pd.DataFrame,
    target: str | Path,
    *,
    replace_where: Mapping[str, object] | None = None,
    schema: pa.Schema | None = None,
    protect: str | Path | None = None,
) -> None:
    """Write an output frame to `.csv`/`.parquet` (atomically) or `URL#table` (one transaction).

    For SQL, `replace_where={"list_date": d}` (or `{"as_of": t}`, or a tuple of values: any of them) first
    deletes the table's rows matching it, so re-running a date replaces that date's rows; the table is
    created when absent (with the output's column types where `schema` is given, an empty frame too). Files are
    always replaced. With the output's `schema`, a file holds its types
    whatever the rows, and its money is written as plain decimals in CSV and COPY. `protect` names the export
    being read: its files and tables are refused (`check_frame_targets`).
    """
    write_frames([FrameWrite(frame, target, replace_where, schema)], protect=protect)


def _database_identity(url: str) -> str:
    """The database a URL reaches, whoever connects and however (user, password, driver, options aside):
    an output's table there may be one the export is read from."""
    parsed = sa.engine.make_url(_normalise_url(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _same_database(url)
    port = parsed.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433}.get(backend)
    return f"{backend}://{(parsed.host or '').lower()}:{port}/{parsed.database or ''}"


def _export_places(source: str | Path) -> dict[object, str]:
    """The files (real paths) and tables ((database, table)) an export is read from, each with what it is
    for messages: a directory's `<table>.csv` and `<table>.parquet` (either is read, the Parquet first) and
    `export.json`; a database's tables and `export_meta` (and a SQLite database's own file)."""
    if not is_sql_url(source):
        directory = Path(source)
        places: dict[object, str] = {
            _target_key(directory / f"{name}.{suffix}"): f"{name} table"
            for name in TABLES
            for suffix in ("csv", "parquet")
        }
        places[_target_key(directory / META_FILE)] = META_FILE
        return places
    try:
        database = _database_identity(str(source))
    except (sa.exc.ArgumentError, ValueError):  # not a URL the load can read: it refuses it itself
        return {}
    places = {_table_key(database, name): f"{name} table" for name in (*TABLES, META_TABLE)}
    # A SQLite file ("sqlite:/path"), not a database in memory ("sqlite://").
    if database.startswith("sqlite:") and not database.startswith("sqlite://"):
        places[Path(database.removeprefix("sqlite:"))] = "database file"
    return places


def _export_place(destination: tuple[str, str] | Path, places: Mapping[object, str]) -> str | None:
    """What of the export `destination` would replace (`_export_places`), None for nothing."""
    if isinstance(destination, Path):
        return places.get(_target_key(destination))
    url, table = destination
    database = _database_identity(url)
    if not database.startswith("sqlite:"):
        return places.get(_table_key(database, table))
    # A SQLite database file where a directory export keeps a table's file (its own tables are checked by name).
    in_file = places.get(Path(database.removeprefix("sqlite:")))
    return places.get(_table_key(database, table)) or (in_file if in_file != "database file" else None)


def check_frame_targets(
    targets: Sequence[str | Path], *, protect: str | Path | None = None
) -> list[tuple[str, str] | Path]:
    """Each target as `write_frames` reads it, (url, table) or a file path; ValueError or OSError for one
    it cannot write (no URL#table, another suffix than .csv/.parquet, a directory, a file where its folder
    would be, a folder it cannot write, a link into a missing folder), before any work.

    `protect` is the export being read (directory or URL): a target that is one of its files or tables
    (`_export_places`), however it is spelled or linked to, is refused: the output would replace the input.
    """
    destinations = [_frame_target(target) for target in targets]
    places = _export_places(protect) if protect is not None else {}
    seen: dict[object, str | Path] = {}
    for target, destination in zip(targets, destinations, strict=True):
        if isinstance(destination, Path):
            if destination.is_dir():
                raise IsADirectoryError(f"cannot write the frame file {destination}: it is a directory")
            _check_folder(_landing(destination), destination)
        if (what := _export_place(destination, places)) is not None:
            raise ValueError(
                f"{shown_location(str(target))} would replace the export's own {what} "
                f"({shown_location(str(protect))}): an output must not overwrite the export it reads"
            )
        key = _target_key(destination)
        if key in seen:  # one would silently replace the other
            first, second = shown_location(str(seen[key])), shown_location(str(target))
            raise ValueError(f"two outputs name the same target ({first} and {second}): give each its own")
        seen[key] = target
    return destinations


def _target_key(destination: tuple[str, str] | Path) -> object:
    """One key per place a frame lands: a file however its path is written, a table of one database however
    it is reached (`_database_identity`: another user, password or driver is the same table; SQLite's table
    names ignore case)."""
    if isinstance(destination, Path):
        return Path(os.path.realpath(destination))
    url, table = destination
    return _table_key(_database_identity(url), table)


def _table_key(database: str, table: str) -> tuple[str, str]:
    """A table of one database (`_database_identity`): SQLite's table names ignore case."""
    return (database, table.lower() if database.startswith("sqlite:") else table)


def write_frames(writes: Sequence[FrameWrite], *, protect: str | Path | None = None) -> None:
    """Write several output frames all or nothing (`callq rank`'s call list and special-handling list).

    Every target is checked before anything is written (with `protect`, the export being read: see
    `check_frame_targets`); files go to temporary files, renamed over their targets (a symlink's target,
    the link kept) only once every frame is written; the tables of one database are written in one
    transaction. Only a failure while committing to a second database, or renaming after the commits,
    can leave part written. A file's missing folders are made, and taken away again where the write fails.
    """
    destinations = check_frame_targets([write.target for write in writes], protect=protect)
    staged: list[tuple[str, Path]] = []
    made: list[Path] = []
    written = False
    try:
        with ExitStack() as transactions:
            connections: dict[str, tuple[sa.Connection, sa.Engine]] = {}
            for write, destination in zip(writes, destinations, strict=True):
                if isinstance(destination, Path):
                    landing = _landing(destination)
                    made += _make_folder(landing.parent)
                    temp = _staged_file(
                        landing, lambda path, w=write, d=destination: _write_frame_file(w, d, path), destination
                    )
                    staged.append((temp, landing))
                    continue
                url, table = destination
                database = _same_database(url)
                if database not in connections:
                    connections[database] = transactions.enter_context(_sql_transaction(url))
                _write_frame_sql(*connections[database], write, table)
        for temp, landing in staged:
            os.replace(temp, landing)
        written = True
    finally:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
        if not written:
            _remove_folders(made)
