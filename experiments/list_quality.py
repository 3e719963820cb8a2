"""List quality in simulated worlds: callq's list against a supervisor's sort and an oracle.

`python experiments/list_quality.py [--quick | --accounts N] [--held-out | --stress | --random A-B]
[--worlds NAME,...] [--out FILE]`

For each world: simulate a book, train the three models with `TrainConfig()` into a throw-away
MLflow store, rank the default list date, and replay callq's list, the supervisor's sort and the
oracle (true parameters) in the world. Two ablations locate the lost money: callq's contact model
with the TRUE uplift, and callq's uplift with the TRUE contact probabilities. The worlds' truth is
used for evaluation only, never for training. Writes a Markdown table (default
`experiments/LIST_QUALITY.md`). `--held-out` runs five further worlds that no modelling choice
looked at (`experiments/LIST_QUALITY_HELD_OUT.md`): a check that the study's figures generalise.
`--stress` runs ten harder worlds (`experiments/LIST_QUALITY_STRESS.md`): short histories, small
books, a history without exploration calls, low answer rates, and debtors in half-hour zones.
`--random A-B` runs one world per seed with every knob drawn at random (`random_world`;
`experiments/LIST_QUALITY_RANDOM.md`): robustness over worlds nobody picked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.simulation import KindMix, Simulation, SimulationConfig, simulate  # noqa: E402
from serving.compliance import assert_compliant  # noqa: E402
from serving.evaluation import compare_lists, true_contact_probability  # noqa: E402
from serving.pipeline import contact_probability, default_list_date, score_export  # noqa: E402
from serving.ranking import rank_calls  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.pipeline import train  # noqa: E402
from training.tracking import load_champions, quiet  # noqa: E402

US_ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles")


@dataclass(frozen=True)
class World:
    """A named simulated world: its knobs, and why it is in the study."""

    name: str
    description: str
    config: SimulationConfig


def worlds(n_accounts: int) -> list[World]:
    """The study's worlds: two cn seeds, a multi-zone US book, and books with other debtor mixes."""
    return [
        World("cn-s0", "cn, Asia/Shanghai, seed 0", SimulationConfig(n_accounts=n_accounts, seed=0)),
        World("cn-s1", "cn, Asia/Shanghai, seed 1", SimulationConfig(n_accounts=n_accounts, seed=1)),
        World(
            "us-s2",
            "us_reg_f, New York / Chicago / Los Angeles, centre Chicago, seed 2",
            SimulationConfig(
                n_accounts=n_accounts,
                seed=2,
                timezones=US_ZONES,
                centre_timezone="America/Chicago",
                policy="us_reg_f",
            ),
        ),
        World(
            "cn-negotiable-s3",
            "cn, more negotiable and unreachable debtors, call effect x0.6, seed 3",
            SimulationConfig(
                n_accounts=n_accounts,
                seed=3,
                kind_mix=KindMix(
                    self_curer=0.15, forgetful=0.15, negotiable=0.35, unwilling=0.1, hardship=0.1, unreachable=0.15
                ),
                call_effect_scale=0.6,
            ),
        ),
        World(
            "cn-selfcure-s4",
            "cn, many self-curers, answer rate 0.2, call effect x1.5, Shanghai + Urumqi zones, seed 4",
            SimulationConfig(
                n_accounts=n_accounts,
                seed=4,
                timezones=("Asia/Shanghai", "Asia/Urumqi"),
                timezone_weights=(0.8, 0.2),
                kind_mix=KindMix(
                    self_curer=0.40, forgetful=0.20, negotiable=0.15, unwilling=0.1, hardship=0.1, unreachable=0.05
                ),
                answer_rate=0.2,
                call_effect_scale=1.5,
            ),
        ),
    ]


def _knob_worlds(n_accounts: int, knobs: list[tuple[str, str, int, dict]]) -> list[World]:
    """Worlds from (name, description, seed, SimulationConfig knobs); a knob may override n_accounts."""
    return [
        World(name, f"{text}, seed {seed}", SimulationConfig(**{"n_accounts": n_accounts, "seed": seed, **config}))
        for name, text, seed, config in knobs
    ]


def held_out_worlds(n_accounts: int) -> list[World]:
    """Worlds used for no modelling choice: other capacities, history lengths, hour habits and answer rates."""
    us = {"timezones": US_ZONES, "centre_timezone": "America/New_York", "policy": "us_reg_f"}
    knobs = [
        ("capacity-x2-s5", "cn, twice the calls per account and day", 5, {"calls_per_account_day": 0.2}),
        ("capacity-half-s6", "cn, half the calls per account and day", 6, {"calls_per_account_day": 0.05}),
        ("history-365-s7", "cn, a year of history", 7, {"days": 365}),
        ("random-hours-s8", "cn, every history call at a random allowed hour", 8, {"random_hour_share": 1.0}),
        ("us-answer-40-s9", "us_reg_f, three zones, centre New York, answer rate 0.4", 9, {**us, "answer_rate": 0.4}),
    ]
    return _knob_worlds(n_accounts, knobs)


def stress_worlds(n_accounts: int) -> list[World]:
    """Harder worlds: 90 and 120 days of history, 1,000-account books, no exploration calls in the
    history, history calls only at the supervisors' habitual hours, low answer rates, and debtors in
    half-hour zones."""
    us4 = {
        "timezones": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
        "centre_timezone": "America/Chicago",
        "policy": "us_reg_f",
    }
    small = min(n_accounts, 1_000)
    knobs = [
        ("history-90-s21", "cn, 90 days of history", 21, {"days": 90}),
        ("history-120-s22", "cn, 120 days of history", 22, {"days": 120}),
        ("book-1000-s200", "cn, 1,000 accounts", 200, {"n_accounts": small}),
        ("book-1000-s201", "cn, 1,000 accounts", 201, {"n_accounts": small}),
        ("book-1000-us-s202", "us_reg_f, four zones, 1,000 accounts", 202, {**us4, "n_accounts": small}),
        ("answer-10-s203", "cn, answer rate 0.1", 203, {"answer_rate": 0.1}),
        ("no-exploration-s204", "cn, history calls by the supervisor sort only", 204, {"explore_share": 0.0}),
        (
            "habit-hours-s205",
            "cn, history calls only at the supervisors' habitual hours",
            205,
            {"random_hour_share": 0.0},
        ),
        ("us4-answer-20-s206", "us_reg_f, four zones, answer rate 0.2", 206, {**us4, "answer_rate": 0.2}),
        (
            "half-hour-zones-s207",
            "cn, centre Shanghai, debtors in Shanghai, Kolkata (+5:30) and Adelaide (+9:30, +10:30 from October)",
            207,
            {"timezones": ("Asia/Shanghai", "Asia/Kolkata", "Australia/Adelaide"), "centre_timezone": "Asia/Shanghai"},
        ),
    ]
    return _knob_worlds(n_accounts, knobs)


def feature_ceiling_uplift(scores: pd.DataFrame, true_uplift: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """Diagnostic only: the true uplift as well as the model features can predict it (5-fold CV, fitted to the truth).

    Tells whether list money is lost to the learner or to what the export does not show.
    """
    import lightgbm as lgb
    from sklearn.model_selection import KFold, cross_val_predict

    from training.models import FeatureEncoder

    overdue = scores["amount_overdue"].to_numpy(dtype=float) > 0
    matrix = FeatureEncoder.fit(scores, feature_names).transform(scores)[overdue]
    regressor = lgb.LGBMRegressor(
        n_estimators=400, learning_rate=0.03, num_leaves=15, min_child_samples=30, n_jobs=2, random_state=0, verbose=-1
    )
    predicted = np.zeros(len(scores))
    folds = KFold(5, shuffle=True, random_state=0)
    predicted[overdue] = cross_val_predict(regressor, matrix, true_uplift[overdue], cv=folds)
    return np.clip(predicted, 0.0, None)


def ablations(simulation: Simulation, champions, list_date: dt.date) -> dict[str, float]:
    """Extra money of lists ranked with one of callq's models swapped for the truth, and model-vs-truth checks."""
    export, operations, world = simulation.export, simulation.operations, simulation.world
    scored = score_export(export, champions, day=list_date)
    scores = scored.account_scores
    ids = scores["account_id"].to_numpy()
    p_none = world.true_p_repay(ids)
    true_uplift = world.true_p_repay_if_reached(ids, list_date=list_date) - p_none
    ours = contact_probability(champions)
    truth = true_contact_probability(simulation, list_date)
    with_true_uplift = scores.assign(uplift=np.clip(true_uplift, 0.0, None))

    def extra(account_scores: pd.DataFrame, contact) -> float:
        call_list = rank_calls(export, operations, list_date, account_scores, contact).call_list
        assert_compliant(call_list, export, operations, list_date)  # the replay credits any call
        return world.replay(call_list).extra

    out = {
        "true_uplift_our_contact": extra(with_true_uplift, ours),
        "our_uplift_true_contact": extra(scores, truth),
    }
    ceiling = feature_ceiling_uplift(scores, true_uplift, champions.call_effect.feature_names)
    out["ceiling_uplift_our_contact"] = extra(scores.assign(uplift=ceiling), ours)
    overdue = scores["amount_overdue"].to_numpy(dtype=float) > 0
    predicted = scores["uplift"].to_numpy(dtype=float)[overdue]
    effect = true_uplift[overdue]
    out["uplift_pearson"] = float(np.corrcoef(predicted, effect)[0, 1])
    out["uplift_spearman"] = float(pd.Series(predicted).corr(pd.Series(effect), method="spearman"))
    out["uplift_mean_predicted"] = float(predicted.mean())
    out["uplift_mean_true"] = float(effect.mean())
    # Money-weighted: the ranking key is uplift x stake.
    stake = scores["value_at_stake"].to_numpy(dtype=float)[overdue]
    out["value_pearson"] = float(np.corrcoef(predicted * stake, effect * stake)[0, 1])
    return out


def run_world(world: World, config: TrainConfig) -> dict:
    """Simulate, train into a temporary MLflow store, rank the default list date, replay; one result row."""
    started = time.perf_counter()
    simulation = simulate(world.config)
    list_date = default_list_date(simulation.export.as_of, simulation.operations)
    with tempfile.TemporaryDirectory(prefix="callq-list-quality-") as home:
        uri = f"sqlite:///{Path(home) / 'mlflow.db'}"
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = uri
        try:
            with quiet():
                train(simulation.export, config, tracking_uri=uri, report_dir=Path(home) / "report")
                champions = load_champions(uri)
            table = compare_lists(simulation, champions, list_date)
            extra = table.set_index("list")["true_extra_collected"]
            settled = table.set_index("list")["true_extra_settled"]
            row = {
                "world": world.name,
                "description": world.description,
                "list_date": str(list_date),
                "calls": int(table.loc[0, "calls"]),
                "callq": float(extra["callq"]),
                "supervisor": float(extra["supervisor sort"]),
                "oracle": float(extra["oracle (true parameters)"]),
                "callq_settled": float(settled["callq"]),
                "supervisor_settled": float(settled["supervisor sort"]),
                "oracle_settled": float(settled["oracle (settled money)"]),
            }
            row.update(ablations(simulation, champions, list_date))
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous
    row["seconds"] = time.perf_counter() - started
    return row


# Zone groups for random worlds: (debtor zones, centre zone), half-hour and DST zones included.
RANDOM_ZONES = (
    (("Asia/Shanghai",), "Asia/Shanghai"),
    (("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"), "America/Chicago"),
    (("Asia/Kolkata", "Asia/Kathmandu"), "Asia/Kolkata"),
    (("Australia/Adelaide", "Australia/Sydney", "Australia/Perth"), "Australia/Sydney"),
    (("Europe/London", "Europe/Berlin", "Europe/Helsinki"), "Europe/Berlin"),
    (("America/Sao_Paulo", "America/Manaus"), "America/Sao_Paulo"),
    (("Asia/Shanghai", "Asia/Urumqi"), "Asia/Shanghai"),
    (("Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles"), "America/Los_Angeles"),
)


def random_world(seed: int) -> World:
    """A world with every knob drawn from `seed`: 800-3,000 accounts, 75-300 days, either policy, one of
    eight zone groups, answer rates 0.05-0.6, call effects x0.2-2, thin to heavy calling, any exploration."""
    draw = random.Random(seed)
    zones, centre = draw.choice(RANDOM_ZONES)
    knobs = {
        "n_accounts": draw.choice([800, 1500, 3000]),
        "days": draw.choice([75, 120, 180, 300]),
        "seed": 1000 + seed,
        "timezones": zones,
        "centre_timezone": centre,
        "policy": draw.choice(["cn", "us_reg_f"]),
        "answer_rate": round(draw.uniform(0.05, 0.6), 2),
        "call_effect_scale": round(draw.uniform(0.2, 2.0), 2),
        "calls_per_account_day": round(draw.uniform(0.02, 0.2), 3),
        "calls_per_agent_hour": draw.randint(3, 20),
        "explore_share": round(draw.uniform(0, 0.6), 2),
        "random_hour_share": round(draw.uniform(0, 1), 2),
        "wrong_number_rate": round(draw.uniform(0, 0.2), 2),
        "payday_boost": round(draw.uniform(1, 3), 2),
        "horizon_days": draw.choice([7, 14, 30]),
    }
    text = ", ".join(f"{key} {value}" for key, value in knobs.items() if key not in ("seed", "timezones"))
    return World(f"random-{seed}", f"{text}, zones {', '.join(zones)}", SimulationConfig(**knobs))


def markdown(rows: list[dict], quick: bool, flags: str = "") -> str:
    """The study's results as a Markdown document."""
    frame = pd.DataFrame(rows)
    for name in (
        "callq",
        "supervisor",
        "true_uplift_our_contact",
        "our_uplift_true_contact",
        "ceiling_uplift_our_contact",
    ):
        frame[f"{name}_share"] = frame[name] / frame["oracle"]
    for name in ("callq", "supervisor"):
        frame[f"{name}_settled_share"] = frame[f"{name}_settled"] / frame["oracle_settled"]
    lines = [
        "# List quality in simulated worlds",
        "",
        "Generated by `python experiments/list_quality.py"
        + (" --quick" if quick else "")
        + flags
        + "`. Extra money = true expected collections of the list's calls beyond making no calls, replayed "
        "in the world; share = extra / oracle's extra. The oracle ranks with the world's true "
        "parameters through the same assignment and compliance code. Ablations rank callq's list with "
        "one model swapped for the truth. *Feature-ceiling uplift*: the true uplift as well as the model "
        "features can predict it (LightGBM fitted to the truth, 5-fold cross-validated; a diagnostic, never "
        "a model), ranked with callq's contact model: when it is close to callq, the money is lost to what "
        "the export does not show, not to the learner. *Settled money*: the same lists judged by every "
        "settled payment in the horizon (what the centre's books show as collected, partial and full payments "
        "included) instead of the money the label asks for, against an oracle drawn to maximise that; the "
        "ablations use the label's yardstick. Truth is used for evaluation only.",
        "",
        "| world | calls | oracle | callq | share | supervisor | share | settled money: oracle | callq | "
        "supervisor | true uplift + our contact | "
        "our uplift + true contact | feature-ceiling uplift + our contact | uplift corr (Pearson / Spearman) | "
        "uplift mean pred / true | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in frame.itertuples():
        lines.append(
            f"| {row.world} | {row.calls} | {row.oracle:,.0f} | {row.callq:,.0f} | **{row.callq_share:.0%}** | "
            f"{row.supervisor:,.0f} | {row.supervisor_share:.0%} | {row.oracle_settled:,.0f} | "
            f"{row.callq_settled:,.0f} ({row.callq_settled_share:.0%}) | "
            f"{row.supervisor_settled:,.0f} ({row.supervisor_settled_share:.0%}) | "
            f"{row.true_uplift_our_contact:,.0f} ({row.true_uplift_our_contact_share:.0%}) | "
            f"{row.our_uplift_true_contact:,.0f} ({row.our_uplift_true_contact_share:.0%}) | "
            f"{row.ceiling_uplift_our_contact:,.0f} ({row.ceiling_uplift_our_contact_share:.0%}) | "
            f"{row.uplift_pearson:.2f} / {row.uplift_spearman:.2f} | "
            f"{row.uplift_mean_predicted:.3f} / {row.uplift_mean_true:.3f} | {row.seconds:.0f} |"
        )
    lines += [
        "",
        f"Mean share of oracle: callq {frame['callq_share'].mean():.0%}, "
        f"worst {frame['callq_share'].min():.0%}; supervisor {frame['supervisor_share'].mean():.0%}. "
        f"Settled money: callq {frame['callq_settled_share'].mean():.0%}, "
        f"worst {frame['callq_settled_share'].min():.0%}; supervisor {frame['supervisor_settled_share'].mean():.0%}.",
        "",
        "Worlds:",
        "",
        *[f"* `{row.world}`: {row.description}" for row in frame.itertuples()],
        "",
    ]
    return "\n".join(lines)


NOTES_HEADING = "## Analysis (hand-written)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000-account books (a smoke run, noisier)")
    parser.add_argument("--accounts", type=int, default=None, help="accounts per book (default 5,000; --quick 2,000)")
    parser.add_argument("--worlds", default="", help="comma-separated world names (default: all)")
    parser.add_argument("--config", default=None, help="training config YAML (default: TrainConfig())")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="the held-out worlds (used for no modelling choice) instead of the study's; default --out "
        "experiments/LIST_QUALITY_HELD_OUT.md",
    )
    parser.add_argument(
        "--stress",
        action="store_true",
        help="ten harder worlds (short histories, small books, no exploration, low answer rates, half-hour "
        "zones); default --out experiments/LIST_QUALITY_STRESS.md",
    )
    parser.add_argument(
        "--random",
        default=None,
        metavar="FIRST-LAST",
        help="random worlds for these seeds (every knob drawn, book size included: --accounts is ignored); "
        "default --out experiments/LIST_QUALITY_RANDOM.md",
    )
    parser.add_argument("--out", default=None, help="default experiments/LIST_QUALITY.md")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.held_out, args.stress, args.random))) > 1:
        parser.error("--held-out, --stress and --random pick different worlds: give one")
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    if args.random:
        first, _, last = args.random.partition("-")
        seeds = range(int(first), int(last or first) + 1)
        pick, default_out = (lambda _: [random_world(seed) for seed in seeds]), "LIST_QUALITY_RANDOM.md"
    else:
        pick, default_out = (
            (held_out_worlds, "LIST_QUALITY_HELD_OUT.md")
            if args.held_out
            else (stress_worlds, "LIST_QUALITY_STRESS.md")
            if args.stress
            else (worlds, "LIST_QUALITY.md")
        )
    args.out = args.out or str(Path(__file__).with_name(default_out))
    chosen = [name for name in args.worlds.split(",") if name]
    n_accounts = args.accounts or (2_000 if args.quick else 5_000)
    study = [world for world in pick(n_accounts) if not chosen or world.name in chosen]
    if chosen and len(study) != len(chosen):
        parser.error(f"unknown world in {chosen}; known: {[world.name for world in pick(1)]}")
    rows = []
    for world in study:
        row = run_world(world, config)
        rows.append(row)
        print(
            f"{row['world']}: callq {row['callq']:,.0f} / oracle {row['oracle']:,.0f} = "
            f"{row['callq'] / row['oracle']:.0%} (supervisor {row['supervisor'] / row['oracle']:.0%}; "
            f"settled money {row['callq_settled'] / row['oracle_settled']:.0%}; "
            f"true uplift {row['true_uplift_our_contact'] / row['oracle']:.0%}, "
            f"true contact {row['our_uplift_true_contact'] / row['oracle']:.0%}) in {row['seconds']:.0f} s",
            flush=True,
        )
    out = Path(args.out)
    # Hand-written analysis below the generated tables (from NOTES_HEADING on) survives a re-run.
    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    notes = previous[previous.index(NOTES_HEADING) :] if NOTES_HEADING in previous else ""
    chosen_set = " --held-out" if args.held_out else " --stress" if args.stress else ""
    flags = (chosen_set or (f" --random {args.random}" if args.random else "")) + (
        f" --accounts {args.accounts}" if args.accounts else ""
    )
    out.write_text(markdown(rows, args.quick, flags) + ("\n" + notes if notes else ""), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
