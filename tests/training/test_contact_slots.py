"""Slot rates of the contact model: the exact-hour rate and its neighbours, picked per call slot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contacts import hour_bucket
from training.config import LightGBMParams
from training.models import SLOT_COLUMNS, ContactModel, LightGBMClassifier
from training.snapshots import add_slot_rates

SMALL = LightGBMParams(n_estimators=30, num_leaves=7, min_child_samples=20, num_threads=1)


def _accounts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rpc_rate_30d": rng.random(n),
            **{f"rpc_rate_hour_bucket_{b}": rng.random(n) for b in range(7)},
            **{f"rpc_rate_weekday_{d}": rng.random(n) for d in range(7)},
            **{f"rpc_rate_hour_{h}": rng.random(n) for h in range(24)},
            **{f"rpc_mixture_hour_{h}": rng.random(n) for h in range(24)},
        }
    )


def test_slot_rates_pick_the_exact_hour_and_its_neighbours():
    frame = _accounts(3, 0).assign(local_hour=[9, 0, 23], weekday=[0, 3, 6])
    before = frame.copy()
    out = add_slot_rates(frame, hour_bucket)
    pd.testing.assert_frame_equal(frame, before)  # the input is never mutated
    for row, hour in enumerate([9, 0, 23]):
        assert out.loc[row, "rpc_rate_this_hour"] == frame.loc[row, f"rpc_rate_hour_{hour}"]
        assert out.loc[row, "rpc_mixture_this_hour"] == frame.loc[row, f"rpc_mixture_hour_{hour}"]
        around = [frame.loc[row, f"rpc_rate_hour_{(hour + step) % 24}"] for step in (-1, 1)]
        assert out.loc[row, "rpc_rate_adjacent_hours"] == pytest.approx(np.mean(around))
    assert out.loc[0, "rpc_rate_this_hour_bucket"] == frame.loc[0, "rpc_rate_hour_bucket_0"]
    assert set(SLOT_COLUMNS) <= set(out.columns)


def test_slot_rates_are_missing_without_the_hour_columns():
    frame = _accounts(2, 1).drop(columns=[f"rpc_rate_hour_{h}" for h in range(24)]).assign(local_hour=10, weekday=2)
    out = add_slot_rates(frame, hour_bucket)
    assert out["rpc_rate_this_hour"].isna().all()
    assert out["rpc_rate_adjacent_hours"].isna().all()
    # One neighbour known: its rate alone.
    partial = _accounts(1, 2).drop(columns=["rpc_rate_hour_9"]).assign(local_hour=10, weekday=2)
    assert add_slot_rates(partial, hour_bucket)["rpc_rate_adjacent_hours"].iloc[0] == pytest.approx(
        partial["rpc_rate_hour_11"].iloc[0]
    )


def test_hour_grid_uses_each_hours_own_rate():
    # Answering follows the account's own exact-hour rate: the model must read it per slot.
    rng = np.random.default_rng(3)
    accounts = _accounts(3000, 4)
    rows = accounts.assign(local_hour=rng.integers(8, 21, len(accounts)), weekday=rng.integers(0, 7, len(accounts)))
    rows = add_slot_rates(rows, hour_bucket)
    labels = (rng.random(len(rows)) < rows["rpc_rate_this_hour"]).astype(int)
    names = ["rpc_rate_30d", *SLOT_COLUMNS]
    model = ContactModel.from_estimator(LightGBMClassifier(names, SMALL, seed=0).fit(rows, labels))
    probe = _accounts(200, 5)
    hours = list(range(8, 21))
    grid = model.predict_hours(probe, hours, 2)
    own = probe[[f"rpc_rate_hour_{h}" for h in hours]].to_numpy()
    assert np.corrcoef(grid.ravel(), own.ravel())[0, 1] > 0.6
    # Stale slot columns on the input are recomputed for every hour of the grid.
    stale = add_slot_rates(probe.assign(local_hour=8, weekday=2), hour_bucket).drop(columns=["local_hour", "weekday"])
    np.testing.assert_allclose(model.predict_hours(stale, hours, 2), grid)
