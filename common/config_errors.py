"""Turn a pydantic ValidationError into the one line an operator needs to fix the config.

Shared by every service's settings loader, so each stops at start the same way:
``invalid configuration: VLLM_TP_SIZE='0': Input should be greater than or equal to 1``.
"""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """Configuration that cannot run; its message is one line naming variable, value and rule."""


def describe(error: ValidationError) -> str:
    """One line: each bad variable in upper case, the value given, and what is allowed."""
    parts = []
    for item in error.errors():
        loc = item.get("loc") or ()
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
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
