"""Every MLflow call of callq: tracking store, runs, model logging, registry, aliases, champions.

Store: `MLFLOW_TRACKING_URI` when set, else `sqlite:///<CALLQ_HOME or ./.callq>/mlflow.db` with
artifacts in `mlartifacts/` beside it. Registry: `callq-repayment`, `callq-contact`,
`callq-call-effect`; serving loads `models:/NAME@champion`. Promotions and rollbacks record their
reason as model-version tags, and each registered model keeps its champion history as a tag.
Never log debtor identities here: metrics, configs and feature names only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXPERIMENT = "callq"
CHAMPION = "champion"
REGISTERED = {"repayment": "callq-repayment", "contact": "callq-contact", "call_effect": "callq-call-effect"}
SHORT = {"repayment": "repayment", "contact": "contact", "call_effect": "call-effect"}
HISTORY_TAG = "champion_history"
# The test metric each registered model is compared on (higher is better).
KEY_METRIC = {"repayment": "test_roc_auc", "contact": "test_roc_auc", "call_effect": "test_factual_auc"}
PIP_REQUIREMENTS = ["lightgbm==4.7.*", "numpy==2.4.*", "pandas==3.1.*", "scikit-learn==1.9.*", "scipy"]


class RegistryError(RuntimeError):
    """A registry request that cannot be done (unknown model or version, nothing to roll back to)."""


def callq_home() -> Path:
    """`CALLQ_HOME`, else `./.callq` (absolute)."""
    return Path(os.environ.get("CALLQ_HOME") or ".callq").resolve()


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else `MLFLOW_TRACKING_URI`, else the local SQLite store."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home = callq_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def _artifact_location(uri: str) -> str | None:
    """For a local SQLite store, the `mlartifacts` folder beside the database; else the server's default."""
    if uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///") :])
        folder = database.parent / "mlartifacts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve().as_uri()
    return None


@contextmanager
def quiet() -> Iterator[None]:
    """Silence MLflow's info chatter and progress bars (registration notices, pickling notes) for a block."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def client(tracking_uri: str | None = None):
    """An `MlflowClient` bound to the resolved store (also set as the process default for fluent calls)."""
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(tracking_uri: str | None = None, name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it with an explicit artifact location when missing."""
    mlflow_client = client(tracking_uri)
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow_client.create_experiment(
        name, artifact_location=_artifact_location(resolve_tracking_uri(tracking_uri))
    )


def registered_name(name: str) -> str:
    """`callq-repayment` from `repayment`, `callq-repayment`, `call-effect` or `call_effect`."""
    key = name.removeprefix("callq-").replace("-", "_")
    if key not in REGISTERED:
        raise RegistryError(f"unknown model {name!r}; expected one of {sorted(REGISTERED.values())}")
    return REGISTERED[key]


def _kind(name: str) -> str:
    return registered_name(name).removeprefix("callq-").replace("-", "_")


# ---------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    """An active MLflow run; thin logging helpers that skip non-finite metrics."""

    run_id: str
    artifact_uri: str

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        flat = {key: (json.dumps(value) if isinstance(value, dict | list) else value) for key, value in params.items()}
        mlflow.log_params({key: str(value)[:500] for key, value in flat.items()})

    def log_metrics(self, metrics: dict[str, float]) -> None:
        import mlflow

        finite = {
            key: float(value)
            for key, value in metrics.items()
            if isinstance(value, int | float | np.floating | np.integer) and math.isfinite(float(value))
        }
        mlflow.log_metrics(finite)

    def log_dict(self, data: dict[str, Any] | list, path: str) -> None:
        import mlflow

        mlflow.log_dict(data, path)

    def log_text(self, text: str, path: str) -> None:
        import mlflow

        mlflow.log_text(text, path)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=folder)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        mlflow.set_tags({key: str(value) for key, value in tags.items()})


@contextmanager
def start_run(run_name: str, tracking_uri: str | None = None, tags: dict[str, str] | None = None) -> Iterator[Run]:
    """Open a run in the `callq` experiment; it ends FAILED when the block raises."""
    import mlflow

    experiment = experiment_id(tracking_uri)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as active:
        yield Run(active.info.run_id, active.info.artifact_uri)


def _signature_frame(features: pd.DataFrame) -> pd.DataFrame:
    """A sample frame MLflow can infer a schema from: categories and strings as str, numbers as float."""
    out = {}
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            out[name] = column.astype("string").fillna("").astype(object)
    return pd.DataFrame(out)


def log_model(kind: str, python_model: Any, sample: pd.DataFrame, *, tags: dict[str, str] | None = None) -> str:
    """Log a pyfunc model (boosters as text artifacts) with a signature inferred on `sample`; its URI."""
    import mlflow
    from mlflow.models import infer_signature

    frame = _signature_frame(sample)
    signature = infer_signature(frame, np.asarray(python_model.predict(None, sample), dtype=float))
    with tempfile.TemporaryDirectory() as folder, quiet():
        info = mlflow.pyfunc.log_model(
            name=kind,
            python_model=python_model,
            artifacts=python_model.artifacts(Path(folder)),
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            tags=tags,
        )
    return info.model_uri


def register(kind: str, model_uri: str, run_id: str, tags: dict[str, str], tracking_uri: str | None = None) -> str:
    """Register a logged model under `callq-<kind>`; returns the new version number."""
    import mlflow

    client(tracking_uri)
    with quiet():
        version = mlflow.register_model(model_uri, REGISTERED[kind], tags={**tags, "run_id": run_id})
    return str(version.version)


# ---------------------------------------------------------------------------------------
# Registry: champions, promotion, rollback


def champion_version(name: str, tracking_uri: str | None = None) -> str | None:
    """The version the `champion` alias points at, or None (no model or no champion yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client(tracking_uri).get_model_version_by_alias(registered_name(name), CHAMPION).version)
    except MlflowException:
        return None


def load_version(name: str, version: str, tracking_uri: str | None = None) -> Any:
    """The unwrapped callq model object (e.g. `BoosterModel`) of a registered version."""
    import mlflow

    client(tracking_uri)
    with quiet():
        return mlflow.pyfunc.load_model(f"models:/{registered_name(name)}/{version}").unwrap_python_model()


def _history(name: str, tracking_uri: str | None) -> list[str]:
    tags = client(tracking_uri).get_registered_model(registered_name(name)).tags
    return [part for part in tags.get(HISTORY_TAG, "").split(",") if part]


def promote(name: str, version: str, reason: str, tracking_uri: str | None = None) -> None:
    """Point `champion` at `version`, record the reason on the version and append it to the history."""
    from mlflow.exceptions import MlflowException

    full, mlflow_client = registered_name(name), client(tracking_uri)
    try:
        mlflow_client.get_model_version(full, str(version))
    except MlflowException as error:
        raise RegistryError(f"{full} has no version {version}") from error
    mlflow_client.set_registered_model_alias(full, CHAMPION, str(version))
    mlflow_client.set_model_version_tag(full, str(version), "promotion_reason", reason)
    history = _history(name, tracking_uri)
    if not history or history[-1] != str(version):
        history.append(str(version))
    mlflow_client.set_registered_model_tag(full, HISTORY_TAG, ",".join(history))


def rollback(name: str, reason: str, tracking_uri: str | None = None) -> str:
    """Move `champion` back to the previous champion; returns the version now champion."""
    full, mlflow_client = registered_name(name), client(tracking_uri)
    history = _history(name, tracking_uri)
    current = champion_version(name, tracking_uri)
    if current is not None and history and history[-1] != current:
        history.append(current)  # the alias was moved outside callq: treat it as the latest
    if len(history) < 2:
        raise RegistryError(f"{full} has no previous champion to roll back to")
    demoted, restored = history[-1], history[-2]
    mlflow_client.set_registered_model_alias(full, CHAMPION, restored)
    mlflow_client.set_model_version_tag(full, demoted, "rollback_reason", reason)
    mlflow_client.set_model_version_tag(full, restored, "restored_reason", reason)
    mlflow_client.set_registered_model_tag(full, HISTORY_TAG, ",".join(history[:-1]))
    return restored


def list_models(tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per registered version: name, version, aliases, run, key metric, reasons (`callq models`)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    rows = []
    for kind, full in REGISTERED.items():
        try:
            aliases_of = mlflow_client.get_registered_model(full).aliases or {}
        except MlflowException:
            continue  # not registered yet
        for version in mlflow_client.search_model_versions(f"name = '{full}'"):
            tags = version.tags or {}
            aliases = sorted(alias for alias, number in aliases_of.items() if str(number) == str(version.version))
            rows.append(
                {
                    "name": full,
                    "version": int(version.version),
                    "aliases": ",".join(aliases),
                    "run_id": version.run_id or tags.get("run_id", ""),
                    "metric": KEY_METRIC[kind],
                    "value": float(tags[KEY_METRIC[kind]]) if KEY_METRIC[kind] in tags else float("nan"),
                    "feature_set_version": tags.get("feature_set_version", ""),
                    "config": tags.get("config", ""),
                    "promotion_reason": tags.get("promotion_reason", ""),
                    "rollback_reason": tags.get("rollback_reason", ""),
                    "not_promoted_reason": tags.get("not_promoted_reason", ""),
                }
            )
    columns = ["name", "version", "aliases", "run_id", "metric", "value", "feature_set_version", "config",
               "promotion_reason", "rollback_reason", "not_promoted_reason"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values(["name", "version"], ignore_index=True)


@dataclass
class Champions:
    """The three champion models, unwrapped, and the version string written into every output row."""

    repayment: Any  # training.models.BoosterModel
    contact: Any  # training.models.ContactModel
    call_effect: Any  # training.models.CallEffectModel
    versions: dict[str, str]
    # kind -> the test-window metrics its training run logged (baselines included), for the API.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def model_version(self) -> str:
        """e.g. `repayment:3,contact:3,call-effect:2`."""
        return ",".join(f"{SHORT[kind]}:{self.versions[kind]}" for kind in REGISTERED)


def load_champions(tracking_uri: str | None = None) -> Champions:
    """Load `models:/callq-*@champion` for serving; a clear error when a champion is missing."""
    versions, models, metrics = {}, {}, {}
    mlflow_client = client(tracking_uri)
    for kind, full in REGISTERED.items():
        version = champion_version(full, tracking_uri)
        if version is None:
            raise RegistryError(f"no champion for {full} in {resolve_tracking_uri(tracking_uri)}: run `callq train`")
        versions[kind] = version
        models[kind] = load_version(full, version, tracking_uri)
        run_id = mlflow_client.get_model_version(full, version).run_id
        logged = mlflow_client.get_run(run_id).data.metrics if run_id else {}
        prefix = f"{kind}."
        metrics[kind] = {
            name[len(prefix) :]: value
            for name, value in sorted(logged.items())
            if name.startswith(prefix) and ("test_" in name or "baseline" in name or "replay" in name)
        }
    return Champions(models["repayment"], models["contact"], models["call_effect"], versions, metrics)


def set_version_tag(name: str, version: str, key: str, value: str, tracking_uri: str | None = None) -> None:
    """Record a fact about a registered version (e.g. why it was not promoted)."""
    client(tracking_uri).set_model_version_tag(registered_name(name), str(version), key, value)
