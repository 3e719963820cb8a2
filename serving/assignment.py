"""Choose at most one slot per account, within slot capacities and per-group (customer) caps.

Input: candidate edges (account, slot, value) as parallel arrays of dense codes. Output: a
boolean mask over the edges, the calls to make. `assign_exact` solves the problem optimally as a
linear program (seconds up to a few hundred thousand edges); `assign_greedy` scales to millions
of edges; `assign` uses the exact solver up to `EXACT_MAX_EDGES` and the greedy beyond.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

logger = logging.getLogger("callq.assignment")
UNLIMITED = np.iinfo(np.int64).max // 4
# Above this many positive edges `assign` uses the greedy: HiGHS took 0.3 s for 60k edges, 4 s for
# 240k and 41 s for 720k on the 2-core reference machine (the 1,000,000-account bench has ~2M).
EXACT_MAX_EDGES = 250_000


def _check(account, slot, value, slot_capacity, account_group, group_capacity):
    account = np.asarray(account, dtype=np.int64)
    slot = np.asarray(slot, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    slot_capacity = np.asarray(slot_capacity, dtype=np.int64)
    if not (len(account) == len(slot) == len(value)):
        raise ValueError("account, slot and value must have one entry per candidate edge")
    if len(slot) and (slot.min() < 0 or slot.max() >= len(slot_capacity)):
        raise ValueError("slot codes must index slot_capacity")
    if not np.all(np.isfinite(value)):
        raise ValueError("values must be finite")
    n_accounts = int(account.max()) + 1 if len(account) else 0
    if account_group is None:
        group = np.arange(n_accounts, dtype=np.int64)
        caps = np.full(n_accounts, 1, dtype=np.int64)
    else:
        group = np.asarray(account_group, dtype=np.int64)
        caps = np.asarray(group_capacity, dtype=np.int64)
        if len(group) < n_accounts:
            raise ValueError("account_group needs one entry per account code")
    return account, slot, value, slot_capacity, group, caps, n_accounts


def _preferences(account, slot, value):
    """Each account's edges, best first, as a padded matrix of edge indices (-1 = none).

    Edges of one account are ordered by value desc, ties by their input order (the ranker feeds
    them in slot order). Sorting small rows of a matrix is far cheaper than sorting all edges.
    """
    if len(account) > 1 and np.any(account[1:] < account[:-1]):
        grouped = np.argsort(account, kind="stable")
    else:
        grouped = np.arange(len(account))
    grouped_account = account[grouped]
    first = np.r_[0, np.flatnonzero(np.diff(grouped_account)) + 1]
    length = np.diff(np.r_[first, len(grouped)])
    row = np.repeat(np.arange(len(first)), length)
    column = np.arange(len(grouped)) - np.repeat(first, length)
    width = int(length.max())
    keys = np.full((len(first), width), np.inf)
    keys[row, column] = -value[grouped]
    edges = np.full((len(first), width), -1, dtype=np.int64)
    edges[row, column] = grouped
    by_value = np.argsort(keys, axis=1, kind="stable")
    return np.take_along_axis(edges, by_value, axis=1), length


def _deferred_acceptance(account, slot, value, capacity):
    """Edges chosen by the global greedy (value desc, then account) under slot capacities.

    Accounts propose to their best remaining slot; each slot keeps its best `capacity` proposals
    and rejects the rest, who move on. With both sides' preferences induced by one edge order the
    stable matching is unique and equals the greedy one. A proposal below the weakest edge a full
    slot holds is rejected at once (a slot's bar only rises), so later rounds sort little.
    """
    chosen = np.zeros(len(account), dtype=bool)
    if len(account) == 0:
        return chosen
    prefs, length = _preferences(account, slot, value)
    n_rows = len(length)
    pointer = np.zeros(n_rows, dtype=np.int64)
    held = np.zeros(n_rows, dtype=bool)
    row_of_edge = np.empty(len(account), dtype=np.int64)
    valid = prefs >= 0
    row_of_edge[prefs[valid]] = np.nonzero(valid)[0]
    n_slots = len(capacity)
    bar = np.full(n_slots, -np.inf)  # value of the weakest held edge of a full slot
    kept = np.empty(0, dtype=np.int64)  # edge indices currently held
    while True:
        proposing = np.flatnonzero(~held & (pointer < length))
        while len(proposing):
            edge = prefs[proposing, pointer[proposing]]
            hopeless = value[edge] < bar[slot[edge]]
            if not hopeless.any():
                break
            pointer[proposing[hopeless]] += 1
            proposing = proposing[~hopeless | (pointer[proposing] < length[proposing])]
        if len(proposing) == 0:
            break
        pool = np.concatenate([kept, prefs[proposing, pointer[proposing]]])
        pool = pool[np.lexsort((account[pool], -value[pool], slot[pool]))]
        pool_slot = slot[pool]
        first = np.r_[0, np.flatnonzero(np.diff(pool_slot)) + 1]
        sizes = np.diff(np.r_[first, len(pool)])
        within = np.arange(len(pool)) - np.repeat(first, sizes)
        accept = within < capacity[pool_slot]
        kept = pool[accept]
        rejected_rows = row_of_edge[pool[~accept]]
        held[:] = False
        held[row_of_edge[kept]] = True
        pointer[rejected_rows] += 1
        counts = np.bincount(slot[kept], minlength=n_slots)
        weakest = np.full(n_slots, np.inf)
        np.minimum.at(weakest, slot[kept], value[kept])
        bar = np.where((counts >= capacity) & (counts > 0), weakest, -np.inf)
        bar[capacity <= 0] = np.inf
    chosen[kept] = True
    return chosen


def assign_greedy(
    account: np.ndarray,
    slot: np.ndarray,
    value: np.ndarray,
    slot_capacity: np.ndarray,
    account_group: np.ndarray | None = None,
    group_capacity: np.ndarray | None = None,
    repair_rounds: int = 3,
) -> np.ndarray:
    """Greedy assignment by value (at most one edge per account) as a mask over the edges.

    Group caps (calls per customer) are met by passes: each group first offers only its best
    `cap` accounts (by their best edge); later passes offer the next accounts of groups whose
    offered accounts found no slot. Edges with value <= 0 are never chosen. Then up to
    `repair_rounds` rounds of swaps fix the greedy's typical mistakes (see `_repair_swaps`).
    """
    account, slot, value, capacity, group, caps, n_accounts = _check(
        account, slot, value, slot_capacity, account_group, group_capacity
    )
    chosen = np.zeros(len(account), dtype=bool)
    positive = value > 0
    if not positive.any():
        return chosen
    best = np.full(n_accounts, -np.inf)
    np.maximum.at(best, account[positive], value[positive])
    live = np.isfinite(best)  # accounts not yet offered or assigned, with a positive edge
    remaining_slot = capacity.copy()
    remaining_group = caps.copy()
    while True:
        candidates = np.flatnonzero(live & (remaining_group[group[:n_accounts]] > 0))
        if len(candidates) == 0:
            break
        # Within each group, offer the best accounts up to the group's remaining cap.
        order = np.lexsort((candidates, -best[candidates], group[candidates]))
        ranked = candidates[order]
        ranked_group = group[ranked]
        first = np.r_[0, np.flatnonzero(np.diff(ranked_group)) + 1]
        within = np.arange(len(ranked)) - np.repeat(first, np.diff(np.r_[first, len(ranked)]))
        offered = ranked[within < remaining_group[ranked_group]]
        live[offered] = False
        offered_mask = np.zeros(n_accounts, dtype=bool)
        offered_mask[offered] = True
        edges = np.flatnonzero(positive & offered_mask[account] & (remaining_slot[slot] > 0))
        picked = _deferred_acceptance(account[edges], slot[edges], value[edges], remaining_slot)
        picked_edges = edges[picked]
        chosen[picked_edges] = True
        np.subtract.at(remaining_slot, slot[picked_edges], 1)
        np.subtract.at(remaining_group, group[account[picked_edges]], 1)
        if not live.any():
            break
    if repair_rounds:
        chosen = _repair_swaps(account, slot, value, chosen, capacity, group, caps, repair_rounds)
    return chosen


def _best_per_key(keys: np.ndarray, scores: np.ndarray, edges: np.ndarray, size: int):
    """For each key in 0..size-1: the highest score and its edge (-inf / -1 where none)."""
    best = np.full(size, -np.inf)
    where = np.full(size, -1, dtype=np.int64)
    if len(edges):
        order = np.lexsort((edges, -scores, keys))
        first = order[np.r_[True, np.diff(keys[order]) != 0]]
        best[keys[first]] = scores[first]
        where[keys[first]] = edges[first]
    return best, where


def _repair_swaps(account, slot, value, chosen, capacity, group, caps, rounds):
    """Improve a greedy assignment by swaps: an unplaced account u takes a full slot s whose
    cheapest occupant a moves to a slot with room (or is dropped) when v(u,s) > v(a,s) - v(a,t).

    These length-3 augmenting paths are the greedy's typical mistake; each round applies the
    best non-conflicting swaps at once (one per slot, per account, within room left).
    """
    chosen = chosen.copy()
    n_accounts, n_slots = len(group), len(capacity)
    positive = np.flatnonzero(value > 0)
    for _ in range(rounds):
        held = np.flatnonzero(chosen)
        edge_of = np.full(n_accounts, -1, dtype=np.int64)
        edge_of[account[held]] = held
        room = capacity - np.bincount(slot[held], minlength=n_slots)
        group_room = caps - np.bincount(group[account[held]], minlength=len(caps))
        # Where each placed account could go instead: its best edge into a slot with room.
        own = edge_of[account[positive]]
        moves = positive[(own >= 0) & (room[slot[positive]] > 0) & (positive != own)]
        alt_value, alt_edge = _best_per_key(account[moves], value[moves], moves, n_accounts)
        loss = value[held] - np.maximum(alt_value[account[held]], 0.0)
        slot_loss, _ = _best_per_key(slot[held], -loss, held, n_slots)
        _, victim = _best_per_key(slot[held], -loss, held, n_slots)
        slot_loss = -slot_loss
        entering = positive[
            (edge_of[account[positive]] < 0)
            & (group_room[group[account[positive]]] > 0)
            & (room[slot[positive]] <= 0)
            & (victim[slot[positive]] >= 0)
        ]
        gain = value[entering] - slot_loss[slot[entering]]
        good = gain > 1e-12 * np.maximum(1.0, np.abs(value[entering]))
        entering, gain = entering[good], gain[good]
        if len(entering) == 0:
            break
        order = np.argsort(-gain, kind="stable")
        entering = entering[order]
        entering = entering[_first_of_each(slot[entering])]
        entering = entering[_first_of_each(account[entering])]
        entering = entering[_within_room(group[account[entering]], group_room)]
        out = victim[slot[entering]]
        target = alt_edge[account[out]]
        moving = (target >= 0) & (value[np.maximum(target, 0)] > 0)
        fits = np.ones(len(entering), dtype=bool)
        fits[moving] = _within_room(slot[target[moving]], room)
        entering, out, target, moving = entering[fits], out[fits], target[fits], moving[fits]
        chosen[out] = False
        chosen[entering] = True
        chosen[target[moving]] = True
    return chosen


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """Mask keeping the first occurrence of each key (the input is in priority order)."""
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(keys), dtype=bool)
    keep[first] = True
    return keep


def _within_room(keys: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Mask keeping, in priority order, at most room[key] items per key."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    within = np.arange(len(keys)) - np.repeat(first, np.diff(np.r_[first, len(keys)]))
    keep = np.zeros(len(keys), dtype=bool)
    keep[order] = within < room[sorted_keys]
    return keep


@dataclass(frozen=True)
class Assignment:
    """The chosen edges, how they were chosen, and (exact only) the slots' prices."""

    chosen: np.ndarray  # boolean mask over the edges
    method: str  # "exact", "greedy", or "greedy (exact failed: ...)"
    # Exact only: each slot's dual price, what one more seat there would add to the optimum (0 where
    # a seat is free). A left-out edge worth no more than its slot's price cannot improve the optimum.
    slot_price: np.ndarray | None = None


def assign(
    account: np.ndarray,
    slot: np.ndarray,
    value: np.ndarray,
    slot_capacity: np.ndarray,
    account_group: np.ndarray | None = None,
    group_capacity: np.ndarray | None = None,
    exact_max_edges: int = EXACT_MAX_EDGES,
    slot_block: np.ndarray | None = None,
) -> Assignment:
    """The best assignment affordable: exact up to `exact_max_edges` positive edges, else greedy.

    `slot_block` (a block code per slot, e.g. its team; an account's edges must all lie in one block)
    lets a day too large for one solve be solved block by block when every block is small enough:
    optimal within each block, the blocks sharing the group caps in block order. When the solver
    does not answer, the greedy's answer is used, so a day's list never depends on it.
    """
    method = "greedy"
    positive = np.asarray(value) > 0
    blocks = [np.arange(len(positive))]
    if int(positive.sum()) > exact_max_edges and slot_block is not None:
        edge_block = np.asarray(slot_block)[np.asarray(slot)]
        blocks = [np.flatnonzero(edge_block == block) for block in np.unique(edge_block[positive])]
    if all(int(positive[edges].sum()) <= exact_max_edges for edges in blocks):
        try:
            return _solve_by_blocks(account, slot, value, slot_capacity, account_group, group_capacity, blocks)
        except RuntimeError as error:
            method = f"greedy (exact failed: {error})"
            logger.warning("the exact assignment failed (%s); the greedy's assignment is used", error)
    return Assignment(assign_greedy(account, slot, value, slot_capacity, account_group, group_capacity), method)


def _solve_by_blocks(account, slot, value, slot_capacity, account_group, group_capacity, blocks) -> Assignment:
    """Exact per block of edges, in order; each block sees the group caps the earlier ones left."""
    account, slot, value, capacity, group, caps, n_accounts = _check(
        account, slot, value, slot_capacity, account_group, group_capacity
    )
    chosen = np.zeros(len(account), dtype=bool)
    price = np.zeros(len(capacity))
    caps = caps.copy()
    for edges in blocks:
        picked, block_price = _solve_exact(account[edges], slot[edges], value[edges], capacity, group, caps)
        chosen[edges[picked]] = True
        used = np.unique(slot[edges])
        price[used] = block_price[used]
        np.subtract.at(caps, group[account[edges[picked]]], 1)
    return Assignment(chosen, "exact" if len(blocks) == 1 else f"exact in {len(blocks)} blocks", price)


def assign_exact(
    account: np.ndarray,
    slot: np.ndarray,
    value: np.ndarray,
    slot_capacity: np.ndarray,
    account_group: np.ndarray | None = None,
    group_capacity: np.ndarray | None = None,
) -> np.ndarray:
    """The value-maximising assignment, from its linear program (HiGHS), as a mask over the edges.

    The constraint rows form two laminar families (accounts within groups; slots), so the matrix
    is totally unimodular and every vertex of the LP is integral: the LP optimum is the integer
    optimum, without branch and bound (a MIP solver took 40x longer on the same instances). The
    integrality of the answer is checked all the same.
    """
    return _solve_exact(account, slot, value, slot_capacity, account_group, group_capacity)[0]


def _solve_exact(account, slot, value, slot_capacity, account_group, group_capacity) -> tuple[np.ndarray, np.ndarray]:
    account, slot, value, capacity, group, caps, n_accounts = _check(
        account, slot, value, slot_capacity, account_group, group_capacity
    )
    chosen = np.zeros(len(account), dtype=bool)
    edges = np.flatnonzero(value > 0)
    if len(edges) == 0:
        return chosen, np.zeros(len(capacity))
    n_edges = len(edges)
    n_slots = len(capacity)
    columns = np.arange(n_edges)
    rows = [
        sparse.csr_array((np.ones(n_edges), (account[edges], columns)), shape=(n_accounts, n_edges)),
        sparse.csr_array((np.ones(n_edges), (slot[edges], columns)), shape=(n_slots, n_edges)),
        sparse.csr_array((np.ones(n_edges), (group[account[edges]], columns)), shape=(len(caps), n_edges)),
    ]
    upper = np.concatenate([np.ones(n_accounts), capacity, np.minimum(caps, n_edges)]).astype(float)
    result = linprog(-value[edges], A_ub=sparse.vstack(rows).tocsr(), b_ub=upper, bounds=(0, 1), method="highs")
    if result.status != 0 or result.x is None:
        raise RuntimeError(f"exact assignment failed: {result.message}")
    if np.abs(result.x - np.round(result.x)).max() > 1e-6:
        raise RuntimeError("exact assignment: the LP answer is not integral")
    chosen[edges[result.x > 0.5]] = True
    # linprog minimises -value: a slot row's marginal is minus the price of a seat there.
    price = np.maximum(-result.ineqlin.marginals[n_accounts : n_accounts + n_slots], 0.0)
    return _earliest_among_ties(account, slot, value, chosen, capacity, n_accounts), price


def _earliest_among_ties(account, slot, value, chosen, capacity, n_accounts) -> np.ndarray:
    """Move each call to its account's lowest slot code of equal value that has room.

    The LP returns any of the optimal vertices; the greedy breaks ties toward lower slot codes,
    which the ranker numbers in time order, so among equally valuable hours the earlier wins.
    The total value does not change.
    """
    tolerance = 1e-12 * max(float(np.abs(value).max(initial=0.0)), 1.0)
    current = np.full(n_accounts, -1, dtype=np.int64)
    current[account[chosen]] = np.flatnonzero(chosen)
    mine = current[account]
    earlier = np.flatnonzero((mine >= 0) & (slot < slot[np.maximum(mine, 0)]) & (value >= value[mine] - tolerance))
    if len(earlier) == 0:
        return chosen
    room = capacity - np.bincount(slot[chosen], minlength=len(capacity))
    # Earliest targets first: a move frees a later slot, which later targets may then use.
    for edge in earlier[np.lexsort((account[earlier], slot[earlier]))]:
        held = current[account[edge]]
        if slot[edge] < slot[held] and value[edge] >= value[held] - tolerance and room[slot[edge]] > 0:
            chosen[held], chosen[edge] = False, True
            room[slot[held]] += 1
            room[slot[edge]] -= 1
            current[account[edge]] = edge
    return chosen
