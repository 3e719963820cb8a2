"""The synthetic collections world behind `callq generate`: a seeded book, its history, and its ground truth.

One daily step function (`_advance`) drives both the exported history and the future used by the
ground truth (`World`), so models trained on the history are judged against the same mechanics.
Everything below is documented for data scientists in `docs/SIMULATION.md`; the knobs live in
`SimulationConfig`.

Book. Customers hold 1-3 accounts (contact limits apply per customer). Each customer is a debtor of
one kind (`KINDS`): self-curers pay anyway and barely react to a call; forgetful debtors react to
reminders (SMS, calls); negotiable debtors pay far more often after a right-party contact (the
effect varies per debtor); unwilling debtors refuse, dispute and break promises; hardship debtors
cannot pay much; unreachable debtors almost never answer. Products are credit cards (monthly minimum
dues that vary), personal and auto loans (fixed instalments). Accounts start with 0-9 missed dues
(the only dues before the first simulated day that are exported) and get a due every month on
their due day up to 62 days after `as_of`.

Days. Each step is one debtor-local calendar day. Dues fall at the start of the day after their due
date; payments are applied to the oldest dues (FIFO over the cumulative dues). Per account and day:
* the centre calls (history only): each stage team (early 1-30 DPD, middle 31-90, late 91-180,
  default beyond) has `agents x calls_per_agent_hour x shift hours` attempts a day and spends
  them on a noisy supervisor sort of log(amount overdue) (Gumbel noise) plus an `explore_share`
  of uniformly random picks, so who gets called is partly random and the call effect is
  identifiable; each call lands in an hour drawn partly uniformly (`random_hour_share`) and partly
  from a supervisor preference for late mornings and early afternoons, always inside the team's
  shift and the policy window in debtor-local time (cn 08-22, us_reg_f 08-21), at most one
  attempt per account per day (so at most 3 per customer: inside the cn limits), and for
  us_reg_f at most 6 attempts per 7 local days and none within 8 local days after a
  conversation (one day of margin over Regulation F's 7, so UTC-dated checks pass too);
* a call reaches the debtor with P = answer level x own hour curve (debtor-local: peak in the
  hour work starts, lunch dip, evening peak, all varying per debtor) x own weekday multiplier
  (Fri > Thu > Tue > Sat > Sun > Mon ~ Wed on average); wrong-number customers are never reached;
  a right-party contact ends as right_party, promise_to_pay, refused or dispute by kind;
* automated SMS every 7 days of delinquency, letters at 45 and 90 DPD, rare inbound calls
  (more after an SMS) that are right-party contacts too;
* payment: a kept promise pays its amount on the promised date or the day after; otherwise a
  delinquent account pays with daily hazard
  ``base(kind) x dpd_factor x payday_factor x (1 + call_effect x exp(-days since RPC / 3))
  x (1 + sms_effect x exp(-days since SMS / 2)) x broken_promise_factor ^ min(broken, 3) x flags``,
  and a current account pays a due on its date with P(on time | kind). A promise not covered by
  the end of the day after its date is broken: every broken promise lowers all later hazards.
  Payments are full (overdue, sometimes with today's due), one instalment, or a partial amount;
  some are returned.

Ground truth. `World` restarts the same step function at `as_of` in `truth_replicas` seeded
replicas per account with no outbound calls (SMS, letters and inbound calls go on), and once more
with a right-party contact forced on one day, with common random numbers, so the difference is
precise. Money at stake is the amount the label requires: min(amount overdue, remaining unpaid
amount of the oldest unpaid due) at `as_of`, computed exactly as the contract's label does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.contract import (
    CONTACT_CHANNELS,
    DIRECTIONS,
    MESSAGE_OUTCOMES,
    POLICY_PRESETS,
    VOICE_OUTCOMES,
    Export,
    Operations,
    Shift,
    Team,
    aware_utc,
    is_valid_timezone,
)

KINDS = ("self_curer", "forgetful", "negotiable", "unwilling", "hardship", "unreachable")
SELF_CURER, FORGETFUL, NEGOTIABLE, UNWILLING, HARDSHIP, UNREACHABLE = range(len(KINDS))

# Per-kind mechanics (index = position in KINDS). Daily payment hazard of a delinquent account at
# DPD ~0, before the other factors; P(paying a due on its date when current); mean call effect
# (relative hazard increase right after a right-party contact); P(keeping a promise); share of
# payments that clear all that is overdue; share of payments returned; SMS reminder effect;
# inbound-call propensity; mean number of missed dues when the account enters the simulation.
_BASE_HAZARD = np.array([0.22, 0.06, 0.03, 0.006, 0.008, 0.02])
_ON_TIME = np.array([0.70, 0.35, 0.45, 0.30, 0.25, 0.40])
_CALL_EFFECT = np.array([0.05, 1.2, 3.0, 0.15, 0.3, 2.0])
_KEEP_RATE = np.array([0.92, 0.80, 0.60, 0.15, 0.30, 0.60])
_FULL_PAY = np.array([0.85, 0.80, 0.50, 0.30, 0.20, 0.50])
_RETURNED = np.array([0.01, 0.03, 0.04, 0.05, 0.12, 0.05])
_SMS_EFFECT = np.array([0.0, 1.0, 0.1, 0.0, 0.0, 0.3])
_INBOUND = np.array([0.5, 2.0, 1.5, 0.5, 1.0, 0.3])
_INITIAL_ARREARS = np.array([0.3, 0.8, 1.5, 3.5, 3.0, 2.5])
# Outcome of a right-party contact by kind: right_party, promise_to_pay, refused, dispute.
_RPC_OUTCOMES = np.array(
    [
        [0.55, 0.43, 0.02, 0.00],
        [0.35, 0.63, 0.02, 0.00],
        [0.45, 0.45, 0.08, 0.02],
        [0.35, 0.10, 0.40, 0.15],
        [0.55, 0.25, 0.18, 0.02],
        [0.45, 0.45, 0.08, 0.02],
    ]
)
# Population weekday multipliers of the answer rate, Monday first (collectors' rule of thumb).
_WEEKDAY_ANSWER = np.array([0.82, 1.05, 0.84, 1.12, 1.22, 0.98, 0.92])

# Codes used inside the simulation; the tables get the contract's strings.
_CHANNELS = CONTACT_CHANNELS
_CALL, _SMS, _LETTER = (_CHANNELS.index(name) for name in ("call", "sms", "letter"))
_DIRECTIONS = DIRECTIONS
_OUTCOMES = (*VOICE_OUTCOMES, *MESSAGE_OUTCOMES)
_NO_ANSWER, _WRONG_NUMBER, _RIGHT_PARTY, _PROMISE, _DELIVERED, _FAILED = 0, 4, 6, 7, 10, 11
# Non-right-party outcomes of a call to a working number: no_answer, busy, voicemail, hung_up,
# (wrong_number never), third_party.
_MISS_PROBS = np.array([0.55, 0.10, 0.20, 0.08, 0.0, 0.07])
_PAY_CHANNELS = ("bank_transfer", "card", "auto_debit", "cash")
_PRODUCTS = ("credit_card", "personal_loan", "auto_loan")
_STATUSES = ("settled", "returned")

# Teams by stage: DPD bounds (inclusive upper) and their default shifts (centre-local).
TEAM_NAMES = ("early", "middle", "late", "default")
_TEAM_DPD_UPPER = (30, 90, 180)
_TEAM_SHIFTS = (("08:00", "20:00"), ("09:00", "21:00"), ("09:00", "21:00"), ("09:00", "18:00"))
_TEAM_SHARE = (0.35, 0.30, 0.20, 0.15)

_NEVER = np.iinfo(np.int32).max // 2  # a day number far in the future: "no such event"
_PAY_HOURS = (8.0, 22.0)  # debtor-local hours in which payments happen
_INBOUND_HOURS = (8.0, 21.0)
_SMS_HOUR = 10.0
_LETTER_HOUR = 9.0
_US = 1_000_000


class KindMix(BaseModel):
    """Shares of debtor kinds among customers (normalised to 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    self_curer: float = Field(0.25, ge=0)
    forgetful: float = Field(0.20, ge=0)
    negotiable: float = Field(0.25, ge=0)
    unwilling: float = Field(0.10, ge=0)
    hardship: float = Field(0.10, ge=0)
    unreachable: float = Field(0.10, ge=0)

    def probabilities(self) -> np.ndarray:
        shares = np.array([getattr(self, kind) for kind in KINDS], dtype=float)
        if shares.sum() <= 0:
            raise ValueError("kind mix must have a positive share")
        return shares / shares.sum()


class FlagRates(BaseModel):
    """Share of accounts carrying each case-system flag at `as_of` (set on a random earlier day)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    do_not_call: float = Field(0.015, ge=0, le=1)
    cease_contact: float = Field(0.01, ge=0, le=1)
    dispute_open: float = Field(0.02, ge=0, le=1)
    complaint_open: float = Field(0.015, ge=0, le=1)
    hardship: float = Field(0.03, ge=0, le=1)
    deceased: float = Field(0.003, ge=0, le=1)
    bankruptcy: float = Field(0.005, ge=0, le=1)


class SimulationConfig(BaseModel):
    """Every knob of the synthetic world; the same config and seed give byte-identical output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_accounts: int = Field(5000, ge=1)
    days: int = Field(180, ge=2, le=3650)
    seed: int = Field(0, ge=0)
    as_of: dt.datetime = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    timezones: tuple[str, ...] = ("Asia/Shanghai",)
    # Share of customers per zone, in the order of `timezones`; None = equal shares.
    timezone_weights: tuple[float, ...] | None = None
    # The centre's zone (operations.yaml); None = the first of `timezones`.
    centre_timezone: str | None = None
    policy: Literal["cn", "us_reg_f"] = "cn"
    kind_mix: KindMix = KindMix()
    # P(a customer holds 1, 2, 3 accounts).
    accounts_per_customer: tuple[float, float, float] = (0.72, 0.21, 0.07)
    # Shares of credit_card, personal_loan, auto_loan.
    product_mix: tuple[float, float, float] = (0.6, 0.3, 0.1)
    # Mean right-party contact rate of reachable debtors over their 08-22 local hours.
    answer_rate: float = Field(0.30, gt=0, le=0.9)
    unreachable_answer_rate: float = Field(0.03, gt=0, le=0.9)
    # Multiplies every debtor's call effect (0 = calls change nothing).
    call_effect_scale: float = Field(1.0, ge=0)
    # Outbound call attempts a day per account in the book; sets the team sizes and so the volume
    # of contacts (0.1 gives ~48 events per account over 180 days, 34 of them contacts; 0.06 about 40).
    calls_per_account_day: float = Field(0.10, ge=0)
    calls_per_agent_hour: int = Field(12, ge=1)
    # Share of each team's daily calls picked uniformly at random rather than by the supervisor sort.
    explore_share: float = Field(0.3, ge=0, le=1)
    # Scale of the Gumbel noise on the supervisor's log(amount overdue) sort.
    supervisor_noise: float = Field(0.7, ge=0)
    # Share of calls placed at a uniformly random allowed hour (the rest follow the supervisor's habit).
    random_hour_share: float = Field(0.6, ge=0, le=1)
    # Daily probability of an inbound call from a delinquent debtor of average propensity.
    inbound_rate: float = Field(0.004, ge=0, le=1)
    wrong_number_rate: float = Field(0.05, ge=0, le=1)
    # Hazard multiplier per broken promise (up to three).
    broken_promise_factor: float = Field(0.6, gt=0, le=1)
    # DPD decay of the payment hazard: max(floor, exp(-dpd / scale)).
    dpd_scale: float = Field(55.0, gt=0)
    dpd_floor: float = Field(0.08, ge=0, le=1)
    # Hazard multiplier in the three days from payday, and in the two days after those.
    payday_boost: float = Field(2.0, ge=1)
    flag_rates: FlagRates = FlagRates()
    horizon_days: int = Field(14, ge=1, le=60)
    # Monte Carlo replicas per account for the ground truth, and their seed (with `seed`).
    truth_replicas: int = Field(200, ge=1)
    truth_seed: int = Field(0, ge=0)

    @field_validator("as_of")
    @classmethod
    def _aware_utc(cls, value: dt.datetime) -> dt.datetime:
        return aware_utc(value)

    @model_validator(mode="after")
    def _zones(self) -> SimulationConfig:
        if not self.timezones:
            raise ValueError("timezones must name at least one zone")
        for zone in (*self.timezones, self.centre_timezone or self.timezones[0]):
            if not is_valid_timezone(zone):
                raise ValueError(f"unknown IANA time zone {zone!r}")
        if self.timezone_weights is not None and len(self.timezone_weights) != len(self.timezones):
            raise ValueError("timezone_weights needs one weight per zone")
        for name in ("accounts_per_customer", "product_mix"):
            values = getattr(self, name)
            if min(values) < 0 or sum(values) <= 0:
                raise ValueError(f"{name} must be non-negative with a positive sum")
        return self

    @property
    def centre_zone(self) -> str:
        return self.centre_timezone or self.timezones[0]


@dataclass(frozen=True)
class ReplayResult:
    """Expected money collected in the horizon with a call list and without any calls.

    Money is the amount the label requires per account, counted when the label is met. The
    `settled_*` figures count every settled payment in the horizon instead (what a centre's books
    show as collected), so a list can be judged by either yardstick.
    """

    collected_total: float
    collected_no_calls: float
    extra: float
    per_account: pd.DataFrame
    settled_total: float
    settled_no_calls: float

    @property
    def extra_settled(self) -> float:
        """Settled money in the horizon beyond what the book pays with no calls."""
        return self.settled_total - self.settled_no_calls


# ---------------------------------------------------------------------------------------------
# Internal arrays


@dataclass
class _Book:
    """Static per-lane arrays (a lane is an account, or one replica of an account)."""

    account: np.ndarray  # int32 account index
    customer: np.ndarray  # int32
    zone: np.ndarray  # int8 index into the calendar's zones
    kind: np.ndarray  # int8
    due_day: np.ndarray  # int32 [n, G+1] day numbers of the due grid (last column: never)
    due_cum: np.ndarray  # int64 [n, G+1] cents due over the first j grid entries (column 0 = 0)
    base_hazard: np.ndarray
    on_time: np.ndarray
    call_effect: np.ndarray
    keep_rate: np.ndarray
    full_pay: np.ndarray
    returned: np.ndarray
    sms_effect: np.ndarray
    inbound: np.ndarray
    payday: np.ndarray  # int8 day of month
    answer_level: np.ndarray
    work_start: np.ndarray  # float32 local hour
    morning_amp: np.ndarray
    evening_hour: np.ndarray
    evening_amp: np.ndarray
    lunch_dip: np.ndarray
    curve_norm: np.ndarray
    weekday_mult: np.ndarray  # float32 [n, 7]
    wrong_number: np.ndarray  # bool
    call_block_day: np.ndarray  # int32 first day no outbound call is made (any no-call/special flag)
    sms_block_day: np.ndarray  # cease_contact
    deceased_day: np.ndarray
    bankruptcy_day: np.ndarray
    hardship_day: np.ndarray

    def take(self, lanes: np.ndarray) -> _Book:
        return _Book(**{f.name: getattr(self, f.name)[lanes] for f in fields(self)})

    @property
    def n(self) -> int:
        return len(self.account)


@dataclass
class _State:
    """Mutable per-lane state carried from day to day."""

    paid: np.ndarray  # int64 settled cents since the start of the export
    ptr: np.ndarray  # int32 grid entries fallen due
    oldest: np.ndarray  # int32 grid index of the oldest due not fully covered
    last_rpc_day: np.ndarray
    last_conv_day: np.ndarray
    last_sms_day: np.ndarray
    broken: np.ndarray  # int8 broken promises so far
    promise_day: np.ndarray  # int32 promised date (day number), -1 = none open
    promise_amount: np.ndarray  # int64 cents
    promise_paid: np.ndarray  # int64 cents paid since the promise
    promise_keep: np.ndarray  # bool: the debtor means to keep it
    attempts: np.ndarray  # int8 [7, n] ring of outbound attempts per local day
    settled_window: np.ndarray  # int64 cents settled inside the current window (ground truth)

    def take(self, lanes: np.ndarray) -> _State:
        values = {}
        for f in fields(self):
            array = getattr(self, f.name)
            values[f.name] = array[:, lanes] if f.name == "attempts" else array[lanes]
        return _State(**values)


@dataclass
class _Calendar:
    """Per zone: local dates of each step, UTC offsets, windows; per team x zone x step: call slots."""

    zones: tuple[str, ...]
    first_day: np.ndarray  # int32 [Z] local day number of step 0
    last_history_step: int
    cut_hours: np.ndarray  # float [Z] local time of as_of on the last history date
    offsets: np.ndarray  # int64 [Z, T] UTC offset (seconds) of each step's local date
    lo: np.ndarray  # float [Z, T] local window start (hours) for history steps
    hi: np.ndarray
    slot_weights: np.ndarray  # float [2, teams, Z, T, 24]: random / supervisor-habit hour weights
    # float [teams, Z, T, 24]: where in each local hour the part inside the shift starts (0 unless the
    # debtor's and the centre's UTC offsets differ by a fraction of an hour); its length is slot_weights[0].
    shift_start: np.ndarray
    has_slot: np.ndarray  # bool [teams, Z, T]: any allowed call hour
    day_base: int
    day_of_month: np.ndarray  # int8 by day number - day_base
    as_of_us: int
    centre_zone: str
    horizon_end: int

    def window(self, step: int, horizon: bool) -> tuple[np.ndarray, np.ndarray]:
        """Local hours [lo, hi) of a step: history ends at as_of, the horizon starts there."""
        last = self.last_history_step
        lo = np.zeros(len(self.zones))
        hi = np.full(len(self.zones), 24.0)
        if horizon and step == last:
            lo = self.cut_hours.astype(float)
        if (not horizon and step == last) or (horizon and step == self.horizon_end):
            hi = self.cut_hours.astype(float)
        return lo, hi


def _zone_offset_seconds(zone: str, day: int) -> int:
    """UTC offset of a zone at local noon of a day number (DST switches happen at night)."""
    noon = dt.datetime(1970, 1, 1) + dt.timedelta(days=int(day), hours=12)
    return int(ZoneInfo(zone).utcoffset(noon).total_seconds())


def _build_calendar(config: SimulationConfig, ops: Operations) -> _Calendar:
    """Local step dates per zone, the as_of cut, and the allowed call hours per team/zone/step."""
    zones = tuple(dict.fromkeys(config.timezones))
    as_of = pd.Timestamp(config.as_of)
    steps = config.days + config.horizon_days
    first, cut = [], []
    for zone in zones:
        local = as_of.tz_convert(zone)
        last_date = (local - pd.Timedelta(microseconds=1)).date()
        last_day = (last_date - dt.date(1970, 1, 1)).days
        cut.append(24.0 if local.date() != last_date else local.hour + local.minute / 60 + local.second / 3600)
        first.append(last_day - (config.days - 1))
    first_day = np.array(first, dtype=np.int32)
    offsets = np.array(
        [[_zone_offset_seconds(zone, first_day[z] + t) for t in range(steps)] for z, zone in enumerate(zones)],
        dtype=np.int64,
    )
    rules = POLICY_PRESETS[config.policy]
    centre_offsets = np.array(
        [[_zone_offset_seconds(config.centre_zone, first_day[z] + t) for t in range(steps)] for z in range(len(zones))],
        dtype=np.int64,
    )
    hours = np.arange(24)
    in_window = (hours >= rules.call_window_start) & (hours + 1 <= rules.call_window_end)
    # Supervisor habit in centre-local hours: late mornings and early afternoons.
    habit = np.ones(24)
    habit[[9, 10, 11]] = 3.0
    habit[[14, 15, 16]] = 2.0
    n_teams = len(TEAM_NAMES)
    weights = np.zeros((2, n_teams, len(zones), steps, 24))
    shift_start = np.zeros((n_teams, len(zones), steps, 24))
    lo_hist = np.zeros((len(zones), steps))
    hi_hist = np.full((len(zones), steps), 24.0)
    hi_hist[:, config.days - 1] = cut
    for team_index, name in enumerate(TEAM_NAMES):
        team = ops.team(name)
        shift_hours = set(team.shift.whole_hours()) if team is not None else set()
        for z in range(len(zones)):
            # Local hour h is centre time [h + delta, h + 1 + delta): with a fractional delta (Asia/Kolkata,
            # Asia/Kathmandu, Australia/Adelaide...) its first `split` of an hour falls in one centre hour
            # and the rest in the next.
            delta = (centre_offsets[z] - offsets[z])[:, None] / 3600.0
            centre_start = hours[None, :] + delta
            first = np.floor(centre_start)
            split = first + 1.0 - centre_start  # in (0, 1]; 1 when the offsets differ by whole hours
            first_hour = first.astype(np.int64) % 24
            in_first = np.isin(first_hour, list(shift_hours))
            in_second = np.isin((first_hour + 1) % 24, list(shift_hours)) & (split < 1.0)
            inside = (hours[None, :] >= lo_hist[z][:, None]) & (hours[None, :] + 1 <= hi_hist[z][:, None])
            allowed = in_window[None, :] & inside
            part_first = np.where(allowed & in_first, split, 0.0)
            part_second = np.where(allowed & in_second, 1.0 - split, 0.0)
            shift_start[team_index, z] = np.where(in_first, 0.0, split)
            weights[0, team_index, z] = part_first + part_second  # the hour's share inside shift and window
            weights[1, team_index, z] = part_first * habit[first_hour] + part_second * habit[(first_hour + 1) % 24]
    day_base = int(first_day.min()) - 400
    day_count = int(first_day.max()) + steps + 400 - day_base
    dates = np.datetime64("1970-01-01") + np.arange(day_base, day_base + day_count).astype("timedelta64[D]")
    day_of_month = ((dates - dates.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1).astype(np.int8)
    return _Calendar(
        zones=zones,
        first_day=first_day,
        last_history_step=config.days - 1,
        cut_hours=np.array(cut),
        offsets=offsets,
        lo=lo_hist,
        hi=hi_hist,
        slot_weights=weights,
        shift_start=shift_start,
        has_slot=weights[0].sum(axis=-1) > 0,
        day_base=day_base,
        day_of_month=day_of_month,
        as_of_us=int(as_of.value // 1000),
        centre_zone=config.centre_zone,
        horizon_end=config.days - 1 + config.horizon_days,
    )


# ---------------------------------------------------------------------------------------------
# Operations


def build_operations(config: SimulationConfig) -> Operations:
    """Stage teams sized so the book gets about `calls_per_account_day` attempts per account a day."""
    teams = []
    for name, (start, end), share in zip(TEAM_NAMES, _TEAM_SHIFTS, _TEAM_SHARE, strict=True):
        shift = Shift(start=dt.time.fromisoformat(start), end=dt.time.fromisoformat(end))
        per_agent_day = config.calls_per_agent_hour * len(shift.whole_hours())
        wanted = config.calls_per_account_day * config.n_accounts * share
        hours = len(shift.whole_hours())
        agents = int(np.ceil(wanted / per_agent_day))
        # Small books: fewer calls per agent hour rather than a whole agent too many.
        per_hour = int(np.ceil(wanted / (agents * hours))) if agents else config.calls_per_agent_hour
        teams.append(Team(team=name, agents=agents, calls_per_agent_hour=per_hour, shift=shift))
    return Operations(centre_timezone=config.centre_zone, policy=config.policy, teams=tuple(teams))


def _agent_names(ops: Operations) -> tuple[list[str], np.ndarray]:
    """Agent ids of every team (e.g. E001) and the first agent index of each team."""
    names, starts = [], []
    for name in TEAM_NAMES:
        team = ops.team(name)
        starts.append(len(names))
        names.extend(f"{name[0].upper()}{i + 1:03d}" for i in range(team.agents if team else 0))
    return names, np.array(starts + [len(names)])


# ---------------------------------------------------------------------------------------------
# The book


@dataclass
class _Static:
    """Account attributes that only the export needs."""

    customer_count: int
    product: np.ndarray
    opened_day: np.ndarray
    credit_limit: np.ndarray  # float, nan for loans
    flag_day: dict[str, np.ndarray]


def _build_book(config: SimulationConfig, cal: _Calendar, rng: np.random.Generator) -> tuple[_Book, _Static]:
    """Draw customers, debtors and accounts with their due grid; vectorised over accounts."""
    n = config.n_accounts
    per_customer = np.asarray(config.accounts_per_customer, dtype=float)
    sizes = rng.choice(3, size=n, p=per_customer / per_customer.sum()) + 1
    customer = np.repeat(np.arange(n), sizes)[:n].astype(np.int32)
    n_customers = int(customer[-1]) + 1

    # Debtor (customer) attributes.
    kind_c = rng.choice(len(KINDS), size=n_customers, p=config.kind_mix.probabilities()).astype(np.int8)
    zone_weights = np.asarray(config.timezone_weights or [1.0] * len(config.timezones), dtype=float)
    zone_of_name = {zone: i for i, zone in enumerate(cal.zones)}
    zone_pick = rng.choice(len(config.timezones), size=n_customers, p=zone_weights / zone_weights.sum())
    zone_c = np.array([zone_of_name[zone] for zone in config.timezones], dtype=np.int8)[zone_pick]
    reachable = kind_c != UNREACHABLE
    level_mean = np.where(reachable, config.answer_rate, config.unreachable_answer_rate)
    # Beta around the mean with concentration 8: debtors differ a lot in how often they pick up.
    answer_level = rng.beta(level_mean * 8, (1 - level_mean) * 8).astype(np.float32)
    work_start = rng.choice([7, 8, 9, 10], size=n_customers, p=[0.15, 0.35, 0.35, 0.15]).astype(np.float32)
    morning_amp = rng.uniform(0.6, 2.0, n_customers).astype(np.float32)
    evening_hour = rng.uniform(18.0, 21.0, n_customers).astype(np.float32)
    evening_amp = rng.uniform(0.3, 2.2, n_customers).astype(np.float32)
    lunch_dip = rng.uniform(0.2, 0.7, n_customers).astype(np.float32)
    weekday = (_WEEKDAY_ANSWER[None, :] * np.exp(rng.normal(0, 0.15, (n_customers, 7)))).astype(np.float32)
    payday = rng.choice([1, 5, 10, 15, 20, 25, 28], size=n_customers).astype(np.int8)
    effect = (_CALL_EFFECT[kind_c] * rng.lognormal(-0.125, 0.5, n_customers) * config.call_effect_scale).astype(
        np.float32
    )
    keep = np.clip(_KEEP_RATE[kind_c] + rng.normal(0, 0.08, n_customers), 0.02, 0.98).astype(np.float32)
    wrong = rng.random(n_customers) < config.wrong_number_rate

    hours = np.arange(8, 22, dtype=np.float32)[None, :]
    norm = _answer_curve(
        hours,
        work_start[:, None],
        morning_amp[:, None],
        evening_hour[:, None],
        evening_amp[:, None],
        lunch_dip[:, None],
    ).mean(axis=1)

    # Accounts.
    product_mix = np.asarray(config.product_mix, dtype=float)
    product = rng.choice(3, size=n, p=product_mix / product_mix.sum()).astype(np.int8)
    kind = kind_c[customer]
    zone = zone_c[customer]
    limit = np.round(rng.lognormal(np.log(30000), 0.6, n) / 1000) * 1000 + 1000
    base_amount = np.select(
        [product == 0, product == 1],
        [np.maximum(100.0, 0.05 * limit * rng.uniform(0.5, 1.0, n)), rng.lognormal(np.log(1500), 0.5, n)],
        rng.lognormal(np.log(3500), 0.4, n),
    )
    credit_limit = np.where(product == 0, limit, np.nan)
    due_dom = rng.integers(1, 29, n)
    arrears = np.minimum(rng.poisson(_INITIAL_ARREARS[kind]), 9)

    as_of_date = pd.Timestamp(config.as_of).tz_convert("UTC").tz_localize(None).normalize()
    last_due = (as_of_date + pd.Timedelta(days=62)).to_datetime64().astype("datetime64[D]")
    first_month = (np.datetime64("1970-01-01") + np.timedelta64(int(cal.first_day.min()), "D")).astype(
        "datetime64[M]"
    ) - 11
    months = np.arange(first_month, last_due.astype("datetime64[M]") + 1)
    month_days = months.astype("datetime64[D]").astype(np.int64)
    due_day = (month_days[None, :] + (due_dom[:, None] - 1)).astype(np.int32)
    first_local = cal.first_day[zone][:, None]
    before = due_day < first_local
    n_before = before.sum(axis=1)
    column = np.arange(len(months))[None, :]
    valid = (before & (column >= (n_before - arrears)[:, None])) | (~before & (due_day <= last_due.astype(np.int64)))
    variation = np.where(product[:, None] == 0, rng.uniform(0.85, 1.15, due_day.shape), 1.0)
    cents = np.where(valid, np.round(base_amount[:, None] * variation * 100), 0).astype(np.int64)
    due_cum = np.zeros((n, len(months) + 1), dtype=np.int64)
    np.cumsum(cents, axis=1, out=due_cum[:, 1:])
    due_day = np.concatenate([due_day, np.full((n, 1), _NEVER, dtype=np.int32)], axis=1)
    first_valid = np.where(valid, due_day[:, :-1], _NEVER).min(axis=1)
    opened_day = first_valid - rng.integers(30, 1500, n)

    # Flags: set on a random day of the history, person-level flags per customer.
    history_days = cal.first_day[zone] + rng.integers(0, config.days, n)
    rates = config.flag_rates
    per_customer_draw = rng.random((5, n_customers))
    per_account_draw = rng.random((2, n))
    hardship_rate = np.where(kind_c == HARDSHIP, min(1.0, rates.hardship * 6), rates.hardship * 0.4)
    dispute_rate = np.where(kind == UNWILLING, min(1.0, rates.dispute_open * 5), rates.dispute_open * 0.55)
    flag_on = {
        "do_not_call": (per_customer_draw[0] < rates.do_not_call)[customer],
        "cease_contact": (per_customer_draw[1] < rates.cease_contact)[customer],
        "dispute_open": per_account_draw[0] < dispute_rate,
        "complaint_open": per_account_draw[1] < rates.complaint_open,
        "hardship": (per_customer_draw[2] < hardship_rate)[customer],
        "deceased": (per_customer_draw[3] < rates.deceased)[customer],
        "bankruptcy": (per_customer_draw[4] < rates.bankruptcy)[customer],
    }
    flag_day = {name: np.where(on, history_days, _NEVER).astype(np.int32) for name, on in flag_on.items()}
    call_block = np.minimum.reduce([flag_day[name] for name in flag_day])

    book = _Book(
        account=np.arange(n, dtype=np.int32),
        customer=customer,
        zone=zone,
        kind=kind,
        due_day=due_day,
        due_cum=due_cum,
        base_hazard=_BASE_HAZARD[kind].astype(np.float32) * rng.lognormal(-0.08, 0.4, n).astype(np.float32),
        on_time=_ON_TIME[kind].astype(np.float32),
        call_effect=effect[customer],
        keep_rate=keep[customer],
        full_pay=_FULL_PAY[kind].astype(np.float32),
        returned=_RETURNED[kind].astype(np.float32),
        sms_effect=_SMS_EFFECT[kind].astype(np.float32),
        inbound=(_INBOUND[kind] * config.inbound_rate).astype(np.float32),
        payday=payday[customer],
        answer_level=answer_level[customer],
        work_start=work_start[customer],
        morning_amp=morning_amp[customer],
        evening_hour=evening_hour[customer],
        evening_amp=evening_amp[customer],
        lunch_dip=lunch_dip[customer],
        curve_norm=norm[customer].astype(np.float32),
        weekday_mult=weekday[customer],
        wrong_number=wrong[customer],
        call_block_day=call_block.astype(np.int32),
        sms_block_day=flag_day["cease_contact"],
        deceased_day=flag_day["deceased"],
        bankruptcy_day=flag_day["bankruptcy"],
        hardship_day=flag_day["hardship"],
    )
    static = _Static(
        customer_count=n_customers,
        product=product,
        opened_day=opened_day.astype(np.int32),
        credit_limit=credit_limit,
        flag_day=flag_day,
    )
    return book, static


def _answer_curve(hour, work_start, morning_amp, evening_hour, evening_amp, lunch_dip):
    """Relative answer propensity at local clock hour `hour` (slot start): work-start and evening peaks."""
    center = hour + 0.5
    morning = morning_amp * np.exp(-0.5 * ((center - (work_start + 0.5)) / 0.8) ** 2)
    evening = evening_amp * np.exp(-0.5 * ((center - evening_hour) / 1.3) ** 2)
    lunch = 1.0 - lunch_dip * ((hour >= 12) & (hour < 14))
    night = np.where((hour < 7) | (hour >= 23), 0.3, 1.0)
    return (0.35 + morning + evening) * lunch * night


def _p_rpc(book: _Book, lanes: np.ndarray, local_hour: np.ndarray, weekday: np.ndarray, day: np.ndarray):
    """Right-party contact probability of a call in a debtor-local hour slot on a debtor-local weekday."""
    curve = _answer_curve(
        local_hour.astype(np.float32),
        book.work_start[lanes],
        book.morning_amp[lanes],
        book.evening_hour[lanes],
        book.evening_amp[lanes],
        book.lunch_dip[lanes],
    )
    p = book.answer_level[lanes] * curve / book.curve_norm[lanes] * book.weekday_mult[lanes, weekday]
    reachable = ~book.wrong_number[lanes] & (day < book.deceased_day[lanes])
    return np.where(reachable, np.clip(p, 0.0, 0.95), 0.0)


def _initial_state(book: _Book, cal: _Calendar) -> _State:
    n = book.n
    first = cal.first_day[book.zone]
    ptr = (book.due_day < first[:, None]).sum(axis=1).astype(np.int32)
    paid = np.zeros(n, dtype=np.int64)
    none = np.full(n, -_NEVER, dtype=np.int32)
    return _State(
        paid=paid,
        ptr=ptr,
        oldest=_oldest_uncovered(book.due_cum, paid),
        last_rpc_day=none.copy(),
        last_conv_day=none.copy(),
        last_sms_day=none.copy(),
        broken=np.zeros(n, dtype=np.int8),
        promise_day=np.full(n, -1, dtype=np.int32),
        promise_amount=np.zeros(n, dtype=np.int64),
        promise_paid=np.zeros(n, dtype=np.int64),
        promise_keep=np.zeros(n, dtype=bool),
        attempts=np.zeros((7, n), dtype=np.int8),
        settled_window=np.zeros(n, dtype=np.int64),
    )


def _oldest_uncovered(due_cum: np.ndarray, paid: np.ndarray) -> np.ndarray:
    """Grid index of the first due whose cumulative amount exceeds what was paid (FIFO application)."""
    return (due_cum[:, 1:] <= paid[:, None]).sum(axis=1).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# One day


@dataclass
class _Recorder:
    """Event rows of the history, one chunk per step (codes, not strings)."""

    agents_start: np.ndarray
    contacts: list[dict[str, np.ndarray]] = field(default_factory=list)
    payments: list[dict[str, np.ndarray]] = field(default_factory=list)
    promises: list[dict[str, np.ndarray]] = field(default_factory=list)
    contact_count: int = 0


@dataclass
class _Day:
    """What one step needs besides the state: the lanes' local date, window and UTC offset."""

    step: int
    day: np.ndarray  # int32 local day number per lane
    lo: np.ndarray  # float local hours per lane
    hi: np.ndarray
    offset: np.ndarray  # int64 seconds per lane
    weekday: np.ndarray  # int8 per lane, Monday = 0


def _utc_us(day: _Day, lanes: np.ndarray, local_seconds: np.ndarray) -> np.ndarray:
    return (day.day[lanes].astype(np.int64) * 86400 + local_seconds - day.offset[lanes]) * _US


def _fraction(lo: np.ndarray, hi: np.ndarray, hours: tuple[float, float]) -> np.ndarray:
    """Share of the activity hours `hours` that lie inside [lo, hi)."""
    inside = np.clip(np.minimum(hi, hours[1]) - np.maximum(lo, hours[0]), 0.0, None)
    return inside / (hours[1] - hours[0])


def _promise_part(
    book: _Book,
    day: _Day,
    promising: np.ndarray,
    promising_mask: np.ndarray,
    seconds: np.ndarray,
    promised_day: np.ndarray,
    amount: np.ndarray,
    contact_part: int,
) -> dict[str, np.ndarray]:
    """The promises taken on one day's contacts, tied to the contact part (and row) they were taken in."""
    return {
        "account": book.account[promising],
        "time": _utc_us(day, promising, seconds[promising_mask]),
        "promised_day": promised_day,
        "amount": amount,
        "part": np.full(len(promising), contact_part),
        "row": np.flatnonzero(promising_mask),
    }


def _take_promises(
    state: _State,
    book: _Book,
    lanes: np.ndarray,
    day: _Day,
    overdue: np.ndarray,
    oldest_left: np.ndarray,
    draws: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Open a promise on each lane (replacing an open one); draws: [3, len(lanes)] uniforms."""
    promised_day = day.day[lanes] + 1 + (draws[0] * 7).astype(np.int32)
    amount = np.where(draws[1] < 0.6, overdue[lanes], np.minimum(oldest_left[lanes], overdue[lanes]))
    amount = np.maximum(amount, 100)
    state.promise_day[lanes] = promised_day
    state.promise_amount[lanes] = amount
    state.promise_paid[lanes] = 0
    state.promise_keep[lanes] = draws[2] < book.keep_rate[lanes]
    return promised_day, amount


def _advance(
    book: _Book,
    state: _State,
    cal: _Calendar,
    config: SimulationConfig,
    ops_capacity: np.ndarray | None,
    step: int,
    *,
    horizon: bool,
    streams: dict[str, np.random.Generator],
    recorder: _Recorder | None = None,
    forced_rpc_step: np.ndarray | None = None,
) -> None:
    """Advance every lane by one debtor-local day (or the part of it inside the history/horizon window).

    History: the centre's calling policy runs (`ops_capacity`) and events are recorded. Horizon: no
    outbound calls except a right-party contact forced where `forced_rpc_step == step`. Every stream
    draws full-size arrays each step, so two horizon runs share their random numbers.
    """
    n = book.n
    lanes_all = np.arange(n)
    lo_z, hi_z = cal.window(step, horizon)
    day = _Day(
        step=step,
        day=cal.first_day[book.zone] + np.int32(step),
        lo=lo_z[book.zone],
        hi=hi_z[book.zone],
        offset=cal.offsets[book.zone, step],
        weekday=((cal.first_day[book.zone] + step + 3) % 7).astype(np.int8),
    )
    today = day.day
    day_start = not (horizon and step == cal.last_history_step)
    if day_start:
        # Dues dated before today have fallen due (monthly grid: at most one per day).
        state.ptr += (book.due_day[lanes_all, state.ptr] < today).astype(np.int32)
        # A promise not covered by the end of the day after its date is broken.
        expired = (state.promise_day >= 0) & (today > state.promise_day + 1)
        broken = expired & (state.promise_paid < state.promise_amount)
        state.broken = np.minimum(state.broken + broken, 100).astype(np.int8)
        state.promise_day[expired] = -1
        state.attempts[step % 7] = 0
    cum_fallen = book.due_cum[lanes_all, state.ptr]
    overdue = np.maximum(cum_fallen - state.paid, 0)
    delinquent = overdue > 0
    oldest_day = book.due_day[lanes_all, np.minimum(state.oldest, book.due_day.shape[1] - 1)]
    dpd = np.where(delinquent, today - oldest_day, 0)
    oldest_left = book.due_cum[lanes_all, np.minimum(state.oldest + 1, book.due_cum.shape[1] - 1)] - state.paid
    due_today = np.where(
        book.due_day[lanes_all, state.ptr] == today,
        book.due_cum[lanes_all, np.minimum(state.ptr + 1, book.due_cum.shape[1] - 1)] - cum_fallen,
        0,
    )
    rpc_hour = np.full(n, np.nan)  # local hour of today's right-party contact, if any
    contacted = np.zeros(n, dtype=bool)  # any call today (outbound or inbound)
    contact_parts: list[dict[str, np.ndarray]] = []
    promise_parts: list[dict[str, np.ndarray]] = []

    # --- outbound calls: the historical policy, or a forced right-party contact (ground truth)
    if ops_capacity is not None:
        _policy_calls(
            book,
            state,
            cal,
            config,
            ops_capacity,
            day,
            overdue,
            dpd,
            oldest_left,
            streams["calls"],
            rpc_hour,
            contacted,
            contact_parts,
            promise_parts,
            recorder,
        )
    if forced_rpc_step is not None:
        draws = streams["forced"].random((5, n), dtype=np.float32)
        forced = np.flatnonzero(forced_rpc_step == step)
        if len(forced):
            hour = np.maximum(day.lo[forced], 8.0)
            rpc_hour[forced] = hour
            contacted[forced] = True
            state.last_rpc_day[forced] = today[forced]
            state.last_conv_day[forced] = today[forced]
            outcome = _rpc_outcome(book.kind[forced], draws[0, forced])
            promising = forced[(outcome == _PROMISE) & delinquent[forced]]
            _take_promises(state, book, promising, day, overdue, oldest_left, draws[1:4, promising])

    # --- automated SMS every 7 days of delinquency, letters at 45 and 90 DPD, inbound calls
    draws = streams["contact"].random((8, n), dtype=np.float32)
    window_sms = (day.lo <= _SMS_HOUR) & (day.hi >= _SMS_HOUR + 1)
    sms = np.flatnonzero(delinquent & (dpd % 7 == 1) & (today < book.sms_block_day) & window_sms)
    sms_ok = draws[0, sms] >= np.where(book.wrong_number[sms], 0.5, 0.07)
    state.last_sms_day[sms[sms_ok]] = today[sms[sms_ok]]
    letters = np.zeros(0, dtype=np.int64)
    if recorder is not None:  # letters change nothing in the mechanics: only the history records them
        window_letter = (day.lo <= _LETTER_HOUR) & (day.hi >= _LETTER_HOUR + 1)
        letters = np.flatnonzero(
            delinquent & ((dpd == 45) | (dpd == 90)) & (today < book.sms_block_day) & window_letter
        )
    sent_today = np.zeros(n, dtype=bool)
    sent_today[sms[sms_ok]] = True
    alive = today < book.deceased_day
    p_inbound = book.inbound * (1.0 + 2.0 * sent_today)
    p_inbound = 1.0 - (1.0 - p_inbound) ** _fraction(day.lo, day.hi, _INBOUND_HOURS)
    inbound = np.flatnonzero(delinquent & ~contacted & alive & (draws[1] < p_inbound))
    if len(inbound):
        start = np.maximum(day.lo[inbound], _INBOUND_HOURS[0])
        end = np.minimum(day.hi[inbound], _INBOUND_HOURS[1])
        hour = start + draws[2, inbound] * (end - start)
        rpc_hour[inbound] = hour
        contacted[inbound] = True
        state.last_rpc_day[inbound] = today[inbound]
        state.last_conv_day[inbound] = today[inbound]
        # Inbound calls end as right_party (60%), promise_to_pay (35%) or dispute (5%).
        outcome = np.where(draws[3, inbound] < 0.60, _RIGHT_PARTY, np.where(draws[3, inbound] < 0.95, _PROMISE, 9))
        promising_mask = outcome == _PROMISE
        promising = inbound[promising_mask]
        promised_day, amount = _take_promises(state, book, promising, day, overdue, oldest_left, draws[4:7, promising])
        if recorder is not None:
            seconds = (hour * 3600).astype(np.int64)
            contact_parts.append(
                {
                    "account": book.account[inbound],
                    "time": _utc_us(day, inbound, seconds),
                    "channel": np.full(len(inbound), _CALL, np.int8),
                    "direction": np.ones(len(inbound), np.int8),
                    "outcome": outcome.astype(np.int8),
                    "agent": (draws[7, inbound] * recorder.agents_start[-1]).astype(np.int32),
                    "duration": (60 + draws[5, inbound] * 600).astype(np.int32),
                }
            )
            part = len(contact_parts) - 1
            promise_parts.append(
                _promise_part(book, day, promising, promising_mask, seconds, promised_day, amount, part)
            )
    if recorder is not None:
        for lanes_sent, ok, hour, channel in (
            (sms, sms_ok, _SMS_HOUR, _SMS),
            (letters, draws[2, letters] >= 0.03, _LETTER_HOUR, _LETTER),
        ):
            if len(lanes_sent):
                # Their own stream: draws[6] decides whether today's inbound promise is meant to be kept,
                # and a message's minute must not tell the models that.
                minute = streams["record"].random(len(lanes_sent), dtype=np.float32)
                seconds = (hour * 3600 + minute * 3600).astype(np.int64)
                contact_parts.append(
                    {
                        "account": book.account[lanes_sent],
                        "time": _utc_us(day, lanes_sent, seconds),
                        "channel": np.full(len(lanes_sent), channel, np.int8),
                        "direction": np.zeros(len(lanes_sent), np.int8),
                        "outcome": np.where(ok, _DELIVERED, _FAILED).astype(np.int8),
                        "agent": np.full(len(lanes_sent), -1, np.int32),
                        "duration": np.full(len(lanes_sent), -1, np.int32),
                    }
                )

    # --- payments
    draws = streams["pay"].random((8, n), dtype=np.float32)
    since_rpc = (today - state.last_rpc_day).astype(np.float32)
    since_sms = (today - state.last_sms_day).astype(np.float32)
    dom = cal.day_of_month[today - cal.day_base]
    since_payday = (dom.astype(np.int16) - book.payday) % 30
    payday_factor = np.where(since_payday < 3, config.payday_boost, np.where(since_payday < 5, 1.4, 1.0))
    dpd_factor = np.maximum(config.dpd_floor, np.exp(-dpd / config.dpd_scale))
    flags = (
        np.where(alive, 1.0, 0.05)
        * np.where(today >= book.bankruptcy_day, 0.1, 1.0)
        * np.where(today >= book.hardship_day, 0.5, 1.0)
    )
    hazard = (
        book.base_hazard
        * dpd_factor
        * payday_factor
        * (1.0 + book.call_effect * np.exp(-np.maximum(since_rpc, 0) / 3.0))
        * (1.0 + book.sms_effect * np.exp(-np.maximum(since_sms, 0) / 2.0))
        * config.broken_promise_factor ** np.minimum(state.broken, 3)
        * flags
    )
    outstanding = cum_fallen + due_today - state.paid
    promise_due = (
        (state.promise_day >= 0)
        & state.promise_keep
        & (today >= state.promise_day)
        & (today <= state.promise_day + 1)
        & (outstanding > 0)
    )
    p_day = np.where(
        promise_due,
        np.where(today == state.promise_day, 0.85, 0.9) * flags,
        np.where(delinquent, 1.0 - np.exp(-hazard), np.where(due_today > 0, book.on_time * flags, 0.0)),
    )
    p_window = 1.0 - (1.0 - p_day) ** _fraction(day.lo, day.hi, _PAY_HOURS)
    payers = np.flatnonzero(draws[0] < p_window)
    if len(payers):
        u_amount = draws[1, payers]
        full = overdue[payers] + np.where(draws[2, payers] < 0.5, due_today[payers], 0)
        partial = np.maximum(100, np.round(overdue[payers] * (0.2 + 0.7 * draws[3, payers]) / 100) * 100)
        regular = np.where(
            u_amount < book.full_pay[payers],
            full,
            np.where(u_amount < (1 + book.full_pay[payers]) / 2, oldest_left[payers], partial),
        )
        amount = np.where(
            promise_due[payers],
            np.minimum(state.promise_amount[payers] - state.promise_paid[payers], outstanding[payers]),
            np.where(delinquent[payers], regular, due_today[payers]),
        )
        amount = np.maximum(amount, 1).astype(np.int64)
        settled = draws[4, payers] >= book.returned[payers]
        good = payers[settled]
        state.paid[good] += amount[settled]
        state.promise_paid[good] += amount[settled]
        state.settled_window[good] += amount[settled]
        state.oldest[good] = _oldest_uncovered(book.due_cum[good], state.paid[good])
        if recorder is not None:
            start = np.maximum(day.lo[payers], _PAY_HOURS[0])
            after_call = rpc_hour[payers]
            start = np.where(np.isnan(after_call), start, np.maximum(start, after_call + 0.05))
            end = np.minimum(day.hi[payers], _PAY_HOURS[1])
            hour = np.minimum(start + draws[5, payers] * np.maximum(end - start, 0), end - 1 / 3600)
            on_time = ~delinquent[payers] & ~promise_due[payers]
            channel = np.where(on_time & (draws[6, payers] < 0.45), 2, (draws[7, payers] * 3.999).astype(np.int8) % 4)
            channel = np.where(channel == 2, np.where(on_time, 2, 0), channel)
            recorder.payments.append(
                {
                    "account": book.account[payers],
                    "time": _utc_us(day, payers, (hour * 3600).astype(np.int64)),
                    "amount": amount,
                    "status": (~settled).astype(np.int8),
                    "channel": np.where(draws[6, payers] > 0.98, -1, channel).astype(np.int8),
                }
            )

    if recorder is not None:
        _record_contacts(recorder, contact_parts, promise_parts)


def _rpc_outcome(kind: np.ndarray, u: np.ndarray) -> np.ndarray:
    """right_party / promise_to_pay / refused / dispute code of a right-party contact, by kind."""
    cumulative = np.cumsum(_RPC_OUTCOMES, axis=1)[kind]
    return (_RIGHT_PARTY + (u[:, None] >= cumulative[:, :-1]).sum(axis=1)).astype(np.int8)


def _policy_calls(
    book,
    state,
    cal,
    config,
    capacity,
    day,
    overdue,
    dpd,
    oldest_left,
    rng,
    rpc_hour,
    contacted,
    contact_parts,
    promise_parts,
    recorder,
) -> None:
    """The historical calling policy of one day: noisy supervisor sort plus exploration, partly random hours."""
    n = book.n
    step = day.step
    today = day.day
    team = np.searchsorted(np.asarray(_TEAM_DPD_UPPER), dpd, side="left").astype(np.int8)
    has_slot = cal.has_slot[team, book.zone, step]
    eligible = (overdue > 0) & (today < book.call_block_day) & has_slot
    if config.policy == "us_reg_f":
        eligible &= (today - state.last_conv_day >= 8) & (state.attempts.sum(axis=0) < 6)
    noise = rng.gumbel(size=n).astype(np.float32) * np.float32(config.supervisor_noise)
    score = np.log(np.maximum(overdue, 1)).astype(np.float32) + noise
    chosen = []
    for team_index in range(len(TEAM_NAMES)):
        candidates = np.flatnonzero(eligible & (team == team_index))
        k = min(int(capacity[team_index]), len(candidates))
        if k == 0:
            continue
        explore = int(round(config.explore_share * k))
        top = k - explore
        order = np.argsort(-score[candidates], kind="stable")
        picked = candidates[order[:top]]
        rest = candidates[order[top:]]
        chosen.append(np.concatenate([picked, rng.choice(rest, size=explore, replace=False)]))
    if not chosen:
        return
    called = np.sort(np.concatenate(chosen))
    m = len(called)
    draws = rng.random((10, m), dtype=np.float32)
    habit = draws[0] >= config.random_hour_share
    weights = cal.slot_weights[habit.astype(np.int8), team[called], book.zone[called], step]
    cumulative = np.cumsum(weights, axis=1)
    target = draws[1] * cumulative[:, -1]
    hour = (cumulative <= target[:, None]).sum(axis=1).clip(0, 23)
    # A uniform second of the part of the hour inside the shift (the whole hour in whole-hour zones).
    start = cal.shift_start[team[called], book.zone[called], step, hour]
    length = cal.slot_weights[0, team[called], book.zone[called], step, hour]
    within = (start * 3600 + (draws[2] * 3599).astype(np.int64) * length).astype(np.int64)
    seconds = hour.astype(np.int64) * 3600 + within
    p = _p_rpc(book, called, hour, day.weekday[called], today[called])
    reached = draws[3] < p
    miss = (draws[4][:, None] >= np.cumsum(_MISS_PROBS)[None, :-1]).sum(axis=1)
    miss = np.where(book.wrong_number[called], np.where(draws[5] < 0.75, _WRONG_NUMBER, _NO_ANSWER), miss)
    outcome = np.where(reached, _rpc_outcome(book.kind[called], draws[5]), miss).astype(np.int8)
    hit = called[reached]
    rpc_hour[hit] = hour[reached] + seconds[reached] % 3600 / 3600
    contacted[called] = True
    state.last_rpc_day[hit] = today[hit]
    state.last_conv_day[hit] = today[hit]
    state.attempts[step % 7, called] += 1
    promising_mask = outcome == _PROMISE
    promising = called[promising_mask]
    promised_day, amount = _take_promises(state, book, promising, day, overdue, oldest_left, draws[6:9, promising_mask])
    if recorder is None:
        return
    duration = np.select(
        [outcome == 0, outcome == 1, outcome == 2, outcome == 3, outcome == 4, outcome == 5],
        [
            15 + draws[9] * 30,
            draws[9] * 5,
            20 + draws[9] * 40,
            3 + draws[9] * 17,
            10 + draws[9] * 50,
            30 + draws[9] * 90,
        ],
        np.exp(np.log(60) + draws[9] * np.log(15)),
    ).astype(np.int32)
    starts = recorder.agents_start
    team_size = np.maximum(starts[team[called] + 1] - starts[team[called]], 1)
    agent = starts[team[called]] + (draws[6] * team_size).astype(np.int32) % team_size
    contact_parts.append(
        {
            "account": book.account[called],
            "time": _utc_us(day, called, seconds),
            "channel": np.full(m, _CALL, np.int8),
            "direction": np.zeros(m, np.int8),
            "outcome": outcome,
            "agent": agent.astype(np.int32),
            "duration": duration,
        }
    )
    promise_parts.append(
        _promise_part(book, day, promising, promising_mask, seconds, promised_day, amount, len(contact_parts) - 1)
    )


def _record_contacts(recorder: _Recorder, contact_parts, promise_parts) -> None:
    """Append today's contacts sorted by time, with global contact numbers, and their promises."""
    if not contact_parts:
        return
    sizes = np.array([len(part["account"]) for part in contact_parts])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    day = {key: np.concatenate([part[key] for part in contact_parts]) for key in contact_parts[0]}
    order = np.lexsort((day["account"], day["time"]))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    recorder.contacts.append({key: values[order] for key, values in day.items()})
    for part in promise_parts:
        if len(part["account"]) == 0:
            continue
        row = offsets[part["part"]] + part["row"]
        recorder.promises.append(
            {
                "account": part["account"],
                "time": part["time"],
                "promised_day": part["promised_day"],
                "amount": part["amount"],
                "contact": recorder.contact_count + position[row],
            }
        )
    recorder.contact_count += len(order)


# ---------------------------------------------------------------------------------------------
# Tables


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers like A0000001, built in Arrow (fast for tens of millions of rows)."""
    # large_string: Arrow sizes the padded result for the worst case (4 bytes a character), which
    # passes the 2 GiB of a plain string array from ~50 million ids on.
    text = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.large_string()), width, "0")
    empty = pa.scalar("", pa.large_string())
    return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), text, empty)


def _strings(values: pa.Array) -> pd.Series:
    return pd.Series(values, dtype="string")


def _decode(codes: np.ndarray, names: tuple[str, ...] | list[str]) -> pd.Series:
    """Codes to strings; negative codes become null."""
    codes = np.asarray(codes)
    indices = pa.array(np.where(codes < 0, 0, codes).astype(np.int32), mask=codes < 0)
    return _strings(pc.take(pa.array(list(names) or [""], type=pa.string()), indices))


def _dates(day_numbers: np.ndarray) -> np.ndarray:
    return (np.asarray(day_numbers, dtype=np.int64) * 86400).astype("datetime64[s]")


def _timestamps(micros: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(micros, dtype=np.int64), unit="us", utc=True))


def _concat(chunks: list[dict[str, np.ndarray]], keys: tuple[str, ...], dtypes: dict) -> dict[str, np.ndarray]:
    if not chunks:
        return {key: np.zeros(0, dtype=dtypes[key]) for key in keys}
    return {key: np.concatenate([chunk[key] for chunk in chunks]).astype(dtypes[key]) for key in keys}


def _account_tables(
    config: SimulationConfig,
    book: _Book,
    static: _Static,
    cal: _Calendar,
    ops: Operations,
    state: _State,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """accounts and dues at as_of; team by stage (DPD as the contract computes it), unassigned when current."""
    n = book.n
    account_ids = _strings(_ids("A", np.arange(1, n + 1), 7))
    customer_ids = _strings(_ids("C", book.customer.astype(np.int64) + 1, 7))
    as_of_day = cal.as_of_us // (86400 * _US)
    overdue, dpd, _ = _contract_view(book, state, as_of_day)
    team = np.where(dpd <= 0, -1, np.searchsorted(np.asarray(_TEAM_DPD_UPPER), dpd, side="left"))
    team = np.where(rng.random(n) < 0.03, -1, team)  # a few accounts wait for assignment
    names, starts = _agent_names(ops)
    size = np.maximum(starts[np.maximum(team, 0) + 1] - starts[np.maximum(team, 0)], 1)
    agent = np.where(team >= 0, starts[np.maximum(team, 0)] + rng.integers(0, 1 << 30, n) % size, -1)
    agent = np.where((team >= 0) & (rng.random(n) < 0.1), -1, agent)  # some sit in a team queue
    last_history = cal.first_day[book.zone] + cal.last_history_step
    accounts = pd.DataFrame(
        {
            "account_id": account_ids,
            "customer_id": customer_ids,
            "product": _decode(static.product, _PRODUCTS),
            "opened_date": _dates(static.opened_day),
            "credit_limit": static.credit_limit.astype(np.float64),
            "timezone": _decode(book.zone, cal.zones),
            "team": _decode(team, TEAM_NAMES),
            "agent_id": _decode(agent, names),
            **{name: static.flag_day[name] <= last_history for name in static.flag_day},
        }
    )
    amounts = np.diff(book.due_cum, axis=1)
    rows, cols = np.nonzero(amounts > 0)
    dues = pd.DataFrame(
        {
            "account_id": account_ids.take(rows).reset_index(drop=True),
            "due_date": _dates(book.due_day[rows, cols]),
            "amount_due": amounts[rows, cols] / 100.0,
        }
    )
    return accounts, dues


def _contract_view(book: _Book, state: _State, as_of_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Amount overdue, DPD and the label's required amount at as_of, as the contract defines them (cents)."""
    lanes = np.arange(book.n)
    fallen = (book.due_day < as_of_day).sum(axis=1)
    overdue = np.maximum(book.due_cum[lanes, fallen] - state.paid, 0)
    oldest = np.minimum(state.oldest, book.due_day.shape[1] - 2)
    dpd = np.where(overdue > 0, as_of_day - book.due_day[lanes, oldest], 0)
    oldest_left = book.due_cum[lanes, oldest + 1] - state.paid
    required = np.where(overdue > 0, np.minimum(overdue, oldest_left), 0)
    return overdue, dpd, required


def _event_tables(recorder: _Recorder, account_ids: pd.Series, ops: Operations):
    """payments, contacts and promises frames from the recorded chunks."""
    payments = _concat(
        recorder.payments,
        ("account", "time", "amount", "status", "channel"),
        {"account": np.int32, "time": np.int64, "amount": np.int64, "status": np.int8, "channel": np.int8},
    )
    contacts = _concat(
        recorder.contacts,
        ("account", "time", "channel", "direction", "outcome", "agent", "duration"),
        {
            "account": np.int32,
            "time": np.int64,
            "channel": np.int8,
            "direction": np.int8,
            "outcome": np.int8,
            "agent": np.int32,
            "duration": np.int32,
        },
    )
    promises = _concat(
        recorder.promises,
        ("account", "time", "promised_day", "amount", "contact"),
        {
            "account": np.int32,
            "time": np.int64,
            "promised_day": np.int64,
            "amount": np.int64,
            "contact": np.int64,
        },
    )
    # The chunks are copied into the arrays above: drop them (half the peak memory of a large book).
    recorder.payments.clear()
    recorder.contacts.clear()
    recorder.promises.clear()
    names, _ = _agent_names(ops)
    account_arrow = pa.array(account_ids.array)
    n_payments, n_contacts, n_promises = (
        len(payments["account"]),
        len(contacts["account"]),
        len(promises["account"]),
    )
    payment_frame = pd.DataFrame(
        {
            "payment_id": _strings(_ids("P", np.arange(1, n_payments + 1), 9)),
            "account_id": _strings(pc.take(account_arrow, pa.array(payments["account"]))),
            "paid_at": _timestamps(payments["time"]),
            "amount": payments["amount"] / 100.0,
            "status": _decode(payments["status"], _STATUSES),
            "channel": _decode(payments["channel"], _PAY_CHANNELS),
        }
    )
    voice = contacts["channel"] == _CALL
    contact_frame = pd.DataFrame(
        {
            "contact_id": _strings(_ids("K", np.arange(1, n_contacts + 1), 9)),
            "account_id": _strings(pc.take(account_arrow, pa.array(contacts["account"]))),
            "started_at": _timestamps(contacts["time"]),
            "channel": _decode(contacts["channel"], _CHANNELS),
            "direction": _decode(contacts["direction"], _DIRECTIONS),
            "outcome": _decode(contacts["outcome"], _OUTCOMES),
            "agent_id": _decode(contacts["agent"], names),
            "duration_s": pd.arrays.IntegerArray(contacts["duration"].astype(np.int64), ~voice),
        }
    )
    promise_frame = pd.DataFrame(
        {
            "promise_id": _strings(_ids("R", np.arange(1, n_promises + 1), 9)),
            "account_id": _strings(pc.take(account_arrow, pa.array(promises["account"]))),
            "created_at": _timestamps(promises["time"]),
            "promised_date": _dates(promises["promised_day"]),
            "promised_amount": promises["amount"] / 100.0,
            "contact_id": _strings(_ids("K", promises["contact"] + 1, 9)),
        }
    )
    return payment_frame, contact_frame, promise_frame


# ---------------------------------------------------------------------------------------------
# Simulation and its ground truth


def _streams(seed_sequence: np.random.SeedSequence) -> dict[str, np.random.Generator]:
    # "record" draws what only the exported history shows (a message's minute); spawned last, so the
    # other streams are the same as without it.
    names = ("calls", "contact", "pay", "forced", "record")
    return {
        name: np.random.default_rng(child) for name, child in zip(names, seed_sequence.spawn(len(names)), strict=True)
    }


@dataclass
class Simulation:
    """A simulated book: the export, the operations file, and the ground truth at as_of."""

    export: Export
    operations: Operations
    world: World
    config: SimulationConfig


class World:
    """Ground truth at as_of per account, from the same mechanics that made the history.

    Probabilities come from a seeded Monte Carlo of the horizon (`truth_replicas` replicas per
    account, common random numbers between "no call" and "reached"), computed lazily and cached.
    """

    def __init__(self, config: SimulationConfig, book: _Book, state: _State, cal: _Calendar, account_ids):
        self.config = config
        self._book = book
        self._state = state
        self._cal = cal
        self.account_ids = pd.Index(np.asarray(account_ids, dtype=object))
        as_of_day = cal.as_of_us // (86400 * _US)
        overdue, dpd, required = _contract_view(book, state, as_of_day)
        self.amount_overdue = overdue / 100.0
        self.days_past_due = dpd
        self.money_at_stake = required / 100.0  # the amount the label requires
        self._required = required
        self._p_no_call: np.ndarray | None = None
        self._p_reached: dict[int, np.ndarray] = {}
        self._settled_no_call: np.ndarray | None = None
        self._settled_reached: dict[int, np.ndarray] = {}
        # The list date callq ranks by default (`serving.pipeline.default_list_date`): the first centre
        # date whose earliest shift starts at or after as_of.
        centre = pd.Timestamp(config.as_of).tz_convert(config.centre_zone)
        earliest = min(dt.time.fromisoformat(start) for start, _ in _TEAM_SHIFTS)
        self.list_date = centre.date() if centre.time() <= earliest else centre.date() + dt.timedelta(days=1)
        self._kind = book.kind

    # -- lookups
    def _index(self, account_ids) -> np.ndarray:
        positions = self.account_ids.get_indexer(pd.Index(np.atleast_1d(np.asarray(account_ids, dtype=object))))
        if (positions < 0).any():
            raise KeyError("unknown account ids in the request")
        return positions

    def kinds(self, account_ids) -> np.ndarray:
        """The debtor kind of each account (for analysis; models never see it)."""
        return np.asarray(KINDS, dtype=object)[self._kind[self._index(account_ids)]]

    def _horizon_step(self, positions: np.ndarray, call_at_utc) -> np.ndarray:
        """Horizon step (0 = the local date of as_of) of each call in the debtor's zone; -1 outside."""
        micros = _to_micros(call_at_utc, len(positions))
        zone = self._book.zone[positions]
        offset = np.zeros(len(positions), dtype=np.int64)
        for z, name in enumerate(self._cal.zones):
            rows = zone == z
            if rows.any():
                local = pd.to_datetime(micros[rows], unit="us", utc=True).tz_convert(name).tz_localize(None)
                local_micros = local.to_numpy().astype("datetime64[us]").astype(np.int64)
                offset[rows] = (local_micros - micros[rows]) // _US
        local_day = (micros // _US + offset) // 86400
        step = local_day - (self._cal.first_day[zone] + self._cal.last_history_step)
        inside = (micros >= self._cal.as_of_us) & (step >= 0) & (step <= self.config.horizon_days)
        return np.where(inside, step, -1), local_day, (micros // _US + offset) % 86400 // 3600

    # -- ground truth
    def true_p_repay(self, account_ids) -> np.ndarray:
        """P(label) with no outbound call in the horizon."""
        return self._no_call()[self._index(account_ids)]

    def true_p_repay_if_reached(
        self, account_ids, step: int | None = None, *, list_date: dt.date | None = None
    ) -> np.ndarray:
        """P(label) given a right-party contact on the list date (`list_date`, default `self.list_date`;
        or on horizon `step`, 0 = as_of's local date)."""
        positions = self._index(account_ids)
        steps = self._default_steps(positions, list_date) if step is None else np.full(len(positions), step)
        return self._reached_at(positions, steps)

    def true_settled(self, account_ids) -> np.ndarray:
        """Expected money settled in the horizon with no outbound call (every payment, not only the label's)."""
        self._no_call()
        return self._settled_no_call[self._index(account_ids)]

    def true_settled_if_reached(
        self, account_ids, step: int | None = None, *, list_date: dt.date | None = None
    ) -> np.ndarray:
        """Expected money settled in the horizon given a right-party contact on the list date (or `step`)."""
        positions = self._index(account_ids)
        steps = self._default_steps(positions, list_date) if step is None else np.full(len(positions), step)
        return self._reached_at(positions, steps, settled=True)

    def true_p_contact(self, account_ids, call_at_utc) -> np.ndarray:
        """P(right-party contact) of a call at those UTC instants (debtor-local hour and weekday)."""
        positions = self._index(account_ids)
        _, local_day, local_hour = self._horizon_step(positions, call_at_utc)
        weekday = ((local_day + 3) % 7).astype(np.int64)
        return _p_rpc(self._book, positions, local_hour, weekday, local_day).astype(float)

    def true_call_value(self, account_ids, call_at_utc, *, settled: bool = False) -> np.ndarray:
        """Expected extra money from that call vs no call: p_contact x (p_reached - p_no_call) x money at stake.

        With `settled`: p_contact x the extra settled money a right-party contact brings in the horizon.
        """
        positions = self._index(account_ids)
        steps, _, _ = self._horizon_step(positions, call_at_utc)
        p_contact = self.true_p_contact(account_ids, call_at_utc)
        p_none = self._no_call()
        if settled:
            return p_contact * (self._reached_at(positions, steps, settled=True) - self._settled_no_call[positions])
        return p_contact * (self._reached_at(positions, steps) - p_none[positions]) * self.money_at_stake[positions]

    def replay(self, call_list: pd.DataFrame) -> ReplayResult:
        """Expected money collected in the horizon over the whole book with these calls vs with none."""
        p_none = self._no_call()
        p_with = p_none.copy()
        settled_none = self._settled_no_call
        settled_with = settled_none.copy()
        p_any = np.zeros(len(p_none))
        if len(call_list):
            positions = self._index(call_list["account_id"].to_numpy())
            call_at = call_list["call_at"]
            p_contact = self.true_p_contact(call_list["account_id"].to_numpy(), call_at)
            steps, _, _ = self._horizon_step(positions, call_at)
            frame = pd.DataFrame(
                {
                    "pos": positions,
                    "miss": 1.0 - p_contact,
                    "step": steps,
                    "time": _to_micros(call_at, len(positions)),
                }
            )
            first = frame.sort_values(["pos", "time"], kind="stable").groupby("pos", sort=True).first()
            miss = frame.groupby("pos", sort=True)["miss"].prod()
            called = miss.index.to_numpy()
            p_any[called] = 1.0 - miss.to_numpy()
            reached = self._reached_at(called, first["step"].to_numpy())
            p_with[called] = (1.0 - p_any[called]) * p_none[called] + p_any[called] * reached
            settled_reached = self._reached_at(called, first["step"].to_numpy(), settled=True)
            settled_with[called] = (1.0 - p_any[called]) * settled_none[called] + p_any[called] * settled_reached
        stake = self.money_at_stake
        per_account = pd.DataFrame(
            {
                "account_id": pd.Series(self.account_ids.to_numpy(), dtype="string"),
                "money_at_stake": stake,
                "p_contact_any": p_any,
                "p_repay_no_calls": p_none,
                "p_repay_with_calls": p_with,
                "expected_no_calls": p_none * stake,
                "expected_with_calls": p_with * stake,
                "settled_no_calls": settled_none,
                "settled_with_calls": settled_with,
            }
        )
        per_account["extra"] = per_account["expected_with_calls"] - per_account["expected_no_calls"]
        total = float(per_account["expected_with_calls"].sum())
        none = float(per_account["expected_no_calls"].sum())
        return ReplayResult(
            collected_total=total,
            collected_no_calls=none,
            extra=total - none,
            per_account=per_account,
            settled_total=float(settled_with.sum()),
            settled_no_calls=float(settled_none.sum()),
        )

    # -- Monte Carlo
    def _default_steps(self, positions: np.ndarray, list_date: dt.date | None = None) -> np.ndarray:
        """Horizon step of `list_date` (default `self.list_date`) in each account's zone."""
        list_day = ((list_date or self.list_date) - dt.date(1970, 1, 1)).days
        last = self._cal.first_day[self._book.zone[positions]] + self._cal.last_history_step
        return np.clip(list_day - last, 0, self.config.horizon_days)

    def _no_call(self) -> np.ndarray:
        if self._p_no_call is None:
            self._p_no_call, self._settled_no_call = self._monte_carlo(None)
        return self._p_no_call

    def _reached_at(self, positions: np.ndarray, steps: np.ndarray, *, settled: bool = False) -> np.ndarray:
        """P(label) (or, with `settled`, expected settled money) given a right-party contact on horizon `steps`."""
        self._no_call()
        out = (self._settled_no_call if settled else self._p_no_call)[positions].copy()
        for step in np.unique(steps):
            if step < 0:
                continue
            if step not in self._p_reached:
                self._p_reached[int(step)], self._settled_reached[int(step)] = self._monte_carlo(int(step))
            rows = steps == step
            out[rows] = (self._settled_reached if settled else self._p_reached)[int(step)][positions[rows]]
        return out

    def _monte_carlo(self, forced_step: int | None) -> tuple[np.ndarray, np.ndarray]:
        """P(label) and expected settled money per account over the horizon, by replicas.

        Chunks of accounts keep memory flat.
        """
        replicas = self.config.truth_replicas
        n = self._book.n
        chunk = max(1, 200_000 // replicas)
        # Nothing is required of an account with nothing overdue: its label is met (P = 1). Its
        # settled money is not simulated (no call can change it) and counts as 0 in both runs.
        result = np.ones(n)
        settled = np.zeros(n)
        owing = np.flatnonzero(self._required > 0)
        first = self._cal.last_history_step
        for chunk_index, start in enumerate(range(0, len(owing), chunk)):
            accounts = owing[start : start + chunk]
            lanes = np.repeat(accounts, replicas)
            book = self._book.take(lanes)
            state = self._state.take(lanes)
            state.settled_window[:] = 0
            seeds = np.random.SeedSequence([self.config.seed, 7919, self.config.truth_seed, chunk_index])
            streams = _streams(seeds)
            forced = None
            if forced_step is not None:
                forced = np.full(len(lanes), first + forced_step, dtype=np.int64)
            for step in range(first, first + self.config.horizon_days + 1):
                _advance(
                    book,
                    state,
                    self._cal,
                    self.config,
                    None,
                    step,
                    horizon=True,
                    streams=streams,
                    forced_rpc_step=forced,
                )
            label = state.settled_window >= self._required[lanes]
            result[accounts] = label.reshape(-1, replicas).mean(axis=1)
            settled[accounts] = state.settled_window.reshape(-1, replicas).mean(axis=1) / 100.0
        return result, settled


def _to_micros(values, n: int) -> np.ndarray:
    """UTC instants (scalar or array-like of timestamps) as int64 microseconds, broadcast to n."""
    stamps = pd.to_datetime(
        pd.Series(np.atleast_1d(np.asarray(values, dtype=object)) if not isinstance(values, pd.Series) else values),
        utc=True,
    )
    micros = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    return np.broadcast_to(micros, (n,)).copy() if len(micros) == 1 else micros


def simulate(config: SimulationConfig) -> Simulation:
    """Simulate the book's history up to as_of; vectorised over accounts, one step per local day."""
    root = np.random.SeedSequence(config.seed)
    book_seed, history_seed, table_seed = root.spawn(3)
    ops = build_operations(config)
    cal = _build_calendar(config, ops)
    book, static = _build_book(config, cal, np.random.default_rng(book_seed))
    state = _initial_state(book, cal)
    _, agents_start = _agent_names(ops)
    recorder = _Recorder(agents_start=agents_start)
    capacity = np.array(
        [
            (team.hourly_capacity * len(team.shift.whole_hours())) if (team := ops.team(name)) else 0
            for name in TEAM_NAMES
        ]
    )
    streams = _streams(history_seed)
    for step in range(config.days):
        _advance(book, state, cal, config, capacity, step, horizon=False, streams=streams, recorder=recorder)
    rng = np.random.default_rng(table_seed)
    accounts, dues = _account_tables(config, book, static, cal, ops, state, rng)
    payments, contacts, promises = _event_tables(recorder, accounts["account_id"], ops)
    as_of = pd.Timestamp(config.as_of).tz_convert("UTC")
    for name, frame, column in (
        ("payments", payments, "paid_at"),
        ("contacts", contacts, "started_at"),
        ("promises", promises, "created_at"),
    ):
        if len(frame) and frame[column].max() >= as_of:
            raise AssertionError(f"simulated {name} reach as_of: a bug in the day windows")
    export = Export(
        as_of=as_of,
        accounts=accounts,
        dues=dues,
        payments=payments,
        contacts=contacts,
        promises=promises,
        source="simulation",
    )
    world = World(config, book, state, cal, accounts["account_id"].to_numpy())
    return Simulation(export=export, operations=ops, world=world, config=config)


def generate(
    out_dir: str | Path, config: SimulationConfig, *, fmt: Literal["parquet", "csv"] = "parquet"
) -> Simulation:
    """Simulate and write the export (contract layout) and `operations.yaml` into `out_dir`."""
    from features.io import write_export

    simulation = simulate(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_export(simulation.export, out, fmt=fmt)
    simulation.operations.to_yaml(out / "operations.yaml")
    return simulation
