"""The case-system contract, version 1, as code (see CONTRACT.md in the shared folder).

Everything that reads or writes an export, an operations file, scores or a call list takes
its column names, types and value sets from here. Nothing else in callq hard-codes them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

CONTRACT_VERSION = "1"

TABLES = ("accounts", "dues", "payments", "contacts", "promises")

# The table's identifying column, used to name a row in violations and rejects.
ROW_KEY = {
    "accounts": "account_id",
    "dues": None,  # dues have no id: a row is named by (account_id, due_date)
    "payments": "payment_id",
    "contacts": "contact_id",
    "promises": "promise_id",
}


class ColumnType(StrEnum):
    STR = "str"
    DATE = "date"
    TIMESTAMP = "timestamp"
    MONEY = "money"
    BOOL = "bool"
    INT = "int"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False


S, D, T, M, B, INT = (
    ColumnType.STR,
    ColumnType.DATE,
    ColumnType.TIMESTAMP,
    ColumnType.MONEY,
    ColumnType.BOOL,
    ColumnType.INT,
)

FLAG_COLUMNS = (
    "do_not_call",
    "cease_contact",
    "dispute_open",
    "complaint_open",
    "hardship",
    "deceased",
    "bankruptcy",
)

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "accounts": (
        Column("account_id", S),
        Column("customer_id", S),
        Column("product", S),
        Column("opened_date", D),
        Column("credit_limit", M, nullable=True),
        Column("timezone", S),
        Column("team", S, nullable=True),
        Column("agent_id", S, nullable=True),
        *(Column(flag, B) for flag in FLAG_COLUMNS),
    ),
    "dues": (
        Column("account_id", S),
        Column("due_date", D),
        Column("amount_due", M),
    ),
    "payments": (
        Column("payment_id", S),
        Column("account_id", S),
        Column("paid_at", T),
        Column("amount", M),
        Column("status", S),
        Column("channel", S, nullable=True),
    ),
    "contacts": (
        Column("contact_id", S),
        Column("account_id", S),
        Column("started_at", T),
        Column("channel", S),
        Column("direction", S),
        Column("outcome", S),
        Column("agent_id", S, nullable=True),
        Column("duration_s", INT, nullable=True),
    ),
    "promises": (
        Column("promise_id", S),
        Column("account_id", S),
        Column("created_at", T),
        Column("promised_date", D),
        Column("promised_amount", M),
        Column("contact_id", S, nullable=True),
    ),
}

# The event time of each event table: every event is strictly before as_of.
EVENT_TIME = {"payments": "paid_at", "contacts": "started_at", "promises": "created_at"}

# Dues may lie up to this many days after as_of (an upcoming due).
MAX_DUE_DAYS_AHEAD = 62

PAYMENT_STATUSES = ("settled", "returned")
CONTACT_CHANNELS = ("call", "sms", "email", "letter", "visit")
# Channels that are not telephone calls: the frequency limits count every other contact (an unknown
# channel included, the strict reading) as a call.
NON_CALL_CHANNELS = tuple(channel for channel in CONTACT_CHANNELS if channel != "call")
VOICE_CHANNELS = ("call", "visit")
DIRECTIONS = ("outbound", "inbound")
# Right-party contacts: the debtor was reached.
RIGHT_PARTY_OUTCOMES = ("right_party", "promise_to_pay", "refused", "dispute")
VOICE_OUTCOMES = (
    "no_answer",
    "busy",
    "voicemail",
    "hung_up",
    "wrong_number",
    "third_party",
    *RIGHT_PARTY_OUTCOMES,
)
# An attempt that reached nobody (for "unanswered attempts per number per day").
UNANSWERED_OUTCOMES = ("no_answer", "busy", "voicemail")
# The outcomes a daily limit on unanswered attempts counts (cn: 6 per customer and day). A call hung up on
# was declined: it counts as unanswered there and, as it was picked up, as connected too (the strict
# reading of both limits; DOMAIN.md does not say which it is).
LIMIT_UNANSWERED_OUTCOMES = (*UNANSWERED_OUTCOMES, "hung_up")
MESSAGE_OUTCOMES = ("delivered", "failed")
OUTCOMES_BY_CHANNEL = {
    "call": VOICE_OUTCOMES,
    "visit": VOICE_OUTCOMES,
    "sms": MESSAGE_OUTCOMES,
    "email": MESSAGE_OUTCOMES,
    "letter": MESSAGE_OUTCOMES,
}

# Columns whose values the contract enumerates, held as pandas categoricals once loaded: a year of
# contacts for a million accounts is ~50 million rows, and three text columns of them took 2.2 GiB
# as strings against 0.15 GiB as one-byte codes.
ENUM_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "payments": {"status": PAYMENT_STATUSES},
    "contacts": {
        "channel": CONTACT_CHANNELS,
        "direction": DIRECTIONS,
        "outcome": tuple(dict.fromkeys(o for outcomes in OUTCOMES_BY_CHANNEL.values() for o in outcomes)),
    },
}

# Flags that forbid any call; flags that send the account to special handling instead.
NO_CALL_FLAGS = ("do_not_call", "cease_contact", "deceased", "bankruptcy")
SPECIAL_HANDLING_FLAGS = ("dispute_open", "complaint_open", "hardship")


def aware_utc(value: dt.datetime) -> dt.datetime:
    """An as_of instant in UTC; a naive datetime is refused (its zone would be a guess)."""
    if value.tzinfo is None:
        raise ValueError("as_of must carry a UTC offset, e.g. 2026-11-23T00:00:00Z")
    return value.astimezone(dt.UTC)


class ExportMeta(BaseModel):
    """`export.json`, or the one row of `export_meta` in a SQL export."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract_version: Literal["1"]
    as_of: dt.datetime

    @field_validator("as_of")
    @classmethod
    def _aware_utc(cls, value: dt.datetime) -> dt.datetime:
        return aware_utc(value)


@dataclass
class Export:
    """A typed export: one frame per table, timestamps tz-aware UTC, dates as datetime64 (day).

    Column dtypes, after loading:
    * str columns: pandas ``string`` (nullable where the contract allows null), except the
      enumerated ones (`ENUM_COLUMNS`: payment status; contact channel, direction and outcome),
      which are ``category`` with the contract's values as categories; code reading them compares
      values (``==``, ``isin``), which works on both;
    * date columns: ``datetime64[s]`` at midnight (naive, a calendar date);
    * timestamp columns: ``datetime64[us, UTC]``;
    * money: ``float64``; bool: ``bool``; int: ``Int64``.
    """

    as_of: pd.Timestamp  # tz-aware UTC
    accounts: pd.DataFrame
    dues: pd.DataFrame
    payments: pd.DataFrame
    contacts: pd.DataFrame
    promises: pd.DataFrame
    contract_version: str = CONTRACT_VERSION
    source: str = ""
    # Accounts whose compliance facts a lenient load could not keep whole: a rejected accounts row of
    # their customer (its flags, zone and team unknown) or a rejected contact of one of the customer's
    # accounts (the frequency limits would miss it). No list dials them (`features.io.withheld_accounts`).
    withheld: frozenset[str] = frozenset()

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: self.table(name) for name in TABLES}

    @property
    def meta(self) -> ExportMeta:
        return ExportMeta(contract_version="1", as_of=self.as_of.to_pydatetime())


# ---------------------------------------------------------------------------------------
# Section 2: operations


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


class Shift(BaseModel):
    """A team's working hours, centre-local. An end at or before the start (`"20:00"`-`"04:00"`) runs
    past midnight into the next day; `"24:00"` (or `"00:00"`) as the end means until midnight, and an end
    equal to the start (`"00:00"`-`"24:00"`, `"09:00"`-`"09:00"`) is a 24-hour shift."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: dt.time
    end: dt.time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock_text(cls, value: object, info: ValidationInfo) -> object:
        # YAML 1.1 reads an unquoted 10:00 as the number 600 (base 60); a bare 9 would be nine seconds.
        if isinstance(value, dt.time):
            return value
        if not isinstance(value, str):
            raise ValueError(f'write shift times as quoted "HH:MM" text, got the number {value!r}')
        clock = _CLOCK.fullmatch(value.strip())
        if clock is None:
            return value  # pydantic's own parsing names what is wrong
        hour, minute, second = (int(part or 0) for part in clock.groups())
        if info.field_name == "end" and (hour, minute, second) == (24, 0, 0):
            return dt.time(0, 0)
        return dt.time(hour, minute, second) if hour < 24 and minute < 60 and second < 60 else value

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def whole_hours(self) -> list[int]:
        """Start hours of every whole hour inside the shift, counted from the list date's centre-local
        midnight: a shift past midnight goes on with hours 24, 25, ... of the next morning."""
        first = self.start.hour + (1 if (self.start.minute or self.start.second or self.start.microsecond) else 0)
        end = self.end.hour + self.end.minute / 60 + (24 if self.crosses_midnight else 0)
        return [hour for hour in range(first, 48) if hour + 1 <= end]


class Team(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    team: str = Field(min_length=1)
    agents: int = Field(ge=0)
    calls_per_agent_hour: int = Field(ge=0)
    shift: Shift

    @field_validator("team")
    @classmethod
    def _reachable(cls, name: str) -> str:
        # A URL path resolves `.` and `..` away (`/teams/../queue` is `/teams/queue`, `%2E` too): the API and
        # the page could never show such a team's queue.
        if name in (".", ".."):
            raise ValueError(f"a team may not be named {name!r}: no URL can reach its queue")
        return name

    @property
    def hourly_capacity(self) -> int:
        return self.agents * self.calls_per_agent_hour


class PolicyRules(BaseModel):
    """The numbers behind a compliance preset. `custom` policies give them in the YAML.

    Hours are debtor-local; a call slot [h, h+1) is allowed when
    ``call_window_start <= h`` and ``h + 1 <= call_window_end``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_window_start: int = Field(ge=0, le=23)
    call_window_end: int = Field(ge=1, le=24)
    # Per customer (debtor) per debtor-local day; None = no such limit.
    max_unanswered_per_day: int | None = Field(default=None, ge=0)
    max_connected_per_day: int | None = Field(default=None, ge=0)
    # Per account (debt): at most N call attempts in any 7 consecutive days.
    max_attempts_7d: int | None = Field(default=None, ge=0)
    # No call within N days after a telephone conversation (the day of it is day 1).
    quiet_days_after_conversation: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _window(self) -> PolicyRules:
        if self.call_window_end <= self.call_window_start:
            raise ValueError("call_window_end must be after call_window_start")
        return self


POLICY_PRESETS: dict[str, PolicyRules] = {
    # China Banking Association 2026 / NIFA 2024: no collection 22:00-08:00 debtor-local;
    # <= 6 unanswered attempts per number per day; <= 3 connected calls per debtor per day.
    "cn": PolicyRules(
        call_window_start=8,
        call_window_end=22,
        max_unanswered_per_day=6,
        max_connected_per_day=3,
    ),
    # Regulation F (12 CFR 1006): 08:00-21:00 local; <= 7 attempts in 7 days per debt;
    # none within 7 days after a telephone conversation about the debt.
    "us_reg_f": PolicyRules(
        call_window_start=8,
        call_window_end=21,
        max_attempts_7d=7,
        quiet_days_after_conversation=7,
    ),
}


# The operations team that takes the accounts whose `team` is null (unassigned).
DEFAULT_TEAM = "default"


def account_teams(accounts: pd.DataFrame) -> pd.Series:
    """Each account's team as the operations file names it: a null team is `DEFAULT_TEAM`."""
    return accounts["team"].astype("string").fillna(DEFAULT_TEAM)


class Operations(BaseModel):
    """`operations.yaml`: what the centre can do on the list date.

    `rules` is an extension of contract section 2 (backward compatible): required when
    `policy: custom`, and it may tighten nothing else — presets are fixed by law.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    centre_timezone: str
    policy: Literal["cn", "us_reg_f", "custom"]
    teams: tuple[Team, ...] = Field(min_length=1)
    rules: PolicyRules | None = None

    @field_validator("centre_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not is_valid_timezone(value):
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Operations:
        if self.policy == "custom" and self.rules is None:
            raise ValueError("policy 'custom' needs a 'rules' section")
        if self.policy != "custom" and self.rules is not None:
            raise ValueError(f"policy {self.policy!r} is a fixed preset; use policy 'custom' to set rules")
        names = [team.team for team in self.teams]
        if len(set(names)) != len(names):
            raise ValueError(f"team names must be unique, got {names}")
        return self

    @property
    def policy_rules(self) -> PolicyRules:
        return self.rules if self.rules is not None else POLICY_PRESETS[self.policy]

    def team(self, name: str | None) -> Team | None:
        """The team that owns accounts of `name`; unassigned (None) accounts go to `default`."""
        wanted = DEFAULT_TEAM if name is None or pd.isna(name) else name
        return next((team for team in self.teams if team.team == wanted), None)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Operations:
        """Load an operations file; YAML errors and duplicate keys name `file:line:column`."""
        data = load_yaml(path, _OperationsLoader)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: top level must be a mapping (centre_timezone: ..., policy: ..., teams: ...)")
        return cls.model_validate(data)

    def to_yaml(self, path: str | Path) -> None:
        data = self.model_dump(mode="json", exclude_none=True)
        for team in data["teams"]:
            team["shift"] = {key: value[:5] for key, value in team["shift"].items()}
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, sort_keys=False)


class YamlLoader(yaml.SafeLoader):
    """The safe loader reading scalars as YAML 1.2 does, and refusing a key given twice in one mapping (YAML
    would keep the last silently). For the files people write: training configs and operations files."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden, by design
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base loader refuses it, with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads `yes`, `no`, `on` and `off` as booleans, so `treated_offset: no` was refused as
# not one of 'yes', 'no' or 'auto', and a team named `no` was refused as not text: only true and false are
# booleans, as in YAML 1.2.
_BOOL = "tag:yaml.org,2002:bool"
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# YAML 1.1 (PyYAML) reads `5e-2` and `1e3` as text, and strict settings would refuse them: read them as
# numbers, as YAML 1.2 does.
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml(path: str | Path, loader: type[YamlLoader] = YamlLoader, error: type[ValueError] = ValueError) -> Any:
    """The data of a YAML file; `error` saying `file:line:column: problem (context)`, 1-based like editors,
    where it is not valid YAML (a key given twice included)."""
    with open(path, encoding="utf-8") as handle:
        try:
            return yaml.load(handle, Loader=loader)
        except yaml.MarkedYAMLError as problem:
            mark = problem.problem_mark or problem.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            context = f" ({problem.context})" if problem.context else ""
            raise error(f"{where}: {problem.problem}{context}") from problem


class _OperationsLoader(YamlLoader):
    """`YamlLoader` without YAML 1.1's base-60 numbers, so an unquoted `10:00` stays the text "10:00"."""


_BASE_60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_OperationsLoader.yaml_implicit_resolvers = {
    first: ([("tag:yaml.org,2002:str", _BASE_60)] if first in "+-0123456789" else []) + list(resolvers)
    for first, resolvers in YamlLoader.yaml_implicit_resolvers.items()
}


# Files of a zone database that are not zones of the IANA list: "localtime" is whatever the machine is set
# to, "Factory" an unset placeholder, posix/ and right/ (leap seconds) are alternative trees.
_NOT_IANA_ZONES = frozenset({"localtime", "Factory", "posixrules"})


def is_valid_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name or name != name.strip():
        return False
    if name in _NOT_IANA_ZONES or name.startswith(("posix/", "right/")):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        return False
    return True


# ---------------------------------------------------------------------------------------
# Section 3: outputs

# The Arrow schema of each output, which every file of it has, an empty one included (pandas would give an
# empty column the type `null`, and such a file cannot be concatenated with a full one). Text is
# large_string, as callq's Parquet outputs have always held it; every column is nullable, as they were.
SCORES_SCHEMA = pa.schema(
    [
        ("account_id", pa.large_string()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("p_repay", pa.float64()),
        ("best_hour_local", pa.int64()),
        ("p_contact_best", pa.float64()),
        ("amount_overdue", pa.float64()),
        ("days_past_due", pa.int64()),
        ("stage", pa.large_string()),
        ("eligible", pa.bool_()),
        ("model_version", pa.large_string()),
    ]
)

CALL_LIST_SCHEMA = pa.schema(
    [
        ("list_date", pa.date32()),
        ("rank", pa.int64()),
        ("account_id", pa.large_string()),
        ("customer_id", pa.large_string()),
        ("team", pa.large_string()),
        ("agent_id", pa.large_string()),
        ("call_at", pa.timestamp("us", tz="UTC")),
        ("local_hour", pa.int64()),
        ("p_repay", pa.float64()),
        ("p_contact", pa.float64()),
        ("expected_value", pa.float64()),
        ("amount_overdue", pa.float64()),
        ("days_past_due", pa.int64()),
        ("stage", pa.large_string()),
        ("reasons", pa.large_string()),
        ("model_version", pa.large_string()),
    ]
)

# Not in the contract: the accounts `callq rank` routes to supervisors instead of the dialler.
SPECIAL_HANDLING_SCHEMA = pa.schema(
    [
        ("account_id", pa.large_string()),
        ("customer_id", pa.large_string()),
        ("team", pa.large_string()),
        ("reason", pa.large_string()),
        ("amount_overdue", pa.float64()),
        ("days_past_due", pa.int64()),
        ("list_date", pa.date32()),
    ]
)

SCORES_COLUMNS = tuple(SCORES_SCHEMA.names)
CALL_LIST_COLUMNS = tuple(CALL_LIST_SCHEMA.names)
SPECIAL_HANDLING_COLUMNS = tuple(SPECIAL_HANDLING_SCHEMA.names)

# Output columns holding money: written to CSV as plain decimals with two places, as export money is
# (`expected_value` is a float in the contract, an expectation, not an amount owed).
MONEY_OUTPUT_COLUMNS = ("amount_overdue",)

DEFAULT_HORIZON_DAYS = 14


@dataclass(frozen=True)
class Violation:
    """One broken contract rule: which table, which row, which column, which rule."""

    table: str
    row: str  # the row's key (e.g. the payment_id), or "#N" (the N-th data row) where it has none
    column: str
    rule: str
    value: str = ""

    def __str__(self) -> str:
        shown = f" (value {self.value!r})" if self.value != "" else ""
        return f"{self.table}: row {self.row}: column {self.column}: {self.rule}{shown}"


@dataclass
class LoadReport:
    """What loading did: rows read, accepted and rejected per table (they reconcile)."""

    read: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    def reconciles(self) -> bool:
        return all(self.read[name] == self.accepted.get(name, 0) + self.rejected.get(name, 0) for name in self.read)
