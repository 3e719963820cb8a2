"""Benchmark `callq train` on a simulated book: wall time and peak RSS per stage of one full run.

    python experiments/bench_train.py --accounts 300000 --days 365 [--config experiments/default.yaml]
        [--cache DIR] [--threads 1] [--max-rows-per-snapshot N]

Target: 300,000 accounts with a year of history trained in under 10 minutes and 8 GiB (peak RSS of
the whole process). The simulated export is written once to `--cache` (Parquet) and read back on
later runs, so reruns pay only for training; generating or reading it is reported, not counted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from features.contract import TABLES, Export
from training.pipeline import peak_rss_gib


def cached_export(folder: Path, accounts: int, days: int, seed: int) -> tuple[Export, str]:
    """The simulated export, read from `folder` when this script wrote it there before, else simulated
    and written there; and a line saying which and how long it took."""
    import pyarrow.parquet as pq

    from features.io import write_export
    from features.validate import contract_dtypes

    key = {"accounts": accounts, "days": days, "seed": seed}
    stamp = folder / "bench.json"
    started = time.perf_counter()
    if stamp.exists() and json.loads(stamp.read_text()) == key:
        # Written by this script from a typed Export: trusted, so read it without `load_export`'s checks
        # (`callq validate` covers those; here they would only add to the peak before training starts).
        meta = json.loads((folder / "export.json").read_text())
        frames = {name: pq.read_table(folder / f"{name}.parquet").to_pandas() for name in TABLES}
        frames = {name: frame.astype(contract_dtypes(name)) for name, frame in frames.items()}
        export = Export(as_of=pd.Timestamp(meta["as_of"]).tz_convert("UTC"), source=str(folder), **frames)
        return export, f"read cached export from {folder}: {time.perf_counter() - started:.1f} s"
    from features.simulation import SimulationConfig, simulate

    export = simulate(SimulationConfig(n_accounts=accounts, days=days, seed=seed)).export
    simulated = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    write_export(export, folder)
    stamp.write_text(json.dumps(key))
    written = time.perf_counter() - started - simulated
    return export, f"simulate: {simulated:.1f} s; write cache {folder}: {written:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--config", default=str(Path(__file__).with_name("default.yaml")))
    parser.add_argument("--cache", type=Path, default=None, help="export cache folder (default: .callq/bench/...)")
    parser.add_argument("--threads", type=int, default=None, help="override num_threads of every model")
    parser.add_argument("--max-rows-per-snapshot", type=int, default=None, help="override the config's cap")
    args = parser.parse_args()

    from training.config import TrainConfig
    from training.pipeline import train

    config = TrainConfig.from_yaml(args.config)
    overrides = config.model_dump()
    if args.threads is not None:
        for model in ("repayment", "contact", "uplift"):
            overrides[model]["params"]["num_threads"] = args.threads
    if args.max_rows_per_snapshot is not None:
        overrides["max_rows_per_snapshot"] = args.max_rows_per_snapshot
    config = TrainConfig.model_validate(overrides)

    cache = args.cache or Path(".callq") / "bench" / f"export-{args.accounts}-{args.days}-{args.seed}"
    export, line = cached_export(cache, args.accounts, args.days, args.seed)
    print(
        f"{line}; {len(export.accounts):,} accounts, {len(export.dues):,} dues, {len(export.payments):,} "
        f"payments, {len(export.contacts):,} contacts, {len(export.promises):,} promises; "
        f"peak {peak_rss_gib():.2f} GiB",
        flush=True,
    )
    threads = {model: getattr(config, model).params.num_threads for model in ("repayment", "contact", "uplift")}
    print(f"config {config.name}: threads {threads}, max_rows_per_snapshot {config.max_rows_per_snapshot}")

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = train(export, config, tracking_uri=f"sqlite:///{folder}/mlflow.db", report_dir=Path(folder) / "r")
        total = time.perf_counter() - started
    clock, metrics = result.clock, result.metrics
    for name, seconds in clock.seconds.items():
        print(
            f"{name:24s} {seconds:8.1f} s   peak RSS so far {clock.peak_rss_gib[name]:5.2f} GiB, "
            f"RSS after it {clock.rss_after_gib[name]:5.2f} GiB"
        )
    print(f"{'train() total':24s} {total:8.1f} s   peak RSS {peak_rss_gib():.2f} GiB")
    print(f"training rows: {result.rows['snapshots']:,} snapshot rows, {result.rows['contacts']:,} call rows")
    shown = (
        "repayment.test_roc_auc",
        "repayment.test_roc_auc_uncalibrated",
        "repayment.baseline_stage_roc_auc",
        "repayment.baseline_logistic_roc_auc",
        "repayment.test_brier",
        "repayment.test_ece",
        "contact.test_roc_auc",
        "contact.baseline_rule_roc_auc",
        "contact.baseline_debtor_roc_auc",
        "call_effect.test_factual_auc",
        "call_effect.test_qini",
        "call_effect.baseline_random_qini",
    )
    for key in shown:
        if key in metrics:
            print(f"{key:40s} {metrics[key]:.4f}")
    print(f"registered {result.model_version}")


if __name__ == "__main__":
    main()
