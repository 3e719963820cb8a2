"""The compact training build: a column subset in 4-byte dtypes, with the values of the default build."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import EXACT_COLUMNS, FEATURES, MODEL_FEATURES, build_features, compact_column
from tests.features.random_export import random_export, random_snapshots


@pytest.mark.parametrize("seed", range(3))
def test_compact_subset_keeps_the_default_values(seed):
    export = random_export(seed, n_accounts=6)
    snapshots = random_snapshots(export, seed + 50, per_account=4)
    wanted = [*reversed(MODEL_FEATURES), "stage_bucket"]
    full = build_features(export, snapshots)
    compact = build_features(export, snapshots, columns=wanted, compact=True)
    # FEATURES order whatever order was asked for; keys first.
    assert list(compact.columns) == ["account_id", "as_of", *[name for name in FEATURES if name in wanted]]
    assert compact["account_id"].equals(full["account_id"]) and compact["as_of"].equals(full["as_of"])
    for name in compact.columns[2:]:
        left, right = full[name], compact[name]
        if isinstance(left.dtype, pd.CategoricalDtype) or left.dtype == bool:
            assert right.equals(left), name
            continue
        assert right.dtype.itemsize <= 4 or name in EXACT_COLUMNS, name
        np.testing.assert_allclose(
            right.to_numpy(dtype=float), left.to_numpy(dtype=float), rtol=1e-6, atol=1e-6, err_msg=name
        )
    for name in EXACT_COLUMNS:
        assert compact[name].dtype == np.float64 and compact[name].equals(full[name])


def test_compact_column_rules():
    assert compact_column("days_past_due", np.array([1, 2**31], dtype=np.int64)).dtype == np.int64
    assert compact_column("days_past_due", np.array([1, -3], dtype=np.int64)).dtype == np.int32
    assert compact_column("limit_use", np.array([0.1, np.nan])).dtype == np.float32
    assert compact_column("amount_overdue", np.array([0.1])).dtype == np.float64
    flags = np.array([True, False])
    assert compact_column("promise_broken_7d", flags) is flags


def test_unknown_columns_are_refused():
    export = random_export(1, n_accounts=2)
    with pytest.raises(KeyError, match="no_such_feature"):
        build_features(export, columns=["amount_overdue", "no_such_feature"])
