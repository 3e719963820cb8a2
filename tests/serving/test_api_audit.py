"""Audit of the HTTP API against its promises: body limits, scope edge cases, paging bounds, documented errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import socket
import threading
import time

import httpx2 as httpx
import pytest
import uvicorn
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


def test_openapi_documents_only_the_errors_a_route_can_answer(client):
    paths = client.get("/openapi.json").json()["paths"]
    documented = {
        (method, path): {code for code in operation["responses"] if code.startswith("4")}
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert (
        documented[("post", "/scores")] >= {"401", "403", "413", "422"} and "404" not in documented[("post", "/scores")]
    )
    for path in ("/models", "/teams"):  # no team in the request: nothing to be out of scope; a date may have no list
        assert documented[("get", path)] == {"401", "404", "422"}, path
    for path in ("/teams/{team}/queue", "/teams/{team}/queue.csv", "/teams/{team}/capacity"):
        assert documented[("get", path)] == {"401", "403", "404", "422"}, path
    assert documented[("get", "/accounts/{account_id}/explanation")] == {"401", "403", "404", "422"}
    # And the answers behind them: a date past the horizon is 404 on the routes that read one.
    for path in ("/models", "/teams"):
        assert client.get(path, params={"date": "2030-01-01"}, headers=ADMIN).status_code == 404, path


def test_openapi_documents_the_posted_body_and_every_reference_resolves(client):
    # `POST /scores` reads its body itself (after the token): its model is documented by reference, not by FastAPI.
    document = client.get("/openapi.json").json()
    posted = document["paths"]["/scores"]["post"]["requestBody"]
    assert posted["required"] and posted["content"]["application/json"]["schema"]["$ref"].endswith("/ScoreRequest")
    schemas = document["components"]["schemas"]
    assert schemas["ScoreRequest"]["examples"] and "DueIn" in schemas

    def references(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    found = set(references(document))
    assert "#/components/schemas/AccountIn" in found
    assert all(ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas for ref in found), found


# --- the token before anything the request says ----------------------------------------------

ROUTES_READING_A_DATE = [
    "/teams",
    "/models",
    "/teams/early/queue",
    "/teams/early/queue.csv",
    "/teams/early/capacity",
    "/accounts/E001/explanation",
]
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("content", [b'{"as_of": "2026-11-23T00:00:00Z", "accounts": [', b"", b"not json"])
def test_a_broken_body_without_a_valid_token_is_401(client, content):
    # Was 422: FastAPI parsed the body before any dependency ran, so the token was never looked at.
    for headers in (JSON, {**JSON, "Authorization": "Bearer not-a-token"}, {}):
        response = client.post("/scores", content=content, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
    response = client.post("/scores", content=content, headers={**ADMIN, **JSON})
    assert response.status_code == 422
    assert [item["loc"][0] for item in response.json()["detail"]] == ["body"]


def test_a_body_that_is_not_json_is_422_in_the_documented_shape(client):
    response = client.post("/scores", content=json.dumps(score_body()), headers={**ADMIN, "Content-Type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert client.post("/scores", content=json.dumps(score_body()), headers={**ADMIN, **JSON}).status_code == 200


@pytest.mark.parametrize("path", ROUTES_READING_A_DATE)
@pytest.mark.parametrize("params", [{"dat": "2026-11-24"}, {"date": "x"}, {"page": "0", "hour": "99"}])
def test_any_query_without_a_valid_token_is_401(client, path, params):
    assert client.get(path, params=params).status_code == 401
    assert client.get(path, params=params, headers={"Authorization": "Bearer not-a-token"}).status_code == 401


@pytest.mark.parametrize("path", ["/teams/late/queue", "/teams/late/queue.csv", "/teams/late/capacity"])
@pytest.mark.parametrize("params", [{"dat": "2026-11-24"}, {"date": "x"}, {"hour": "99"}, {"page_size": "0"}])
def test_a_team_outside_the_token_is_403_whatever_the_query(client, path, params):
    # Was 422 on the CSV and capacity (FastAPI validated the query before the handler checked the scope) and on
    # the queue for a bad value: the scope is judged from the token and the path alone, before the query.
    assert client.get(path, params=params, headers=EARLY).status_code == 403
    assert client.get(path, params=params, headers=ADMIN).status_code == 422


# --- a list date is a date ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES_READING_A_DATE)
@pytest.mark.parametrize(
    "value", ["2026-11-23T00:00", "2026-11-23 00:00", "2026-11-23T00:00:00Z", "2026-11-23T00:00:00+08:00", "1795392000"]
)
def test_a_list_date_is_only_year_month_day(client, path, value):
    # Pydantic reads a midnight in any zone and a number of Unix seconds as a date: each answered for 2026-11-23.
    response = client.get(path, params={"date": value}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "date"]
    assert "YYYY-MM-DD" in response.json()["detail"][0]["msg"]
    assert client.get(path, params={"date": str(LIST_DATE)}, headers=ADMIN).status_code == 200


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("accounts", "opened_date", 1709251200),  # Unix seconds: the loader reads no number as a date
        ("accounts", "opened_date", "2024-03-01T00:00:00+08:00"),  # a midnight somewhere: which date?
        ("dues", "due_date", "2026-11-10T09:00"),
        ("payments", "paid_at", 1793502000),
        ("payments", "paid_at", "1793502000"),
    ],
)
def test_posted_dates_and_instants_are_read_as_the_loader_reads_them(client, table, column, value):
    body = score_body()
    body[table][0][column] = value
    response = client.post("/scores", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", table, 0, column]
    # What a file may hold is still read: a date kept as a zone-less midnight is that date.
    body = score_body()
    body["accounts"][0]["opened_date"] = "2024-03-01T00:00:00"
    assert client.post("/scores", json=body, headers=ADMIN).status_code == 200


# --- a large body does not stall the queue --------------------------------------------------------


def _large_score_body(accounts: int = 5_000, dues_each: int = 60) -> bytes:
    """A valid export of about 25 MiB: every account with five years of monthly dues."""
    body = score_body()
    template = {**body["accounts"][0], "opened_date": "2015-01-01"}
    body["accounts"] = [{**template, "account_id": f"N{i}", "customer_id": f"C{i}"} for i in range(accounts)]
    months = [dt.date(2021 + (10 + k) // 12, (10 + k) % 12 + 1, 10).isoformat() for k in range(dues_each)]
    body["dues"] = [
        {"account_id": f"N{i}", "due_date": month, "amount_due": 850.0} for i in range(accounts) for month in months
    ]
    body["payments"], body["contacts"] = [], []
    return json.dumps(body).encode("utf-8")


@contextlib.contextmanager
def _served(app):
    """`app` behind uvicorn on a loopback socket, in a thread; yields the base URL."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()


@pytest.mark.slow
def test_a_large_posted_body_does_not_stall_the_queue_pages():
    # Was parsed and validated on the event loop: for the second or two a body near the size limit takes, no
    # other request was answered. The property checked: between the server holding the whole body and its
    # answer, queue pages keep coming back, with no silence as long as a quarter of that span (a blocked loop
    # is silent for the whole validation, most of the span; timings scale together on a slow machine).
    body = _large_score_body()
    assert len(body) < MAX_BODY_BYTES
    app = create_app(
        StaticProvider({LIST_DATE: small_run()}, default_date=LIST_DATE, scorer=fake_scorer), auth=token_auth()
    )
    received: list[float] = []

    async def noting_the_body(scope, receive, send):
        async def receive_noted():
            message = await receive()
            if scope["method"] == "POST" and message["type"] == "http.request" and not message.get("more_body"):
                received.append(time.perf_counter())
            return message

        await app(scope, receive_noted if scope["type"] == "http" else receive, send)

    answered: list[float] = []
    posted: list[httpx.Response] = []
    with _served(noting_the_body) as url:

        def post() -> None:
            with httpx.Client(timeout=120) as poster:
                posted.append(poster.post(f"{url}/scores", content=body, headers={**ADMIN, **JSON}))

        poster = threading.Thread(target=post)
        with httpx.Client(base_url=url, headers=EARLY, timeout=120) as reader:
            assert reader.get("/teams/early/queue").status_code == 200  # the day indexed, the connection open
            poster.start()
            while poster.is_alive():
                page = reader.get("/teams/early/queue")
                assert page.status_code == 200 and page.json()["total"] == 18
                answered.append(time.perf_counter())
        poster.join()
    assert posted[0].status_code == 200, posted[0].text[:300]
    assert posted[0].json()["count"] == 5_000
    end = answered[-1]  # the last page came back after the POST's answer: it closes the span
    start = received[0]
    inside = [start, *(moment for moment in answered if start < moment < end), end]
    silence = max(later - earlier for earlier, later in zip(inside, inside[1:], strict=False))
    assert silence < (end - start) / 4, f"no queue page answered for {silence:.2f} s of {end - start:.2f} s"


def test_posting_leaves_the_garbage_collector_as_it_found_it(client):
    # Parsing pauses the cyclic collector (it would walk every posted row with the interpreter lock held).
    assert gc.isenabled()
    assert client.post("/scores", json=score_body(), headers=ADMIN).status_code == 200
    assert client.post("/scores", json=score_body(team="late"), headers=EARLY).status_code == 403
    assert client.post("/scores", json=score_body(accounts=[]), headers=ADMIN).status_code == 422
    assert gc.isenabled()
    gc.disable()
    try:
        assert client.post("/scores", json=score_body(), headers=ADMIN).status_code == 200
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()
