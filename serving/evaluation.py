"""Replaying call lists in a simulated world: callq's list against a supervisor's sort and an oracle.

The oracle ranks with the world's true parameters (right-party chance per slot, the true gain
from reaching the debtor on the list date, the money at stake) through the same assignment and
compliance code, with every candidate scored (no prefilter), so the comparison isolates what the
models know. It is not bound by the follow-up rule (fresh broken promises called first), so its
gap over callq's list includes what that rule costs. Every list is checked by the compliance guard
before it is replayed: no list is credited for a call the rules or the capacity forbid.

Two yardsticks: the money the repayment label asks for, counted when it is met (what callq's
models predict and rank by), and every settled payment in the horizon (what the centre's books
show as collected). Each has its own oracle, drawn to maximise it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulation import Simulation
from serving.compliance import assert_compliant
from serving.pipeline import contact_probability, policy_hours, run_day, score_export
from serving.ranking import RankConfig, rank_calls, supervisor_sort_list


@dataclass(frozen=True)
class ListOutcome:
    name: str
    calls: int
    expected_value: float  # the list's own estimate (callq's models), NaN for lists without one
    extra_collected: float  # true expected money (the label's) beyond making no calls, from the world
    extra_settled: float  # true expected settled payments beyond making no calls, from the world

    @classmethod
    def replayed(cls, name: str, call_list: pd.DataFrame, world, expected_value: float = float("nan")) -> ListOutcome:
        replay = world.replay(call_list)
        return cls(name, len(call_list), expected_value, replay.extra, replay.extra_settled)

    def row(self) -> dict:
        return {
            "list": self.name,
            "calls": self.calls,
            "model_expected_value": self.expected_value,
            "true_extra_collected": self.extra_collected,
            "true_extra_settled": self.extra_settled,
        }


def local_slot_utc(zones: np.ndarray, local_hour: np.ndarray, weekday: np.ndarray, list_date: dt.date) -> pd.Series:
    """UTC start of the debtor-local hour on the local day (within a day of list_date) with that weekday."""
    base = pd.Timestamp(list_date)
    offsets = ((np.asarray(weekday) - base.weekday() + 3) % 7) - 3  # nearest day with that weekday
    naive = base + pd.to_timedelta(offsets, unit="D") + pd.to_timedelta(np.asarray(local_hour), unit="h")
    result = pd.Series(pd.NaT, index=range(len(zones)), dtype="datetime64[us, UTC]")
    naive = pd.Series(naive)
    for zone in pd.unique(zones):
        mask = zones == zone
        local = naive[mask].dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
        result[mask] = local.dt.tz_convert("UTC").to_numpy()
    return result


def oracle_list(
    simulation: Simulation, list_date: dt.date, features: pd.DataFrame | None = None, *, settled: bool = False
) -> pd.DataFrame:
    """The call list drawn with full knowledge of the world, under the same rules and capacity.

    It maximises the label's money, or with `settled` every settled payment in the horizon, of a
    right-party contact on `list_date` (the world's own default list date may be another day).
    """
    export, world = simulation.export, simulation.world
    ids = export.accounts["account_id"].to_numpy()
    p_none = world.true_p_repay(ids)
    if features is None:
        from features.build import build_features

        features = build_features(export).set_index("account_id", drop=False)
        features.index.name = None
    if settled:  # the gain is money already: a stake of 1
        gain, stake = world.true_settled_if_reached(ids, list_date=list_date) - world.true_settled(ids), 1.0
    else:
        gain, stake = world.true_p_repay_if_reached(ids, list_date=list_date) - p_none, world.money_at_stake
    scores = features.assign(
        p_repay=p_none, uplift=np.clip(gain, 0.0, None), value_at_stake=stake, promise_followup=False
    )
    true_contact = true_contact_probability(simulation, list_date)
    # Every candidate is scored (no prefilter: speed is no concern here) and, up to the exact
    # solver's limit, the assignment is optimal: the yardstick is the best list the rules allow.
    everyone = RankConfig(prefilter_multiple=1e6)
    return rank_calls(export, simulation.operations, list_date, scores, true_contact, everyone).call_list


def true_contact_probability(simulation: Simulation, list_date: dt.date):
    """The world's right-party chance per candidate slot, as the ranker's `ContactProbability`."""
    world = simulation.world
    zone_of = simulation.export.accounts.set_index("account_id")["timezone"]

    def probability(
        accounts: pd.DataFrame, account_pos: np.ndarray, local_hour: np.ndarray, weekday: np.ndarray
    ) -> np.ndarray:
        account_ids = accounts["account_id"].to_numpy()[account_pos]
        call_at = local_slot_utc(zone_of.loc[account_ids].to_numpy(), local_hour, weekday, list_date)
        return world.true_p_contact(account_ids, call_at)

    return probability


def compare_lists(simulation: Simulation, champions, list_date: dt.date, run=None, scored=None) -> pd.DataFrame:
    """callq's list, the supervisor's sort and the oracle, replayed in the world (extra over no calls).

    `run` and `scored` (as `run_day` used them) spare recomputing the features and the scores.
    """
    export, operations, world = simulation.export, simulation.operations, simulation.world
    if scored is None:
        scored = score_export(export, champions, call_hours=policy_hours(operations), day=list_date)
    run = run or run_day(export, operations, list_date, champions, scored=scored)
    supervisor = supervisor_sort_list(
        export, operations, list_date, scored.account_scores, contact_probability(champions, scored.contact_grid)
    ).call_list
    oracle = oracle_list(simulation, list_date, scored.features)
    oracle_settled = oracle_list(simulation, list_date, scored.features, settled=True)
    # The world's replay credits any call it is given: only a list that the rules and capacity allow is judged.
    for call_list in (run.call_list, supervisor, oracle, oracle_settled):
        assert_compliant(call_list, export, operations, list_date)
    outcomes = [
        ListOutcome.replayed("callq", run.call_list, world, float(run.call_list["expected_value"].sum())),
        ListOutcome.replayed("supervisor sort", supervisor, world, float(supervisor["expected_value"].sum())),
        ListOutcome.replayed("oracle (true parameters)", oracle, world),
        ListOutcome.replayed("oracle (settled money)", oracle_settled, world),
    ]
    table = pd.DataFrame([outcome.row() for outcome in outcomes])
    by_list = table.set_index("list")
    for share, column, oracle in (
        ("share_of_oracle", "true_extra_collected", "oracle (true parameters)"),
        ("share_of_oracle_settled", "true_extra_settled", "oracle (settled money)"),
    ):
        best = by_list.at[oracle, column]
        table[share] = table[column] / best if best > 0 else np.nan
    return table
