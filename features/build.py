"""`build_features`: point-in-time features for any set of (account_id, as_of) snapshots.

One code path for training snapshots and today's scoring. A feature for (account, as_of) sees
only payments, contacts and promises strictly before as_of, and dues with due_date before the
UTC date of as_of; upcoming dues feed `next_due_*`, and a payment may be matched to a due up to 62
days after it (`features.payments`), which the export taken at as_of holds too. A debtor's own
dates (promised dates, a payment's day against its due date, paydays) are read in the debtor's zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contacts import (
    HOUR_BUCKETS,
    N_HOUR_BUCKETS,
    N_HOURS,
    N_WEEKDAYS,
    PortfolioContact,
    build_contact_history,
    contact_features,
    portfolio_contact,
)
from features.contract import FLAG_COLUMNS, Export
from features.flags import flag_features
from features.payments import COVERAGE_WINDOWS, PAYMENT_WINDOWS, payment_features
from features.promises import build_promise_history, promise_features
from features.stage import build_ledger, stage_features, stage_state
from features.timeline import Snapshots, account_codes, account_zones, day_floor, local_dates, to_us

# 2: + rpc_rate_hour_<h> (exact-hour, customer-pooled rates); 3: + *_due_to_limit, paid_to_due_<d>d (ratios);
# 4: + rpc_mixture_hour_<h> (answering-pattern mixture); 5: + rpc_promise_share, rpc_refusal_share;
# 6: the same columns, the debtor's own dates read in the debtor's zone (promise deadlines, lateness,
# paydays, pending promises) and payments matched only to dues at most 62 days ahead: a model fitted on
# 5's values would be served other meanings, so its champion is refused until retrained.
FEATURE_SET_VERSION = "6"

# Export columns no feature, model, list or page reads: the batch commands check them on load and
# then drop them (`load_export(drop=...)`). A year of contacts for a million accounts: 1.8 GiB.
UNREAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "payments": ("payment_id", "channel"),
    "contacts": ("contact_id", "agent_id", "duration_s"),
    "promises": ("promise_id", "contact_id"),
}
KEY_COLUMNS = ("account_id", "as_of")


@dataclass(frozen=True)
class FeatureSpec:
    """A feature column: its name, family and one-line definition."""

    name: str
    family: str
    description: str


def _specs() -> list[FeatureSpec]:
    stage = [
        ("amount_overdue", "dues fallen due before the as_of date minus settled payments before as_of, >= 0"),
        (
            "days_past_due",
            "days from the oldest fallen due not fully covered (oldest-first) to the as_of date",
        ),
        ("oldest_unpaid_remaining", "unpaid remainder of that oldest uncovered due; 0 if current"),
        ("stage", "current, M1..M6 by 30-day cycles of DPD, M7+ past 180"),
        ("stage_bucket", "current, early (1-5 DPD), middle (6-18), late (19-30), then M2..M6, M7+"),
        ("months_delinquent", "30-day cycles of delinquency started: ceil(DPD / 30)"),
        ("dues_missed_in_row", "latest fallen dues not fully covered, consecutive by the oldest-first rule"),
        ("product", "the account's product (categorical)"),
        ("limit_use", "amount_overdue / credit_limit; NaN without a positive limit"),
        ("credit_limit", "the account's credit limit (an account term, not behaviour of the debtor); NaN if none"),
        ("account_age_days", "days from opened_date to the as_of date"),
        ("next_due_in_days", "days from the as_of date to the next due on or after it; NaN if none"),
        ("next_due_amount", "amount of that next due; NaN if none"),
        ("due_amount_mean_90d", "mean amount of the dues fallen due in the last 90 days; NaN if none"),
        ("due_amount_mean_180d", "mean amount of the dues fallen due in the last 180 days; NaN if none"),
        ("due_amount_trend_180d", "due_amount_mean_90d minus the mean of the dues 90-180 days back"),
        ("overdue_in_dues", "amount_overdue / due_amount_mean_180d: how many typical dues are overdue"),
        ("last_due_to_limit", "amount of the latest fallen due / credit_limit; NaN if none or no positive limit"),
        ("next_due_to_limit", "next_due_amount / credit_limit; NaN if none or no positive limit"),
    ]
    payments = []
    for kind in ("settled", "returned"):
        for days in PAYMENT_WINDOWS:
            payments.append((f"payments_{kind}_sum_{days}d", f"amount of {kind} payments in the last {days} days"))
            payments.append((f"payments_{kind}_count_{days}d", f"number of {kind} payments in the last {days} days"))
    payments += [
        ("returned_share_180d", "returned / all payments in the last 180 days; NaN with none"),
        *(
            (f"dues_covered_share_{d}d", f"share of dues fallen due in the last {d} days now fully covered")
            for d in COVERAGE_WINDOWS
        ),
        *(
            (
                f"paid_to_due_{d}d",
                f"payments_settled_sum_{d}d / amount of the dues fallen due in the last {d} days; NaN if none fell",
            )
            for d in PAYMENT_WINDOWS
        ),
        ("days_since_last_payment", "days since the last settled payment; NaN if none"),
        (
            "payment_lateness_mean_90d",
            "mean debtor-local days after its due's date of settled payments in the last 90 days (early = 0)",
        ),
        ("payment_lateness_trend_180d", "mean lateness of the last 90 days minus that of the 90 days before"),
        ("payments_partial_count_180d", "settled payments in 180 days smaller than the due they went to"),
        ("payday_day_of_month", "circular mean of the debtor-local day of month of settled payments"),
        ("payday_concentration", "mean resultant length of those days (1 = always the same day)"),
        ("next_payday_in_days", "days from the debtor-local date of as_of to the next payday_day_of_month"),
    ]
    contacts = []
    for days in (7, 30, 90):
        contacts += [
            (f"call_attempts_{days}d", f"outbound calls in the last {days} days"),
            (f"rpc_{days}d", f"outbound calls reaching the debtor (right-party) in the last {days} days"),
            (f"rpc_rate_{days}d", f"rpc_{days}d / call_attempts_{days}d; NaN without attempts"),
        ]
    contacts += [
        ("days_since_last_rpc", "days since the last right-party outbound call; NaN if none"),
        ("days_since_last_call_attempt", "days since the last outbound call; NaN if none"),
        ("unanswered_streak", "outbound calls since the last right-party contact"),
        ("wrong_numbers_90d", "contacts with outcome wrong_number in the last 90 days"),
        ("inbound_contacts_90d", "inbound contacts of any channel in the last 90 days"),
        ("refusals_disputes_90d", "contacts with outcome refused or dispute in the last 90 days"),
        ("rpc_promise_share", "share of right-party outbound calls (all history) ending in a promise; NaN if none"),
        ("rpc_refusal_share", "share of right-party outbound calls (all history) refused or disputed; NaN if none"),
    ]
    for bucket in range(N_HOUR_BUCKETS):
        hours = "other hours" if bucket not in HOUR_BUCKETS else "{:02d}-{:02d}h".format(*HOUR_BUCKETS[bucket])
        contacts.append((f"rpc_rate_hour_bucket_{bucket}", f"smoothed right-party rate of calls at local {hours}"))
    for day in range(N_WEEKDAYS):
        contacts.append((f"rpc_rate_weekday_{day}", f"smoothed right-party rate of calls on local weekday {day}"))
    contacts.append(("best_hour_bucket_hist", "hour bucket 0-5 with the highest smoothed right-party rate"))
    for hour in range(N_HOURS):
        contacts.append(
            (
                f"rpc_rate_hour_{hour}",
                f"the customer's right-party rate of calls at local {hour:02d}h, shrunk to its bucket rate and level",
            )
        )
    for hour in range(N_HOURS):
        contacts.append(
            (
                f"rpc_mixture_hour_{hour}",
                f"the customer's right-party rate at local {hour:02d}h under the portfolio's answering patterns "
                "(posterior mean of an EM mixture fitted on calls before as_of)",
            )
        )
    promises = [
        ("promises_made_90d", "promises created in the last 90 days"),
        ("promises_kept_90d", "of those, kept by as_of"),
        ("promises_broken_90d", "of those, broken by as_of (deadline passed unpaid)"),
        ("promises_pending", "promises neither kept nor past their deadline"),
        ("days_to_pending_promise", "days from the debtor-local date of as_of to the earliest pending promised_date"),
        ("promise_broken_7d", "a promise broke (deadline passed unpaid) in the last 7 days"),
        ("days_since_last_broken_promise", "days since the latest broken promise's deadline"),
        ("promise_kept_ratio", "kept / (kept + broken) over all promises before as_of"),
    ]
    flags = [(name, f"accounts.{name} as of the export (today), not as of the snapshot") for name in FLAG_COLUMNS]
    flags += [
        ("no_call", "do_not_call, cease_contact, deceased or bankruptcy: no call at all"),
        ("special_handling", "dispute, complaint or hardship: special-handling queue"),
    ]
    families = {
        "stage": stage,
        "payments": payments,
        "contacts": contacts,
        "promises": promises,
        "flags": flags,
    }
    return [FeatureSpec(name, family, text) for family, rows in families.items() for name, text in rows]


FEATURES: dict[str, FeatureSpec] = {spec.name: spec for spec in _specs()}
# Columns models may use: behaviour only. Case-system flags describe today (they would leak into
# historical snapshots); `stage`/`stage_bucket` are presentation of days_past_due.
# The exact-hour rates are read per call slot (`rpc_rate_this_hour`, `rpc_mixture_this_hour` of the contact
# model), not as 48 more columns of every model.
SLOT_LOOKUP_FEATURES: tuple[str, ...] = tuple(
    f"{prefix}{hour}" for prefix in ("rpc_rate_hour_", "rpc_mixture_hour_") for hour in range(N_HOURS)
)
_NOT_FOR_MODELS = {"stage", "stage_bucket", *SLOT_LOOKUP_FEATURES}
MODEL_FEATURES: tuple[str, ...] = tuple(
    spec.name for spec in FEATURES.values() if spec.family != "flags" and spec.name not in _NOT_FOR_MODELS
)


def portfolio_context(export: Export) -> PortfolioContact:
    """The book's contact statistics before its as_of (`features.contacts.PortfolioContact`): with them,
    `build_features` of a few of its accounts gives those accounts the values the whole book's build does."""
    index = pd.Index(export.accounts["account_id"].astype("string"))
    zone_of_account, zones = account_zones(export.accounts)
    history = build_contact_history(export, index, zone_of_account, zones)
    return portfolio_contact(history, int(to_us(pd.Series([export.as_of]))[0]))


def resolve_snapshots(
    export: Export, snapshots: pd.DataFrame | None, zone_of_account: np.ndarray, zones: list[str]
) -> tuple[pd.DataFrame, Snapshots]:
    """Validate the snapshot frame and turn it into account rows and int64 times (`account_zones` of the export)."""
    account_ids = export.accounts["account_id"].astype("string")
    index = pd.Index(account_ids)
    if snapshots is None:
        snapshots = pd.DataFrame(
            {"account_id": account_ids.to_numpy(), "as_of": pd.Series(export.as_of, index=range(len(account_ids)))}
        )
    missing = [column for column in KEY_COLUMNS if column not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots need columns {list(KEY_COLUMNS)}; missing {missing}")
    ids = snapshots["account_id"].astype("string").reset_index(drop=True)
    as_of = pd.to_datetime(snapshots["as_of"], utc=True).astype("datetime64[us, UTC]").reset_index(drop=True)
    rows = account_codes(ids, index)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} snapshot account_id(s) are not in the export's accounts")
    if as_of.isna().any():
        raise ValueError("snapshot as_of must not be null")
    as_of_us = to_us(as_of)
    if len(as_of_us) and as_of_us.max() > to_us(pd.Series([export.as_of]))[0]:
        raise ValueError("a snapshot as_of is after the export's as_of: its history would be incomplete")
    keys = pd.DataFrame({"account_id": ids, "as_of": as_of})
    local_day = local_dates(as_of_us, zone_of_account[rows], zones)
    return keys, Snapshots(account=rows, as_of=as_of_us, as_of_day=day_floor(as_of_us), local_day=local_day)


# Money that training labels compare to the cent: kept float64 when a build is compacted.
EXACT_COLUMNS = frozenset({"amount_overdue", "oldest_unpaid_remaining"})


def compact_column(name: str, values: object) -> object:
    """A 4-byte copy of a numeric feature (float32, or int32 when the integers fit), for training at scale.

    Model inputs tolerate float32 rounding; EXACT_COLUMNS, bools and categoricals come back unchanged.
    """
    if name in EXACT_COLUMNS or not isinstance(values, np.ndarray) or values.dtype.itemsize <= 4:
        return values
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    if values.dtype.kind in "iu":
        fits = len(values) == 0 or (values.min() >= np.iinfo(np.int32).min and values.max() <= np.iinfo(np.int32).max)
        return values.astype(np.int32) if fits else values
    return values


def build_features(
    export: Export,
    snapshots: pd.DataFrame | None = None,
    *,
    columns: Iterable[str] | None = None,
    compact: bool = False,
    portfolio: PortfolioContact | None = None,
) -> pd.DataFrame:
    """One row per snapshot (in snapshot order): `account_id`, `as_of`, then every column of FEATURES.

    For large training builds, `columns` keeps only those features (FEATURES order) and `compact`
    stores numbers in 4 bytes (`compact_column`); each family is trimmed as soon as it is computed,
    so the full-width float64 frame never exists. Values are those of the default build.

    A few contact features compare the debtor with the portfolio (priors, answering patterns); they
    read the export's own calls unless `portfolio` (`portfolio_context` of the whole book) is given.
    """
    wanted = list(FEATURES) if columns is None else [name for name in FEATURES if name in set(columns)]
    unknown = sorted(set(columns or ()) - set(FEATURES))
    if unknown:
        raise KeyError(f"unknown feature columns: {unknown}")
    keep = set(wanted)
    zone_of_account, zones = account_zones(export.accounts)
    keys, snaps = resolve_snapshots(export, snapshots, zone_of_account, zones)
    if portfolio is not None and len(snaps) and int(snaps.as_of.min()) < portfolio.as_of:
        # The portfolio's rates and patterns would hold calls made after the snapshot.
        raise ValueError(
            f"as_of is before the book's as_of ({pd.Timestamp(portfolio.as_of, unit='us', tz='UTC').isoformat()}), "
            "whose portfolio rates would hold later calls: score such accounts from an export taken then"
        )
    index = pd.Index(export.accounts["account_id"].astype("string"))
    ledger = build_ledger(export, index)
    state = stage_state(ledger, snaps)
    out: dict[str, object] = {}

    def add(family: dict[str, object]) -> None:
        for name, values in family.items():
            if name in keep:
                out[name] = compact_column(name, values) if compact else values

    add(stage_features(ledger, state, export.accounts, snaps))
    add(payment_features(ledger, state, snaps, zone_of_account, zones))
    add(contact_features(build_contact_history(export, index, zone_of_account, zones), snaps, portfolio))
    add(promise_features(build_promise_history(export, index, ledger, zone_of_account, zones), snaps))
    add(flag_features(export.accounts, snaps))
    # copy=False: the frame adopts the arrays instead of consolidating a second full-width copy.
    # The 24 exact-hour rates travel as one 2-D block: one block per column beyond ~100 makes pandas
    # warn (and slow down) on every later `assign` of a caller.
    hours = [name for name in wanted if name in SLOT_LOOKUP_FEATURES]
    if not hours:
        return pd.DataFrame(
            {"account_id": keys["account_id"], "as_of": keys["as_of"], **{name: out[name] for name in wanted}},
            copy=False,
        )
    first = wanted.index(hours[0])
    before, after = wanted[:first], wanted[first + len(hours) :]
    if wanted[first : first + len(hours)] != hours:
        raise AssertionError("the exact-hour rate columns must be contiguous in FEATURES")
    parts = [
        pd.DataFrame(
            {"account_id": keys["account_id"], "as_of": keys["as_of"], **{name: out[name] for name in before}},
            copy=False,
        ),
        pd.DataFrame(np.column_stack([out.pop(name) for name in hours]), columns=hours),
        pd.DataFrame({name: out[name] for name in after}, index=range(len(keys)), copy=False),
    ]
    return pd.concat(parts, axis=1)


def model_frame(features: pd.DataFrame, names: tuple[str, ...] | list[str] = MODEL_FEATURES) -> pd.DataFrame:
    """The model-input columns of a feature frame, in the given (logged) order."""
    unknown = [name for name in names if name not in features.columns]
    if unknown:
        raise KeyError(f"feature columns missing from the frame: {unknown}")
    return features.loc[:, list(names)]
