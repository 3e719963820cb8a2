"""The serving path end to end on a small trained book: scores, the day's list, reasons, the guard."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from features.build import portfolio_context
from features.contract import CALL_LIST_COLUMNS, SCORES_COLUMNS, TABLES, Shift
from serving.compliance import ComplianceError, assert_compliant
from serving.evaluation import compare_lists
from serving.pipeline import DailyProvider, check_list_date, default_list_date, run_day, score_export, write_day
from tests.serving.portfolios import account_row, build_export, operations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def day_run(trained_book):
    simulation = trained_book.simulation
    list_date = default_list_date(simulation.export.as_of, simulation.operations)
    return run_day(simulation.export, simulation.operations, list_date, trained_book.champions)


def test_scores_cover_every_account_with_contract_columns(trained_book):
    export = trained_book.simulation.export
    scores = score_export(export, trained_book.champions).scores
    assert list(scores.columns) == list(SCORES_COLUMNS)
    assert scores["account_id"].tolist() == export.accounts["account_id"].tolist()
    assert scores["p_repay"].between(0, 1).all()
    eligible = scores["eligible"].to_numpy()
    assert scores.loc[eligible, "best_hour_local"].notna().all()
    assert scores.loc[~eligible, "best_hour_local"].isna().all()
    assert scores.loc[eligible, "best_hour_local"].between(8, 20).all()
    assert scores.loc[eligible, "p_contact_best"].between(0, 1).all()
    # Nothing overdue: the contract's required payment is zero, so the event is certain.
    assert (scores.loc[scores["amount_overdue"] == 0, "p_repay"] == 1.0).all()
    assert (scores.loc[scores["amount_overdue"] == 0, "eligible"] == False).all()  # noqa: E712


def test_every_overdue_debtor_keeps_a_share_of_the_typical_call_effect(trained_book):
    from serving.pipeline import MIN_EFFECT_SHARE

    scored = score_export(trained_book.simulation.export, trained_book.champions)
    overdue = scored.account_scores["amount_overdue"].to_numpy(dtype=float) > 0
    uplift = scored.account_scores["uplift"].to_numpy(dtype=float)
    assert (uplift[~overdue] == 0).all()
    call_effect = trained_book.champions.call_effect
    estimate = np.clip(call_effect.predict_uplift(scored.features[overdue]), 0, 1)
    # The model's own typical effect (its validation window), close to this book's mean estimate.
    typical = call_effect.metadata["reference_uplift"]
    assert typical == pytest.approx(estimate.mean(), rel=0.5)
    floor = MIN_EFFECT_SHARE * typical
    assert (estimate < floor).any()  # the book has estimates the floor lifts, so this test can fail
    np.testing.assert_allclose(uplift[overdue], np.maximum(estimate, floor))


def _posted(export, accounts) -> object:
    """The part of `export` the case system would post to score `accounts`: them and their customers'
    other accounts (one person answers them all), with all their history."""
    customers = export.accounts.loc[export.accounts["account_id"].isin(accounts), "customer_id"]
    posted = export.accounts.loc[export.accounts["customer_id"].isin(customers), "account_id"]
    tables = {name: export.table(name)[export.table(name)["account_id"].isin(posted)] for name in TABLES}
    return dataclasses.replace(export, **tables)


def test_an_accounts_scores_do_not_depend_on_the_others_scored_with_it(trained_book):
    export = trained_book.simulation.export
    full_scored = score_export(export, trained_book.champions)
    full = full_scored.account_scores.set_index("account_id")
    # A handful of overdue accounts (with their customers' other accounts: one person answers them
    # all), as the API gets them, scored against the book's portfolio: nothing may move.
    few = full.index[full["amount_overdue"].to_numpy(dtype=float) > 0][:5]
    assert len(few) == 5
    small = _posted(export, few)
    alone = score_export(small, trained_book.champions).account_scores.set_index("account_id")
    # Without the book's portfolio the few accounts' priors and answering patterns are their own.
    assert not np.allclose(alone.loc[few, "rpc_rate_hour_9"], full.loc[few, "rpc_rate_hour_9"])
    part_scored = score_export(small, trained_book.champions, portfolio=portfolio_context(export))
    part = part_scored.account_scores.set_index("account_id")
    np.testing.assert_allclose(part.loc[few, "uplift"], full.loc[few, "uplift"], rtol=1e-9)
    assert (part.loc[few, "uplift"] > 0).all()
    features = [name for name in trained_book.champions.contact.feature_names if name in full.columns]
    pd.testing.assert_frame_equal(part.loc[few, features], full.loc[few, features])
    contract = [frame.set_index("account_id").loc[few] for frame in (full_scored.scores, part_scored.scores)]
    pd.testing.assert_frame_equal(contract[1], contract[0])
    # Accounts posted as of an earlier instant: the book's portfolio holds calls made after it.
    earlier = dataclasses.replace(small, as_of=export.as_of - pd.Timedelta(days=30))
    with pytest.raises(ValueError, match="before the book's as_of"):
        score_export(earlier, trained_book.champions, portfolio=portfolio_context(export))


def test_scoring_is_deterministic(trained_book):
    export = trained_book.simulation.export
    first = score_export(export, trained_book.champions).scores
    second = score_export(export, trained_book.champions).scores
    pd.testing.assert_frame_equal(first, second)


def test_day_list_is_ranked_compliant_and_explained(trained_book, day_run):
    calls = day_run.call_list
    assert list(calls.columns) == list(CALL_LIST_COLUMNS)
    assert len(calls) > 0
    assert calls["rank"].tolist() == list(range(1, len(calls) + 1))
    assert calls["account_id"].is_unique
    assert (calls["reasons"].str.len() > 0).all()
    assert calls["reasons"].str.contains("best reached").all()
    assert (calls["expected_value"] >= 0).all()
    # The list is in value order, except that promise follow-ups come first.
    assert calls["model_version"].eq(trained_book.champions.model_version).all()
    load = day_run.capacity
    assert (load["scheduled"] <= load["capacity"]).all()
    assert not set(day_run.special_handling["account_id"]) & set(calls["account_id"])
    # Explanations exist for every listed account.
    assert set(calls["account_id"]) <= set(day_run.explanations["account_id"])
    # Eligible: a call is allowed on the list date, so every account the rules left in (and every listed one).
    scores = day_run.scores.set_index("account_id")
    assert scores.loc[calls["account_id"], "eligible"].all()
    assert int(scores["eligible"].sum()) == len(scores) - sum(day_run.excluded.values()) > len(calls)
    assert scores.loc[~scores["eligible"], "best_hour_local"].isna().all()
    # Every account's team is known to the API (who may read its explanation), null teams as `default`.
    assert set(day_run.account_teams.index) == set(scores.index) and day_run.account_teams.notna().all()


def test_a_day_without_an_allowed_slot_gives_an_empty_list_and_says_why(trained_book):
    simulation = trained_book.simulation
    # Every shift at 02:00-05:00 centre time, before the cn window (08:00-22:00) in Shanghai.
    night = simulation.operations.model_copy(
        update={
            "teams": [
                team.model_copy(update={"shift": Shift(start=dt.time(2), end=dt.time(5))})
                for team in simulation.operations.teams
            ]
        }
    )
    # The day after the default one, so that the night's slots are after as_of.
    list_date = default_list_date(simulation.export.as_of, simulation.operations) + dt.timedelta(days=1)
    run = run_day(simulation.export, night, list_date, trained_book.champions)
    assert run.call_list.empty and list(run.call_list.columns) == list(CALL_LIST_COLUMNS)
    # Scores say so too: no account is eligible on that date, none has a best hour.
    assert not run.scores["eligible"].any() and run.scores["best_hour_local"].isna().all()
    assert run.excluded["call_window"] > 0 and sum(run.excluded.values()) == len(run.scores)


@pytest.mark.parametrize(
    ("as_of", "day", "past"),
    [
        ("2026-11-23T05:30:00Z", "2026-11-23", False),  # 13:30 Shanghai: the 13:00 hour has begun, 14:00 has not
        ("2026-11-23T06:00:00Z", "2026-11-23", False),  # 14:00 Shanghai: the last hour starts now
        ("2026-11-23T06:30:00Z", "2026-11-23", True),  # 14:30: every hour of the 08:00-15:00 shift began
        ("2026-11-23T06:30:00Z", "2026-11-24", False),
        ("2026-11-23T06:30:00Z", "2026-11-22", True),
    ],
)
def test_a_list_date_whose_shift_hours_all_began_before_as_of_is_refused(as_of, day, past):
    export = build_export(as_of, [account_row("A1")])
    ops = operations("cn", shift=("08:00", "15:00"))
    if past:
        with pytest.raises(LookupError, match="starts before the export's as_of"):
            check_list_date(export, ops, dt.date.fromisoformat(day))
    else:
        check_list_date(export, ops, dt.date.fromisoformat(day))


def test_a_list_date_past_the_horizon_is_refused():
    # 2026-11-23 14:30 in Shanghai: 14 days on is the last date an export this old is ranked for.
    export = build_export("2026-11-23T06:30:00Z", [account_row("A1")])
    ops = operations("cn", shift=("08:00", "15:00"))
    check_list_date(export, ops, dt.date(2026, 12, 7))
    with pytest.raises(LookupError, match="list date 2026-12-08 is more than 14 days after the export's as_of"):
        check_list_date(export, ops, dt.date(2026, 12, 8))


def test_a_book_without_accounts_scores_and_ranks_to_nothing():
    from serving.ranking import rank_calls
    from tests.serving.portfolios import constant_contact, flat_scores

    export = build_export("2026-11-22T16:00:00Z", [])
    result = rank_calls(export, operations("cn"), "2026-11-23", flat_scores(export), constant_contact)
    assert result.call_list.empty and result.special_handling.empty


def test_daily_provider_ranks_the_served_date_and_refuses_past_ones(trained_book):
    simulation = trained_book.simulation
    provider = DailyProvider(simulation.export, simulation.operations, trained_book.champions)
    first = provider.daily_run()
    assert first.list_date == provider.default_date
    with pytest.raises(LookupError, match="starts before the export's as_of"):
        provider.daily_run(provider.default_date - dt.timedelta(days=2))
    # Posted accounts are scored against the served book: as the book's own scores.
    book = score_export(simulation.export, trained_book.champions).scores.set_index("account_id")
    few = book.index[book["p_repay"].to_numpy() < 1][:3]
    posted = provider.score(_posted(simulation.export, few)).set_index("account_id")
    pd.testing.assert_frame_equal(posted.loc[few], book.loc[few])


def test_day_list_is_deterministic(trained_book, day_run):
    # The exact assignment (an LP) must give the same calls in the same hours on every run.
    simulation = trained_book.simulation
    again = run_day(simulation.export, simulation.operations, day_run.list_date, trained_book.champions)
    pd.testing.assert_frame_equal(again.call_list, day_run.call_list)


def test_guard_rejects_a_tampered_list(trained_book, day_run):
    simulation = trained_book.simulation
    tampered = day_run.call_list.copy()
    flagged = simulation.export.accounts.loc[simulation.export.accounts["do_not_call"], "account_id"]
    assert len(flagged) > 0
    tampered.loc[0, "account_id"] = flagged.iloc[0]
    with pytest.raises(ComplianceError):
        assert_compliant(tampered, simulation.export, simulation.operations, day_run.list_date)


def test_write_day_replaces_the_date_in_a_sql_table(trained_book, day_run, tmp_path):
    url = f"sqlite:///{tmp_path / 'case.db'}"
    for _ in range(2):
        written = write_day(day_run, f"{url}#call_list")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT COUNT(*) FROM call_list")).scalar_one()
        special = connection.execute(sa.text(f"SELECT COUNT(*) FROM {written.special_handling.split('#')[1]}"))
        special_count = special.scalar_one()
    assert count == len(day_run.call_list)
    assert special_count == len(day_run.special_handling)


def test_callq_list_beats_the_supervisor_sort_in_the_world(trained_book, day_run):
    simulation = trained_book.simulation
    table = compare_lists(simulation, trained_book.champions, day_run.list_date, run=day_run).set_index("list")
    callq, supervisor = table.loc["callq"], table.loc["supervisor sort"]
    assert callq["calls"] == supervisor["calls"] or callq["calls"] > 0
    # By the models' own estimate (what the optimiser maximises) and in the simulated world.
    assert callq["model_expected_value"] > supervisor["model_expected_value"]
    assert callq["true_extra_collected"] > supervisor["true_extra_collected"]
    assert callq["true_extra_settled"] > supervisor["true_extra_settled"]
    assert np.isfinite(table[["share_of_oracle", "share_of_oracle_settled"]]).all(axis=None)
    # Each oracle is the best list by its own yardstick (up to the solver's tolerance).
    assert table.loc["oracle (true parameters)", "share_of_oracle"] == 1.0
    assert table.loc["oracle (settled money)", "share_of_oracle_settled"] == 1.0
    assert (table[["share_of_oracle", "share_of_oracle_settled"]] <= 1.0 + 1e-6).all(axis=None)


def test_contact_grid_matches_row_by_row_prediction(trained_book):
    """predict_hours (the fast grid the scorer uses) equals predicting each (account, hour) row."""
    from features.build import build_features

    features = build_features(trained_book.simulation.export).head(60)
    weekdays = np.arange(len(features)) % 7
    hours = [8, 13, 20]
    grid = trained_book.champions.contact.predict_hours(features, hours, weekdays)
    for column, hour in enumerate(hours):
        rows = features.assign(local_hour=hour, weekday=weekdays)
        np.testing.assert_allclose(grid[:, column], trained_book.champions.contact.predict_proba(rows))


def test_ranking_from_the_scoring_grid_equals_calling_the_model(trained_book):
    """The ranker reads slot probabilities from the best-hour grid; the list must be the model's list."""
    from serving.pipeline import contact_probability, policy_hours
    from serving.ranking import rank_calls

    simulation = trained_book.simulation
    export, operations = simulation.export, simulation.operations
    list_date = default_list_date(export.as_of, operations)
    scored = score_export(export, trained_book.champions, call_hours=policy_hours(operations), day=list_date)
    assert scored.contact_grid is not None and len(scored.contact_grid.account_id) > 0

    class CountingContact:
        def __init__(self, model):
            self.model, self.rows = model, 0

        def predict_proba(self, frame):
            self.rows += len(frame)
            return self.model.predict_proba(frame)

    with_grid, without = (SimpleNamespace(contact=CountingContact(trained_book.champions.contact)) for _ in "ab")
    lists = [
        rank_calls(export, operations, list_date, scored.account_scores, probability).call_list
        for probability in (contact_probability(with_grid, scored.contact_grid), contact_probability(without))
    ]
    assert len(lists[0]) > 0
    assert with_grid.contact.rows < 0.2 * without.contact.rows  # the grid answered most slots
    pd.testing.assert_frame_equal(lists[0], lists[1], check_exact=False, rtol=1e-12)


def test_contact_grid_lookup_misses_other_weekdays_hours_and_accounts():
    from serving.pipeline import ContactGrid

    grid = ContactGrid(
        account_id=pd.Index(["A", "B"], dtype="string"),
        hours=np.array([9, 10]),
        weekday=2,
        p=np.array([[0.1, 0.2], [0.3, 0.4]]),
    )
    found = grid.lookup(
        np.array(["B", "A", "A", "A", "Z"], dtype=object), np.array([10, 9, 11, 9, 9]), np.array([2, 2, 2, 3, 2])
    )
    np.testing.assert_array_equal(found, [0.4, 0.1, np.nan, np.nan, np.nan])


def test_contact_probability_answers_grid_misses_with_the_model():
    """Slots on another local weekday or hour than the grid's (far time zones) must go to the model."""
    from serving.pipeline import ContactGrid, contact_probability

    def truth(account_ids, hours, weekdays):
        codes = np.array([int(a[1:]) for a in account_ids])
        return (codes * 0.01 + hours * 0.02 + weekdays * 0.001) % 1.0

    class Contact:
        rows = 0

        def predict_proba(self, frame):
            Contact.rows += len(frame)
            return truth(frame["account_id"].to_numpy(), frame["local_hour"].to_numpy(), frame["weekday"].to_numpy())

    accounts = pd.DataFrame({"account_id": pd.array([f"A{i}" for i in range(6)], dtype="string")})
    hours = np.arange(8, 21)
    grid_ids = accounts["account_id"].to_numpy()[:4]  # A4, A5 are not in the grid (not eligible)
    grid = ContactGrid(
        account_id=pd.Index(grid_ids, dtype="string"),
        hours=hours,
        weekday=0,
        p=np.stack([truth(np.repeat(a, len(hours)), hours, np.zeros(len(hours))) for a in grid_ids]),
    )
    rng = np.random.default_rng(3)
    positions = rng.integers(0, 6, 200)
    local_hour = rng.integers(6, 23, 200)
    weekday = rng.choice([0, 0, 0, 6], 200)
    found = contact_probability(SimpleNamespace(contact=Contact()), grid)(accounts, positions, local_hour, weekday)
    expected = truth(accounts["account_id"].to_numpy()[positions], local_hour, weekday)
    np.testing.assert_allclose(found, expected)
    in_grid = (positions < 4) & (local_hour >= 8) & (local_hour <= 20) & (weekday == 0)
    assert 0 < Contact.rows == (~in_grid).sum()


def test_a_no_call_flag_on_one_account_makes_the_customers_other_accounts_not_eligible(trained_book):
    import dataclasses

    export = trained_book.simulation.export
    scores = score_export(export, trained_book.champions).scores.set_index("account_id")
    accounts = export.accounts.copy()
    shared = accounts[accounts.duplicated("customer_id", keep=False)]
    listed = shared[scores.loc[shared["account_id"], "eligible"].to_numpy()].iloc[0]
    sibling = shared.index[
        (shared["customer_id"] == listed["customer_id"]) & (shared["account_id"] != listed["account_id"])
    ]
    accounts.loc[sibling, "do_not_call"] = True  # one person, one phone: the ranker calls none of the customer's
    flagged = dataclasses.replace(export, accounts=accounts)
    after = score_export(flagged, trained_book.champions).scores.set_index("account_id")
    assert not after.loc[listed["account_id"], "eligible"]
    assert pd.isna(after.loc[listed["account_id"], "best_hour_local"])


def test_the_served_provider_ranks_what_it_is_asked_and_refuses_past_dates_and_dates_past_the_horizon(monkeypatch):
    import serving.pipeline as pipeline

    built: list[dt.date] = []
    monkeypatch.setattr(pipeline, "run_day", lambda export, operations, day, champions: built.append(day) or day)
    export = SimpleNamespace(as_of=pd.Timestamp("2026-11-22T16:00Z"))  # 2026-11-23 00:00 in Shanghai
    provider = DailyProvider(export, operations(shift=("09:00", "18:00")), None, dt.date(2026, 11, 23))
    days = [dt.date(2026, 11, 23) + dt.timedelta(days=k) for k in range(pipeline.MAX_DAYS_AHEAD + 1)]
    for day in days:
        assert provider.daily_run(day) == day
    assert provider.daily_run() == days[0] and built == [*days, days[0]]  # the API's DayCache keeps runs
    with pytest.raises(LookupError, match="more than 14 days after the export's as_of"):
        provider.daily_run(days[-1] + dt.timedelta(days=1))
    # A past date: its every shift hour began before as_of, so its list is empty; no book-wide ranking for it.
    with pytest.raises(LookupError, match="every shift hour of list date 2026-11-22 starts before the export's as_of"):
        provider.daily_run(dt.date(2026, 11, 22))
    assert len(built) == len(days) + 1  # refused before any ranking
