"""The audit trail of a real microservice process in front of the real vLLM CPU server: a mix of
requests (an answer, a stream, a 4xx, an unknown model) gives one line each in the audit file,
naming the replica that answered and the tokens vLLM reported; never the prompt or the key."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Server
from tests.integration.microservice.helpers import microservice

pytestmark = pytest.mark.integration

KEY = "sk-" + secrets.token_hex(16)
MARKER = "audit-marker-" + secrets.token_hex(4)


def audit_lines(path: Path, count: int) -> list[dict[str, Any]]:
    """The file's lines once it has ``count`` (a thread writes them, just after each answer)."""
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            assert MARKER not in text and KEY not in text
            return lines
        time.sleep(0.05)


def usage_of_stream(text: str) -> dict[str, int]:
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: {")]
    usages = [json.loads(e)["usage"] for e in events if json.loads(e).get("usage")]
    assert len(usages) == 1, text
    return dict(usages[0])


def test_each_request_is_one_line_with_vllms_replica_and_usage(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    keys, log = tmp_path / "keys.yaml", tmp_path / "audit.log"
    keys.write_text(f"keys:\n  - name: audited\n    key: {KEY}\n")
    files = {"LLM_API_KEYS_FILE": str(keys), "LLM_AUDIT_LOG": str(log)}
    model = str(tiny_model)
    chat = {"model": model, "messages": [{"role": "user", "content": MARKER}], "max_tokens": 5}
    bearer = {"Authorization": f"Bearer {KEY}"}
    with microservice("audit", vllm_server.base_url, model, **files) as usvc:
        url = usvc.base_url + "/v1/chat/completions"
        plain = httpx.post(url, json=chat, headers=bearer, timeout=60)
        stream_ask = {**chat, "stream": True, "stream_options": {"include_usage": True}}
        streamed = httpx.post(url, json=stream_ask, headers=bearer, timeout=60)
        refused = httpx.post(url, json={"model": model, "messages": []}, headers=bearer)
        unknown = httpx.post(url, json={**chat, "model": "no-such-model"}, headers=bearer)
        assert [r.status_code for r in (plain, streamed, refused, unknown)] == [200, 200, 422, 404]
        lines = audit_lines(log, 4)
    assert len(lines) == 4, lines
    assert {line["key"] for line in lines} == {"audited"}
    assert [(x["status"], x["stream"], x["error_type"]) for x in lines] == [
        (200, False, None),
        (200, True, None),
        (422, False, "invalid_request_error"),
        (404, False, "invalid_request_error"),
    ]
    for line, usage in (
        (lines[0], plain.json()["usage"]),
        (lines[1], usage_of_stream(streamed.text)),
    ):
        assert line["replicas"] == [vllm_server.base_url] and line["model"] == model
        assert line["prompt_tokens"] == usage["prompt_tokens"]
        assert line["completion_tokens"] == usage["completion_tokens"]
        assert 0 < line["ttft_ms"] <= line["latency_ms"]
    assert lines[2]["replicas"] == [] and lines[2]["prompt_tokens"] is None
    assert lines[3]["requested_model"] == "no-such-model" and lines[3]["model"] is None
