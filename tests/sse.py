"""Reading SSE answers in tests: the same parser for in-process and real-server tests."""

from __future__ import annotations

import ast
import json

DATA = "data: "


def line_data(line: str) -> str | None:
    """The payload of one line of an SSE body read line by line; None for any other line."""
    return line[len(DATA) :] if line.startswith(DATA) else None


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [data for line in text.split("\n") if (data := line_data(line)) is not None]


def opea_stream_text(events: list[str]) -> str:
    """Join upstream-format events (``data: 'chunk'``) back into the text."""
    assert events[-1] == "[DONE]", events[-3:]
    return "".join(ast.literal_eval(e) for e in events[:-1])


def openai_stream_text(events: list[str]) -> str:
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
