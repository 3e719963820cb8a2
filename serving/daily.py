"""One day's results for one export: what the CLI writes and the API and page serve."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class DailyRun:
    """Scores, the call list and everything a supervisor needs to read it, for one list date."""

    as_of: pd.Timestamp  # the export's as_of (UTC)
    list_date: dt.date  # centre-local date the list is for
    centre_timezone: str
    scores: pd.DataFrame  # contract `scores`, one row per account
    call_list: pd.DataFrame  # contract `call_list`, rank 1 first
    special_handling: pd.DataFrame  # account_id, customer_id, team, reason, amount_overdue, days_past_due
    capacity: pd.DataFrame  # team, call_at (UTC), centre_hour, capacity, scheduled
    explanations: pd.DataFrame  # account_id, feature, value, contribution
    models: dict = field(default_factory=dict)  # name -> {"version": str, "metrics": {...}}
    model_version: str = ""
    # Accounts left off the list, by the first rule that excluded them (serving.eligibility.EXCLUSION_RULES).
    excluded: dict[str, int] = field(default_factory=dict)
    # Every account's team (a null team is `default`), indexed by account_id: who may read its explanation.
    account_teams: pd.Series | None = None
