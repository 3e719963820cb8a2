"""The synthetic collections world: determinism, contract conformance, mechanics and ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import RIGHT_PARTY_OUTCOMES, Operations
from features.io import load_export, validate_export
from features.simulation import SimulationConfig, generate, simulate
from features.validate import validate_tables

US_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")


@pytest.fixture(scope="module")
def cn():
    return simulate(SimulationConfig(n_accounts=2500, days=180, seed=11, truth_replicas=64))


@pytest.fixture(scope="module")
def us():
    config = SimulationConfig(
        n_accounts=1500,
        days=120,
        seed=5,
        timezones=US_ZONES,
        centre_timezone="America/Chicago",
        policy="us_reg_f",
        truth_replicas=32,
    )
    return simulate(config)


def _calls(export) -> pd.DataFrame:
    """Outbound calls with debtor-local date/hour and customer."""
    accounts = export.accounts.set_index("account_id")
    calls = export.contacts[(export.contacts["channel"] == "call")].copy()
    calls["zone"] = calls["account_id"].map(accounts["timezone"])
    calls["customer_id"] = calls["account_id"].map(accounts["customer_id"])
    calls["local_hour"] = -1
    calls["local_date"] = pd.NaT
    calls["utc_hour"] = calls["started_at"].dt.hour
    for zone in calls["zone"].unique():
        rows = calls["zone"] == zone
        local = calls.loc[rows, "started_at"].dt.tz_convert(zone)
        calls.loc[rows, "local_hour"] = local.dt.hour.to_numpy()
        calls.loc[rows, "local_date"] = local.dt.tz_localize(None).dt.normalize().to_numpy()
    calls["rpc"] = calls["outcome"].isin(RIGHT_PARTY_OUTCOMES)
    return calls


def _owed_at(export, when: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
    """Amount overdue and DPD per account at `when`, the contract's way (naive reference)."""
    ids = export.accounts["account_id"]
    day = when.tz_localize(None).normalize()
    dues = export.dues[export.dues["due_date"] < day].sort_values(["account_id", "due_date"])
    settled = export.payments[(export.payments["paid_at"] < when) & (export.payments["status"] == "settled")]
    paid = settled.groupby("account_id")["amount"].sum().reindex(ids, fill_value=0.0)
    owed = dues.groupby("account_id")["amount_due"].sum().reindex(ids, fill_value=0.0)
    overdue = (owed - paid).clip(lower=0).round(2)
    dues = dues.assign(cum=dues.groupby("account_id")["amount_due"].cumsum())
    uncovered = dues[dues["cum"] > dues["account_id"].map(paid).to_numpy() + 1e-6]
    oldest = uncovered.groupby("account_id")["due_date"].min().reindex(ids)
    dpd = (day - oldest).dt.days.fillna(0).astype(int)
    return overdue, dpd


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    config = SimulationConfig(n_accounts=300, days=60, seed=3)
    generate(tmp_path / "a", config)
    generate(tmp_path / "b", config)
    generate(tmp_path / "c", config.model_copy(update={"seed": 4}))
    names = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert "operations.yaml" in names and "contacts.parquet" in names and "export.json" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "payments.parquet").read_bytes() != (tmp_path / "c" / "payments.parquet").read_bytes()


def test_generated_directory_passes_the_contract_and_loads(tmp_path):
    simulation = generate(tmp_path, SimulationConfig(n_accounts=400, days=90, seed=8))
    assert validate_export(tmp_path) == []
    export, report = load_export(tmp_path)
    assert report.reconciles()
    assert len(export.contacts) == len(simulation.export.contacts) > 0
    assert export.as_of == simulation.export.as_of
    operations = Operations.from_yaml(tmp_path / "operations.yaml")
    assert {team.team for team in operations.teams} == {"early", "middle", "late", "default"}
    assert set(export.accounts["team"].dropna()) <= {team.team for team in operations.teams}


def test_simulated_exports_have_no_contract_violations(cn, us):
    for simulation in (cn, us):
        export = simulation.export
        assert validate_tables(export.as_of, export.tables()) == []
        assert export.accounts["customer_id"].value_counts().max() <= 3
        assert export.accounts["customer_id"].value_counts().max() >= 2
        for table, column in (
            ("payments", "paid_at"),
            ("contacts", "started_at"),
            ("promises", "created_at"),
        ):
            assert (export.table(table)[column] < export.as_of).all()
        horizon = export.as_of.tz_localize(None).normalize() + pd.Timedelta(days=62)
        assert export.dues["due_date"].max() <= horizon
        assert (export.dues["due_date"] > export.as_of.tz_localize(None)).any()  # upcoming dues exist


def test_book_has_all_stages_flags_and_event_kinds(cn):
    export = cn.export
    assert set(export.accounts["team"].dropna()) == {"early", "middle", "late", "default"}
    flags = export.accounts[["do_not_call", "cease_contact", "dispute_open", "hardship", "deceased"]].mean()
    assert ((flags > 0) & (flags < 0.1)).all()
    outcomes = set(export.contacts["outcome"])
    assert {"promise_to_pay", "wrong_number", "refused", "delivered", "no_answer"} <= outcomes
    assert set(export.contacts["direction"]) == {"outbound", "inbound"}
    assert set(export.payments["status"]) == {"settled", "returned"}
    events = sum(len(export.table(name)) for name in ("dues", "payments", "contacts", "promises"))
    assert 20 < events / len(export.accounts) < 70


def test_cure_rate_falls_with_days_past_due(cn):
    export = cn.export
    rates = {}
    for days_before in (150, 120, 90):
        when = export.as_of - pd.Timedelta(days=days_before)
        overdue, dpd = _owed_at(export, when)
        later = export.payments[
            (export.payments["paid_at"] >= when)
            & (export.payments["paid_at"] < when + pd.Timedelta(days=60))
            & (export.payments["status"] == "settled")
        ]
        paid = later.groupby("account_id")["amount"].sum().reindex(overdue.index, fill_value=0.0)
        frame = pd.DataFrame({"bucket": pd.cut(dpd, [0, 30, 90, 100_000]), "cured": paid >= overdue - 0.005})
        rates[days_before] = frame[overdue > 0].groupby("bucket", observed=True)["cured"].mean().to_numpy()
    mean = np.mean(list(rates.values()), axis=0)
    assert mean[0] > 0.65 and mean[0] > mean[1] + 0.2 and mean[1] > mean[2] + 0.1 and mean[2] < 0.3


def test_calls_respect_the_cn_preset(cn):
    calls = _calls(cn.export)
    outbound = calls[calls["direction"] == "outbound"]
    assert outbound["local_hour"].between(8, 21).all()
    per_day = calls.groupby(["customer_id", "local_date"])
    assert per_day["rpc"].sum().max() <= 3
    assert (~calls["rpc"] & calls["outcome"].isin(["no_answer", "busy", "voicemail"])).groupby(
        [calls["customer_id"], calls["local_date"]]
    ).sum().max() <= 6
    # Flags stop outbound calls from the day they are set (a random day of the history).
    accounts = cn.export.accounts
    flags = [
        "do_not_call",
        "cease_contact",
        "deceased",
        "bankruptcy",
        "dispute_open",
        "complaint_open",
        "hardship",
    ]
    flagged = accounts[accounts[flags].any(axis=1)]["account_id"]
    overdue, _ = _owed_at(cn.export, cn.export.as_of)
    clean = accounts[~accounts[flags].any(axis=1)]["account_id"]
    clean = clean[clean.map(overdue).to_numpy() > 0]
    recent = outbound[outbound["started_at"] >= cn.export.as_of - pd.Timedelta(days=30)]["account_id"]
    assert len(flagged) > 50
    assert flagged.isin(recent).mean() < 0.5 * clean.isin(recent).mean()


def test_calls_respect_regulation_f(us):
    calls = _calls(us.export).sort_values("started_at")
    outbound = calls[calls["direction"] == "outbound"]
    assert outbound["local_hour"].between(8, 20).all()
    # At most 7 attempts in any 7 consecutive days per account (UTC days, the strictest reading).
    days = outbound.assign(day=outbound["started_at"].dt.floor("D"))
    daily = days.groupby(["account_id", "day"]).size().rename("n").reset_index()
    for _, group in daily.groupby("account_id"):
        counts = group.set_index("day")["n"].asfreq("D", fill_value=0)
        assert counts.rolling(7, min_periods=1).sum().max() <= 7
    # No call within 7 days after a conversation (the conversation's day is day 1).
    conversations = calls[calls["rpc"]][["account_id", "started_at"]].rename(columns={"started_at": "talk"})
    pairs = outbound[["account_id", "started_at"]].merge(conversations, on="account_id")
    gap = (pairs["started_at"].dt.floor("D") - pairs["talk"].dt.floor("D")).dt.days
    assert not ((pairs["started_at"] > pairs["talk"]) & (gap < 7)).any()


def test_right_party_rate_follows_debtor_local_hours(us):
    outbound = _calls(us.export)
    outbound = outbound[outbound["direction"] == "outbound"]
    east = outbound[outbound["zone"] == "America/New_York"]
    west = outbound[outbound["zone"] == "America/Los_Angeles"]

    def gap(by: str) -> float:
        a = east.groupby(by)["rpc"].agg(["mean", "size"])
        b = west.groupby(by)["rpc"].agg(["mean", "size"])
        both = a.join(b, how="inner", suffixes=("_e", "_w"))
        both = both[(both["size_e"] > 150) & (both["size_w"] > 150)]
        assert len(both) >= 5
        return float((both["mean_e"] - both["mean_w"]).abs().mean())

    # The same local hour means the same propensity in both zones; the same UTC hour does not.
    assert gap("local_hour") < 0.6 * gap("utc_hour")
    profile = outbound.groupby("local_hour")["rpc"].mean()
    assert profile.max() > 2 * profile.min()
    assert profile.loc[[12, 13]].mean() < profile.loc[[9, 18, 19]].mean()
    weekday = outbound.groupby(outbound["local_date"].dt.day_of_week)["rpc"].mean()
    assert weekday.loc[4] > weekday.loc[0] and weekday.loc[4] > weekday.loc[2]


def test_broken_promises_lower_later_repayment(cn):
    export = cn.export
    promises = export.promises
    settled = export.payments[export.payments["status"] == "settled"]
    resolved = promises["promised_date"] + pd.Timedelta(days=2)
    cutoff = export.as_of.tz_localize(None) - pd.Timedelta(days=40)
    promises = promises[resolved < cutoff].assign(resolved=resolved)
    merged = promises.merge(settled[["account_id", "paid_at", "amount"]], on="account_id", how="left")
    paid_at = merged["paid_at"].dt.tz_localize(None)
    kept_part = merged["amount"].where(
        (paid_at >= merged["created_at"].dt.tz_localize(None)) & (paid_at < merged["resolved"]), 0.0
    )
    later_part = merged["amount"].where(
        (paid_at >= merged["resolved"]) & (paid_at < merged["resolved"] + pd.Timedelta(days=30)), 0.0
    )
    sums = (
        merged.assign(kept_part=kept_part, later_part=later_part)
        .groupby("promise_id")[["kept_part", "later_part", "promised_amount"]]
        .agg({"kept_part": "sum", "later_part": "sum", "promised_amount": "first"})
    )
    broken = sums["kept_part"] < sums["promised_amount"] - 0.005
    paid_later = sums["later_part"] > 0
    assert broken.sum() > 50 and (~broken).sum() > 50
    # Accounts that broke a promise pay less often in the following month than those who kept one.
    assert paid_later[broken].mean() < paid_later[~broken].mean()


def test_ground_truth_is_a_probability_and_calls_help_on_average(cn):
    world = cn.world
    ids = cn.export.accounts["account_id"]
    call_at = pd.Timestamp(world.list_date.isoformat() + " 10:00", tz="Asia/Shanghai").tz_convert("UTC")
    p_none = world.true_p_repay(ids)
    p_reached = world.true_p_repay_if_reached(ids)
    p_contact = world.true_p_contact(ids, call_at)
    value = world.true_call_value(ids, call_at)
    for p in (p_none, p_reached, p_contact):
        assert ((p >= 0) & (p <= 1)).all()
    assert p_contact.std() > 0.05
    assert value.mean() > 0 and p_reached.mean() > p_none.mean()
    # Nothing is at stake on a current account: its label holds and no call can add anything.
    current = world.money_at_stake == 0
    assert current.any() and (p_none[current] == 1).all() and (value[current] == 0).all()
    # Self-curers barely gain from a call; negotiable debtors gain much more.
    kinds = world.kinds(ids)
    gain = p_reached - p_none
    owing = ~current
    assert gain[owing & (kinds == "negotiable")].mean() > 3 * gain[owing & (kinds == "self_curer")].mean()
    # The contact probability depends on the debtor-local hour.
    night = world.true_p_contact(ids, call_at + pd.Timedelta(hours=12))
    assert not np.allclose(night, p_contact)


def test_replay_without_calls_adds_nothing_and_matches_call_values(cn):
    world = cn.world
    empty = world.replay(pd.DataFrame({"account_id": pd.Series([], dtype="string"), "call_at": []}))
    assert empty.extra == 0 and empty.collected_total == empty.collected_no_calls > 0
    assert empty.extra_settled == 0 and empty.settled_total == empty.settled_no_calls > 0
    ids = cn.export.accounts["account_id"].iloc[:300]
    call_at = pd.Timestamp(world.list_date.isoformat() + " 09:00", tz="Asia/Shanghai").tz_convert("UTC")
    result = world.replay(pd.DataFrame({"account_id": ids, "call_at": call_at}))
    expected = world.true_call_value(ids, call_at).sum()
    assert result.extra == pytest.approx(expected, rel=1e-9, abs=1e-9)
    settled = world.true_call_value(ids, call_at, settled=True).sum()
    assert result.extra_settled == pytest.approx(settled, rel=1e-9, abs=1e-9) and settled > 0
    assert len(result.per_account) == len(cn.export.accounts)


def test_settled_money_covers_the_labels_money_account_by_account(cn):
    # A met label means payments of at least the money at stake, in every replica: the expected settled
    # money can only exceed P(label) x stake, with or without a call (partial and full payments add to it).
    world = cn.world
    ids = world.account_ids
    stake = world.money_at_stake
    owing = stake > 0
    for settled, p_label in (
        (world.true_settled(ids), world.true_p_repay(ids)),
        (world.true_settled_if_reached(ids), world.true_p_repay_if_reached(ids)),
    ):
        assert (settled[owing] >= p_label[owing] * stake[owing] - 1e-6).all()
        assert (settled[~owing] == 0).all()  # nothing owed is not simulated: no call can change it
        assert settled[owing].sum() > 1.05 * (p_label[owing] * stake[owing]).sum()


def test_calling_the_highest_value_accounts_beats_a_random_list(cn):
    world = cn.world
    accounts = cn.export.accounts
    callable_ = accounts[~accounts[["do_not_call", "cease_contact", "deceased", "bankruptcy"]].any(axis=1)]
    ids = callable_["account_id"]
    call_at = pd.Timestamp(world.list_date.isoformat() + " 19:00", tz="Asia/Shanghai").tz_convert("UTC")
    value = world.true_call_value(ids, call_at)
    best = ids.iloc[np.argsort(-value)[:200]]
    chosen = np.random.default_rng(0).choice(len(ids), size=200, replace=False)
    best_result = world.replay(pd.DataFrame({"account_id": best, "call_at": call_at}))
    random_result = world.replay(pd.DataFrame({"account_id": ids.iloc[chosen], "call_at": call_at}))
    assert best_result.extra > 2 * random_result.extra > 0


def test_monte_carlo_totals_agree_across_truth_seeds():
    replicas = 200
    config = SimulationConfig(n_accounts=1500, days=120, seed=2, truth_replicas=replicas)
    worlds = [simulate(config.model_copy(update={"truth_seed": s})).world for s in (0, 1)]
    ids = worlds[0].account_ids
    stake = worlds[0].money_at_stake
    p = [w.true_p_repay(ids) for w in worlds]
    totals = [float((q * stake).sum()) for q in p]
    standard_error = float(np.sqrt((stake**2 * p[0] * (1 - p[0]) / replicas).sum()))
    assert standard_error < 0.01 * totals[0]
    assert abs(totals[0] - totals[1]) < 3 * np.sqrt(2) * standard_error


def test_half_and_quarter_hour_zones_call_inside_the_shift_and_the_window():
    """Debtors in Asia/Kolkata (+5:30) and Asia/Kathmandu (+5:45) called from a Shanghai centre."""
    config = SimulationConfig(
        n_accounts=800,
        days=90,
        seed=3,
        timezones=("Asia/Kolkata", "Asia/Kathmandu", "Asia/Shanghai"),
        centre_timezone="Asia/Shanghai",
        truth_replicas=8,
    )
    sim = simulate(config)
    shifts = {team.team: set(team.shift.whole_hours()) for team in sim.operations.teams}
    calls = _calls(sim.export)
    outbound = calls[calls["direction"] == "outbound"].copy()
    # Agent ids start with their team's initial (E001 is in team "early").
    initials = {team.team[0].upper(): team.team for team in sim.operations.teams}
    outbound["team"] = outbound["agent_id"].str[0].map(initials)
    centre = outbound["started_at"].dt.tz_convert("Asia/Shanghai")
    in_shift = [hour in shifts[team] for hour, team in zip(centre.dt.hour, outbound["team"], strict=True)]
    assert all(in_shift)
    assert outbound["local_hour"].between(8, 21).all()
    for zone in ("Asia/Kolkata", "Asia/Kathmandu"):
        minutes = outbound.loc[outbound["zone"] == zone, "started_at"].dt.tz_convert(zone).dt.minute
        # Both parts of a local hour are used: the one in one centre hour and the one in the next.
        cut = 30 if zone == "Asia/Kolkata" else 45
        assert (minutes < cut).sum() > 50 and (minutes >= cut).sum() > 50
    # The truth answers for calls on the list date at half-past local hours.
    ids = sim.export.accounts["account_id"].to_numpy()
    list_day = pd.Timestamp(sim.world.list_date).tz_localize("Asia/Shanghai")
    call_at = pd.Series([list_day + pd.Timedelta(hours=11)] * len(ids)).dt.tz_convert("UTC")
    p_contact = sim.world.true_p_contact(ids, call_at)
    assert np.isfinite(sim.world.true_call_value(ids, call_at)).all()
    assert ((p_contact >= 0) & (p_contact <= 1)).all() and p_contact.max() > 0
