"""Shared rules for reading a service's settings, so every service starts and fails alike.

Each service (model_server, microservice, fp8_quant) owns its settings class; this module holds
what they have in common: strict booleans, case-insensitive choices, and one load function that
turns any validation failure into a one-line ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.config_errors import ConfigError, describe

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

# Every service reads its variables the same way: names in any case, an empty value means
# unset (so `.env` files can list a variable without setting it), other variables ignored.
SETTINGS_CONFIG = SettingsConfigDict(
    case_sensitive=False,
    env_ignore_empty=True,
    extra="ignore",
    validate_default=True,
)


def strict_bool(value: object) -> object:
    """Accept the usual spellings only: upstream's truthiness made "False" mean true."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError("must be one of true/false, 1/0, yes/no, on/off")
    return value


def lowercase(value: object) -> object:
    """Choices such as devices and connectors are case-insensitive."""
    return value.strip().lower() if isinstance(value, str) else value


def _validated(build: Callable[[], SettingsT]) -> SettingsT:
    try:
        return build()
    except ValidationError as error:
        raise ConfigError(describe(error)) from None


def load(settings_cls: type[SettingsT], env_file: Path | str | None = None) -> SettingsT:
    """Read the environment (and ``env_file``, which exported variables override) once."""
    if env_file is not None and not Path(env_file).is_file():
        raise ConfigError(f"invalid configuration: env file {str(env_file)!r} does not exist")
    return _validated(lambda: settings_cls(_env_file=env_file))


def load_from(
    settings_cls: type[SettingsT], environ: Mapping[str, str], env_file: Path | None
) -> SettingsT:
    """As ``load``, from ``environ`` instead of this process's environment (a launcher that
    validates the environment it will give the services): names in any case, empty values
    unset, then ``env_file``, then the defaults."""
    fields = settings_cls.model_fields
    given: dict[str, Any] = {
        name.lower(): value
        for name, value in environ.items()
        if value != "" and name.lower() in fields
    }
    return _validated(lambda: settings_cls(_env_file=env_file, **given))
