"""Stream's point-in-time lookups against a brute-force count, on runs of every shape."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.timeline import Stream


def brute_before(stream: Stream, group: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Position just past the group's last event strictly before the time, one query at a time."""
    out = []
    for g, t in zip(group, time, strict=True):
        mine = np.flatnonzero(stream.group == g)
        earlier = mine[stream.time[mine] < t]
        out.append(earlier[-1] + 1 if len(earlier) else np.searchsorted(stream.group, g, side="left"))
    return np.array(out, dtype="int64")


@settings(max_examples=200, deadline=None)
@given(
    n_groups=st.integers(1, 6),
    events=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), max_size=40),
    queries=st.lists(st.tuples(st.integers(0, 5), st.integers(-1, 10)), max_size=30),
)
def test_before_start_and_end_match_a_brute_force_count(n_groups, events, queries) -> None:
    # Few distinct times, so ties between an event and a query (an event AT the query time is not
    # before it) are common; groups without events, and one group holding them all, both occur.
    events = [(g % n_groups, t) for g, t in events]
    queries = [(g % n_groups, t) for g, t in queries]
    group = np.array([g for g, _ in events], dtype="int64")
    time = np.array([t for _, t in events], dtype="int64")
    stream = Stream(group, time, n_groups, value=np.arange(len(events)))
    query_group = np.array([g for g, _ in queries], dtype="int64")
    query_time = np.array([t for _, t in queries], dtype="int64")

    assert np.array_equal(stream.before(query_group, query_time), brute_before(stream, query_group, query_time))
    assert np.array_equal(stream.start(query_group), np.searchsorted(stream.group, query_group, side="left"))
    assert np.array_equal(stream.end(query_group), np.searchsorted(stream.group, query_group, side="right"))
    # Columns travel in the events' sorted order.
    assert np.array_equal(time[stream.columns["value"]], stream.time)


def test_before_with_a_long_run_and_a_distinct_time_per_query() -> None:
    rng = np.random.default_rng(3)
    group = np.concatenate([np.zeros(5_000, dtype="int64"), rng.integers(1, 50, 2_000)])
    time = rng.integers(0, 10**12, len(group))
    stream = Stream(group, time, 50)
    query_group = rng.integers(0, 50, 300)
    query_time = np.where(rng.random(300) < 0.3, time[rng.integers(0, len(time), 300)], rng.integers(0, 10**12, 300))
    assert np.array_equal(stream.before(query_group, query_time), brute_before(stream, query_group, query_time))


def test_groups_outside_the_stream_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the stream's 2 groups"):
        Stream(np.array([0, 2]), np.array([1, 1]), 2)
    stream = Stream(np.array([0, 1]), np.array([1, 1]), 2)
    for bad in ([-1], [2]):
        with pytest.raises(ValueError, match=r"query groups must lie in \[0, 2\)"):
            stream.before(np.array(bad), np.array([5]))
    assert np.array_equal(stream.before(np.array([], dtype="int64"), np.array([], dtype="int64")), [])
