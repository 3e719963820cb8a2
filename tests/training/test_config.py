"""Training configs: what a YAML file may say, and where it is wrong when it is."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from pydantic import ValidationError

from training.config import CATEGORICAL_FEATURES, MAX_SEED, ConfigError, TrainConfig


def _load(tmp_path, text: str) -> TrainConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return TrainConfig.from_yaml(path)


def _error(excinfo: pytest.ExceptionInfo[ValidationError]) -> tuple[str, str]:
    first = excinfo.value.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        _load(tmp_path, "name: x\nseed: [unclosed\n")
    assert str(excinfo.value).startswith(f"{tmp_path / 'config.yaml'}:3:1: expected ',' or ']'")


def test_a_key_given_twice_is_refused_not_silently_overridden(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml:3:1: duplicate key 'seed' \(first at line 1\)"):
        _load(tmp_path, "seed: 1\nname: x\nseed: 99\n")
    with pytest.raises(ConfigError, match=r":3:3: duplicate key 'calibration'"):
        _load(tmp_path, "repayment:\n  calibration: isotonic\n  calibration: sigmoid\n")


def test_the_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="config.yaml: top level must be a mapping"):
        _load(tmp_path, "- a\n- b\n")
    assert _load(tmp_path, "# nothing set\n") == TrainConfig()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("seed: true\n", "seed"),
        ("horizon_days: '14'\n", "horizon_days"),
        ("seed: 7.5\n", "seed"),
        ("contact:\n  candidate_hours: [8, true]\n", "contact.candidate_hours.1"),
        ("repayment:\n  params: {learning_rate: true}\n", "repayment.params.learning_rate"),
        ("promotion_margin: .inf\n", "promotion_margin"),
        ("promotion_margin: .nan\n", "promotion_margin"),
        ("repayment:\n  params: {learning_rate: .nan}\n", "repayment.params.learning_rate"),
    ],
)
def test_numbers_are_numbers_and_finite(tmp_path, text, where):
    with pytest.raises(ValidationError) as excinfo:
        _load(tmp_path, text)
    assert _error(excinfo)[0] == where


def test_yaml_lists_and_whole_floats_still_load(tmp_path):
    config = _load(tmp_path, "contact:\n  candidate_hours: [9, 10]\npromotion_margin: 0\n")
    assert config.contact.candidate_hours == (9, 10) and config.promotion_margin == 0.0


def test_candidate_hours_name_each_hour_once(tmp_path):
    # [9, 9, 10] is a slip, not a setting: refused, naming the hour.
    with pytest.raises(ValidationError, match=r"candidate_hours name an hour more than once: \[9\]"):
        _load(tmp_path, "contact:\n  candidate_hours: [9, 9, 10]\n")


def test_exponent_numbers_are_numbers_as_in_yaml_1_2(tmp_path):
    # PyYAML (YAML 1.1) reads 5e-2 as text; written so by a data scientist it is a number.
    config = _load(tmp_path, "promotion_margin: 1e-3\nrepayment:\n  params: {learning_rate: 5e-2, reg_lambda: 2E+1}\n")
    assert config.promotion_margin == 0.001
    assert (config.repayment.params.learning_rate, config.repayment.params.reg_lambda) == (0.05, 20.0)


def test_the_seed_is_one_every_library_accepts():
    assert TrainConfig(seed=0).seed == 0 and TrainConfig(seed=MAX_SEED).seed == 2**32 - 1
    for seed in (-1, 2**32):
        with pytest.raises(ValidationError, match="seed"):
            TrainConfig(seed=seed)


@pytest.mark.parametrize("model", ["repayment", "contact"])
def test_a_monotone_constraint_on_a_categorical_feature_is_refused_naming_the_key(tmp_path, model):
    with pytest.raises(ValidationError) as excinfo:
        _load(tmp_path, f"{model}:\n  monotone_constraints: {{product: 1}}\n")
    where, message = _error(excinfo)
    assert where == f"{model}.monotone_constraints" and "'product' is categorical" in message


def test_the_categorical_features_are_the_model_features_built_as_strings():
    from features.build import MODEL_FEATURES, build_features
    from tests.factories import tiny_export

    features = build_features(tiny_export())
    strings = {
        name
        for name in MODEL_FEATURES
        if not (pd.api.types.is_numeric_dtype(features[name]) or pd.api.types.is_bool_dtype(features[name]))
    }
    assert strings == CATEGORICAL_FEATURES


def test_fitting_with_a_constraint_on_a_category_fails_instead_of_aborting_the_process():
    # In a child process: were the check gone, LightGBM would abort the test session itself.
    script = """
import numpy as np, pandas as pd
from training.config import LightGBMParams
from training.models import LightGBMClassifier
rng = np.random.default_rng(0)
frame = pd.DataFrame({"amount": rng.random(200), "segment": rng.choice(["a", "b", "c"], 200)})
params = LightGBMParams(n_estimators=3, early_stopping_rounds=None, min_child_samples=5, num_threads=1)
LightGBMClassifier(["amount", "segment"], params, 0, {"segment": 1}).fit(frame, frame["amount"] > 0.5)
"""
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stderr
    assert "ValueError: monotone constraint on categorical feature 'segment'" in child.stderr


def test_yes_and_no_are_the_words_a_setting_documents_not_booleans(tmp_path):
    # `treated_offset: yes | no | auto`: PyYAML (YAML 1.1) read `yes` and `no` as booleans, and the documented
    # values were refused ("Input should be 'yes', 'no' or 'auto'"). As in YAML 1.2, only true/false are.
    assert _load(tmp_path, "uplift:\n  treated_offset: yes\n").uplift.treated_offset == "yes"
    assert _load(tmp_path, "uplift:\n  treated_offset: no\n").uplift.treated_offset == "no"
    assert _load(tmp_path, "name: off\n").name == "off"
    with pytest.raises(ValidationError) as excinfo:
        _load(tmp_path, "seed: true\n")
    assert _error(excinfo)[0] == "seed"


@pytest.mark.parametrize("sign", ["true", "false", "-1.0", "0"])
def test_a_monotone_constraint_is_minus_one_or_one_never_a_boolean(tmp_path, sign):
    # `true` was read as +1: "never lowers" on broken promises, the opposite of what was meant.
    with pytest.raises(ValidationError) as excinfo:
        _load(tmp_path, f"repayment:\n  monotone_constraints: {{promises_broken_90d: {sign}}}\n")
    assert _error(excinfo)[0] == "repayment.monotone_constraints.promises_broken_90d"
    assert _load(
        tmp_path, "repayment:\n  monotone_constraints: {promises_broken_90d: -1}\n"
    ).repayment.monotone_constraints == {"promises_broken_90d": -1}
