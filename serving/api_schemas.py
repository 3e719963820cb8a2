"""Request and response models of the HTTP API: the shapes OpenAPI documents and tests check."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.contract import (
    CONTACT_CHANNELS,
    DIRECTIONS,
    OUTCOMES_BY_CHANNEL,
    PAYMENT_STATUSES,
    is_valid_timezone,
)
from features.validate import MAX_MONEY

# Bounds on one POST /scores body: the endpoint scores a few accounts on demand, the batch
# command scores the book.
MAX_POSTED_ACCOUNTS = 5_000
MAX_POSTED_EVENTS = 500_000
# Bytes of one request body, refused (413) before it is read: the row counts above are checked only once
# a body is parsed, which takes the server's memory and a core (off the event loop) for about 2 s at
# 32 MiB. Larger books go through `callq score`.
MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE = 2**31 - 1  # past any queue; keeps the echoed `page` an int32 every client reads

Identifier = str
NOT_BLANK = r"\S"  # an identifier holds more than white space, as the loader requires

# Pydantic alone reads a date from a number (Unix seconds) or from an instant at midnight in any zone, and an
# instant from a number: a query would be answered for another day, a posted row read as no file is read.
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The loader reads a date kept as a zone-less timestamp at midnight as that date (`features.validate`).
_MIDNIGHT_TEXT = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]00:00(?::00(?:[.,]0{1,9})?)?")
_INSTANT_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")  # the rest is ISO 8601's, which pydantic reads


def _list_date(value: object) -> object:
    if (isinstance(value, str) and _DATE_TEXT.fullmatch(value)) or _is_date(value):
        return value
    raise PydanticCustomError("date_format", "Input should be a date as YYYY-MM-DD")


def _posted_date(value: object) -> object:
    if isinstance(value, str) and (midnight := _MIDNIGHT_TEXT.fullmatch(value)):
        return midnight.group(1)
    return _list_date(value)


def _posted_instant(value: object) -> object:
    if (isinstance(value, str) and _INSTANT_TEXT.match(value)) or isinstance(value, dt.datetime):
        return value
    raise PydanticCustomError("datetime_format", "Input should be an ISO 8601 timestamp with its UTC offset")


def _is_date(value: object) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


ListDate = Annotated[dt.date, BeforeValidator(_list_date)]
# The posted rows' dates and instants run these checks in Python, row by row: besides reading each value as the
# loader does, that lets the event loop take the interpreter lock while a large body is validated in a worker
# thread (pydantic's own row checks hold it until the whole body is done).
PostedDate = Annotated[dt.date, BeforeValidator(_posted_date)]
PostedInstant = Annotated[AwareDatetime, BeforeValidator(_posted_instant)]


class _Row(BaseModel):
    # No Infinity or NaN in a number (Python's JSON parser reads the literals): 422, as the loader refuses them.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------------------------------
# POST /scores: a small export in JSON (contract section 1)


class AccountIn(_Row):
    account_id: Identifier = Field(min_length=1, pattern=NOT_BLANK, examples=["A000123"])
    customer_id: Identifier = Field(min_length=1, pattern=NOT_BLANK, examples=["C000077"])
    product: str = Field(min_length=1, examples=["credit_card"])
    opened_date: PostedDate = Field(examples=["2024-03-01"])
    credit_limit: float | None = Field(default=None, ge=0, lt=MAX_MONEY, examples=[20000.0])
    timezone: str = Field(examples=["Asia/Shanghai"])
    team: str | None = Field(default=None, examples=["early"])
    agent_id: str | None = None
    do_not_call: bool
    cease_contact: bool
    dispute_open: bool
    complaint_open: bool
    hardship: bool
    deceased: bool
    bankruptcy: bool

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not is_valid_timezone(value):
            raise ValueError("timezone must be an IANA zone name, e.g. Asia/Shanghai")
        return value


class DueIn(_Row):
    account_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    due_date: PostedDate
    amount_due: float = Field(gt=0, lt=MAX_MONEY)


class PaymentIn(_Row):
    payment_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    account_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    paid_at: PostedInstant
    amount: float = Field(gt=0, lt=MAX_MONEY)
    status: Literal[PAYMENT_STATUSES]  # type: ignore[valid-type]
    channel: str | None = None


class ContactIn(_Row):
    contact_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    account_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    started_at: PostedInstant
    channel: Literal[CONTACT_CHANNELS]  # type: ignore[valid-type]
    direction: Literal[DIRECTIONS]  # type: ignore[valid-type]
    outcome: str
    agent_id: str | None = None
    duration_s: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _outcome_fits_channel(self) -> ContactIn:
        if self.outcome not in OUTCOMES_BY_CHANNEL[self.channel]:
            raise ValueError(f"outcome {self.outcome!r} is not an outcome of channel {self.channel!r}")
        return self


class PromiseIn(_Row):
    promise_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    account_id: Identifier = Field(min_length=1, pattern=NOT_BLANK)
    created_at: PostedInstant
    promised_date: PostedDate
    promised_amount: float = Field(gt=0, lt=MAX_MONEY)
    contact_id: str | None = None


SCORE_REQUEST_EXAMPLE = {
    "as_of": "2026-11-23T00:00:00Z",
    "accounts": [
        {
            "account_id": "A000123",
            "customer_id": "C000077",
            "product": "credit_card",
            "opened_date": "2024-03-01",
            "credit_limit": 20000.0,
            "timezone": "Asia/Shanghai",
            "team": "early",
            "agent_id": None,
            "do_not_call": False,
            "cease_contact": False,
            "dispute_open": False,
            "complaint_open": False,
            "hardship": False,
            "deceased": False,
            "bankruptcy": False,
        }
    ],
    "dues": [{"account_id": "A000123", "due_date": "2026-11-10", "amount_due": 850.0}],
    "payments": [],
    "contacts": [
        {
            "contact_id": "K1",
            "account_id": "A000123",
            "started_at": "2026-11-20T02:05:00Z",
            "channel": "call",
            "direction": "outbound",
            "outcome": "no_answer",
            "agent_id": "G7",
            "duration_s": 0,
        }
    ],
    "promises": [],
}


class ScoreRequest(BaseModel):
    """An export in JSON: `as_of` and the contract's five tables as lists of rows."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [SCORE_REQUEST_EXAMPLE]})

    as_of: PostedInstant = Field(description="The export's instant; every event lies strictly before it.")
    accounts: list[AccountIn] = Field(min_length=1, max_length=MAX_POSTED_ACCOUNTS)
    dues: list[DueIn] = Field(default_factory=list, max_length=MAX_POSTED_EVENTS)
    payments: list[PaymentIn] = Field(default_factory=list, max_length=MAX_POSTED_EVENTS)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=MAX_POSTED_EVENTS)
    promises: list[PromiseIn] = Field(default_factory=list, max_length=MAX_POSTED_EVENTS)

    @model_validator(mode="after")
    def _consistent(self) -> ScoreRequest:
        known: set[str] = set()
        for account in self.accounts:
            if account.account_id in known:  # named as the loader names a repeated key
                raise ValueError(f"accounts: row {account.account_id}: column account_id: not unique")
            known.add(account.account_id)
        for table in ("dues", "payments", "contacts", "promises"):
            stray = next((row.account_id for row in getattr(self, table) if row.account_id not in known), None)
            if stray is not None:
                raise ValueError(f"{table}: account_id {stray!r} is not in accounts")
        for table, column in (
            ("payments", "paid_at"),
            ("contacts", "started_at"),
            ("promises", "created_at"),
        ):
            late = next((row for row in getattr(self, table) if getattr(row, column) >= self.as_of), None)
            if late is not None:
                raise ValueError(f"{table}: {column} must be before as_of")
        return self


class ScoreRow(_Row):
    """One contract `scores` row."""

    account_id: str = Field(examples=["A000123"])
    as_of: dt.datetime
    p_repay: float = Field(ge=0, le=1, examples=[0.42])
    best_hour_local: int | None = Field(ge=0, le=23, examples=[9])
    p_contact_best: float | None = Field(ge=0, le=1, examples=[0.31])
    amount_overdue: float = Field(examples=[850.0])
    days_past_due: int = Field(ge=0, examples=[13])
    stage: str = Field(examples=["middle"])
    eligible: bool
    model_version: str = Field(examples=["repayment:3;contact:2;call-effect:2"])


class ScoresResponse(_Row):
    count: int = Field(description="Rows returned: one per posted account.")
    rows: list[ScoreRow]


# ---------------------------------------------------------------------------------------
# Read endpoints


class Health(_Row):
    status: Literal["ok"] = "ok"


class ModelInfo(_Row):
    name: str = Field(examples=["callq-repayment"])
    version: str = Field(examples=["3"])
    metrics: dict[str, float | int | str | None] = Field(examples=[{"auc": 0.78, "brier": 0.17}])


class ModelsResponse(_Row):
    list_date: dt.date
    model_version: str
    models: list[ModelInfo]


class TeamSummary(_Row):
    team: str = Field(examples=["early"])
    calls: int = Field(description="Calls on the team's list for the day.")
    expected_value_total: float = Field(description="Money the day's calls are expected to bring in.")
    capacity_total: int = Field(description="Calls the team can make over its shift.")
    special_handling: int = Field(description="Accounts of the team routed to special handling.")


class TeamsResponse(_Row):
    list_date: dt.date
    as_of: dt.datetime
    centre_timezone: str = Field(examples=["Asia/Shanghai"])
    model_version: str
    teams: list[TeamSummary] = Field(description="Only the teams the caller's token covers.")


class QueueRow(_Row):
    """One scheduled call, as the supervisor page shows it."""

    position: int = Field(ge=1, description="1 = first in this team's queue.")
    rank: int = Field(ge=1, description="Rank in the whole centre's list (contract `rank`).")
    account_id: str
    customer_id: str
    team: str
    agent_id: str | None
    call_at: dt.datetime = Field(description="Start of the scheduled hour slot, UTC.")
    call_at_centre: dt.datetime = Field(description="The same instant in the centre's time zone.")
    centre_hour: int = Field(ge=0, le=23, description="Centre-local hour of the slot.")
    local_hour: int = Field(ge=0, le=23, description="Debtor-local hour of the slot.")
    best_hour_local: int | None = Field(description="The debtor-local hour with the best contact chance.")
    p_repay: float
    p_contact: float
    expected_value: float
    amount_overdue: float
    days_past_due: int
    stage: str
    reasons: list[str]
    model_version: str


class QueueQuery(_Row):
    """Query parameters of a queue page: the date, paging and filters, validated in one model.

    Unknown parameters are refused (422): a misspelt filter must not silently widen the queue.
    """

    date: ListDate | None = Field(
        default=None,
        description="Centre-local list date (YYYY-MM-DD); omitted = the date the server was started for.",
        examples=["2026-11-23"],
    )
    page: int = Field(default=1, ge=1, le=MAX_PAGE, description="1-based page number (past the last page: no rows).")
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Rows per page.")
    stage: str | None = Field(default=None, description="Only calls of this delinquency stage.", examples=["middle"])
    min_amount: float | None = Field(default=None, ge=0, description="Only calls with at least this amount overdue.")
    hour: int | None = Field(default=None, ge=0, le=23, description="Only calls scheduled in this centre-local hour.")


class QueuePage(_Row):
    team: str
    list_date: dt.date
    as_of: dt.datetime
    centre_timezone: str
    total: int = Field(description="Calls that match the filters.")
    page: int
    page_size: int
    pages: int
    expected_value_total: float = Field(description="Expected value of every call that matches the filters.")
    stages: list[str] = Field(description="Stages present in the team's queue (for a filter).")
    rows: list[QueueRow]


class CapacityHour(_Row):
    centre_hour: int = Field(ge=0, le=23)
    call_at: dt.datetime
    capacity: int
    scheduled: int
    utilisation: float | None = Field(description="scheduled / capacity; null when capacity is 0.")


class CapacityResponse(_Row):
    team: str
    list_date: dt.date
    centre_timezone: str
    capacity_total: int
    scheduled_total: int
    expected_value_total: float
    hours: list[CapacityHour]


class Contribution(_Row):
    feature: str = Field(examples=["promise_broken_7d"])
    value: float | str | None
    contribution: float = Field(description="The feature's contribution to the model's raw score.")


class ExplanationResponse(_Row):
    account_id: str
    team: str | None
    list_date: dt.date
    score: ScoreRow | None
    call: QueueRow | None = Field(description="The scheduled call, when the account is on the list.")
    special_handling: str | None = Field(description="Why the account went to special handling, if it did.")
    reasons: list[str]
    contributions: list[Contribution] = Field(description="Top model contributions, largest first.")


class ErrorBody(_Row):
    detail: str


class Problem(_Row):
    type: str = Field(examples=["contract"])
    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field or table.")
    msg: str = Field(examples=["payments: row P1: column payment_id: not unique"])
    ctx: dict[str, str] | None = None


class ProblemsBody(_Row):
    """Every 422: FastAPI's shape, one item per problem; posted values are never echoed."""

    detail: list[Problem]
