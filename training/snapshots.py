"""Labelled training snapshots: weekly as-of dates, repayment labels, contact rows, time splits.

Leakage rules, all enforced here:
* a snapshot's features see only events strictly before it (`features.build` does that);
* its label window [as_of, as_of + horizon) ends at or before the export's as_of;
* splits are ordered in time with a gap >= horizon, so no label window crosses a split
  (`assert_split_gap` raises otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import MODEL_FEATURES, SLOT_LOOKUP_FEATURES
from features.contract import RIGHT_PARTY_OUTCOMES, Export
from training.config import TrainConfig

SPLITS = ("train", "validation", "test")
# Feature columns training keeps: model inputs, the per-hour rates contact rows pick their slot's rate
# from, and `stage_bucket`, the DPD-bucket rule baseline's key.
TRAINING_COLUMNS = (*MODEL_FEATURES, *SLOT_LOOKUP_FEATURES, "stage_bucket")
# Money has at most 2 decimals: a payment within half a cent of the threshold covers it.
MONEY_TOLERANCE = 0.005


class SplitLeakageError(ValueError):
    """Raised when time splits overlap or sit closer together than the label horizon."""


@dataclass(frozen=True)
class SnapshotSplits:
    """Snapshot as-of dates (UTC) of each split, each tuple ascending."""

    train: tuple[pd.Timestamp, ...]
    validation: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]

    def by_split(self) -> dict[str, tuple[pd.Timestamp, ...]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def dates(self) -> list[pd.Timestamp]:
        return [*self.train, *self.validation, *self.test]

    def split_of(self) -> dict[pd.Timestamp, str]:
        return {date: name for name, dates in self.by_split().items() for date in dates}


@dataclass
class TrainingData:
    """Labelled rows for the three models, each with a `split` column."""

    splits: SnapshotSplits
    # One row per (account, snapshot) in collections: features, `label_repay`, `treated`.
    snapshots: pd.DataFrame
    # One row per outbound call in the week after a snapshot: snapshot features + call columns.
    contacts: pd.DataFrame
    feature_names: list[str]


def assert_split_gap(splits: SnapshotSplits, horizon_days: int, gap_days: int | None = None) -> None:
    """Fail loudly unless train < validation < test with a gap >= horizon between them."""
    horizon = pd.Timedelta(days=horizon_days)
    gap = pd.Timedelta(days=max(gap_days or 0, horizon_days))
    parts = splits.by_split()
    for name, dates in parts.items():
        if not dates:
            raise SplitLeakageError(f"split {name!r} has no snapshot")
        if list(dates) != sorted(dates):
            raise SplitLeakageError(f"split {name!r} dates are not ascending")
    for earlier, later in (("train", "validation"), ("validation", "test")):
        last, first = max(parts[earlier]), min(parts[later])
        # The earlier split's last label window [last, last + horizon) must end before the
        # later split begins, else a payment would label rows on both sides.
        if first - last < gap or last + horizon > first:
            raise SplitLeakageError(
                f"{earlier} ends {last:%Y-%m-%d} and {later} starts {first:%Y-%m-%d}: "
                f"gap {(first - last).days} d < required {gap.days} d (label horizon {horizon_days} d)"
            )


def snapshot_splits(as_of: pd.Timestamp, config: TrainConfig, history_start: pd.Timestamp) -> SnapshotSplits:
    """Weekly snapshot dates back from `as_of - horizon`: test latest, then validation, then train.

    The earliest train snapshots are dropped when they would see less than `min_history_days` of
    history. When the history is short, validation and test shrink together, one snapshot at a
    time down to one each, while train would keep fewer snapshots than validation and test
    together (`config`'s counts are the most used); a history too short for one snapshot each
    is an error.
    """
    layout = None
    # Both counts lose one snapshot a step, each down to one: 3 and 1 go 3/1, 2/1, 1/1 (not 3/1 alone).
    for shrink in range(max(config.validation_snapshots, config.test_snapshots)):
        n_validation = max(config.validation_snapshots - shrink, 1)
        n_test = max(config.test_snapshots - shrink, 1)
        layout = _splits_layout(as_of, config, history_start, n_validation, n_test)
        if layout is not None and len(layout.train) >= len(layout.validation) + len(layout.test):
            break
    if layout is None or not layout.train:
        # One snapshot each: test a horizon before as_of, the others a gap (on the snapshot grid) apart, and
        # the train snapshot `min_history_days` after the history's start.
        gap = -(-config.gap_days // config.snapshot_spacing_days) * config.snapshot_spacing_days
        needed = config.horizon_days + 2 * gap + config.min_history_days
        held = (as_of - history_start) / pd.Timedelta(days=1)
        raise ValueError(
            f"the export's history (from {history_start:%Y-%m-%d}, {held:.0f} days before its as_of) is too short "
            f"for one train, one validation and one test snapshot {config.snapshot_spacing_days} days apart with a "
            f"{config.gap_days}-day gap, {config.min_history_days} days of history before each and a "
            f"{config.horizon_days}-day label horizon: that needs at least {needed} days"
        )
    assert_split_gap(layout, config.horizon_days, config.gap_days)
    return layout


def _splits_layout(
    as_of: pd.Timestamp, config: TrainConfig, history_start: pd.Timestamp, n_validation: int, n_test: int
) -> SnapshotSplits | None:
    """The weekly layout with these validation and test counts; None when they do not fit the history."""
    spacing = pd.Timedelta(days=config.snapshot_spacing_days)
    gap = pd.Timedelta(days=config.gap_days)
    # A label needs its full horizon strictly before as_of: [s, s + horizon) with s + horizon <= as_of.
    latest = as_of - pd.Timedelta(days=config.horizon_days)

    def back_from(start: pd.Timestamp, count: int) -> list[pd.Timestamp]:
        return sorted(start - k * spacing for k in range(count))

    def first_grid_date_before(date: pd.Timestamp) -> pd.Timestamp:
        # The latest date of the weekly grid anchored at `latest` that is at least `gap` before `date`.
        steps = int(np.ceil((latest - (date - gap)) / spacing))
        return latest - max(steps, 0) * spacing

    test = back_from(latest, n_test)
    validation = back_from(first_grid_date_before(test[0]), n_validation)
    earliest_useful = history_start + pd.Timedelta(days=config.min_history_days)
    if validation[0] < earliest_useful:
        return None
    train = back_from(first_grid_date_before(validation[0]), config.train_snapshots)
    train = [date for date in train if date >= earliest_useful]
    return SnapshotSplits(tuple(train), tuple(validation), tuple(test))


# Event tables that every collections book fills steadily: the history starts where both are recorded.
_HISTORY_TABLES = (("payments", "paid_at"), ("contacts", "started_at"))
# The share of a table's earliest events ignored when dating its start: a few old records (a migration,
# a back-dated correction) do not stretch the history.
_START_QUANTILE = 0.001


def history_start(export: Export) -> pd.Timestamp:
    """Where the export's event history begins (UTC): the later of the payments' and contacts' starts.

    Dues can go back to origination while payments and contacts cover only the last months; a
    snapshot before those start would see an empty history and a label window with no payment in
    it. With neither table filled, the earliest due or promise stands in.
    """
    starts = []
    for table, column in _HISTORY_TABLES:
        times = getattr(export, table)[column].dropna()
        if len(times):
            ignored = int(_START_QUANTILE * len(times))
            starts.append(pd.Timestamp(times.nsmallest(ignored + 1).iloc[-1]))
    if starts:
        return max(starts)
    candidates = [export.promises["created_at"].min()]
    if len(export.dues):
        candidates.append(pd.Timestamp(export.dues["due_date"].min()).tz_localize("UTC"))
    present = [pd.Timestamp(value) for value in candidates if not pd.isna(value)]
    return min(present) if present else export.as_of


def _utc_date(as_of: pd.Timestamp) -> pd.Timestamp:
    """The naive calendar date of a UTC timestamp, comparable with contract date columns."""
    return as_of.tz_convert("UTC").normalize().tz_localize(None)


def overdue_candidates(export: Export, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """Cheap pre-filter: (account_id, as_of) pairs opened before as_of with dues exceeding payments.

    Amount overdue = dues fallen due before the day less settled payments before it, in exact
    cents (one bincount per date over integer account rows); the feature build computes the same
    quantity and rows are filtered on it again afterwards. Rows come in `account_id` order per date,
    not in the export's row order: the per-snapshot sample and LightGBM's bagging follow the row order,
    so the same book read in another order (a re-exported file) must give the same rows.
    """
    from features.timeline import account_codes, to_cents, to_us

    accounts = export.accounts
    index = pd.Index(accounts["account_id"].astype("string"))
    n = len(index)
    opened = to_us(accounts["opened_date"])
    dues, payments = export.dues, export.payments
    due_row = account_codes(dues["account_id"], index)
    due_day, due_cents = to_us(dues["due_date"]), to_cents(dues["amount_due"])
    settled = (payments["status"].astype("string") == "settled").fillna(False).to_numpy(dtype=bool)
    paid_row = account_codes(payments["account_id"], index)
    keep = settled & (paid_row >= 0)
    paid_row, paid_at = paid_row[keep], to_us(payments["paid_at"])[keep]
    paid_cents = to_cents(payments["amount"])[keep]
    due_keep = due_row >= 0
    due_row, due_day, due_cents = due_row[due_keep], due_day[due_keep], due_cents[due_keep]
    ids = accounts["account_id"].astype("string").to_numpy()
    by_id = index.argsort()
    frames = []
    for as_of in dates:
        day = to_us(pd.Series([_utc_date(as_of)]))[0]
        instant = to_us(pd.Series([as_of]))[0]
        fallen = due_day < day
        due = np.bincount(due_row[fallen], weights=due_cents[fallen], minlength=n)
        before = paid_at < instant
        paid = np.bincount(paid_row[before], weights=paid_cents[before], minlength=n)
        # Cents summed as float64 stay exact (far below 2**53): owing means at least one cent.
        owing = (opened < day) & (due - paid >= 1)
        rows = by_id[owing[by_id]]
        frames.append(pd.DataFrame({"account_id": ids[rows], "as_of": as_of}))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["account_id", "as_of"])
    rows["account_id"] = rows["account_id"].astype("string")
    rows["as_of"] = pd.to_datetime(rows["as_of"], utc=True).astype("datetime64[us, UTC]")
    return rows


def sample_per_snapshot(rows: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows per `as_of`: a seeded uniform sample of accounts, in the original order.

    Drawn before features are built, so a large book never materialises every snapshot row.
    """
    if max_rows is None or len(rows) == 0:
        return rows
    draw = pd.Series(np.random.default_rng(seed).random(len(rows)), index=rows.index)
    rank = draw.groupby(rows["as_of"].to_numpy(), sort=False).rank(method="first")
    return rows[(rank <= max_rows).to_numpy()].reset_index(drop=True)


def repayment_labels(payments: pd.DataFrame, rows: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Contract `p_repay` label: settled payments in [as_of, as_of + horizon) cover
    min(amount_overdue, oldest_unpaid_remaining). Returned payments count as not paid.

    `rows` holds account_id, as_of, amount_overdue, oldest_unpaid_remaining; returns 0/1 aligned to it.
    """
    horizon = pd.Timedelta(days=horizon_days)
    settled = payments.loc[payments["status"] == "settled", ["account_id", "paid_at", "amount"]]
    paid = pd.Series(0.0, index=rows.index)
    for as_of, group in rows.groupby("as_of", sort=True):
        window = settled[(settled["paid_at"] >= as_of) & (settled["paid_at"] < as_of + horizon)]
        total = window.groupby("account_id", sort=False)["amount"].sum()
        paid.loc[group.index] = group["account_id"].map(total).fillna(0.0).to_numpy(dtype=float)
    oldest = rows["oldest_unpaid_remaining"].astype(float)
    need = np.fmin(rows["amount_overdue"].astype(float), oldest.where(oldest > 0))
    return (paid >= need - MONEY_TOLERANCE).astype(np.int8).rename("label_repay")


def local_hour_weekday(times_utc: pd.Series, timezones: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Debtor-local hour (0-23) and weekday (0 = Monday) of UTC instants, vectorised per zone."""
    hours = np.zeros(len(times_utc), dtype=np.int16)
    weekdays = np.zeros(len(times_utc), dtype=np.int16)
    zones = timezones.astype(str).to_numpy()
    instants = pd.DatetimeIndex(times_utc)
    if instants.tz is None:
        instants = instants.tz_localize("UTC")
    for zone in pd.unique(zones):
        mask = zones == zone
        local = instants[mask].tz_convert(zone)
        hours[mask] = local.hour
        weekdays[mask] = local.day_of_week
    return hours, weekdays


def treatment_flags(contacts: pd.DataFrame, rows: pd.DataFrame, window_days: int) -> pd.Series:
    """1 where an outbound call reached the debtor in [as_of, as_of + window); the uplift treatment."""
    window = pd.Timedelta(days=window_days)
    reached = contacts.loc[
        (contacts["channel"] == "call")
        & (contacts["direction"] == "outbound")
        & contacts["outcome"].isin(RIGHT_PARTY_OUTCOMES),
        ["account_id", "started_at"],
    ]
    treated = pd.Series(0, index=rows.index, dtype=np.int8)
    for as_of, group in rows.groupby("as_of", sort=True):
        hit = reached.loc[(reached["started_at"] >= as_of) & (reached["started_at"] < as_of + window), "account_id"]
        treated.loc[group.index] = group["account_id"].isin(hit.unique()).to_numpy().astype(np.int8)
    return treated.rename("treated")


# The one order calls are sampled in: by snapshot, then time, account and outcome.
_CALL_ORDER = ["as_of", "started_at", "account_id", "outcome"]


def contact_rows(
    export: Export, snapshot_rows: pd.DataFrame, window_days: int, max_rows: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """One row per outbound call in [as_of, as_of + window) of each snapshot, with that snapshot's
    features (point-in-time valid: snapshot <= call time), the call's debtor-local hour and weekday,
    and the label `label_rpc` (right-party contact). The snapshot must carry `split`.
    With `max_rows`, a uniform seeded sample of the calls is kept (before the feature join, so a
    large book's calls never all materialise with ~90 feature columns).
    """
    from features.contacts import hour_bucket

    window = pd.Timedelta(days=window_days)
    calls = export.contacts.loc[
        (export.contacts["channel"] == "call") & (export.contacts["direction"] == "outbound"),
        ["account_id", "started_at", "outcome"],
    ]
    calls = calls[calls["account_id"].isin(snapshot_rows["account_id"].unique())]
    frames = []
    for as_of in sorted(snapshot_rows["as_of"].unique()):
        as_of = pd.Timestamp(as_of)
        in_window = calls[(calls["started_at"] >= as_of) & (calls["started_at"] < as_of + window)]
        frames.append(in_window.assign(as_of=as_of))
    if not frames:
        raise ValueError(
            "no account was overdue at any snapshot of the history, so there is no call to an overdue account "
            "to learn from (does the export hold the dues, and are any of them unpaid?)"
        )
    attempts = pd.concat(frames, ignore_index=True)
    attempts["as_of"] = attempts["as_of"].astype(snapshot_rows["as_of"].dtype)
    # Only calls of an account-date that is a snapshot row count toward the cap: sampled before, the sample
    # lost those without one (a book whose snapshots sample their accounts kept far fewer calls than the cap).
    keys = snapshot_rows[["account_id", "as_of"]]
    attempts = attempts.merge(keys, on=["account_id", "as_of"], how="inner", validate="many_to_one")
    if max_rows is not None and len(attempts) > max_rows:
        # Drawn from the calls in one order whatever the export's row order (a database returns its rows in
        # storage order, which VACUUM changes), so that the same calls always give the same sample.
        attempts = attempts.sort_values(_CALL_ORDER, kind="stable", ignore_index=True)
        attempts = attempts.sample(n=max_rows, random_state=seed).sort_index()
    joined = attempts.merge(snapshot_rows, on=["account_id", "as_of"], how="inner", validate="many_to_one")
    zones = joined["account_id"].map(export.accounts.set_index("account_id")["timezone"])
    hours, weekdays = local_hour_weekday(joined["started_at"], zones)
    joined["local_hour"] = hours
    joined["weekday"] = weekdays
    joined = add_slot_rates(joined, hour_bucket)
    joined["label_rpc"] = joined["outcome"].isin(RIGHT_PARTY_OUTCOMES).astype(np.int8)
    # Two calls to one account at one instant are ordered by their outcome, not by where the export had them.
    joined = joined.sort_values(["started_at", "account_id", "as_of", "outcome"], kind="stable")
    return joined.drop(columns=["outcome"]).reset_index(drop=True)


def add_slot_rates(frame: pd.DataFrame, hour_bucket) -> pd.DataFrame:
    """Copy of `frame` with the account's smoothed RPC rates for the row's hour, hour bucket and weekday.

    Picks `rpc_rate_hour_bucket_<b>`, `rpc_rate_hour_<h>` (and the mean of h - 1 and h + 1),
    `rpc_mixture_hour_<h>` / `rpc_rate_weekday_<d>` by the row's `local_hour` / `weekday` (NaN where the frame lacks the
    column, e.g. an older feature set).
    """
    out = frame.copy()
    rates = slot_rates(out, out["local_hour"].to_numpy(dtype=int), out["weekday"].to_numpy(dtype=int), hour_bucket)
    for name, values in rates.items():
        out[name] = values
    return out


def slot_rates(frame: pd.DataFrame, hours: np.ndarray, weekdays: np.ndarray, hour_bucket) -> dict[str, np.ndarray]:
    """The picked rate columns of `add_slot_rates` for the rows of `frame` called at `hours` / `weekdays`."""
    buckets = np.asarray([hour_bucket(int(hour)) for hour in range(24)], dtype=object)[hours]
    # The hours either side: answering habits span more than one clock hour (a work-start peak at 08:xx
    # or 09:xx), so the neighbours' rates steady the slot's own few calls.
    around = np.column_stack([_pick_by_key(frame, "rpc_rate_hour_", (hours + step) % 24) for step in (-1, 1)])
    known = ~np.isnan(around)
    return {
        "rpc_rate_this_hour_bucket": _pick_by_key(frame, "rpc_rate_hour_bucket_", buckets),
        "rpc_rate_this_hour": _pick_by_key(frame, "rpc_rate_hour_", hours),
        "rpc_mixture_this_hour": _pick_by_key(frame, "rpc_mixture_hour_", hours),
        "rpc_rate_adjacent_hours": np.where(
            known.any(axis=1), np.where(known, around, 0.0).sum(axis=1) / np.maximum(known.sum(axis=1), 1), np.nan
        ),
        "rpc_rate_this_weekday": _pick_by_key(frame, "rpc_rate_weekday_", weekdays),
    }


def _pick_by_key(frame: pd.DataFrame, prefix: str, keys: np.ndarray) -> np.ndarray:
    """Row-wise pick of column `prefix + key` (NaN where that column does not exist)."""
    picked = np.full(len(frame), np.nan)
    for key in pd.unique(keys):
        column = f"{prefix}{key}"
        if column in frame.columns:
            mask = keys == key
            picked[mask] = frame.loc[mask, column].to_numpy(dtype=float)
    return picked


def build_training_data(export: Export, config: TrainConfig) -> TrainingData:
    """Snapshots, labels, treatment flags and contact rows for every split of `config`.

    Each snapshot date keeps at most `config.max_rows_per_snapshot` overdue accounts (seeded uniform
    sample, drawn before features); contact rows are the calls of the kept snapshot rows.
    """
    from features.build import build_features

    splits = snapshot_splits(export.as_of, config, history_start(export))
    candidates = overdue_candidates(export, splits.dates())
    candidates = sample_per_snapshot(candidates, config.max_rows_per_snapshot, config.seed)
    # Only what the models, labels and baselines read, numbers in 4 bytes: a large book's rows stay small.
    features = build_features(export, candidates, columns=TRAINING_COLUMNS, compact=True)
    owing = (features["amount_overdue"] > MONEY_TOLERANCE).to_numpy()
    if not owing.all():  # the pre-filter is exact, so this copy is normally skipped
        features = features[owing].reset_index(drop=True)
    features["split"] = features["as_of"].map(splits.split_of()).astype("string")
    features["label_repay"] = repayment_labels(export.payments, features, config.horizon_days)
    features["treated"] = treatment_flags(export.contacts, features, config.uplift.treatment_window_days)
    contacts = contact_rows(
        export,
        features.drop(columns=["label_repay", "treated"]),
        config.contact_window_days,
        max_rows=config.max_contact_rows,
        seed=config.seed,
    )
    return TrainingData(
        splits=splits,
        snapshots=features,
        contacts=contacts,
        feature_names=[name for name in MODEL_FEATURES if name in features.columns],
    )
