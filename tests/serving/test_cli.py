"""The `callq` batch interface (contract section 4), run as the case system runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.contract import CALL_LIST_COLUMNS, SCORES_COLUMNS
from features.io import read_frame, write_export
from tests.factories import tiny_export

CALLQ = [sys.executable, "-m", "serving.cli"]


def callq(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CALLQ, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "export"
    result = callq("generate", "--out", out, "--accounts", 300, "--days", 60, "--seed", 3)
    assert result.returncode == 0, result.stderr
    return out


def test_generated_export_passes_validate(generated):
    result = callq("validate", generated)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert (generated / "operations.yaml").exists()


def test_generate_is_deterministic(generated, tmp_path):
    again = tmp_path / "again"
    assert callq("generate", "--out", again, "--accounts", 300, "--days", 60, "--seed", 3).returncode == 0
    for name in ("accounts", "dues", "payments", "contacts", "promises"):
        assert (generated / f"{name}.parquet").read_bytes() == (again / f"{name}.parquet").read_bytes()


def test_validate_names_every_planted_fault(tmp_path):
    export = tiny_export()
    write_export(export, tmp_path / "bad", fmt="csv")
    folder = tmp_path / "bad"
    accounts = pd.read_csv(folder / "accounts.csv", dtype=str)
    accounts.loc[1, "account_id"] = accounts.loc[0, "account_id"]  # duplicate id
    accounts.loc[2, "timezone"] = "Mars/Olympus"  # bad timezone
    accounts.to_csv(folder / "accounts.csv", index=False)
    payments = pd.read_csv(folder / "payments.csv", dtype=str)
    payments.loc[0, "account_id"] = "NO-SUCH-ACCOUNT"  # orphan
    payments.loc[1, "amount"] = "-5.00"  # negative amount
    payments.to_csv(folder / "payments.csv", index=False)
    contacts = pd.read_csv(folder / "contacts.csv", dtype=str)
    contacts.loc[0, "outcome"] = "abducted_by_aliens"  # unknown outcome
    contacts.loc[1, "started_at"] = "2027-01-01T00:00:00Z"  # after as_of
    contacts.to_csv(folder / "contacts.csv", index=False)
    pd.read_csv(folder / "promises.csv", dtype=str).drop(columns=["promised_amount"]).to_csv(
        folder / "promises.csv", index=False
    )  # missing column

    result = callq("validate", folder)
    assert result.returncode == 1
    report = result.stdout + result.stderr
    for fragment in (
        "accounts: row",
        "Mars/Olympus",
        "NO-SUCH-ACCOUNT",
        "-5.00",
        "abducted_by_aliens",
        "2027-01-01",
        "promised_amount",
    ):
        assert fragment in report, f"{fragment!r} not reported:\n{report}"


def _export_with_many_bad_payments(folder: Path) -> None:
    """tiny_export as CSV, with 25 more payments of a negative amount and 3 of an unknown account."""
    write_export(tiny_export(), folder, fmt="csv")
    payments = pd.read_csv(folder / "payments.csv", dtype=str)
    negative = pd.concat([payments.iloc[[0]]] * 25, ignore_index=True)
    negative["payment_id"], negative["amount"] = [f"PX{i}" for i in range(25)], "-1.00"
    payments.loc[[1, 2, 3], "account_id"] = "NO-SUCH-ACCOUNT"
    pd.concat([payments, negative], ignore_index=True).to_csv(folder / "payments.csv", index=False)


def test_validate_limit_counts_the_rows_it_does_not_show(tmp_path):
    _export_with_many_bad_payments(tmp_path / "bad")
    negative = "column amount: must be > 0"
    unknown = "column account_id: not in accounts"
    shown = callq("validate", tmp_path / "bad")  # 20 lines per rule
    assert shown.returncode == 1
    lines = shown.stderr.splitlines()
    assert sum(line.startswith("payments: row PX") for line in lines) == 20
    assert f"payments: ... and 5 more rows: {negative}" in lines
    assert sum(unknown in line for line in lines) == 3 and not any(f"more rows: {unknown}" in line for line in lines)
    assert lines[-1] == "28 violations of 2 rules in payments"
    counts_only = callq("validate", tmp_path / "bad", "--limit", "0")
    assert counts_only.returncode == 1
    assert counts_only.stderr.splitlines() == [
        f"payments: ... and 3 more rows: {unknown}",
        f"payments: ... and 25 more rows: {negative}",
        "28 violations of 2 rules in payments",
    ]
    negative_limit = callq("validate", tmp_path / "bad", "--limit", "-1")
    assert negative_limit.returncode == 2 and negative_limit.stdout == ""
    assert negative_limit.stderr.strip().splitlines() == [
        "error: Invalid value for '--limit': Input should be greater than or equal to 0"
    ]


def test_message_lines_are_not_wrapped_when_piped(tmp_path):
    # A script reads these lines: Rich must not break them at the pipe's 80 columns (stderr) or 160 (stdout).
    write_export(tiny_export(), tmp_path / "bad", fmt="csv")
    payments = pd.read_csv(tmp_path / "bad" / "payments.csv", dtype=str)
    payments.loc[0, "amount"] = "-1"
    payments.to_csv(tmp_path / "bad" / "payments.csv", index=False)
    deep = tmp_path / ("long folder name " * 8).strip() / ("x" * 90)
    rejects, features = deep / "rejects", deep / "features of every account.csv"
    result = callq(
        "features", tmp_path / "bad", "--out", features, "--lenient", "--rejects", rejects, env={"COLUMNS": "80"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"rejected rows (payments 1) written to {rejects}"
    [wrote] = result.stdout.splitlines()
    assert wrote.startswith("wrote 5 rows × ") and wrote.endswith(f" columns to {features}")


def test_lenient_loading_reconciles_read_accepted_rejected_per_table(tmp_path):
    write_export(tiny_export(), tmp_path / "bad", fmt="csv")
    payments = pd.read_csv(tmp_path / "bad" / "payments.csv", dtype=str)
    payments.loc[0, "amount"] = "-1"
    payments.to_csv(tmp_path / "bad" / "payments.csv", index=False)
    rejects = tmp_path / "rejects"
    result = callq("features", tmp_path / "bad", "--out", tmp_path / "f.csv", "--lenient", "--rejects", rejects)
    assert result.returncode == 0, result.stderr
    # Only the tables that lost a row; the others read what they accepted.
    assert result.stderr.splitlines() == [
        f"rejected rows (payments 1) written to {rejects}",
        "payments: 4 read, 3 accepted, 1 rejected",
    ]


def test_date_help_says_what_the_default_list_date_is():
    from typer.main import get_command

    from serving.cli import app

    commands = get_command(app).commands
    default = "the first centre-local date whose earliest shift starts at or after the export's as_of"
    for command in ("score", "serve"):
        [date] = [param for param in commands[command].params if "--date" in param.opts]
        assert f"(default: {default})" in date.help, f"{command}: {date.help}"


def _operations_file(folder: Path, teams: tuple[str, ...]) -> Path:
    """A cn operations file for `teams`, one agent each, 09:00-18:00 in Shanghai."""
    ops = folder / "operations.yaml"
    ops.write_text(
        "centre_timezone: Asia/Shanghai\npolicy: cn\nteams:\n"
        + "".join(
            f'  - {{team: {team}, agents: 1, calls_per_agent_hour: 1, shift: {{start: "09:00", end: "18:00"}}}}\n'
            for team in teams
        )
    )
    return ops


def test_score_refuses_a_date_past_the_horizon_in_its_own_words(tmp_path):
    write_export(tiny_export(), tmp_path / "export")  # as_of 2026-11-23
    ops = _operations_file(tmp_path, ("early", "late", "default"))
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # no models: refused before loading them
    args = ["--export", tmp_path / "export", "--ops", ops, "--date", "2026-12-23", "--out", tmp_path / "s.csv"]
    scored = callq("score", *args, env=store)
    assert scored.returncode == 1
    assert scored.stderr.strip().splitlines() == [
        "error: list date 2026-12-23 is more than 14 days after the export's as_of: use a newer export"
    ]
    assert not (tmp_path / "s.csv").exists()


def test_errors_are_one_line_without_traceback(tmp_path):
    result = callq(
        "rank",
        "--export",
        tmp_path / "missing",
        "--ops",
        tmp_path / "ops.yaml",
        "--date",
        "2026-11-23",
        "--out",
        tmp_path / "list.csv",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bad_date = callq("features", tmp_path, "--out", tmp_path / "f.csv", "--as-of", "23/11/2026")
    assert bad_date.returncode != 0 and "Traceback" not in bad_date.stderr
    # A new model store: MLflow's notes on creating its tables do not crowd the one line.
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'new-store' / 'mlflow.db'}"}
    (tmp_path / "new-store").mkdir()
    write_export(tiny_export(), tmp_path / "export")
    no_models = callq("score", "--export", tmp_path / "export", "--out", tmp_path / "s.csv", env=store)
    assert no_models.returncode == 1
    assert no_models.stderr.strip().splitlines() == [
        f"error: no champion for callq-repayment in {store['MLFLOW_TRACKING_URI']}: run `callq train`"
    ]


def test_a_bad_export_is_reported_alone_while_the_models_load_beside_it(tmp_path):
    # `rank` reads the champions from the registry while the export loads: a bad export is still the one
    # line, whatever the model store (here a new one, with no models) says meanwhile.
    write_export(tiny_export(), tmp_path / "bad", fmt="csv")
    payments = pd.read_csv(tmp_path / "bad" / "payments.csv", dtype=str)
    payments.loc[0, "amount"] = "12,50"
    payments.to_csv(tmp_path / "bad" / "payments.csv", index=False)
    ops = _operations_file(tmp_path, ("early", "late", "default"))
    (tmp_path / "new-store").mkdir()
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'new-store' / 'mlflow.db'}"}
    args = ["--export", tmp_path / "bad", "--ops", ops, "--date", "2026-11-23", "--out", tmp_path / "list.csv"]
    ranked = callq("rank", *args, env=store)
    assert ranked.returncode == 1
    assert len(ranked.stderr.strip().splitlines()) == 1
    assert ranked.stderr.startswith("error: payments: row P1: column amount:")
    assert not (tmp_path / "list.csv").exists()


def test_paths_and_values_holding_rich_markup_are_printed_as_they_are(tmp_path):
    # `[/settled]` would close a tag that was never opened, `[b]paid[/b]` would turn bold: neither is markup.
    write_export(tiny_export(), tmp_path / "bad", fmt="csv")
    payments = pd.read_csv(tmp_path / "bad" / "payments.csv", dtype=str)
    payments.loc[0, "status"], payments.loc[1, "status"] = "[/settled]", "[b]paid[/b]"
    payments.to_csv(tmp_path / "bad" / "payments.csv", index=False)
    report = callq("validate", tmp_path / "bad")
    assert report.returncode == 1 and "Traceback" not in report.stderr
    assert "'[/settled]'" in report.stderr and "'[b]paid[/b]'" in report.stderr
    missing = callq("validate", tmp_path / "run[/1]")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: export {tmp_path / 'run[/1]'}: not a directory or a SQLAlchemy URL"
    ]
    write_export(tiny_export(), tmp_path / "export")
    written = callq("features", tmp_path / "export", "--out", tmp_path / "out[/1].csv")
    assert written.returncode == 0, written.stderr
    assert f"to {tmp_path / 'out[/1].csv'}" in written.stdout


def test_a_missing_operations_file_is_named_with_what_is_wrong(tmp_path):
    write_export(tiny_export(), tmp_path / "export")
    common = ["rank", "--export", tmp_path / "export", "--date", "2026-11-24", "--out", tmp_path / "list.csv"]
    missing = callq(*common, "--ops", tmp_path / "ops.yaml")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'ops.yaml'}: no such file or directory"
    folder = callq(*common, "--ops", tmp_path)
    assert folder.stderr.strip() == f"error: {tmp_path}: is a directory"


def test_features_written_to_a_table_again_replace_their_dates_rows(tmp_path):
    write_export(tiny_export(), tmp_path / "export")  # 5 accounts, as_of 2026-11-23
    url = f"sqlite:///{tmp_path / 'features.db'}"
    target = f"{url}#features"

    def rows_by_date() -> dict[str, int]:
        frame = read_frame(target)
        return frame.groupby(frame["as_of"].astype(str)).size().to_dict()

    for _ in range(2):  # the export's as_of, twice: one copy
        assert callq("features", tmp_path / "export", "--out", target).returncode == 0
    assert rows_by_date() == {"2026-11-23 00:00:00+00:00": 5}
    two = callq("features", tmp_path / "export", "--out", target, "--as-of", "2026-11-20,2026-11-21")
    assert two.returncode == 0, two.stderr
    again = callq("features", tmp_path / "export", "--out", target, "--as-of", "2026-11-21")
    assert again.returncode == 0, again.stderr
    assert rows_by_date() == {
        "2026-11-20 00:00:00+00:00": 5,
        "2026-11-21 00:00:00+00:00": 5,
        "2026-11-23 00:00:00+00:00": 5,
    }
    bad = callq("features", tmp_path / "export", "--out", f"{url}")  # no #table: refused before any work
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_dates_are_written_yyyy_mm_dd_only(tmp_path):
    write_export(tiny_export(), tmp_path / "export")
    for date in ("2026-W48-2", "20261124"):
        result = callq("features", tmp_path / "export", "--out", tmp_path / "f.csv", "--as-of", date)
        assert result.returncode == 2
        assert result.stderr.strip() == f"error: --as-of must be a date YYYY-MM-DD, got '{date}'"
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize(
    ("command", "option", "value", "bad"),
    [
        ("rank", "--date", "2026-13-01", "2026-13-01"),
        ("rank", "--date", "tomorrow", "tomorrow"),
        ("score", "--date", "2026-02-30", "2026-02-30"),
        ("serve", "--date", "tomorrow", "tomorrow"),
        ("features", "--as-of", "2026-11-20,tomorrow", "tomorrow"),
    ],
)
def test_a_malformed_date_is_a_usage_error_before_any_work(tmp_path, command, option, value, bad):
    # The export and the operations file do not exist: a date read after either would be refused for that.
    export, ops, target = tmp_path / "missing", tmp_path / "ops.yaml", tmp_path / "out.csv"
    args = {
        "rank": ["--export", export, "--ops", ops, "--out", target],
        "score": ["--export", export, "--ops", ops, "--out", target],
        "serve": ["--export", export, "--ops", ops],
        "features": [export, "--out", target],
    }[command]
    result = callq(command, *args, option, value)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {option} must be a date YYYY-MM-DD, got '{bad}'"]


def test_other_usage_errors_name_their_option_before_any_work(tmp_path):
    missing = ["--export", tmp_path / "missing", "--ops", tmp_path / "ops.yaml"]
    cases = {
        ("score", "--export", tmp_path / "missing", "--date", "2026-11-23", "--out", tmp_path / "s.csv"): (
            "error: --date needs --ops (the policy that decides what is allowed on that date)"
        ),
        ("generate", "--out", tmp_path / "g", "--accounts", 100, "--policy", "eu"): (
            "error: Invalid value for '--policy': Value error, 'eu' is not one of 'cn', 'us_reg_f'."
        ),
        ("generate", "--out", tmp_path / "g", "--accounts", 100, "--format", "xlsx"): (
            "error: Invalid value for '--format': Value error, 'xlsx' is not one of 'parquet', 'csv'."
        ),
        ("generate", "--out", tmp_path / "g", "--accounts", 100, "--timezones", "Asia/Shanghai, Mars/Base"): (
            "error: --timezones must be comma-separated IANA time zones, got 'Mars/Base'"
        ),
        ("serve", *missing, "--port", 99999): (
            "error: Invalid value for '--port': Input should be less than or equal to 65535"
        ),
    }
    for args, line in cases.items():
        result = callq(*args)
        assert (result.returncode, result.stderr.splitlines()) == (2, [line]), args
    assert list(tmp_path.iterdir()) == []  # nothing simulated, nothing written


def test_an_invalid_operations_or_config_file_is_named_before_any_work(tmp_path):
    # The export does not exist: a file read after it would not be the error.
    ops = _operations_file(tmp_path, ("early", "default"))
    ops.write_text(ops.read_text().replace("agents: 1,", "agents: -1,", 1))
    rule = "invalid Operations: teams.0.agents: Input should be greater than or equal to 0"
    common = ["--export", tmp_path / "missing", "--ops", ops]
    for args in (
        ["rank", *common, "--date", "2026-11-24", "--out", tmp_path / "list.csv"],
        ["score", *common, "--out", tmp_path / "s.csv"],
        ["serve", *common],
    ):
        result = callq(*args)
        assert (result.returncode, result.stderr.splitlines()) == (1, [f"error: {ops}: {rule}"]), args
    ops.write_text(ops.read_text() + "policy: us_reg_f\n")
    twice = callq("rank", *common, "--date", "2026-11-24", "--out", tmp_path / "list.csv")
    assert twice.stderr.splitlines() == [f"error: {ops}:6:1: duplicate key 'policy' (first at line 2)"]
    config = tmp_path / "config.yaml"
    config.write_text("seed: true\n")
    trained = callq("train", "--export", tmp_path / "missing", "--config", config)
    assert (trained.returncode, trained.stderr.splitlines()) == (
        1,
        [f"error: {config}: invalid TrainConfig: seed: Input should be a valid integer"],
    )


def test_rank_refuses_a_target_it_cannot_write_before_any_work(generated, tmp_path):
    # No models in this store: a rank that got as far as loading them would say so instead.
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"}
    common = ("rank", "--export", generated, "--ops", generated / "operations.yaml", "--date", "2026-11-24")
    result = callq(*common, "--out", tmp_path / "list.csv", "--special-out", tmp_path / "special.xlsx", env=store)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: a frame file must end in .csv or .parquet")
    assert callq(*common, "--out", tmp_path, env=store).stderr.strip().startswith("error: a frame file must end")
    assert not (tmp_path / "list.csv").exists()


def test_score_refuses_a_target_it_cannot_write_before_any_work(generated, tmp_path):
    # As rank does: a million accounts are not loaded and scored only to be refused at the write.
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"}  # no models
    for target, reason in (
        (tmp_path / "scores.xlsx", "a frame file must end in .csv or .parquet"),
        (f"sqlite:///{tmp_path / 'case.db'}", "a SQL frame target must look like URL#table"),
    ):
        result = callq("score", "--export", generated, "--out", target, env=store)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(f"error: {reason}"), result.stderr
    assert list(tmp_path.iterdir()) == []  # neither the models nor the target were touched


def test_no_command_writes_over_the_export_it_reads(generated, tmp_path):
    # `--out export/accounts.csv` would replace an input table; refused before any work, the export intact.
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"}  # no models
    before = {path.name: path.read_bytes() for path in generated.iterdir() if path.is_file()}
    table = next(name for name in before if name.startswith("accounts."))
    ops = ("--ops", generated / "operations.yaml", "--date", "2026-11-24")
    for command in (
        ("score", "--export", generated, "--out", generated / table),
        ("features", generated, "--out", generated / table),
        ("rank", "--export", generated, *ops, "--out", tmp_path / "list.csv", "--special-out", generated / table),
    ):
        result = callq(*command, env=store)
        assert result.returncode == 1, result.stderr
        assert "would replace the export's own accounts table" in result.stderr, result.stderr
    assert {path.name: path.read_bytes() for path in generated.iterdir() if path.is_file()} == before
    assert not (tmp_path / "list.csv").exists() and not (tmp_path / "empty").exists()


def test_rank_warns_of_operations_teams_that_match_no_account(tmp_path):
    # `Early` is not `early`: the early team's accounts would silently go uncalled.
    write_export(tiny_export(), tmp_path / "export")
    ops = _operations_file(tmp_path, ("Early", "late", "default"))
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # no models: the warning comes first
    args = ["--export", tmp_path / "export", "--ops", ops, "--date", "2026-11-23", "--out", tmp_path / "list.csv"]
    ranked = callq("rank", *args, env=store)
    assert ranked.returncode == 1
    assert ranked.stderr.splitlines()[0] == (
        "warning: operations teams matching no account: 'Early'; account teams the operations file lacks, "
        "never called: 'early' (2 accounts) (team names are case-sensitive)"
    )


def test_serve_refuses_a_malformed_token_configuration_before_any_work(tmp_path):
    served = callq(
        "serve", "--export", tmp_path / "none", "--ops", tmp_path / "none.yaml", env={"CALLQ_API_TOKENS": "x"}
    )
    assert served.returncode == 1 and "CALLQ_API_TOKENS: entry 1 must look like TOKEN:team1,team2" in served.stderr
    assert len(served.stderr.strip().splitlines()) == 1


def test_lenient_features_write_rejects_and_reconcile(tmp_path):
    export = tiny_export()
    write_export(export, tmp_path / "bad", fmt="csv")
    payments = pd.read_csv(tmp_path / "bad" / "payments.csv", dtype=str)
    payments.loc[0, "amount"] = "-1"
    payments.to_csv(tmp_path / "bad" / "payments.csv", index=False)
    strict = callq("features", tmp_path / "bad", "--out", tmp_path / "f.csv")
    assert strict.returncode == 1 and "payments" in strict.stderr
    rejects = tmp_path / "rejects"
    lenient = callq("features", tmp_path / "bad", "--out", tmp_path / "f.csv", "--lenient", "--rejects", rejects)
    assert lenient.returncode == 0, lenient.stderr
    rejected = pd.read_csv(rejects / "payments.rejects.csv", dtype=str)
    assert len(rejected) == 1 and "amount" in rejected.loc[0, "reason"]
    features = pd.read_csv(tmp_path / "f.csv")
    assert len(features) == len(export.accounts)


@pytest.mark.slow
def test_score_and_rank_write_contract_outputs(trained_book, tmp_path):
    env = {"MLFLOW_TRACKING_URI": trained_book.tracking_uri}
    scored = callq("score", "--export", trained_book.export_dir, "--out", tmp_path / "scores.parquet", env=env)
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(scores.columns) == list(SCORES_COLUMNS)
    assert len(scores) == len(trained_book.simulation.export.accounts)

    url = f"sqlite:///{tmp_path / 'case.db'}"
    args = ["rank", "--export", trained_book.export_dir, "--ops", trained_book.ops_path, "--date", "2026-11-23"]
    ranked = callq(*args, "--out", tmp_path / "list.csv", env=env)
    assert ranked.returncode == 0, ranked.stderr
    calls = pd.read_csv(tmp_path / "list.csv")
    assert list(calls.columns) == list(CALL_LIST_COLUMNS)
    assert (tmp_path / "list.special_handling.csv").exists()
    # With the operations file, `eligible` is what the policy allows on the list date: fewer, and every listed one.
    day = callq("score", "--export", trained_book.export_dir, *args[3:], "--out", tmp_path / "day.parquet", env=env)
    assert day.returncode == 0, day.stderr
    on_day = pd.read_parquet(tmp_path / "day.parquet").set_index("account_id")
    assert on_day.loc[calls["account_id"].astype(str), "eligible"].all()
    assert (on_day["eligible"] <= scores.set_index("account_id").loc[on_day.index, "eligible"]).all()
    # Under Regulation F the week after each conversation is quiet: those accounts are not eligible that day.
    reg_f = tmp_path / "reg_f.yaml"
    reg_f.write_text(Path(trained_book.ops_path).read_text().replace("policy: cn", "policy: us_reg_f"))
    quiet = callq(
        "score", "--export", trained_book.export_dir, "--ops", reg_f, "--out", tmp_path / "quiet.csv", env=env
    )
    assert quiet.returncode == 0, quiet.stderr
    from features.contract import Operations
    from serving.pipeline import default_list_date

    day = default_list_date(trained_book.simulation.export.as_of, Operations.from_yaml(reg_f))
    assert f"eligible for list date {day} (the first centre-local date whose earliest shift starts at or after" in (
        quiet.stdout
    )
    quiet_scores = pd.read_csv(tmp_path / "quiet.csv")
    assert 0 < quiet_scores["eligible"].sum() < on_day["eligible"].sum()
    assert quiet_scores.loc[~quiet_scores["eligible"], "best_hour_local"].isna().all()
    no_ops = callq("score", "--export", trained_book.export_dir, "--date", "2026-11-23", "--out", tmp_path / "x.csv")
    assert no_ops.returncode != 0 and "--date needs --ops" in no_ops.stderr
    for _ in range(2):  # re-running a date replaces its rows
        to_sql = callq(*args, "--out", f"{url}#call_list", env=env)
        assert to_sql.returncode == 0, to_sql.stderr
    # One line however long the URL, as a script reads it (a pipe gets 160 columns).
    assert to_sql.stdout.splitlines()[0].endswith(f"accounts to {url}#call_list_special_handling")
    import sqlalchemy as sa

    with sa.create_engine(url).connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM call_list")).scalar_one() == len(calls)
    # A list date before the export's as_of is refused: its empty list would replace that date's rows.
    past = callq(*args[:-1], "2026-11-20", "--out", f"{url}#call_list", env=env)
    assert past.returncode == 1 and "starts before the export's as_of" in past.stderr
    with sa.create_engine(url).connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM call_list")).scalar_one() == len(calls)


@pytest.mark.slow
def test_lenient_rank_never_dials_a_customer_whose_rows_were_rejected(trained_book, tmp_path):
    # A right-party call yesterday would start Reg F's quiet period, a lost accounts row may have held a
    # do_not_call: lenient mode drops such rows, so their customers are left out instead (rule rejected_rows).
    import shutil

    env = {"MLFLOW_TRACKING_URI": trained_book.tracking_uri}
    args = ["--ops", trained_book.ops_path, "--date", "2026-11-23"]
    assert (
        callq("rank", "--export", trained_book.export_dir, *args, "--out", tmp_path / "clean.csv", env=env).returncode
        == 0
    )
    clean = pd.read_csv(tmp_path / "clean.csv", dtype={"account_id": str, "customer_id": str})
    called, sibling_called = clean["account_id"].iloc[0], clean["account_id"].iloc[1]
    bad = tmp_path / "bad"
    shutil.copytree(trained_book.export_dir, bad)
    contacts = pd.read_parquet(bad / "contacts.parquet")
    contacts.loc[contacts["account_id"] == called, "duration_s"] = -1  # a column rank does not even read
    contacts.to_parquet(bad / "contacts.parquet", index=False)
    accounts = pd.read_parquet(bad / "accounts.parquet")
    customer = clean.loc[clean["account_id"] == sibling_called, "customer_id"].iloc[0]
    lost = pd.DataFrame([{**accounts.iloc[0].to_dict(), "account_id": "LOST-1", "customer_id": customer}])
    lost["credit_limit"] = -5.0  # rejected; it was the customer's other account
    pd.concat([accounts, lost], ignore_index=True).to_parquet(bad / "accounts.parquet", index=False)

    assert callq("rank", "--export", bad, *args, "--out", tmp_path / "list.csv", env=env).returncode == 1
    ranked = callq(
        "rank",
        "--export",
        bad,
        *args,
        "--out",
        tmp_path / "list.csv",
        "--lenient",
        "--rejects",
        tmp_path / "r",
        env=env,
    )
    assert ranked.returncode == 0, ranked.stderr
    calls = pd.read_csv(tmp_path / "list.csv", dtype={"account_id": str, "customer_id": str})
    owner = clean.loc[clean["account_id"] == called, "customer_id"].iloc[0]
    assert not calls["customer_id"].isin([owner, customer]).any()
    assert "accounts left out" in ranked.stdout and "rejected rows " in ranked.stdout.split("accounts left out")[1]
    scored = callq(
        "score", "--export", bad, "--out", tmp_path / "s.csv", "--lenient", "--rejects", tmp_path / "r2", env=env
    )
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(tmp_path / "s.csv", dtype={"account_id": str})
    assert not scores.loc[scores["account_id"].isin([called, sibling_called]), "eligible"].any()


@pytest.mark.slow
@pytest.mark.postgres
def test_score_and_rank_from_and_into_postgres(trained_book, postgres_db_url, tmp_path):
    """The case system's SQL path: an export in PostgreSQL in, scores and the call list out as tables."""
    import sqlalchemy as sa

    write_export(trained_book.simulation.export, postgres_db_url)
    env = {"MLFLOW_TRACKING_URI": trained_book.tracking_uri}
    for _ in range(2):  # re-scoring the same export replaces its rows: still one row per account
        scored = callq("score", "--export", postgres_db_url, "--out", f"{postgres_db_url}#scores", env=env)
        assert scored.returncode == 0, scored.stderr
    args = [
        "rank",
        "--export",
        postgres_db_url,
        "--ops",
        trained_book.ops_path,
        "--date",
        "2026-11-23",
        "--out",
        f"{postgres_db_url}#call_list",
    ]
    for _ in range(2):  # the second run replaces the date's rows atomically
        ranked = callq(*args, env=env)
        assert ranked.returncode == 0, ranked.stderr
    from_files = callq(
        "rank",
        "--export",
        trained_book.export_dir,
        "--ops",
        trained_book.ops_path,
        "--date",
        "2026-11-23",
        "--out",
        tmp_path / "list.parquet",
        env=env,
    )
    assert from_files.returncode == 0, from_files.stderr
    expected = pd.read_parquet(tmp_path / "list.parquet")
    engine = sa.create_engine(postgres_db_url)
    try:
        with engine.connect() as connection:
            scores = pd.read_sql("SELECT * FROM scores", connection)
            calls = pd.read_sql("SELECT * FROM call_list ORDER BY rank", connection)
    finally:
        engine.dispose()
    assert len(scores) == len(trained_book.simulation.export.accounts)
    assert list(calls.columns) == list(CALL_LIST_COLUMNS)
    # The database path gives the same list as the file path.
    assert calls["account_id"].tolist() == expected["account_id"].tolist()
    assert calls["rank"].tolist() == list(range(1, len(expected) + 1))
