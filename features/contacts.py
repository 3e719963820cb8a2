"""Contact features: how often the debtor is tried and reached, and at which local hours.

An attempt is an outbound `call`; a right-party contact (RPC) is an attempt whose outcome is
in `RIGHT_PARTY_OUTCOMES`. Hours and weekdays are local to the debtor (accounts.timezone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import RIGHT_PARTY_OUTCOMES, Export
from features.timeline import Snapshots, Stream, account_codes, days_between, local_parts, sort_order, to_us

CALL_WINDOWS = (7, 30, 90)
# Debtor-local hour buckets: bucket -> [start hour, end hour). Every other hour is bucket 6.
HOUR_BUCKETS: dict[int, tuple[int, int]] = {
    0: (8, 10),
    1: (10, 12),
    2: (12, 14),
    3: (14, 17),
    4: (17, 19),
    5: (19, 22),
}
OTHER_HOUR_BUCKET = 6
N_HOUR_BUCKETS = 7
N_WEEKDAYS = 7
N_HOURS = 24
# Prior strength of a debtor's exact-hour rate: an hour holds few calls, so lighter than the buckets'.
HOUR_SMOOTHING_ATTEMPTS = 3.0
# Empirical-Bayes prior strength: a debtor's bucket rate counts like k extra portfolio attempts.
SMOOTHING_ATTEMPTS = 5.0

_BUCKET_OF_HOUR = np.full(24, OTHER_HOUR_BUCKET, dtype="int8")
for _bucket, (_start, _end) in HOUR_BUCKETS.items():
    _BUCKET_OF_HOUR[_start:_end] = _bucket


def hour_bucket(local_hour: int | np.ndarray) -> int | np.ndarray:
    """Bucket of a debtor-local hour 0-23 (scalar or array), after `HOUR_BUCKETS`."""
    if np.ndim(local_hour) == 0:
        return int(_BUCKET_OF_HOUR[int(local_hour)])
    return _BUCKET_OF_HOUR[np.asarray(local_hour, dtype="int64")]


@dataclass(frozen=True)
class ContactHistory:
    """Outbound calls (the attempts) and every other contact, each sorted by (account, time)."""

    calls: Stream  # columns: rpc, wrong, refusal (bool), bucket, hour, weekday (int8)
    other: Stream  # columns: wrong, refusal, inbound (bool)
    last_rpc_position: np.ndarray  # per call: position of the latest RPC at or before it, -1 if none
    customer: np.ndarray  # per account row: code of its customer (the person who answers the phone)


def build_contact_history(
    export: Export, index: pd.Index, zone_of_account: np.ndarray, zones: list[str]
) -> ContactHistory:
    """Split contacts into outbound calls and the rest, with outcome indicators and local parts."""
    contacts = export.contacts
    n = len(index)
    codes = account_codes(contacts["account_id"], index)
    time = to_us(contacts["started_at"])
    # Compared as they are (string or the loader's categorical): a cast to string would copy ~50M values.
    outcome = contacts["outcome"]
    is_call = ((contacts["channel"] == "call") & (contacts["direction"] == "outbound")).fillna(False)
    is_call = is_call.to_numpy(dtype=bool) & (codes >= 0)
    rpc = outcome.isin(RIGHT_PARTY_OUTCOMES).fillna(False).to_numpy(dtype=bool)
    wrong = (outcome == "wrong_number").fillna(False).to_numpy(dtype=bool)
    refusal = outcome.isin(("refused", "dispute")).fillna(False).to_numpy(dtype=bool)
    promise = (outcome == "promise_to_pay").fillna(False).to_numpy(dtype=bool)
    inbound = (contacts["direction"] == "inbound").fillna(False).to_numpy(dtype=bool)
    # One sort of every contact by (account, time): the calls and the rest are then subsets already in
    # order, and neither stream sorts its own copy (a year of contacts for 1M accounts: ~1 GiB less).
    order = sort_order(codes, time)
    if order is not None:  # one array at a time, so each unsorted one is freed before the next is copied
        codes = codes[order]
        time = time[order]
        # The six flags travel as the bits of one byte: one gather through the permutation, not six.
        flags = np.zeros(len(order), dtype="uint8")
        for bit, flag in enumerate((is_call, rpc, wrong, refusal, promise, inbound)):
            flags |= flag.astype("uint8") << bit
        flags = flags[order]
        del order
        is_call, rpc, wrong, refusal, promise, inbound = ((flags >> bit) & 1 == 1 for bit in range(6))
    hour, weekday, _ = local_parts(time[is_call], zone_of_account[codes[is_call]], zones)
    calls = Stream(
        codes[is_call],
        time[is_call],
        n,
        rpc=rpc[is_call],
        wrong=wrong[is_call],
        refusal=refusal[is_call],
        promise=promise[is_call],
        bucket=hour_bucket(hour),
        hour=hour,
        weekday=weekday,
    )
    rest = ~is_call
    other = Stream(codes[rest], time[rest], n, wrong=wrong[rest], refusal=refusal[rest], inbound=inbound[rest])
    positions = np.where(calls.columns["rpc"], np.arange(len(calls)), -1)
    customer = pd.factorize(export.accounts["customer_id"].astype("string").to_numpy())[0].astype("int64")
    return ContactHistory(calls, other, np.maximum.accumulate(positions) if len(positions) else positions, customer)


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def call_attempts_and_rpc(history: ContactHistory, snaps: Snapshots) -> dict[str, np.ndarray]:
    """call_attempts_{7,30,90}d, rpc_{7,30,90}d and rpc_rate_{7,30,90}d (NaN without attempts); and of
    the right-party calls in all history before as_of, rpc_promise_share (ending in a promise) and
    rpc_refusal_share (refused or disputed), NaN without a right-party call."""
    calls = history.calls
    end, starts = calls.windows(snaps.account, snaps.as_of, CALL_WINDOWS)
    rpc = calls.columns["rpc"]
    rpc_cum = calls.cumulative(rpc.astype("int64"))
    out = {}
    for days in CALL_WINDOWS:
        attempts = end - starts[days]
        reached = rpc_cum[end] - rpc_cum[starts[days]]
        out[f"call_attempts_{days}d"] = attempts
        out[f"rpc_{days}d"] = reached
        out[f"rpc_rate_{days}d"] = _rate(reached, attempts)
    first = calls.start(snaps.account)
    reached = rpc_cum[end] - rpc_cum[first]
    for column, name in (("promise", "rpc_promise_share"), ("refusal", "rpc_refusal_share")):
        cum = calls.cumulative((calls.columns[column] & rpc).astype("int64"))
        out[name] = _rate(cum[end] - cum[first], reached)
    return out


def recency_and_streak(history: ContactHistory, snaps: Snapshots) -> dict[str, np.ndarray]:
    """days_since_last_rpc, days_since_last_call_attempt, unanswered_streak (attempts since the last RPC)."""
    calls = history.calls
    end = calls.before(snaps.account, snaps.as_of)
    start = calls.start(snaps.account)
    any_call = end > start
    last = np.where(any_call, history.last_rpc_position[np.maximum(end - 1, 0)] if len(calls) else -1, -1)
    reached = any_call & (last >= start)
    last_rpc_time = np.where(reached, calls.time[np.maximum(last, 0)] if len(calls) else 0, 0)
    return {
        "days_since_last_rpc": days_between(snaps.as_of, last_rpc_time, reached),
        "days_since_last_call_attempt": days_between(snaps.as_of, calls.last_time(snaps.account, end), any_call),
        "unanswered_streak": np.where(reached, end - 1 - last, end - start),
    }


def outcome_counts_90d(history: ContactHistory, snaps: Snapshots) -> dict[str, np.ndarray]:
    """wrong_numbers_90d, refusals_disputes_90d (any contact) and inbound_contacts_90d."""
    out: dict[str, np.ndarray] = {
        "wrong_numbers_90d": np.zeros(len(snaps), "int64"),
        "refusals_disputes_90d": np.zeros(len(snaps), "int64"),
        "inbound_contacts_90d": np.zeros(len(snaps), "int64"),
    }
    for stream in (history.calls, history.other):
        end, starts = stream.windows(snaps.account, snaps.as_of, (90,))
        for column, name in (
            ("wrong", "wrong_numbers_90d"),
            ("refusal", "refusals_disputes_90d"),
            ("inbound", "inbound_contacts_90d"),
        ):
            if column in stream.columns:
                cum = stream.cumulative(stream.columns[column].astype("int64"))
                out[name] = out[name] + cum[end] - cum[starts[90]]
    return out


def _account_counts(calls: Stream, seen: np.ndarray, column: str, width: int) -> np.ndarray:
    """Calls per (account, part of `column`, reached or not) among the `seen` calls: groups x width x 2."""
    key = (calls.group[seen] * width + calls.columns[column][seen]) * 2 + calls.columns["rpc"][seen].astype("int64")
    return np.bincount(key, minlength=calls.n_groups * width * 2).reshape(calls.n_groups, width, 2)


def _customer_hour_counts(history: ContactHistory, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calls and right-party contacts per (customer, local hour) among the `seen` calls."""
    calls = history.calls
    n_customers = int(history.customer.max(initial=-1)) + 1
    key = history.customer[calls.group[seen]] * N_HOURS + calls.columns["hour"][seen].astype("int64")
    size = n_customers * N_HOURS
    attempts = np.bincount(key, minlength=size).reshape(n_customers, N_HOURS).astype("float64")
    rpc = calls.columns["rpc"][seen].astype("float64")
    reached = np.bincount(key, weights=rpc, minlength=size).reshape(n_customers, N_HOURS)
    return attempts, reached


def _fit_mixture(attempts: np.ndarray, reached: np.ndarray) -> AnswerMixture | None:
    called = int((attempts.sum(axis=1) > 0).sum())
    return AnswerMixture.fit(attempts, reached) if called >= MIXTURE_MIN_CUSTOMERS else None


@dataclass(frozen=True)
class PortfolioContact:
    """The portfolio's calls before one as_of, as the contact features use them: what each debtor's own
    rates are shrunk toward, and the answering patterns. Built from the whole book, it lets a few
    accounts (posted to the API) be scored with the features the book's own run gives them."""

    as_of: int  # µs UTC: the calls counted are those strictly before it
    bucket: np.ndarray  # (N_HOUR_BUCKETS, 2): calls not reached, reached
    weekday: np.ndarray  # (N_WEEKDAYS, 2)
    hour: np.ndarray  # (N_HOURS, 2)
    mixture: AnswerMixture | None


def portfolio_contact(history: ContactHistory, as_of: int) -> PortfolioContact:
    """The `PortfolioContact` of every call before `as_of` (microseconds, as `Snapshots.as_of`)."""
    seen = history.calls.time < as_of
    attempts, reached = _customer_hour_counts(history, seen)
    per_hour = np.column_stack([attempts.sum(axis=0) - reached.sum(axis=0), reached.sum(axis=0)])
    return PortfolioContact(
        as_of=as_of,
        bucket=_account_counts(history.calls, seen, "bucket", N_HOUR_BUCKETS).sum(axis=0),
        weekday=_account_counts(history.calls, seen, "weekday", N_WEEKDAYS).sum(axis=0),
        hour=per_hour,
        mixture=_fit_mixture(attempts, reached),
    )


def smoothed_rpc_rates(
    history: ContactHistory, snaps: Snapshots, portfolio: PortfolioContact | None = None
) -> dict[str, np.ndarray]:
    """rpc_rate_hour_bucket_<b> and rpc_rate_weekday_<d>: (rpc + k·p) / (attempts + k), where p is the
    portfolio's RPC rate for that bucket/weekday before as_of (from `portfolio` when given); plus
    best_hour_bucket_hist, the argmax over the callable buckets 0-5 (NaN without any history)."""
    calls = history.calls
    n = len(snaps)
    out = {f"rpc_rate_hour_bucket_{b}": np.full(n, np.nan) for b in range(N_HOUR_BUCKETS)}
    out |= {f"rpc_rate_weekday_{d}": np.full(n, np.nan) for d in range(N_WEEKDAYS)}
    # One pass per distinct as_of (training uses a few dozen): bincount over (account, part, rpc).
    for as_of in np.unique(snaps.as_of):
        rows = np.flatnonzero(snaps.as_of == as_of)
        seen = calls.time < as_of
        for column, width, prefix in (
            ("bucket", N_HOUR_BUCKETS, "rpc_rate_hour_bucket_"),
            ("weekday", N_WEEKDAYS, "rpc_rate_weekday_"),
        ):
            counts = _account_counts(calls, seen, column, width)
            totals = counts.sum(axis=0) if portfolio is None else getattr(portfolio, column)
            attempts, reached = totals[:, 0] + totals[:, 1], totals[:, 1]
            overall = reached.sum() / attempts.sum() if attempts.sum() else np.nan
            prior = np.where(attempts > 0, reached / np.maximum(attempts, 1), overall)
            mine = counts[snaps.account[rows]]
            smoothed = (mine[:, :, 1] + SMOOTHING_ATTEMPTS * prior) / (mine.sum(axis=2) + SMOOTHING_ATTEMPTS)
            for part in range(width):
                out[f"{prefix}{part}"][rows] = smoothed[:, part]
    callable_rates = np.column_stack([out[f"rpc_rate_hour_bucket_{b}"] for b in HOUR_BUCKETS])
    has = ~np.isnan(callable_rates).all(axis=1)
    best = np.argmax(np.where(np.isnan(callable_rates), -np.inf, callable_rates), axis=1)
    out["best_hour_bucket_hist"] = np.where(has, best, np.nan)
    return out


HOUR_RATE_CHUNK = 100_000

# Answering-pattern mixture: customers are a mix of MIXTURE_COMPONENTS latent patterns, each a
# right-party rate per local hour, fitted by EM on the customers' (hour x reached/not) call counts.
MIXTURE_COMPONENTS = 16
MIXTURE_ITERATIONS = 60
# Pseudo-calls per (pattern, hour) at the portfolio's hour rate: keeps rarely dialled hours sane.
MIXTURE_PRIOR_ATTEMPTS = 2.0
# Customers the patterns are fitted on (a seeded sample of those ever called); all are scored.
MIXTURE_FIT_CUSTOMERS = 40_000
# Fewer customers ever called than this (e.g. a handful of accounts posted to the API): the portfolio's
# patterns cannot be learned from them, and the mixture columns stay missing rather than echo each
# customer's own few calls.
MIXTURE_MIN_CUSTOMERS = 200
MIXTURE_MAX_RATE = 0.95
MIXTURE_MIN_RATE = 1e-4
# Starting patterns: the portfolio's hour rates scaled by a spread of answer levels, jittered per hour.
MIXTURE_START_LEVELS = np.geomspace(0.2, 3.0, MIXTURE_COMPONENTS)
MIXTURE_START_JITTER = np.random.default_rng(0).uniform(0.8, 1.25, (MIXTURE_COMPONENTS, 24))


@dataclass(frozen=True)
class AnswerMixture:
    """Latent answering patterns: `rates[k, h]` is pattern k's right-party rate at local hour h."""

    weights: np.ndarray  # (K,) share of customers per pattern
    rates: np.ndarray  # (K, 24)

    @classmethod
    def fit(cls, attempts: np.ndarray, reached: np.ndarray) -> AnswerMixture:
        """EM for a mixture of per-hour binomials on customer x hour counts (fixed iterations: deterministic)."""
        portfolio = _portfolio_hour_rates(attempts, reached)
        ever = np.flatnonzero(attempts.sum(axis=1) > 0)
        if len(ever) > MIXTURE_FIT_CUSTOMERS:
            ever = np.sort(np.random.default_rng(0).choice(ever, MIXTURE_FIT_CUSTOMERS, replace=False))
        attempts, reached = attempts[ever], reached[ever]
        rates = np.clip(
            portfolio[None, :] * MIXTURE_START_LEVELS[:, None] * MIXTURE_START_JITTER,
            MIXTURE_MIN_RATE,
            MIXTURE_MAX_RATE,
        )
        mixture = cls(np.full(MIXTURE_COMPONENTS, 1.0 / MIXTURE_COMPONENTS), rates)
        if len(ever) == 0:
            return mixture
        for _ in range(MIXTURE_ITERATIONS):
            responsibility = mixture.responsibilities(attempts, reached)
            weights = responsibility.mean(axis=0)
            rates = (responsibility.T @ reached + MIXTURE_PRIOR_ATTEMPTS * portfolio[None, :]) / (
                responsibility.T @ attempts + MIXTURE_PRIOR_ATTEMPTS
            )
            mixture = cls(weights, np.clip(rates, MIXTURE_MIN_RATE, MIXTURE_MAX_RATE))
        return mixture

    def responsibilities(self, attempts: np.ndarray, reached: np.ndarray) -> np.ndarray:
        """P(pattern k | a customer's calls), rows x K."""
        log_odds = (
            reached @ np.log(self.rates).T
            + (attempts - reached) @ np.log1p(-self.rates).T
            + np.log(np.maximum(self.weights, 1e-300))[None, :]
        )
        log_odds -= log_odds.max(axis=1, keepdims=True)
        posterior = np.exp(log_odds)
        return posterior / posterior.sum(axis=1, keepdims=True)

    def hour_rates(self, attempts: np.ndarray, reached: np.ndarray) -> np.ndarray:
        """Posterior-mean right-party rate per local hour of each customer, rows x 24."""
        return self.responsibilities(attempts, reached) @ self.rates


def _portfolio_hour_rates(attempts: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """Right-party rate per local hour over all customers; hours never dialled get the overall rate."""
    per_hour_attempts, per_hour_reached = attempts.sum(axis=0), reached.sum(axis=0)
    total = per_hour_attempts.sum()
    overall = per_hour_reached.sum() / total if total else 0.0
    return np.where(per_hour_attempts > 0, per_hour_reached / np.maximum(per_hour_attempts, 1), overall)


def smoothed_rpc_hour_rates(
    history: ContactHistory, snaps: Snapshots, portfolio: PortfolioContact | None = None
) -> dict[str, np.ndarray]:
    """rpc_rate_hour_<h> (h = 0-23 debtor-local): the customer's right-party rate at that exact hour, over
    the calls to all of the customer's accounts (one person answers them), shrunk hierarchically: the
    hour toward the customer's bucket rate x the portfolio's hour/bucket ratio, the bucket toward the
    customer's overall level x the portfolio's bucket rate (k = 3 and 5 pseudo-calls).

    Multiplicative priors keep a debtor who rarely answers low at every hour, while a few answered
    calls at one hour lift it above its neighbours in the same bucket.

    rpc_mixture_hour_<h>: the same customer's rate at hour h under the answering patterns of the
    portfolio (`AnswerMixture`, fitted on the calls before each as_of): ~20 calls cannot show one
    debtor's curve hour by hour, but they can show which of the portfolio's patterns it follows.
    Missing when fewer than MIXTURE_MIN_CUSTOMERS customers were ever called.

    With `portfolio`, the portfolio's rates and patterns are its own, not those of these calls.
    """
    calls = history.calls
    n = len(snaps)
    out = {f"rpc_rate_hour_{hour}": np.full(n, np.nan) for hour in range(N_HOURS)}
    out |= {f"rpc_mixture_hour_{hour}": np.full(n, np.nan) for hour in range(N_HOURS)}
    bucket_of = hour_bucket(np.arange(N_HOURS))
    # (hours x buckets) 0/1 matrix: sums per-hour counts into their buckets.
    to_bucket = (bucket_of[:, None] == np.arange(N_HOUR_BUCKETS)[None, :]).astype("float64")
    k, k_hour = SMOOTHING_ATTEMPTS, HOUR_SMOOTHING_ATTEMPTS
    # One pass per distinct as_of (training uses a few dozen): bincount over (customer, hour).
    for as_of in np.unique(snaps.as_of):
        rows = np.flatnonzero(snaps.as_of == as_of)
        seen = calls.time < as_of
        if portfolio is None and not seen.any():
            continue
        attempts, reached = _customer_hour_counts(history, seen)
        if portfolio is None:
            portfolio_attempts, portfolio_rpc = attempts.sum(axis=0), reached.sum(axis=0)
            mixture = _fit_mixture(attempts, reached)
        else:
            portfolio_attempts, portfolio_rpc = portfolio.hour.sum(axis=1).astype("float64"), portfolio.hour[:, 1]
            mixture = portfolio.mixture
        if not portfolio_attempts.sum():
            continue
        overall = portfolio_rpc.sum() / portfolio_attempts.sum()
        bucket_attempts, bucket_rpc = portfolio_attempts @ to_bucket, portfolio_rpc @ to_bucket
        portfolio_bucket = np.where(bucket_attempts > 0, bucket_rpc / np.maximum(bucket_attempts, 1), overall)
        portfolio_hour = np.where(
            portfolio_attempts > 0, portfolio_rpc / np.maximum(portfolio_attempts, 1), portfolio_bucket[bucket_of]
        )
        hour_share = portfolio_hour / np.maximum(portfolio_bucket[bucket_of], 1e-9)
        # Row chunks: each (rows x 24) intermediate of a million-account book would cost 200 MB.
        for first in range(0, len(rows), HOUR_RATE_CHUNK):
            part = rows[first : first + HOUR_RATE_CHUNK]
            mine = history.customer[snaps.account[part]]
            mine_attempts, mine_rpc = attempts[mine], reached[mine]
            # The customer's answer level relative to the portfolio (1 = average), itself shrunk.
            level = (mine_rpc.sum(axis=1) + k * overall) / (mine_attempts.sum(axis=1) + k) / max(overall, 1e-9)
            bucket_prior = np.minimum(portfolio_bucket[None, :] * level[:, None], 1.0)
            bucket_rate = (mine_rpc @ to_bucket + k * bucket_prior) / (mine_attempts @ to_bucket + k)
            hour_prior = np.minimum(bucket_rate[:, bucket_of] * hour_share[None, :], 1.0)
            rate = (mine_rpc + k_hour * hour_prior) / (mine_attempts + k_hour)
            patterned = None if mixture is None else mixture.hour_rates(mine_attempts, mine_rpc)
            for hour in range(N_HOURS):
                out[f"rpc_rate_hour_{hour}"][part] = rate[:, hour]
                if patterned is not None:
                    out[f"rpc_mixture_hour_{hour}"][part] = patterned[:, hour]
    return out


def contact_features(
    history: ContactHistory, snaps: Snapshots, portfolio: PortfolioContact | None = None
) -> dict[str, np.ndarray]:
    """Every contacts-family column for the snapshots (portfolio statistics from `portfolio` when given)."""
    out = call_attempts_and_rpc(history, snaps)
    out.update(recency_and_streak(history, snaps))
    out.update(outcome_counts_90d(history, snaps))
    out.update(smoothed_rpc_rates(history, snaps, portfolio))
    out.update(smoothed_rpc_hour_rates(history, snaps, portfolio))
    return out
