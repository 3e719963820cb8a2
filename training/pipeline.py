"""`train`: export -> labelled snapshots -> three models -> evaluation -> MLflow run, registry, report.

A candidate is registered when it passes its quality gates, and becomes `champion` only when it
beats the current champion re-evaluated on the SAME test window (first run: no champion, promote).
A champion that predicts another label, was fitted on labels inside this run's test window, or whose
tags cannot be read, is not compared: the candidate waits for a manual promotion. One that serving
refuses (another feature set, unknown features, model files gone) is replaced by the candidate, the
reason saying so, and saying where the label changes with it. The three aliases move last, together:
a run that fails or is stopped (SIGTERM) before its end moves none, and tags what it registered.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import Export
from training import plots, tracking
from training.config import TrainConfig
from training.contact import ContactFit, fit_contact
from training.evaluation import binary_metrics
from training.repayment import ModelQualityError, RepaymentFit, fit_repayment
from training.snapshots import TrainingData, build_training_data
from training.uplift import UpliftFit, factual_auc, fit_uplift, treatment_definition

KINDS = ("repayment", "contact", "call_effect")
# The call-effect model as the report names it: the learner it is, which a thin book can make other than
# the config's (`training.uplift`: an X-learner falls back to the T-learner, or to one effect for everyone).
LEARNER_NAMES = {"x": "X-learner", "t": "T-learner", "constant": "one effect for every debtor"}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while training; raised like Ctrl-C so that no `except Exception` swallows it."""

    exit_code_on_cli = 143  # 128 + SIGTERM, as if the signal had ended the process


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` instead of ending the process on the spot (which
    left the MLflow run RUNNING and the champions half moved); the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a signal handler
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated("training stopped by SIGTERM: the run ends KILLED and no champion moves")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class ModelOutcome:
    """What happened to one candidate: its registered version, and whether and why it was promoted."""

    name: str
    version: str
    metric: str
    candidate_value: float
    champion_version: str | None
    champion_value: float | None
    promoted: bool
    reason: str


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (NaN where the platform cannot say)."""
    try:
        import resource
    except ImportError:  # Windows has no `resource` module
        return float("nan")
    # Linux reports KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def current_rss_gib() -> float:
    """Resident memory of this process now, in GiB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**3


def release_free_memory() -> None:
    """Hand memory freed by a finished stage back to the OS: glibc's heap and Arrow's pool keep it
    otherwise, and the next stage's peak then sits on top of it."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


@dataclass
class StageClock:
    """Wall seconds of each training stage, the process's peak RSS when it ended, and its RSS once the
    stage's freed memory went back to the OS (what the next stage starts from); logged with the run."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_gib: dict[str, float] = field(default_factory=dict)
    rss_after_gib: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.peak_rss_gib[name] = peak_rss_gib()
            release_free_memory()
            self.rss_after_gib[name] = current_rss_gib()

    def metrics(self) -> dict[str, float]:
        """`time.<stage>_s` and `peak_rss_gib.<stage>` run metrics (stage names snake_cased)."""
        out = {}
        for name, seconds in self.seconds.items():
            key = name.replace(" ", "_")
            out[f"time.{key}_s"] = seconds
            if np.isfinite(self.peak_rss_gib[name]):
                out[f"peak_rss_gib.{key}"] = self.peak_rss_gib[name]
            if np.isfinite(self.rss_after_gib[name]):
                out[f"rss_after_gib.{key}"] = self.rss_after_gib[name]
        return out


@dataclass
class TrainResult:
    """The outcome of one training run."""

    run_id: str
    models: dict[str, ModelOutcome]
    metrics: dict[str, float]
    report_path: Path
    notes: list[str] = field(default_factory=list)
    # Wall time and peak RSS per stage of the run (training data, each model, registry and report).
    clock: StageClock = field(default_factory=StageClock)
    # Training rows built: `snapshots` (repayment, call effect) and `contacts` (calls), all splits.
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def promoted(self) -> dict[str, bool]:
        return {kind: outcome.promoted for kind, outcome in self.models.items()}

    @property
    def model_version(self) -> str:
        """The candidates' versions, in the `repayment:3,contact:3,call-effect:3` form."""
        return ",".join(f"{tracking.SHORT[kind]}:{outcome.version}" for kind, outcome in self.models.items())


def _load(export_source: Export | str | Path) -> Export:
    if isinstance(export_source, Export):
        return export_source
    from features.build import UNREAD_COLUMNS
    from features.io import load_export

    export, _ = load_export(export_source, drop=UNREAD_COLUMNS)
    return export


def _test(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["split"] == "test"]


def _test_head(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The first `rows` test rows, without copying the whole test window first."""
    return frame.iloc[np.flatnonzero((frame["split"] == "test").to_numpy())[:rows]]


def champion_metric(kind: str, champion: Any, data: TrainingData) -> float:
    """The champion's key test metric recomputed on this run's test window, exactly as the candidate's was
    (`binary_metrics` clips the probabilities first: scores below 1e-6 tie there), so that a champion
    identical to the candidate scores what the candidate scored."""
    if kind == "repayment":
        test = _test(data.snapshots)
        return binary_metrics(test["label_repay"].to_numpy(), champion.predict_proba(test))["roc_auc"]
    if kind == "contact":
        test = _test(data.contacts)
        return binary_metrics(test["label_rpc"].to_numpy(), champion.predict_proba(test))["roc_auc"]
    return factual_auc(champion, _test(data.snapshots))


def _label(kind: str, horizon_days: int | str, treatment: str) -> str:
    if kind == "contact":
        return "right-party contact on the call"
    repaid = f"repaid within {horizon_days} days"
    return repaid if kind == "repayment" else f"{repaid}; reached = {treatment}"


def label_definition(kind: str, config: TrainConfig) -> str:
    """What a model of `kind` trained with `config` predicts, in words (a registered version's `label` tag).

    A candidate with another label than the champion's is never compared with it: promoting it would
    silently change what `p_repay` or the call effect means downstream.
    """
    return _label(kind, config.horizon_days, treatment_definition(config.uplift.treatment_window_days))


def _champion_label(kind: str, record: dict[str, str], champion: Any) -> str:
    """The label a champion predicts: its `label` tag, else (older versions) rebuilt from its run."""
    if "label" in record:
        return record["label"]
    treatment = getattr(champion, "metadata", {}).get("treatment", "(not recorded)")
    return _label(kind, record.get("horizon_days", "(not recorded)"), treatment)


def _label_change(kind: str, version: str, record: dict[str, str], champion: Any, config: TrainConfig) -> str:
    """`; the label changes: ...` where replacing the champion changes what the model predicts; else ""."""
    label, own = _champion_label(kind, record, champion), label_definition(kind, config)
    if label == own:
        return ""
    if "(not recorded)" in label:
        return f"; the label may change: v{version}'s is not recorded, this candidate predicts {own}"
    return f"; the label changes: v{version} predicted {label}, this candidate predicts {own}"


def labels_seen(data: TrainingData, config: TrainConfig) -> str:
    """`first..end` (end excluded) of the label windows a model was fitted and calibrated on: train and
    validation (a registered version's `labels_seen` tag)."""
    end = max(data.splits.validation) + pd.Timedelta(days=config.horizon_days)
    return f"{min(data.splits.train):%Y-%m-%d}..{end:%Y-%m-%d}"


def _dates(text: str, what: str, count: int = 2) -> list[pd.Timestamp]:
    """The `count` dates of a `YYYY-MM-DD..YYYY-MM-DD` (or one date) record; a ValueError naming `what`
    when it holds anything else (a tag edited by hand, written by another tool)."""
    parts = str(text).split("..")
    try:
        dates = [pd.Timestamp(part.strip()) for part in parts] if len(parts) == count else []
    except ValueError:
        dates = []
    if not dates or any(pd.isna(date) for date in dates):
        shape = "YYYY-MM-DD..YYYY-MM-DD" if count == 2 else "YYYY-MM-DD"
        raise ValueError(f"{what} {text!r} is not {shape}")
    return [date.tz_localize(None) if date.tzinfo is not None else date for date in dates]


def _not_comparable(
    kind: str, version: str, record: dict[str, str], champion: Any, data: TrainingData, config: TrainConfig
) -> str | None:
    """Why the champion cannot be judged against this run's candidate; None when it can.

    Another label, or a fit on labels inside this run's test window (retraining on an older export):
    the champion would be scored on what it learned from. Older versions have no `labels_seen` tag:
    their own test window began after every label they saw.
    """
    label, own = _champion_label(kind, record, champion), label_definition(kind, config)
    if label != own:
        return f"champion v{version} predicts {label}, this run {own}: different label; promote manually"
    if "labels_seen" in record:
        first, end = _dates(record["labels_seen"], "its labels_seen tag")
    elif "train_from" in record and "test_window" in record:
        (first,) = _dates(record["train_from"], "its run's train_from", count=1)
        end, _ = _dates(record["test_window"], "its test_window tag")
    else:
        return None
    test_first = pd.Timestamp(f"{min(data.splits.test):%Y-%m-%d}")
    test_end = pd.Timestamp(f"{max(data.splits.test) + pd.Timedelta(days=config.horizon_days):%Y-%m-%d}")
    if first < test_end and test_first < end:
        return (
            f"champion v{version} was trained on this test window (its labels {first:%Y-%m-%d}..{end:%Y-%m-%d}, "
            f"the test window's {test_first:%Y-%m-%d}..{test_end:%Y-%m-%d}): not compared; promote manually"
        )
    return None


def decide(kind: str, candidate: float, data: TrainingData, config: TrainConfig, uri: str | None) -> tuple:
    """(champion version, champion value on this window, promote?, reason)."""
    version = tracking.champion_version(kind, uri)
    metric = tracking.KEY_METRIC[kind]
    if version is None:
        return None, None, True, f"first champion ({metric} {candidate:.4f})"
    record = tracking.version_record(kind, version, uri)
    try:
        champion, unservable = tracking.servable(tracking.registered_name(kind), version, record, uri)
    except tracking.RegistryError as error:  # its files are gone: serving cannot load it either
        champion, unservable = None, str(error)
    if unservable:
        # Serving refuses this champion already (`load_champions`): any candidate is better than none. Where
        # the candidate predicts another label, what `p_repay` (or the effect) means changes: say so.
        return (
            version,
            None,
            True,
            f"{unservable}, which serving refuses{_label_change(kind, version, record, champion, config)}",
        )
    try:
        not_comparable = _not_comparable(kind, version, record, champion, data, config)
        if not_comparable:
            return version, None, False, not_comparable
        value = champion_metric(kind, champion, data)
    except (KeyError, ValueError) as error:
        # A tag that cannot be read (a malformed `labels_seen`) or rows it cannot score: nothing says the
        # champion cannot serve, and nothing says the candidate is better. It stays; a person decides.
        return (
            version,
            None,
            False,
            f"champion v{version} cannot be compared on this window ({error}); promote manually",
        )
    if not np.isfinite(value):
        return version, value, True, f"champion v{version} gives no finite {metric} on this window"
    if candidate > value + config.promotion_margin:
        return (
            version,
            value,
            True,
            (
                f"{metric} {candidate:.4f} beats champion v{version} {value:.4f} "
                f"(+ margin {config.promotion_margin}) on the same test window"
            ),
        )
    return (
        version,
        value,
        False,
        (
            f"{metric} {candidate:.4f} does not beat champion v{version} {value:.4f} "
            f"(+ margin {config.promotion_margin}) on the same test window"
        ),
    )


def world_metrics(world: Any, export: Export, repayment: Any, call_effect: Any) -> dict[str, float]:
    """Simulated data only: models against the world's ground truth on the export's as_of.

    The world knows true probabilities at as_of only (not at past snapshots), so the ceiling is the
    expected ROC AUC of the true P(repay) against labels drawn from it, next to the model's expected
    AUC on the same accounts; and the call-effect model's correlation with the true effect of reaching
    the debtor (true P(repay | reached) - true P(repay | no call)).
    """
    from features.build import build_features

    features = build_features(export)
    features = features[features["amount_overdue"] > 0].reset_index(drop=True)
    if len(features) < 3:
        return {}
    ids = features["account_id"].to_numpy()
    truth = np.asarray(world.true_p_repay(ids), dtype=float)
    predicted = repayment.predict_proba(features)
    metrics = {
        "repayment.world_ceiling_expected_auc": expected_auc(truth, truth),
        "repayment.world_model_expected_auc": expected_auc(predicted, truth),
        "repayment.world_pearson": _correlation(predicted, truth),
        "repayment.world_mean_truth": float(truth.mean()),
        "repayment.world_mean_predicted": float(predicted.mean()),
    }
    true_effect = np.asarray(world.true_p_repay_if_reached(ids), dtype=float) - truth
    uplift = call_effect.predict_uplift(features)
    metrics.update(
        {
            "call_effect.world_pearson": _correlation(uplift, true_effect),
            "call_effect.world_spearman": _correlation(
                pd.Series(uplift).rank().to_numpy(), pd.Series(true_effect).rank().to_numpy()
            ),
            "call_effect.world_mean_true_effect": float(true_effect.mean()),
            "call_effect.world_mean_predicted_effect": float(uplift.mean()),
        }
    )
    return metrics


def _correlation(left: np.ndarray, right: np.ndarray) -> float:
    if np.std(left) == 0 or np.std(right) == 0:
        return float("nan")
    return float(np.corrcoef(left, right)[0, 1])


def expected_auc(scores: np.ndarray, true_p: np.ndarray) -> float:
    """E[ROC AUC] of `scores` when each label is an independent Bernoulli(true_p) draw.

    Weighted Mann-Whitney: positives weigh p, negatives 1 - p, ties count half.
    """
    order = np.argsort(scores, kind="stable")
    score, positive = np.asarray(scores, dtype=float)[order], np.asarray(true_p, dtype=float)[order]
    negative = 1.0 - positive
    _, start, counts = np.unique(score, return_index=True, return_counts=True)
    group_negative = np.add.reduceat(negative, start)
    group_positive = np.add.reduceat(positive, start)
    below = np.concatenate([[0.0], np.cumsum(group_negative)[:-1]])
    wins = np.sum(group_positive * (below + 0.5 * group_negative))
    # Each row can be both a positive and a negative in expectation: remove self-pairs.
    wins -= 0.5 * np.sum(positive * negative)
    pairs = positive.sum() * negative.sum() - np.sum(positive * negative)
    return float(wins / pairs) if pairs > 0 else float("nan")


def train(
    export_source: Export | str | Path,
    config: TrainConfig,
    *,
    tracking_uri: str | None = None,
    world: Any = None,
    report_dir: str | Path | None = None,
) -> TrainResult:
    """Train, evaluate, log, register and (when better) promote the three models; deterministic for a seed.

    Raises `training.repayment.ModelQualityError` (the MLflow run ends FAILED with the gate's metrics and
    `failure_reason`, nothing registered) when a model fails its gate. Any failure after registration
    moves no champion and tags the registered versions `incomplete_run`; SIGTERM ends the run KILLED
    (`Terminated`).
    """
    from features.build import FEATURE_SET_VERSION

    clock = StageClock()
    with clock.stage("load export"):
        export = _load(export_source)
    uri = tracking.resolve_tracking_uri(tracking_uri)
    # A store that cannot be used (unreachable, deleted experiment, in memory) fails now, not after the data.
    tracking.experiment_id(uri)
    with clock.stage("training data"):
        data = build_training_data(export, config)
    run_tags = {
        "config": config.name,
        "feature_set_version": FEATURE_SET_VERSION,
        "export_as_of": export.as_of.isoformat(),
        "seed": str(config.seed),
    }
    with sigterm_interrupts(), tracking.start_run(f"train-{config.name}", uri, tags=run_tags) as run:
        run.log_dict(config.resolved(), "config.json")
        run.log_dict({"feature_set_version": FEATURE_SET_VERSION, "features": data.feature_names}, "features.json")
        run.log_params(_params(config, data))
        with clock.stage("repayment"), _gate_failure_logged(run, "repayment"):
            repayment = fit_repayment(data, config)
        with clock.stage("contact"), _gate_failure_logged(run, "contact"):
            contact = fit_contact(data, config, export)
        with clock.stage("call effect"), _gate_failure_logged(run, "call_effect"):
            uplift = fit_uplift(data, config)
        run.log_params(_fitted_params(repayment, contact))
        metrics = {
            **{f"repayment.{key}": value for key, value in repayment.metrics.items()},
            **{f"contact.{key}": value for key, value in contact.metrics.items()},
            **{f"call_effect.{key}": value for key, value in uplift.metrics.items()},
        }
        if world is not None:
            with clock.stage("world metrics"):
                metrics.update(world_metrics(world, export, repayment.model, uplift.model))
        fits = {"repayment": repayment, "contact": contact, "call_effect": uplift}
        with clock.stage("champion comparison"):
            decisions = {
                kind: decide(kind, fits[kind].metrics[tracking.KEY_METRIC[kind]], data, config, uri) for kind in KINDS
            }
        run.log_metrics(metrics)

        folder = Path(report_dir) if report_dir else tracking.callq_home() / "reports" / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        notes = [*repayment.notes, *contact.notes, *uplift.notes]
        outcomes: dict[str, ModelOutcome] = {}
        moved: list[tuple[str, str | None, list[str]]] = []
        try:
            with clock.stage("registry and report"):
                samples = {
                    "repayment": _test_head(data.snapshots, 20),
                    "contact": _test_head(data.contacts, 20),
                    "call_effect": _test_head(data.snapshots, 20),
                }
                for kind in KINDS:
                    fit = fits[kind]
                    columns = fit.model.feature_names
                    model_uri = tracking.log_model(kind, fit.model, samples[kind][columns])
                    candidate = fit.metrics[tracking.KEY_METRIC[kind]]
                    version = tracking.register(
                        kind,
                        model_uri,
                        run.run_id,
                        {
                            tracking.KEY_METRIC[kind]: f"{candidate:.6f}",
                            "feature_set_version": FEATURE_SET_VERSION,
                            "config": config.name,
                            "test_window": f"{min(data.splits.test):%Y-%m-%d}..{max(data.splits.test):%Y-%m-%d}",
                            "label": label_definition(kind, config),
                            "labels_seen": labels_seen(data, config),
                        },
                        uri,
                    )
                    champion_version, champion_value, promote, reason = decisions[kind]
                    outcomes[kind] = ModelOutcome(
                        name=tracking.REGISTERED[kind],
                        version=version,
                        metric=tracking.KEY_METRIC[kind],
                        candidate_value=float(candidate),
                        champion_version=champion_version,
                        champion_value=None if champion_value is None else float(champion_value),
                        promoted=promote,
                        reason=reason,
                    )
                    if not promote:
                        tracking.set_version_tag(kind, version, "not_promoted_reason", reason, uri)
                files = write_report(folder, config, data, repayment, contact, uplift, metrics, outcomes, notes)
                _log_report(run, files)
            run.log_metrics(clock.metrics())
            if move_champions(outcomes, data, config, uri, moved):
                # A champion moved while this run trained: the report says what was decided in the end.
                files = write_report(folder, config, data, repayment, contact, uplift, metrics, outcomes, notes)
                _log_report(run, files)
            # Logged once the decisions are final, so that they name the champion the report names.
            champions = {
                f"{kind}.champion_{outcome.metric}": outcome.champion_value
                for kind, outcome in outcomes.items()
                if outcome.champion_value is not None
            }
            metrics.update(champions)
            run.log_metrics(champions)
            run.set_tags({f"promoted.{kind}": str(outcome.promoted) for kind, outcome in outcomes.items()})
        except BaseException as error:
            try:
                for kind, version, history in reversed(moved):
                    tracking.restore_champion(kind, version, history, uri)
            finally:
                _mark_incomplete(outcomes, run.run_id, error, uri)
            raise
        rows = {"snapshots": len(data.snapshots), "contacts": len(data.contacts)}
        return TrainResult(run.run_id, outcomes, metrics, files[0], notes, clock, rows)  # the report first


def move_champions(
    outcomes: dict[str, ModelOutcome],
    data: TrainingData,
    config: TrainConfig,
    uri: str | None,
    moved: list[tuple[str, str | None, list[str]]],
) -> bool:
    """Point `champion` at every candidate decided for promotion: the last step of a run, so that a run
    that fails earlier moves none. Appends (kind, previous champion, previous history) to `moved` before
    each move, for the caller to put back if the run fails after all.

    Compare-and-set: where the champion changed since the decision (another run, a manual promotion),
    the candidate is decided again against the new one. Returns whether any decision changed.
    """
    changed = False
    for kind, outcome in outcomes.items():
        if not outcome.promoted:
            continue
        current = tracking.champion_version(kind, uri)
        if current != outcome.champion_version:
            champion_version, champion_value, promote, reason = decide(kind, outcome.candidate_value, data, config, uri)
            changed = True
            outcome.champion_version, outcome.promoted = champion_version, promote
            outcome.champion_value = None if champion_value is None else float(champion_value)
            outcome.reason = f"the champion changed during this run (to {current or 'none'}); {reason}"
            if not promote:
                tracking.set_version_tag(kind, outcome.version, "not_promoted_reason", outcome.reason, uri)
                continue
        moved.append((kind, current, tracking.champion_history(kind, uri)))
        tracking.promote(kind, outcome.version, outcome.reason, uri)
    return changed


def _mark_incomplete(outcomes: dict[str, ModelOutcome], run_id: str, error: BaseException, uri: str | None) -> None:
    """Tag the versions a failed or stopped run registered, so that nobody promotes them unawares."""
    why = f"run {run_id} stopped: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    versions = {(kind, outcome.version) for kind, outcome in outcomes.items()}
    # A version the store created without the run hearing back (a lost answer, a stop inside `register`).
    with suppress(Exception):
        versions.update(tracking.run_versions(run_id, uri))
    for kind, version in sorted(versions):
        # The store may be what failed: the run's own error matters more than a missing tag.
        with suppress(Exception):
            tracking.set_version_tag(kind, version, tracking.INCOMPLETE_TAG, why, uri)


@contextmanager
def _gate_failure_logged(run: tracking.Run, kind: str) -> Iterator[None]:
    """A model failing its quality gate leaves its metrics and the reason on the failed run."""
    try:
        yield
    except ModelQualityError as error:
        run.log_metrics({f"{kind}.{key}": value for key, value in error.metrics.items()})
        run.set_tags({"failure_reason": str(error)[:5000]})
        raise


def _params(config: TrainConfig, data: TrainingData) -> dict[str, Any]:
    """Flat run parameters: the config's key settings and the data's shape (no debtor data)."""
    return {
        "config": config.name,
        "seed": config.seed,
        "horizon_days": config.horizon_days,
        "snapshot_spacing_days": config.snapshot_spacing_days,
        "gap_days": config.gap_days,
        "train_snapshots": len(data.splits.train),
        "validation_snapshots": len(data.splits.validation),
        "test_snapshots": len(data.splits.test),
        "train_from": f"{min(data.splits.train):%Y-%m-%d}",
        "test_to": f"{max(data.splits.test):%Y-%m-%d}",
        "snapshot_rows": len(data.snapshots),
        "contact_rows": len(data.contacts),
        "max_rows_per_snapshot": config.max_rows_per_snapshot,
        "n_features": len(data.feature_names),
        "repayment_calibration": config.repayment.calibration,
        "contact_calibration": config.contact.calibration,
        "uplift_params": config.uplift.params.model_dump(),
        "promotion_margin": config.promotion_margin,
    }


def _fitted_params(repayment: RepaymentFit, contact: ContactFit) -> dict[str, Any]:
    """The LightGBM parameters the models were fitted with (tuning replaces the config's: `config.json`
    keeps those) and the trees early stopping kept."""
    return {
        "repayment_params": repayment.params.model_dump(),
        "repayment_best_iteration": repayment.model.booster.current_iteration(),
        "contact_params": contact.params.model_dump(),
        "contact_best_iteration": contact.model.booster.current_iteration(),
    }


def _log_report(run: tracking.Run, files: list[Path]) -> None:
    """The report's own files (as `write_report` names them) as the run's `report/` artifacts: never the whole
    folder, which may hold anything else (a store's artifacts beside it would be copied into themselves until the
    path is too long)."""
    for path in files:
        run.log_artifact(path, "report")


def _table(rows: list[tuple], header: tuple[str, ...]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(
    folder: Path,
    config: TrainConfig,
    data: TrainingData,
    repayment: RepaymentFit,
    contact: ContactFit,
    uplift: UpliftFit,
    metrics: dict[str, float],
    outcomes: dict[str, ModelOutcome],
    notes: list[str],
) -> list[Path]:
    """The Markdown training report with its plots, in `folder`; returns the files written, the report first."""
    from features.build import FEATURE_SET_VERSION as feature_set_version

    plot_files = [
        plots.calibration_plot(repayment.calibration, folder / "calibration.png"),
        plots.gains_plot(
            repayment.test_predictions,
            folder / "gains.png",
            {"model": "p_repay", "DPD-bucket rule": "baseline_stage", "logistic": "baseline_logistic"},
        ),
        plots.importance_plot(repayment.importance, folder / "importance_repayment.png", "Repayment: feature gain"),
        plots.importance_plot(contact.importance, folder / "importance_contact.png", "Contact: feature gain"),
        plots.contact_heatmap_plot(contact.heatmap, folder / "contact_heatmap.png"),
        plots.qini_plot(uplift.qini, folder / "qini.png"),
    ]
    r, c, u = repayment.metrics, contact.metrics, uplift.metrics
    split_rows = []
    for name, dates in data.splits.by_split().items():
        # Masks, not copies of each split: the frames can be millions of rows wide.
        rows = data.snapshots.loc[(data.snapshots["split"] == name).to_numpy(), "label_repay"]
        calls = data.contacts.loc[(data.contacts["split"] == name).to_numpy(), "label_rpc"]
        split_rows.append(
            (name, f"{min(dates):%Y-%m-%d} .. {max(dates):%Y-%m-%d}", len(dates), len(rows),
             float(rows.mean()), len(calls), float(calls.mean()))
        )  # fmt: skip
    repay_rows = [
        (label, *(r[f"{prefix}{name}"] for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece",
                                                     "capture_top_10", "capture_top_20", "capture_top_30")))
        for label, prefix in (("LightGBM + calibration", "test_"), ("DPD-bucket rule", "baseline_stage_"),
                              ("logistic regression", "baseline_logistic_"))
    ]  # fmt: skip
    ceiling = metrics.get("repayment.world_ceiling_expected_auc")
    world_line = (
        f" Simulator ground truth at as_of (labels not yet seen): expected AUC of the true probabilities "
        f"{ceiling:.4f} (the ceiling), of this model {metrics['repayment.world_model_expected_auc']:.4f}."
        if ceiling is not None
        else ""
    )
    lines = [
        f"# callq training report: `{config.name}`",
        "",
        f"Feature set version {feature_set_version}: {len(data.feature_names)} model features; "
        f"horizon {config.horizon_days} days; seed {config.seed}.",
        "",
        "## Data and time splits",
        f"Snapshots every {config.snapshot_spacing_days} days; a gap of at least the horizon separates splits "
        "(asserted), so no label window crosses a split.",
        "",
        _table(split_rows, ("split", "snapshots", "n", "rows", "repay rate", "calls", "RPC rate")),
        "",
        "## Registry decisions",
        _table(
            [
                (
                    o.name,
                    o.version,
                    o.metric,
                    o.candidate_value,
                    o.champion_version or "-",
                    "-" if o.champion_value is None else o.champion_value,
                    "yes" if o.promoted else "no",
                    o.reason,
                )
                for o in outcomes.values()
            ],
            (
                "model",
                "version",
                "metric",
                "candidate",
                "champion",
                "champion (same window)",
                "promoted",
                "why",
            ),
        ),  # fmt: skip
        "",
        "## Repayment (test window)",
        _table(
            repay_rows,
            ("model", "ROC AUC", "PR AUC", "Brier", "log loss", "ECE", "top 10%", "top 20%", "top 30%"),
        ),  # fmt: skip
        "",
        f"Uncalibrated ROC AUC {r['test_roc_auc_uncalibrated']:.4f}; "
        f"calibration: {config.repayment.calibration}, fitted on validation only." + world_line,
        "",
        "![calibration](calibration.png) ![gains](gains.png)",
        "",
        "![importance](importance_repayment.png)",
        "",
        "## Right-party contact (test window)",
        _table(
            [
                ("LightGBM", c["test_roc_auc"], c["replay_model_rpc_rate"], int(c["replay_model_matched_calls"])),
                (
                    "collectors' rule (portfolio best hour per weekday)",
                    c["baseline_rule_roc_auc"],
                    c["replay_rule_rpc_rate"],
                    int(c["replay_rule_matched_calls"]),
                ),
                (
                    "debtor's raw best hour",
                    c["baseline_debtor_roc_auc"],
                    c["replay_debtor_rpc_rate"],
                    int(c["replay_debtor_matched_calls"]),
                ),
                ("hours as placed", float("nan"), c["replay_as_placed_rpc_rate"], "all"),
            ],
            ("method", "ROC AUC", "replay RPC rate", "matched calls"),
        ),  # fmt: skip
        "",
        "Replay estimate: the RPC rate of held-out calls that happened to be placed in the hour each method "
        "picks for that account-day. Valid where historical call hours were partly random; where collectors "
        "already chose hours by what worked it favours methods that agree with them.",
        "",
        "![heatmap](contact_heatmap.png) ![importance](importance_contact.png)",
        "",
        "## Call effect (uplift, test window)",
        _table(
            [
                (LEARNER_NAMES[uplift.model.learner], u["test_qini"], u["test_factual_auc"]),
                ("random ordering", u["baseline_random_qini"], float("nan")),
            ],
            ("model", "Qini coefficient", "factual AUC (promotion metric)"),
        ),
        "",
        f"Mean predicted effect {u['test_mean_uplift']:.4f}; naive reached-vs-not difference "
        f"{u['test_naive_difference']:.4f}; treated share {u['test_treated_share']:.3f}.",
    ]
    if "call_effect.world_pearson" in metrics:
        lines.append(
            "Against the simulator's true effect of reaching the debtor at as_of: "
            f"Pearson {metrics['call_effect.world_pearson']:.3f}, "
            f"Spearman {metrics['call_effect.world_spearman']:.3f} (true mean "
            f"{metrics['call_effect.world_mean_true_effect']:.4f}, predicted mean "
            f"{metrics['call_effect.world_mean_predicted_effect']:.4f})."
        )
    lines += [
        "",
        "It is observational: debtors who answer may be the willing ones (unobserved willingness confounds "
        "it, usually upward), and it extrapolates where some debtors are almost never or always reached "
        "(positivity). Validate against a random holdout of calls before trusting its scale.",
        "",
        "![qini](qini.png)",
        "",
        _table(
            [
                (int(row.decile) + 1, row.predicted_uplift, row.observed_uplift, int(row.rows))
                for row in uplift.deciles.itertuples()
            ],
            ("decile", "predicted uplift", "observed reached - not reached", "rows"),
        ),  # fmt: skip
    ]
    if notes:
        lines += ["", "## Notes", *[f"* {note}" for note in notes]]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [path, *plot_files]
