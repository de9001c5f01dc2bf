"""A pydantic ValidationError as the one line a person needs to fix what they sent.

Every service's settings loader stops at start the same way:
``invalid configuration: VLLM_TP_SIZE='0': Input should be greater than or equal to 1``;
files read at start (models, API keys) and request bodies name their first problem with
``first_problem``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

VALUE_ERROR_PREFIX = "Value error, "


def _message(item: Any) -> str:
    return str(item.get("msg", "invalid")).removeprefix(VALUE_ERROR_PREFIX)


def first_problem(
    errors: Sequence[Mapping[str, Any]], skip: Collection[str] = ()
) -> tuple[str | None, str]:
    """From ``ValidationError.errors()``: the dotted path of the first invalid field (None for
    the whole object; parts in ``skip`` left out) and what is wrong with it."""
    first = errors[0]
    path = [str(part) for part in first.get("loc", ()) if part not in skip]
    return ".".join(path) or None, _message(first)


class ConfigError(Exception):
    """Configuration that cannot run; its message is one line naming variable, value and rule."""


def describe(error: ValidationError) -> str:
    """One line: each bad variable in upper case, the value given, and what is allowed."""
    parts = []
    for item in error.errors():
        loc = item.get("loc") or ()
        message = _message(item)
        if not loc:
            parts.append(message)
            continue
        name = str(loc[0]).upper()
        value = item.get("input")
        if item.get("type") == "missing":
            parts.append(f"{name} is required")
        else:
            parts.append(f"{name}={value!r}: {message}")
    return "invalid configuration: " + "; ".join(parts)
