"""Audit of the HTTP API against its promises: body limits, scope edge cases, paging bounds, documented errors."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from serving.api import StaticProvider, create_app
from serving.api_schemas import MAX_BODY_BYTES, MAX_PAGE
from serving.auth import TokenAuth
from tests.serving.api_fixtures import ADMIN, EARLY, LIST_DATE, small_run, token_auth
from tests.serving.test_api import fake_scorer, score_body

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client():
    provider = StaticProvider({LIST_DATE: small_run()}, default_date=LIST_DATE, scorer=fake_scorer)
    return TestClient(create_app(provider, auth=token_auth()))


# --- POST /scores: the body's size is bounded before it is read -----------------------------


def _oversized_body() -> bytes:
    # Valid JSON (white space is JSON), a valid export, just over the limit: only its size is wrong.
    text = json.dumps(score_body()).encode("utf-8")
    return b" " * (MAX_BODY_BYTES - len(text) + 1) + text


def test_a_posted_body_over_the_size_limit_is_413(client):
    # Was read whole, parsed (on the event loop) and scored: no byte limit at all.
    body = _oversized_body()
    response = client.post("/scores", content=body, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "bytes" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"  # still behind the hardening headers
    # A body sent without Content-Length (chunked) is counted as it arrives.
    chunks = (body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20))
    streamed = client.post("/scores", content=chunks, headers={**ADMIN, "Content-Type": "application/json"})
    assert streamed.status_code == 413
    # A body at the limit is read as before.
    at_limit = body[1:]
    assert len(at_limit) == MAX_BODY_BYTES
    ok = client.post("/scores", content=at_limit, headers={**ADMIN, "Content-Type": "application/json"})
    assert ok.status_code == 200, ok.text


# --- POST /scores: scope of accounts the loader assigns to `default` --------------------------


def test_a_blank_posted_team_is_scoped_as_the_default_team_it_is_scored_as():
    # The loader reads a blank team as no team (`default`); the scope check read it as the team " ".
    provider = StaticProvider(small_run(), scorer=fake_scorer)
    default_client = TestClient(create_app(provider, auth=TokenAuth.parse("default-token-000:default")))
    token = {"Authorization": "Bearer default-token-000"}
    body = score_body()
    for account in body["accounts"]:
        account["team"] = "  "
    assert default_client.post("/scores", json=body, headers=token).status_code == 200
    app_client = TestClient(create_app(provider, auth=token_auth()))
    assert app_client.post("/scores", json=body, headers=EARLY).status_code == 403


def test_duplicated_posted_account_ids_are_named_as_the_loader_names_them(client):
    body = score_body()
    body["accounts"][1]["account_id"] = "N1"
    response = client.post("/scores", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert any("accounts: row N1: column account_id: not unique" in item["msg"] for item in response.json()["detail"])


# --- queue paging -------------------------------------------------------------------------


@pytest.mark.parametrize("page", [MAX_PAGE + 1, 10**30])
def test_a_page_number_past_any_possible_queue_is_422(client, page):
    # Was 200, echoing `"page": 1000000000000000000000000000000`, which no int64 or JavaScript client reads.
    response = client.get("/teams/early/queue", params={"page": page}, headers=EARLY)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "page"]
    last = client.get("/teams/early/queue", params={"page": MAX_PAGE}, headers=EARLY)
    assert last.status_code == 200 and last.json()["rows"] == [] and last.json()["total"] == 18


# --- unknown query parameters -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/teams", "/models", "/teams/early/capacity", "/accounts/E001/explanation"])
def test_a_misspelt_date_is_refused_rather_than_answered_for_the_default_date(client, path):
    # As the queue and its CSV: `?dat=2026-11-24` answered silently for the served date.
    response = client.get(path, params={"dat": "2026-11-24"}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "dat"]
    assert client.get(path, params={"date": str(LIST_DATE)}, headers=ADMIN).status_code == 200
    assert client.get(path, params={"dat": "2026-11-24"}).status_code == 401  # the token first


def test_a_query_parameter_on_posted_scoring_is_refused():
    # Scoring reads no parameter: `?date=...` must not look as if it chose the date the accounts are scored for.
    client = TestClient(create_app(StaticProvider(small_run(), scorer=fake_scorer), auth=token_auth()))
    response = client.post("/scores", params={"date": "2026-11-24"}, json=score_body(), headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "date"]
    assert client.post("/scores", json=score_body(), headers=ADMIN).status_code == 200


# --- token configuration -------------------------------------------------------------------


def test_a_token_no_client_can_send_is_refused_at_startup():
    # A header is ASCII on the wire: a non-ASCII token could never be presented (every request a 401).
    with pytest.raises(ValueError) as error:
        TokenAuth.parse("ok-token-111:early;pässwörd-123:*")
    message = str(error.value)
    assert "CALLQ_API_TOKENS" in message and "entry 2" in message and "pässwörd" not in message


# --- OpenAPI: the errors each route answers are documented in the shape they have ------------


def test_openapi_documents_every_error_in_its_shape(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "422" in responses:
                schema = responses["422"]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ProblemsBody"), (method, path)
    scores = paths["/scores"]["post"]["responses"]
    assert scores["413"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert scores["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
