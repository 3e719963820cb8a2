"""Every MLflow call of callq: tracking store, runs, model logging, registry, aliases, champions.

Store: `MLFLOW_TRACKING_URI` when set, else `sqlite:///<CALLQ_HOME or ./.callq>/mlflow.db` with
artifacts in `mlartifacts/` beside it. Registry: `callq-repayment`, `callq-contact`,
`callq-call-effect`; serving loads `models:/NAME@champion`. Promotions and rollbacks record their
reasons as model-version tags (one line per event, never overwritten), and each registered model
keeps its champion history as a tag. A store that fails (read-only file, unreachable server) raises
`StoreError` naming it; commands that only read never create a missing local store.
Never log debtor identities here: metrics, configs and feature names only.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
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
# Set on the versions a training run registered when the run did not finish: `promote` refuses them.
INCOMPLETE_TAG = "incomplete_run"
# The test metric each registered model is compared on (higher is better).
KEY_METRIC = {"repayment": "test_roc_auc", "contact": "test_roc_auc", "call_effect": "test_factual_auc"}
PIP_REQUIREMENTS = ["lightgbm==4.7.*", "numpy==2.4.*", "pandas==3.1.*", "scikit-learn==1.9.*", "scipy"]


class RegistryError(RuntimeError):
    """A registry request that cannot be done (unknown model or version, nothing to roll back to)."""


class StoreError(RuntimeError):
    """The tracking store itself failed (read-only database, unreachable server, deleted experiment)."""


def callq_home() -> Path:
    """`CALLQ_HOME`, else `./.callq` (absolute)."""
    return Path(os.environ.get("CALLQ_HOME") or ".callq").resolve()


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else `MLFLOW_TRACKING_URI`, else the local SQLite store (not created here)."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{callq_home() / 'mlflow.db'}"


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` store; None for any other store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def store_exists(tracking_uri: str | None = None) -> bool:
    """False only for a local SQLite store whose file is missing: reading it must not create it."""
    database = _sqlite_file(resolve_tracking_uri(tracking_uri))
    return database is None or database.exists()


def shown_uri(uri: str) -> str:
    """The store's URI with any password masked, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return uri.replace(f":{parts.password}@", ":***@", 1) if parts.password else uri


def _store_failure(error: BaseException) -> str | None:
    """What broke when `error` comes from the store itself (its database or server); None otherwise.

    MLflow wraps a database error in an `MlflowException` whose text is SQLAlchemy's (autoflush notes,
    the SQL); the database driver's own message says what is wrong.
    """
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    while error is not None:
        if isinstance(error, sqlalchemy.exc.SQLAlchemyError):
            cause = getattr(error, "orig", None)
            if cause is None:
                return str(error).splitlines()[0]
            return f"{cause} ({type(cause).__module__}.{type(cause).__name__})"
        if isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            reason = getattr(error.args[0], "reason", None) if error.args else None
            return f"cannot reach the server: {reason or error}"
        # MLflow's REST client raises its own error while handling the connection error, without `from`.
        error = error.__cause__ or (error.__context__ if isinstance(error, MlflowException) else None)
    return None


def _absent(error: Exception) -> bool:
    """Whether MLflow answered "no such model, version or alias" (rather than failing)."""
    return getattr(error, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@contextmanager
def _store_errors() -> Iterator[None]:
    """A failing store surfaces as one `StoreError` naming the store and the cause."""
    import mlflow

    # MLflow logs every database error with its SQL and a traceback before raising it: the one line is enough.
    database_log = logging.getLogger("mlflow.store.db.utils")
    level = database_log.level
    database_log.setLevel(logging.CRITICAL)
    try:
        yield
    except StoreError:
        raise
    except Exception as error:
        cause = _store_failure(error)
        if cause is None:
            raise
        raise StoreError(f"MLflow tracking store {shown_uri(mlflow.get_tracking_uri())}: {cause}") from error
    finally:
        database_log.setLevel(level)


def _store_call(function: Callable) -> Callable:
    """Decorate a public function of this module with `_store_errors`."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _store_errors():
            return function(*args, **kwargs)

    return call


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


def _in_memory(uri: str) -> bool:
    """Whether `uri` is an in-memory SQLite database (`sqlite://`, `sqlite:///:memory:`)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not uri.startswith("sqlite"):
        return False
    try:
        url = make_url(uri)
    except ArgumentError:
        return False
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


@_store_call
def experiment_id(tracking_uri: str | None = None, name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it (and a local store's folder) with an explicit artifact location.

    Refuses an in-memory SQLite store: its runs and champions would be gone when the process ends.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if _in_memory(uri):
        raise StoreError(
            f"MLflow tracking store {shown_uri(uri)} is an in-memory SQLite database: nothing trained into it "
            "outlives the command; name a file (sqlite:///path/to/mlflow.db) or a server"
        )
    database = _sqlite_file(uri)
    if database is not None:
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file where a folder should be, a folder it may not write in
            raise StoreError(
                f"MLflow tracking store {shown_uri(uri)}: cannot make its folder {database.parent}: "
                f"{error.strerror or error}"
            ) from error
    mlflow_client = client(uri)
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None and existing.lifecycle_stage == "deleted":
        raise StoreError(
            f"the MLflow experiment {name!r} in {shown_uri(uri)} was deleted: restore it "
            f"(`MLFLOW_TRACKING_URI={shown_uri(uri)} mlflow experiments restore -x {existing.experiment_id}`) "
            "or train into another store"
        )
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
    """Open a run in the `callq` experiment; it ends FAILED when the block raises, KILLED when interrupted
    (Ctrl-C, or SIGTERM turned into an interrupt by `training.pipeline.sigterm_interrupts`)."""
    import mlflow

    experiment = experiment_id(tracking_uri)
    with _store_errors(), mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as active:
        try:
            yield Run(active.info.run_id, active.info.artifact_uri)
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise


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


@_store_call
def register(kind: str, model_uri: str, run_id: str, tags: dict[str, str], tracking_uri: str | None = None) -> str:
    """Register a model logged by `log_model` under `callq-<kind>`; returns the new version number.

    Through the client: `mlflow.register_model` prints its progress on stderr, beside callq's own lines.
    """
    from mlflow.exceptions import MlflowException

    full, mlflow_client = REGISTERED[kind], client(tracking_uri)
    try:
        mlflow_client.create_registered_model(full)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = mlflow_client.create_model_version(
        full,
        model_uri,
        run_id=run_id,
        tags={**tags, "run_id": run_id},
        model_id=model_uri.removeprefix("models:/"),  # `log_model` gives `models:/<logged model id>`
    )
    return str(version.version)


# ---------------------------------------------------------------------------------------
# Registry: champions, promotion, rollback


@_store_call
def champion_version(name: str, tracking_uri: str | None = None) -> str | None:
    """The version the `champion` alias points at, or None (no store, no model or no champion yet)."""
    from mlflow.exceptions import MlflowException

    if not store_exists(tracking_uri):
        return None
    try:
        return str(client(tracking_uri).get_model_version_by_alias(registered_name(name), CHAMPION).version)
    except MlflowException as error:
        if _absent(error):
            return None
        raise


@_store_call
def load_version(name: str, version: str, tracking_uri: str | None = None) -> Any:
    """The unwrapped callq model object (e.g. `BoosterModel`) of a registered version; a `RegistryError`
    naming it when its model files are gone (a local store moved: its artifact locations are absolute)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    full = registered_name(name)
    client(tracking_uri)
    try:
        with quiet():
            return mlflow.pyfunc.load_model(f"models:/{full}/{version}").unwrap_python_model()
    except MlflowException as error:
        if not _absent(error):
            raise
        raise RegistryError(
            f"{full} v{version}: its model files cannot be read ({error}; were the store's artifacts moved or deleted?)"
        ) from error


@_store_call
def version_record(name: str, version: str, tracking_uri: str | None = None) -> dict[str, str]:
    """What is known about a registered version: its tags over the parameters of the run that made it."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    registered = mlflow_client.get_model_version(registered_name(name), str(version))
    try:
        params = mlflow_client.get_run(registered.run_id).data.params if registered.run_id else {}
    except MlflowException as error:
        if not _absent(error):
            raise
        params = {}  # the run was deleted for good: the tags are all there is
    return {**params, **(registered.tags or {})}


def _registered(full: str, tracking_uri: str | None) -> Any:
    """The registered model `full`; a `RegistryError` when the store or the model does not exist yet."""
    from mlflow.exceptions import MlflowException

    missing = f"{full} is not registered in {shown_uri(resolve_tracking_uri(tracking_uri))}: run `callq train` first"
    if not store_exists(tracking_uri):
        raise RegistryError(missing)
    try:
        return client(tracking_uri).get_registered_model(full)
    except MlflowException as error:
        if _absent(error):
            raise RegistryError(missing) from error
        raise


@_store_call
def champion_history(name: str, tracking_uri: str | None = None) -> list[str]:
    """The versions that were champion, oldest first (the current one last)."""
    tags = _registered(registered_name(name), tracking_uri).tags
    # Stores written before versions were normalised may hold "01" for version 1.
    return [str(int(part)) for part in tags.get(HISTORY_TAG, "").split(",") if part.strip().isdigit()]


def _checked_reason(reason: str) -> str:
    """The reason on one line; a blank one is refused (every move of `champion` must say why)."""
    text = " ".join(str(reason).split())
    if not text:
        raise RegistryError("a reason is required: say why the champion changes")
    return text


def _append_reason(name: str, version: str, key: str, reason: str, tracking_uri: str | None) -> None:
    """Add a line to a version's reason record (`promotion_reason`, ...): earlier reasons stay."""
    full, mlflow_client = registered_name(name), client(tracking_uri)
    earlier = (mlflow_client.get_model_version(full, version).tags or {}).get(key, "")
    mlflow_client.set_model_version_tag(full, version, key, "\n".join(filter(None, [earlier, reason])))


def other_feature_set(full: str, version: str, tags: dict[str, str]) -> str | None:
    """Why a version's recorded feature set is not the one this callq builds; None when it is."""
    from features.build import FEATURE_SET_VERSION

    trained_on = tags.get("feature_set_version") or "(not recorded)"
    if trained_on == FEATURE_SET_VERSION:
        return None
    return f"{full} v{version} was trained on feature set {trained_on}, this callq builds {FEATURE_SET_VERSION}"


def servable(full: str, version: str, tags: dict[str, str], tracking_uri: str | None = None) -> tuple[Any, str | None]:
    """(its model, None) for a version serving can use; (the model or None, why not) for one it refuses: another
    feature set (not loaded) or inputs this callq does not build. A `RegistryError` where its files are gone."""
    problem = other_feature_set(full, version, tags)
    if problem is not None:
        return None, problem
    model = load_version(full, version, tracking_uri)
    return model, _unknown_features(full, version, model.feature_names)


def _unknown_features(full: str, version: str, feature_names: Sequence[str]) -> str | None:
    """Which of a version's model inputs this callq does not build; None when it builds them all."""
    from features.build import MODEL_FEATURES
    from training.models import SLOT_COLUMNS

    unknown = sorted(set(feature_names) - {*MODEL_FEATURES, *SLOT_COLUMNS})
    if not unknown:
        return None
    return f"{full} v{version} reads features this callq does not build ({', '.join(unknown[:5])})"


@_store_call
def promote(name: str, version: str, reason: str, tracking_uri: str | None = None, *, force: bool = False) -> str:
    """Point `champion` at `version`, add the reason to the version's record and append it to the history.

    Refuses a version serving could not use (another feature set, unknown features) or one whose
    training run did not finish, unless `force`. Returns MLflow's version string ("01" gives "1").
    """
    from mlflow.exceptions import MlflowException

    full, reason = registered_name(name), _checked_reason(reason)
    _registered(full, tracking_uri)
    mlflow_client = client(tracking_uri)
    text = str(version).strip()
    try:
        if not text.isdigit():
            raise RegistryError(f"{full} has no version {text!r}: versions are whole numbers")
        registered = mlflow_client.get_model_version(full, str(int(text)))
    except MlflowException as error:
        if _absent(error):
            raise RegistryError(f"{full} has no version {text}") from error
        raise
    number, tags = str(registered.version), registered.tags or {}
    if not force:
        if INCOMPLETE_TAG in tags:
            raise RegistryError(f"{full} v{number} is from a training run that did not finish ({tags[INCOMPLETE_TAG]})")
        _, problem = servable(full, number, tags, tracking_uri)
        if problem:
            raise RegistryError(f"{problem}: serving could not use it")
    # Alias, history, then reasons: a failure between them leaves a history that a later `rollback`
    # reads right (an alias ahead of the history counts as the latest champion).
    mlflow_client.set_registered_model_alias(full, CHAMPION, number)
    history = champion_history(full, tracking_uri)
    if not history or history[-1] != number:
        history.append(number)
    mlflow_client.set_registered_model_tag(full, HISTORY_TAG, ",".join(history))
    _append_reason(full, number, "promotion_reason", reason, tracking_uri)
    return number


@_store_call
def restore_champion(name: str, version: str | None, history: list[str], tracking_uri: str | None = None) -> None:
    """Put `champion` and its history back as they were before a promotion that must be undone."""
    full, mlflow_client = registered_name(name), client(tracking_uri)
    if version is None:
        mlflow_client.delete_registered_model_alias(full, CHAMPION)
    else:
        mlflow_client.set_registered_model_alias(full, CHAMPION, version)
    mlflow_client.set_registered_model_tag(full, HISTORY_TAG, ",".join(history))


@_store_call
def rollback(name: str, reason: str, tracking_uri: str | None = None) -> str:
    """Move `champion` back to the previous champion; returns the version now champion."""
    full, reason = registered_name(name), _checked_reason(reason)
    history = champion_history(full, tracking_uri)
    current = champion_version(name, tracking_uri)
    if current is not None and history and history[-1] != current:
        history.append(current)  # the alias was moved outside callq: treat it as the latest
    if len(history) < 2:
        raise RegistryError(f"{full} has no previous champion to roll back to")
    demoted, restored = history[-1], history[-2]
    # History, alias, then reasons: a rollback that fails midway and is tried again never restores the
    # version it was taking away (the alias left on it counts as the latest champion).
    client(tracking_uri).set_registered_model_tag(full, HISTORY_TAG, ",".join(history[:-1]))
    client(tracking_uri).set_registered_model_alias(full, CHAMPION, restored)
    _append_reason(full, demoted, "rollback_reason", reason, tracking_uri)
    _append_reason(full, restored, "restored_reason", reason, tracking_uri)
    return restored


@_store_call
def list_models(tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per registered version: name, version, aliases, run, key metric, reasons (`callq models`)."""
    rows = []
    for kind, full in REGISTERED.items():
        try:
            aliases_of = _registered(full, tracking_uri).aliases or {}
        except RegistryError:
            continue  # not registered yet
        mlflow_client = client(tracking_uri)
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
                    "incomplete_run": tags.get(INCOMPLETE_TAG, ""),
                }
            )
    columns = ["name", "version", "aliases", "run_id", "metric", "value", "feature_set_version", "config",
               "promotion_reason", "rollback_reason", "not_promoted_reason", "incomplete_run"]  # fmt: skip
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


@_store_call
def load_champions(tracking_uri: str | None = None) -> Champions:
    """Load `models:/callq-*@champion` for serving; a clear error, before any feature is built, when a
    champion is missing or was trained on features this callq does not build."""
    from mlflow.exceptions import MlflowException

    versions, models, metrics = {}, {}, {}
    for kind, full in REGISTERED.items():
        version = champion_version(full, tracking_uri)
        if version is None:
            raise RegistryError(
                f"no champion for {full} in {shown_uri(resolve_tracking_uri(tracking_uri))}: run `callq train`"
            )
        mlflow_client = client(tracking_uri)
        registered = mlflow_client.get_model_version(full, version)
        models[kind], problem = servable(full, version, registered.tags or {}, tracking_uri)
        if problem:
            raise RegistryError(
                f"{problem}: retrain (`callq train`) or promote a version of this feature set (`callq models`)"
            )
        versions[kind] = version
        try:
            logged = mlflow_client.get_run(registered.run_id).data.metrics if registered.run_id else {}
        except MlflowException as error:
            if not _absent(error):
                raise
            logged = {}  # the run was deleted for good: the model serves without its test metrics
        prefix = f"{kind}."
        metrics[kind] = {
            name[len(prefix) :]: value
            for name, value in sorted(logged.items())
            if name.startswith(prefix) and ("test_" in name or "baseline" in name or "replay" in name)
        }
    return Champions(models["repayment"], models["contact"], models["call_effect"], versions, metrics)


@_store_call
def run_versions(run_id: str, tracking_uri: str | None = None) -> list[tuple[str, str]]:
    """(kind, version) of every callq version registered from run `run_id`."""
    kinds = {full: kind for kind, full in REGISTERED.items()}
    found = client(tracking_uri).search_model_versions(f"run_id = '{run_id}'")
    return sorted((kinds[version.name], str(version.version)) for version in found if version.name in kinds)


@_store_call
def set_version_tag(name: str, version: str, key: str, value: str, tracking_uri: str | None = None) -> None:
    """Record a fact about a registered version (e.g. why it was not promoted)."""
    client(tracking_uri).set_model_version_tag(registered_name(name), str(version), key, value)
