"""Honesty of the list replay: the oracle's yardstick, its rules, and what a list is credited for."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.simulation import SimulationConfig, simulate
from serving.compliance import ComplianceError
from serving.evaluation import compare_lists, oracle_list
from serving.pipeline import default_list_date, promise_followup, value_at_stake


def _features(simulation) -> pd.DataFrame:
    features = build_features(simulation.export).set_index("account_id", drop=False)
    features.index.name = None
    return features


def test_oracle_ranks_by_the_gain_on_the_list_date_callq_ranks_in_a_sydney_centre():
    # At the export's as_of (11:00 in Sydney) the shifts have begun: callq ranks the next day, and so does
    # the world by default (it once took the centre's date before noon, as_of's own).
    config = SimulationConfig(
        n_accounts=800,
        days=120,
        seed=3,
        timezones=("Australia/Sydney", "Australia/Perth"),
        centre_timezone="Australia/Sydney",
        truth_replicas=24,
    )
    simulation = simulate(config)
    day = default_list_date(simulation.export.as_of, simulation.operations)
    assert day == simulation.world.list_date == simulation.export.as_of.date() + dt.timedelta(days=1)
    oracle = oracle_list(simulation, day)
    truth = simulation.world.true_call_value(oracle["account_id"].to_numpy(), oracle["call_at"])
    np.testing.assert_allclose(oracle["expected_value"].to_numpy(), np.clip(truth, 0.0, None), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def shanghai():
    simulation = simulate(SimulationConfig(n_accounts=2500, days=180, seed=11, truth_replicas=24))
    return simulation, default_list_date(simulation.export.as_of, simulation.operations)


@pytest.mark.parametrize("settled", [False, True])
def test_oracle_values_each_call_at_the_worlds_true_value_on_the_list_date(shanghai, settled):
    simulation, default_day = shanghai
    world = simulation.world
    day = default_day + dt.timedelta(days=1)  # another list date than the world's default
    assert day != world.list_date
    oracle = oracle_list(simulation, day, _features(simulation), settled=settled)
    assert len(oracle) > 0
    truth = world.true_call_value(oracle["account_id"].to_numpy(), oracle["call_at"], settled=settled)
    # The oracle ranks by P(contact) x true gain x stake: for every call it places, that is what the
    # replay credits the call with (a gain below zero is ranked as zero).
    np.testing.assert_allclose(oracle["expected_value"].to_numpy(), np.clip(truth, 0.0, None), rtol=1e-9, atol=1e-9)
    replay = world.replay(oracle)
    assert (replay.extra_settled if settled else replay.extra) > 0


class _FlatContact:
    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.full(len(rows), 0.3)


def test_compare_lists_credits_no_list_that_breaks_capacity_or_rules(shanghai):
    simulation, day = shanghai
    features = _features(simulation)
    scores = features.assign(
        p_repay=0.5,
        uplift=0.1,
        value_at_stake=value_at_stake(features),
        promise_followup=promise_followup(features),
    )
    scored = SimpleNamespace(features=features, account_scores=scores, contact_grid=None)
    champions = SimpleNamespace(contact=_FlatContact())
    honest = oracle_list(simulation, day, features)
    # Every call moved into its team's first slot: far over that slot's capacity.
    crowded = honest.copy()
    crowded["call_at"] = crowded.groupby("team")["call_at"].transform("min")
    crowded["local_hour"] = crowded["call_at"].dt.tz_convert("Asia/Shanghai").dt.hour
    # The replay alone would credit it.
    assert simulation.world.replay(crowded).extra > 0
    with pytest.raises(ComplianceError, match="capacity"):
        compare_lists(simulation, champions, day, run=SimpleNamespace(call_list=crowded), scored=scored)
    table = compare_lists(simulation, champions, day, run=SimpleNamespace(call_list=honest), scored=scored)
    assert table.set_index("list").at["callq", "share_of_oracle"] == pytest.approx(1.0)


def test_same_seed_gives_the_same_oracle_and_replay_numbers():
    config = SimulationConfig(n_accounts=600, days=120, seed=7, truth_replicas=16)
    results = []
    for _ in range(2):
        simulation = simulate(config)
        day = default_list_date(simulation.export.as_of, simulation.operations)
        oracle = oracle_list(simulation, day)
        replay = simulation.world.replay(oracle)
        results.append((oracle, replay.extra, replay.extra_settled))
    pd.testing.assert_frame_equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:]
