"""Flag features: copied from the accounts table, grouped into no_call and special_handling."""

from __future__ import annotations

from features.build import build_features
from features.contract import FLAG_COLUMNS
from tests.features.random_export import account_row, make_export


def test_no_call_and_special_handling_group_the_flags():
    export = make_export(
        accounts=[
            account_row("plain"),
            account_row("dnc", do_not_call=True),
            account_row("dead", deceased=True),
            account_row("hard", hardship=True),
            account_row("both", cease_contact=True, complaint_open=True),
        ]
    )
    features = build_features(export).set_index("account_id")
    assert list(features["no_call"]) == [False, True, True, False, True]
    assert list(features["special_handling"]) == [False, False, False, True, True]
    assert features.loc["dnc", "do_not_call"] and not features.loc["plain", list(FLAG_COLUMNS)].any()
