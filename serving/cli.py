"""The `callq` command line: one Typer app, each command a thin shell over a library function.

Every command exits non-zero with one line on stderr when it cannot do its job; the full
traceback is shown only with CALLQ_DEBUG=1.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from pydantic import ValidationError

app = typer.Typer(
    name="callq",
    help="Whom to call today, at what hour, and why: ML call lists for collection centres.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Messages interpolate paths, URLs and values from the data: none of it is rich markup (a value `[/settled]`
# is not a closing tag), so the consoles read none; styled pieces are `Text` with an explicit style.
console = Console(stderr=True, markup=False)
# Tables (the demo's queue, `callq models`) need room; a pipe or CI log gets 160 columns.
out = Console(width=shutil.get_terminal_size((160, 40)).columns, markup=False)

# What `--date` defaults to (`serving.pipeline.default_list_date`), as the help texts and `score` say it.
DEFAULT_LIST_DATE = "the first centre-local date whose earliest shift starts at or after the export's as_of"


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit code 1."""

    exit_code = 1


class UsageError(CommandError):
    """An option given a value it cannot take, or without another it needs: one line naming the option, exit
    code 2 as for the usage errors Typer finds itself (`--limit -1`). Raised before any work is done."""

    exit_code = 2


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _say(console: Console, message: str) -> None:
    """Print one message line as it is: never wrapped at the console's width, since a script reads it
    (a pipe gets 80 or 160 columns); a terminal wraps it for a person. Tables keep the console's width."""
    console.print(message, highlight=False, soft_wrap=True)


def _parse_date(value: str, what: str) -> dt.date:
    """A date written YYYY-MM-DD: `fromisoformat` alone also takes 20261124 and 2026-W48-2."""
    if _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise UsageError(f"{what} must be a date YYYY-MM-DD, got {value!r}")


def _invalid(error: ValidationError) -> str:
    """The first error of a pydantic `ValidationError` as one line: `invalid Model: field.path: what`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])  # empty for a whole-model rule
    return f"invalid {error.title}: {f'{where}: ' if where else ''}{first['msg']}"


_Settings = TypeVar("_Settings")


def _read_settings(path: Path, read: Callable[[Path], _Settings]) -> _Settings:
    """`read(path)` for a settings file (`--ops`, `--config`): its settings' errors name the file too, as
    its YAML errors do, since the model's name alone does not say which file the user must fix."""
    from pydantic import ValidationError

    try:
        return read(path)
    except ValidationError as error:
        raise CommandError(f"{path}: {_invalid(error)}") from error


def _load(source: str, lenient: bool, rejects: Path | None):
    from features.build import UNREAD_COLUMNS
    from features.io import load_export

    export, report = load_export(
        source, mode="lenient" if lenient else "strict", rejects_dir=rejects, drop=UNREAD_COLUMNS
    )
    if report.rejected and any(report.rejected.values()):
        rejected = ", ".join(f"{name} {count}" for name, count in report.rejected.items() if count)
        _say(console, f"rejected rows ({rejected}) written to {rejects}")
        # Read = accepted + rejected, per table: what a case system reconciles from this command's own output.
        for name, count in report.rejected.items():
            if count:
                read, accepted = report.read.get(name, 0), report.accepted.get(name, 0)
                _say(console, f"{name}: {read:,} read, {accepted:,} accepted, {count:,} rejected")
    return export


def _load_with_models(source: str, lenient: bool, rejects: Path | None) -> tuple[object, Future]:
    """The export, and the champion models (a future) read from the registry while the export loads: the
    two are independent, and the models' seconds hide behind a large book's. A bad export is still the
    first thing reported; a failed model load is raised where the caller asks for the result."""
    from serving.pipeline import load_models

    pool = ThreadPoolExecutor(1, thread_name_prefix="callq-models")
    try:
        models = pool.submit(load_models)
        return _load(source, lenient, rejects), models
    finally:
        pool.shutdown(wait=False)


def _warn_unmatched_teams(export, operations) -> None:
    """On stderr, teams of the operations file and of the accounts that do not match (`Early` for `early`
    leaves the team's accounts uncalled); not an error, as one operations file may serve several books."""
    from serving.eligibility import unmatched_teams

    warning = unmatched_teams(export.accounts, operations)
    if warning:
        _say(console, f"warning: {warning}")


ExportArg = Annotated[str, typer.Option("--export", help="Export directory or SQLAlchemy URL.")]
LenientOpt = Annotated[
    bool,
    typer.Option("--lenient", help="Drop bad rows into --rejects and go on, instead of stopping."),
]
RejectsOpt = Annotated[Path, typer.Option("--rejects", help="Where lenient loading writes rejected rows.")]


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the export into.")],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Accounts in the book.")] = 5000,
    days: Annotated[int, typer.Option("--days", min=30, help="Days of history.")] = 180,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    policy: Annotated[Literal["cn", "us_reg_f"], typer.Option("--policy", help="cn or us_reg_f.")] = "cn",
    timezones: Annotated[str, typer.Option("--timezones", help="Comma-separated IANA zones of the debtors.")] = "",
    fmt: Annotated[Literal["parquet", "csv"], typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write a synthetic export and an operations.yaml from a seeded collections simulation."""
    from features.contract import is_valid_timezone
    from features.simulation import SimulationConfig
    from features.simulation import generate as generate_world

    options = {"n_accounts": accounts, "days": days, "seed": seed, "policy": policy}
    if timezones:
        options["timezones"] = tuple(zone.strip() for zone in timezones.split(",") if zone.strip())
        unknown = [zone for zone in options["timezones"] if not is_valid_timezone(zone)]
        if unknown:
            raise UsageError(f"--timezones must be comma-separated IANA time zones, got {unknown[0]!r}")
    config = SimulationConfig(**options)
    simulation = generate_world(out_dir, config, fmt=fmt)
    counts = ", ".join(f"{name} {len(frame):,}" for name, frame in simulation.export.tables().items())
    _say(out, f"wrote {out_dir} (as_of {simulation.export.as_of.isoformat()}): {counts}")
    _say(out, f"wrote {out_dir / 'operations.yaml'}")


@app.command()
def validate(
    export: Annotated[str, typer.Argument(help="Export directory or SQLAlchemy URL.")],
    limit: Annotated[int, typer.Option("--limit", min=0, help="Lines shown per rule.")] = 20,
) -> None:
    """Check an export against the contract and report every violation."""
    from features.io import check_export, shown_location
    from features.validate import format_violations

    # At least one violation per rule is kept even with --limit 0: `format_violations` counts a rule's
    # "... and N more rows" only for rules it holds a violation of.
    check = check_export(export, max_per_rule=max(limit, 1))
    if not check.ok:
        report = format_violations(check.violations, limit_per_rule=limit, totals=check.totals)
        _say(console, report)
        raise typer.Exit(1)
    _say(out, f"{shown_location(export)}: a valid contract v1 export")


@app.command("features")
def features_command(
    export: Annotated[str, typer.Argument(help="Export directory or SQLAlchemy URL.")],
    out_file: Annotated[str, typer.Option("--out", help="Output .csv/.parquet file or URL#table.")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Comma-separated as-of dates (default: the export's as_of)."),
    ] = None,
    lenient: LenientOpt = False,
    rejects: RejectsOpt = Path("rejects"),
) -> None:
    """Write point-in-time features for every account at one or more as-of dates."""
    import pandas as pd

    from features.build import build_features
    from features.io import check_frame_targets, shown_location, write_frame

    parts = as_of.split(",") if as_of else []
    wanted = [pd.Timestamp(_parse_date(part.strip(), "--as-of"), tz="UTC") for part in parts]
    check_frame_targets([out_file], protect=export)  # a target it cannot write is refused now, not after the features
    loaded = _load(export, lenient, rejects)
    snapshots, dates = None, wanted or [loaded.as_of]
    if wanted:
        if any(date > loaded.as_of for date in dates):
            raise CommandError(f"--as-of must not be after the export's as_of {loaded.as_of.isoformat()}")
        ids = loaded.accounts["account_id"]
        snapshots = pd.concat([pd.DataFrame({"account_id": ids, "as_of": date}) for date in dates])
    frame = build_features(loaded, snapshots)
    # A table keeps every as-of date's features; writing a date again replaces its rows.
    write_frame(frame, out_file, replace_where={"as_of": tuple(dates)}, protect=export)
    _say(out, f"wrote {len(frame):,} rows × {frame.shape[1]} columns to {shown_location(out_file)}")


@app.command()
def train(
    export: ExportArg,
    config: Annotated[
        Path | None, typer.Option("--config", help="Experiment config YAML (default: built-in defaults).")
    ] = None,
    lenient: LenientOpt = False,
    rejects: RejectsOpt = Path("rejects"),
) -> None:
    """Train the three models, log the run, register them, promote them if they beat the champions."""
    from training.config import TrainConfig
    from training.pipeline import Terminated
    from training.pipeline import train as train_models

    train_config = _read_settings(config, TrainConfig.from_yaml) if config else TrainConfig()
    try:
        result = train_models(_load(export, lenient, rejects), train_config)
    except Terminated as error:  # Typer would turn it into a silent exit 130, as for Ctrl-C
        console.print(Text.assemble(("error:", "red"), f" {error}"), highlight=False, soft_wrap=True)
        raise typer.Exit(Terminated.exit_code_on_cli) from None
    _say(out, f"run {result.run_id} ({train_config.name}); report {result.report_path}")
    for outcome in result.models.values():
        verdict = "promoted to champion" if outcome.promoted else "not promoted"
        _say(
            out,
            f"  {outcome.name} v{outcome.version}: {outcome.metric} {outcome.candidate_value:.4f}, {verdict}"
            f" — {outcome.reason}",
        )
    for note in result.notes:
        _say(out, f"  note: {note}")


@app.command()
def score(
    export: ExportArg,
    out_file: Annotated[str, typer.Option("--out", help="Output .csv/.parquet file or URL#table.")],
    ops: Annotated[
        Path | None,
        typer.Option(
            "--ops",
            help="operations.yaml: `eligible` and the best hour then follow its policy on the list date.",
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option("--date", help=f"List date YYYY-MM-DD with --ops (default: {DEFAULT_LIST_DATE})."),
    ] = None,
    lenient: LenientOpt = False,
    rejects: RejectsOpt = Path("rejects"),
) -> None:
    """Write contract `scores` for every account with the champion models."""
    from features.contract import SCORES_SCHEMA, Operations
    from features.io import check_frame_targets, shown_location, write_frame
    from serving.pipeline import check_list_date, default_list_date, score_day, score_export

    if date is not None and ops is None:
        raise UsageError("--date needs --ops (the policy that decides what is allowed on that date)")
    list_date = _parse_date(date, "--date") if date else None
    operations = _read_settings(ops, Operations.from_yaml) if ops else None
    check_frame_targets([out_file], protect=export)  # a target it cannot write is refused now, not after the scoring
    loaded, models = _load_with_models(export, lenient, rejects)
    if operations is None:
        scores = score_export(loaded, models.result()).scores
    else:
        _warn_unmatched_teams(loaded, operations)
        day = list_date or default_list_date(loaded.as_of, operations)
        check_list_date(loaded, operations, day)  # a date it cannot score is refused before the models are used
        scores = score_day(loaded, operations, day, models.result())
    # A table keeps every export's scores; scoring the same export again replaces its rows.
    write_frame(scores, out_file, replace_where={"as_of": loaded.as_of}, schema=SCORES_SCHEMA, protect=export)
    eligible = int(scores["eligible"].sum())
    where = shown_location(out_file)
    _say(out, f"wrote {len(scores):,} scores ({eligible:,} eligible) to {where}")
    if ops is not None and date is None:  # `eligible` is for one date: say which when the user did not
        _say(out, f"eligible for list date {day} ({DEFAULT_LIST_DATE})")


@app.command()
def rank(
    export: ExportArg,
    ops: Annotated[Path, typer.Option("--ops", help="operations.yaml (contract section 2).")],
    date: Annotated[str, typer.Option("--date", help="List date YYYY-MM-DD (centre-local).")],
    out_file: Annotated[str, typer.Option("--out", help="Output .csv/.parquet file or URL#table.")],
    special: Annotated[
        str | None,
        typer.Option("--special-out", help="Special-handling list (default: beside --out)."),
    ] = None,
    lenient: LenientOpt = False,
    rejects: RejectsOpt = Path("rejects"),
) -> None:
    """Write the compliant, ranked call list for one list date."""
    from features.contract import Operations
    from features.io import shown_location
    from serving.pipeline import day_targets, run_day, write_day

    list_date = _parse_date(date, "--date")
    operations = _read_settings(ops, Operations.from_yaml)
    day_targets(out_file, special, protect=export)  # a target it cannot write is refused now, not after the ranking
    loaded, models = _load_with_models(export, lenient, rejects)
    _warn_unmatched_teams(loaded, operations)
    run = run_day(loaded, operations, list_date, models.result())
    written = write_day(run, out_file, special, protect=export)
    _say(
        out,
        f"wrote {len(run.call_list):,} calls for {list_date} to {shown_location(written.call_list)} "
        f"(expected value {run.call_list['expected_value'].sum():,.0f}); "
        f"{len(run.special_handling):,} special-handling accounts to {shown_location(written.special_handling)}",
    )
    left_out = [f"{rule.replace('_', ' ')} {count:,}" for rule, count in run.excluded.items() if count]
    if left_out:
        _say(out, f"accounts left out, by the first rule that excluded them: {', '.join(left_out)}")


@app.command()
def models() -> None:
    """List registered model versions, their aliases and key metrics."""
    from rich.table import Table

    from training.tracking import list_models

    versions = list_models()
    if versions.empty:
        _say(out, "no registered models yet: run `callq train`")
        return
    table = Table(title="Registered models")
    shown = [column for column in versions.columns if column not in ("run_id", "config")]
    for column in shown:
        table.add_column(column, overflow="fold")
    for row in versions[shown].itertuples(index=False):
        table.add_row(*("" if value is None or value != value else f"{value}" for value in row))
    out.print(table)


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. callq-repayment.")],
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the version).")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote a version of another feature set or an incomplete run too.")
    ] = False,
) -> None:
    """Move the `champion` alias to a version, recording why."""
    from training.tracking import promote as promote_version

    promoted = promote_version(name, version, reason=reason, force=force)
    _say(out, f"{name} v{promoted} is now champion ({reason})")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. callq-repayment.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the version).")],
) -> None:
    """Move the `champion` alias back to the previous champion, recording why."""
    from training.tracking import rollback as rollback_version

    restored = rollback_version(name, reason=reason)
    _say(out, f"{name}: champion rolled back to v{restored} ({reason})")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Where the demo writes everything.")] = Path("callq-out"),
    accounts: Annotated[int, typer.Option("--accounts", min=100)] = 5000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Run the whole path on a synthetic book: generate, train, register, score, rank tomorrow."""
    from serving.demo import run_demo

    run_demo(workdir, accounts=accounts, seed=seed, console=out)


@app.command()
def serve(
    export: ExportArg,
    ops: Annotated[Path, typer.Option("--ops", help="operations.yaml (contract section 2).")],
    date: Annotated[
        str | None,
        typer.Option("--date", help=f"Default list date YYYY-MM-DD (default: {DEFAULT_LIST_DATE})."),
    ] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Serve the HTTP API and the supervisor page."""
    import uvicorn

    from features.contract import Operations
    from serving.api import create_app
    from serving.auth import TokenAuth
    from serving.pipeline import DailyProvider, check_list_date

    default_date = _parse_date(date, "--date") if date else None
    auth = TokenAuth.from_env()  # a malformed CALLQ_API_TOKENS fails now, not after the day is ranked
    operations = _read_settings(ops, Operations.from_yaml)
    loaded, models = _load_with_models(export, False, None)
    _warn_unmatched_teams(loaded, operations)
    provider = DailyProvider(loaded, operations, models.result(), default_date=default_date)
    check_list_date(loaded, operations, provider.default_date)  # a date it cannot rank: one line, no server
    app = create_app(provider, auth=auth)
    with console.status(f"ranking {provider.default_date} before serving…"):
        app.state.days.get(None)  # the default day is ready before the first request
    _say(console, f"serving http://{host}:{port}/ (list date {provider.default_date})")
    if not auth.entries:
        _say(console, "CALLQ_API_TOKENS holds no token: every request but /health will get 401.")
    uvicorn.run(app, host=host, port=port, workers=1, log_level="warning", access_log=False)


def main() -> None:
    """Console-script entry point: one clear line and a non-zero exit on any failure."""
    import logging

    from pydantic import ValidationError

    # MLflow narrates every store migration and registration at INFO; callq reports what matters.
    # MLflow sets its loggers' level from MLFLOW_LOGGING_LEVEL when it is first imported (later).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow retries an unreachable tracking server 7 times with growing waits (minutes of silence);
    # a command line says after a few seconds that the server cannot be reached. Either may be set.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        # Outside standalone mode click returns an Exit's code instead of raising it.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SystemExit:
        raise
    except (KeyboardInterrupt, typer.Abort):
        _say(console, "interrupted")
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the CLI boundary turns every failure into one line
        if os.environ.get("CALLQ_DEBUG"):
            raise
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        code = 1
        if isinstance(error, typer.TyperException):
            # Typer parses with its own click (not `click`): a usage error, such as `--limit -1`, is one line
            # naming the option (`format_message`), with its exit code (2).
            message, code = error.format_message(), error.exit_code
        elif isinstance(error, CommandError):
            message, code = str(error), error.exit_code
        elif isinstance(error, OSError) and error.filename is not None and error.strerror:
            # `[Errno 2] No such file or directory: 'ops.yaml'` reads as the file and what is wrong with it.
            message = f"{error.filename}: {error.strerror.lower()}"
        elif isinstance(error, ValidationError):
            message = _invalid(error)
        else:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
        console.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False, soft_wrap=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
