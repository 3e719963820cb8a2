"""The simulated export hides the world's truth: nothing in it tells a debtor's intentions before they act."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.simulation import SimulationConfig, simulate


def _kept(export, promises: pd.DataFrame, zone: str) -> pd.Series:
    """Whether settled payments from the promise to the end of the day after its date cover its amount."""
    payments = export.payments[export.payments["status"] == "settled"][["account_id", "paid_at", "amount"]]
    joined = promises.merge(payments, on="account_id", how="left")
    deadline = pd.to_datetime(joined["promised_date"]).dt.tz_localize(zone) + pd.Timedelta(days=2)
    inside = (joined["paid_at"] >= joined["created_at"]) & (joined["paid_at"] < deadline)
    paid = joined["amount"].where(inside, 0.0).groupby(joined["promise_id"]).sum()
    return paid.reindex(promises["promise_id"]).to_numpy() >= promises["promised_amount"].to_numpy() - 0.005


def test_a_messages_minute_does_not_tell_whether_a_same_day_promise_will_be_kept():
    zone = "Asia/Shanghai"
    export = simulate(SimulationConfig(n_accounts=12_000, days=150, seed=1, truth_replicas=1)).export
    contacts = export.contacts.assign(local=export.contacts["started_at"].dt.tz_convert(zone))
    contacts["date"] = contacts["local"].dt.date
    messages = contacts[contacts["channel"].isin(["sms", "letter"])][["account_id", "date", "local"]]
    inbound = contacts[(contacts["direction"] == "inbound") & (contacts["outcome"] == "promise_to_pay")]
    promises = export.promises.merge(inbound[["contact_id", "date"]], on="contact_id")
    promises = promises.merge(messages, on=["account_id", "date"]).drop_duplicates("promise_id")
    assert len(promises) >= 200
    kept = _kept(export, promises, zone)
    minute = (promises["local"].dt.minute * 60 + promises["local"].dt.second).to_numpy() / 3600
    early, late = kept[minute < 0.5].mean(), kept[minute >= 0.5].mean()
    # Kept at the same rate whatever the minute the message went out (within sampling noise).
    assert abs(early - late) < 0.15, (early, late)
    assert np.isfinite(early) and np.isfinite(late)
