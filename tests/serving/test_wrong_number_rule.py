"""No call to a customer whose number is known wrong: a telephone call to one of their accounts ended
`wrong_number` and no call has reached the debtor since, so dialling it again reaches an unrelated third party
(China guideline: never contact unrelated third parties about the debt; Regulation F limits third-party
communications). Under every policy, per customer (one person, one number), read the same way by the
ranker's filter and by the guard."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from serving.compliance import ComplianceError, assert_compliant, check_call_list
from serving.eligibility import customer_wrong_number
from serving.pipeline import default_list_date, score_day
from serving.ranking import rank_calls
from tests.factories import typed_frame
from tests.serving.portfolios import (
    account_row,
    build_export,
    call_row,
    candidate_times,
    constant_contact,
    flat_scores,
    one_call,
    operations,
    rules_broken,
)

DAY = "2026-11-23"
AS_OF = "2026-11-23T02:00:00Z"  # 10:00 on D in Shanghai
ELEVEN_AM = "2026-11-23T03:00:00Z"  # 11:00 on D in Shanghai
POLICIES = {
    "cn": {},
    "us_reg_f": {},
    # No window to speak of and no frequency limit at all: the rule is not one of the policy's numbers.
    "custom": {"rules": {"call_window_start": 0, "call_window_end": 24}},
}


def ops(policy: str = "cn"):
    return operations(policy, shift=("08:00", "20:00"), **POLICIES[policy])


def contact(account: str, started_at: str, outcome: str | None, direction: str = "outbound", channel: str = "call"):
    """A contacts row; ids are unique by construction (the same call twice is two rows)."""
    row = call_row(account, started_at, outcome, direction)
    return {**row, "channel": channel, "contact_id": f"{row['contact_id']}-{channel}"}


def book(history: list[dict]):
    """C1 holds A1 and A2; A3 is another customer's, as a control. All in Shanghai, team early."""
    accounts = [account_row("A1", customer_id="C1"), account_row("A2", customer_id="C1"), account_row("A3")]
    return build_export(AS_OF, accounts, history)


def ranker_calls(export, policy: str = "cn") -> set[str]:
    """Accounts the ranker allows any slot to on D."""
    return {account for account in ("A1", "A2", "A3") if candidate_times(export, ops(policy), DAY, account)}


def guard_refuses(export, account: str, policy: str = "cn") -> set[str]:
    """The guard's rules broken by a one-call list calling `account` at 11:00 on D."""
    return rules_broken(one_call(export, ELEVEN_AM, DAY, account), export, ops(policy), DAY)


WRONG_ON_A1 = contact("A1", "2026-11-10T03:00:00Z", "wrong_number")


@pytest.mark.parametrize("policy", list(POLICIES))
def test_the_ranker_leaves_out_every_account_of_the_customer_and_counts_them_under_the_rule(policy):
    export = book([WRONG_ON_A1])
    result = rank_calls(export, ops(policy), DAY, flat_scores(export), constant_contact)
    assert set(result.call_list["account_id"]) == {"A3"}
    assert result.diagnostics.excluded["wrong_number"] == 2  # A1 and its sibling A2: one person, one number
    assert ranker_calls(export, policy) == {"A3"}
    # The guard agrees, on the account dialled wrong and on its sibling alike.
    assert guard_refuses(export, "A1", policy) == {"wrong_number"}
    assert guard_refuses(export, "A2", policy) == {"wrong_number"}
    assert guard_refuses(export, "A3", policy) == set()
    assert check_call_list(result.call_list, export, ops(policy), DAY) == []


def test_a_wrong_number_on_a_sibling_account_blocks_the_whole_customer():
    export = book([contact("A2", "2026-11-01T03:00:00Z", "wrong_number", "inbound")])  # any direction
    assert ranker_calls(export) == {"A3"}
    assert guard_refuses(export, "A1") == {"wrong_number"}


@pytest.mark.parametrize(
    ("since", "callable_again"),
    [
        # Our call that reached the debtor, any right-party outcome, on any of their accounts.
        ([contact("A1", "2026-11-12T03:00:00Z", "right_party")], True),
        ([contact("A2", "2026-11-12T03:00:00Z", "refused")], True),
        ([contact("A2", "2026-11-12T03:00:00Z", "promise_to_pay")], True),
        # The debtor's own call may come from another phone: it does not show the number we dial is theirs
        # (in the simulated worlds a wrong-number debtor calls in and their number stays wrong).
        ([contact("A1", "2026-11-12T03:00:00Z", "right_party", "inbound")], False),
        ([contact("A2", "2026-11-12T03:00:00Z", "promise_to_pay", "inbound")], False),
        ([contact("A1", "2026-11-12T03:00:00Z", "dispute", "inbound")], False),
        ([contact("A1", "2026-11-10T03:00:00Z", "right_party")], True),  # at the wrong number's time: at or after
        # Not a right-party call: the number is still doubtful.
        ([contact("A1", "2026-11-09T03:00:00Z", "right_party")], False),  # before the wrong number
        ([contact("A1", "2026-11-12T03:00:00Z", "third_party")], False),
        ([contact("A1", "2026-11-12T03:00:00Z", "hung_up")], False),
        ([contact("A1", "2026-11-12T03:00:00Z", None)], False),  # unknown outcome: not known to have reached them
        ([contact("A1", "2026-11-12T03:00:00Z", "right_party", channel="visit")], False),  # met at the door
        ([contact("A3", "2026-11-12T03:00:00Z", "right_party", "inbound")], False),  # another customer
        # Reached, then dialled wrong again: the latest wrong number counts.
        (
            [
                contact("A1", "2026-11-12T03:00:00Z", "right_party"),
                contact("A2", "2026-11-15T03:00:00Z", "wrong_number"),
            ],
            False,
        ),
    ],
)
def test_a_right_party_call_at_or_after_the_wrong_number_makes_the_customer_callable_again(since, callable_again):
    assert ranker_calls(book([WRONG_ON_A1])) == {"A3"}  # dialled wrong, and nothing since
    export = book([WRONG_ON_A1, *since])
    expected = {"A1", "A2", "A3"} if callable_again else {"A3"}
    assert ranker_calls(export) == expected
    for account in ("A1", "A2"):
        assert guard_refuses(export, account) == (set() if callable_again else {"wrong_number"})


@pytest.mark.parametrize("policy", list(POLICIES))
def test_only_a_telephone_call_ending_wrong_number_before_as_of_counts(policy):
    accounts = [account_row(f"A{index}", customer_id=f"C{index}") for index in range(1, 7)]
    history = [
        contact("A1", "2026-11-10T03:00:00Z", "wrong_number"),  # the only one that counts
        contact("A2", "2026-11-10T03:00:00Z", "wrong_number", channel="visit"),  # a wrong address, not a number
        # Not an SMS outcome (the loader refuses the row); an export built otherwise still dials no one.
        contact("A3", "2026-11-10T03:00:00Z", "wrong_number", channel="sms"),
        contact("A4", "2026-11-10T03:00:00Z", None),  # an unknown outcome is no explicit wrong number
        contact("A5", AS_OF, "wrong_number"),  # at as_of: not before it (the loader refuses it too)
    ]
    export = build_export(AS_OF, accounts, history)
    found = {account for account in export.accounts["account_id"] if candidate_times(export, ops(policy), DAY, account)}
    assert found == {"A2", "A3", "A4", "A5", "A6"}
    refused = {
        account for account in export.accounts["account_id"] if "wrong_number" in guard_refuses(export, account, policy)
    }
    assert refused == {"A1"}


def test_the_guard_refuses_a_hand_made_list_naming_the_account_the_rule_and_the_wrong_number():
    export = book([WRONG_ON_A1])
    calls = pd.concat(
        [one_call(export, ELEVEN_AM, DAY, "A3"), one_call(export, "2026-11-23T04:00:00Z", DAY, "A2")],
        ignore_index=True,
    ).assign(rank=[1, 2])
    violations = check_call_list(calls, export, ops(), DAY)
    assert [(violation.account_id, violation.rule) for violation in violations] == [("A2", "wrong_number")]
    message = str(violations[0])
    assert message.startswith("account A2 at 2026-11-23T04:00:00Z: wrong_number: ")
    assert "account A1 at 2026-11-10T03:00:00Z ended wrong_number" in message
    with pytest.raises(ComplianceError, match="account A2 .*wrong_number.*A1 at 2026-11-10T03:00:00Z"):
        assert_compliant(calls, export, ops(), DAY)


@pytest.mark.slow
def test_scores_for_a_list_date_are_not_eligible_while_the_number_is_known_wrong(trained_book):
    """What `callq score --ops` writes: `eligible = false` and no best hour for every account of the customer."""
    export, book_ops = trained_book.simulation.export, trained_book.simulation.operations
    day = default_list_date(export.as_of, book_ops)
    before = score_day(export, book_ops, day, trained_book.champions).set_index("account_id")
    # The simulated world dials some numbers wrong itself: those customers are never eligible.
    marked = export.accounts["account_id"][customer_wrong_number(export)]
    assert len(marked) > 0 and not before.loc[marked, "eligible"].any()
    # A customer with two eligible accounts, one of them dialled wrong three days before as_of.
    eligible = export.accounts[before.loc[export.accounts["account_id"], "eligible"].to_numpy()]
    customer = eligible.loc[eligible.duplicated("customer_id"), "customer_id"].iloc[0]
    mine = export.accounts.loc[export.accounts["customer_id"] == customer, "account_id"].tolist()

    def with_calls(*rows):
        added = typed_frame("contacts", [{**row, "contact_id": f"KNEW{index}"} for index, row in enumerate(rows)])
        return dataclasses.replace(export, contacts=pd.concat([export.contacts, added], ignore_index=True))

    three_days_ago = (export.as_of - pd.Timedelta(days=3)).isoformat()
    wrong = contact(mine[0], three_days_ago, "wrong_number")
    after = score_day(with_calls(wrong), book_ops, day, trained_book.champions).set_index("account_id")
    assert not after.loc[mine, "eligible"].any() and after.loc[mine, "best_hour_local"].isna().all()
    others = before.index.difference(mine)
    assert after.loc[others, "eligible"].equals(before.loc[others, "eligible"])
    # The debtor calls in the next day: their own phone may not be the number we dial, which stays barred.
    two_days_ago = (export.as_of - pd.Timedelta(days=2)).isoformat()
    called_in = with_calls(wrong, contact(mine[-1], two_days_ago, "right_party", "inbound"))
    still = score_day(called_in, book_ops, day, trained_book.champions).set_index("account_id")
    assert not still.loc[mine, "eligible"].any()
    # Our next call about another of their debts reached them: the number is theirs again.
    called_back = with_calls(wrong, contact(mine[-1], two_days_ago, "right_party"))
    again = score_day(called_back, book_ops, day, trained_book.champions).set_index("account_id")
    assert again.loc[mine, "eligible"].all()


# --- the ranker's reading against a naive per-customer oracle, and the guard against both ------------------


def known_wrong_oracle(export) -> set[str]:
    """Account ids whose customer's latest wrong-number call (channel not sms/email/letter/visit, before as_of)
    has no outbound right-party `call` of the customer at or after it: one customer at a time, in plain Python."""
    owner = dict(zip(export.accounts["account_id"], export.accounts["customer_id"], strict=True))
    blocked = set()
    for customer in set(owner.values()):
        mine = [row for row in export.contacts.to_dict("records") if owner.get(row["account_id"]) == customer]
        wrong = [
            row["started_at"]
            for row in mine
            if row["outcome"] == "wrong_number"
            and row["channel"] not in ("sms", "email", "letter", "visit")
            and row["started_at"] < export.as_of
        ]
        if not wrong:
            continue
        reached = any(
            row["channel"] == "call"
            and row["direction"] == "outbound"
            and row["outcome"] in ("right_party", "promise_to_pay", "refused", "dispute")
            and max(wrong) <= row["started_at"] < export.as_of
            for row in mine
        )
        if not reached:
            blocked |= {account for account, owned_by in owner.items() if owned_by == customer}
    return blocked


@pytest.mark.parametrize("seed", [0, 2, 3, 4, 5, 7, 8, 10])  # seeds that draw known wrong numbers
def test_ranker_and_guard_read_the_rule_as_the_naive_oracle_does(seed):
    rng = np.random.default_rng(seed)
    n_accounts = 12
    accounts = [account_row(f"A{index}", customer_id=f"C{rng.integers(6)}") for index in range(n_accounts)]
    outcomes = ["wrong_number", "wrong_number", "right_party", "promise_to_pay", "refused", "third_party", None]
    history = [
        contact(
            f"A{rng.integers(n_accounts)}",
            (pd.Timestamp(AS_OF) - pd.Timedelta(hours=int(rng.integers(-2, 24 * 60)))).isoformat(),
            outcomes[rng.integers(len(outcomes))],
            ["outbound", "inbound"][rng.integers(2)],
            ["call", "call", "call", "visit", "sms"][rng.integers(5)],
        )
        for _ in range(40)
    ]
    history = [{**row, "contact_id": f"K{index}"} for index, row in enumerate(history)]
    export = build_export(AS_OF, accounts, history)
    expected = known_wrong_oracle(export)
    assert expected  # the seeds draw some known wrong numbers
    marked = customer_wrong_number(export)
    assert set(export.accounts["account_id"][marked]) == expected
    # The guard, on a list calling every account once (other rules may break too: only this one is read).
    calls = pd.concat(
        [one_call(export, ELEVEN_AM, DAY, account) for account in export.accounts["account_id"]], ignore_index=True
    ).assign(rank=range(1, n_accounts + 1))
    refused = {
        violation.account_id
        for violation in check_call_list(calls, export, ops("custom"), DAY)
        if violation.rule == "wrong_number"
    }
    assert refused == expected
