"""Audit of the supervisor page in a real headless Chromium: values from the case system are text, the token,
what is shown when a date has no list or the token changes hands, and the CSV carrying the table's filters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from serving.api import StaticProvider, create_app
from serving.auth import TokenAuth
from tests.serving.api_fixtures import LIST_DATE, TOKENS, small_run
from tests.serving.test_page import browser, serve, server_url, sign_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

EVIL_TEAM = "<img src=x onerror=alert(1)>"
ODD_TEAM = "a/b?c#d&e='\"%25"
EVIL_ACCOUNT = '<img src=x onerror="alert(2)">'
ODD_ACCOUNT = "a/b?c#d"
EVIL_STAGE = "<b>M2</b>"
EVIL_REASON = "<script>alert(3)</script> & <i>broken</i>"


def hostile_run():
    """The small run with team names, account ids, stages and reasons as a hostile case system might send."""
    run = small_run()
    teams = {"early": EVIL_TEAM, "late": ODD_TEAM}
    calls = run.call_list.copy()
    calls["team"] = calls["team"].map(teams)
    calls.loc[0, "account_id"] = EVIL_ACCOUNT
    calls.loc[18, "account_id"] = ODD_ACCOUNT
    calls.loc[18, "stage"] = EVIL_STAGE
    calls.loc[18, "reasons"] = EVIL_REASON + ";second reason"
    return dataclasses.replace(
        run,
        call_list=calls,
        capacity=run.capacity.assign(team=run.capacity["team"].map(teams)),
        special_handling=run.special_handling.assign(team=run.special_handling["team"].map(teams)),
    )


@pytest.fixture(scope="module")
def hostile_url():
    yield from serve(create_app(StaticProvider(hostile_run()), auth=TokenAuth.parse(TOKENS)))


@pytest.fixture(scope="module")
def ghost_url():
    """The small run, with one more token whose only team has no list."""
    yield from serve(create_app(StaticProvider(small_run()), auth=TokenAuth.parse(TOKENS + ";ghost-token-000:ghost")))


def shown_accounts(page) -> list[str]:
    return page.locator("#queue tbody tr[data-account]").evaluate_all("rows => rows.map(r => r.dataset.account)")


def test_values_from_the_case_system_are_shown_as_text(hostile_url, browser):  # noqa: F811
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(hostile_url + "/")
    sign_in(page, "admin-token-123")
    options = page.locator("#team option")
    assert options.all_inner_texts() == [f"{EVIL_TEAM} (18 calls)", f"{ODD_TEAM} (12 calls)"]
    assert options.evaluate_all("os => os.map(o => o.value)") == [EVIL_TEAM, ODD_TEAM]
    first = page.locator("#queue tbody tr[data-account]").first
    expect(first.locator("td").nth(1)).to_have_text(EVIL_ACCOUNT)
    assert first.get_attribute("data-account") == EVIL_ACCOUNT
    assert page.locator("#capacity-chart svg > title").text_content().endswith(EVIL_TEAM)

    # The team whose name holds / ? # & quotes and a percent sign reaches its own queue, capacity and CSV.
    page.get_by_label("Team", exact=True).select_option(ODD_TEAM)
    expect(page.locator("#kpi-calls")).to_have_text("12")
    expect(page.locator("#kpi-capacity")).to_have_text("12 / 16")
    row = page.locator("#queue tbody tr[data-account]").first
    assert row.get_attribute("data-account") == ODD_ACCOUNT
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == ODD_ACCOUNT and cells[2] == EVIL_STAGE
    assert row.locator("ul.reasons li").all_inner_texts() == [EVIL_REASON, "second reason"]
    # Filtering by the hostile stage sends it as a query value.
    page.get_by_label("Stage", exact=True).select_option(EVIL_STAGE)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#kpi-calls")).to_have_text("1")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    frame = pd.read_csv(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8")))
    assert frame["account_id"].tolist() == [ODD_ACCOUNT] and frame["team"].tolist() == [ODD_TEAM]

    # Nothing was parsed as markup, nothing ran, every request went to this server.
    assert page.evaluate("document.querySelectorAll('img, script:not([src]), b, i:not(.swatch)').length") == 0
    assert dialogs == [] and errors == []
    assert requests and all(url.startswith(hostile_url + "/") for url in requests)
    context.close()


def test_the_token_is_sent_only_as_a_bearer_header(server_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda request: sent.append((request.url, request.headers.get("authorization"))))
    page.goto(server_url + "/")
    sign_in(page, "early-token-456")
    api_calls = [(url, auth) for url, auth in sent if "/static/" not in url and url != server_url + "/"]
    assert api_calls and all(auth == "Bearer early-token-456" for _, auth in api_calls)
    assert all("early-token-456" not in url for url, _ in sent)
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    context.close()


def test_sign_out_leaves_no_debtor_data_for_the_next_supervisor(ghost_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(ghost_url + "/")
    sign_in(page, "admin-token-123")
    page.get_by_label("Team", exact=True).select_option("late")
    expect(page.locator("#queue tbody tr[data-account]").first).to_have_attribute("data-account", "L000")
    page.get_by_label("Minimum overdue", exact=True).fill("600")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#kpi-calls")).to_have_text("11")
    page.get_by_role("button", name="Sign out").click()
    assert shown_accounts(page) == []
    assert page.locator("#team option").count() == 0
    assert page.locator("#min-amount").input_value() == ""
    assert "List for" not in page.locator("#run-meta").inner_text()

    # A supervisor whose token covers no team on the list sees why, and none of the late team's debtors.
    page.get_by_label("Access token", exact=True).fill("ghost-token-000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#status")).to_contain_text("covers no team")
    assert shown_accounts(page) == []
    assert page.locator("#kpi-calls").inner_text() == "–"
    assert page.locator("#capacity-chart svg").count() == 0
    context.close()


def test_a_date_with_no_list_does_not_leave_the_old_list_on_screen(server_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(server_url + "/")
    sign_in(page, "early-token-456")
    missing = LIST_DATE + dt.timedelta(days=30)
    date = page.get_by_label("List date", exact=True)
    date.fill(str(missing))
    date.dispatch_event("change")
    expect(page.locator("#status")).to_contain_text(f"no call list for {missing}")
    assert shown_accounts(page) == []
    assert page.locator("#kpi-calls").inner_text() == "–"
    assert page.locator("#kpi-value").inner_text() == "–"
    assert page.locator("#capacity-chart svg").count() == 0
    assert f"List for {LIST_DATE}" not in page.locator("#run-meta").inner_text()
    assert page.get_by_role("button", name="Download CSV").is_disabled()
    assert page.get_by_role("button", name="Next ›").is_disabled()
    # Back to a date with a list: everything is shown again.
    date.fill(str(LIST_DATE))
    date.dispatch_event("change")
    expect(page.locator("#kpi-calls")).to_have_text("18")
    expect(page.locator("#status")).to_have_text("")
    assert page.get_by_role("button", name="Download CSV").is_enabled()
    context.close()


def test_a_token_no_browser_can_send_is_refused_with_a_clear_message(server_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(server_url + "/")
    page.get_by_label("Access token", exact=True).fill("early\u2011token\u2019456")  # pasted from a document
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#status")).to_contain_text("printable ASCII")
    assert page.locator("#workspace").is_hidden()
    assert page.evaluate("sessionStorage.getItem('callq.token')") is None
    page.reload()
    assert page.locator("#workspace").is_hidden()
    context.close()


def test_the_csv_and_the_pages_follow_the_filters_the_table_shows(server_url, browser):  # noqa: F811
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(server_url + "/")
    sign_in(page, "early-token-456")
    page.get_by_label("Stage", exact=True).select_option("middle")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#kpi-calls")).to_have_text("6")
    shown = shown_accounts(page)
    # The supervisor picks another stage but does not apply it: the table still shows `middle`, so does the CSV.
    page.get_by_label("Stage", exact=True).select_option("late")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    frame = pd.read_csv(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8")))
    assert frame["account_id"].tolist() == shown

    # Paging reads the applied filters too: page 2 of `middle`, not page 2 of an unapplied `late`.
    page.evaluate("document.getElementById('page-size').add(new Option('4', '4', true, true))")
    page.locator("#page-size").dispatch_event("change")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 2")
    page.get_by_role("button", name="Next ›").click()
    expect(page.locator("#page-info")).to_have_text("Page 2 of 2")
    assert shown_accounts(page) == shown[4:]
    assert page.locator("#kpi-calls").inner_text() == "6"
    context.close()


def test_an_unreachable_server_is_named(server_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(server_url + "/")
    sign_in(page, "early-token-456")
    page.route("**/teams/**", lambda route: route.abort())
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#status")).to_contain_text("Could not reach the callq server")
    assert shown_accounts(page) == []
    context.close()


@pytest.fixture(scope="module")
def empty_team_url():
    """The small run where the late team has its shift (capacity) but no call on the list."""
    run = small_run()
    calls = run.call_list[run.call_list["team"] != "late"].reset_index(drop=True)
    capacity = run.capacity.assign(scheduled=run.capacity["scheduled"].where(run.capacity["team"] != "late", 0))
    empty = dataclasses.replace(run, call_list=calls, capacity=capacity)
    yield from serve(create_app(StaticProvider(empty), auth=TokenAuth.parse(TOKENS)))


def test_a_team_with_no_calls_says_so(empty_team_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(empty_team_url + "/")
    page.get_by_label("Access token", exact=True).fill("late-token-789")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#queue tbody td.empty")).to_have_text("This team has no calls on this list.")
    expect(page.locator("#kpi-calls")).to_have_text("0")
    assert page.locator("#kpi-capacity").inner_text() == "0 / 16"
    assert page.locator("#kpi-special").inner_text() == "2"
    assert page.locator("#page-info").inner_text() == "No calls match"
    assert page.get_by_role("button", name="Next ›").is_disabled()
    assert page.get_by_role("button", name="‹ Previous").is_disabled()
    assert page.locator("#status").inner_text() == ""
    # With a filter on, the same empty table says the filter is why.
    page.get_by_label("Minimum overdue", exact=True).fill("100")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#queue tbody td.empty")).to_have_text("No calls match these filters.")
    context.close()


def test_the_page_works_from_the_keyboard_and_names_its_parts(server_url, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(server_url + "/")
    page.get_by_label("Access token", exact=True).focus()
    page.keyboard.type("early-token-456")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queue tbody tr[data-account]")
    table = page.get_by_role("table", name="Queue")
    expect(table).to_have_count(1)
    expect(table.get_by_role("columnheader")).to_have_count(12)
    for label in ("Team", "List date", "Stage", "Minimum overdue", "Call hour (centre)", "Rows per page"):
        expect(page.get_by_label(label, exact=True)).to_have_count(1)
    # Enter in the amount applies the filters; the pager's buttons answer the keyboard.
    page.get_by_label("Minimum overdue", exact=True).focus()
    page.keyboard.type("1000")
    page.keyboard.press("Enter")
    expect(page.locator("#kpi-calls")).to_have_text("14")
    page.evaluate("document.getElementById('page-size').add(new Option('5', '5', true, true))")
    page.locator("#page-size").dispatch_event("change")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 3")
    page.get_by_role("button", name="Next ›").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#page-info")).to_have_text("Page 2 of 3")
    page.keyboard.press("Space")
    expect(page.locator("#page-info")).to_have_text("Page 3 of 3")
    assert page.get_by_role("button", name="Next ›").is_disabled()
    context.close()
