"""Structured (JSON lines) logging for the launcher; one event per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, to the second), level, logger, msg, and the record's
    ``fields``. The timestamp is formatted once a second, not once a line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _ts(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._stamp

    def event(self, record: logging.LogRecord) -> dict[str, Any]:
        event = {
            "ts": self._ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            event.update(extra)
        return event

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.event(record), default=str)


def setup(name: str, level: str | int = "INFO") -> logging.Logger:
    """A logger that writes JSON lines to stderr and does not pass records further up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger
