"""`callq demo`: the whole path on the embedded default, with progress and a readable summary."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from features.contract import SCORES_SCHEMA
from features.io import write_frame
from features.simulation import SimulationConfig, generate
from serving.evaluation import compare_lists
from serving.pipeline import default_list_date, load_models, policy_hours, run_day, score_export, write_day
from training.config import TrainConfig
from training.pipeline import train
from training.tracking import resolve_tracking_uri


def run_demo(workdir: Path, *, accounts: int, seed: int, console: Console) -> None:
    """Generate a book, train and register, score, rank the next list date, and summarise.

    `console` must not read markup (`serving.cli.out`): the lines hold paths and values from the book;
    styled pieces are `Text`.
    """
    started = time.perf_counter()
    workdir = Path(workdir)
    export_dir = workdir / "export"

    def step(message: str) -> None:
        console.print(
            Text.assemble(("›", "bold cyan"), f" {message} ", (f"({time.perf_counter() - started:.0f} s)", "dim"))
        )

    step(f"generating a synthetic book of {accounts:,} accounts (seed {seed})")
    with console.status("simulating history…"):
        simulation = generate(export_dir, SimulationConfig(n_accounts=accounts, seed=seed))
    export, operations = simulation.export, simulation.operations
    counts = ", ".join(f"{name} {len(frame):,}" for name, frame in export.tables().items())
    console.print(f"  export {export_dir} (as_of {export.as_of:%Y-%m-%d %H:%M} UTC): {counts}", soft_wrap=True)

    step(f"training three models, tracking in {resolve_tracking_uri()}")
    with console.status("building snapshots and fitting…"):
        result = train(export, TrainConfig(), world=simulation.world, report_dir=workdir / "report")
    for outcome in result.models.values():
        verdict = "promoted to champion" if outcome.promoted else "not promoted"
        console.print(
            f"  {outcome.name} v{outcome.version}: {outcome.metric} {outcome.candidate_value:.3f}, {verdict}"
            f" — {outcome.reason}",
            soft_wrap=True,
        )
    console.print(f"  training report: {result.report_path}", soft_wrap=True)

    step("scoring every account with the champion models")
    champions = load_models()
    list_date = default_list_date(export.as_of, operations)
    with console.status("scoring and ranking…"):
        scored = score_export(export, champions, call_hours=policy_hours(operations), day=list_date)
        run = run_day(export, operations, list_date, champions, scored=scored)
    scores_path = workdir / "scores.parquet"
    write_frame(run.scores, str(scores_path), schema=SCORES_SCHEMA)
    written = write_day(run, str(workdir / "call_list.csv"))
    console.print(
        f"  scores: {scores_path} ({len(run.scores):,} accounts, {int(run.scores['eligible'].sum()):,} eligible)",
        soft_wrap=True,
    )

    step(f"call list for {list_date} ({operations.policy} policy), replayed in the simulated world")
    comparison = compare_lists(simulation, champions, list_date, run=run, scored=scored)
    _print_summary(console, run, comparison, written, workdir)
    console.print(Text(f"\ndone in {time.perf_counter() - started:.0f} s", style="bold"))


def _print_summary(console: Console, run, comparison: pd.DataFrame, written, workdir: Path) -> None:
    calls = run.call_list
    top = Table(title=f"Top of the queue for {run.list_date}", show_lines=False)
    for column in (
        "rank",
        "account",
        "team",
        "local hour",
        "DPD",
        "overdue",
        "p_repay",
        "p_contact",
        "value",
        "reasons",
    ):
        top.add_column(column, overflow="fold")
    for row in calls.head(10).itertuples():
        top.add_row(
            str(row.rank),
            row.account_id,
            row.team,
            f"{row.local_hour:02d}:00",
            str(row.days_past_due),
            f"{row.amount_overdue:,.0f}",
            f"{row.p_repay:.2f}",
            f"{row.p_contact:.2f}",
            f"{row.expected_value:,.0f}",
            row.reasons,
        )
    console.print(top)

    load = run.capacity.copy()
    per_hour = Table(title="Calls per team and centre-local hour (scheduled / capacity)")
    per_hour.add_column("team")
    hours = load.sort_values("call_at")["centre_hour"].drop_duplicates().tolist()  # a night shift's 00h after 23h
    for hour in hours:
        per_hour.add_column(f"{hour:02d}h", justify="right")
    for team, rows in load.groupby("team", sort=True):
        cells = rows.set_index("centre_hour")
        per_hour.add_row(
            team,
            *(
                f"{int(cells.at[hour, 'scheduled'])}/{int(cells.at[hour, 'capacity'])}" if hour in cells.index else "–"
                for hour in hours
            ),
        )
    console.print(per_hour)

    table = Table(
        title="Expected extra collections over making no calls (14 days, simulated world): the money the "
        "label asks for, and every settled payment"
    )
    for column in (
        "list",
        "calls",
        "expected value (models)",
        "true extra collected",
        "share of oracle",
        "true extra settled",
        "share of oracle",
    ):
        table.add_column(column, justify="right")
    for row in comparison.itertuples():
        table.add_row(
            row.list,
            f"{row.calls:,}",
            "–" if pd.isna(row.model_expected_value) else f"{row.model_expected_value:,.0f}",
            f"{row.true_extra_collected:,.0f}",
            "–" if pd.isna(row.share_of_oracle) else f"{row.share_of_oracle:.0%}",
            f"{row.true_extra_settled:,.0f}",
            "–" if pd.isna(row.share_of_oracle_settled) else f"{row.share_of_oracle_settled:.0%}",
        )
    console.print(table)
    console.print(
        f"\nExpected collections from today's list: {calls['expected_value'].sum():,.0f} "
        f"across {len(calls):,} calls; {len(run.special_handling):,} accounts sent to special handling.",
        soft_wrap=True,
    )
    console.print(f"Files: {workdir}/scores.parquet, {written.call_list}, {written.special_handling}", soft_wrap=True)
    console.print(
        "Open the supervisor page:\n"
        f"  CALLQ_API_TOKENS='demo-token:*' callq serve --export {workdir}/export"
        f" --ops {workdir}/export/operations.yaml\n"
        "  then browse http://127.0.0.1:8000/ and enter the token demo-token",
        soft_wrap=True,  # a command to copy: not broken across lines in a log
    )
