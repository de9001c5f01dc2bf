"""SIGTERM drains: the microservice stops taking connections at once, lets an open stream from
the real vLLM finish to [DONE], then exits (what Kubernetes' preStop + grace period rely on)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.processes import Server
from tests.integration.microservice.helpers import microservice
from tests.sse import line_data

pytestmark = pytest.mark.integration

TOKENS = 200


def test_sigterm_finishes_open_streams_then_exits(vllm_server: Server, tiny_model: Path) -> None:
    with microservice(
        "drain", vllm_server.base_url, str(tiny_model), LLM_DRAIN_TIMEOUT_S="60"
    ) as usvc:
        first_event = threading.Event()
        events: list[str] = []
        failure: list[BaseException] = []
        body = {
            "model": str(tiny_model),
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": TOKENS,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

        def read_stream() -> None:
            try:
                with httpx.stream(
                    "POST", usvc.base_url + "/v1/chat/completions", json=body, timeout=120
                ) as response:
                    for line in response.iter_lines():
                        data = line_data(line)
                        if data is not None:
                            events.append(data)
                            first_event.set()
            except BaseException as error:  # reported by the test thread below
                failure.append(error)
                first_event.set()

        reader = threading.Thread(target=read_stream)
        reader.start()
        assert first_event.wait(60), "no first event"
        usvc.process.send_signal(signal.SIGTERM)
        # The listening socket closes at once: a new client is refused, not queued (one that
        # raced into the backlog as it closed is reset: refused too, not served).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                httpx.get(usvc.base_url + "/health", timeout=1)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                break
            time.sleep(0.05)
        else:
            pytest.fail("still accepting connections 5 s after SIGTERM")
        reader.join(timeout=120)
        assert failure == []
        assert events[-1] == "[DONE]"
        usage = [json.loads(e)["usage"] for e in events[:-1] if json.loads(e).get("usage")]
        assert usage[-1]["completion_tokens"] == TOKENS
        # uvicorn re-raises the SIGTERM it handled once it is done: -15 is a clean exit here.
        assert usvc.process.wait(timeout=30) in (0, -signal.SIGTERM)
