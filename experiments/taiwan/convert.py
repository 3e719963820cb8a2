"""Convert the Taiwan credit-card default CSV (UCI, 2005) into a callq contract export.

The data holds, per card holder and month (Apr-Sep 2005), a statement amount, the amount paid and
the bank's repayment status code; the contract holds dues and payments. Dues are not in the data:
`reconstruct_dues` rebuilds a minimum-payment schedule that, with callq's oldest-first rule,
reproduces the bank's status codes as DPD buckets wherever the payments allow it.
Demographic columns and the target are never read here (`USED_COLUMNS`).

Run: ``python -m experiments.taiwan.convert --out DIR [--csv PATH]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.build import build_features
from features.contract import FLAG_COLUMNS, SCHEMAS, TABLES, Export
from features.io import validate_export, write_export
from features.validate import contract_dtypes

REPO_ROOT = Path(__file__).resolve().parents[2]
# Relative to the repository root: the shared data folder sits beside the checkout.
DEFAULT_CSV = Path("../shared/data/taiwan-credit-default/UCI_Credit_Card.csv")
SHA256 = "7fdc546a611a5a2512b6250bee2e52c016729066d0a0a10a28675ccf7eb46bfa"

ZONE = "Asia/Taipei"
# The export is taken at the start of October 2005, Taipei time: the target month begins.
AS_OF = pd.Timestamp("2005-10-01T00:00:00", tz=ZONE).tz_convert("UTC")
# Observed months, oldest first: April ... September 2005.
MONTHS = tuple(pd.Timestamp(2005, month, 1) for month in range(4, 10))
STATUS_COLUMNS = ("PAY_6", "PAY_5", "PAY_4", "PAY_3", "PAY_2", "PAY_0")
BILL_COLUMNS = tuple(f"BILL_AMT{index}" for index in range(6, 0, -1))
PAYMENT_COLUMNS = tuple(f"PAY_AMT{index}" for index in range(6, 0, -1))
# The only columns the conversion reads: no demographics (SEX, EDUCATION, MARRIAGE, AGE), no target.
USED_COLUMNS = ("ID", "LIMIT_BAL", *STATUS_COLUMNS, *BILL_COLUMNS, *PAYMENT_COLUMNS)
PROTECTED_COLUMNS = ("SEX", "EDUCATION", "MARRIAGE", "AGE")
TARGET_COLUMN = "target"

MAX_STATUS = 8  # the longest delay code in the data (months)
# Reconstructed arrears before April: an April status of 8 needs dues back to September 2004.
HISTORY = MAX_STATUS - 1
N_OBSERVED = len(MONTHS)
# Due grid: HISTORY months of arrears, the six observed months, then October (upcoming).
GRID = HISTORY + N_OBSERVED + 1
TEAMS = ((1, "early"), (3, "middle"))  # months late <= bound -> team; beyond: "late"


class ConversionConfig(BaseModel):
    """The due-reconstruction rule: a minimum payment per statement, due on a fixed day of the month."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Minimum due of a statement B > 0: min(B, max(rate * B, floor)), whole NT$; none when B <= 0.
    min_payment_rate: float = Field(default=0.02, gt=0, le=1)
    min_payment_floor: float = Field(default=0.0, ge=0)
    due_day: int = Field(default=15, ge=1, le=28)
    # The data gives the month of a payment, not its day: it is booked on this local day and hour.
    payment_day: int = Field(default=15, ge=1, le=28)
    payment_hour: int = Field(default=12, ge=0, le=23)
    # Fit the schedule to the status codes (True), or keep the plain rule (the agreement baseline).
    fit_to_status: bool = True
    opened_date: dt.date = dt.date(2004, 1, 1)


@dataclass(frozen=True)
class DueSchedule:
    """Reconstructed dues on the month grid (whole NT$, 0 = no due) and the months fitted exactly."""

    amounts: np.ndarray  # (accounts, GRID)
    fitted: np.ndarray  # (accounts, N_OBSERVED) bool: status the schedule reproduces by construction
    months_late_at_as_of: np.ndarray  # (accounts,) dues missed in a row at the end of September


def resolve_csv(path: str | Path | None = None) -> Path:
    """The CSV path: the given one, else DEFAULT_CSV relative to the repository root."""
    resolved = Path(path) if path is not None else (REPO_ROOT / DEFAULT_CSV).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"Taiwan credit-default CSV not found at {resolved}")
    return resolved


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_source(path: str | Path | None = None, *, expected_sha256: str | None = SHA256) -> pd.DataFrame:
    """The behaviour columns of the CSV (USED_COLUMNS, file order), after checking the file's sha256.

    Pass `expected_sha256=None` for samples of the file (tests).
    """
    csv_path = resolve_csv(path)
    if expected_sha256 is not None:
        actual = file_sha256(csv_path)
        if actual != expected_sha256:
            raise ValueError(f"{csv_path}: sha256 {actual} differs from the documented {expected_sha256}")
    frame = pd.read_csv(csv_path, usecols=list(USED_COLUMNS))
    return frame.loc[:, list(USED_COLUMNS)]


def minimum_due(bill: np.ndarray, config: ConversionConfig) -> np.ndarray:
    """The minimum payment of a statement: min(bill, max(rate * bill, floor)), whole NT$; 0 without a bill."""
    bill = np.asarray(bill, dtype="float64")
    due = np.minimum(bill, np.maximum(config.min_payment_rate * bill, config.min_payment_floor))
    return np.where(bill > 0, np.ceil(due), 0.0)


def _grid_month(position: int) -> pd.Timestamp:
    return MONTHS[0] + pd.DateOffset(months=position - HISTORY)


def _status_bounds(paid: np.ndarray, status: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on cumulative dues A (per grid month) from the active status constraints.

    With oldest-first payment, status k >= 1 at month t means A[t-k] <= paid_t < A[t-k+1]
    (the due of month t-k+1 is the oldest unpaid one); status <= 0 means A[t] <= paid_t.
    Returns (strict lower, inclusive upper), each nondecreasing along the grid, as A is.
    """
    n = len(paid)
    rows = np.arange(n)
    lower = np.full((n, GRID), -np.inf)
    upper = np.full((n, GRID), np.inf)
    for month in range(N_OBSERVED):
        position = HISTORY + month
        code, covered = status[:, month], paid[:, month]
        on = active[:, month]
        current = on & (code <= 0)
        upper[rows[current], position] = np.minimum(upper[rows[current], position], covered[current])
        late = on & (code >= 1)
        oldest_unpaid = position - np.clip(code, 1, MAX_STATUS) + 1
        lower[rows[late], oldest_unpaid[late]] = np.maximum(lower[rows[late], oldest_unpaid[late]], covered[late])
        before = late & (oldest_unpaid >= 1)
        upper[rows[before], oldest_unpaid[before] - 1] = np.minimum(
            upper[rows[before], oldest_unpaid[before] - 1], covered[before]
        )
    # A is nondecreasing: a bound on A[j] holds for every later (lower) or earlier (upper) month too.
    lower = np.maximum.accumulate(lower, axis=1)
    upper = np.minimum.accumulate(upper[:, ::-1], axis=1)[:, ::-1]
    return lower, upper


# Every subset of the six months, best first: September (the as_of state) always, then as many
# months as possible, then later months before earlier ones.
_MASKS = np.array(list(itertools.product((False, True), repeat=N_OBSERVED)))
_MASK_SCORE = _MASKS[:, -1] * 10_000 + _MASKS.sum(axis=1) * 100 + _MASKS @ (2 ** np.arange(N_OBSERVED))
_MASK_ORDER = np.argsort(-_MASK_SCORE, kind="stable")


def _best_feasible_months(paid: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Per account, the largest set of months whose status one due schedule can reproduce.

    Some code sequences are impossible under oldest-first payment whatever the dues (a jump from
    0 to 2 in one month, or a status of 2 kept while paying nothing): those months are dropped.
    """
    n = len(paid)
    chosen = np.full(n, -1)
    for mask_index in _MASK_ORDER:
        todo = np.flatnonzero(chosen < 0)
        if not len(todo):
            break
        active = np.broadcast_to(_MASKS[mask_index], (len(todo), N_OBSERVED))
        lower, upper = _status_bounds(paid[todo], status[todo], active)
        chosen[todo[(lower < upper).all(axis=1)]] = mask_index
    return _MASKS[chosen]


def reconstruct_dues(frame: pd.DataFrame, config: ConversionConfig) -> DueSchedule:
    """Monthly minimum dues (statement of month t-1 due on `due_day` of month t), fitted to the statuses.

    The plain rule gives cumulative dues A_rule. When `fit_to_status`, A is A_rule moved the least
    into the bounds of the largest feasible set of status constraints; where a status needs an unpaid
    due the rule lacks (arrears before April, a due the payments already cover), that due is raised
    to the payments plus one rule-sized instalment.
    """
    bills = frame.loc[:, list(BILL_COLUMNS)].to_numpy(dtype="float64")
    payments = frame.loc[:, list(PAYMENT_COLUMNS)].to_numpy(dtype="float64")
    status = frame.loc[:, list(STATUS_COLUMNS)].to_numpy(dtype="int64")
    paid = np.cumsum(payments, axis=1)
    statement_dues = minimum_due(bills, config)
    rule = np.zeros((len(frame), GRID))
    # April's due comes from the March statement, which the data lacks: April's own stands in.
    rule[:, HISTORY] = statement_dues[:, 0]
    rule[:, HISTORY + 1 :] = statement_dues  # month t+1 pays the statement of month t; October upcoming
    cumulative_rule = np.cumsum(rule, axis=1)
    if config.fit_to_status:
        fitted = _best_feasible_months(paid, status)
        lower, upper = _status_bounds(paid, status, fitted)
        instalment = np.maximum(statement_dues.max(axis=1, keepdims=True), 1.0)
        margin = np.where(rule > 0, rule, instalment)
        target = np.where(np.isfinite(lower), np.maximum(cumulative_rule, lower + margin), cumulative_rule)
        cumulative = np.minimum(np.maximum.accumulate(target, axis=1), upper)
    else:
        fitted = np.zeros_like(status, dtype=bool)
        cumulative = cumulative_rule
    amounts = np.diff(cumulative, axis=1, prepend=0.0)
    # Dues missed in a row at the end of September: fallen dues the payments do not cover.
    last = HISTORY + N_OBSERVED - 1
    covered = cumulative[:, : last + 1] <= paid[:, -1:]
    first_uncovered = np.where(covered.all(axis=1), last + 1, np.argmin(covered, axis=1))
    return DueSchedule(amounts=amounts, fitted=fitted, months_late_at_as_of=last + 1 - first_uncovered)


def _typed(table: str, columns: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(columns) if columns else pd.DataFrame({c.name: [] for c in SCHEMAS[table]})
    return frame.loc[:, [c.name for c in SCHEMAS[table]]].astype(contract_dtypes(table))


def _team(months_late: np.ndarray) -> np.ndarray:
    """Collections team by stage at as_of: early (current, M1), middle (M2-M3), late (M4+)."""
    team = np.full(len(months_late), "late", dtype=object)
    for bound, name in reversed(TEAMS):
        team[months_late <= bound] = name
    return team


def convert(frame: pd.DataFrame, config: ConversionConfig | None = None) -> Export:
    """A contract export (as_of 2005-10-01 Taipei) of the CSV's behaviour columns."""
    config = config or ConversionConfig()
    missing = [column for column in USED_COLUMNS if column not in frame.columns]
    if missing:
        raise KeyError(f"source frame lacks columns {missing}")
    schedule = reconstruct_dues(frame, config)
    account_ids = np.array([f"TW{int(value):05d}" for value in frame["ID"].to_numpy()], dtype=object)
    n = len(frame)
    accounts = {
        "account_id": account_ids,
        "customer_id": np.array([f"C{value[2:]}" for value in account_ids], dtype=object),
        "product": np.full(n, "credit_card", dtype=object),
        "opened_date": np.full(n, np.datetime64(config.opened_date, "s")),
        "credit_limit": frame["LIMIT_BAL"].to_numpy(dtype="float64"),
        "timezone": np.full(n, ZONE, dtype=object),
        "team": _team(schedule.months_late_at_as_of),
        "agent_id": np.full(n, None, dtype=object),
        **{flag: np.zeros(n, dtype=bool) for flag in FLAG_COLUMNS},
    }
    due_dates = np.array([np.datetime64(_grid_month(j).replace(day=config.due_day).date(), "s") for j in range(GRID)])
    row, position = np.nonzero(schedule.amounts > 0)
    dues = {
        "account_id": account_ids[row],
        "due_date": due_dates[position],
        "amount_due": schedule.amounts[row, position],
    }
    payments = frame.loc[:, list(PAYMENT_COLUMNS)].to_numpy(dtype="float64")
    paid_times = (
        pd.DatetimeIndex([month.replace(day=config.payment_day, hour=config.payment_hour) for month in MONTHS])
        .tz_localize(ZONE)
        .tz_convert("UTC")
    )
    pay_row, pay_month = np.nonzero(payments > 0)
    payment_ids = pd.Series(account_ids[pay_row]).str.cat(
        pd.Series([month.strftime("%Y%m") for month in MONTHS]).iloc[pay_month].to_numpy(), sep="-"
    )
    payments_table = {
        "payment_id": payment_ids.to_numpy(dtype=object),
        "account_id": account_ids[pay_row],
        "paid_at": paid_times[pay_month],
        "amount": payments[pay_row, pay_month],
        "status": np.full(len(pay_row), "settled", dtype=object),
        "channel": np.full(len(pay_row), None, dtype=object),
    }
    return Export(
        as_of=AS_OF,
        accounts=_typed("accounts", accounts),
        dues=_typed("dues", dues),
        payments=_typed("payments", payments_table),
        contacts=_typed("contacts", {}),
        promises=_typed("promises", {}),
        source="UCI default of credit card clients (Taiwan, 2005)",
    )


def month_end_snapshots(account_ids: pd.Series) -> pd.DataFrame:
    """Every account at the end of each observed month (next month's first midnight, Taipei)."""
    ends = [(month + pd.DateOffset(months=1)).tz_localize(ZONE).tz_convert("UTC") for month in MONTHS]
    ids = pd.Series(account_ids).astype("string").to_numpy()
    return pd.DataFrame({"account_id": np.tile(ids, len(ends)), "as_of": pd.DatetimeIndex(np.repeat(ends, len(ids)))})


def status_agreement(export: Export, frame: pd.DataFrame) -> pd.DataFrame:
    """Per month (and overall): how often callq's DPD bucket (months delinquent) equals the bank's status.

    A status <= 0 (no consumption, paid in full, minimum paid) expects a current account (0 DPD);
    a status k >= 1 expects months_delinquent k, i.e. 30(k-1) < DPD <= 30k.
    """
    account_ids = export.accounts["account_id"]
    features = build_features(export, month_end_snapshots(account_ids))
    observed = features["months_delinquent"].to_numpy().reshape(N_OBSERVED, len(account_ids)).T
    expected = np.clip(frame.loc[:, list(STATUS_COLUMNS)].to_numpy(dtype="int64"), 0, None)
    match = observed == expected
    late = expected > 0
    rows = []
    for index, month in enumerate([*MONTHS, None]):
        columns = slice(None) if month is None else slice(index, index + 1)
        hit, due = match[:, columns], late[:, columns]
        rows.append(
            {
                "month": "all" if month is None else month.strftime("%Y-%m"),
                "status_column": "all" if month is None else STATUS_COLUMNS[index],
                "rows": int(hit.size),
                "agreement": float(hit.mean()),
                "agreement_current": float(hit[~due].mean()) if (~due).any() else float("nan"),
                "agreement_delinquent": float(hit[due].mean()) if due.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def convert_to(
    out: str | Path,
    csv: str | Path | None = None,
    config: ConversionConfig | None = None,
    *,
    expected_sha256: str | None = SHA256,
) -> Export:
    """Read the CSV, convert it, write the export to `out` (Parquet) and check it against the contract."""
    export = convert(read_source(csv, expected_sha256=expected_sha256), config)
    write_export(export, out)
    violations = validate_export(out, max_per_rule=5)
    if violations:
        raise ValueError(f"converted export breaks the contract: {violations[0]} ({len(violations)} shown)")
    return export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="export directory to write")
    parser.add_argument("--csv", default=None, help=f"source CSV (default: <repo>/{DEFAULT_CSV})")
    args = parser.parse_args(argv)
    export = convert_to(args.out, args.csv)
    counts = ", ".join(f"{name} {len(export.table(name)):,}" for name in TABLES)
    print(f"wrote {args.out}: {counts}")


if __name__ == "__main__":
    main()
