"""The device .env files name only variables a service of their stack, or the launcher, reads.

The variable reference, docs/configuration.md, is generated from the settings classes and checked
by tests/static/test_config_docs.py; tests/static/test_compose_env.py checks that every setting
reaches its container.
"""

from __future__ import annotations

import pytest

from fp8_quant.settings import Fp8Settings
from harness.processes import REPO_ROOT
from launcher.settings import LauncherSettings
from microservice.settings import MicroserviceSettings
from model_server.settings import ModelServerSettings

STACK_SETTINGS = {
    "cpu": (ModelServerSettings, MicroserviceSettings, LauncherSettings),
    "hpu": (ModelServerSettings, MicroserviceSettings, Fp8Settings, LauncherSettings),
}


def env_file_names(stack: str) -> set[str]:
    return {
        line.split("=", 1)[0].strip().lower()
        for line in (REPO_ROOT / "docker" / stack / ".env").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


@pytest.mark.parametrize("stack", STACK_SETTINGS)
def test_env_file_only_names_known_variables(stack: str) -> None:
    known = {name for settings in STACK_SETTINGS[stack] for name in settings.model_fields}
    assert env_file_names(stack) - known == set(), "no service of the stack reads these"
