"""The one time rule: point-in-time lookups over events sorted by (account, time).

Every feature family goes through `Stream.before`, which counts the events of a group that
happened strictly before a query time. Times are int64 microseconds since the epoch (UTC),
money is int64 cents, so counts and sums are exact and deterministic.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import is_valid_timezone

US_PER_DAY = 86_400_000_000


def to_us(values: pd.Series) -> np.ndarray:
    """int64 microseconds since the epoch (UTC) of a date or timestamp column."""
    series = pd.Series(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.astype("datetime64[us]").to_numpy().view("int64")


def to_cents(values: pd.Series) -> np.ndarray:
    """Money as exact int64 cents (the contract allows at most 2 decimals)."""
    return np.rint(np.asarray(values, dtype="float64") * 100.0).astype("int64")


def day_floor(time_us: np.ndarray) -> np.ndarray:
    """The UTC midnight of each time, in microseconds."""
    return time_us - np.mod(time_us, US_PER_DAY)


# Ids per thread below which `account_codes` does not split the lookup.
PARALLEL_CODES_ROWS = 2_000_000


def account_codes(account_ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Row of each id in the accounts table (-1 for ids the accounts table lacks).

    Arrow hashing (no Python object per row): tens of millions of event ids take seconds.
    """
    values = pa.array(pd.Series(account_ids).astype("string").array)
    value_set = pa.array(pd.Series(index).astype("string").array).cast(values.type)  # the small side

    def codes_of(part: pa.Array) -> np.ndarray:
        codes = pc.index_in(part, value_set=value_set)
        return codes.fill_null(-1).to_numpy(zero_copy_only=False).astype("int64")

    # Arrow releases the GIL while it hashes: long columns are looked up in pieces, one per core.
    pieces = min(pa.cpu_count(), len(values) // PARALLEL_CODES_ROWS)
    if pieces < 2:
        return codes_of(values)
    bounds = np.linspace(0, len(values), pieces + 1).astype(int)
    with ThreadPoolExecutor(pieces) as pool:
        parts = list(pool.map(codes_of, [values.slice(start, end - start) for start, end in pairwise(bounds)]))
    return np.concatenate(parts)


@dataclass(frozen=True)
class Snapshots:
    """The (account, as_of) pairs to compute features for, as arrays in snapshot order."""

    account: np.ndarray  # int64 row in the accounts table
    as_of: np.ndarray  # int64 µs UTC
    as_of_day: np.ndarray  # int64 µs of the UTC date of as_of (dues compare against it)
    local_day: np.ndarray  # int64 µs of the debtor-local date of as_of (the debtor's own dates compare against it)

    def __len__(self) -> int:
        return len(self.account)


class Stream:
    """Events of one kind, sorted by (group, time), with exact strictly-before lookups.

    `group` is usually the account row; any non-negative int64 works (e.g. account × bucket).
    Columns passed as keyword arguments come back in the same sorted order in `columns`.
    """

    def __init__(self, group: np.ndarray, time: np.ndarray, n_groups: int, **columns: np.ndarray) -> None:
        group = np.asarray(group, dtype="int64")
        time = np.asarray(time, dtype="int64")
        keep = group >= 0
        if not keep.all():
            group, time = group[keep], time[keep]
            columns = {name: np.asarray(col)[keep] for name, col in columns.items()}
        order = sort_order(group, time)
        if order is not None:
            group, time = group[order], time[order]
            columns = {name: np.asarray(col)[order] for name, col in columns.items()}
        self.group = group
        self.time = time
        self.n_groups = int(n_groups)
        if len(group) and group[-1] >= self.n_groups:
            raise ValueError(f"event group {int(group[-1])} is outside the stream's {self.n_groups} groups")
        self.columns = {name: np.asarray(col) for name, col in columns.items()}
        # Position of each group's first event, then one past the last group's (n_groups + 1 entries).
        self.offsets = np.zeros(self.n_groups + 1, dtype="int64")
        np.cumsum(np.bincount(group, minlength=self.n_groups), out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.time)

    def _runs(self, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end position of each queried group's run of events."""
        group = np.asarray(group, dtype="int64")
        if len(group) and (group.min() < 0 or group.max() >= self.n_groups):
            raise ValueError(f"query groups must lie in [0, {self.n_groups})")
        return self.offsets[group], self.offsets[group + 1]

    def before(self, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Global end position of each group's events strictly before `time` (vectorised).

        A binary search inside each queried group's run of events, all queries a step at a time: as
        many steps as the longest run needs (~7 for a year of calls), whatever the query times.
        """
        time = np.asarray(time, dtype="int64")
        low, high = self._runs(group)
        last = max(len(self.time) - 1, 0)
        for _ in range(int(np.max(high - low, initial=0)).bit_length()):
            middle = (low + high) >> 1
            earlier = (low < high) & (self.time[np.minimum(middle, last)] < time)
            low = np.where(earlier, middle + 1, low)
            high = np.where(earlier, high, middle)
        return low

    def start(self, group: np.ndarray) -> np.ndarray:
        """Global position of each group's first event."""
        return self._runs(group)[0]

    def end(self, group: np.ndarray) -> np.ndarray:
        """Global position just past each group's last event."""
        return self._runs(group)[1]

    def cumulative(self, values: np.ndarray) -> np.ndarray:
        """Prefix sums with a leading zero: the sum over [i, j) is cum[j] - cum[i]."""
        values = np.asarray(values)
        dtype = "float64" if values.dtype.kind == "f" else "int64"
        out = np.zeros(len(values) + 1, dtype=dtype)
        np.cumsum(values, out=out[1:])
        return out

    def windows(
        self, group: np.ndarray, end_time: np.ndarray, days: tuple[int, ...]
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """End position before `end_time` and start position of each [end - days, end) window."""
        n = len(group)
        starts_at = [end_time - d * US_PER_DAY for d in days]
        positions = self.before(np.tile(group, len(days) + 1), np.concatenate([end_time, *starts_at]))
        return positions[:n], {d: positions[(i + 1) * n : (i + 2) * n] for i, d in enumerate(days)}

    def last_time(self, group: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Time of the group's last event before position `end` (NaN-free: -1 where none)."""
        has = end > self.start(group)
        out = np.full(len(group), -1, dtype="int64")
        out[has] = self.time[end[has] - 1]
        return out


def sort_order(group: np.ndarray, time: np.ndarray) -> np.ndarray | None:
    """Permutation that sorts by (group, time), or None when already sorted (common for exports)."""
    if len(group) < 2:
        return None
    if _is_sorted(group, time):
        return None
    order = _packed_order(group, time)
    if order is not None and _is_sorted(group, time, order):
        return order
    # Times closer than the packed time unit can come out of order: then fall back to lexsort.
    return np.lexsort((time, group))


def _packed_order(group: np.ndarray, time: np.ndarray) -> np.ndarray | None:
    """Order by (group, coarsened time, row), from sorts of packed int64 keys; None when keys overflow.

    numpy sorts int64 values with SIMD kernels, ~20x faster than a stable argsort of the same keys.
    Packing the row number into a key's low bits makes the sort stable and gives the permutation
    back: first by (time, row) unless the rows are in time order already (the usual export), then by
    (group, that position). A year of contacts for 1M accounts: ~3 s against 8.
    """
    n = len(group)
    row_bits = max(int(n - 1).bit_length(), 1)
    low = int(time.min())
    # The finest power-of-two time unit whose ticks fit beside the row number (a year of 50M events:
    # 256 µs); a shift, not a division.
    shift = max((int(time.max()) - low).bit_length() - (63 - row_bits), 0)
    if int(group.max()) >= 1 << (63 - row_bits):
        return None
    ticks = (time - low) >> shift
    mask = np.int64((1 << row_bits) - 1)
    rows = np.arange(n, dtype="int64")
    by_time = None
    if not _is_sorted(None, time):
        ticks <<= row_bits
        ticks |= rows
        ticks.sort()
        ticks &= mask
        by_time = ticks
    del ticks
    key = (group if by_time is None else group[by_time]) << row_bits
    key |= rows
    del rows
    key.sort()
    key &= mask
    return key if by_time is None else by_time[key]


# Sortedness is checked this many rows at a time: whole-array differences (and, through a
# permutation, whole gathered copies) of 50 million events cost gigabytes at the feature build's peak.
_SORTED_CHUNK = 1 << 22


def _is_sorted(group: np.ndarray | None, time: np.ndarray, order: np.ndarray | None = None) -> bool:
    """Whether (group, time) (time alone when `group` is None) is non-decreasing, as stored or read
    through the permutation `order`."""
    n = len(time)
    for start in range(0, max(n - 1, 0), _SORTED_CHUNK):
        rows = slice(start, min(start + _SORTED_CHUNK + 1, n))
        if order is not None:
            rows = order[rows]
        time_ok = np.diff(time[rows]) >= 0
        if group is None:
            if not time_ok.all():
                return False
            continue
        group_step = np.diff(group[rows])
        if not ((group_step >= 0).all() and ((group_step > 0) | time_ok).all()):
            return False
    return True


def days_between(later_us: np.ndarray, earlier_us: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(later - earlier) in fractional days, NaN where not `valid`."""
    out = (later_us - earlier_us) / US_PER_DAY
    return np.where(valid, out, np.nan)


def _by_zone(zone_code: np.ndarray, zones: list[str]):
    """(zone, rows) for each zone code present, grouped with one radix sort; an unknown zone reads as UTC."""
    codes = np.asarray(zone_code, dtype="int16" if len(zones) < 2**15 else "int32")
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(zones) + 1))
    for z, zone in enumerate(zones):
        rows = order[bounds[z] : bounds[z + 1]]
        if len(rows):
            yield (zone if is_valid_timezone(zone) else "UTC"), rows


def local_dates(time_us: np.ndarray, zone_code: np.ndarray, zones: list[str]) -> np.ndarray:
    """The debtor-local calendar date of UTC times, as µs of that date's midnight (as `to_us` of a date)."""
    out = np.zeros(len(time_us), dtype="int64")
    for zone, rows in _by_zone(zone_code, zones):
        stamps = pd.DatetimeIndex(time_us[rows].view("datetime64[us]"), tz="UTC")
        wall = stamps.tz_convert(zone).tz_localize(None).as_unit("us").asi8
        out[rows] = wall - np.mod(wall, US_PER_DAY)
    return out


def local_midnights(day_us: np.ndarray, zone_code: np.ndarray, zones: list[str]) -> np.ndarray:
    """The UTC instant (µs) at which each date (µs of its midnight) begins in the debtor's zone.

    Where a zone skips its midnight (a DST change at 00:00) the day begins at the first instant after
    the gap; where midnight happens twice, at the first of them."""
    out = np.zeros(len(day_us), dtype="int64")
    for zone, rows in _by_zone(zone_code, zones):
        wall = pd.DatetimeIndex(day_us[rows].view("datetime64[us]"))
        local = wall.tz_localize(zone, ambiguous=np.ones(len(rows), dtype=bool), nonexistent="shift_forward")
        out[rows] = local.tz_convert("UTC").as_unit("us").asi8
    return out


def local_parts(time_us: np.ndarray, zone_code: np.ndarray, zones: list[str]) -> tuple[np.ndarray, ...]:
    """Debtor-local (hour, weekday 0=Mon, day of month) of UTC times.

    Vectorised per zone: events are grouped by zone code with one radix sort, and each
    zone's slice is converted at once. Unknown zones fall back to UTC (validate reports them).
    """
    n = len(time_us)
    hour = np.zeros(n, dtype="int8")
    weekday = np.zeros(n, dtype="int8")
    day = np.zeros(n, dtype="int8")
    for zone, rows in _by_zone(zone_code, zones):
        local = pd.DatetimeIndex(time_us[rows].view("datetime64[us]"), tz="UTC").tz_convert(zone)
        hour[rows] = local.hour
        weekday[rows] = local.day_of_week
        day[rows] = local.day
    return hour, weekday, day


def account_zones(accounts: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Zone code of every account row and the list of zone names (sorted, deterministic)."""
    codes, names = pd.factorize(accounts["timezone"].astype("string").fillna("UTC"), sort=True)
    return codes.astype("int64"), [str(name) for name in names]
