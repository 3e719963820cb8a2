"""A small simulated book with trained, registered champion models, shared by the serving tests.

Trained once per test session into a temporary MLflow store (SQLite), with a fast config:
serving tests check behaviour, not model quality (training's own tests and the evaluation
runs do that).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from features.simulation import Simulation, SimulationConfig, generate
from training.config import TrainConfig

FAST_TRAINING = {
    "name": "test-fast",
    "train_snapshots": 8,
    "validation_snapshots": 2,
    "test_snapshots": 2,
    # Repayment keeps the default model: it must beat its baselines or training refuses it.
    "contact": {"params": {"n_estimators": 60, "num_leaves": 15, "min_child_samples": 40}},
    "uplift": {"params": {"n_estimators": 60, "num_leaves": 7, "min_child_samples": 60}},
}

# One-thread small models for the training tests of what a run does (tests share the machine); each
# test file adds its own name and snapshot counts.
FAST_MODELS = {
    "repayment": {"params": {"num_threads": 1}},
    "contact": {"params": {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 40, "num_threads": 1}},
    "uplift": {"params": {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 60, "num_threads": 1}},
}


@dataclass
class TrainedBook:
    simulation: Simulation
    export_dir: Path
    ops_path: Path
    tracking_uri: str
    champions: object


@pytest.fixture(scope="session")
def trained_book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedBook]:
    """4,000 simulated accounts (cn policy), trained and promoted champions in a private store."""
    from serving.pipeline import load_models
    from training.pipeline import train

    root = tmp_path_factory.mktemp("trained-book")
    export_dir = root / "export"
    simulation = generate(export_dir, SimulationConfig(n_accounts=4000, days=180, seed=11))
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALLQ_HOME", str(root / "home"))
        train(
            simulation.export,
            TrainConfig.model_validate(FAST_TRAINING),
            tracking_uri=tracking_uri,
            report_dir=root / "report",
        )
        champions = load_models(tracking_uri)
    yield TrainedBook(simulation, export_dir, export_dir / "operations.yaml", tracking_uri, champions)
