"""Where the audit lines go (``LLM_AUDIT_LOG``): stdout, beside the service's logs; nowhere; or
a file rotated by size.

A file is written by a thread (a queue and its listener, started and stopped with the app's
lifespan): the event loop only queues the finished record, and the thread turns it into its
line and writes it, so a slow disk never holds up an answer. Stdout is written at once, as the
service's log lines are, without the logging module's record and formatter (a third of the
cost of a line). One line per request, once it is finished: nothing per chunk.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

from microservice.config.audit_target import OFF, STDOUT
from microservice.observability.audit import AuditRecord
from microservice.observability.logs import get_logger
from microservice.settings import MicroserviceSettings

LOGGER_NAME = "microservice.audit"


class _LineWriter(QueueListener):
    """The file's thread: each queued record becomes its line here, off the event loop."""

    def prepare(self, record: Any) -> logging.LogRecord:
        line = record.line().decode()
        return logging.LogRecord(LOGGER_NAME, logging.INFO, "", 0, line, None, None)


class AuditLog:
    def __init__(
        self,
        out: TextIO | None = None,
        lines: queue.SimpleQueue[AuditRecord] | None = None,
        writer: QueueListener | None = None,
    ) -> None:
        self._out = out
        self._lines = lines
        self._writer = writer
        self._writing = False
        self._failed = False

    @classmethod
    def build(cls, settings: MicroserviceSettings) -> AuditLog:
        """The log ``settings`` ask for; a file is not opened before its first line."""
        target = settings.llm_audit_log
        if target == OFF:
            return cls()
        if target == STDOUT:
            return cls(out=sys.stdout)
        path = Path(target)
        if settings.llm_usvc_workers > 1:  # one file per process: rotation is not shared
            path = path.with_name(f"{path.name}.{os.getpid()}")
        file = RotatingFileHandler(
            path,
            maxBytes=settings.llm_audit_log_max_bytes,
            backupCount=settings.llm_audit_log_backups,
            encoding="utf-8",
            delay=True,
        )
        lines: queue.SimpleQueue[AuditRecord] = queue.SimpleQueue()
        return cls(lines=lines, writer=_LineWriter(lines, file))

    @property
    def enabled(self) -> bool:
        return self._out is not None or self._lines is not None

    def start(self) -> None:
        if self._writer is not None and not self._writing:
            self._writer.start()
            self._writing = True

    def stop(self) -> None:
        """Writes what is queued, then closes the file (blocks: call it from a thread)."""
        if self._writer is not None and self._writing:
            self._writer.stop()
            self._writing = False
            for handler in self._writer.handlers:
                handler.close()

    def write(self, record: AuditRecord) -> None:
        """The request's line, written or queued (nothing changes a record once its request
        ended, so the file's thread reads it as it was); a failure to write never fails the
        request (it is logged once)."""
        if self._lines is not None:
            self._lines.put(record)
            return
        out = self._out
        if out is None:
            return
        try:
            out.write(record.line().decode() + "\n")
            out.flush()
        except (OSError, ValueError) as error:
            if not self._failed:
                self._failed = True
                get_logger().warning(
                    "audit line not written", extra={"fields": {"error": str(error)}}
                )
