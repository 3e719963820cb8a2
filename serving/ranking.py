"""The daily call list: whom to call on list date D, in which hour slot, in what order.

Value of a call = P(right-party contact in that slot) x uplift x value_at_stake: the money the
call is expected to add. Promise follow-ups come first: DOMAIN.md asks collectors to follow up
within 24 hours of a broken promise, so (with `followup_first`) every allowed follow-up whose first
allowed slot on D is within a day of the break is placed before any other call of its team and
ranked above them; among equals, higher value first. The assignment is exact where affordable
(`serving.assignment.assign`). The list obeys `serving.eligibility` and the team capacities;
`serving.compliance` checks it independently before anything is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.contract import CALL_LIST_COLUMNS, Export, Operations
from serving.assignment import EXACT_MAX_EDGES, assign, assign_greedy
from serving.eligibility import Candidates, find_candidates
from serving.slots import as_list_date

# P(right-party contact) per candidate: `(accounts, account_pos, local_hour, local_weekday)` gives one
# probability per candidate i, the account in row `account_pos[i]` of `accounts` (one row per
# account, with every score and feature column) called at `local_hour[i]` on `local_weekday[i]`.
# Passing positions, not a row per candidate, lets a model pick only the columns it reads.
ContactProbability = Callable[[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

SCORE_COLUMNS = (
    "account_id",
    "p_repay",
    "uplift",
    "value_at_stake",
    "amount_overdue",
    "days_past_due",
    "stage",
    "promise_followup",
)
# Columns of the list this module fills; the lead adds `reasons` and `model_version`.
RANKED_COLUMNS = tuple(column for column in CALL_LIST_COLUMNS if column not in ("reasons", "model_version"))


class RankConfig(BaseModel):
    """Knobs of the ranker; the defaults are what `callq rank` uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Contact probabilities are computed only for the best accounts of each team by the bound
    # uplift x value_at_stake (P(contact) <= 1): this many times the team's capacity on D.
    # The ranker widens the set (x4) while a team has free capacity and unscored accounts.
    prefilter_multiple: float = Field(default=3.0, gt=0)
    followup_first: bool = True
    # A call that is not a promise follow-up is scheduled only above this expected value.
    min_expected_value: float = Field(default=0.0, ge=0)
    # The assignment is solved exactly up to this many candidate (account, slot) pairs, in one piece
    # or team by team, and greedily beyond (see serving.assignment); 0 = always greedy.
    exact_assignment_max_edges: int = Field(default=EXACT_MAX_EDGES, ge=0)


@dataclass
class RankDiagnostics:
    """What the ranker saw and did, for the run log and the supervisors' page."""

    candidates_per_team: pd.Series  # accounts with at least one allowed slot
    callable_accounts: pd.Index  # their ids: the accounts any call is allowed to on the list date
    slot_load: pd.DataFrame  # team, centre_hour, call_at, capacity, scheduled
    expected_value_total: float
    excluded: dict[str, int]  # accounts excluded by each rule, in rule order
    evaluated_accounts: int  # accounts whose contact probabilities were computed
    prefilter_certified: bool  # the prefilter provably changed nothing (exact assignment: the optimum's value)
    assignment: str  # how the calls were assigned: "exact", "exact in N blocks" (teams) or "greedy"


@dataclass
class RankResult:
    call_list: pd.DataFrame  # RANKED_COLUMNS, rank 1 first
    special_handling: pd.DataFrame  # account_id, customer_id, team, reason, amount_overdue, days_past_due
    diagnostics: RankDiagnostics

    @property
    def capacity(self) -> pd.DataFrame:
        """Calls scheduled against capacity per team and slot: team, centre_hour, call_at, capacity, scheduled."""
        return self.diagnostics.slot_load


def _score_table(account_scores: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """account_scores aligned to the export's account rows (positional), checked for the columns we use."""
    missing = [column for column in SCORE_COLUMNS if column not in account_scores.columns]
    if missing:
        raise ValueError(f"account_scores lacks columns {missing}")
    if account_scores["account_id"].duplicated().any():
        raise ValueError("account_scores must hold one row per account")
    ids = accounts["account_id"].to_numpy()
    if len(account_scores) == len(ids) and (account_scores["account_id"].to_numpy() == ids).all():
        return account_scores.reset_index(drop=True)  # already aligned (scoring keeps the export's order)
    aligned = account_scores.set_index("account_id").reindex(accounts["account_id"])
    return aligned.reset_index()


def _followup_still_due(scores: pd.DataFrame, candidates: Candidates, as_of: pd.Timestamp) -> np.ndarray:
    """Per account: whether its first allowed slot on D is within a day of its last broken promise.

    The rule is to follow up within 24 hours of the break; a list for a later date cannot, and there
    the break competes on value like any other call (the models read it). Scores without the feature
    (hand-made ones) keep their `promise_followup` as it is.
    """
    if "days_since_last_broken_promise" not in scores.columns:
        return np.ones(len(scores), dtype=bool)
    since = scores["days_since_last_broken_promise"].to_numpy(dtype=float, na_value=np.nan)
    slot_days = (
        (pd.DatetimeIndex(candidates.slots["call_at"]) - pd.Timestamp(as_of)) / pd.Timedelta(days=1)
    ).to_numpy()
    first = np.full(len(scores), np.inf)
    np.minimum.at(first, candidates.account_pos, slot_days[candidates.slot_id])
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(since, nan=np.inf) + first <= 1.0


def _slot_load(candidates: Candidates, chosen_slots: np.ndarray) -> pd.DataFrame:
    scheduled = np.bincount(chosen_slots, minlength=len(candidates.slots))
    return candidates.slots.assign(scheduled=scheduled)


def _build_list(
    list_date: pd.Timestamp,
    candidates: Candidates,
    scores: pd.DataFrame,
    account_pos: np.ndarray,
    slot_id: np.ndarray,
    local_hour: np.ndarray,
    p_contact: np.ndarray,
    priority: np.ndarray,
) -> pd.DataFrame:
    """The call list frame for the chosen edges, ranked by priority (desc), then account_id."""
    accounts = candidates.accounts
    account_id = accounts["account_id"].to_numpy()[account_pos]
    order = np.lexsort((account_id.astype(str), -priority))
    account_pos, slot_id, local_hour, p_contact = (
        account_pos[order],
        slot_id[order],
        local_hour[order],
        p_contact[order],
    )
    rows = scores.iloc[account_pos]
    uplift = rows["uplift"].to_numpy(dtype=float)
    stake = rows["value_at_stake"].to_numpy(dtype=float)
    frame = pd.DataFrame(
        {
            "list_date": pd.Series(np.full(len(order), list_date.to_datetime64()), dtype="datetime64[s]"),
            "rank": np.arange(1, len(order) + 1, dtype=np.int64),
            "account_id": pd.array(accounts["account_id"].to_numpy()[account_pos], dtype="string"),
            "customer_id": pd.array(accounts["customer_id"].to_numpy()[account_pos], dtype="string"),
            "team": pd.array(accounts["team_name"].to_numpy()[account_pos], dtype="string"),
            "agent_id": pd.array(accounts["agent_id"].to_numpy()[account_pos], dtype="string"),
            "call_at": candidates.slots["call_at"].to_numpy()[slot_id],
            "local_hour": local_hour.astype(np.int64),
            "p_repay": rows["p_repay"].to_numpy(dtype=float),
            "p_contact": p_contact.astype(float),
            "expected_value": p_contact * uplift * stake,
            "amount_overdue": rows["amount_overdue"].to_numpy(dtype=float),
            "days_past_due": rows["days_past_due"].to_numpy(dtype=np.int64),
            "stage": pd.array(rows["stage"].to_numpy(), dtype="string"),
        }
    )
    frame["call_at"] = frame["call_at"].astype("datetime64[us, UTC]")
    return frame[list(RANKED_COLUMNS)]


def _contact_probabilities(
    contact_probability: ContactProbability,
    scores: pd.DataFrame,
    account_pos: np.ndarray,
    local_hour: np.ndarray,
    local_weekday: np.ndarray,
) -> np.ndarray:
    """Call the contact model on candidate rows and check what it returns."""
    if len(account_pos) == 0:
        return np.zeros(0)
    p_contact = np.asarray(
        contact_probability(scores, account_pos.copy(), local_hour.copy(), local_weekday.copy()), dtype=float
    )
    if p_contact.shape != (len(account_pos),) or not np.all(np.isfinite(p_contact)):
        raise ValueError("contact_probability must return one finite probability per candidate row")
    return np.clip(p_contact, 0.0, 1.0)


def rank_calls(
    export: Export,
    operations: Operations,
    list_date: dt.date | str | pd.Timestamp,
    account_scores: pd.DataFrame,
    contact_probability: ContactProbability,
    config: RankConfig | None = None,
) -> RankResult:
    """Build the compliant, capacity-bound call list for list date D that maximises expected value.

    `account_scores`: one row per account with SCORE_COLUMNS (plus any features the contact
    model reads). `contact_probability(accounts, account_pos, local_hour, local_weekday)` gives
    P(right-party contact) per candidate (account row, slot); see `ContactProbability`.
    """
    config = config or RankConfig()
    day = as_list_date(list_date)
    candidates = find_candidates(export, operations, day, account_scores)
    scores = _score_table(account_scores, candidates.accounts)
    n_accounts = len(candidates.accounts)
    uplift = scores["uplift"].to_numpy(dtype=float, na_value=0.0)
    stake = scores["value_at_stake"].to_numpy(dtype=float, na_value=0.0)
    followup = scores["promise_followup"].fillna(False).to_numpy(dtype=bool) & config.followup_first
    followup &= _followup_still_due(scores, candidates, export.as_of)
    bound = uplift * stake  # expected value of any call to the account is at most this
    team_names = [team.team for team in operations.teams]
    team_code = pd.Index(team_names).get_indexer(candidates.accounts["team_name"])
    slot_team = pd.Index(team_names).get_indexer(candidates.slots["team"])
    team_capacity = np.bincount(slot_team, weights=candidates.slots["capacity"], minlength=len(team_names))

    has_pair = np.zeros(n_accounts, dtype=bool)
    has_pair[candidates.account_pos] = True
    worth = has_pair & (followup | (bound > config.min_expected_value))
    # Accounts ordered within team: follow-ups, then by bound; position = rank in team.
    pool = np.flatnonzero(worth)
    order = np.lexsort((pool, -bound[pool], ~followup[pool], team_code[pool]))
    pool = pool[order]
    pool_team = team_code[pool]
    first = np.r_[0, np.flatnonzero(np.diff(pool_team)) + 1] if len(pool) else np.zeros(0, dtype=np.int64)
    place = np.arange(len(pool)) - np.repeat(first, np.diff(np.r_[first, len(pool)]))

    multiple = config.prefilter_multiple
    big = 2.0 * float(np.max(np.abs(bound[worth]), initial=0.0)) + 1.0
    while True:
        limit = np.ceil(multiple * team_capacity[pool_team]).astype(np.int64)
        evaluated = np.zeros(n_accounts, dtype=bool)
        evaluated[pool[place < limit]] = True
        edge = np.flatnonzero(evaluated[candidates.account_pos])
        account_pos = candidates.account_pos[edge]
        p_contact = _contact_probabilities(
            contact_probability,
            scores,
            account_pos,
            candidates.local_hour[edge],
            candidates.local_weekday[edge],
        )
        value = p_contact * uplift[account_pos] * stake[account_pos]
        priority = np.where(followup[account_pos], value + big, value)
        priority = np.where(followup[account_pos] | (value > config.min_expected_value), priority, -1.0)
        assignment = assign(
            account_pos,
            candidates.slot_id[edge],
            priority,
            candidates.slots["capacity"].to_numpy(),
            account_group=candidates.customer_code,
            group_capacity=candidates.customer_cap,
            exact_max_edges=config.exact_assignment_max_edges,
            slot_block=slot_team,  # a day too large for one solve is solved team by team
        )
        chosen = assignment.chosen
        calls_per_team = np.bincount(slot_team[candidates.slot_id[edge[chosen]]], minlength=len(team_names))
        unevaluated = pool[place >= limit]
        open_teams = calls_per_team < team_capacity
        waiting = np.bincount(team_code[unevaluated], minlength=len(team_names)) > 0
        if not (open_teams & waiting).any():
            break
        multiple *= 4

    certified = _prefilter_certified(
        candidates,
        unevaluated,
        bound + big * followup,
        assignment,
        team_code,
        priority[chosen],
        account_pos[chosen],
        open_teams,
        len(team_names),
    )
    call_list = _build_list(
        day,
        candidates,
        scores,
        account_pos[chosen],
        candidates.slot_id[edge[chosen]],
        candidates.local_hour[edge[chosen]],
        p_contact[chosen],
        priority[chosen],
    )
    diagnostics = RankDiagnostics(
        candidates_per_team=_candidates_per_team(candidates, has_pair, team_names),
        callable_accounts=candidates.callable_accounts,
        slot_load=_slot_load(candidates, candidates.slot_id[edge[chosen]]),
        expected_value_total=float(call_list["expected_value"].sum()),
        excluded=candidates.excluded,
        evaluated_accounts=int(evaluated.sum()),
        prefilter_certified=certified,
        assignment=assignment.method,
    )
    return RankResult(call_list, candidates.special_handling, diagnostics)


def _prefilter_certified(
    candidates, unevaluated, best_priority, assignment, team_code, chosen_priority, chosen_account, open_teams, n_teams
) -> bool:
    """True when no account left out by the prefilter could have changed the list.

    `best_priority` bounds each account's priority in any slot (P(contact) <= 1). Exact assignment:
    every left-out (account, slot) pair is worth at most the slot's dual price, so the optimum
    found stays optimal with those pairs added (LP duality). Greedy: per team, the team is full and
    its weakest chosen call beats the best left-out bound, so the greedy reaches their pairs only
    after every slot is taken.
    """
    if len(unevaluated) == 0:
        return True
    if assignment.slot_price is not None:
        left_out = np.zeros(len(best_priority), dtype=bool)
        left_out[unevaluated] = True
        pairs = left_out[candidates.account_pos]
        worth = best_priority[candidates.account_pos[pairs]]
        price = assignment.slot_price[candidates.slot_id[pairs]]
        tolerance = 1e-9 * max(float(np.abs(best_priority).max(initial=0.0)), 1.0)
        return bool(np.all(worth <= price + tolerance))
    best_left = np.full(n_teams, -np.inf)
    np.maximum.at(best_left, team_code[unevaluated], best_priority[unevaluated])
    weakest = np.full(n_teams, np.inf)
    np.minimum.at(weakest, team_code[chosen_account], chosen_priority)
    return bool(np.all(~open_teams & (weakest >= best_left) | np.isneginf(best_left)))


def _candidates_per_team(candidates: Candidates, has_pair: np.ndarray, team_names: list[str]) -> pd.Series:
    counts = candidates.accounts.loc[has_pair, "team_name"].value_counts()
    return counts.reindex(team_names, fill_value=0).rename("candidates")


def _stage_order(scores: pd.DataFrame) -> pd.Series:
    """Stage labels ordered by how late they are (median days past due): the supervisor's sort key."""
    known = scores.dropna(subset=["stage"])
    return known.groupby("stage")["days_past_due"].median().rank(method="dense")


def supervisor_sort_list(
    export: Export,
    operations: Operations,
    list_date: dt.date | str | pd.Timestamp,
    account_scores: pd.DataFrame,
    contact_probability: ContactProbability | None = None,
) -> RankResult:
    """The baseline a supervisor would make: latest stage first, then amount overdue, earliest free slot.

    Same compliance and capacity as `rank_calls`; models are used only to report the list's
    p_contact and expected value (NaN without a contact model).
    """
    day = as_list_date(list_date)
    candidates = find_candidates(export, operations, day, account_scores)
    scores = _score_table(account_scores, candidates.accounts)
    n_accounts = len(candidates.accounts)
    stage_rank = scores["stage"].map(_stage_order(scores)).to_numpy(dtype=float, na_value=0.0)
    overdue = scores["amount_overdue"].to_numpy(dtype=float, na_value=0.0)
    account_order = np.lexsort((candidates.accounts["account_id"].to_numpy().astype(str), -overdue, -stage_rank))
    standing = np.empty(n_accounts, dtype=np.int64)
    standing[account_order] = n_accounts - np.arange(n_accounts)  # higher = earlier in the sort
    slot_time = candidates.slots["call_at"].rank(method="dense").to_numpy(dtype=np.int64)
    n_times = int(slot_time.max(initial=0)) + 1
    # One number per edge: the account's standing first, then the earlier slot.
    priority = standing[candidates.account_pos].astype(float) * n_times + (n_times - slot_time[candidates.slot_id])
    chosen = assign_greedy(
        candidates.account_pos,
        candidates.slot_id,
        priority,
        candidates.slots["capacity"].to_numpy(),
        account_group=candidates.customer_code,
        group_capacity=candidates.customer_cap,
    )
    account_pos = candidates.account_pos[chosen]
    if contact_probability is None:
        p_contact = np.full(len(account_pos), np.nan)
    else:
        p_contact = _contact_probabilities(
            contact_probability,
            scores,
            account_pos,
            candidates.local_hour[chosen],
            candidates.local_weekday[chosen],
        )
    has_pair = np.zeros(n_accounts, dtype=bool)
    has_pair[candidates.account_pos] = True
    team_names = [team.team for team in operations.teams]
    call_list = _build_list(
        day,
        candidates,
        scores,
        account_pos,
        candidates.slot_id[chosen],
        candidates.local_hour[chosen],
        p_contact,
        standing[account_pos].astype(float),
    )
    diagnostics = RankDiagnostics(
        candidates_per_team=_candidates_per_team(candidates, has_pair, team_names),
        callable_accounts=candidates.callable_accounts,
        slot_load=_slot_load(candidates, candidates.slot_id[chosen]),
        expected_value_total=float(call_list["expected_value"].sum()),
        excluded=candidates.excluded,
        evaluated_accounts=len(np.unique(account_pos)),
        prefilter_certified=True,
        assignment="greedy",  # a supervisor fills the slots in sort order
    )
    return RankResult(call_list, candidates.special_handling, diagnostics)
