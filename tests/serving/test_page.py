"""The supervisor page in a real headless Chromium: sign in, pick a team, filter, chart, CSV download."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from playwright.sync_api import expect

from serving.api import BuildingProvider, StaticProvider, create_app
from tests.serving.api_fixtures import LIST_DATE, small_run, token_auth

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium, or $CALLQ_CHROMIUM; a missing browser fails the test, it never skips."""
    path = os.environ.get("CALLQ_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        pytest.fail(f"no Chromium at {path}: run `apt-get install -y chromium` or set CALLQ_CHROMIUM")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    yield from serve(create_app(StaticProvider(small_run()), auth=token_auth()))


def serve(app):
    """Serve `app` on a free loopback port for the duration of a fixture; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("CALLQ_ARTIFACTS", "tests-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page, token: str) -> None:
    page.get_by_label("Access token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#queue tbody tr[data-account]")


def test_supervisor_page_end_to_end(server_url, browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server_url + "/")
    assert page.title() == "callq · Supervisor"
    assert page.locator("#workspace").is_hidden()

    # A team-scoped token sees only its team.
    sign_in(page, "early-token-456")
    assert page.locator("#team option").all_inner_texts() == ["early (18 calls)"]
    assert page.evaluate("sessionStorage.getItem('callq.token')") == "early-token-456"
    page.get_by_role("button", name="Sign out").click()
    assert page.locator("#workspace").is_hidden()

    # An admin picks a team and reads its queue.
    sign_in(page, "admin-token-123")
    assert page.locator("#team option").count() == 2
    page.get_by_label("Team", exact=True).select_option("late")
    expect(page.locator("#queue tbody tr[data-account]").first).to_have_attribute("data-account", "L000")
    rows = page.locator("#queue tbody tr[data-account]")
    assert rows.count() == 12
    first = rows.first.locator("td").all_inner_texts()
    assert first[:5] == ["1", "L000", "M2", "500.00", "3"]
    assert first[5] == "09:00" and first[6] == "09:00"
    assert "broken promise yesterday" in first[11]
    assert page.locator("#kpi-calls").inner_text() == "12"
    assert page.locator("#kpi-special").inner_text() == "2"

    # Calls per hour against capacity: one bar group per shift hour, with counts.
    bars = page.locator("#capacity-chart svg g.hour")
    assert bars.count() == 4
    assert [bars.nth(i).get_attribute("data-hour") for i in range(4)] == ["9", "10", "11", "12"]
    assert bars.nth(0).locator("text.value").text_content() == "4"
    assert page.locator("#kpi-capacity").inner_text() == "12 / 16"

    # A filter narrows the queue.
    page.get_by_label("Stage", exact=True).select_option("M3")
    page.get_by_label("Minimum overdue", exact=True).fill("1000")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#kpi-calls")).to_have_text("4")
    stages = page.locator("#queue tbody tr[data-account] td:nth-child(3)").all_inner_texts()
    assert stages == ["M3"] * 4
    shown = page.locator("#queue tbody tr[data-account]").evaluate_all("rows => rows.map(r => r.dataset.account)")
    assert shown == ["L005", "L007", "L009", "L011"]

    # The CSV download holds the filtered queue in the contract's columns.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == "callq-late-2026-11-23.csv"
    frame = pd.read_csv(io.StringIO(Path(download.path()).read_text(encoding="utf-8")))
    assert frame["account_id"].tolist() == shown

    # Reset, then the early team with paging, for the screenshot.
    page.get_by_role("button", name="Reset").click()
    page.get_by_label("Team", exact=True).select_option("early")
    page.get_by_label("Rows per page", exact=True).select_option("25")
    expect(page.locator("#kpi-calls")).to_have_text("18")
    assert page.locator("#page-info").inner_text() == "Page 1 of 1"
    page.screenshot(path=str(artifacts_dir() / "supervisor-page.png"), full_page=True)
    assert errors == []
    context.close()


def test_paging_and_bad_token(server_url, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server_url + "/")
    page.get_by_label("Access token", exact=True).fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#status")).to_contain_text("not accepted")
    assert page.locator("#workspace").is_hidden()

    sign_in(page, "early-token-456")
    page.get_by_label("Rows per page", exact=True).select_option("25")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 1")
    page.evaluate("document.getElementById('page-size').add(new Option('5', '5', true, true))")
    page.locator("#page-size").dispatch_event("change")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 4")
    assert page.get_by_role("button", name="‹ Previous").is_disabled()
    page.get_by_role("button", name="Next ›").click()
    expect(page.locator("#page-info")).to_have_text("Page 2 of 4")
    accounts = page.locator("#queue tbody tr[data-account]").evaluate_all("rows => rows.map(r => r.dataset.account)")
    assert accounts == ["E005", "E006", "E007", "E008", "E009"]
    context.close()


NEXT_DATE = LIST_DATE + dt.timedelta(days=1)
LATER_DATE = LIST_DATE + dt.timedelta(days=2)


def later_run(list_date: dt.date):
    """A later day's run: the early team has no `middle` calls and fewer calls (12, not 18)."""
    run = small_run(list_date)
    calls = run.call_list
    kept = calls[~((calls["team"] == "early") & (calls["stage"] == "middle"))]
    return dataclasses.replace(run, call_list=kept.reset_index(drop=True))


@pytest.fixture(scope="module")
def later_dates_url():
    """Three list dates; the later two are built on first request, slowly (as a server ranks a new date)."""

    def build(list_date: dt.date):
        if list_date == LIST_DATE:
            return small_run(list_date)
        time.sleep(2.5)
        return later_run(list_date)

    provider = BuildingProvider(build, default_date=LIST_DATE)
    yield from serve(create_app(provider, auth=token_auth()))


def test_a_stage_filter_missing_on_another_date_stays_shown(later_dates_url, browser):
    # The filter the queue was read with stays on screen, so the table, the form and the CSV agree.
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(later_dates_url + "/")
    sign_in(page, "early-token-456")
    page.get_by_label("Stage", exact=True).select_option("middle")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#kpi-calls")).to_have_text("6")
    page.get_by_label("List date", exact=True).fill(str(NEXT_DATE))
    page.get_by_label("List date", exact=True).dispatch_event("change")
    expect(page.locator("#run-meta")).to_contain_text(f"List for {NEXT_DATE}", timeout=15000)
    expect(page.locator("#kpi-calls")).to_have_text("0")
    assert page.locator("#stage").input_value() == "middle"
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    frame = pd.read_csv(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8")))
    assert frame.empty
    context.close()


def test_a_slow_answer_for_an_earlier_choice_does_not_overwrite_the_page(later_dates_url, browser):
    # The next date is ranked on first request (seconds); the supervisor goes back meanwhile. The slow
    # answer must not repaint the page with the date that is no longer chosen.
    context = browser.new_context()
    page = context.new_page()
    page.goto(later_dates_url + "/")
    sign_in(page, "admin-token-123")
    page.get_by_label("Team", exact=True).select_option("early")
    expect(page.locator("#kpi-calls")).to_have_text("18")
    date = page.get_by_label("List date", exact=True)
    date.fill(str(LATER_DATE))
    date.dispatch_event("change")
    page.wait_for_timeout(300)
    date.fill(str(LIST_DATE))
    date.dispatch_event("change")
    expect(page.locator("#run-meta")).to_contain_text(f"List for {LIST_DATE}")
    page.wait_for_timeout(4000)  # the slow answer for the next date has come back by now
    expect(page.locator("#run-meta")).to_contain_text(f"List for {LIST_DATE}")
    assert page.locator("#team option").all_inner_texts() == ["early (18 calls)", "late (12 calls)"]
    expect(page.locator("#kpi-calls")).to_have_text("18")
    assert page.locator("#status").inner_text() == ""
    context.close()
