"""The Taiwan credit-default conversion: contract-valid, behaviour-only, and faithful to the status codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.taiwan import convert as taiwan
from features.build import build_features
from features.contract import SCHEMAS, TABLES
from features.io import load_export, validate_export

# 500 rows of the real file, every column kept (demographics and target included); see tests/data/README.md.
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "taiwan_sample.csv"


@pytest.fixture(scope="module")
def sample_csv() -> Path:
    return SAMPLE


def _hand_frame(statuses: list[list[int]], payments: list[list[float]], bills: list[list[float]]) -> pd.DataFrame:
    n = len(statuses)
    data = {"ID": np.arange(1, n + 1), "LIMIT_BAL": np.full(n, 50_000.0)}
    data.update({column: [row[i] for row in statuses] for i, column in enumerate(taiwan.STATUS_COLUMNS)})
    data.update({column: [row[i] for row in bills] for i, column in enumerate(taiwan.BILL_COLUMNS)})
    data.update({column: [row[i] for row in payments] for i, column in enumerate(taiwan.PAYMENT_COLUMNS)})
    return pd.DataFrame(data).loc[:, list(taiwan.USED_COLUMNS)]


def test_sample_converts_to_a_valid_contract_export(sample_csv, tmp_path):
    out = tmp_path / "export"
    export = taiwan.convert_to(out, sample_csv, expected_sha256=None)
    assert validate_export(out) == []
    loaded, report = load_export(out)
    assert report.reconciles() and sum(report.rejected.values()) == 0
    assert len(loaded.accounts) == 500 and loaded.accounts["account_id"].is_unique
    assert loaded.as_of == pd.Timestamp("2005-09-30T16:00:00Z")
    for name in TABLES:
        assert list(loaded.table(name).columns) == [column.name for column in SCHEMAS[name]]
    assert (loaded.accounts["timezone"] == "Asia/Taipei").all()
    assert (loaded.accounts["product"] == "credit_card").all()
    assert len(loaded.contacts) == 0 and len(loaded.promises) == 0
    assert (loaded.payments["status"] == "settled").all()
    # Every payment lies inside the month it is reported for, local time.
    local_month = loaded.payments["paid_at"].dt.tz_convert("Asia/Taipei").dt.strftime("%Y%m")
    assert (loaded.payments["payment_id"].str.slice(-6) == local_month).all()
    assert len(export.dues) == len(loaded.dues)


def test_conversion_never_reads_demographics_or_the_target(sample_csv, tmp_path):
    original = pd.read_csv(sample_csv)
    scrambled = original.copy()
    rng = np.random.default_rng(1)
    for column in (*taiwan.PROTECTED_COLUMNS, taiwan.TARGET_COLUMN):
        scrambled[column] = rng.permutation(scrambled[column].to_numpy())
    dropped = original.drop(columns=[*taiwan.PROTECTED_COLUMNS, taiwan.TARGET_COLUMN])
    exports = []
    for name, frame in (("original", original), ("scrambled", scrambled), ("dropped", dropped)):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        exports.append(taiwan.convert(taiwan.read_source(path, expected_sha256=None)))
    for other in exports[1:]:
        for name in TABLES:
            pd.testing.assert_frame_equal(exports[0].table(name), other.table(name))
    names = {column for name in TABLES for column in exports[0].table(name).columns}
    forbidden = {*taiwan.PROTECTED_COLUMNS, taiwan.TARGET_COLUMN}
    assert not names & (forbidden | {name.lower() for name in forbidden})


def test_sha256_is_checked(sample_csv):
    with pytest.raises(ValueError, match="sha256"):
        taiwan.read_source(sample_csv)


def test_fitted_dues_reproduce_every_feasible_status_as_callq_dpd(sample_csv):
    source = taiwan.read_source(sample_csv, expected_sha256=None)
    export = taiwan.convert(source)
    schedule = taiwan.reconstruct_dues(source, taiwan.ConversionConfig())
    agreement = taiwan.status_agreement(export, source).set_index("status_column")
    assert agreement.loc["PAY_0", "agreement"] == 1.0  # September is the as_of state: always kept
    assert agreement.loc["all", "agreement"] == pytest.approx(schedule.fitted.mean())
    assert agreement.loc["all", "agreement"] > 0.85
    features = build_features(export)
    expected = np.clip(source["PAY_0"].to_numpy(), 0, None)
    np.testing.assert_array_equal(features["months_delinquent"].to_numpy(), expected)


def test_hand_built_status_sequences():
    bills = [[10_000.0] * 6] * 3
    frame = _hand_frame(
        statuses=[
            [0, 0, 0, 0, 0, 0],  # pays the minimum every month
            [0, 0, 0, 1, 2, 3],  # stops paying in July
            [0, 0, 0, 0, 2, 2],  # 0 -> 2 in one month cannot happen under oldest-first payment
        ],
        payments=[[200.0] * 6, [200.0, 200.0, 200.0, 0.0, 0.0, 0.0], [200.0] * 6],
        bills=bills,
    )
    schedule = taiwan.reconstruct_dues(frame, taiwan.ConversionConfig())
    assert schedule.fitted[0].all() and schedule.fitted[1].all()
    # One of July (0) and August (2) must go; the later month is kept.
    assert list(schedule.fitted[2]) == [True, True, True, False, True, True]
    assert list(schedule.months_late_at_as_of) == [0, 3, 2]
    export = taiwan.convert(frame)
    agreement = taiwan.status_agreement(export, frame).set_index("status_column")
    assert agreement.loc["all", "agreement"] == pytest.approx(17 / 18)
    assert list(export.accounts["team"]) == ["early", "middle", "middle"]
    # The plain rule keeps 2% of each statement as the due, September's one upcoming in October.
    plain = taiwan.convert(frame, taiwan.ConversionConfig(fit_to_status=False))
    first = plain.dues[plain.dues["account_id"] == "TW00001"]
    assert (first["amount_due"] == 200.0).all() and len(first) == 7
    assert first["due_date"].max() == pd.Timestamp("2005-10-15")
