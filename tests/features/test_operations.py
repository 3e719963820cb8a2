"""`operations.yaml` as `Operations.from_yaml` reads it: YAML 1.2's booleans, no key given twice, errors
that name the file and place."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from features.contract import Operations

HEAD = "centre_timezone: Asia/Shanghai\npolicy: cn\nteams:\n"


def _team(name: str) -> str:
    return f'  - {{team: {name}, agents: 1, calls_per_agent_hour: 1, shift: {{start: "09:00", end: "18:00"}}}}\n'


def _load(tmp_path, text: str) -> Operations:
    path = tmp_path / "operations.yaml"
    path.write_text(text)
    return Operations.from_yaml(path)


@pytest.mark.parametrize("name", ["no", "yes", "on", "off", "y", "n", "No", "YES", "Off"])
def test_a_team_named_like_a_yaml_1_1_boolean_keeps_its_name(tmp_path, name):
    operations = _load(tmp_path, HEAD + _team(name) + _team("default"))
    assert [team.team for team in operations.teams] == [name, "default"]
    # Written back and read again, the name is still the text.
    operations.to_yaml(tmp_path / "again.yaml")
    assert Operations.from_yaml(tmp_path / "again.yaml") == operations


@pytest.mark.parametrize("name", ["true", "False", "TRUE"])
def test_yaml_1_2_booleans_are_still_booleans(tmp_path, name):
    with pytest.raises(ValidationError, match="teams.0.team"):
        _load(tmp_path, HEAD + _team(name))


def test_a_key_given_twice_is_refused_not_silently_overridden(tmp_path):
    where = re.escape(str(tmp_path / "operations.yaml"))
    with pytest.raises(ValueError, match=rf"^{where}:5:1: duplicate key 'policy' \(first at line 2\)$"):
        _load(tmp_path, HEAD + _team("early") + "policy: us_reg_f\n")
    with pytest.raises(ValueError, match=rf"^{where}:4:19: duplicate key 'team' \(first at line 4\)$"):
        _load(tmp_path, HEAD + _team("early").replace("agents", "team: late, agents"))


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        _load(tmp_path, HEAD + "  - [unclosed\n")
    assert str(excinfo.value) == (
        f"{tmp_path / 'operations.yaml'}:5:1: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence)"
    )


@pytest.mark.parametrize("text", ["- early\n", "", "# nothing yet\n"])
def test_the_top_level_must_be_a_mapping(tmp_path, text):
    with pytest.raises(ValueError, match=r"operations.yaml: top level must be a mapping \(centre_timezone: "):
        _load(tmp_path, text)


@pytest.mark.parametrize("name", [".", ".."])
def test_a_team_no_url_can_reach_is_refused(tmp_path, name):
    # `/teams/../queue` resolves to `/teams/queue` in every browser and HTTP client, `%2E` included.
    path = tmp_path / "ops.yaml"
    path.write_text(
        "centre_timezone: Asia/Shanghai\npolicy: cn\nteams:\n"
        f"  - {{team: '{name}', agents: 1, calls_per_agent_hour: 1, shift: {{start: '09:00', end: '18:00'}}}}\n"
    )
    with pytest.raises(ValueError, match="no URL can reach its queue"):
        Operations.from_yaml(path)
