"""What the person who started the native stack sees of a model server's output.

vLLM writes a line per request it serves (the microservice probes ``/health`` and ``/metrics``
every second) and one per route at start: on the console they would bury the requests to try.
Every line goes to the server's log file; the console gets the stack's own lines (JSON log
lines, ``model_server:`` refusals), vLLM's errors with the lines that follow them (tracebacks),
and with ``--verbose`` everything.
"""

from __future__ import annotations

import re
import threading
from typing import IO

# A vLLM log record, "(APIServer pid=7) INFO 01-02 10:11:12 [file.py:3] ...", or uvicorn's
# "INFO:     127.0.0.1:5 - ..."; the optional prefix names vLLM's process.
_RECORD = re.compile(
    r"^(?:\(\w+ pid=\d+\)\s+)?(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)(?::|\s+\d\d-\d\d\s)"
)
_ERRORS = frozenset({"ERROR", "CRITICAL"})


class ConsoleFilter:
    """Decides line by line; an error record or a traceback opens an error, which the next
    record of a lower level closes, so a traceback's lines show whole."""

    def __init__(self, *, verbose: bool) -> None:
        self._verbose = verbose
        self._in_error = False

    def shows(self, line: str) -> bool:
        if self._verbose:
            return True
        text = line.lstrip()
        if text.startswith(("{", "model_server:")):
            return True
        record = _RECORD.match(text)
        if record is not None:
            self._in_error = record.group("level") in _ERRORS
        elif text.startswith("Traceback (most recent call last):"):
            self._in_error = True
        return self._in_error


class SharedLog:
    """One log file that several streams (a server's stdout and stderr) write whole lines to."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._lock = threading.Lock()

    def write(self, line: bytes) -> None:
        with self._lock:
            self._file.write(line)
            self._file.flush()


def relay(source: IO[bytes], log: SharedLog, console: IO[bytes], shown: ConsoleFilter) -> None:
    """Copy ``source`` line by line into ``log``, and the lines ``shown`` passes to
    ``console``, until ``source`` ends."""
    for line in iter(source.readline, b""):
        log.write(line)
        if shown.shows(line.decode(errors="replace")):
            console.write(line)
            console.flush()
