"""Settings as text for the command line: ``--check`` prints the validated values (an
operator's check of a configuration), ``--help-env`` the variables a service reads. Same for
every service."""

from __future__ import annotations

from typing import get_args

from pydantic import SecretStr
from pydantic_settings import BaseSettings


def settings_lines(settings: BaseSettings) -> list[str]:
    """The validated values as NAME=value lines (unset: empty); secrets are left out."""
    lines = []
    for name, value in settings:
        annotation = type(settings).model_fields[name].annotation
        if SecretStr in (annotation, *get_args(annotation)):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = "" if value is None else str(value).replace("\n", "\\n")  # one line each
        lines.append(f"{name.upper()}={text}")
    return lines


def env_help(settings_cls: type[BaseSettings]) -> str:
    """One line per variable: its name, its description and its default."""
    fields = settings_cls.model_fields
    width = max(len(name) for name in fields) + 2
    lines = []
    for name, info in fields.items():
        default = "" if info.default is None else f" (default: {info.default})"
        lines.append(f"{name.upper():{width}} {info.description}{default}")
    return "\n".join(lines)
