"""The microservice's JSON log lines: the launcher's fields, the request id, never a lost line."""

from __future__ import annotations

import json
import logging
import re
import sys

from microservice.observability.logs import RequestJsonFormatter, request_id_var


def _record(msg: str, fields: object = None, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("microservice", logging.INFO, "", 0, msg, None, exc_info)
    if fields is not None:
        record.fields = fields
    return record


def test_a_line_is_one_json_object_with_the_request_id() -> None:
    token = request_id_var.set("req-7")
    try:
        line = RequestJsonFormatter().format(_record("request", {"status": 200, "path": "/x"}))
    finally:
        request_id_var.reset(token)
    event = json.loads(line)
    assert "\n" not in line
    assert event["level"] == "info" and event["logger"] == "microservice"
    assert event["msg"] == "request" and event["status"] == 200 and event["path"] == "/x"
    assert event["request_id"] == "req-7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", event["ts"])


def test_outside_a_request_there_is_no_request_id_and_exceptions_are_kept() -> None:
    event = json.loads(RequestJsonFormatter().format(_record("failed", exc=True)))
    assert "request_id" not in event
    assert "ValueError: boom" in event["exception"]


def test_values_json_cannot_write_are_written_as_text() -> None:
    formatter = RequestJsonFormatter()
    event = json.loads(formatter.format(_record("odd", {"path": object, "big": 2**70})))
    assert event["path"] == str(object) and event["big"] == 2**70


def test_the_timestamp_follows_the_record_not_the_cache() -> None:
    formatter = RequestJsonFormatter()
    first, later = _record("a"), _record("b")
    first.created, later.created = 0.5, 61.2
    assert json.loads(formatter.format(first))["ts"] == "1970-01-01T00:00:00"
    assert json.loads(formatter.format(later))["ts"] == "1970-01-01T00:01:01"
    assert json.loads(formatter.format(first))["ts"] == "1970-01-01T00:00:00"
