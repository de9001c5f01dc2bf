"""A log handler that keeps the records, attached to the service's own logger: it sees them
with their structured fields, also once ``logs.setup`` has stopped them reaching pytest's
caplog."""

from __future__ import annotations

import logging


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Every message with its structured fields, one line each."""
        return "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in self.records)
