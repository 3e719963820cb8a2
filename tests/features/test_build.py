"""build_features against the naive oracle, the time rule as a property, and the registry."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features.contacts as contacts_module
from features.build import FEATURE_SET_VERSION, FEATURES, MODEL_FEATURES, build_features
from features.contract import FLAG_COLUMNS
from tests.features.random_export import random_export, random_snapshots
from tests.features.reference import reference_features

CATEGORICAL = ("stage", "stage_bucket", "product")


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every feature column equal (numbers to 1e-9, NaN where NaN), naming the first mismatch."""
    assert list(actual["account_id"]) == list(expected["account_id"])
    for name in FEATURES:
        got, want = actual[name], expected[name]
        if name in CATEGORICAL:
            mismatch = got.astype(str).to_numpy() != want.astype(str).to_numpy()
        else:
            a = got.to_numpy(dtype="float64")
            b = want.to_numpy(dtype="float64")
            mismatch = ~(np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b)))
        if mismatch.any():
            i = int(np.flatnonzero(mismatch)[0])
            raise AssertionError(
                f"{name}: row {i} ({actual['account_id'].iloc[i]} at {actual['as_of'].iloc[i]}): "
                f"got {got.iloc[i]!r}, reference {want.iloc[i]!r}"
            )


@pytest.mark.parametrize("seed", range(8))
def test_matches_naive_reference_on_random_portfolios(seed, monkeypatch):
    # Tiny books: let the answering-pattern mixture fit anyway, so the reference checks its EM too.
    monkeypatch.setattr(contacts_module, "MIXTURE_MIN_CUSTOMERS", 1)
    export = random_export(seed, n_accounts=6)
    snapshots = random_snapshots(export, seed + 100, per_account=4)
    assert_frames_match(build_features(export, snapshots), reference_features(export, snapshots))


@pytest.mark.parametrize("seed", range(2))
def test_matches_the_reference_when_sortedness_is_checked_in_small_chunks(seed, monkeypatch):
    import features.timeline as timeline

    monkeypatch.setattr(contacts_module, "MIXTURE_MIN_CUSTOMERS", 1)
    monkeypatch.setattr(timeline, "_SORTED_CHUNK", 3)
    export = random_export(seed, n_accounts=6)
    export.contacts = export.contacts.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    snapshots = random_snapshots(export, seed + 100, per_account=4)
    assert_frames_match(build_features(export, snapshots), reference_features(export, snapshots))


def test_sortedness_is_judged_across_chunk_boundaries(monkeypatch):
    import features.timeline as timeline

    monkeypatch.setattr(timeline, "_SORTED_CHUNK", 4)
    group = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4], dtype="int64")
    time = np.arange(9, dtype="int64")
    assert timeline.sort_order(group, time) is None
    for swap in range(8):  # a descent between any two neighbours, on or off a chunk's edge
        order = np.arange(9)
        order[[swap, swap + 1]] = order[[swap + 1, swap]]
        assert not timeline._is_sorted(group[order], time[order])
        assert not timeline._is_sorted(group, time, order)
        np.testing.assert_array_equal(timeline.sort_order(group[order], time[order]), order)


@pytest.mark.parametrize("seed", range(4))
def test_sort_order_sorts_by_group_then_time_whatever_the_input_order(seed):
    import features.timeline as timeline

    rng = np.random.default_rng(seed)
    for n, time_sorted, unit in [(2, False, 1), (50, True, 1_000_000), (5_000, False, 1), (5_000, False, 1_000_000)]:
        group = rng.integers(0, max(n // 20, 1), n).astype("int64")
        time = rng.integers(0, 10**6, n).astype("int64") * unit  # ties within a group included
        if time_sorted:
            time = np.sort(time)
        order = timeline.sort_order(group, time)
        order = np.arange(n) if order is None else order
        expected = np.lexsort((time, group))
        np.testing.assert_array_equal(group[order], group[expected])
        np.testing.assert_array_equal(time[order], time[expected])
    # Groups too large to pack beside the row number still sort (the lexsort path).
    group = np.array([2**62, 0, 2**62, 5], dtype="int64")
    time = np.array([3, 2, 1, 0], dtype="int64")
    assert timeline._packed_order(group, time) is None
    np.testing.assert_array_equal(timeline.sort_order(group, time), [1, 3, 2, 0])


def test_account_codes_split_across_threads_agree_with_one_lookup(monkeypatch):
    import features.timeline as timeline

    rng = np.random.default_rng(0)
    index = pd.Index([f"A{i:05d}" for i in range(300)], dtype="string")
    ids = pd.Series(np.where(rng.random(10_001) < 0.1, "unknown", rng.choice(index.to_numpy(), 10_001)), dtype="string")
    expected = timeline.account_codes(ids, index)
    assert (expected == -1).any() and expected.max() < 300
    np.testing.assert_array_equal(index.to_numpy()[expected[expected >= 0]], ids[expected >= 0].to_numpy())
    monkeypatch.setattr(timeline, "PARALLEL_CODES_ROWS", 1_000)
    monkeypatch.setattr(timeline.pa, "cpu_count", lambda: 3)  # three pieces, uneven
    np.testing.assert_array_equal(timeline.account_codes(ids, index), expected)


def test_default_snapshots_are_every_account_at_the_export_as_of():
    export = random_export(3, n_accounts=4)
    features = build_features(export)
    assert list(features["account_id"]) == list(export.accounts["account_id"])
    assert (features["as_of"] == export.as_of).all()
    assert str(features["as_of"].dtype) == "datetime64[us, UTC]"
    assert list(features.columns) == ["account_id", "as_of", *FEATURES]


def test_output_keeps_snapshot_order_and_duplicates():
    export = random_export(4, n_accounts=3)
    snapshots = random_snapshots(export, 5, per_account=3).iloc[::-1].reset_index(drop=True)
    snapshots = pd.concat([snapshots, snapshots.iloc[:2]], ignore_index=True)
    features = build_features(export, snapshots)
    assert list(features["account_id"]) == list(snapshots["account_id"])
    assert (features["as_of"].to_numpy() == snapshots["as_of"].to_numpy()).all()
    pd.testing.assert_frame_equal(features.iloc[-2:].reset_index(drop=True), features.iloc[:2].reset_index(drop=True))


def test_rejects_unknown_accounts_and_future_snapshots():
    export = random_export(5, n_accounts=2)
    with pytest.raises(ValueError, match="not in the export"):
        build_features(export, pd.DataFrame({"account_id": ["nobody"], "as_of": [export.as_of]}))
    with pytest.raises(ValueError, match="after the export"):
        build_features(export, pd.DataFrame({"account_id": ["A0"], "as_of": [export.as_of + pd.Timedelta(days=1)]}))


def test_does_not_mutate_the_export():
    export = random_export(6, n_accounts=4)
    before = {name: frame.copy() for name, frame in export.tables().items()}
    build_features(export, random_snapshots(export, 7))
    for name, frame in export.tables().items():
        pd.testing.assert_frame_equal(frame, before[name])


# Fingerprint of the feature columns (names, in order) per feature set version: a change to the
# columns fails here until FEATURE_SET_VERSION is bumped and its fingerprint added.
# Version 6 changed what some columns mean, not which there are.
FEATURE_SET_FINGERPRINTS = {"5": "48ad1ac7c8de4e30", "6": "48ad1ac7c8de4e30"}


def test_feature_set_version_names_the_columns():
    fingerprint = hashlib.sha256("\n".join(FEATURES).encode()).hexdigest()[:16]
    assert FEATURE_SET_FINGERPRINTS.get(FEATURE_SET_VERSION) == fingerprint, (
        f"feature set {FEATURE_SET_VERSION!r} was recorded with other columns (now {fingerprint}): "
        "a change to the columns needs a new FEATURE_SET_VERSION and its fingerprint here"
    )


def test_registry_and_model_features():
    assert all(spec.name == name and spec.description for name, spec in FEATURES.items())
    assert {spec.family for spec in FEATURES.values()} == {
        "stage",
        "payments",
        "contacts",
        "promises",
        "flags",
    }
    assert not set(MODEL_FEATURES) & {*FLAG_COLUMNS, "no_call", "special_handling", "account_id", "as_of"}
    assert set(MODEL_FEATURES) <= set(FEATURES)
    for column in ("amount_overdue", "days_past_due", "next_payday_in_days", "promise_broken_7d"):
        assert column in MODEL_FEATURES


def _shift_after(export, cutoff: pd.Timestamp, data) -> object:
    """A copy of the export with events at or after `cutoff` added and existing ones there changed."""
    from dataclasses import replace

    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extra = random_export(int(rng.integers(1 << 30)), n_accounts=len(export.accounts), days=90)
    shift = cutoff - extra.as_of + pd.Timedelta(days=90)  # extra events land in [cutoff, cutoff + 90d)

    def moved(frame: pd.DataFrame, column: str, prefix: str, id_column: str) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column] + shift
        frame[id_column] = (prefix + frame[id_column].astype(str)).astype("string")
        return frame

    payments = export.payments.copy()
    late = payments["paid_at"] >= cutoff
    payments.loc[late, "status"] = "returned"  # changing an event at/after as_of
    contacts = export.contacts.copy()
    contacts.loc[contacts["started_at"] >= cutoff, "outcome"] = "right_party"
    promises = export.promises.copy()
    promises.loc[promises["created_at"] >= cutoff, "promised_amount"] = 1.0
    extra_promises = moved(extra.promises, "created_at", "X", "promise_id")
    extra_promises["promised_date"] = extra_promises["promised_date"] + shift.floor("D")
    return replace(
        export,
        as_of=max(export.as_of, cutoff + pd.Timedelta(days=91)),
        payments=pd.concat([payments, moved(extra.payments, "paid_at", "X", "payment_id")], ignore_index=True),
        contacts=pd.concat([contacts, moved(extra.contacts, "started_at", "X", "contact_id")], ignore_index=True),
        promises=pd.concat([promises, extra_promises], ignore_index=True),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), data=st.data())
def test_events_at_or_after_as_of_never_change_a_feature(seed, data):
    export = random_export(seed, n_accounts=4)
    snapshots = random_snapshots(export, seed, per_account=3)
    cutoff = snapshots["as_of"].min()
    changed = _shift_after(export, cutoff, data)
    # Snapshots at the earliest cutoff see none of the changes; later ones see different histories.
    at_cutoff = snapshots[snapshots["as_of"] == cutoff].reset_index(drop=True)
    assert_frames_match(build_features(changed, at_cutoff), build_features(export, at_cutoff))
