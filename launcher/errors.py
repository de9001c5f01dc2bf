"""How the launcher stops before or instead of starting the stack: one line, one exit status."""

from __future__ import annotations

PROG = "run_vllm.sh"


class Refusal(Exception):
    """Stops the launcher: ``line`` is all it prints (on stderr), ``code`` its exit status."""

    def __init__(self, line: str, *, code: int) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


def refuse(message: str, *, code: int = 1) -> Refusal:
    """The launcher's own refusal: ``run_vllm.sh: error: <message>``."""
    return Refusal(f"{PROG}: error: {message}", code=code)


def invalid(source: str, message: str) -> Refusal:
    """Configuration that one settings object (``source``: who reads it) refuses; exit 2, as
    the services exit on a wrong value."""
    return Refusal(f"{source}: {message}", code=2)
