"""Call slots of a list date: each team's whole shift hours, and what those hours are for a debtor.

A slot is one whole centre-local hour of a team's shift on the list date D. Its start `call_at`
is a UTC instant; the debtor-local hour, weekday and date of that instant follow from the
account's IANA zone. Conversions run once per (zone, instant), never once per account.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from features.contract import Operations, PolicyRules
from features.timeline import US_PER_DAY, local_dates, to_us

UTC_DTYPE = "datetime64[us, UTC]"
_EPOCH = pd.Timestamp("1970-01-01")


def as_list_date(list_date: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    """The centre-local list date as a naive midnight Timestamp (rejects aware timestamps)."""
    stamp = pd.Timestamp(list_date)
    if stamp.tzinfo is not None:
        raise ValueError(f"list_date must be a calendar date, got the instant {stamp}")
    return stamp.normalize()


def day_number(days: pd.Series | pd.DatetimeIndex | pd.Timestamp) -> np.ndarray | int:
    """Days since 1970-01-01 of naive calendar dates (the integer form used to count day windows)."""
    if isinstance(days, pd.Timestamp):
        return int((days.normalize() - _EPOCH).days)
    index = pd.DatetimeIndex(days)
    return ((index.normalize() - _EPOCH) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)


def team_slots(operations: Operations, list_date: dt.date | str | pd.Timestamp) -> pd.DataFrame:
    """One row per (team, whole shift hour) on centre-local date D: team, centre_hour, call_at, capacity.

    Rows come in the operations' team order, then in time order: a lower row is an earlier hour
    of the same team (the assignment breaks ties toward lower rows). A shift past midnight keeps
    its morning hours on D's list (`centre_hour` is the clock hour, 0-23).

    DST: an hour that does not exist on D (spring forward) has no slot; an hour that occurs twice
    (fall back) is taken at its first occurrence, so each shift hour is one slot.
    """
    day = as_list_date(list_date)
    teams, hours = [], []
    for team in operations.teams:
        for hour in team.shift.whole_hours():
            teams.append(team.team)
            hours.append(hour)
    naive = pd.DatetimeIndex([day + pd.Timedelta(hours=hour) for hour in hours], dtype="datetime64[us]")
    local = naive.tz_localize(operations.centre_timezone, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="NaT")
    capacity = {team.team: team.hourly_capacity for team in operations.teams}
    slots = pd.DataFrame(
        {
            "team": pd.array(teams, dtype="string"),
            "centre_hour": np.asarray(hours, dtype=np.int64) % 24,
            "call_at": local.tz_convert("UTC").astype(UTC_DTYPE),
            "capacity": np.asarray([capacity[name] for name in teams], dtype=np.int64),
        }
    )
    return slots.dropna(subset=["call_at"]).reset_index(drop=True)


def local_slot_table(zones: list[str] | np.ndarray, instants: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Debtor-local view of every (zone, instant): arrays shaped [len(zones), len(instants)].

    Keys: `day` (local date as a day number), `hour`, `weekday` (Mon=0), and `low_minute` and
    `high_minute`: the earliest and the latest minute of the day (0-1439) the debtor's
    clock shows at the start of each of the slot's 60 minutes, read one by one, so a clock that jumps
    inside the hour, or at its very end, is read as the debtor saw it (a slot crossing the debtor's
    midnight shows both 1439 and 0).
    """
    instants = pd.DatetimeIndex(instants).tz_convert("UTC")
    shape = (len(zones), len(instants))
    out = {key: np.zeros(shape, dtype=np.int64) for key in ("day", "hour", "weekday", "low_minute", "high_minute")}
    # Every minute of every slot, instant-major: transitions fall on whole minutes, so each minute reads on.
    minutes = pd.DatetimeIndex(
        (instants.as_unit("us").asi8[:, None] + np.arange(60) * 60_000_000).ravel().view("datetime64[us]")
    ).tz_localize("UTC")
    for row, zone in enumerate(zones):
        start = instants.tz_convert(zone)
        out["day"][row] = day_number(start.tz_localize(None))
        out["hour"][row] = start.hour
        out["weekday"][row] = start.day_of_week
        clock = minutes.tz_convert(zone)
        read = (clock.hour * 60 + clock.minute).to_numpy(dtype=np.int64).reshape(len(instants), 60)
        out["low_minute"][row] = read.min(axis=1, initial=1439)
        out["high_minute"][row] = read.max(axis=1, initial=0)
    return out


def in_call_window(low_minute: np.ndarray, high_minute: np.ndarray, rules: PolicyRules) -> np.ndarray:
    """Whether the whole slot lies inside the policy's debtor-local window (start and end inclusive).

    `low_minute` and `high_minute` (`local_slot_table`) are the earliest and the latest minute of the day the
    debtor's clock shows during the slot, minute by minute: each minute [m, m + 1) must lie in the window.
    A clock set back inside the hour reads some minutes twice (on Easter Island the hour from 21:15 (-05)
    reads 21:15-21:59, then 21:00-21:14 (-06)); one that springs forward skips some (the hour from 21:00
    (-06) that ends as the clock jumps to 23:00 (-05) never reads 22:00). A slot across the debtor's
    midnight reads 23:xx and 00:xx: only an all-day window (00:00-24:00) holds it.
    """
    first, last = rules.call_window_start * 60, rules.call_window_end * 60
    return (low_minute >= first) & (high_minute + 1 <= last)


def local_day_numbers(utc: pd.Series, zone_code: np.ndarray, zones: list[str] | np.ndarray) -> np.ndarray:
    """Local calendar day number (`day_number`) of each UTC instant in the zone `zones[zone_code[i]]`."""
    return local_dates(to_us(utc), np.asarray(zone_code), list(zones)) // US_PER_DAY
