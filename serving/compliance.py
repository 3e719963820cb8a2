"""The compliance guard: re-derives every rule a call list must obey from the export and the operations file.

It deliberately shares no code with the ranker (`serving.eligibility`, `serving.slots`): a bug
there must not hide here. Rules (names as they appear in violations):

* `columns`, `list_date`, `rank` (unique, exactly 1..n), `unknown_account`, `duplicate_account`,
  `customer_mismatch`, `team_mismatch` (null team = `default`), `unknown_team`;
* `timezone`: an account of the customer in no known IANA zone (its hours cannot be read: refused);
* `shift_slot`: call_at is a whole centre-local hour of the team's shift on D (read from the shift's
  clock times here, not through `Shift.whole_hours`); `slot_in_past`;
  `local_hour`: equals call_at's hour in the account's zone; `capacity` per team and slot;
* `no_call_flag` (do_not_call, cease_contact, deceased, bankruptcy on any account of the
  customer), `special_handling` (dispute_open, complaint_open, hardship on any account of the customer),
  a null flag counting as set; `nothing_overdue` (no due up to as_of's date is left unpaid),
  `rejected_rows` (withheld by a lenient load: `Export.withheld`, any account of the customer);
* `wrong_number`: a telephone call to any account of the customer ended `wrong_number` before as_of and no
  outbound call since (right party, any account of theirs) reached the debtor: the number would reach an
  unrelated third party (one person, one number: all the customer's accounts);
* `call_window`: the whole hour inside the policy window in every zone of the customer, each of its 60
  minutes read on the debtor's clock (a DST change inside the hour or at its end shows some twice or skips some);
* `quiet_period`: no call on local days c..c+N-1 after a right-party call on day c (account);
* `attempts_7d`: outbound call attempts of the account (history + list) in any 7 consecutive
  local days within the limit; both in the local dates of every zone of the customer's accounts;
* `daily_unanswered` / `daily_connected`: per customer and customer-local day, history plus
  list calls (each list call counted as both) within the limits; unanswered counts outbound
  attempts not answered or hung up on, connected counts every answered call (hung up on too), inbound
  ones (the debtor calling) included.

History is read strictly where a value is missing or unknown: a contact on no known non-call channel is
a call, in no known direction an outbound one, of no known outcome a conversation and unanswered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import (
    LIMIT_UNANSWERED_OUTCOMES,
    NO_CALL_FLAGS,
    NON_CALL_CHANNELS,
    RIGHT_PARTY_OUTCOMES,
    SPECIAL_HANDLING_FLAGS,
    UNANSWERED_OUTCOMES,
    VOICE_OUTCOMES,
    Export,
    Operations,
)

REQUIRED_COLUMNS = ("list_date", "rank", "account_id", "customer_id", "team", "call_at", "local_hour")
# Names zoneinfo opens that place nobody: a debtor "in" one of them is in an unknown zone.
_NOT_PLACES = ("localtime", "Factory", "posixrules")


@dataclass(frozen=True)
class GuardViolation:
    """One call that breaks one rule (account id only: no other debtor data in messages)."""

    rule: str
    account_id: str
    call_at: str
    detail: str

    def __str__(self) -> str:
        return f"account {self.account_id} at {self.call_at}: {self.rule}: {self.detail}"


class ComplianceError(Exception):
    """A call list broke at least one rule; the message has one line per broken rule and call."""

    def __init__(self, violations: list[GuardViolation]):
        self.violations = violations
        lines = [str(violation) for violation in violations]
        super().__init__(f"{len(violations)} compliance violation(s):\n" + "\n".join(lines))


class _Collector:
    """Gathers violations for the rows of the list where a rule fails."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.found: list[GuardViolation] = []

    def add(self, rule: str, failed: np.ndarray | pd.Series, detail) -> None:
        failed = np.asarray(failed, dtype=bool)
        if not failed.any():
            return
        rows = self.frame[failed]
        details = detail(rows) if callable(detail) else [detail] * len(rows)
        for account_id, call_at, text in zip(rows["account_id"], rows["call_at_text"], details, strict=True):
            self.found.append(GuardViolation(rule, str(account_id), call_at, str(text)))


def _member(values, pool) -> np.ndarray:
    """Per value: among `pool` (Arrow hash set; pandas' isin on Arrow strings loops in Python over the pool)."""
    haystack = pa.array(pd.Series(values).astype("string").array)
    needles = pa.array(pd.Series(pool).dropna().astype("string").array)
    found = pc.is_in(haystack, value_set=needles.cast(haystack.type), skip_nulls=True)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _known_zone(name) -> bool:
    """An IANA zone name that places the debtor (a fixed offset, `Factory` or an empty name does not)."""
    if not isinstance(name, str) or not name or name != name.strip() or name in _NOT_PLACES:
        return False
    if name.startswith(("posix/", "right/")):
        return False
    try:
        ZoneInfo(name)
    except Exception:  # noqa: BLE001 - any refusal (not found, bad key, a directory) means unknown
        return False
    return True


def _flagged(accounts: pd.DataFrame, flags: tuple[str, ...]) -> pd.Series:
    """Per account: any of `flags` set; a missing (null) flag counts as set, as the guard cannot clear it."""
    return accounts[list(flags)].fillna(True).astype(bool).any(axis=1)


def _local_parts(instants: pd.Series, zones: pd.Series) -> pd.DataFrame:
    """Local day (days since epoch), hour and minute-of-day of UTC instants, each in its own zone."""
    out = pd.DataFrame(index=instants.index, columns=["day", "hour", "minute"], dtype="int64")
    for zone, index in instants.groupby(zones.to_numpy(), sort=False).groups.items():
        local = pd.DatetimeIndex(instants.loc[index]).tz_convert(zone).tz_localize(None)
        midnight = local.normalize()
        out.loc[index, "day"] = ((midnight - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy()
        out.loc[index, "hour"] = local.hour.to_numpy()
        out.loc[index, "minute"] = ((local - midnight) // pd.Timedelta(minutes=1)).to_numpy()
    return out.astype("int64")


def _amount_overdue_upper(export: Export, account_ids) -> pd.Series:
    """Per account of `account_ids`: dues up to and including as_of's UTC date less settled payments
    before as_of.

    The generous reading of "amount overdue" (a due on as_of's date counts), so the guard never
    flags an account the features call overdue; it catches lists with nothing to collect. Only the
    listed accounts' rows are summed (a million accounts' dues grouped by id took 2.8 s).
    """
    last_day = export.as_of.tz_convert("UTC").tz_localize(None).normalize()
    dues = export.dues[_member(export.dues["account_id"], account_ids)]
    owed = dues[dues["due_date"] <= last_day].groupby("account_id")["amount_due"].sum()
    payments = export.payments[_member(export.payments["account_id"], account_ids)]
    settled = payments[(payments["status"] == "settled") & (payments["paid_at"] < export.as_of)]
    paid = settled.groupby("account_id")["amount"].sum()
    return owed.sub(paid, fill_value=0.0)


def check_call_list(
    call_list: pd.DataFrame,
    export: Export,
    operations: Operations,
    list_date: dt.date | str | pd.Timestamp,
) -> list[GuardViolation]:
    """Every rule the list breaks, one violation per (call, rule); empty when the list is compliant."""
    missing = [column for column in REQUIRED_COLUMNS if column not in call_list.columns]
    if missing:
        return [GuardViolation("columns", "-", "-", f"call list lacks columns {missing}")]
    day = pd.Timestamp(list_date).normalize()
    rules = operations.policy_rules
    calls = call_list.reset_index(drop=True).copy()
    calls["call_at"] = pd.to_datetime(calls["call_at"], utc=True)
    calls["call_at_text"] = calls["call_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna("no time")
    check = _Collector(calls)
    if calls.empty:
        return []

    list_dates = pd.to_datetime(calls["list_date"], errors="coerce").dt.normalize()
    check.add("list_date", (list_dates != day).to_numpy(), f"list_date is not {day.date()}")
    _check_ranks(calls, check)
    check.add("duplicate_account", calls["account_id"].duplicated().to_numpy(), "second call to the account")
    check.add("missing_time", calls["call_at"].isna().to_numpy(), "call_at is empty")

    accounts = export.accounts.set_index("account_id")
    known = _member(calls["account_id"], accounts.index)
    check.add("unknown_account", ~known, "account not in the export")
    calls = calls[known & calls["call_at"].notna().to_numpy()].reset_index(drop=True)
    check.frame = calls
    if calls.empty:
        return check.found
    # An account of the customer in no known zone: the debtor's hours and days cannot be read, so refuse.
    own_customer = accounts.loc[calls["account_id"], "customer_id"].astype(str).to_numpy()
    family = export.accounts[
        _member(
            export.accounts["customer_id"], np.concatenate([calls["customer_id"].astype(str).to_numpy(), own_customer])
        )
    ]
    valid = {zone: _known_zone(zone) for zone in family["timezone"].dropna().unique()}
    unplaced = family.loc[~family["timezone"].map(valid).fillna(False).astype(bool), "customer_id"].astype(str)
    no_zone = _member(calls["customer_id"].astype(str), unplaced) | _member(own_customer, unplaced)
    check.add("timezone", no_zone, "an account of the customer has no known IANA time zone")
    calls = calls[~no_zone].reset_index(drop=True)
    check.frame = calls
    if calls.empty:
        return check.found
    own = accounts.loc[calls["account_id"]]
    zones = own["timezone"].astype(str).reset_index(drop=True)
    owner_team = own["team"].astype("string").fillna("default").reset_index(drop=True)

    check.add(
        "customer_mismatch",
        (calls["customer_id"].astype(str) != own["customer_id"].astype(str).to_numpy()).to_numpy(),
        "customer_id differs from the accounts table",
    )
    check.add(
        "team_mismatch",
        (calls["team"].astype(str) != owner_team.astype(str)).to_numpy(),
        lambda rows: [f"the account belongs to team {owner_team[i]}" for i in rows.index],
    )
    _check_slots(calls, owner_team, operations, day, export.as_of, check)

    local = _local_parts(calls["call_at"], zones)
    check.add(
        "local_hour",
        (pd.to_numeric(calls["local_hour"], errors="coerce").to_numpy() != local["hour"].to_numpy()),
        lambda rows: [f"debtor-local hour is {local.loc[i, 'hour']}" for i in rows.index],
    )

    customers = export.accounts[_member(export.accounts["customer_id"], calls["customer_id"].astype(str))]
    no_call_customers = customers.loc[_flagged(customers, NO_CALL_FLAGS), "customer_id"]
    check.add(
        "no_call_flag",
        _member(calls["customer_id"].astype(str), no_call_customers.astype(str)),
        "the customer has do_not_call, cease_contact, deceased or bankruptcy set",
    )
    special_customers = customers.loc[_flagged(customers, SPECIAL_HANDLING_FLAGS), "customer_id"]
    check.add(
        "special_handling",
        _member(calls["customer_id"].astype(str), special_customers.astype(str)),
        "dispute_open, complaint_open or hardship is set on an account of the customer: special handling only",
    )
    # Withheld accounts are the person's: any one of the customer's keeps all of them off the list.
    withheld_customers = customers.loc[_member(customers["account_id"], list(export.withheld)), "customer_id"]
    check.add(
        "rejected_rows",
        _member(calls["account_id"].astype(str), list(export.withheld))
        | _member(calls["customer_id"].astype(str), withheld_customers.astype(str)),
        "a lenient load rejected an accounts or contacts row of this customer: its flags or call history are not whole",
    )
    _check_wrong_number(calls, own["customer_id"].astype(str).to_numpy(), export, check)
    listed = calls["account_id"].astype(str).unique()
    upper = _amount_overdue_upper(export, listed).reindex(calls["account_id"]).fillna(0.0).to_numpy()
    listed = (
        pd.to_numeric(calls["amount_overdue"], errors="coerce").fillna(0.0).to_numpy()
        if "amount_overdue" in calls
        else upper
    )
    check.add("nothing_overdue", (upper <= 0.005) | (listed <= 0), "nothing is overdue on the account")

    # Each listed customer's zones: unsure where the debtor is, every rule must hold in each of them.
    customer_zones = (
        customers[["customer_id", "timezone"]].drop_duplicates().astype(str).rename(columns={"timezone": "zone"})
    )
    _check_window(calls, customer_zones, rules, check)
    history = _recent_calls(export, calls, customers, rules)
    _check_quiet_and_attempts(calls, customer_zones, history, rules, check)
    _check_customer_days(calls, customer_zones, history, rules, check)
    return check.found


def _check_wrong_number(calls: pd.DataFrame, own_customer: np.ndarray, export: Export, check: _Collector) -> None:
    """No call to a customer whose number is known wrong: its last `wrong_number` call (any account of theirs,
    before as_of) has no outbound right-party call of ours (any account of theirs) at or after it.

    One person, one number: dialling it about any of their debts reaches the same stranger (never contact
    unrelated third parties). Only an explicit `wrong_number` counts, on a contact of no known non-call
    channel (strict: an unknown channel is a call); only a known outbound `call` that reached the debtor
    shows the number right again (the debtor's own call may come from another phone; a visit finds them at
    the door). Read over the whole history: a wrong number stays wrong however long ago it was dialled.
    `own_customer`: per call, the accounts table's customer of the account (the list's own `customer_id` may
    differ: both are read).
    """
    contacts = export.contacts
    wrong = contacts[_one_of(contacts["outcome"], ("wrong_number",))]
    wrong = wrong[
        ~wrong["channel"].isin(NON_CALL_CHANNELS).to_numpy() & (wrong["started_at"] < export.as_of).to_numpy()
    ]
    if wrong.empty:
        return
    listed_customer = calls["customer_id"].astype(str).to_numpy()
    # Every account of the listed customers, with its customer.
    family = export.accounts[_member(export.accounts["customer_id"], np.concatenate([listed_customer, own_customer]))]
    owner = pd.Series(family["customer_id"].astype(str).to_numpy(), index=family["account_id"].astype(str).to_numpy())
    wrong = wrong[_member(wrong["account_id"], owner.index)]
    if wrong.empty:
        return
    wrong = pd.DataFrame(
        {
            "account_id": wrong["account_id"].astype(str).to_numpy(),
            "customer_id": owner.reindex(wrong["account_id"].astype(str)).to_numpy(),
            "started_at": wrong["started_at"].array,
        }
    )
    last_wrong = wrong.sort_values("started_at").drop_duplicates("customer_id", keep="last").set_index("customer_id")

    at = contacts["started_at"]
    reached = contacts[["account_id", "started_at"]][
        _one_of(contacts["outcome"], RIGHT_PARTY_OUTCOMES)
        & _one_of(contacts["channel"], ("call",))
        & _one_of(contacts["direction"], ("outbound",))
        & (at >= last_wrong["started_at"].min()).to_numpy(dtype=bool)
        & (at < export.as_of).to_numpy(dtype=bool)
    ]
    reached = reached[_member(reached["account_id"], owner.index)]
    last_reached = (
        pd.Series(reached["started_at"].array, index=owner.reindex(reached["account_id"].astype(str)).to_numpy())
        .groupby(level=0)
        .max()
        .reindex(last_wrong.index)
    )
    known_wrong = last_wrong[last_reached.isna().to_numpy() | (last_reached < last_wrong["started_at"]).to_numpy()]
    at_text = known_wrong["started_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    cause = (
        "a call on account " + known_wrong["account_id"] + " at " + at_text + " ended wrong_number and no call "
        "of ours has reached the debtor since: the number would reach a third party"
    )
    check.add(
        "wrong_number",
        _member(listed_customer, cause.index) | _member(own_customer, cause.index),
        lambda rows: [cause.get(listed_customer[i], cause.get(own_customer[i])) for i in rows.index],
    )


def _one_of(values: pd.Series, options: tuple[str, ...]) -> np.ndarray:
    """Per value: equal to one of a few `options` (null: no). One comparison each: a categorical column of tens
    of millions of contacts compares by code, where `isin` took 0.2 s."""
    found = np.zeros(len(values), dtype=bool)
    for option in options:
        found |= (values == option).to_numpy(dtype=bool, na_value=False)
    return found


def _check_ranks(calls: pd.DataFrame, check: _Collector) -> None:
    rank = pd.to_numeric(calls["rank"], errors="coerce")
    check.add("rank", rank.duplicated(keep="first").to_numpy(), "rank used twice")
    whole = rank.notna() & (rank == rank.round())
    check.add("rank", (~whole).to_numpy(), "rank is not a whole number")
    expected = np.arange(1, len(calls) + 1)
    if whole.all() and not np.array_equal(np.sort(rank.to_numpy()), expected):
        outside = (rank < 1) | (rank > len(calls))
        check.add("rank", outside.to_numpy(), f"ranks must be exactly 1..{len(calls)}")


def _check_slots(
    calls: pd.DataFrame,
    owner_team: pd.Series,
    operations: Operations,
    day: pd.Timestamp,
    as_of: pd.Timestamp,
    check: _Collector,
) -> None:
    """Each call sits on a whole shift hour of its team on D, not in the past, within capacity."""
    teams = {team.team: team for team in operations.teams}
    check.add("unknown_team", (~owner_team.isin(list(teams))).to_numpy(), "team not in the operations file")
    centre = pd.DatetimeIndex(calls["call_at"]).tz_convert(operations.centre_timezone).tz_localize(None)
    # Hours from D's centre-local midnight: a shift past midnight goes on with hours 24, 25, ...
    since_midnight = (centre - day) / pd.Timedelta(hours=1)
    on_hour = np.asarray(since_midnight == np.floor(since_midnight))
    shift_hour = _shift_hour_mask(owner_team, np.floor(np.nan_to_num(since_midnight, nan=-1.0)).astype(np.int64), teams)
    check.add(
        "shift_slot",
        ~(on_hour & shift_hour),
        "not the start of a whole shift hour of the team on the list date",
    )
    check.add("slot_in_past", (calls["call_at"] < as_of).to_numpy(), "the slot starts before the export's as_of")
    capacity = owner_team.map({name: team.agents * team.calls_per_agent_hour for name, team in teams.items()}).fillna(0)
    by_rank = pd.to_numeric(calls["rank"], errors="coerce").fillna(np.inf)
    order = pd.DataFrame({"team": owner_team, "call_at": calls["call_at"], "rank": by_rank})
    order["seat"] = order.sort_values("rank").groupby(["team", "call_at"]).cumcount()
    check.add(
        "capacity",
        (order["seat"] >= capacity).to_numpy(),
        lambda rows: [f"team {owner_team[i]} holds {int(capacity[i])} calls in this hour" for i in rows.index],
    )


def _shift_hours(shift) -> list[int]:
    """Hours h (from D's centre-local midnight) with [h, h+1) inside the shift; read here from its clock times,
    not through `Shift.whole_hours`, which builds the ranker's slots. An end at or before the start is the
    next day's."""

    def seconds(clock: dt.time) -> float:
        return clock.hour * 3600 + clock.minute * 60 + clock.second + clock.microsecond / 1e6

    start, end = seconds(shift.start), seconds(shift.end)
    if end <= start:
        end += 24 * 3600
    return [hour for hour in range(48) if hour * 3600 >= start and (hour + 1) * 3600 <= end]


def _shift_hour_mask(owner_team: pd.Series, hours, teams: dict) -> np.ndarray:
    """Whether each (team, hour from D's centre-local midnight) is a whole hour of the team's shift."""
    allowed = {(name, hour) for name, team in teams.items() for hour in _shift_hours(team.shift)}
    pairs = pd.MultiIndex.from_arrays([owner_team.astype(str).to_numpy(), np.asarray(hours)])
    return pairs.isin(list(allowed)) if allowed else np.zeros(len(owner_team), dtype=bool)


def _check_window(calls: pd.DataFrame, zones: pd.DataFrame, rules, check: _Collector) -> None:
    """The whole call hour lies inside the policy window in every zone the customer has an account in.

    Each of the hour's 60 minutes is read on the debtor's clock and must lie in the window of its own day:
    a clock that jumps inside the hour (or just at its end) shows some minutes twice or skips some, and an
    hour across the debtor's midnight fits only an all-day window (00:00-24:00).
    """
    expanded = (
        calls[["customer_id", "call_at"]].astype({"customer_id": str}).reset_index().merge(zones, on="customer_id")
    )
    start = _local_parts(expanded["call_at"], expanded["zone"])
    last = _local_parts(expanded["call_at"] + pd.Timedelta(minutes=59), expanded["zone"])
    # Where the clock runs on through the hour (the last minute starts 59 minutes after the first), its minutes
    # are start..start+59 of one day, or cross midnight (then 1439 and 0 are both read).
    steady = ((last["day"] - start["day"]) * 1440 + last["minute"] - start["minute"]).to_numpy() == 59
    low = start["minute"].to_numpy().copy()
    high = low + 59
    crossing = high > 1439
    low[crossing], high[crossing] = 0, 1439
    jumped = np.flatnonzero(~steady)
    if len(jumped):  # the clock changed inside the hour (DST): read those hours minute by minute
        minutes = pd.to_timedelta(np.tile(np.arange(60), len(jumped)), unit="min")
        at = pd.Series(pd.DatetimeIndex(expanded["call_at"].iloc[jumped]).repeat(60) + minutes)
        shown = _local_parts(at, pd.Series(np.repeat(expanded["zone"].to_numpy()[jumped], 60)))["minute"].to_numpy()
        shown = shown.reshape(len(jumped), 60)
        low[jumped], high[jumped] = shown.min(axis=1), shown.max(axis=1)
    outside = (low < rules.call_window_start * 60) | (high + 1 > rules.call_window_end * 60)
    bad_rows = expanded.loc[outside, "index"].unique()
    failed = np.zeros(len(calls), dtype=bool)
    failed[bad_rows] = True
    check.add(
        "call_window",
        failed,
        f"outside {rules.call_window_start:02d}:00-{rules.call_window_end:02d}:00 debtor-local time",
    )


def _recent_calls(export: Export, calls: pd.DataFrame, customers: pd.DataFrame, rules) -> pd.DataFrame:
    """History telephone calls of the listed customers' accounts that can matter to D's limits.

    Read the strict way where a value is missing or unknown (the loader refuses such rows; an export built
    otherwise may hold them): a contact on no known other channel is a call, a call in no known direction
    is ours (`outbound`), and one with no known outcome may have been a conversation (`talk`) or
    unanswered (`unanswered`, when ours) and was connected (`connected`).
    """
    reach = max(8, rules.quiet_days_after_conversation + 1) + 2
    since = calls["call_at"].min() - pd.Timedelta(days=reach)
    contacts = export.contacts
    # The time filter first: it is cheap and leaves a few days of a year's history for the id test.
    recent = contacts[
        (contacts["started_at"] >= since).to_numpy() & ~contacts["channel"].isin(NON_CALL_CHANNELS).to_numpy()
    ]
    recent = recent[_member(recent["account_id"], customers["account_id"])]
    owners = customers.set_index("account_id")[["customer_id", "timezone"]].astype(str)
    recent = recent.join(owners, on="account_id").reset_index(drop=True)
    outcome = recent["outcome"]
    unknown = ~outcome.isin(VOICE_OUTCOMES).to_numpy()
    no_answer = outcome.isin(UNANSWERED_OUTCOMES).to_numpy()
    declined = outcome.isin(LIMIT_UNANSWERED_OUTCOMES).to_numpy()  # hung up on: unanswered and connected
    outbound = (recent["direction"] != "inbound").to_numpy(dtype=bool)
    return recent.assign(
        outbound=outbound,
        talk=outcome.isin(RIGHT_PARTY_OUTCOMES).to_numpy() | unknown,
        unanswered=outbound & (declined | unknown),
        connected=~no_answer,
    )


def _check_quiet_and_attempts(
    calls: pd.DataFrame, zones: pd.DataFrame, history: pd.DataFrame, rules, check: _Collector
) -> None:
    """Reg F style per-account limits in local dates, in every zone of the customer's accounts (unsure of
    the zone, the call must be allowed in each)."""
    quiet, most = rules.quiet_days_after_conversation, rules.max_attempts_7d
    if quiet <= 0 and most is None:
        return
    listed = pd.DataFrame(
        {
            "row": np.arange(len(calls)),
            "account_id": calls["account_id"].astype(str).to_numpy(),
            "customer_id": calls["customer_id"].astype(str).to_numpy(),
            "at": calls["call_at"].array,
        }
    ).merge(zones, on="customer_id")
    listed["day"] = _local_parts(listed["at"], listed["zone"])["day"].to_numpy()
    past = pd.DataFrame(
        {
            "account_id": history["account_id"].astype(str).to_numpy(),
            "customer_id": history["customer_id"].astype(str).to_numpy(),
            "at": history["started_at"].array,
            "outbound": history["outbound"].to_numpy(dtype=bool),
            "conversation": history["talk"].to_numpy(dtype=bool),
        }
    ).merge(zones, on="customer_id")
    past["day"] = _local_parts(past["at"], past["zone"])["day"].to_numpy()
    if quiet > 0:
        talks = listed.merge(past[past["conversation"]], on=["account_id", "zone"], suffixes=("", "_talk"))
        gap = talks["day"] - talks["day_talk"]
        blocked = talks.loc[(gap >= 0) & (gap <= quiet - 1), "row"].unique()
        failed = np.zeros(len(calls), dtype=bool)
        failed[blocked] = True
        check.add("quiet_period", failed, f"within {quiet} days of a telephone conversation (day of it = day 1)")
    if most is not None:
        attempts = pd.concat(
            [past.loc[past["outbound"], ["account_id", "zone", "day"]], listed[["account_id", "zone", "day"]]],
            ignore_index=True,
        )
        # Counted per (call, zone of its customer): `position` in `listed`.
        pairs = listed.assign(position=np.arange(len(listed))).merge(
            attempts, on=["account_id", "zone"], suffixes=("", "_attempt")
        )
        offset = (pairs["day_attempt"] - pairs["day"]).to_numpy()
        key = pairs["position"].to_numpy()
        worst_per_zone = np.zeros(len(listed), dtype=np.int64)
        for shift in range(7):  # windows [d-6+shift, d+shift], all seven that contain the call's day
            inside = (offset >= shift - 6) & (offset <= shift)
            worst_per_zone = np.maximum(worst_per_zone, np.bincount(key[inside], minlength=len(listed)))
        worst = np.zeros(len(calls), dtype=np.int64)
        np.maximum.at(worst, listed["row"].to_numpy(), worst_per_zone)
        check.add(
            "attempts_7d",
            worst > most,
            lambda rows: [f"{worst[i]} call attempts within 7 days (limit {most})" for i in rows.index],
        )


def _check_customer_days(
    calls: pd.DataFrame, zones: pd.DataFrame, history: pd.DataFrame, rules, check: _Collector
) -> None:
    """Per customer and customer-local day (each zone of the customer): unanswered and connected calls."""
    if rules.max_unanswered_per_day is None and rules.max_connected_per_day is None:
        return
    # Unanswered: our attempts nobody took. Connected: calls someone took, the debtor's own (inbound) included.
    past = pd.DataFrame(
        {
            "customer_id": history["customer_id"].to_numpy(),
            "at": history["started_at"].array,
            "unanswered": history["unanswered"].to_numpy(dtype=bool).astype(int),
            "connected": history["connected"].to_numpy(dtype=bool).astype(int),
            "row": -1,
        }
    )
    listed = pd.DataFrame(
        {
            "customer_id": calls["customer_id"].astype(str).to_numpy(),
            "at": calls["call_at"].array,
            "unanswered": 1,
            "connected": 1,
            "row": np.arange(len(calls)),
        }
    )
    events = pd.concat([past, listed], ignore_index=True).merge(zones, on="customer_id")
    events["at"] = pd.to_datetime(events["at"], utc=True)
    events["day"] = _local_parts(events["at"], events["zone"])["day"].to_numpy()
    totals = events.groupby(["customer_id", "zone", "day"])[["unanswered", "connected"]].transform("sum")
    on_list = events["row"].to_numpy() >= 0
    for rule, column, limit in (
        ("daily_unanswered", "unanswered", rules.max_unanswered_per_day),
        ("daily_connected", "connected", rules.max_connected_per_day),
    ):
        if limit is None:
            continue
        over = on_list & (totals[column].to_numpy() > limit)
        failed = np.zeros(len(calls), dtype=bool)
        failed[events.loc[over, "row"].to_numpy()] = True
        check.add(
            rule,
            failed,
            f"more than {limit} {column} calls to the customer on one customer-local day (history + list)",
        )


def assert_compliant(
    call_list: pd.DataFrame,
    export: Export,
    operations: Operations,
    list_date: dt.date | str | pd.Timestamp,
) -> None:
    """Raise ComplianceError, one line per broken rule and call, unless the list obeys every rule."""
    violations = check_call_list(call_list, export, operations, list_date)
    if violations:
        raise ComplianceError(violations)
