"""Structured JSON logs with the request id of the request being served.

The id lives in a context variable set by the request middleware, so every log line written
while serving a request carries it without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar

import orjson

from common.logs import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

LOGGER_NAME = "microservice"


class RequestJsonFormatter(JsonFormatter):
    """The launcher's JSON line format plus ``request_id`` when one is being served.

    It writes the access line of every request, so it writes with orjson, a fraction of the
    json module's cost (docs/benchmarks.md); what orjson cannot write (an int over 64 bits)
    falls back to json rather than lose the line."""

    def format(self, record: logging.LogRecord) -> str:
        event = self.event(record)
        request_id = request_id_var.get()
        if request_id is not None:
            event["request_id"] = request_id
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            return json.dumps(event, default=str)


def setup(level: str) -> logging.Logger:
    """JSON lines on stderr for our logger and uvicorn's error logger (access logs are ours).

    The lines carry none of the caller's file, line, thread or process, so the logging
    module is told not to collect them for every record (the "Optimization" section of
    Python's logging HOWTO): no stack walk and no thread or process lookups per line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RequestJsonFormatter())
    for name in (LOGGER_NAME, "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    return logging.getLogger(LOGGER_NAME)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
