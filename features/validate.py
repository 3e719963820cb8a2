"""Every rule of contract section 1, checked on raw tables as read, as a list of `Violation`s.

The checks are boolean masks over whole columns (exports hold tens of millions of rows); only the
rows that break a rule become `Violation` objects. The same pass types the columns, so the loader
(`features.io`) reuses it instead of parsing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import (
    CONTACT_CHANNELS,
    CONTRACT_VERSION,
    DIRECTIONS,
    ENUM_COLUMNS,
    EVENT_TIME,
    MAX_DUE_DAYS_AHEAD,
    OUTCOMES_BY_CHANNEL,
    PAYMENT_STATUSES,
    ROW_KEY,
    SCHEMAS,
    TABLES,
    VOICE_CHANNELS,
    Column,
    ColumnType,
    Violation,
    is_valid_timezone,
)

META_TABLE = "export_meta"
WHOLE = "-"  # the `row` of a violation that concerns a whole table, column or the meta record

# ASCII digits only ([0-9], not \d, which matches any script's digits: "２０２６-01-05" is not a date).
_DATE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# RFC 3339 allows a lower-case t and z.
_TIME_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?"
_OFFSET_RE = r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)"
_MONEY_RE = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# A non-zero digit in the third decimal place or beyond: "12.300" is fine, "12.305" is not.
_TOO_PRECISE_RE = r"[^.]*\.[0-9]{2}[0-9]*[1-9][0-9]*"
# A zero fraction is allowed: the float 184.0 a Parquet file holds is the integer 184, and so is its text
# from a SQLite REAL or a NUMERIC column ("184.0", "184.00").
_INT_RE = r"[+-]?[0-9]+(?:\.0*)?"
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}
# 1 and 0 with a zero fraction, as a float flag of a Parquet file (1.0) is read, and as its text from a SQLite
# REAL or a NUMERIC column ("1.0", "0.00") is.
_BOOL_NUMBER_RE = r"[01]\.0*"
# A date kept as a timestamp without an offset (a Parquet timestamp or SQL TIMESTAMP column, or its text as
# SQLite or a CSV writer holds it) at midnight carries exactly that date; any other time of day does not.
_MIDNIGHT_RE = r"(" + _DATE_RE + r")[Tt ]00:00(?::00(?:[.,]0{1,9})?)?"

RULE_MISSING_TABLE = "missing table"
RULE_MISSING_COLUMN = "missing column"
RULE_UNREADABLE_ROW = "row does not split into the header's columns"
RULE_NULL = "must not be null"
RULE_EMPTY_ID = "empty identifier"
RULE_EMPTY = "empty text"
RULE_NOT_UNIQUE = "not unique"
RULE_NOT_IN_ACCOUNTS = "not in accounts"
RULE_NOT_IN_CONTACTS = "not in contacts"
RULE_DATE = "not a date (YYYY-MM-DD)"
RULE_NAIVE_TIMESTAMP = "timestamp without UTC offset"
RULE_TIMESTAMP = "not an ISO-8601 timestamp"
RULE_NUMBER = "not a decimal number"
RULE_DECIMALS = "more than 2 decimals"
# Money is computed in exact cents (int64, and float64 where a model reads it): 10^13 keeps every cent exact.
MAX_MONEY = 1e13
RULE_TOO_LARGE = "10^13 or more (its cents would not be exact)"
RULE_BOOL = "not a boolean (true/false/1/0)"
RULE_INT = "not an integer"
RULE_TIMEZONE = "not an IANA time zone"
RULE_POSITIVE = "must be > 0"
RULE_NON_NEGATIVE = "must be >= 0"
RULE_AFTER_AS_OF = "after as_of"
RULE_NOT_BEFORE_AS_OF = "not before as_of"
RULE_DUE_TOO_LATE = f"more than {MAX_DUE_DAYS_AHEAD} days after as_of"
LATEST_ZONE_AHEAD = pd.Timedelta(hours=14)
RULE_PROMISE_BEFORE_CREATED = "before the date of created_at"
RULE_UNKNOWN_OUTCOME = "unknown outcome"
RULE_OUTCOME_FOR_CHANNEL = "outcome not valid for the channel"
RULE_DURATION_CHANNEL = "duration only for calls and visits"
# Rejection reasons of the lenient loader that are consequences, not contract breaks of the row.
REASON_ACCOUNT_REJECTED = "account_id: account rejected"
REASON_CONTACT_REJECTED = "contact_id: contact rejected"

# Required text columns whose values a row rule judges (a blank one is not among them): no blank check.
_VALUE_CHECKED_TEXT = frozenset({"timezone", *(name for columns in ENUM_COLUMNS.values() for name in columns)})
_ALL_OUTCOMES = tuple(dict.fromkeys(o for outcomes in OUTCOMES_BY_CHANNEL.values() for o in outcomes))
_CHANNEL_OUTCOME_PAIRS = tuple(f"{c}|{o}" for c, outcomes in OUTCOMES_BY_CHANNEL.items() for o in outcomes)


@dataclass
class _Problem:
    """One rule broken by the rows in `mask` of one column."""

    column: str
    rule: str
    mask: np.ndarray
    reported: bool = True  # False for cascaded rejections, which are not violations themselves


@dataclass
class TableCheck:
    """One table after checking: typed columns, rows that broke a rule, and why."""

    name: str
    raw: pd.DataFrame | None
    typed: pd.DataFrame | None  # None when the table or one of its columns is missing
    rejected: np.ndarray  # boolean per raw row: broke at least one rule (or its account was rejected)
    reasons: pd.Series  # one `; `-joined reason string per rejected row, indexed by row position

    @property
    def read(self) -> int:
        return 0 if self.raw is None else len(self.raw)

    @property
    def structural(self) -> bool:
        """True when the table or a required column is missing: rows cannot be judged one by one."""
        return self.typed is None


@dataclass
class ExportCheck:
    """The result of checking every table: violations (possibly capped per rule), totals, tables."""

    as_of: pd.Timestamp | None
    violations: list[Violation] = field(default_factory=list)
    # (table, column, rule) -> rows that broke it, uncapped.
    totals: dict[tuple[str, str, str], int] = field(default_factory=dict)
    tables: dict[str, TableCheck] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.totals

    def total(self, table: str | None = None) -> int:
        return sum(n for (name, _, _), n in self.totals.items() if table is None or name == table)

    def accepted(self, table: str, drop: Collection[str] = ()) -> pd.DataFrame:
        """Table `table` as an `Export` holds it: the rows no rule rejected, typed as checked (a blank team
        is no team), enumerated columns as categoricals, in the contract's dtypes; `drop` left out."""
        checked = self.tables[table]
        # Most loads reject nothing: keep the typed columns as they are rather than copy them.
        kept = checked.typed.drop(columns=list(drop))
        if checked.rejected.any():
            kept = kept.loc[~checked.rejected].reset_index(drop=True)
        enums = {
            column: as_enum(kept[column], values)
            for column, values in ENUM_COLUMNS.get(table, {}).items()
            if column in kept.columns
        }
        dtypes = {column: dtype for column, dtype in contract_dtypes(table).items() if column in kept.columns}
        return kept.assign(**enums).astype(dtypes)


# ---------------------------------------------------------------------------------------
# Meta


def check_meta(
    meta: Mapping[str, object] | None, *, table: str = META_TABLE
) -> tuple[pd.Timestamp | None, list[Violation]]:
    """Check `export.json` / `export_meta`: present, contract_version "1", as_of with an offset."""
    if meta is None:
        return None, [Violation(table, WHOLE, WHOLE, RULE_MISSING_TABLE)]
    violations: list[Violation] = []
    version = meta.get("contract_version")
    if version is None:
        violations.append(Violation(table, WHOLE, "contract_version", RULE_MISSING_COLUMN))
    elif str(version) != CONTRACT_VERSION:
        violations.append(Violation(table, WHOLE, "contract_version", f"must be {CONTRACT_VERSION!r}", str(version)))
    if meta.get("as_of") is None:
        violations.append(Violation(table, WHOLE, "as_of", RULE_MISSING_COLUMN))
        return None, violations
    value = meta["as_of"]
    parsed = _parse_timestamp(pd.Series([value], dtype=object))
    broken = [rule for rule, mask in parsed.issues if mask.any()]
    if not broken and pd.isna(parsed.values.iloc[0]):  # e.g. NaN, which JSON parsers accept
        broken = [RULE_TIMESTAMP]
    if broken:
        violations.append(Violation(table, WHOLE, "as_of", broken[0], str(value)))
        return None, violations
    return pd.Timestamp(parsed.values.iloc[0]), violations


# ---------------------------------------------------------------------------------------
# Column parsing: typed values plus a mask per type rule broken


@dataclass
class _Parsed:
    values: pd.Series  # typed; null where the raw value was null or broke a type rule
    issues: list[tuple[str, np.ndarray]]
    # The values that are null, where that is not just the raw nulls: blank text in a typed column.
    null: np.ndarray | None = None


def _bool_array(mask: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(mask, pd.Series):
        if mask.dtype == bool:
            return mask.to_numpy()
        return mask.fillna(False).to_numpy(dtype=bool)
    return np.asarray(mask, dtype=bool)


def _is_text(raw: pd.Series) -> bool:
    return raw.dtype == object or isinstance(raw.dtype, pd.StringDtype)


def _as_text(raw: pd.Series) -> pd.Series:
    """The column as pandas `string` (pd.NA for null), whatever it was read as."""
    if isinstance(raw.dtype, pd.StringDtype) and raw.dtype.na_value is pd.NA:
        return raw
    return raw.astype("string")


def _match(text: pd.Series, pattern: str) -> np.ndarray:
    return _bool_array(text.str.fullmatch(pattern))


def _trim_failed(text: pd.Series, shaped: np.ndarray, pattern: str) -> tuple[pd.Series, np.ndarray]:
    """`text` with each value that is not `shaped` trimmed of surrounding whitespace (null where nothing is
    left, as an empty CSV field is), and those values matched against `pattern`: one rule for the typed
    values of every source.

    A CSV writer may pad numbers, a SQL text column may hold " 12.50" or "": looking again only at the
    values the fast match refused leaves the common case to the one vectorised match it already had.
    """
    retry = ~shaped & _bool_array(text.notna())
    if not retry.any():
        return text, shaped
    rows = np.flatnonzero(retry)
    before = text.iloc[rows]
    after = before.str.strip()
    after = after.mask(_bool_array(after == ""))
    shaped = shaped.copy()
    shaped[rows] = _bool_array(after.str.fullmatch(pattern))
    if (_bool_array(after.isna()) | _bool_array(after != before)).any():
        text = text.copy()
        text.iloc[rows] = after.array
    return text, shaped


def _parse_str(raw: pd.Series) -> _Parsed:
    if isinstance(raw.dtype, pd.CategoricalDtype):  # an enumerated column, read dictionary-encoded
        return _Parsed(raw, [])
    return _Parsed(_as_text(raw), [])


def _arrow_cast(text: pd.Series, to: pa.DataType) -> pd.Series | None:
    """Text (null where it is not to be parsed) cast by Arrow, or None when Arrow refuses any value.

    Arrow's parsers run on the text buffers: for tens of millions of CSV values they are several
    times faster than pandas', which goes through one Python object a value. Callers fall back to
    pandas on None, so what is accepted never depends on Arrow.
    """
    try:
        cast = pc.cast(pa.array(text.array), to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # Integers stay exact (nullable), not floats that round above 2^53.
    return pd.Series(cast.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), index=text.index)


# The dates and times callq computes with: pandas' nanosecond range. A value outside it (a year 12000
# or 44 BC in a Parquet file) is refused as unreadable, whatever the source.
EARLIEST, LATEST = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")


def _out_of_range(values: pd.Series) -> np.ndarray:
    earliest, latest = EARLIEST, LATEST
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        earliest, latest = earliest.tz_localize("UTC"), latest.tz_localize("UTC")
    return _bool_array((values < earliest) | (values > latest))


def _parse_date(raw: pd.Series) -> _Parsed:
    null = _bool_array(raw.isna())
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        values = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[s]")
        return _Parsed(values, [(RULE_DATE, ~null)])
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        # Midnight is judged before the cast to seconds, which would drop a fraction of a second.
        bad = (_out_of_range(raw) | _bool_array(raw != raw.dt.normalize())) & ~null
        values = raw.astype("datetime64[s]")
        return _Parsed(values.mask(bad), [(RULE_DATE, bad)])
    text = _as_text(raw)
    plain = _match(text, _DATE_RE)
    text, shaped = _trim_failed(text, plain, _DATE_RE + "|" + _MIDNIGHT_RE)
    null = _bool_array(text.isna())
    if (shaped & ~plain).any():
        # The rare values that are padded, or a naive timestamp at midnight: their date (a Parquet timestamp's).
        rows = np.flatnonzero(shaped & ~plain)
        repaired = text.iloc[rows]
        text = text.copy()
        text.iloc[rows] = repaired.str.extract(_MIDNIGHT_RE, expand=False).fillna(repaired).array
    parsed = pd.to_datetime(text.where(shaped), format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")
    bad = ~null & (_bool_array(parsed.isna()) | _out_of_range(parsed))
    return _Parsed(parsed.mask(bad), [(RULE_DATE, bad)], null)


def _parse_timestamp(raw: pd.Series) -> _Parsed:
    null = _bool_array(raw.isna())
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        values = raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        bad = _out_of_range(values) & ~null
        return _Parsed(values.mask(bad), [(RULE_TIMESTAMP, bad)])
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        values = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
        return _Parsed(values, [(RULE_NAIVE_TIMESTAMP, ~null)])
    if raw.dtype == object:
        # Python datetimes (from a database driver) print as ISO-8601, with an offset when aware.
        raw = raw.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v, na_action="ignore")
    text = _as_text(raw)
    text, with_offset = _trim_failed(text, _match(text, _TIME_RE + _OFFSET_RE), _TIME_RE + _OFFSET_RE)
    null = _bool_array(text.isna())
    naive = ~with_offset & _match(text, _TIME_RE + r"|" + _DATE_RE)
    parsed = _arrow_cast(text.where(with_offset), pa.timestamp("us", tz="UTC"))
    if parsed is None:
        # Arrow refuses ISO-8601's decimal comma and RFC 3339's lower-case t and z, which the shape above allows.
        shaped = text.where(with_offset).str.replace(",", ".", regex=False).str.upper()
        parsed = pd.to_datetime(shaped, utc=True, format="ISO8601", errors="coerce")
    parsed = parsed.astype("datetime64[us, UTC]")
    bad = ~null & ~naive & (_bool_array(parsed.isna()) | _out_of_range(parsed))
    return _Parsed(parsed.mask(bad), [(RULE_NAIVE_TIMESTAMP, naive), (RULE_TIMESTAMP, bad)], null)


def _parse_money(raw: pd.Series) -> _Parsed:
    null = _bool_array(raw.isna())
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype("float64")
        numbers = values.to_numpy()
        with np.errstate(invalid="ignore", over="ignore"):
            cents = numbers * 100.0
            not_finite = ~null & ~np.isfinite(numbers)
            # A float is a decimal's nearest double: 1234567890.12 * 100 is off a whole cent by ~1e-5, so the
            # tolerance grows with the value (a few of its last bits), as its 15-digit text would read it.
            too_precise = ~null & ~not_finite & ~np.isclose(cents, np.round(cents), rtol=2.0**-50, atol=1e-6)
            too_large = ~null & ~not_finite & (np.abs(numbers) >= MAX_MONEY)
            if raw.dtype in (np.float32, pd.Float32Dtype()):
                # A 32-bit float (Parquet float32, PostgreSQL REAL) holds 12345.67 as 12345.669921875: it is the
                # whole cents whose nearest float32 it is, where those are one only (below 2^17 its values are
                # under a cent apart; above, only a value that is itself whole cents is).
                single = raw.to_numpy(dtype="float32", na_value=np.nan)
                whole_cents = np.round(cents)
                nearest = whole_cents / 100.0
                held = nearest.astype(np.float32) == single
                unique = (np.spacing(np.abs(single)) <= np.float32(0.01)) | (cents == whole_cents)
                too_precise = ~null & ~not_finite & ~(held & unique)
                values = pd.Series(nearest, index=raw.index)
        return _Parsed(
            values.mask(not_finite | too_precise | too_large),
            [(RULE_NUMBER, not_finite), (RULE_DECIMALS, too_precise), (RULE_TOO_LARGE, too_large)],
        )
    if not _is_text(raw):
        values = pd.Series(np.nan, index=raw.index, dtype="float64")
        return _Parsed(values, [(RULE_NUMBER, ~null)])
    if raw.dtype == object:
        # Parquet decimals arrive as Python Decimals, which print a zero of scale 7 or more as 0E-7.
        raw = raw.map(lambda v: format(v, "f") if isinstance(v, Decimal) else v, na_action="ignore")
    text = _as_text(raw)
    text, shaped = _trim_failed(text, _match(text, _MONEY_RE), _MONEY_RE)
    null = _bool_array(text.isna())
    numbers = _arrow_cast(text.where(shaped), pa.float64())
    if numbers is None:
        numbers = pd.to_numeric(text.where(shaped), errors="coerce").astype("float64")
    bad = ~null & (~shaped | _bool_array(numbers.isna()))
    too_precise = ~bad & _match(text, _TOO_PRECISE_RE)
    too_large = ~bad & _bool_array(numbers.abs() >= MAX_MONEY)
    return _Parsed(
        numbers.mask(too_precise | too_large),
        [(RULE_NUMBER, bad), (RULE_DECIMALS, too_precise), (RULE_TOO_LARGE, too_large)],
        null,
    )


def _parse_bool(raw: pd.Series) -> _Parsed:
    null = _bool_array(raw.isna())
    if pd.api.types.is_bool_dtype(raw.dtype):
        return _Parsed(raw.astype("boolean"), [])
    if pd.api.types.is_numeric_dtype(raw.dtype):
        numbers = raw.astype("float64")
        bad = ~null & ~_bool_array(numbers.isin([0.0, 1.0]))
        return _Parsed((numbers == 1.0).astype("boolean").mask(null | bad), [(RULE_BOOL, bad)])
    # Case-insensitive on purpose: many tools (pandas among them) write True/False.
    lowered = _as_text(raw).str.strip().str.lower()
    null = null | _bool_array(lowered == "")  # blank, as an empty CSV field is null
    values = lowered.map(_BOOL_TEXT, na_action="ignore").astype("boolean")
    bad = ~null & _bool_array(values.isna())
    if bad.any():
        rows = np.flatnonzero(bad)
        number = _match(lowered.iloc[rows], _BOOL_NUMBER_RE)
        if number.any():
            values.iloc[rows[number]] = lowered.iloc[rows[number]].str.startswith("1").to_numpy(dtype=bool)
            bad[rows[number]] = False
    return _Parsed(values.mask(null), [(RULE_BOOL, bad)], null)


def _parse_int(raw: pd.Series) -> _Parsed:
    null = _bool_array(raw.isna())
    if pd.api.types.is_integer_dtype(raw.dtype):
        return _Parsed(raw.astype("Int64"), [])
    if pd.api.types.is_float_dtype(raw.dtype):
        numbers = raw.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            # Beyond int64 (1e20) is no integer callq keeps, as the same digits as text are not.
            whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & (np.abs(numbers) < 2.0**63)
            bad = ~null & ~(whole | (numbers == -(2.0**63)))
        values = pd.Series(np.where(bad | null, np.nan, numbers), index=raw.index).astype("Int64")
        return _Parsed(values, [(RULE_INT, bad)])
    if not _is_text(raw):
        return _Parsed(pd.Series(pd.NA, index=raw.index, dtype="Int64"), [(RULE_INT, ~null)])
    text = _as_text(raw)
    text, shaped = _trim_failed(text, _match(text, _INT_RE), _INT_RE)
    null = _bool_array(text.isna())
    digits = text.where(shaped).str.removeprefix("+")
    numbers = _arrow_cast(digits, pa.int64())
    if numbers is None:  # Arrow refused a value: one with a zero fraction, or beyond int64 (not one callq keeps)
        whole = digits.str.partition(".")[0].where(shaped)
        numbers = whole.map(lambda v: int(v) if isinstance(v, str) and -(2**63) <= int(v) < 2**63 else None)
    bad = ~null & _bool_array(numbers.isna())
    return _Parsed(numbers.astype("Int64"), [(RULE_INT, bad)], null)


_PARSERS = {
    ColumnType.STR: _parse_str,
    ColumnType.DATE: _parse_date,
    ColumnType.TIMESTAMP: _parse_timestamp,
    ColumnType.MONEY: _parse_money,
    ColumnType.BOOL: _parse_bool,
    ColumnType.INT: _parse_int,
}

_FINAL_DTYPE = {
    ColumnType.STR: "string",
    ColumnType.DATE: "datetime64[s]",
    ColumnType.TIMESTAMP: "datetime64[us, UTC]",
    ColumnType.MONEY: "float64",
    ColumnType.BOOL: "bool",
    ColumnType.INT: "Int64",
}


def contract_dtypes(table: str) -> dict[str, str | pd.CategoricalDtype]:
    """The pandas dtype of each column of `table` in a typed `Export` (enumerated columns: categories)."""
    enums = ENUM_COLUMNS.get(table, {})
    return {
        column.name: pd.CategoricalDtype(enums[column.name]) if column.name in enums else _FINAL_DTYPE[column.type]
        for column in SCHEMAS[table]
    }


def as_enum(values: pd.Series, categories: Sequence[str]) -> pd.Series:
    """Text to a categorical of `categories` through Arrow (pandas' own cast goes through Python
    strings: seconds and gigabytes on tens of millions of rows); a value outside them becomes null."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.set_categories(list(categories))
    arrow = pa.array(values.array) if isinstance(values.dtype, pd.StringDtype) else pa.array(values, from_pandas=True)
    codes = pc.index_in(arrow, value_set=pa.array(list(categories), type=arrow.type)).fill_null(-1)
    dtype = pd.CategoricalDtype(list(categories))
    code_type = np.int8 if len(categories) < 128 else np.int32
    return pd.Series(
        pd.Categorical.from_codes(np.asarray(codes).astype(code_type), dtype=dtype),
        index=values.index,
        name=values.name,
    )


# ---------------------------------------------------------------------------------------
# Table checks


def _arrow_text(
    values: pd.Series | Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray,
) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, pd.Series):
        return pa.array(_as_text(values).array)
    if isinstance(values, pd.api.extensions.ExtensionArray):
        return pa.array(values.astype("string"))
    return pa.array(list(values), type=pa.string())


# Above this many allowed values, membership is first counted by a DuckDB anti-join (parallel,
# ~4x faster than Arrow's hash set on 26M ids); the per-row mask is only built when something is
# missing. Small value sets (channels, outcomes) stay on Arrow's `is_in`, which is already fast.
_LARGE_VALUE_SET = 10_000


def _duckdb_row(query: str, **tables: pa.Table) -> tuple:
    """The one result row of `query` over Arrow `tables` (registered under their keyword names)."""
    with duckdb.connect() as db:
        for name, table in tables.items():
            db.register(name, table)
        (row,) = db.sql(query).fetchall()
        return row


def _count_missing(haystack: pa.Array | pa.ChunkedArray, needles: pa.Array) -> int:
    """How many non-null values of `haystack` are not among `needles`."""
    (missing,) = _duckdb_row(
        "SELECT count(*) FROM haystack ANTI JOIN needles ON haystack.value = needles.value"
        " WHERE haystack.value IS NOT NULL",
        haystack=pa.table({"value": haystack}),
        needles=pa.table({"value": needles}),
    )
    return int(missing)


def _has_repeats(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether any non-null value may occur twice: DuckDB hashes the values, numpy sorts the hashes.

    On a year of contacts for a million accounts (53M ids) this takes 1 s and 0.8 GiB, against
    6.5 s and 2.7 GiB for DuckDB's `count(DISTINCT hash(value))` (a hash table of the hashes).
    A hash collision (~1e-4 at that size) only sends the caller to its exact check.
    """
    with duckdb.connect() as db:
        db.register("ids", pa.table({"value": values}))
        hashes = db.sql("SELECT hash(value) AS h FROM ids WHERE value IS NOT NULL").fetchnumpy()["h"]
    hashes = np.asarray(hashes)
    hashes.sort()
    return bool(np.any(hashes[1:] == hashes[:-1]))


def _in(
    values: pd.Series | pa.ChunkedArray, allowed: Sequence[str] | np.ndarray | pd.api.extensions.ExtensionArray
) -> np.ndarray:
    """Per row: non-null and among `allowed` (Arrow's hash set; pandas' `isin` on Arrow strings loops in Python)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        # Judge each category once, then read the verdict through the codes (-1, null, reads False).
        per_category = np.isin(values.cat.categories.to_numpy(dtype=object), np.asarray(allowed, dtype=object))
        return np.append(per_category, False)[values.cat.codes.to_numpy()]
    haystack = _arrow_text(values)
    needles = _arrow_text(allowed)
    if isinstance(needles, pa.ChunkedArray):
        needles = needles.combine_chunks()
    if len(needles) > _LARGE_VALUE_SET and _count_missing(haystack, needles) == 0:
        valid = pc.is_valid(haystack)
        return valid.to_numpy(zero_copy_only=False).astype(bool, copy=False)
    found = pc.is_in(haystack, value_set=needles.cast(haystack.type), skip_nulls=True)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _blank(values: pd.Series) -> np.ndarray:
    """Empty or whitespace-only strings (Arrow kernels: a Python-level strip is slow on 40M rows)."""
    text = _arrow_text(values)
    blank = pc.or_(pc.equal(pc.utf8_length(text), 0), pc.utf8_is_space(text))
    return pc.fill_null(blank, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _duplicated(values: pd.Series) -> np.ndarray:
    """Every non-null row whose value occurs more than once (all copies: none can be trusted)."""
    if _is_text(values) and not _has_repeats(_arrow_text(values)):
        return np.zeros(len(values), dtype=bool)
    return _bool_array(values.duplicated(keep=False)) & _bool_array(values.notna())


def _valid_ids(typed: pd.DataFrame, column: str, problems: list[_Problem]) -> pd.Series:
    """The non-null identifiers of `column` that broke no rule of their own."""
    bad = np.zeros(len(typed), dtype=bool)
    for problem in problems:
        if problem.column == column:
            bad |= problem.mask
    values = typed[column]
    return values[~bad & _bool_array(values.notna())]


def _column_problems(column: Column, raw: pd.Series) -> tuple[pd.Series, list[_Problem]]:
    parsed = _PARSERS[column.type](raw)
    problems = [_Problem(column.name, rule, mask) for rule, mask in parsed.issues if mask.any()]
    if not column.nullable:
        # A typed value of blank text is null, as the same empty field of a CSV file is (`_trim_failed`).
        null = _bool_array(raw.isna()) if parsed.null is None else parsed.null
        if null.any():
            problems.append(_Problem(column.name, RULE_NULL, null))
    values = parsed.values
    if column.type is ColumnType.STR and (column.nullable or column.name not in _VALUE_CHECKED_TEXT):
        empty = _blank(values)
        if empty.any():
            # A blank team or agent is no value (null: the team `default` takes unassigned accounts);
            # a blank required identifier or text breaks the contract, as the same empty field of a CSV
            # file (read as null) does.
            if not column.nullable:
                rule = RULE_EMPTY_ID if column.name.endswith("_id") else RULE_EMPTY
                problems.append(_Problem(column.name, rule, empty))
            values = values.mask(empty)
    return values, problems


def _local_dates(timestamps: pd.Series, zones: pd.Series) -> pd.Series:
    """Calendar date of each UTC timestamp in its row's time zone (UTC where the zone is unknown)."""
    dates = timestamps.dt.tz_localize(None).dt.normalize().astype("datetime64[s]")
    for zone in zones.dropna().unique():
        if not is_valid_timezone(zone) or zone == "UTC":
            continue
        rows = _bool_array(zones == zone)
        local = timestamps[rows].dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
        dates[rows] = local.astype("datetime64[s]")
    return dates


def _row_problems(
    name: str, typed: pd.DataFrame, problems: list[_Problem], as_of: pd.Timestamp | None, context: dict
) -> None:
    """Append the row rules of table `name` (beyond types and nulls) to `problems`."""
    n = len(typed)

    def add(column: str, rule: str, mask: np.ndarray) -> None:
        if mask.any():
            problems.append(_Problem(column, rule, mask))

    key = ROW_KEY[name]
    if key is not None:
        values = typed[key]
        add(key, RULE_NOT_UNIQUE, _duplicated(values))
    if name != "accounts" and context.get("account_ids") is not None:
        account_id = typed["account_id"]
        add(
            "account_id",
            RULE_NOT_IN_ACCOUNTS,
            _bool_array(account_id.notna()) & ~_in(account_id, context["account_ids"]),
        )

    # Dates are calendar dates of some zone: the latest date anywhere at as_of (UTC+14, the zone
    # furthest ahead) is the one a case system east of UTC may already write as "today".
    latest_date = None if as_of is None else (as_of.tz_convert("UTC").tz_localize(None) + LATEST_ZONE_AHEAD).normalize()
    if name == "accounts":
        add("credit_limit", RULE_NON_NEGATIVE, _bool_array(typed["credit_limit"] < 0))
        zones = typed["timezone"]
        unique = zones.dropna().unique()
        invalid = [zone for zone in unique if not is_valid_timezone(zone)]
        add("timezone", RULE_TIMEZONE, _in(zones, invalid) if invalid else np.zeros(n, dtype=bool))
        if latest_date is not None:
            add("opened_date", RULE_AFTER_AS_OF, _bool_array(typed["opened_date"] > latest_date))
    elif name == "dues":
        add("amount_due", RULE_POSITIVE, _bool_array(typed["amount_due"] <= 0))
        if latest_date is not None:
            latest = latest_date + pd.Timedelta(days=MAX_DUE_DAYS_AHEAD)
            add("due_date", RULE_DUE_TOO_LATE, _bool_array(typed["due_date"] > latest))
    elif name == "payments":
        add("amount", RULE_POSITIVE, _bool_array(typed["amount"] <= 0))
        status = typed["status"]
        add(
            "status",
            f"not one of {', '.join(PAYMENT_STATUSES)}",
            _bool_array(status.notna()) & ~_in(status, PAYMENT_STATUSES),
        )
    elif name == "contacts":
        channel, outcome = typed["channel"], typed["outcome"]
        channel_ok = _in(channel, CONTACT_CHANNELS)
        add("channel", f"not one of {', '.join(CONTACT_CHANNELS)}", _bool_array(channel.notna()) & ~channel_ok)
        direction = typed["direction"]
        add(
            "direction",
            f"not one of {', '.join(DIRECTIONS)}",
            _bool_array(direction.notna()) & ~_in(direction, DIRECTIONS),
        )
        known = _in(outcome, _ALL_OUTCOMES)
        add("outcome", RULE_UNKNOWN_OUTCOME, _bool_array(outcome.notna()) & ~known)
        if isinstance(channel.dtype, pd.CategoricalDtype) and isinstance(outcome.dtype, pd.CategoricalDtype):
            # Read from Parquet as categoricals: judge each (channel, outcome) pair of categories once.
            allowed = [
                [f"{c}|{o}" in _CHANNEL_OUTCOME_PAIRS for o in outcome.cat.categories] for c in channel.cat.categories
            ]
            table = np.zeros((len(channel.cat.categories) + 1, len(outcome.cat.categories) + 1), dtype=bool)
            table[:-1, :-1] = np.asarray(allowed, dtype=bool).reshape(table[:-1, :-1].shape)
            pair_ok = table[channel.cat.codes.to_numpy(), outcome.cat.codes.to_numpy()]
        else:
            channel_text = _arrow_text(channel)
            separator = pa.scalar("|", channel_text.type)
            pairs = pc.binary_join_element_wise(channel_text, _arrow_text(outcome).cast(channel_text.type), separator)
            pair_ok = _in(pairs, _CHANNEL_OUTCOME_PAIRS)
        add("outcome", RULE_OUTCOME_FOR_CHANNEL, known & channel_ok & ~pair_ok)
        duration = typed["duration_s"]
        has_duration = _bool_array(duration.notna())
        add("duration_s", RULE_DURATION_CHANNEL, has_duration & channel_ok & ~_in(channel, VOICE_CHANNELS))
        add("duration_s", RULE_NON_NEGATIVE, _bool_array(duration < 0))
    elif name == "promises":
        add("promised_amount", RULE_POSITIVE, _bool_array(typed["promised_amount"] <= 0))
        contact_id = typed["contact_id"]
        if context.get("contact_ids") is not None:
            add(
                "contact_id",
                RULE_NOT_IN_CONTACTS,
                _bool_array(contact_id.notna()) & ~_in(contact_id, context["contact_ids"]),
            )
        # "The date of created_at" is the debtor's calendar date, so a promise taken in the
        # evening in Chicago (already tomorrow in UTC) for the same local day is valid.
        zones = typed["account_id"].map(context.get("zone_by_account", {})).astype("string")
        created_date = _local_dates(typed["created_at"], zones)
        add("promised_date", RULE_PROMISE_BEFORE_CREATED, _bool_array(typed["promised_date"] < created_date))
    if name in EVENT_TIME and as_of is not None:
        column = EVENT_TIME[name]
        add(column, RULE_NOT_BEFORE_AS_OF, _bool_array(typed[column] >= as_of))


def row_names(name: str, raw: pd.DataFrame, typed: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """The key naming each row in `rows` (positions), or "#N" where the key is missing or bad: the N-th data
    row of the table (the CSV header not counted), whatever the source, so not a line of the file."""
    if name == "dues":
        account = typed["account_id"].iloc[rows]
        due = typed["due_date"].iloc[rows]
        good = _bool_array(account.notna()) & _bool_array(due.notna())
        text = account.astype(object).to_numpy()
        dates = due.dt.strftime("%Y-%m-%d").astype(object).to_numpy()
        return [f"{a}/{d}" if ok else f"#{r + 1}" for a, d, ok, r in zip(text, dates, good, rows, strict=True)]
    values = typed[ROW_KEY[name]].iloc[rows]
    good = _bool_array(values.notna())
    text = values.astype(object).to_numpy()
    return [str(v) if ok else f"#{r + 1}" for v, ok, r in zip(text, good, rows, strict=True)]


def _shown(raw: pd.Series, rows: np.ndarray) -> list[str]:
    values = raw.iloc[rows].astype(object).to_numpy()
    # NaN is a missing value in a float64 column; in a nullable Float64 one (a Parquet column that held NaN
    # beside its nulls) it is the value that was refused.
    nan_is_missing = not isinstance(raw.dtype, pd.Float64Dtype | pd.Float32Dtype)
    return [
        "" if v is None or v is pd.NA or (nan_is_missing and isinstance(v, float) and np.isnan(v)) else _text(v)
        for v in values
    ]


def _text(value: object) -> str:
    if isinstance(value, pd.Timestamp) and not dt.MINYEAR <= value.year <= dt.MAXYEAR:
        # Python cannot print it (a year 12000 from a Parquet file): numpy can.
        return str(np.datetime_as_string(value.asm8)) + ("" if value.tz is None else " UTC")
    return str(value)


def _table_check(name: str, raw: pd.DataFrame, typed: pd.DataFrame, problems: list[_Problem]) -> TableCheck:
    rejected = np.zeros(len(raw), dtype=bool)
    for problem in problems:
        rejected |= problem.mask
    rows = np.flatnonzero(rejected)
    reasons = np.full(len(rows), "", dtype=object)
    for problem in problems:
        hit = problem.mask[rows]
        text = f"{problem.column}: {problem.rule}" if problem.reported else problem.rule
        reasons[hit] = np.where(reasons[hit] == "", text, reasons[hit] + "; " + text)
    return TableCheck(name, raw, typed, rejected, pd.Series(reasons, index=rows, dtype=object))


def check_tables(
    as_of: pd.Timestamp | None,
    raw: Mapping[str, pd.DataFrame | None],
    *,
    max_per_rule: int | None = None,
) -> ExportCheck:
    """Check every table against contract section 1; keep at most `max_per_rule` violations per rule.

    Besides the violations, gives per table the typed columns and the rows to reject, including
    rows whose account (or, for promises, contact) is rejected, as the lenient loader needs.
    """
    result = ExportCheck(as_of=as_of)
    typed_tables: dict[str, pd.DataFrame] = {}
    problems_by_table: dict[str, list[_Problem]] = {}
    missing_by_table: dict[str, list[str]] = {}
    for name in TABLES:
        frame = raw.get(name)
        empty = np.zeros(0, dtype=bool)
        if frame is None:
            result.violations.append(Violation(name, WHOLE, WHOLE, RULE_MISSING_TABLE))
            result.totals[(name, WHOLE, RULE_MISSING_TABLE)] = 1
            result.tables[name] = TableCheck(name, None, None, empty, pd.Series(dtype=object))
            continue
        # A missing column is one violation; the other columns are still checked row by row.
        missing = [column.name for column in SCHEMAS[name] if column.name not in frame.columns]
        for column in missing:
            # Names are exact, from every source; one spelt in another case or with spaces is shown as found.
            spelt = next((str(found) for found in frame.columns if str(found).strip().lower() == column), "")
            result.violations.append(Violation(name, WHOLE, column, RULE_MISSING_COLUMN, spelt))
            result.totals[(name, column, RULE_MISSING_COLUMN)] = 1
        missing_by_table[name] = missing
        frame = frame.reset_index(drop=True)
        columns, problems = {}, []
        for column in SCHEMAS[name]:
            if column.name in missing:
                stand_in = Column(column.name, column.type, nullable=True)
                columns[column.name], _ = _column_problems(stand_in, pd.Series(None, index=frame.index, dtype=object))
                continue
            columns[column.name], found = _column_problems(column, frame[column.name])
            problems.extend(found)
        typed_tables[name] = pd.DataFrame(columns, index=frame.index, copy=False)
        problems_by_table[name] = problems

    context: dict = {}
    # A table without its key column holds no ids to refer to: that is its one missing-column violation, not
    # a "not in accounts" for every row that refers to it.
    if "accounts" in typed_tables and "account_id" not in missing_by_table["accounts"]:
        accounts = typed_tables["accounts"]
        context["account_ids"] = _valid_ids(accounts, "account_id", problems_by_table["accounts"]).unique()
        known = accounts[_bool_array(accounts["account_id"].notna())].drop_duplicates("account_id")
        context["zone_by_account"] = pd.Series(known["timezone"].to_numpy(), index=known["account_id"].to_numpy())
    if "contacts" in typed_tables and "contact_id" not in missing_by_table["contacts"]:
        context["contact_ids"] = _valid_ids(typed_tables["contacts"], "contact_id", problems_by_table["contacts"])
    for name, typed in typed_tables.items():
        _row_problems(name, typed, problems_by_table[name], as_of, context)
        missing = missing_by_table[name]
        problems_by_table[name] = [p for p in problems_by_table[name] if p.column not in missing]

    for name, typed in typed_tables.items():
        frame = raw[name].reset_index(drop=True)
        for problem in problems_by_table[name]:
            rows = np.flatnonzero(problem.mask)
            result.totals[(name, problem.column, problem.rule)] = len(rows)
            if max_per_rule is not None:
                rows = rows[:max_per_rule]
            keys = row_names(name, frame, typed, rows)
            shown = [""] * len(rows) if problem.rule == RULE_NULL else _shown(frame[problem.column], rows)
            result.violations.extend(
                Violation(name, key, problem.column, problem.rule, value)
                for key, value in zip(keys, shown, strict=True)
            )

    _cascade(typed_tables, problems_by_table)
    for name, typed in typed_tables.items():
        if missing_by_table[name]:
            # Rows cannot be judged without all their columns: the whole table is unusable.
            frame = raw[name].reset_index(drop=True)
            reason = f"missing column {', '.join(missing_by_table[name])}"
            reasons = pd.Series(reason, index=np.arange(len(frame)), dtype=object)
            result.tables[name] = TableCheck(name, frame, None, np.ones(len(frame), dtype=bool), reasons)
            continue
        result.tables[name] = _table_check(name, raw[name].reset_index(drop=True), typed, problems_by_table[name])
    return result


def _cascade(typed_tables: dict[str, pd.DataFrame], problems_by_table: dict[str, list[_Problem]]) -> None:
    """Reject rows whose account (or promised contact) is itself rejected, so what is kept is valid."""

    def rejected(name: str) -> np.ndarray:
        mask = np.zeros(len(typed_tables[name]), dtype=bool)
        for problem in problems_by_table[name]:
            mask |= problem.mask
        return mask

    def follow(parent: str, key: str, child: str, reason: str) -> None:
        if parent not in typed_tables or child not in typed_tables:
            return
        dropped = typed_tables[parent][key][rejected(parent)].dropna()
        if dropped.empty:
            return
        # A rejected key is never also kept: duplicated keys are rejected on every row.
        mask = _in(typed_tables[child][key], dropped.unique())
        if mask.any():
            problems_by_table[child].append(_Problem(key, reason, mask, reported=False))

    for child in TABLES[1:]:
        follow("accounts", "account_id", child, REASON_ACCOUNT_REJECTED)
    follow("contacts", "contact_id", "promises", REASON_CONTACT_REJECTED)


def validate_tables(
    as_of: pd.Timestamp | None, raw: Mapping[str, pd.DataFrame | None], *, max_per_rule: int | None = None
) -> list[Violation]:
    """Every violation of contract section 1 in the raw tables (`as_of` None skips its rules)."""
    return check_tables(as_of, raw, max_per_rule=max_per_rule).violations


def format_violations(
    violations: Sequence[Violation],
    limit_per_rule: int = 20,
    *,
    totals: Mapping[tuple[str, str, str], int] | None = None,
) -> str:
    """One line per violation grouped by (table, column, rule), at most `limit_per_rule` each, then a count.

    `totals` (from `ExportCheck.totals`) gives the true counts when the violations were capped.
    """
    groups: dict[tuple[str, str, str], list[Violation]] = {}
    for violation in violations:
        groups.setdefault((violation.table, violation.column, violation.rule), []).append(violation)
    counts = {group: len(items) for group, items in groups.items()}
    if totals is not None:
        counts.update({group: max(counts.get(group, 0), n) for group, n in totals.items()})
    lines = []
    for group, items in groups.items():
        lines.extend(str(violation) for violation in items[:limit_per_rule])
        more = counts[group] - min(len(items), limit_per_rule)
        if more > 0:
            table, column, rule = group
            lines.append(f"{table}: ... and {more} more rows: column {column}: {rule}")
    total = sum(counts.values())
    if total == 0:
        lines.append("no violations")
    else:
        tables = sorted({table for table, _, _ in counts})
        lines.append(
            f"{total} violation{'s' if total != 1 else ''} of {len(counts)} rule"
            f"{'s' if len(counts) != 1 else ''} in {', '.join(tables)}"
        )
    return "\n".join(lines)
