"""Which (account, slot) calls the law and the centre allow on list date D: the ranker's candidate filter.

Rules, in the order they exclude accounts (each count lands in `Candidates.excluded`):

* no score row, nothing overdue (amount_overdue <= 0);
* a no-call flag (do_not_call, cease_contact, deceased, bankruptcy) on ANY account of the
  customer: these describe the person, so they stop calls about every debt of theirs;
* a special-handling flag (dispute_open, complaint_open, hardship) on ANY account of the customer:
  not dialled, listed for supervisors instead (the other accounts with the flagged one named);
* withheld by a lenient load (`Export.withheld`, any account of the customer): the customer lost an
  accounts or contacts row, so its flags or its call history are not known whole;
* a known wrong number: a telephone call to any account of the customer ended `wrong_number` before
  as_of and no outbound call of ours since (any of their accounts) reached the debtor: one person, one
  number, so dialling it about any of their debts reaches an unrelated third party;
* a team (null = `default`) missing from the operations file;
* slots: a whole shift hour of the account's team on D, not before `as_of`, with capacity;
* the policy's debtor-local window, which must hold in every zone of the customer's accounts
  (unsure of the zone: the slot must be allowed in every candidate zone, as Reg F asks); an account
  in no known IANA zone (null, `+08:00`, `Factory`) has no window, so its customer is never called;
* the quiet period after a telephone conversation (a right-party call, either direction), on
  the account, counted in local dates: a conversation on day c blocks c..c+N-1;
* at most N outbound call attempts per account in any 7 consecutive local days: history of
  the 6 days before the slot's local date and that date, plus the one call the list adds;
* both counted in every zone of the customer's accounts (unsure of the zone, as for the window);
* per customer and customer-local day: history unanswered outbound calls (no_answer, busy,
  voicemail, and hung_up: declined) and connected calls of either direction (every outcome but
  no_answer, busy and voicemail; hung_up counts as both), plus list calls counted as both.

A null flag counts as set. History the loader would refuse is read as the guard reads it, strictly: a
contact on no known non-call channel is a call, in no known direction an outbound one, of no known
outcome a conversation and an unanswered attempt.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract import (
    DEFAULT_TEAM,
    LIMIT_UNANSWERED_OUTCOMES,
    NO_CALL_FLAGS,
    NON_CALL_CHANNELS,
    RIGHT_PARTY_OUTCOMES,
    SPECIAL_HANDLING_FLAGS,
    UNANSWERED_OUTCOMES,
    VOICE_OUTCOMES,
    Export,
    Operations,
    account_teams,
    is_valid_timezone,
)
from features.timeline import account_codes, to_us
from serving.slots import (
    as_list_date,
    day_number,
    in_call_window,
    local_day_numbers,
    local_slot_table,
    team_slots,
)

NO_LIMIT = 1 << 30

EXCLUSION_RULES = (
    "no_score",
    "nothing_overdue",
    "no_call_flag",
    "special_handling",
    "rejected_rows",
    "wrong_number",
    "unknown_team",
    "no_open_slot",
    "call_window",
    "quiet_period",
    "attempts_7d",
    "customer_daily_limit",
)


@dataclass
class Candidates:
    """Allowed (account, slot) pairs, as parallel arrays, with what the ranker needs around them.

    `account_pos` indexes rows of `accounts` (positional); `slot_id` indexes rows of `slots`.
    `customer_cap[customer_code]` caps the calls the list may add for a customer (NO_LIMIT: none).
    """

    accounts: pd.DataFrame  # export accounts, positional, with resolved `team_name`
    slots: pd.DataFrame  # team, centre_hour, call_at, capacity (only open slots)
    account_pos: np.ndarray
    slot_id: np.ndarray
    local_hour: np.ndarray
    local_weekday: np.ndarray
    customer_code: np.ndarray  # per account row
    customer_cap: np.ndarray  # per customer code
    special_handling: pd.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def callable_accounts(self) -> pd.Index:
        """Ids of the accounts with at least one allowed slot: those any call is allowed to on D."""
        return pd.Index(self.accounts["account_id"].to_numpy()[np.unique(self.account_pos)])


def _customer_zone_sets(customer_code: np.ndarray, zone_code: np.ndarray, n_zones: int):
    """Code of each customer's set of zones; single-zone sets share the zone's own code."""
    pairs = pd.DataFrame({"customer": customer_code, "zone": zone_code}).drop_duplicates()
    n_customers = int(customer_code.max()) + 1 if len(customer_code) else 0
    zone_set = np.zeros(n_customers, dtype=np.int64)
    sizes = pairs.groupby("customer")["zone"].size()
    single = pairs[pairs["customer"].isin(sizes.index[sizes == 1])]
    zone_set[single["customer"].to_numpy()] = single["zone"].to_numpy()
    multi = pairs[pairs["customer"].isin(sizes.index[sizes > 1])].sort_values(["customer", "zone"])
    members: list[tuple[int, ...]] = [(zone,) for zone in range(n_zones)]
    if len(multi):
        tuples = multi.groupby("customer")["zone"].agg(tuple)
        codes, uniques = pd.factorize(tuples)
        zone_set[tuples.index.to_numpy()] = codes + n_zones
        members.extend(uniques)
    return zone_set, members, pairs


def _history_calls(export: Export, account_index: pd.Index, since: pd.Timestamp) -> pd.DataFrame:
    """Calls at or after `since`, with the account's row position, read strictly where a value is missing or
    unknown (the loader refuses such rows): a contact on no known other channel is a call, one in no known
    direction is ours (`outbound`), one with no known outcome may have been a conversation (`talk`)."""
    contacts = export.contacts
    recent = contacts[~_is_in(contacts["channel"], NON_CALL_CHANNELS) & (contacts["started_at"] >= since).to_numpy()]
    # Arrow hashing: pandas' get_indexer built a million-id hash table of Python strings first (0.3 s).
    position = account_codes(recent["account_id"], account_index)
    recent = recent.assign(
        account_pos=position,
        outbound=(recent["direction"] != "inbound").to_numpy(dtype=bool),
        talk=(recent["outcome"].isin(RIGHT_PARTY_OUTCOMES) | ~recent["outcome"].isin(VOICE_OUTCOMES)).to_numpy(),
    )
    return recent[recent["account_pos"] >= 0]


def customer_flagged(
    accounts: pd.DataFrame, flags: tuple[str, ...], customer_code: np.ndarray | None = None
) -> np.ndarray:
    """Per account: whether any account of its customer carries one of `flags` (they describe the person).

    `customer_code`: `pd.factorize(accounts["customer_id"])[0]` where the caller already has it.
    """
    if customer_code is None:
        customer_code, _ = pd.factorize(accounts["customer_id"])
    return customer_any(_flag_values(accounts, flags).any(axis=1), customer_code)


def customer_any(marked: np.ndarray, customer_code: np.ndarray) -> np.ndarray:
    """Per account: whether any account of its customer is `marked`."""
    n_customers = int(customer_code.max()) + 1 if len(customer_code) else 0
    return (np.bincount(customer_code, weights=marked, minlength=n_customers) > 0)[customer_code]


def _flag_values(accounts: pd.DataFrame, flags: tuple[str, ...]) -> np.ndarray:
    """The flags as a bool matrix; a missing (null) flag counts as set, as the guard reads it: it cannot be cleared."""
    frame = accounts[list(flags)]
    missing = frame.isna().to_numpy()
    if not missing.any():
        return frame.to_numpy(dtype=bool)
    return frame.astype(object).mask(missing, True).to_numpy(dtype=bool)


def customer_no_call(accounts: pd.DataFrame, customer_code: np.ndarray | None = None) -> np.ndarray:
    """Per account: a no-call flag on any account of its customer (one person, one phone)."""
    return customer_flagged(accounts, NO_CALL_FLAGS, customer_code)


def customer_special(accounts: pd.DataFrame, customer_code: np.ndarray | None = None) -> np.ndarray:
    """Per account: a special-handling flag on any account of its customer (a dispute, complaint or hardship
    is the person's: a collector calling about another of their debts would be pressing them all the same)."""
    return customer_flagged(accounts, SPECIAL_HANDLING_FLAGS, customer_code)


def customer_wrong_number(export: Export, customer_code: np.ndarray | None = None) -> np.ndarray:
    """Per account (rows of `export.accounts`): the customer's number is known wrong, so a call would reach
    an unrelated third party.

    Known wrong: a telephone call to any account of the customer ended `wrong_number` before as_of, and no
    outbound call of ours (any of their accounts) reached the debtor (`RIGHT_PARTY_OUTCOMES`) at or after it.
    Only an explicit `wrong_number` counts (a missing outcome does not); a contact on no known non-call
    channel counts as a call (the strict reading), but only a known outbound `call` shows the number we dial
    right again: the debtor's own call may come from another phone, and a visit reaches them at the door.
    """
    accounts = export.accounts
    if customer_code is None:
        customer_code, _ = pd.factorize(accounts["customer_id"])
    contacts = export.contacts
    never = np.iinfo(np.int64).min
    # Column by column on the rows that matter (a year of contacts is tens of millions of rows), and the
    # accounts looked up among those rows' ids rather than each row among a million accounts' ids.
    wrong = np.flatnonzero(_is_in(contacts["outcome"], ("wrong_number",)))
    started = contacts["started_at"]
    as_of = to_us(pd.Series([export.as_of]))[0]
    wrong_at = to_us(started.iloc[wrong])
    on_phone = ~_is_in(contacts["channel"], NON_CALL_CHANNELS, wrong) & (wrong_at > never) & (wrong_at < as_of)
    wrong, wrong_at = wrong[on_phone], wrong_at[on_phone]
    if len(wrong) == 0 or len(accounts) == 0:
        return np.zeros(len(accounts), dtype=bool)
    latest_first = np.argsort(-wrong_at)
    wrong, wrong_at = wrong[latest_first], wrong_at[latest_first]
    # Each account's first hit among the latest-first wrong numbers is its latest one.
    hit = account_codes(accounts["account_id"], pd.Index(contacts["account_id"].iloc[wrong]))
    n_customers = int(customer_code.max()) + 1
    last_wrong = np.full(n_customers, never)
    found = hit >= 0
    np.maximum.at(last_wrong, customer_code[found], wrong_at[hit[found]])
    marked = last_wrong > never
    if not marked.any():  # the wrong numbers are on accounts the export lacks
        return np.zeros(len(accounts), dtype=bool)

    # Right-party calls since the earliest of those wrong numbers, looked up among the marked customers' accounts.
    talk = np.flatnonzero(_is_in(contacts["outcome"], RIGHT_PARTY_OUTCOMES))
    talk = talk[_is_in(contacts["channel"], ("call",), talk) & _is_in(contacts["direction"], ("outbound",), talk)]
    talk_at = to_us(started.iloc[talk])
    recent = (talk_at >= last_wrong[marked].min()) & (talk_at < as_of)
    talk, talk_at = talk[recent], talk_at[recent]
    marked_rows = np.flatnonzero(marked[customer_code])
    position = account_codes(contacts["account_id"].iloc[talk], pd.Index(accounts["account_id"]).take(marked_rows))
    found = position >= 0
    last_talk = np.full(n_customers, never)
    np.maximum.at(last_talk, customer_code[marked_rows[position[found]]], talk_at[found])
    return (marked & (last_talk < last_wrong))[customer_code]


def _is_in(values: pd.Series, pool: tuple[str, ...], rows: np.ndarray | None = None) -> np.ndarray:
    """Per row (of `rows` where given, positions): the value is one of `pool`; null is not. A categorical column
    (the loader's contacts) is judged once per category and read by code: tens of millions of rows."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()  # -1: null
        codes = codes if rows is None else codes[rows]
        found = np.zeros(len(codes), dtype=bool)
        for code in np.flatnonzero(values.cat.categories.isin(pool)):  # a few compares beat one lookup table
            found |= codes == code
        return found
    picked = values if rows is None else values.iloc[rows]
    return picked.isin(pool).to_numpy(dtype=bool)


def unmatched_teams(accounts: pd.DataFrame, operations: Operations) -> str | None:
    """One line naming the operations file's teams that no account belongs to and the accounts' teams it
    lacks (their accounts are never called), with counts; None where they match.

    A warning, not an error: one operations file may serve several books. `default`, which takes the
    unassigned accounts, may have none.
    """
    owned = account_teams(accounts).value_counts().sort_index()
    names = [team.team for team in operations.teams]
    idle = [name for name in names if name != DEFAULT_TEAM and name not in owned.index]
    missing = owned[~owned.index.isin(names)]
    parts = []
    if idle:
        parts.append(f"operations teams matching no account: {', '.join(map(repr, idle))}")
    if len(missing):
        counted = ", ".join(f"{team!r} ({count:,} account{'s' * (count != 1)})" for team, count in missing.items())
        parts.append(f"account teams the operations file lacks, never called: {counted}")
    if not parts:
        return None
    folded = {name.casefold() for name in idle} & {str(team).casefold() for team in missing.index}
    return "; ".join(parts) + (" (team names are case-sensitive)" if folded else "")


def find_candidates(
    export: Export,
    operations: Operations,
    list_date: dt.date | str | pd.Timestamp,
    account_scores: pd.DataFrame,
) -> Candidates:
    """Every allowed (account, slot) pair for list date D, with per-customer caps and exclusion counts."""
    rules = operations.policy_rules
    day = as_list_date(list_date)
    accounts = export.accounts.reset_index(drop=True)
    n_accounts = len(accounts)
    account_index = pd.Index(accounts["account_id"])
    excluded: dict[str, int] = {}

    scores = account_scores.drop_duplicates("account_id").set_index("account_id")
    has_score = (
        pd.Index(np.asarray(scores.index, dtype=object)).get_indexer(np.asarray(account_index, dtype=object)) >= 0
    )
    overdue = scores["amount_overdue"].reindex(account_index).fillna(0.0).to_numpy() > 0
    customer_code, _ = pd.factorize(accounts["customer_id"])
    # A null zone is a zone of its own (code -1 would index the last zone); a zone nobody can read (not IANA:
    # `+08:00`, `Factory`, ...) is read as UTC, and its customer's window is shut below, as the guard refuses it.
    zone_code, zones = pd.factorize(accounts["timezone"], use_na_sentinel=False)
    known_zone = np.array([is_valid_timezone(zone) for zone in zones], dtype=bool)
    zones = np.where(known_zone, np.asarray(zones, dtype=object), "UTC").astype(object)
    n_customers = int(customer_code.max()) + 1 if n_accounts else 0
    no_call = customer_no_call(accounts, customer_code)
    special_flags = _flag_values(accounts, SPECIAL_HANDLING_FLAGS)
    special = customer_special(accounts, customer_code)
    team_name = account_teams(accounts)
    team_names = [team.team for team in operations.teams]
    team_code = pd.Index(team_names).get_indexer(team_name)

    alive = has_score.copy()
    excluded["no_score"] = int((~has_score).sum())
    for rule, blocked in (("nothing_overdue", ~overdue), ("no_call_flag", no_call)):
        excluded[rule] = int((alive & blocked).sum())
        alive &= ~blocked
    special_rows = np.flatnonzero(alive & special)
    excluded["special_handling"] = len(special_rows)
    alive &= ~special
    # Withheld accounts are the person's: one of the customer's keeps all of them off (as the guard reads it).
    withheld = (
        customer_any(account_index.isin(list(export.withheld)), customer_code)
        if export.withheld
        else np.zeros(n_accounts, dtype=bool)
    )
    excluded["rejected_rows"] = int((alive & withheld).sum())
    alive &= ~withheld
    wrong_number = customer_wrong_number(export, customer_code)
    excluded["wrong_number"] = int((alive & wrong_number).sum())
    alive &= ~wrong_number
    excluded["unknown_team"] = int((alive & (team_code < 0)).sum())
    alive &= team_code >= 0

    special_handling = _special_handling_frame(accounts, special_rows, special_flags, customer_code, team_name, scores)
    accounts = accounts.assign(team_name=team_name)

    # Open slots: shift hours on D that start at or after as_of and have capacity.
    slots = team_slots(operations, day)
    slots = slots[(slots["call_at"] >= export.as_of) & (slots["capacity"] > 0)].reset_index(drop=True)
    slot_team = pd.Index(team_names).get_indexer(slots["team"])
    slots_per_team = np.bincount(slot_team, minlength=len(team_names))
    team_first = np.r_[0, np.cumsum(slots_per_team)[:-1]]
    has_slot = slots_per_team[np.maximum(team_code, 0)] > 0
    excluded["no_open_slot"] = int((alive & ~has_slot).sum())
    alive &= has_slot

    rows = np.flatnonzero(alive)
    counts = slots_per_team[team_code[rows]]
    account_pos = np.repeat(rows, counts)
    within = np.arange(len(account_pos)) - np.repeat(np.cumsum(counts) - counts, counts)
    slot_id = team_first[team_code[account_pos]] + within

    instants, instant_of_slot = _instants(slots)
    table = local_slot_table(zones, instants)
    zone_set, members, customer_zones = _customer_zone_sets(customer_code, zone_code, len(zones))
    window = in_call_window(table["low_minute"], table["high_minute"], rules) & known_zone[:, None]
    window_by_set = np.zeros((len(members), len(instants)), dtype=bool)  # no members: a book without accounts
    for code, zone_tuple in enumerate(members):
        window_by_set[code] = window[list(zone_tuple)].all(axis=0)

    pair_zone = zone_code[account_pos]
    pair_instant = instant_of_slot[slot_id]
    pair_day = table["day"][pair_zone, pair_instant]
    pair_customer = customer_code[account_pos]
    steps = [("call_window", window_by_set[zone_set[pair_customer], pair_instant])]

    lookback = max(7, rules.quiet_days_after_conversation) + 2
    first_day = int(table["day"].min()) if table["day"].size else day_number(day)
    since = pd.Timestamp(first_day, unit="D", tz="UTC")
    history = _history_calls(export, account_index, since - pd.Timedelta(days=lookback))
    history_pos = history["account_pos"].to_numpy()
    outbound = history["outbound"].to_numpy(dtype=bool)
    conversation = history["talk"].to_numpy(dtype=bool)

    # Days are counted in the debtor's local dates; a customer with accounts in several zones (unsure of
    # the zone) must be allowed in every one of them, as for the call window.
    quiet_ok = np.ones(len(account_pos), dtype=bool)
    attempts_ok = np.ones(len(account_pos), dtype=bool)
    customer_in_zone = np.zeros((len(zones), n_customers), dtype=bool)
    customer_in_zone[customer_zones["zone"].to_numpy(), customer_zones["customer"].to_numpy()] = True
    for zone in range(len(zones)):
        counted = customer_in_zone[zone][pair_customer]  # pairs whose customer lives (maybe) in this zone
        if not counted.any():
            continue
        pair_day = table["day"][zone, pair_instant]
        seen = customer_in_zone[zone][customer_code[history_pos]]
        history_day = np.zeros(len(history), dtype=np.int64)
        history_day[seen] = local_day_numbers(
            history["started_at"][seen], np.zeros(int(seen.sum()), int), [zones[zone]]
        )
        if rules.quiet_days_after_conversation > 0:
            talked = seen & conversation
            last_conversation = np.full(n_accounts, np.iinfo(np.int64).min // 2)
            np.maximum.at(last_conversation, history_pos[talked], history_day[talked])
            quiet_ok &= ~counted | (pair_day - last_conversation[account_pos] >= rules.quiet_days_after_conversation)
        if rules.max_attempts_7d is not None:
            for local_day in np.unique(pair_day[counted]):
                in_window = seen & outbound & (history_day >= local_day - 6) & (history_day <= local_day)
                attempts = np.bincount(history_pos[in_window], minlength=n_accounts)
                on_day = counted & (pair_day == local_day)
                attempts_ok[on_day] &= attempts[account_pos[on_day]] + 1 <= rules.max_attempts_7d
    if rules.quiet_days_after_conversation > 0:
        steps.append(("quiet_period", quiet_ok))
    if rules.max_attempts_7d is not None:
        steps.append(("attempts_7d", attempts_ok))
    pair_remaining = np.full(len(account_pos), NO_LIMIT, dtype=np.int64)
    if rules.max_unanswered_per_day is not None or rules.max_connected_per_day is not None:
        pair_remaining = _customer_day_remaining(
            history, customer_code, customer_zones, zones, table, pair_customer, pair_instant, rules
        )
        steps.append(("customer_daily_limit", pair_remaining > 0))

    keep = np.ones(len(account_pos), dtype=bool)
    for rule, ok in steps:
        before = np.bincount(account_pos[keep], minlength=n_accounts) > 0
        keep = keep & ok
        after = np.bincount(account_pos[keep], minlength=n_accounts) > 0
        excluded[rule] = int((before & ~after).sum())
    for rule in EXCLUSION_RULES:
        excluded.setdefault(rule, 0)

    customer_cap = np.full(n_customers, NO_LIMIT, dtype=np.int64)
    np.minimum.at(customer_cap, pair_customer[keep], pair_remaining[keep])
    return Candidates(
        accounts=accounts,
        slots=slots,
        account_pos=account_pos[keep],
        slot_id=slot_id[keep],
        local_hour=table["hour"][pair_zone[keep], pair_instant[keep]],
        local_weekday=table["weekday"][pair_zone[keep], pair_instant[keep]],
        customer_code=customer_code,
        customer_cap=customer_cap,
        special_handling=special_handling,
        excluded={rule: excluded[rule] for rule in EXCLUSION_RULES},
    )


def _instants(slots: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Distinct slot start instants, and each slot's instant code."""
    codes, uniques = pd.factorize(slots["call_at"])
    return pd.DatetimeIndex(uniques), codes.astype(np.int64)


def _customer_day_remaining(
    history_calls: pd.DataFrame,
    customer_code: np.ndarray,
    customer_zones: pd.DataFrame,
    zones: np.ndarray,
    table: dict[str, np.ndarray],
    pair_customer: np.ndarray,
    pair_instant: np.ndarray,
    rules,
) -> np.ndarray:
    """Calls the list may still add per (customer, slot instant): the tightest customer-local day limit.

    Each history call is dated in every zone of its customer; unanswered counts outbound attempts,
    connected every answered call, the debtor's own (inbound) included. A list call counts as both an
    unanswered and a connected attempt, so the room left is min(unanswered room, connected room).
    """
    max_unanswered = NO_LIMIT if rules.max_unanswered_per_day is None else rules.max_unanswered_per_day
    max_connected = NO_LIMIT if rules.max_connected_per_day is None else rules.max_connected_per_day
    default = min(max_unanswered, max_connected)
    remaining = np.full(len(pair_customer), default, dtype=np.int64)
    if len(history_calls) == 0 or len(pair_customer) == 0:
        return remaining
    no_answer = history_calls["outcome"].isin(UNANSWERED_OUTCOMES).to_numpy()
    declined = history_calls["outcome"].isin(LIMIT_UNANSWERED_OUTCOMES).to_numpy()  # no_answer and hung up
    unknown = ~history_calls["outcome"].isin(VOICE_OUTCOMES).to_numpy()  # maybe unanswered, surely counted
    calls = pd.DataFrame(
        {
            "customer": customer_code[history_calls["account_pos"].to_numpy()],
            "started_at": history_calls["started_at"].array,
            "unanswered": history_calls["outbound"].to_numpy(dtype=bool) & (declined | unknown),
            "connected": ~no_answer,
        }
    ).merge(customer_zones, on="customer")
    calls["day"] = local_day_numbers(calls["started_at"], calls["zone"].to_numpy(), zones)
    per_day = calls.groupby(["customer", "zone", "day"], as_index=False)[["unanswered", "connected"]].sum()
    per_day["room"] = np.minimum(
        max_unanswered - per_day["unanswered"].to_numpy(), max_connected - per_day["connected"].to_numpy()
    )
    n_instants = table["day"].shape[1]
    instant_days = pd.DataFrame(
        {
            "zone": np.repeat(np.arange(len(zones)), n_instants),
            "instant": np.tile(np.arange(n_instants), len(zones)),
            "day": table["day"].ravel(),
        }
    )
    room = per_day.merge(instant_days, on=["zone", "day"]).groupby(["customer", "instant"])["room"].min()
    if room.empty:
        return remaining
    keys = (
        room.index.get_level_values("customer").to_numpy() * n_instants
        + room.index.get_level_values("instant").to_numpy()
    )
    order = np.argsort(keys)
    keys, values = keys[order], room.to_numpy()[order]
    pair_keys = pair_customer * n_instants + pair_instant
    found = np.searchsorted(keys, pair_keys)
    found_clipped = np.minimum(found, len(keys) - 1)
    hit = keys[found_clipped] == pair_keys
    remaining[hit] = np.minimum(default, values[found_clipped[hit]])
    return remaining


def _special_handling_frame(
    accounts: pd.DataFrame,
    rows: np.ndarray,
    special_flags: np.ndarray,
    customer_code: np.ndarray,
    team_name: pd.Series,
    scores: pd.DataFrame,
) -> pd.DataFrame:
    """Accounts for the supervisors' special-handling queue, with the flags that put them there: their own,
    or for another account of a flagged customer, the first flagged account's ("hardship on A1")."""
    names = np.asarray(SPECIAL_HANDLING_FLAGS, dtype=object)
    reason = _join_flags(special_flags[rows], names).to_numpy(dtype=object)
    own = special_flags[rows].any(axis=1)
    if not own.all():
        flagged = np.flatnonzero(special_flags.any(axis=1))
        first = pd.Series(flagged).groupby(customer_code[flagged]).first()
        source = first.reindex(customer_code[rows[~own]]).to_numpy()
        ids = accounts["account_id"].astype(str).to_numpy()[source]
        reason[~own] = [
            f"{flags} on {account}"
            for flags, account in zip(_join_flags(special_flags[source], names), ids, strict=True)
        ]
    picked = accounts.iloc[rows]
    account_ids = picked["account_id"]
    return pd.DataFrame(
        {
            "account_id": account_ids.to_numpy(),
            "customer_id": picked["customer_id"].to_numpy(),
            "team": team_name.iloc[rows].to_numpy(),
            "reason": pd.array(reason.tolist(), dtype="string"),
            "amount_overdue": scores["amount_overdue"].reindex(account_ids).to_numpy(dtype=float),
            "days_past_due": scores["days_past_due"].reindex(account_ids).to_numpy(dtype=np.int64),
        }
    ).astype({"account_id": "string", "customer_id": "string", "team": "string"})


def _join_flags(flags: np.ndarray, names: np.ndarray) -> pd.Series:
    """`;`-joined flag names per row, built once per distinct flag combination."""
    codes = flags.astype(np.int64) @ (1 << np.arange(flags.shape[1]))
    labels = {
        int(code): ";".join(name for bit, name in enumerate(names) if (code >> bit) & 1) for code in np.unique(codes)
    }
    return pd.Series(codes).map(labels)
