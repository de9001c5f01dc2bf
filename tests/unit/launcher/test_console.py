"""What the person who started the native stack sees of vLLM's output."""

from __future__ import annotations

import io

from launcher.console import ConsoleFilter, SharedLog, relay

ACCESS = '(APIServer pid=7) INFO:     127.0.0.1:5 - "GET /health HTTP/1.1" 200 OK'
ROUTE = "(APIServer pid=7) INFO 01-02 10:11:12 [launcher.py:34] Route: /health, Methods: GET"
WARNING = "(APIServer pid=7) WARNING 01-02 10:11:12 [config.py:3] cpu: no fp8"
ERROR = "(EngineCore_DP0 pid=9) ERROR 01-02 10:11:13 [core.py:7] EngineCore failed to start."
STACK = '{"ts": "2025-01-02T10:11:12", "level": "info", "logger": "model_server", "msg": "x"}'


def shown(lines: list[str], *, verbose: bool = False) -> list[str]:
    console = ConsoleFilter(verbose=verbose)
    return [line for line in lines if console.shows(line)]


def test_the_access_log_routes_and_warnings_stay_in_the_log() -> None:
    assert shown([ACCESS, ROUTE, WARNING, "INFO:     Started server process [7]"]) == []


def test_the_stacks_own_lines_show() -> None:
    refusal = "model_server: model '/x' is not on disk"
    assert shown([STACK, ACCESS, refusal]) == [STACK, refusal]


def test_an_error_shows_with_the_lines_that_follow_it_until_the_next_record() -> None:
    lines = [
        ROUTE,
        ERROR,
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "RuntimeError: no memory",
        ACCESS,
        "  not an error any more",
    ]
    assert shown(lines) == lines[1:5]
    assert shown(["Traceback (most recent call last):", "ValueError: x"]) == [
        "Traceback (most recent call last):",
        "ValueError: x",
    ]


def test_verbose_shows_everything() -> None:
    lines = [ACCESS, ROUTE, WARNING]
    assert shown(lines, verbose=True) == lines


def test_relay_logs_every_line_and_shows_the_filtered_ones() -> None:
    source = io.BytesIO(f"{ACCESS}\n{ERROR}\n{ROUTE}\n".encode())
    log, console = io.BytesIO(), io.BytesIO()
    relay(source, SharedLog(log), console, ConsoleFilter(verbose=False))
    assert log.getvalue() == source.getvalue()
    assert console.getvalue() == f"{ERROR}\n".encode()
