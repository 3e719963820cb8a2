"""The HTTP API over a small hand-made DailyRun: every endpoint, paging, filters, auth rules, CSV."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.contract import CALL_LIST_COLUMNS, SCORES_COLUMNS, Export
from serving.api import BuildingProvider, StaticProvider, checked_export, create_app, export_from_request
from serving.api_schemas import QueuePage, ScoreRequest
from serving.auth import TokenAuth
from tests.serving.api_fixtures import ADMIN, CALLS, EARLY, LATE, LIST_DATE, TOKENS, small_run, token_auth

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OTHER_DATE = LIST_DATE + dt.timedelta(days=1)


def fake_scorer(export: Export) -> pd.DataFrame:
    """Scores that echo the typed export, so the test sees what the provider received."""
    owed = export.dues.groupby("account_id")["amount_due"].sum()
    accounts = export.accounts
    return pd.DataFrame(
        {
            "account_id": accounts["account_id"],
            "as_of": export.as_of,
            "p_repay": 0.25,
            "best_hour_local": pd.array([10] * len(accounts), dtype="Int64"),
            "p_contact_best": 0.4,
            "amount_overdue": accounts["account_id"].map(owed).fillna(0.0).astype(float),
            "days_past_due": 5,
            "stage": "early",
            "eligible": ~accounts["do_not_call"],
            "model_version": "test",
        }
    )


@pytest.fixture(scope="module")
def run():
    return small_run()


@pytest.fixture(scope="module")
def client(run):
    provider = StaticProvider(
        {LIST_DATE: run, OTHER_DATE: small_run(OTHER_DATE)}, default_date=LIST_DATE, scorer=fake_scorer
    )
    return TestClient(create_app(provider, auth=token_auth()))


def team_calls(run, team: str) -> pd.DataFrame:
    return run.call_list[run.call_list["team"] == team].sort_values("rank").reset_index(drop=True)


# --- health, models, teams ----------------------------------------------------------------


def test_health_needs_no_token(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_models_lists_champions_for_any_valid_token(client):
    for headers in (ADMIN, EARLY, LATE):
        body = client.get("/models", headers=headers).json()
        assert body["model_version"] == "repayment:3;contact:2;call-effect:1"
        names = {model["name"]: model for model in body["models"]}
        assert names["callq-repayment"]["version"] == "3"
        assert names["callq-repayment"]["metrics"]["auc"] == pytest.approx(0.781)


def test_teams_are_limited_to_the_token_scope(client):
    assert [t["team"] for t in client.get("/teams", headers=ADMIN).json()["teams"]] == ["early", "late"]
    early = client.get("/teams", headers=EARLY).json()
    assert [t["team"] for t in early["teams"]] == ["early"]
    assert early["teams"][0]["calls"] == 18
    assert early["list_date"] == "2026-11-23"
    late = client.get("/teams", headers=LATE).json()["teams"][0]
    assert late["special_handling"] == 2 and late["capacity_total"] == 16


# --- queue: paging and filters ------------------------------------------------------------


def test_queue_pages_cover_the_team_queue_in_rank_order(client, run):
    expected = team_calls(run, "early")
    seen = []
    for page in (1, 2, 3):
        response = client.get("/teams/early/queue", params={"page": page, "page_size": 7}, headers=EARLY)
        assert response.status_code == 200
        body = QueuePage.model_validate_json(response.content)
        assert (body.total, body.pages, body.page, body.page_size) == (18, 3, page, 7)
        assert len(body.rows) == (7 if page < 3 else 4)
        seen.extend(body.rows)
    assert [row.account_id for row in seen] == expected["account_id"].tolist()
    assert [row.position for row in seen] == list(range(1, 19))
    assert [row.rank for row in seen] == expected["rank"].tolist()
    assert body.expected_value_total == pytest.approx(expected["expected_value"].sum())
    past_end = client.get("/teams/early/queue", params={"page": 4, "page_size": 7}, headers=EARLY).json()
    assert past_end["rows"] == [] and past_end["total"] == 18


def test_queue_row_carries_times_reasons_and_best_hour(client):
    row = client.get("/teams/early/queue", params={"page_size": 1}, headers=EARLY).json()["rows"][0]
    assert row["account_id"] == "E000"
    assert row["call_at"] == "2026-11-23T01:00:00Z"
    assert row["call_at_centre"] == "2026-11-23T09:00:00+08:00"
    assert (row["centre_hour"], row["local_hour"], row["best_hour_local"]) == (9, 9, 9)
    assert row["reasons"] == ["3 DPD and 500 overdue", "best reached at 9:00", "broken promise yesterday"]
    assert row["agent_id"] is None


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"stage": "middle"}, lambda f: f["stage"] == "middle"),
        ({"min_amount": 1500}, lambda f: f["amount_overdue"] >= 1500),
        ({"hour": 10}, lambda f: f["call_at"].dt.tz_convert("Asia/Shanghai").dt.hour == 10),
        (
            {"stage": "early", "min_amount": 900, "hour": 11},
            lambda f: (
                (f["stage"] == "early")
                & (f["amount_overdue"] >= 900)
                & (f["call_at"].dt.tz_convert("Asia/Shanghai").dt.hour == 11)
            ),
        ),
        ({"stage": "no-such-stage"}, lambda f: f["stage"] == "no-such-stage"),
    ],
)
def test_queue_filters_match_the_call_list(client, run, params, keep):
    calls = team_calls(run, "early")
    expected = calls[keep(calls)]
    body = client.get("/teams/early/queue", params={**params, "page_size": 500}, headers=ADMIN).json()
    assert [row["account_id"] for row in body["rows"]] == expected["account_id"].tolist()
    assert body["total"] == len(expected)
    assert body["pages"] == (1 if len(expected) else 0)
    assert body["expected_value_total"] == pytest.approx(expected["expected_value"].sum())
    assert body["stages"] == ["early", "late", "middle"]


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page_size": 0},
        {"page_size": 501},
        {"hour": 24},
        {"min_amount": -1},
        {"date": "x"},
        {"min_amt": 5},
    ],
)
def test_queue_rejects_bad_parameters(client, params):
    response = client.get("/teams/early/queue", params=params, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_queue_for_another_date_and_unknown_ones(client):
    other = client.get("/teams/late/queue", params={"date": str(OTHER_DATE)}, headers=LATE).json()
    assert other["list_date"] == str(OTHER_DATE) and other["total"] == 12
    missing = client.get("/teams/late/queue", params={"date": "2026-01-01"}, headers=LATE)
    assert missing.status_code == 404
    assert client.get("/teams/nobody/queue", headers=ADMIN).status_code == 404


# --- CSV, capacity, explanation -----------------------------------------------------------


def test_csv_download_matches_the_queue(client, run):
    response = client.get("/teams/late/queue.csv", headers=LATE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"callq-late-2026-11-23.csv\"; filename*=UTF-8''callq-late-2026-11-23.csv"
    )
    frame = pd.read_csv(io.StringIO(response.text), dtype={"agent_id": "string"})
    assert tuple(frame.columns) == CALL_LIST_COLUMNS
    queue = client.get("/teams/late/queue", params={"page_size": 500}, headers=LATE).json()["rows"]
    assert frame["account_id"].tolist() == [row["account_id"] for row in queue]
    assert frame["rank"].tolist() == [row["rank"] for row in queue]
    assert frame["call_at"].tolist() == [row["call_at"] for row in queue]
    assert frame["reasons"].tolist() == [";".join(row["reasons"]) for row in queue]
    assert frame["expected_value"].tolist() == pytest.approx([row["expected_value"] for row in queue])
    assert (frame["list_date"] == "2026-11-23").all()
    # Money as `callq rank` writes it to CSV: two decimals ("5008.00", not "5008.0").
    amounts = [line.split(",")[CALL_LIST_COLUMNS.index("amount_overdue")] for line in response.text.splitlines()[1:]]
    assert amounts and all(re.fullmatch(r"\d+\.\d\d", amount) for amount in amounts)
    filtered = client.get("/teams/late/queue.csv", params={"stage": "M3"}, headers=LATE)
    filtered_frame = pd.read_csv(io.StringIO(filtered.text))
    assert (
        filtered_frame["account_id"].tolist() == team_calls(run, "late").query("stage == 'M3'")["account_id"].tolist()
    )


@pytest.mark.parametrize(("params", "name"), [({"min_amt": 1500}, "min_amt"), ({"min_amount": "inf"}, "min_amount")])
def test_csv_download_refuses_the_parameters_the_queue_refuses(client, params, name):
    # A misspelt filter would otherwise download the whole queue while the queue itself says 422.
    assert client.get("/teams/early/queue", params=params, headers=EARLY).status_code == 422
    response = client.get("/teams/early/queue.csv", params={"stage": "early", **params}, headers=EARLY)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]
    assert client.get("/teams/late/queue.csv", params=params, headers=LATE).status_code == 422


def test_csv_download_defuses_formulas_and_names_any_team(run):
    # Ids are the case system's free text: one a spreadsheet would run as a formula is written as text.
    # A team name outside Latin-1 (早期) still downloads, under its own name.
    calls = run.call_list.copy()
    early = calls["team"] == "early"
    first = calls.index[early][0]
    calls.loc[first, "account_id"] = '=HYPERLINK("http://x","y")'
    calls.loc[first, "customer_id"] = "@SUM(1+1)"
    calls["team"] = calls["team"].replace({"early": "早期"})
    capacity = run.capacity.assign(team=run.capacity["team"].replace({"early": "早期"}))
    special = run.special_handling.assign(team=run.special_handling["team"].replace({"early": "早期"}))
    changed = dataclasses.replace(run, call_list=calls, capacity=capacity, special_handling=special)
    client = TestClient(create_app(StaticProvider({LIST_DATE: changed}, default_date=LIST_DATE), auth=token_auth()))
    response = client.get("/teams/早期/queue.csv", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith("filename*=UTF-8''callq-%E6%97%A9%E6%9C%9F-2026-11-23.csv")
    frame = pd.read_csv(io.StringIO(response.text), dtype=str)
    assert frame.loc[0, "account_id"] == '\'=HYPERLINK("http://x","y")' and frame.loc[0, "customer_id"] == "'@SUM(1+1)"
    assert (
        not frame[["account_id", "customer_id", "team", "reasons"]]
        .apply(lambda column: column.str.match(r"^[=+\-@]"))
        .any(axis=None)
    )
    json_rows = client.get("/teams/早期/queue", headers=ADMIN).json()["rows"]
    assert json_rows[0]["account_id"] == '=HYPERLINK("http://x","y")'  # the JSON keeps the id as it is


def test_a_team_name_with_a_slash_reaches_its_queue(run):
    # accounts.team is free text: "north/early" arrives percent-encoded (as the page sends it) and decoded.
    renamed = {"early": "north/early"}
    changed = dataclasses.replace(
        run,
        call_list=run.call_list.assign(team=run.call_list["team"].replace(renamed)),
        capacity=run.capacity.assign(team=run.capacity["team"].replace(renamed)),
        special_handling=run.special_handling.assign(team=run.special_handling["team"].replace(renamed)),
    )
    client = TestClient(create_app(StaticProvider({LIST_DATE: changed}, default_date=LIST_DATE), auth=token_auth()))
    queue = client.get("/teams/north%2Fearly/queue", headers=ADMIN)
    assert queue.status_code == 200 and queue.json()["team"] == "north/early"
    assert queue.json()["total"] == CALLS["early"]
    capacity = client.get("/teams/north%2Fearly/capacity", headers=ADMIN)
    assert capacity.status_code == 200 and capacity.json()["scheduled_total"] == CALLS["early"]
    csv = client.get("/teams/north%2Fearly/queue.csv", headers=ADMIN)
    assert csv.status_code == 200 and len(pd.read_csv(io.StringIO(csv.text))) == CALLS["early"]
    assert client.get("/teams/north%2Fearly/queue", headers=EARLY).status_code == 403
    assert "/teams/{team}/queue" in client.get("/openapi.json").json()["paths"]


def test_capacity_counts_calls_per_hour(client, run):
    body = client.get("/teams/early/capacity", headers=EARLY).json()
    assert [hour["centre_hour"] for hour in body["hours"]] == [9, 10, 11, 12]
    assert [hour["capacity"] for hour in body["hours"]] == [5, 5, 5, 5]
    per_hour = team_calls(run, "early")["call_at"].dt.tz_convert("Asia/Shanghai").dt.hour.value_counts()
    assert {h["centre_hour"]: h["scheduled"] for h in body["hours"]} == per_hour.to_dict()
    assert (body["capacity_total"], body["scheduled_total"]) == (20, 18)
    assert body["hours"][3]["utilisation"] == pytest.approx(0.6)
    assert body["expected_value_total"] == pytest.approx(team_calls(run, "early")["expected_value"].sum())


def test_explanation_of_a_listed_account(client):
    body = client.get("/accounts/E004/explanation", headers=EARLY).json()
    assert body["team"] == "early"
    assert body["call"]["account_id"] == "E004" and body["call"]["position"] == 5
    assert body["reasons"] == body["call"]["reasons"]
    assert "broken promise yesterday" in body["reasons"]
    assert body["score"]["p_repay"] == pytest.approx(0.82)
    assert [c["feature"] for c in body["contributions"]] == [
        "promise_broken_7d",
        "days_past_due",
        "payments_settled_sum_90d",
    ]
    assert body["special_handling"] is None


def test_explanation_of_special_handling_and_unlisted_accounts(client):
    body = client.get("/accounts/L900/explanation", headers=LATE).json()
    assert body["call"] is None and body["special_handling"] == "dispute_open"
    assert body["reasons"] == ["dispute_open"] and body["score"]["eligible"] is False
    # E900 is scored but on no team's list: its team is unknown, so only an admin may read it.
    assert client.get("/accounts/E900/explanation", headers=ADMIN).json()["team"] is None
    assert client.get("/accounts/E900/explanation", headers=EARLY).status_code == 403
    assert client.get("/accounts/NOPE/explanation", headers=ADMIN).status_code == 404
    # To a supervisor an unknown id looks like another team's account: 403, so ids cannot be probed.
    assert client.get("/accounts/NOPE/explanation", headers=EARLY).status_code == 403


def test_a_supervisor_reads_why_an_account_of_their_team_is_not_on_the_list(run):
    # The run knows every account's team (run_day records it), so the team's own token may ask.
    teams = pd.Series(["early", "late"], index=["E900", "L000"])
    provider = StaticProvider({LIST_DATE: dataclasses.replace(run, account_teams=teams)}, default_date=LIST_DATE)
    client = TestClient(create_app(provider, auth=token_auth()))
    body = client.get("/accounts/E900/explanation", headers=EARLY).json()
    assert body["team"] == "early" and body["call"] is None and body["score"]["eligible"] is False
    assert client.get("/accounts/E900/explanation", headers=LATE).status_code == 403


def test_an_account_id_with_a_slash_has_its_explanation(run):
    # Account ids are the case system's free text ("CC/2024/000123"): sent percent-encoded, as a team is.
    calls = run.call_list.assign(account_id=run.call_list["account_id"].replace({"E004": "CC/2024/E004"}))
    explanations = run.explanations.assign(account_id=run.explanations["account_id"].replace({"E004": "CC/2024/E004"}))
    scores = run.scores.assign(account_id=run.scores["account_id"].replace({"E004": "CC/2024/E004"}))
    changed = dataclasses.replace(run, call_list=calls, explanations=explanations, scores=scores)
    client = TestClient(create_app(StaticProvider({LIST_DATE: changed}, default_date=LIST_DATE), auth=token_auth()))
    response = client.get("/accounts/CC%2F2024%2FE004/explanation", headers=EARLY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account_id"] == "CC/2024/E004" and body["call"]["position"] == 5
    assert body["score"]["p_repay"] == pytest.approx(0.82) and len(body["contributions"]) == 3
    assert client.get("/accounts/CC%2F2024%2FE004/explanation", headers=LATE).status_code == 403
    assert "/accounts/{account_id}/explanation" in client.get("/openapi.json").json()["paths"]


# --- auth ---------------------------------------------------------------------------------

PROTECTED = [
    "/models",
    "/teams",
    "/teams/early/queue",
    "/teams/early/queue.csv",
    "/teams/early/capacity",
    "/accounts/E001/explanation",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_or_invalid_token_is_401_with_challenge(client, path):
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    invalid = client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert invalid.status_code == 401
    assert 'error="invalid_token"' in invalid.headers["www-authenticate"]
    basic = client.get(path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert basic.status_code == 401


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/teams/late/queue", EARLY),
        ("/teams/late/queue.csv", EARLY),
        ("/teams/late/capacity", EARLY),
        ("/teams/early/queue", LATE),
        ("/accounts/L001/explanation", EARLY),
        ("/accounts/L900/explanation", EARLY),
        ("/accounts/E001/explanation", LATE),
    ],
)
def test_team_outside_scope_is_403(client, path, headers):
    assert client.get(path, headers=headers).status_code == 403


def test_tokens_never_reach_logs_or_bodies(client, caplog):
    with caplog.at_level(logging.DEBUG):
        bad = client.get("/teams", headers={"Authorization": "Bearer secret-guess-000"})
        good = client.get("/teams", headers=EARLY)
    assert "secret-guess-000" not in bad.text and "secret-guess-000" not in caplog.text
    assert "early-token-456" not in good.text and "early-token-456" not in caplog.text


def test_token_configuration_parsing():
    auth = TokenAuth.from_env({"CALLQ_API_TOKENS": " a1:x, y ; b2:* ;"})
    assert auth.lookup("a1").teams == frozenset({"x", "y"})
    assert auth.lookup("b2").is_admin and auth.lookup("b2").label == "token-2"
    assert auth.lookup("a") is None and auth.lookup("") is None
    assert TokenAuth.from_env({}).entries == ()
    for bad in ("SECRETX", ":team", "SECRETX:", "SECRETX:a;SECRETX:b", "SECRET X:a"):
        with pytest.raises(ValueError) as error:
            TokenAuth.parse(bad)
        assert "CALLQ_API_TOKENS" in str(error.value) and "SECRET" not in str(error.value)


def test_app_reads_tokens_from_the_environment(run, monkeypatch):
    monkeypatch.setenv("CALLQ_API_TOKENS", TOKENS)
    env_client = TestClient(create_app(StaticProvider(run)))
    assert env_client.get("/teams", headers=EARLY).status_code == 200
    monkeypatch.delenv("CALLQ_API_TOKENS")
    closed = TestClient(create_app(StaticProvider(run)))
    assert closed.get("/teams", headers=ADMIN).status_code == 401
    assert closed.get("/health").status_code == 200


# --- scoring ------------------------------------------------------------------------------


def score_body(team: str = "early", **changes) -> dict:
    account = {
        "account_id": "N1",
        "customer_id": "CN1",
        "product": "credit_card",
        "opened_date": "2024-03-01",
        "credit_limit": 20000.0,
        "timezone": "Asia/Shanghai",
        "team": team,
        "agent_id": None,
        "do_not_call": False,
        "cease_contact": False,
        "dispute_open": False,
        "complaint_open": False,
        "hardship": False,
        "deceased": False,
        "bankruptcy": False,
    }
    body = {
        "as_of": "2026-11-23T00:00:00Z",
        "accounts": [account, {**account, "account_id": "N2", "do_not_call": True}],
        "dues": [
            {"account_id": "N1", "due_date": "2026-11-10", "amount_due": 850.0},
            {"account_id": "N1", "due_date": "2026-10-10", "amount_due": 150.0},
        ],
        "payments": [
            {
                "payment_id": "P1",
                "account_id": "N1",
                "paid_at": "2026-11-01T03:00:00+08:00",
                "amount": 100.0,
                "status": "settled",
                "channel": None,
            }
        ],
        "contacts": [
            {
                "contact_id": "K1",
                "account_id": "N2",
                "started_at": "2026-11-20T02:05:00Z",
                "channel": "call",
                "direction": "outbound",
                "outcome": "no_answer",
                "agent_id": "G7",
                "duration_s": 0,
            }
        ],
        "promises": [],
    }
    body.update(changes)
    return body


def test_scores_endpoint_scores_posted_accounts(client):
    response = client.post("/scores", json=score_body(), headers=EARLY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 2
    rows = {row["account_id"]: row for row in body["rows"]}
    assert tuple(body["rows"][0]) == SCORES_COLUMNS
    assert rows["N1"]["amount_overdue"] == pytest.approx(1000.0)
    assert rows["N2"]["eligible"] is False and rows["N1"]["best_hour_local"] == 10


def test_posted_export_has_the_loader_dtypes():
    export = export_from_request(ScoreRequest.model_validate(score_body()))
    assert export.as_of == pd.Timestamp("2026-11-23T00:00:00Z")
    assert str(export.accounts["account_id"].dtype) == "string"
    assert str(export.accounts["opened_date"].dtype) == "datetime64[s]"
    assert str(export.payments["paid_at"].dtype) == "datetime64[us, UTC]"
    assert export.payments["paid_at"].iloc[0] == pd.Timestamp("2026-10-31T19:00:00Z")
    assert str(export.contacts["duration_s"].dtype) == "Int64"
    assert export.accounts["do_not_call"].dtype == bool
    assert len(export.promises) == 0 and list(export.promises.columns)[0] == "promise_id"


@pytest.mark.parametrize(
    "changes",
    [
        {
            "payments": [
                {
                    "payment_id": "P1",
                    "account_id": "N1",
                    "paid_at": "2026-11-23T00:00:00Z",
                    "amount": 100.0,
                    "status": "settled",
                    "channel": None,
                }
            ]
        },
        {"dues": [{"account_id": "ZZ", "due_date": "2026-11-10", "amount_due": 850.0}]},
        {"dues": [{"account_id": "N1", "due_date": "2026-11-10", "amount_due": 0}]},
        {"as_of": "2026-11-23T00:00:00"},
        {"accounts": []},
        {"dues": [{"account_id": "N1", "due_date": "2026-11-10", "amount_due": 1e13}]},  # cents not exact
        {"dues": [{"account_id": "   ", "due_date": "2026-11-10", "amount_due": 850.0}]},  # blank id
    ],
)
def test_scores_rejects_contract_breaking_bodies(client, changes):
    assert client.post("/scores", json=score_body(**changes), headers=ADMIN).status_code == 422


def _promise(**changes) -> dict:
    promise = {
        "promise_id": "R1",
        "account_id": "N2",
        "created_at": "2026-11-20T02:06:00Z",
        "promised_date": "2026-11-25",
        "promised_amount": 200.0,
        "contact_id": "K1",
    }
    return {**promise, **changes}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"payments": score_body()["payments"] * 2}, "payments: row P1: column payment_id: not unique"),
        ({"contacts": score_body()["contacts"] * 2}, "contacts: row K1: column contact_id: not unique"),
        ({"promises": [_promise(), _promise()]}, "promises: row R1: column promise_id: not unique"),
        (
            {"accounts": [{**score_body()["accounts"][0], "opened_date": "2027-01-01"}, score_body()["accounts"][1]]},
            "accounts: row N1: column opened_date: after as_of",
        ),
        (
            {"dues": [{"account_id": "N1", "due_date": "2027-06-01", "amount_due": 850.0}]},
            "column due_date: more than 62 days after as_of",
        ),
        (
            {"dues": [{"account_id": "N1", "due_date": "2026-11-10", "amount_due": 850.001}]},
            "column amount_due: more than 2 decimals",
        ),
        ({"promises": [_promise(promised_date="2026-11-19")]}, "column promised_date: before the date of created_at"),
        ({"promises": [_promise(contact_id="K9")]}, "promises: row R1: column contact_id: not in contacts"),
        (
            {"contacts": [{**score_body()["contacts"][0], "channel": "sms", "outcome": "delivered", "duration_s": 30}]},
            "column duration_s: duration only for calls and visits",
        ),
    ],
)
def test_scores_refuse_what_the_loader_refuses(client, changes, named):
    # These bodies pass the request schemas but break the contract; scored, a repeated payment counted twice.
    response = client.post("/scores", json=score_body(**changes), headers=ADMIN)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]  # FastAPI's documented shape, as every other 422
    assert any(named in item["msg"] for item in detail) and all(item["type"] == "contract" for item in detail)
    assert "850.001" not in response.text and "2027-01-01" not in response.text  # the values are not echoed


def test_a_blank_team_or_agent_is_posted_as_no_value_as_the_loader_reads_it():
    body = score_body()
    body["accounts"][0]["team"], body["accounts"][0]["agent_id"] = " ", ""
    export = checked_export(export_from_request(ScoreRequest.model_validate(body)))
    assert pd.isna(export.accounts.loc[0, "team"]) and pd.isna(export.accounts.loc[0, "agent_id"])
    assert export.accounts.loc[1, "team"] == "early"


def test_a_scorer_refusing_the_posted_accounts_answers_422_in_the_documented_shape(run):
    def refusing(export: Export):
        raise ValueError("accounts posted as of 2026-11-01 cannot be scored against this book (as of 2026-11-23)")

    app_client = TestClient(create_app(StaticProvider(run, scorer=refusing), auth=token_auth()))
    response = app_client.post("/scores", json=score_body(), headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["body"],
            "msg": "accounts posted as of 2026-11-01 cannot be scored against this book (as of 2026-11-23)",
        }
    ]
    schema = app_client.get("/openapi.json").json()["paths"]["/scores"]["post"]["responses"]["422"]
    assert schema["content"]["application/json"]["schema"]["$ref"].endswith("/ProblemsBody")


def test_scores_refuse_infinite_amounts_and_echo_nothing_posted(client):
    # Python's JSON parser reads Infinity; the loader refuses it, so does the API (was a 500).
    text = json.dumps(score_body()).replace('"amount_due": 850.0', '"amount_due": Infinity')
    response = client.post("/scores", content=text, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 422
    # A body-level error names its rule, and never sends the posted export back (other debtors' data).
    late = score_body(contacts=[{**score_body()["contacts"][0], "started_at": "2026-11-24T00:00:00Z"}])
    response = client.post("/scores", json=late, headers=ADMIN)
    assert response.status_code == 422 and "CN1" not in response.text and "input" not in response.text
    assert all(set(item) <= {"type", "loc", "msg", "ctx"} for item in response.json()["detail"])


def test_the_token_is_checked_before_the_query():
    client = TestClient(create_app(StaticProvider({LIST_DATE: small_run()}, default_date=LIST_DATE), auth=token_auth()))
    assert client.get("/teams/late/queue", params={"page": 0}).status_code == 401
    assert client.get("/teams/late/queue", params={"page": 0}, headers=LATE).status_code == 422


def test_api_docs_may_load_their_cdn_code_and_the_page_may_not(client):
    docs = client.get("/docs").headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in docs and "'unsafe-inline'" in docs
    page = client.get("/").headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in page and "unsafe-inline" not in page


def test_scores_scope_and_missing_models(client, run):
    assert client.post("/scores", json=score_body(team="late"), headers=EARLY).status_code == 403
    # An account with no team belongs to `default`: that team's supervisor may post it, others may not.
    auth = TokenAuth.parse("default-token-000:default")
    default_client = TestClient(create_app(client.app.state.provider, auth=auth))
    unassigned = score_body(team=None)
    token = {"Authorization": "Bearer default-token-000"}
    assert default_client.post("/scores", json=unassigned, headers=token).status_code == 200
    assert client.post("/scores", json=unassigned, headers=EARLY).status_code == 403
    assert client.post("/scores", json=score_body()).status_code == 401
    no_models = TestClient(create_app(StaticProvider(run), auth=token_auth()))
    assert no_models.post("/scores", json=score_body(), headers=ADMIN).status_code == 503


# --- OpenAPI, page, caching ---------------------------------------------------------------


def test_openapi_documents_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "callq API"
    for path in [
        "/health",
        "/models",
        "/scores",
        "/teams",
        "/teams/{team}/queue",
        "/teams/{team}/queue.csv",
        "/teams/{team}/capacity",
        "/accounts/{account_id}/explanation",
    ]:
        assert path in schema["paths"], path
    queue = schema["paths"]["/teams/{team}/queue"]["get"]
    assert queue["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/QueuePage")
    assert {p["name"] for p in queue["parameters"]} >= {
        "team",
        "date",
        "page",
        "page_size",
        "stage",
        "min_amount",
        "hour",
    }
    assert "403" in queue["responses"] and queue["description"]
    assert "supervisor token" in schema["components"]["securitySchemes"]
    assert schema["components"]["schemas"]["ScoreRequest"]["examples"]


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text and '<label for="team">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/teams", headers=ADMIN).headers["cache-control"] == "no-store"


def test_a_run_is_indexed_once(client):
    days = client.app.state.days
    assert days.get(None) is days.get(LIST_DATE)
    assert days.get(OTHER_DATE) is not days.get(LIST_DATE)


def test_the_api_builds_each_date_once(run):
    built: list[dt.date] = []

    def build(list_date: dt.date):
        built.append(list_date)
        return small_run(list_date)

    app_client = TestClient(create_app(BuildingProvider(build, default_date=LIST_DATE), auth=token_auth()))
    for _ in range(3):
        assert app_client.get("/teams/early/queue", headers=EARLY).json()["total"] == 18
        assert app_client.get("/teams/early/capacity", params={"date": str(LIST_DATE)}, headers=EARLY).is_success
    assert built == [LIST_DATE]


def test_the_api_keeps_the_four_runs_used_last(run):
    import gc
    import weakref

    built: dict[dt.date, weakref.ref] = {}
    builds: list[dt.date] = []

    def build(list_date: dt.date):
        made = small_run(list_date)
        built[list_date] = weakref.ref(made)
        builds.append(list_date)
        return made

    provider = BuildingProvider(build, default_date=LIST_DATE)
    app_client = TestClient(create_app(provider, auth=token_auth()))
    dates = [LIST_DATE + dt.timedelta(days=k) for k in range(8)]
    for day in dates:
        assert app_client.get("/teams/early/queue", headers=EARLY).is_success  # the default date, in use
        assert app_client.get("/teams/early/queue", params={"date": str(day)}, headers=EARLY).is_success
    gc.collect()
    alive = sorted(day for day, ref in built.items() if ref() is not None)
    # The four used last: the default date (asked for throughout, never built again) and the latest three.
    assert alive == [LIST_DATE, *dates[-3:]] and builds == dates
    assert app_client.get("/teams/early/queue", params={"date": str(dates[1])}, headers=EARLY).is_success
    assert builds == [*dates, dates[1]]  # evicted, built again on demand


def test_a_day_without_calls_still_answers(run):
    empty = dataclasses.replace(
        run,
        call_list=run.call_list.iloc[:0],
        explanations=run.explanations.iloc[:0],
        special_handling=run.special_handling.iloc[:0],
        capacity=run.capacity.assign(scheduled=0),
    )
    app_client = TestClient(create_app(StaticProvider(empty), auth=token_auth()))
    queue = app_client.get("/teams/early/queue", params={"stage": "early"}, headers=EARLY).json()
    assert (queue["total"], queue["pages"], queue["rows"]) == (0, 0, [])
    csv = pd.read_csv(io.StringIO(app_client.get("/teams/early/queue.csv", headers=EARLY).text))
    assert tuple(csv.columns) == CALL_LIST_COLUMNS and csv.empty
    assert app_client.get("/teams/early/capacity", headers=EARLY).json()["scheduled_total"] == 0
