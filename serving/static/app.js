// callq supervisor page: reads the API with the supervisor's bearer token (kept in sessionStorage).
// Plain DOM and fetch; every value from the API is written with textContent, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "callq.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  // `ticket` numbers each refresh: an answer to an earlier one (a date still being ranked) is dropped.
  // `filters` are those the table was last read with (Apply, Reset, a team or date picked): paging and the CSV
  // use them, not edits in the form not yet applied, so the table, its pages and the download agree.
  const state = { page: 1, pages: 0, teams: [], listDate: null, timezone: null, ticket: 0, filters: null };
  // What a header can carry: the server refuses any other token when it starts (see README, API).
  const TOKEN_SHAPE = /^[!-~]+$/;
  const TAGLINE = "Whom to call today, at what hour, and why.";

  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const pct = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
  const hh = (hour) => `${String(hour).padStart(2, "0")}:00`;

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function setStatus(text, isError = false) {
    const box = $("status");
    box.textContent = text;
    box.classList.toggle("error", isError);
  }

  async function api(path, params = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
    }
    let response;
    try {
      response = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
    } catch (error) {
      throw new Error(`Could not reach the callq server (${error.message}). Check the connection and try again.`);
    }
    if (response.status === 401) {
      // Signing out drops every answer still on its way, this one's error included: say it here.
      const message = "The token was not accepted. Please sign in again.";
      signOut();
      setStatus(message, true);
      throw new Error(message);
    }
    if (!response.ok) {
      let detail = response.statusText || `The server answered ${response.status}.`;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(typeof detail === "string" ? detail : "The request was not valid.");
    }
    return response;
  }

  function formFilters() {
    return {
      date: $("list-date").value,
      stage: $("stage").value,
      min_amount: $("min-amount").value,
      hour: $("hour").value,
    };
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function fillSelect(select, values, allLabel, labelOf = (v) => v) {
    const keep = select.value;
    select.replaceChildren(el("option", allLabel));
    select.firstChild.value = "";
    // The filter in use stays listed even where this list has none of it: the form shows what was asked.
    const shown = keep && !values.some((v) => String(v) === keep) ? [...values, keep] : values;
    for (const value of shown) {
      const option = el("option", labelOf(value));
      option.value = String(value);
      select.appendChild(option);
    }
    select.value = keep;
  }

  function applyForm() {
    state.filters = formFilters();
    state.page = 1;
  }

  async function loadTeams(current) {
    const data = await (await api("/teams", { date: state.filters.date })).json();
    if (!current()) return;
    state.teams = data.teams;
    state.listDate = data.list_date;
    state.timezone = data.centre_timezone;
    $("run-meta").textContent =
      `List for ${data.list_date} · centre time ${data.centre_timezone} · data as of ` +
      `${new Date(data.as_of).toISOString().slice(0, 16).replace("T", " ")} UTC · models ${data.model_version}`;
    if (!$("list-date").value) $("list-date").value = data.list_date;
    if (!state.filters.date) state.filters.date = data.list_date;
    const select = $("team");
    const keep = select.value;
    select.replaceChildren(...data.teams.map((t) => {
      const option = el("option", `${t.team} (${whole.format(t.calls)} calls)`);
      option.value = t.team;
      return option;
    }));
    if (data.teams.some((t) => t.team === keep)) select.value = keep;
    $("signed-in-text").textContent =
      `Signed in · ${data.teams.length} team${data.teams.length === 1 ? "" : "s"}`;
    if (!data.teams.length) throw new Error("This token covers no team on this list.");
  }

  function currentTeam() { return state.teams.find((t) => t.team === $("team").value); }

  async function loadQueue(current) {
    const team = $("team").value;
    const params = { ...state.filters, page: state.page, page_size: $("page-size").value };
    const data = await (await api(`/teams/${encodeURIComponent(team)}/queue`, params)).json();
    if (!current()) return;
    state.pages = data.pages;
    fillSelect($("stage"), data.stages, "All stages");
    const filtered = ["stage", "min_amount", "hour"].some((key) => state.filters[key] !== "");
    renderRows(data.rows, !data.total && !filtered ? "This team has no calls on this list."
      : data.total ? "No calls on this page." : "No calls match these filters.");
    $("kpi-calls").textContent = whole.format(data.total);
    $("kpi-value").textContent = money.format(data.expected_value_total);
    const summary = currentTeam();
    $("kpi-special").textContent = summary ? whole.format(summary.special_handling) : "–";
    $("queue-caption").textContent = `${whole.format(data.total)} calls · ranked by expected value`;
    $("page-info").textContent = data.pages ? `Page ${data.page} of ${data.pages}` : "No calls match";
    $("prev").disabled = data.page <= 1;
    $("next").disabled = data.page >= data.pages;
    $("download").disabled = false;
  }

  // No list on screen (signed out, an error, a date without a list): nothing of an earlier answer stays shown.
  function clearData(message = "No list shown.") {
    const cell = el("td", message, "empty");
    cell.colSpan = 12;
    const row = document.createElement("tr");
    row.appendChild(cell);
    $("queue").tBodies[0].replaceChildren(row);
    for (const id of ["kpi-calls", "kpi-value", "kpi-capacity", "kpi-special"]) $(id).textContent = "–";
    $("capacity-chart").replaceChildren();
    $("queue-caption").textContent = "";
    $("page-info").textContent = "";
    $("run-meta").textContent = TAGLINE;
    $("prev").disabled = true;
    $("next").disabled = true;
    $("download").disabled = true;
    state.pages = 0;
  }

  function renderRows(rows, emptyText) {
    const body = $("queue").tBodies[0];
    if (!rows.length) {
      const cell = el("td", emptyText, "empty");
      cell.colSpan = 12;
      const row = document.createElement("tr");
      row.appendChild(cell);
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      const stage = el("td");
      stage.appendChild(el("span", r.stage, "stage"));
      const reasons = el("td");
      const list = el("ul", null, "reasons");
      for (const reason of r.reasons) list.appendChild(el("li", reason));
      reasons.appendChild(list);
      tr.append(
        el("td", r.position, "num"),
        el("td", r.account_id, "account"),
        stage,
        el("td", money.format(r.amount_overdue), "num"),
        el("td", r.days_past_due, "num"),
        el("td", r.call_at_centre.slice(11, 16)),
        el("td", hh(r.local_hour), "num"),
        el("td", r.best_hour_local === null ? "–" : hh(r.best_hour_local), "num"),
        el("td", pct.format(r.p_repay), "num"),
        el("td", pct.format(r.p_contact), "num"),
        el("td", money.format(r.expected_value), "num"),
        reasons,
      );
      tr.dataset.account = r.account_id;
      return tr;
    }));
  }

  async function loadCapacity(current) {
    const team = $("team").value;
    const data = await (await api(`/teams/${encodeURIComponent(team)}/capacity`, { date: state.filters.date })).json();
    if (!current()) return;
    $("kpi-capacity").textContent = `${whole.format(data.scheduled_total)} / ${whole.format(data.capacity_total)}`;
    fillSelect($("hour"), data.hours.map((h) => h.centre_hour), "Any hour", hh);
    renderChart(data);
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Whole-number gridlines at a 1/2/5 x 10^k step, about four of them up to the peak.
  function niceTicks(peak) {
    const raw = Math.max(1, peak / 4);
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const ticks = [];
    for (let tick = step; tick <= peak; tick += step) ticks.push(tick);
    return ticks;
  }

  function renderChart(data) {
    const figure = $("capacity-chart");
    const hours = data.hours;
    if (!hours.length) {
      figure.replaceChildren(el("p", "This team has no shift hours on this day.", "muted"));
      return;
    }
    const width = 960, height = 200, left = 36, bottom = 24, top = 18;
    const peak = Math.max(1, ...hours.map((h) => Math.max(h.capacity, h.scheduled)));
    const slot = (width - left) / hours.length;
    const barWidth = Math.min(56, slot * 0.7);
    const scale = (v) => ((height - bottom - top) * v) / peak;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-title chart-desc" });
    chart.appendChild(svg("title", { id: "chart-title" }, `Calls per hour against capacity for team ${data.team}`));
    chart.appendChild(svg("desc", { id: "chart-desc" },
      hours.map((h) => `${hh(h.centre_hour)}: ${h.scheduled} of ${h.capacity}`).join("; ")));
    chart.appendChild(svg("line", { x1: left, x2: width, y1: height - bottom, y2: height - bottom, class: "axis" }));
    for (const tick of niceTicks(peak)) {
      const y = height - bottom - scale(tick);
      chart.appendChild(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "axis", "stroke-dasharray": "3 4" }));
      chart.appendChild(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, whole.format(tick)));
    }
    hours.forEach((h, i) => {
      const x = left + i * slot + (slot - barWidth) / 2;
      const group = svg("g", { class: "hour", "data-hour": h.centre_hour });
      group.appendChild(svg("title", {}, `${hh(h.centre_hour)}: ${h.scheduled} scheduled of ${h.capacity}`));
      const capHeight = scale(h.capacity);
      group.appendChild(svg("rect", {
        x, width: barWidth, y: height - bottom - capHeight, height: capHeight, rx: 3, class: "bar-capacity",
      }));
      const doneHeight = scale(h.scheduled);
      group.appendChild(svg("rect", {
        x: x + barWidth * 0.2, width: barWidth * 0.6, y: height - bottom - doneHeight, height: doneHeight, rx: 2,
        class: h.scheduled > h.capacity ? "bar-over" : "bar-scheduled",
      }));
      group.appendChild(svg("text", {
        x: x + barWidth / 2, y: height - bottom - Math.max(capHeight, doneHeight) - 4, "text-anchor": "middle",
        class: "value",
      }, whole.format(h.scheduled)));
      group.appendChild(svg("text", { x: x + barWidth / 2, y: height - 6, "text-anchor": "middle" }, hh(h.centre_hour)));
      chart.appendChild(group);
    });
    figure.replaceChildren(chart);
  }

  async function refresh({ teams = false } = {}) {
    const ticket = ++state.ticket;
    const current = () => ticket === state.ticket;
    if (!state.filters) applyForm();
    setStatus("Loading…");
    $("workspace").setAttribute("aria-busy", "true");
    try {
      if (teams) await loadTeams(current);
      if (!current()) return;
      await Promise.all([loadQueue(current), loadCapacity(current)]);
      if (current()) setStatus("");
    } catch (error) {
      if (current()) {
        clearData("No list shown: see the message above.");
        setStatus(error.message, true);
      }
    } finally {
      if (current()) $("workspace").removeAttribute("aria-busy");
    }
  }

  async function downloadCsv() {
    const team = $("team").value;
    try {
      const response = await api(`/teams/${encodeURIComponent(team)}/queue.csv`, state.filters || formFilters());
      const blob = await response.blob();
      const disposition = response.headers.get("Content-Disposition") || "";
      const exact = /filename\*=UTF-8''([^;]+)/.exec(disposition);
      const plain = /filename="([^"]+)"/.exec(disposition);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = exact ? decodeURIComponent(exact[1]) : plain ? plain[1] : `callq-${team}.csv`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  function showSignedIn(signedIn) {
    $("token-form").hidden = signedIn;
    $("signed-in").hidden = !signedIn;
    $("workspace").hidden = !signedIn;
  }

  // Signing out leaves nothing of the list behind for whoever signs in next on this screen, and drops any
  // answer still on its way.
  function signOut() {
    state.ticket += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignedIn(false);
    $("token").value = "";
    HTMLFormElement.prototype.reset.call($("filters"));  // `filters.reset` is the Reset button (its id)
    $("team").replaceChildren();
    $("stage").replaceChildren(el("option", "All stages"));
    $("stage").firstChild.value = "";
    $("hour").replaceChildren(el("option", "Any hour"));
    $("hour").firstChild.value = "";
    $("signed-in-text").textContent = "Signed in";
    Object.assign(state, { page: 1, pages: 0, teams: [], listDate: null, timezone: null, filters: null });
    clearData();
  }

  function start() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      if (!TOKEN_SHAPE.test(value)) {
        setStatus("This is not a valid token: a token holds only printable ASCII characters, without spaces " +
          "(check for quotes or dashes changed when it was pasted).", true);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      showSignedIn(true);
      applyForm();
      refresh({ teams: true });
    });
    $("sign-out").addEventListener("click", () => { signOut(); setStatus("Signed out."); });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      applyForm();
      refresh();
    });
    $("team").addEventListener("change", () => {
      $("stage").value = "";
      $("hour").value = "";
      applyForm();
      refresh();
    });
    $("list-date").addEventListener("change", () => { applyForm(); refresh({ teams: true }); });
    $("reset").addEventListener("click", () => {
      $("stage").value = "";
      $("min-amount").value = "";
      $("hour").value = "";
      applyForm();
      refresh();
    });
    $("download").addEventListener("click", downloadCsv);
    $("prev").addEventListener("click", () => { if (state.page > 1) { state.page -= 1; refresh(); } });
    $("next").addEventListener("click", () => { if (state.page < state.pages) { state.page += 1; refresh(); } });
    $("page-size").addEventListener("change", () => { state.page = 1; refresh(); });
    clearData();
    if (token() && !TOKEN_SHAPE.test(token())) sessionStorage.removeItem(TOKEN_KEY);
    if (token()) {
      showSignedIn(true);
      applyForm();
      refresh({ teams: true });
    } else {
      showSignedIn(false);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
