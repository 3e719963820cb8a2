"""The HTTP API and supervisor page: one day's queue per team, capacity, explanations, scoring.

`create_app(provider)` serves what a `RunProvider` computes (the same `DailyRun` the batch job
writes). Each day's run is indexed once, per team, into sorted arrays and pre-serialised JSON
rows, so that a queue request is a mask, a slice and a join (p99 well under 50 ms).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import logging
import math
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from features.contract import (
    CALL_LIST_COLUMNS,
    DEFAULT_TEAM,
    MONEY_OUTPUT_COLUMNS,
    SCHEMAS,
    SCORES_COLUMNS,
    ColumnType,
    Export,
)
from features.io import money_text
from features.validate import check_tables, contract_dtypes
from serving.api_schemas import (
    MAX_BODY_BYTES,
    CapacityHour,
    CapacityResponse,
    Contribution,
    ErrorBody,
    ExplanationResponse,
    Health,
    ListDate,
    ModelInfo,
    ModelsResponse,
    ProblemsBody,
    QueuePage,
    QueueQuery,
    QueueRow,
    ScoreRequest,
    ScoresResponse,
    TeamsResponse,
    TeamSummary,
)
from serving.auth import BEARER_SCHEME, Principal, TokenAuth, require_principal
from serving.daily import DailyRun

logger = logging.getLogger("callq.api")

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"
PAGE_FILE = PACKAGE_DIR / "templates" / "index.html"

TOP_CONTRIBUTIONS = 8
# The API keeps the runs of the days used last (each holds the whole book's scores); it is the one place
# that keeps them: providers build a run when asked.
CACHED_DAYS = 4


class RunProvider(Protocol):
    """What the API serves: the day's run (built when asked; the API's `DayCache` keeps the recent ones) and
    on-demand scoring."""

    def daily_run(self, list_date: dt.date | None) -> DailyRun:
        """The run for `list_date` (None = the server's default date); LookupError if none."""
        ...

    def score(self, accounts_payload: Export) -> pd.DataFrame:
        """Contract `scores` rows for every account of a posted export."""
        ...


# ---------------------------------------------------------------------------------------
# Providers


class StaticProvider:
    """Serves runs computed beforehand (tests, benchmarks, a server started on fixed dates)."""

    def __init__(
        self,
        runs: DailyRun | Mapping[dt.date, DailyRun],
        *,
        default_date: dt.date | None = None,
        scorer: Callable[[Export], pd.DataFrame] | None = None,
    ) -> None:
        self._runs = {runs.list_date: runs} if isinstance(runs, DailyRun) else dict(runs)
        if not self._runs:
            raise ValueError("StaticProvider needs at least one run")
        self._default = default_date if default_date is not None else max(self._runs)
        if self._default not in self._runs:
            raise ValueError(f"default date {self._default} has no run")
        self._scorer = scorer

    def daily_run(self, list_date: dt.date | None) -> DailyRun:
        key = self._default if list_date is None else list_date
        if key not in self._runs:
            raise LookupError(f"no call list for {key}")
        return self._runs[key]

    def score(self, accounts_payload: Export) -> pd.DataFrame:
        if self._scorer is None:
            raise LookupError("this server was started without models to score with")
        return self._scorer(accounts_payload)


class BuildingProvider:
    """Computes a date's run with `build_run` when asked (tests, the page's slow dates)."""

    def __init__(
        self,
        build_run: Callable[[dt.date], DailyRun],
        *,
        default_date: dt.date,
        scorer: Callable[[Export], pd.DataFrame] | None = None,
    ) -> None:
        self._build_run = build_run
        self._default = default_date
        self._scorer = scorer

    def daily_run(self, list_date: dt.date | None) -> DailyRun:
        return self._build_run(self._default if list_date is None else list_date)

    def score(self, accounts_payload: Export) -> pd.DataFrame:
        if self._scorer is None:
            raise LookupError("this server was started without models to score with")
        return self._scorer(accounts_payload)


# ---------------------------------------------------------------------------------------
# The per-day index


def _iso_utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_local(values: pd.Series, zone: str) -> pd.Series:
    text = pd.to_datetime(values, utc=True).dt.tz_convert(zone).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return text.str[:-2] + ":" + text.str[-2:]  # +0800 -> +08:00 (ISO 8601 extended)


def _records_json(frame: pd.DataFrame) -> list[bytes]:
    """One compact JSON object per row, serialised in one vectorised pass."""
    if frame.empty:
        return []
    text = frame.to_json(orient="records", lines=True, double_precision=10)
    return [line.encode("utf-8") for line in text.splitlines()]


def _split_reasons(reasons: pd.Series) -> pd.Series:
    return reasons.fillna("").astype(str).str.split(";").map(lambda parts: [p.strip() for p in parts if p.strip()])


@dataclass(frozen=True)
class TeamQueue:
    """One team's queue, sorted by rank, ready to filter and slice without touching pandas."""

    team: str
    stage: np.ndarray
    amount_overdue: np.ndarray
    centre_hour: np.ndarray
    expected_value: np.ndarray
    rows_json: list[bytes]
    frame: pd.DataFrame  # contract columns + derived ones, for CSV and explanations
    stages: list[str]
    csv_bytes: bytes
    capacity: CapacityResponse
    special_handling: int

    @property
    def expected_value_total(self) -> float:
        return round(float(self.expected_value.sum()), 2)

    def select(self, stage: str | None, min_amount: float | None, hour: int | None) -> np.ndarray | None:
        """Positions (0-based) of the calls that pass the filters, in queue order; None = no filter."""
        if stage is None and min_amount is None and hour is None:
            return None
        mask = np.ones(len(self.rows_json), dtype=bool)
        if stage is not None:
            mask &= self.stage == stage
        if min_amount is not None:
            mask &= self.amount_overdue >= min_amount
        if hour is not None:
            mask &= self.centre_hour == hour
        return np.flatnonzero(mask)


class DayIndex:
    """Everything the API answers for one `DailyRun`, precomputed once per run."""

    def __init__(self, run: DailyRun) -> None:
        self.run = run
        self.list_date_iso = run.list_date.isoformat()
        self.as_of_iso = run.as_of.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        zone = run.centre_timezone
        calls = run.call_list.sort_values("rank", kind="stable").reset_index(drop=True)
        scores = run.scores.drop_duplicates("account_id").set_index("account_id", drop=False)
        self.scores = scores
        best_hour = calls["account_id"].map(scores["best_hour_local"]) if len(scores) else pd.NA
        enriched = calls.assign(
            call_at_centre=_iso_local(calls["call_at"], zone) if len(calls) else calls["call_at"],
            centre_hour=pd.to_datetime(calls["call_at"], utc=True).dt.tz_convert(zone).dt.hour.astype("int64"),
            best_hour_local=pd.Series(best_hour, index=calls.index).astype("Int64"),
            reasons_list=_split_reasons(calls["reasons"]),
        )
        special = run.special_handling
        capacity = run.capacity
        teams = sorted(
            {str(t) for t in calls["team"].dropna()}
            | {str(t) for t in capacity["team"].dropna()}
            | {str(t) for t in special["team"].dropna()}
        )
        self.teams: dict[str, TeamQueue] = {team: self._team(team, enriched, special, capacity) for team in teams}
        self.summaries = [
            TeamSummary(
                team=team,
                calls=len(queue.rows_json),
                expected_value_total=round(float(queue.expected_value.sum()), 2),
                capacity_total=queue.capacity.capacity_total,
                special_handling=queue.special_handling,
            )
            for team, queue in self.teams.items()
        ]
        # Which team owns an account decides who may read its explanation.
        owners = pd.concat(
            [
                calls[["account_id", "team"]],
                special[["account_id", "team"]],
                run.scores[["account_id", "team"]] if "team" in run.scores.columns else None,
            ]
        ).drop_duplicates("account_id")
        self.account_team: dict[str, str | None] = {
            str(account): (None if pd.isna(team) else str(team))
            for account, team in zip(owners["account_id"], owners["team"], strict=True)
        }
        self._all_teams = run.account_teams  # every account's team, for the accounts neither listed nor special
        # account -> (team, position in the team's queue), for the explanation's call row.
        self.call_slot: dict[str, tuple[str, int]] = {}
        for team, queue in self.teams.items():
            self.call_slot.update(
                zip(
                    queue.frame["account_id"].astype(str),
                    ((team, i) for i in range(len(queue.frame))),
                    strict=True,
                )
            )
        self.calls = enriched
        self.special_reason = dict(zip(special["account_id"].astype(str), special["reason"].astype(str), strict=True))
        explanations = run.explanations
        self.explanation_rows = (
            {str(k): v for k, v in explanations.groupby("account_id", sort=False).indices.items()}
            if len(explanations)
            else {}
        )
        self.explanations = explanations.reset_index(drop=True)
        logger.info("indexed list %s: %d teams, %d calls", run.list_date, len(self.teams), len(calls))

    def _team(self, team: str, calls: pd.DataFrame, special: pd.DataFrame, capacity: pd.DataFrame) -> TeamQueue:
        run = self.run
        mine = calls[calls["team"] == team].reset_index(drop=True)
        mine = mine.assign(position=np.arange(1, len(mine) + 1))
        shown = pd.DataFrame(
            {
                "position": mine["position"],
                "rank": mine["rank"].astype("int64"),
                "account_id": mine["account_id"].astype(str),
                "customer_id": mine["customer_id"].astype(str),
                "team": mine["team"].astype(str),
                "agent_id": mine["agent_id"].astype(object).where(mine["agent_id"].notna(), None),
                "call_at": _iso_utc(mine["call_at"]) if len(mine) else mine["call_at"],
                "call_at_centre": mine["call_at_centre"],
                "centre_hour": mine["centre_hour"],
                "local_hour": mine["local_hour"].astype("int64"),
                "best_hour_local": mine["best_hour_local"],
                "p_repay": mine["p_repay"].astype(float),
                "p_contact": mine["p_contact"].astype(float),
                "expected_value": mine["expected_value"].astype(float),
                "amount_overdue": mine["amount_overdue"].astype(float),
                "days_past_due": mine["days_past_due"].astype("int64"),
                "stage": mine["stage"].astype(str),
                "reasons": mine["reasons_list"],
                "model_version": mine["model_version"].astype(str),
            }
        )
        hours = capacity[capacity["team"] == team].sort_values("call_at")
        capacity_hours = [
            CapacityHour(
                centre_hour=int(hour),
                call_at=pd.Timestamp(call_at).to_pydatetime(),
                capacity=int(cap),
                scheduled=int(done),
                utilisation=(round(done / cap, 4) if cap else None),
            )
            for hour, call_at, cap, done in zip(
                hours["centre_hour"], hours["call_at"], hours["capacity"], hours["scheduled"], strict=True
            )
        ]
        expected_value = shown["expected_value"].to_numpy(dtype=float)
        csv_frame = mine.loc[:, list(CALL_LIST_COLUMNS)]
        return TeamQueue(
            team=team,
            stage=shown["stage"].to_numpy(dtype=object),
            amount_overdue=shown["amount_overdue"].to_numpy(dtype=float),
            centre_hour=shown["centre_hour"].to_numpy(dtype=np.int64),
            expected_value=expected_value,
            rows_json=_records_json(shown),
            frame=mine,
            stages=sorted(shown["stage"].unique().tolist()),
            csv_bytes=_call_list_csv(csv_frame),
            capacity=CapacityResponse(
                team=team,
                list_date=run.list_date,
                centre_timezone=run.centre_timezone,
                capacity_total=sum(h.capacity for h in capacity_hours),
                scheduled_total=sum(h.scheduled for h in capacity_hours),
                expected_value_total=round(float(expected_value.sum()), 2),
                hours=capacity_hours,
            ),
            special_handling=int((special["team"] == team).sum()),
        )

    def queue(self, team: str) -> TeamQueue:
        found = self.teams.get(team)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no team {team!r} on the list for {self.run.list_date}")
        return found

    def team_of(self, account_id: str) -> str | None:
        """The account's team: from the list or the special-handling queue, else from the run's accounts
        (None when unknown, which only an admin token may ask about)."""
        if account_id in self.account_team:
            return self.account_team[account_id]
        if self._all_teams is not None and account_id in self._all_teams.index:
            return str(self._all_teams.loc[account_id])
        return None

    def queue_row(self, account_id: str) -> QueueRow | None:
        found = self.call_slot.get(account_id)
        if found is None:
            return None
        team, within = found
        return QueueRow.model_validate_json(self.teams[team].rows_json[within])

    def score_row(self, account_id: str) -> dict | None:
        if account_id not in self.scores.index:
            return None
        row = self.scores.loc[[account_id], list(SCORES_COLUMNS)]
        return json.loads(row.to_json(orient="records", date_format="iso"))[0]

    def contributions(self, account_id: str) -> list[Contribution]:
        rows = self.explanation_rows.get(account_id)
        if rows is None:
            return []
        part = self.explanations.iloc[rows]
        part = part.iloc[np.argsort(-part["contribution"].abs().to_numpy(), kind="stable")][:TOP_CONTRIBUTIONS]
        return [
            Contribution(feature=str(feature), value=_contribution_value(value), contribution=float(contribution))
            for feature, value, contribution in zip(part["feature"], part["value"], part["contribution"], strict=True)
        ]


def _contribution_value(value: object) -> float | str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value)


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): text cells that do
# are written with a leading apostrophe, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defused(column: pd.Series) -> pd.Series:
    text = column.astype("string")
    risky = text.str.startswith(_FORMULA_START).fillna(False).to_numpy(dtype=bool)
    return text.mask(risky, "'" + text) if risky.any() else column


def _call_list_csv(frame: pd.DataFrame) -> bytes:
    """The contract `call_list` columns as CSV for a supervisor's spreadsheet: timestamps ISO-8601 UTC with
    `Z`, dates as days, money with two decimals as `callq rank` writes it, text cells that a spreadsheet
    would run as a formula defused."""
    out = frame.copy()
    if len(out):
        out["call_at"] = _iso_utc(out["call_at"])
        out["list_date"] = pd.to_datetime(out["list_date"]).dt.strftime("%Y-%m-%d")
        for column in MONEY_OUTPUT_COLUMNS:
            if column in out.columns:
                text = money_text(pa.array(out[column].to_numpy(dtype=float), pa.float64()))
                out[column] = pd.array(text.to_pylist(), dtype="string")
        for column in ("account_id", "customer_id", "team", "agent_id", "stage", "reasons", "model_version"):
            if column in out.columns:
                out[column] = _defused(out[column])
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _attachment(name: str) -> str:
    """Content-Disposition for a download named `name`: an ASCII fallback and the exact name (RFC 6266)."""
    fallback = "".join(char if char.isascii() and (char.isalnum() or char in "-_.") else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


class DayCache:
    """Indexes each provider run once, keyed by the requested date (None = the default date), and keeps
    the `max_days` runs used last (a run asked for as None and by its date counts once)."""

    def __init__(self, provider: RunProvider, max_days: int = CACHED_DAYS) -> None:
        self.provider = provider
        self.max_days = max_days
        self._days: OrderedDict[dt.date | None, DayIndex] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, list_date: dt.date | None) -> DayIndex | None:
        """The index already built for `list_date`, without asking the provider (a dict lookup)."""
        index = self._days.get(list_date)
        if index is not None:
            with suppress(KeyError):  # evicted meanwhile: the index in hand still answers this request
                self._days.move_to_end(index.run.list_date)  # both keys of the run (None and its date)
                self._days.move_to_end(list_date)
        return index

    def get(self, list_date: dt.date | None) -> DayIndex:
        """The index for `list_date`, asking the provider and indexing its run on first use."""
        index = self.peek(list_date)
        if index is not None:
            return index
        with self._lock:  # one build per date, even when the first requests come together
            index = self._days.get(list_date)
            if index is not None:
                return index
            try:
                run = self.provider.daily_run(list_date)
            except LookupError as error:
                raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
            same = self._days.get(run.list_date)
            index = same if same is not None and same.run is run else DayIndex(run)
            self._days[run.list_date] = index
            self._days[list_date] = index
            self._days.move_to_end(run.list_date)
            self._evict()
            return index

    def _evict(self) -> None:
        """Drop the runs used least recently, every key of each, until `max_days` runs are left."""
        while True:
            entries = list(self._days.items())  # a copy: `peek` reorders without the lock
            if len({id(index) for _, index in entries}) <= self.max_days:
                return
            oldest = entries[0][1]
            for key, index in entries:
                if index is oldest:
                    self._days.pop(key, None)


# ---------------------------------------------------------------------------------------
# Posted exports


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_MICROSECOND = dt.timedelta(microseconds=1)


def _table_frame(table: str, rows: list) -> pd.DataFrame:
    """Posted rows (their enumerated values already checked by the schemas) with the loader's dtypes.

    Built column by column, dates and instants as integers first: pandas reads a list of row dicts, or of
    datetimes in several zones, in one call that holds the interpreter lock (a third of a second for 150,000
    rows), which would stall the event loop as parsing on it did."""
    columns: dict[str, object] = {}
    for column in SCHEMAS[table]:
        values = [getattr(row, column.name) for row in rows]
        if column.type == ColumnType.DATE:
            days = np.array([value.toordinal() - _EPOCH_DAY for value in values], dtype="int64")
            columns[column.name] = days.astype("datetime64[D]").astype("datetime64[s]")
        elif column.type == ColumnType.TIMESTAMP:
            micros = np.array([(value - _EPOCH) // _MICROSECOND for value in values], dtype="int64")
            columns[column.name] = pd.to_datetime(micros, unit="us", utc=True)
        else:
            columns[column.name] = pd.array(values, dtype=object)
    return pd.DataFrame(columns).astype(contract_dtypes(table))


class _CollectorPause:
    """Python's cyclic garbage collector, off while any thread turns a posted body into rows.

    A body near the size limit makes millions of objects, and each full collection they trigger walks them all
    holding the interpreter lock: up to 0.2 s in which the event loop answers nothing, and half the parsing
    time. The rows hold no reference cycles; whatever else is made meanwhile is collected once the last posting
    thread is done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._was_enabled:
                gc.enable()


COLLECTOR_PAUSE = _CollectorPause()


def export_from_request(request: ScoreRequest) -> Export:
    """The posted JSON as a typed `Export`, with the dtypes `features.io.load_export` gives."""
    return Export(
        as_of=pd.Timestamp(request.as_of).tz_convert("UTC"),
        accounts=_table_frame("accounts", request.accounts),
        dues=_table_frame("dues", request.dues),
        payments=_table_frame("payments", request.payments),
        contacts=_table_frame("contacts", request.contacts),
        promises=_table_frame("promises", request.promises),
        source="api",
    )


SHOWN_VIOLATIONS = 5


def checked_export(posted: Export) -> Export:
    """The posted export as the loader reads a file: checked by the same rules beyond the request schemas
    (unique event ids, dates against `as_of`, whole cents, promises and their contacts) and typed by the
    same checks (a blank team or agent is no value). A violation is a 422 in FastAPI's shape (`loc`
    ["body", table], `msg` naming row, column and rule); the offending values are left out (other
    debtors' data)."""
    check = check_tables(posted.as_of, posted.tables(), max_per_rule=1)
    if check.ok:
        return dataclasses.replace(posted, **{name: check.accepted(name) for name in posted.tables()})
    items = [
        {"type": "contract", "loc": ("body", v.table), "msg": f"{v.table}: row {v.row}: column {v.column}: {v.rule}"}
        for v in check.violations[:SHOWN_VIOLATIONS]
    ]
    if check.total() > len(items):
        items.append({"type": "contract", "loc": ("body",), "msg": f"{check.total()} contract violations in all"})
    raise RequestValidationError(items)


# ---------------------------------------------------------------------------------------
# Routers

TEAM_PATH = PathParam(description="Team name, as in `accounts.team` and the operations file.", examples=["early"])
DATE_QUERY = Query(
    None,
    description="Centre-local list date (YYYY-MM-DD); omitted = the date the server was started for.",
    examples=["2026-11-23"],
)
AUTH_ERRORS = {
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token."},
    # The shape `_validation_error` answers (FastAPI's default would document its own, with `input`).
    422: {"model": ProblemsBody, "description": "A parameter is invalid or unknown."},
}
# Documented only where a route can answer them.
OUT_OF_SCOPE = {403: {"model": ErrorBody, "description": "The token does not cover that team."}}
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such team, account or list date."}}
DATE_NOT_FOUND = {404: {"model": ErrorBody, "description": "No list for that date (past the horizon or over)."}}


async def _team_in_scope(team: str = TEAM_PATH, principal: Principal = Depends(require_principal)) -> None:
    """403 unless the token covers the path's team: judged from the token and the path alone, before the query
    (a route's dependencies run before FastAPI reads its parameters)."""
    principal.require_team(team)


def _only_query(*names: str) -> Callable:
    """A dependency refusing (422) query parameters other than `names`, after the token (401 first): as the
    queue, a misspelt `date` must not silently answer for the served date."""
    allowed = frozenset(names)

    async def check(request: Request, principal: Principal = Depends(require_principal)) -> None:
        unknown = [name for name in request.query_params if name not in allowed]
        if unknown:
            raise RequestValidationError(
                [
                    {"type": "extra_forbidden", "loc": ("query", name), "msg": "Extra inputs are not permitted"}
                    for name in unknown
                ]
            )

    return check


ONLY_DATE = [Depends(_only_query("date"))]
TEAM_SCOPE = Depends(_team_in_scope)


async def _days(request: Request) -> DayCache:
    """The app's run cache (`async`: it only reads app state, no thread-pool hop needed)."""
    return request.app.state.days


health_router = APIRouter(tags=["health"])


@health_router.get("/health", response_model=Health, summary="Liveness check (no token needed)")
def health() -> Health:
    """Answers while the process serves requests; reads no data."""
    return Health()


models_router = APIRouter(tags=["models"], responses={**AUTH_ERRORS, **DATE_NOT_FOUND})


@models_router.get(
    "/models", response_model=ModelsResponse, summary="Champion models behind the list", dependencies=ONLY_DATE
)
def models(
    date: ListDate | None = DATE_QUERY,
    principal: Principal = Depends(require_principal),
    days: DayCache = Depends(_days),
) -> ModelsResponse:
    """The registered champion models that produced the day's scores, with versions and metrics."""
    run = days.get(date).run
    infos = [
        ModelInfo(
            name=str(name),
            version=str(info.get("version", "")),
            metrics={str(k): _metric(v) for k, v in dict(info.get("metrics", {})).items()},
        )
        for name, info in sorted(run.models.items())
    ]
    return ModelsResponse(list_date=run.list_date, model_version=run.model_version, models=infos)


def _metric(value: object) -> float | int | str | None:
    if value is None or isinstance(value, str | int) and not isinstance(value, bool):
        return value  # type: ignore[return-value]
    return _contribution_value(value)


scores_router = APIRouter(tags=["scores"], responses={**AUTH_ERRORS, **OUT_OF_SCOPE})


async def _posted_body(request: Request, principal: Principal = Depends(require_principal)) -> bytes:
    """The request's body, read only once the token is valid (`BodyLimit` has already bounded it)."""
    return await request.body()


# The body is read by the route, not by FastAPI (which parses it before any dependency, so a broken body was a
# 422 before the token's 401, and parses it on the event loop): the documentation names the model itself.
SCORE_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}},
}


@scores_router.post(
    "/scores",
    response_model=ScoresResponse,
    summary="Score posted accounts",
    dependencies=[Depends(_only_query())],  # it reads no parameter: `?date=` would not choose a date
    responses={
        413: {"model": ErrorBody, "description": f"The body is over {MAX_BODY_BYTES:,} bytes (refused unread)."},
        422: {"model": ProblemsBody, "description": "The body breaks the contract (each item says where)."},
        503: {"model": ErrorBody, "description": "The server was started without models to score with."},
    },
    openapi_extra={"requestBody": SCORE_REQUEST_BODY},
)
def score(
    request: Request,
    principal: Principal = Depends(require_principal),
    posted: bytes = Depends(_posted_body),
) -> Response:
    """Scores every posted account (a small export in JSON) with the champion models.

    A team-scoped token may post only accounts of its own teams.
    """
    # `def`: FastAPI runs it in its thread pool, so parsing a body of up to 32 MiB (seconds), checking and
    # scoring it leave the event loop free for the queue pages.
    with COLLECTOR_PAUSE:
        body = _score_request(request.headers.get("content-type"), posted)
        try:
            for account in body.accounts:
                # A null or blank team is `default` (the loader reads a blank team as none), as the operations file.
                team = account.team if account.team is not None and account.team.strip() else DEFAULT_TEAM
                if not principal.allows(team):
                    raise HTTPException(
                        status.HTTP_403_FORBIDDEN, "this token does not cover every posted account's team"
                    )
            # Every 422 of this route has FastAPI's documented shape: a list of {type, loc, msg}.
            export = checked_export(export_from_request(body))
        finally:
            # Its millions of row objects go before the collector is back, which would walk them (an error's
            # traceback would otherwise keep them to the event loop).
            del body
    provider: RunProvider = request.app.state.provider
    try:
        scored = provider.score(export)
    except LookupError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    except ValueError as error:
        raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": str(error)}]) from None
    rows = json.loads(scored.loc[:, list(SCORES_COLUMNS)].to_json(orient="records", date_format="iso"))
    # Serialised here, in the thread, rather than by FastAPI on the event loop.
    return Response(ScoresResponse(count=len(rows), rows=rows).model_dump_json(), media_type="application/json")


def _score_request(content_type: str | None, posted: bytes) -> ScoreRequest:
    """The posted JSON as a `ScoreRequest`; a 422 in FastAPI's shape (`loc` from "body") if it is not one."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):  # as FastAPI requires
        raise RequestValidationError(
            [{"type": "content_type", "loc": ("body",), "msg": "the body must be JSON, sent as application/json"}]
        )
    try:
        return ScoreRequest.model_validate_json(posted)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False, include_input=False)]
        ) from None


teams_router = APIRouter(tags=["teams"], responses=AUTH_ERRORS)


@teams_router.get(
    "/teams",
    response_model=TeamsResponse,
    summary="Teams the token covers",
    dependencies=ONLY_DATE,
    responses=DATE_NOT_FOUND,
)
def teams(
    date: ListDate | None = DATE_QUERY,
    principal: Principal = Depends(require_principal),
    days: DayCache = Depends(_days),
) -> TeamsResponse:
    """The day's teams visible to the caller, with calls, expected value and capacity."""
    index = days.get(date)
    run = index.run
    return TeamsResponse(
        list_date=run.list_date,
        as_of=run.as_of.to_pydatetime(),
        centre_timezone=run.centre_timezone,
        model_version=run.model_version,
        teams=[summary for summary in index.summaries if principal.allows(summary.team)],
    )


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    """OpenAPI `parameters` for a query model, generated from the model so docs cannot drift."""
    schema = model.model_json_schema()
    return [
        {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", []),
            "description": field.get("description", ""),
            "schema": {key: value for key, value in field.items() if key not in ("description", "title")},
        }
        for name, field in schema["properties"].items()
    ]


@teams_router.get(
    "/teams/{team:path}/queue",
    response_model=QueuePage,
    summary="A team's ranked queue, one page",
    responses={
        **OUT_OF_SCOPE,
        **NOT_FOUND,
        422: {"model": ProblemsBody, "description": "A query parameter is invalid or unknown."},
    },
    openapi_extra={"parameters": _query_parameters(QueueQuery), "security": [{BEARER_SCHEME: []}]},
)
async def team_queue(request: Request, team: str = TEAM_PATH) -> Response:
    """The team's calls in rank order, filtered, one page at a time; totals cover every match."""
    # The hot endpoint (p99 < 50 ms under 50 clients), written against two house rules:
    # * `async`, not `def`: once the day is indexed a request is a mask, a slice and a join (tens
    #   of microseconds), and a thread-pool hop cost more than that and doubled the p99. The
    #   CPU-bound first build of a day still runs in the thread pool.
    # * the query and token are checked here rather than by FastAPI dependencies, whose per-field
    #   resolution cost three times the handler; the same `QueueQuery` model validates them and
    #   generates the documented parameters, and errors keep FastAPI's 422/401/403 shapes.
    # The token first, then its scope: 401, then 403, whatever the query says.
    principal = request.app.state.token_auth.authenticate(request.headers.get("authorization"))
    principal.require_team(team)
    try:
        query = QueueQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("query", *item["loc"])} for item in error.errors(include_url=False)]
        ) from None
    days: DayCache = request.app.state.days
    index = days.peek(query.date) or await run_in_threadpool(days.get, query.date)
    queue = index.queue(team)
    page_size = query.page_size
    selected = queue.select(query.stage, query.min_amount, query.hour)
    if selected is None:  # no filter: the whole queue
        total = len(queue.rows_json)
        start = min((query.page - 1) * page_size, total)
        chosen = range(start, min(start + page_size, total))
        expected_value_total = queue.expected_value_total
    else:
        total = len(selected)
        chosen = selected[(query.page - 1) * page_size : query.page * page_size]
        expected_value_total = round(float(queue.expected_value[selected].sum()), 2)
    header = {
        "team": team,
        "list_date": index.list_date_iso,
        "as_of": index.as_of_iso,
        "centre_timezone": index.run.centre_timezone,
        "total": total,
        "page": query.page,
        "page_size": page_size,
        "pages": -(-total // page_size),
        "expected_value_total": expected_value_total,
        "stages": queue.stages,
    }
    # Rows were serialised when the day was indexed: the response is a splice, not a dump.
    rows = queue.rows_json
    body = b"".join(
        (
            json.dumps(header, separators=(",", ":")).encode("utf-8")[:-1],
            b',"rows":[',
            b",".join([rows[i] for i in chosen]),
            b"]}",
        )
    )
    return Response(content=body, media_type="application/json")


CSV_QUERY_NAMES = ("date", "stage", "min_amount", "hour")


@teams_router.get(
    "/teams/{team:path}/queue.csv",
    summary="A team's queue as CSV",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The contract `call_list` columns."},
        **OUT_OF_SCOPE,
        **NOT_FOUND,
    },
    # As the queue: a misspelt filter must not silently download the whole queue (after the scope: 403 first).
    dependencies=[TEAM_SCOPE, Depends(_only_query(*CSV_QUERY_NAMES))],
)
def team_queue_csv(
    team: str = TEAM_PATH,
    date: ListDate | None = DATE_QUERY,
    stage: str | None = Query(None, description="Only calls of this delinquency stage."),
    min_amount: float | None = Query(
        None, ge=0, allow_inf_nan=False, description="Only calls with at least this amount overdue."
    ),
    hour: int | None = Query(None, ge=0, le=23, description="Only calls scheduled in this centre-local hour."),
    days: DayCache = Depends(_days),
) -> Response:
    """The team's whole queue (after the filters) in the contract's `call_list` columns, rank order."""
    index = days.get(date)
    queue = index.queue(team)
    selected = queue.select(stage, min_amount, hour)
    if selected is None:
        content = queue.csv_bytes
    else:
        picked = queue.frame.iloc[selected]
        content = _call_list_csv(picked.loc[:, list(CALL_LIST_COLUMNS)])
    return Response(
        content=content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _attachment(f"callq-{team}-{index.run.list_date}.csv")},
    )


@teams_router.get(
    "/teams/{team:path}/capacity",
    response_model=CapacityResponse,
    summary="Calls per hour against capacity",
    responses={**OUT_OF_SCOPE, **NOT_FOUND},
    dependencies=[TEAM_SCOPE, *ONLY_DATE],
)
def team_capacity(
    team: str = TEAM_PATH,
    date: ListDate | None = DATE_QUERY,
    days: DayCache = Depends(_days),
) -> CapacityResponse:
    """Per centre-local hour of the team's shift: calls scheduled and the team's capacity."""
    return days.get(date).queue(team).capacity


accounts_router = APIRouter(tags=["accounts"], responses={**AUTH_ERRORS, **OUT_OF_SCOPE, **NOT_FOUND})


@accounts_router.get(
    "/accounts/{account_id:path}/explanation",  # `path`: a case system's ids may hold `/`, sent as %2F
    response_model=ExplanationResponse,
    summary="Why an account is (or is not) on the list",
    dependencies=ONLY_DATE,
)
def account_explanation(
    account_id: str = PathParam(description="The case system's account id.", examples=["A000123"]),
    date: ListDate | None = DATE_QUERY,
    principal: Principal = Depends(require_principal),
    days: DayCache = Depends(_days),
) -> ExplanationResponse:
    """The account's scores, its scheduled call if any, the reasons, and the top model contributions.

    Readable only with a token covering the account's team; accounts with no team need an admin token.
    """
    index = days.get(date)
    # The scope is checked first: to a supervisor, an unknown id and another team's account look the same (403).
    team = index.team_of(account_id)
    principal.require_team(team)
    if account_id not in index.account_team and account_id not in index.scores.index:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no account {account_id!r} in the run for {index.run.list_date}"
        )
    call = index.queue_row(account_id)
    special = index.special_reason.get(account_id)
    reasons = list(call.reasons) if call is not None else ([special] if special else [])
    return ExplanationResponse(
        account_id=account_id,
        team=team,
        list_date=index.run.list_date,
        score=index.score_row(account_id),
        call=call,
        special_handling=special,
        reasons=reasons,
        contributions=index.contributions(account_id),
    )


# ---------------------------------------------------------------------------------------
# The app

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


# FastAPI's /docs (Swagger UI) and /redoc pages load their code from a CDN and start it inline: the
# page's strict policy would leave them blank. They show no debtor data.
DOCS_PATHS = ("/docs", "/redoc")
DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"font-src https://fonts.gstatic.com; img-src 'self' data: https:; worker-src blob:; connect-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
)


class SecurityHeaders:
    """Pure ASGI middleware: hardening headers everywhere, `no-store` on debtor data."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")
        added = SECURITY_HEADERS
        if scope["path"] in DOCS_PATHS:
            added = [header for header in SECURITY_HEADERS if header[0] != DOCS_CSP[0]] + [DOCS_CSP]

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + added
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Pure ASGI middleware: a request body over `max_bytes` is refused (413) before the app reads any of it.

    A declared Content-Length is judged unread; a body without one is counted as it arrives. Bodiless methods
    pass straight through (the queue's hot path pays one comparison).
    """

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                with suppress(ValueError):
                    if int(value) > self.max_bytes:
                        await self._refuse(scope, receive, send)
                        return
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        detail = f"the request body is over {self.max_bytes:,} bytes: post fewer accounts at a time"
        await JSONResponse({"detail": detail}, status_code=status.HTTP_413_CONTENT_TOO_LARGE)(scope, receive, send)


DESCRIPTION = f"""
callq tells a collections centre whom to call today, at what hour, and why.

Every endpoint but `/health` needs `Authorization: Bearer <token>`; tokens come from
`CALLQ_API_TOKENS` (`token:teamA,teamB;token2:*`) and scope a supervisor to their teams.
The token is judged first, whatever the request holds: 401 without a valid one, then 403 for a team
outside it, and only then 422 for the query or the body. A list date is `YYYY-MM-DD`.
Money is in the account's currency; `call_at` is UTC, `call_at_centre` the centre's time,
`local_hour` the debtor's. A request body over {MAX_BODY_BYTES // 2**20} MiB is refused with 413
(`callq score` scores a whole book).
"""

TAGS = [
    {"name": "teams", "description": "The day's queue, capacity and CSV per team."},
    {"name": "accounts", "description": "Why an account is on the list."},
    {"name": "scores", "description": "On-demand scoring of posted accounts."},
    {"name": "models", "description": "The champion models behind the scores."},
    {"name": "health", "description": "Liveness."},
]


def create_app(provider: RunProvider, *, auth: TokenAuth | None = None) -> FastAPI:
    """The API and supervisor page over `provider`; tokens from `CALLQ_API_TOKENS` unless `auth` is given."""
    app = FastAPI(
        title="callq API",
        summary="Ranked daily call lists for debt-collection centres, with reasons.",
        description=DESCRIPTION,
        version="1",
        openapi_tags=TAGS,
    )
    app.state.provider = provider
    app.state.days = DayCache(provider)
    app.state.token_auth = auth if auth is not None else TokenAuth.from_env()
    for router in (health_router, teams_router, accounts_router, scores_router, models_router):
        app.include_router(router)
    page = PAGE_FILE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def supervisor_page() -> HTMLResponse:
        """The supervisor page; it reads the API with the token the supervisor types in."""
        return HTMLResponse(page)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodyLimit)  # inside SecurityHeaders: a 413 has the hardening headers too
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = _with_posted_models(app)
    return app


def _with_posted_models(app: FastAPI) -> Callable[[], dict]:
    """`app.openapi`, its components holding the model of the body `POST /scores` reads itself."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()  # kept by FastAPI as `app.openapi_schema`: completed once, in place
            posted = ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            models = schema.setdefault("components", {}).setdefault("schemas", {})
            models.update(posted.pop("$defs", {}))
            models["ScoreRequest"] = posted
        return app.openapi_schema

    return openapi


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 in FastAPI's shape, without echoing what was sent: a posted export holds other debtors' data."""
    detail = [
        {
            "type": item.get("type"),
            "loc": list(item.get("loc", ())),
            "msg": item.get("msg"),
            **({"ctx": {key: str(value) for key, value in item["ctx"].items()}} if item.get("ctx") else {}),
        }
        for item in error.errors()
    ]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail})
