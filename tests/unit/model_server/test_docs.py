"""The README's model-server variable table and docker/cpu/.env agree with the settings object."""

from __future__ import annotations

import re

from model_server.settings import ModelServerSettings
from tests.helpers.processes import REPO_ROOT


def readme_table_names() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Configuration", 1)[1].split("\n## ", 1)[0]
    return {name.lower() for name in re.findall(r"^\| `([A-Za-z0-9_]+)` \|", section, re.M)}


def test_every_setting_is_documented_in_the_readme() -> None:
    fields = set(ModelServerSettings.model_fields)
    documented = readme_table_names()
    assert fields - documented == set(), "settings missing from the README table"
    assert documented - fields == set(), "README documents variables that do not exist"


def test_every_setting_has_a_description() -> None:
    missing = [n for n, f in ModelServerSettings.model_fields.items() if not f.description]
    assert missing == []


# The .env files also configure the microservice, whose own tests check those names.
MICROSERVICE_PREFIXES = (
    "llm_connector",
    "llm_model_",
    "llm_usvc",
    "llm_disable",
    "llm_output",
    "opea_",
)


def test_cpu_env_file_only_names_known_variables() -> None:
    names = {
        line.split("=", 1)[0].strip().lower()
        for line in (REPO_ROOT / "docker/cpu/.env").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    model_server_names = {n for n in names if not n.startswith(MICROSERVICE_PREFIXES)}
    assert model_server_names - set(ModelServerSettings.model_fields) == set()
