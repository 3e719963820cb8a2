"""Benchmark `callq train` on a simulated book: wall time per phase and peak RSS.

    python experiments/bench_train.py --accounts 300000 --days 365 [--config experiments/default.yaml]

Target: 300,000 accounts with a year of history in under 10 minutes and 8 GiB.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--config", default=str(Path(__file__).with_name("default.yaml")))
    parser.add_argument("--phases-only", action="store_true", help="skip the full train() with MLflow")
    args = parser.parse_args()

    from features.simulation import SimulationConfig, simulate
    from training.config import TrainConfig
    from training.contact import fit_contact
    from training.repayment import fit_repayment
    from training.snapshots import build_training_data
    from training.uplift import fit_uplift

    config = TrainConfig.from_yaml(args.config)
    started = time.perf_counter()
    book = simulate(SimulationConfig(n_accounts=args.accounts, days=args.days, seed=args.seed))
    simulated = time.perf_counter()
    export = book.export
    print(
        f"simulate: {simulated - started:.1f} s; {len(export.accounts):,} accounts, {len(export.dues):,} dues, "
        f"{len(export.payments):,} payments, {len(export.contacts):,} contacts; peak {peak_rss_gib():.2f} GiB"
    )
    phases = {}
    clock = time.perf_counter()
    data = build_training_data(export, config)
    phases["snapshots + features + labels"] = time.perf_counter() - clock
    print(f"training rows: {len(data.snapshots):,} snapshot rows, {len(data.contacts):,} call rows")
    for name, step in (
        ("repayment", lambda: fit_repayment(data, config)),
        ("contact", lambda: fit_contact(data, config, export)),
        ("call effect", lambda: fit_uplift(data, config)),
    ):
        clock = time.perf_counter()
        fit = step()
        phases[name] = time.perf_counter() - clock
        key = {"repayment": "test_roc_auc", "contact": "test_roc_auc", "call effect": "test_factual_auc"}[name]
        print(f"{name}: {phases[name]:.1f} s, {key} {fit.metrics[key]:.4f}; peak {peak_rss_gib():.2f} GiB")

    if args.phases_only:
        for name, seconds in phases.items():
            print(f"{name:32s} {seconds:8.1f} s")
        print(f"total {sum(phases.values()):.1f} s; peak RSS {peak_rss_gib():.2f} GiB")
        return
    # The whole pipeline once more, with MLflow logging and registration, into a throwaway store.
    from training.pipeline import train

    with tempfile.TemporaryDirectory() as folder:
        clock = time.perf_counter()
        result = train(export, config, tracking_uri=f"sqlite:///{folder}/mlflow.db", report_dir=Path(folder) / "r")
        phases["full train() incl. MLflow"] = time.perf_counter() - clock
    for name, seconds in phases.items():
        print(f"{name:32s} {seconds:8.1f} s")
    print(f"registered {result.model_version}; peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
