"""Today's export → scores and a compliant call list, with the champion models.

The CLI batch job, the HTTP API and the demo all call these functions; nothing here parses
arguments or prints.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features, portfolio_context
from features.contacts import PortfolioContact
from features.contract import (
    CALL_LIST_COLUMNS,
    CALL_LIST_SCHEMA,
    POLICY_PRESETS,
    SCORES_COLUMNS,
    SPECIAL_HANDLING_COLUMNS,
    SPECIAL_HANDLING_SCHEMA,
    Export,
    Operations,
    account_teams,
)
from features.io import FrameWrite, check_frame_targets, is_sql_url, write_frames
from serving.compliance import assert_compliant
from serving.daily import DailyRun
from serving.eligibility import customer_no_call, customer_special, customer_wrong_number, find_candidates
from serving.ranking import rank_calls
from serving.reasons import explain_calls
from serving.slots import team_slots

# List dates are ranked up to this many days after the export's as_of (the models' horizon: features as of
# as_of say little about later days).
MAX_DAYS_AHEAD = 14

# Without an operations file (batch scoring), the best hour is searched inside the window every
# preset allows (08:00-21:00 debtor-local: the intersection of cn and us_reg_f).
DEFAULT_CALL_HOURS = tuple(
    range(
        max(rules.call_window_start for rules in POLICY_PRESETS.values()),
        min(rules.call_window_end for rules in POLICY_PRESETS.values()),
    )
)


BEST_HOUR_CHUNK = 50_000

# An overdue debtor's call effect is taken to be at least this share of the book's typical estimate
# (`typical_effect`: the model's mean over its validation window).
# Estimates at or below zero are mostly the learner's noise (a call rarely lowers the chance that
# someone who owes pays), and at zero the ranker never dials them, even with collectors idle.
# Chosen on 24 random simulated worlds and the 5 study worlds (0.10 and 0.25 tried; 0.25 gained
# 2.1 and 0.6 points), checked on others: experiments/LIST_QUALITY.md.
MIN_EFFECT_SHARE = 0.25


def typical_effect(call_effect, estimates: np.ndarray) -> float:
    """The book's typical call effect, which the floor is a share of: the model's own figure from its
    validation window (the same for every request), else (models trained before it was kept) the mean
    of these estimates."""
    reference = call_effect.metadata.get("reference_uplift")
    return float(reference) if reference is not None else float(estimates.mean())


def load_models(tracking_uri: str | None = None):
    """The champion models from the MLflow registry (`models:/callq-*@champion`)."""
    from training.tracking import load_champions

    return load_champions(tracking_uri)


@dataclass(frozen=True)
class ContactGrid:
    """P(right-party contact) of the eligible accounts at each searched hour of one local weekday.

    Scoring computes it to find each account's best hour; the ranker then reads its candidate
    slots from it instead of calling the contact model again on a copy of the book.
    """

    account_id: pd.Index  # one per grid row
    hours: np.ndarray  # debtor-local hours, one per grid column
    weekday: int  # 0 = Monday
    p: np.ndarray  # shape (accounts, hours)

    def lookup(self, account_id: np.ndarray, local_hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
        """One probability per (account, hour, weekday) request; NaN where the grid has no answer."""
        unique, inverse = np.unique(np.asarray(account_id, dtype=object), return_inverse=True)
        row = self.account_id.get_indexer(pd.Index(unique, dtype="string"))[inverse]
        column_of_hour = np.full(24, -1)
        column_of_hour[self.hours] = np.arange(len(self.hours))
        hour = np.asarray(local_hour, dtype=int)
        column = np.where((hour >= 0) & (hour < 24), column_of_hour[np.clip(hour, 0, 23)], -1)
        hit = (row >= 0) & (column >= 0) & (np.asarray(weekday, dtype=int) == self.weekday)
        out = np.full(len(hour), np.nan)
        out[hit] = self.p[row[hit], column[hit]]
        return out


@dataclass
class Scored:
    """Features and model outputs for every account at the export's as_of."""

    features: pd.DataFrame  # indexed by account_id
    scores: pd.DataFrame  # contract `scores`
    account_scores: pd.DataFrame  # what the ranker needs, indexed like `features`
    contact_grid: ContactGrid | None = None  # the best-hour search, for the ranker to reuse


def _local_weekday(export: Export, day: dt.date) -> np.ndarray:
    """Debtor-local weekday of `day` for every account (0 = Monday): the same date everywhere."""
    return np.full(len(export.accounts), day.weekday(), dtype=int)


def score_export(
    export: Export,
    champions,
    *,
    call_hours: tuple[int, ...] = DEFAULT_CALL_HOURS,
    day: dt.date | None = None,
    portfolio: PortfolioContact | None = None,
) -> Scored:
    """Contract `scores` for every account: p_repay, the best debtor-local hour, stage, eligibility.

    `portfolio` (`features.build.portfolio_context` of the whole book): score a few of the book's
    accounts exactly as the book's own run scores them (the API's posted accounts).
    """
    # Numbers in 4 bytes, as training built them (money the contract compares stays float64): the models
    # see the values they were fitted on, and the day's features take ~1.1 GiB less at 1M accounts.
    features = build_features(export, compact=True, portfolio=portfolio).set_index("account_id", drop=False)
    features.index.name = None
    overdue = features["amount_overdue"].to_numpy() > 0
    # Contract p_repay: with nothing overdue the required payment is zero, so the event is certain; the
    # models run on the overdue accounts only.
    p_repay = np.ones(len(features))
    # A call can only bring money in where something is overdue (value at stake is 0 elsewhere).
    uplift = np.zeros(len(features))
    if overdue.any():
        owing = features[overdue]
        p_repay[overdue] = champions.repayment.predict_proba(owing)
        effect = np.clip(champions.call_effect.predict_uplift(owing), 0.0, 1.0)
        uplift[overdue] = np.maximum(effect, MIN_EFFECT_SHARE * typical_effect(champions.call_effect, effect))

    # As the ranker sees it: a no-call or special-handling flag on any of the customer's accounts, or a number
    # known wrong (a call would reach a third party), stops calls to all of them.
    barred = customer_no_call(export.accounts) | customer_special(export.accounts) | customer_wrong_number(export)
    barred = pd.Series(barred, index=export.accounts["account_id"].astype("string"))
    eligible = overdue & ~barred.reindex(features["account_id"].astype("string")).to_numpy(dtype=bool)
    if export.withheld:  # a lenient load lost rows of the customer: no call can be certified
        eligible &= ~features["account_id"].astype("string").isin(list(export.withheld)).to_numpy(dtype=bool)
    day = day or export.as_of.date()
    best_hour = np.full(len(features), np.nan)
    p_best = np.full(len(features), np.nan)
    positions = np.flatnonzero(eligible) if call_hours else np.zeros(0, dtype=np.int64)
    hours = np.asarray(call_hours, dtype=int)
    grid = np.empty((len(positions), len(hours)))
    # Chunks bound memory: the contact model sees one row per (account, hour).
    for start in range(0, len(positions), BEST_HOUR_CHUNK):
        chunk = positions[start : start + BEST_HOUR_CHUNK]
        rows = features.iloc[chunk]
        by_hour = champions.contact.predict_hours(rows, list(hours), np.full(len(rows), day.weekday()))
        grid[start : start + len(chunk)] = by_hour
        best = by_hour.argmax(axis=1)
        best_hour[chunk] = hours[best]
        p_best[chunk] = by_hour[np.arange(len(rows)), best]
    contact_grid = ContactGrid(
        account_id=pd.Index(features["account_id"].to_numpy()[positions], dtype="string"),
        hours=hours,
        weekday=day.weekday(),
        p=grid,
    )

    scores = pd.DataFrame(
        {
            "account_id": features["account_id"].astype("string").to_numpy(),
            "as_of": export.as_of,
            "p_repay": p_repay.astype(float),
            "best_hour_local": pd.array(best_hour, dtype="Int64"),
            "p_contact_best": p_best,
            "amount_overdue": features["amount_overdue"].round(2).to_numpy(),
            "days_past_due": features["days_past_due"].astype("int64").to_numpy(),
            "stage": features["stage"].astype("string").to_numpy(),
            "eligible": eligible,
            "model_version": champions.model_version,
        }
    )[list(SCORES_COLUMNS)]
    account_scores = features.assign(
        p_repay=p_repay,
        uplift=uplift,
        value_at_stake=value_at_stake(features),
        promise_followup=promise_followup(features),
    )
    return Scored(features=features, scores=scores, account_scores=account_scores, contact_grid=contact_grid)


def allowed_on_the_day(scores: pd.DataFrame, callable_accounts: pd.Index) -> pd.DataFrame:
    """Contract `scores` as the list date's policy has them: an account no call is allowed to on that date
    (its quiet period or frequency limits, the call window in its zones, no open slot for its team) is not
    `eligible` and has no best hour. `callable_accounts`: the ids with at least one allowed slot."""
    allowed = scores["eligible"].to_numpy(dtype=bool) & (
        pd.Index(callable_accounts, dtype="string").get_indexer(scores["account_id"].astype("string")) >= 0
    )
    return scores.assign(
        eligible=allowed,
        best_hour_local=scores["best_hour_local"].where(allowed, pd.NA),
        p_contact_best=scores["p_contact_best"].where(allowed, np.nan),
    )


def score_day(export: Export, operations: Operations, list_date: dt.date, champions) -> pd.DataFrame:
    """Contract `scores` for list date D: the best hour searched in the policy's hours on D's weekday,
    `eligible` only where a call is allowed on D (what `callq score --ops` writes)."""
    check_list_date(export, operations, list_date)
    scored = score_export(export, champions, call_hours=policy_hours(operations), day=list_date)
    candidates = find_candidates(export, operations, list_date, scored.account_scores)
    return allowed_on_the_day(scored.scores, candidates.callable_accounts)


def value_at_stake(features: pd.DataFrame) -> np.ndarray:
    """Money a repayment brings in: what the label asks for, min(amount overdue, oldest unpaid due)."""
    return np.minimum(
        features["amount_overdue"].to_numpy(dtype=float),
        features["oldest_unpaid_remaining"].to_numpy(dtype=float),
    )


def promise_followup(features: pd.DataFrame) -> np.ndarray:
    """A promise broken within the day before as_of: the collectors' rule is to follow up within 24 hours
    (the ranker keeps it first only while a call on the list date can still be within the day).

    Only the fresh breaks are forced to the front; older breaks and promises about to fall due
    compete on expected value like every other call (the models see them as features), since
    forcing every one of them ahead crowds out calls that bring in more.
    """
    since = features["days_since_last_broken_promise"].to_numpy(dtype=float, na_value=np.nan)
    return np.nan_to_num(since, nan=np.inf) <= 1


def contact_probability(champions, grid: ContactGrid | None = None):
    """The ranker's view of the contact model: P(right-party contact) per candidate slot.

    With `grid` (from `score_export`), slots the best-hour search already scored are read from
    it; only the others (another local weekday, an hour outside the search) run the model.
    """
    contact = champions.contact

    def probability(
        accounts: pd.DataFrame, account_pos: np.ndarray, local_hour: np.ndarray, weekday: np.ndarray
    ) -> np.ndarray:
        local_hour, weekday = np.asarray(local_hour, dtype=int), np.asarray(weekday, dtype=int)
        if grid is None:
            p = np.full(len(account_pos), np.nan)
        else:
            p = grid.lookup(accounts["account_id"].to_numpy()[account_pos], local_hour, weekday)
        missing = np.flatnonzero(np.isnan(p))
        if len(missing):
            rows = accounts.iloc[account_pos[missing]]
            slots = rows.assign(local_hour=local_hour[missing], weekday=weekday[missing])
            p[missing] = contact.predict_proba(slots)
        return p

    return probability


def policy_hours(operations: Operations) -> tuple[int, ...]:
    """Debtor-local start hours the operations' policy allows: where a day's best hour is searched."""
    rules = operations.policy_rules
    return tuple(range(rules.call_window_start, rules.call_window_end))


def run_day(
    export: Export, operations: Operations, list_date: dt.date, champions, scored: Scored | None = None
) -> DailyRun:
    """Score the book, rank the day's calls, explain them, and guard the list before anyone sees it.

    `scored` (from `score_export(..., call_hours=policy_hours(operations), day=list_date)`) lets a
    caller that also needs the account scores compute them once.
    """
    check_list_date(export, operations, list_date)
    if scored is None:
        scored = score_export(export, champions, call_hours=policy_hours(operations), day=list_date)
    result = rank_calls(
        export, operations, list_date, scored.account_scores, contact_probability(champions, scored.contact_grid)
    )
    call_list = result.call_list.copy()
    listed = scored.features.loc[call_list["account_id"].to_numpy()]
    contributions = champions.call_effect.contributions(listed)
    contributions.index = listed.index
    # Reasons read the debtor's calendar and clock: day words count to the call's local date, the slot is
    # the debtor's (09:30-10:30 in Kolkata), and "best" is the contact grid's best hour on that local weekday.
    best = scored.scores.set_index("account_id")[["best_hour_local", "p_contact_best"]].assign(
        weekday=scored.contact_grid.weekday if scored.contact_grid is not None else list_date.weekday()
    )
    reasons, explanations = explain_calls(
        call_list,
        scored.features,
        contributions,
        as_of=export.as_of,
        timezones=pd.Series(
            export.accounts["timezone"].to_numpy(), index=export.accounts["account_id"].astype("string").to_numpy()
        ),
        best=best,
    )
    call_list["reasons"] = reasons.to_numpy()
    call_list["model_version"] = champions.model_version
    call_list = call_list[list(CALL_LIST_COLUMNS)]
    assert_compliant(call_list, export, operations, list_date)
    return DailyRun(
        as_of=export.as_of,
        list_date=list_date,
        centre_timezone=operations.centre_timezone,
        scores=allowed_on_the_day(scored.scores, result.diagnostics.callable_accounts),
        call_list=call_list,
        special_handling=result.special_handling,
        capacity=result.capacity,
        explanations=explanations,
        models={
            kind: {"version": version, "metrics": champions.metrics.get(kind, {})}
            for kind, version in champions.versions.items()
        },
        model_version=champions.model_version,
        excluded=result.diagnostics.excluded,
        account_teams=pd.Series(
            account_teams(export.accounts).to_numpy(),
            index=export.accounts["account_id"].astype("string").to_numpy(),
        ),
    )


def check_horizon(as_of: pd.Timestamp, operations: Operations, list_date: dt.date) -> None:
    """LookupError for a list date more than MAX_DAYS_AHEAD centre-local days after the export's as_of: the
    features say little about it (a promise broken "2,912,116 days ago")."""
    if list_date > as_of.tz_convert(operations.centre_timezone).date() + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise LookupError(
            f"list date {list_date} is more than {MAX_DAYS_AHEAD} days after the export's as_of: use a newer export"
        )


def check_list_date(export: Export, operations: Operations, list_date: dt.date) -> None:
    """LookupError when every shift hour of the list date starts before the export's as_of (an earlier
    date, or an export taken after the day's last shift hour began): its calls are past, and writing
    its empty list would replace the rows the case system already has for that date. Also past the
    horizon (`check_horizon`)."""
    check_horizon(export.as_of, operations, list_date)
    slots = team_slots(operations, list_date)
    if len(slots) and bool((slots["call_at"] < export.as_of).all()):
        as_of = export.as_of.tz_convert(operations.centre_timezone).strftime("%Y-%m-%d %H:%M")
        raise LookupError(
            f"every shift hour of list date {list_date} starts before the export's as_of ({as_of} centre time): "
            "its calls are past"
        )


def default_list_date(as_of: pd.Timestamp, operations: Operations) -> dt.date:
    """The first centre-local date whose earliest shift starts at or after the export's as_of."""
    local = as_of.tz_convert(operations.centre_timezone)
    earliest = min(team.shift.start for team in operations.teams)
    return local.date() if local.time() <= earliest else local.date() + dt.timedelta(days=1)


@dataclass
class Written:
    call_list: str
    special_handling: str


def day_targets(target: str, special_target: str | None = None, *, protect: str | Path | None = None) -> Written:
    """Where a day's two lists go (the special-handling list beside the call list unless named), checked
    as `write_day` will write them: `callq rank` refuses a bad target before it ranks. `protect` is the
    export being read: neither list may replace one of its files or tables."""
    if special_target is None:
        if is_sql_url(target):
            base, _, table = target.partition("#")
            special_target = f"{base}#{table or 'call_list'}_special_handling"
        else:
            path = Path(target)
            special_target = str(path.with_name(f"{path.stem}.special_handling{path.suffix}"))
    check_frame_targets([target, special_target], protect=protect)
    return Written(call_list=target, special_handling=special_target)


def write_day(
    run: DailyRun, target: str, special_target: str | None = None, *, protect: str | Path | None = None
) -> Written:
    """Write the call list (a file or `URL#table`, replacing that date's rows) and the special-handling list,
    both or neither: a failure on the second must not leave the first replaced. `protect`: as `day_targets`."""
    targets = day_targets(target, special_target, protect=protect)
    # A calendar date is a naive midnight datetime64 everywhere in callq (written as DATE / YYYY-MM-DD).
    special = run.special_handling.assign(
        list_date=pd.Series(pd.Timestamp(run.list_date), index=run.special_handling.index, dtype="datetime64[s]")
    )[list(SPECIAL_HANDLING_COLUMNS)]
    replaced = {"list_date": run.list_date}
    write_frames(
        [
            FrameWrite(run.call_list, targets.call_list, replaced, CALL_LIST_SCHEMA),
            FrameWrite(special, targets.special_handling, replaced, SPECIAL_HANDLING_SCHEMA),
        ],
        protect=protect,
    )
    return targets


class DailyProvider:
    """Serves DailyRuns to the API: ranks a list date when asked, one at a time (the API's `DayCache` keeps
    the recent runs), and scores posted accounts against the served book."""

    def __init__(self, export: Export, operations: Operations, champions, default_date: dt.date | None = None):
        self.export = export
        self.operations = operations
        self.champions = champions
        self.default_date = default_date or default_list_date(export.as_of, operations)
        self._portfolio: PortfolioContact | None = None  # built on the first posted scoring request
        self._lock = threading.Lock()

    def daily_run(self, list_date: dt.date | None = None) -> DailyRun:
        """The run for `list_date` (default: the served date); LookupError for a date past the horizon or one
        whose every shift hour has begun (its list would be empty, after ranking the whole book for it)."""
        wanted = list_date or self.default_date
        check_list_date(self.export, self.operations, wanted)  # before the lock: a refusal waits for no run
        with self._lock:
            return run_day(self.export, self.operations, wanted, self.champions)

    def score(self, export: Export) -> pd.DataFrame:
        """Scores of posted accounts, against the served book's portfolio (priors, answering patterns)."""
        with self._lock:
            if self._portfolio is None:
                self._portfolio = portfolio_context(self.export)
        return score_export(export, self.champions, portfolio=self._portfolio).scores
