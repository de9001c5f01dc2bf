"""Where the audit lines go (``LLM_AUDIT_LOG``) and the outcomes only a real socket shows: a
client that leaves before its answer or in the middle of its stream is a 499 line. The app runs
on a real uvicorn socket in front of a scripted STAND-IN model server (not vLLM)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from common.config_errors import ConfigError
from microservice.observability import audit
from microservice.observability.audit_log import AuditLog
from microservice.settings import MicroserviceSettings, load_settings
from tests.log_records import Records
from tests.unit.microservice.scripted_model_server import END, SSE_HEAD, chunked, json_answer
from tests.unit.microservice.standin_model_server import MODEL, chunk, completion
from tests.unit.microservice.uvicorn_app import served, until, vllm

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def settings(**values: object) -> MicroserviceSettings:
    return MicroserviceSettings.model_validate({"llm_model_name": MODEL, **values})


def record(request_id: str = "r1") -> audit.AuditRecord:
    return audit.AuditRecord(request_id, "/v1/chat/completions", "10.0.0.1", 0.0, 1.7e9 + 0.25)


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "first_event"])
async def test_a_client_gone_before_its_answer_is_a_499_line(tmp_path: Path, stream: bool) -> None:
    late = json_answer(200, orjson.dumps(completion("late", 1)))
    log = tmp_path / "audit.log"
    async with served(vllm([(2.0, late)]), llm_audit_log=str(log)) as (upstream, client):
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json={**CHAT, "stream": stream}, timeout=0.3)
        await until(lambda: upstream.closed > 0, 1.5)
    [line] = lines_of(log)
    assert line["status"] == 499 and line["replicas"] == [] and line["error_type"] is None


async def test_a_client_gone_in_the_middle_of_its_stream_is_a_499_line(tmp_path: Path) -> None:
    pieces = [b"data: " + c + b"\n\n" for c in (chunk(), *[chunk(f"w{n}") for n in range(100)])]
    script = vllm([(0, SSE_HEAD), *[(0.02, chunked(p)) for p in pieces], (0.02, END)])
    log = tmp_path / "audit.log"
    async with served(script, llm_audit_log=str(log)) as (upstream, client):
        async with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as answer:
            async for _ in answer.aiter_raw():
                break  # the first event came: hang up
        await until(lambda: upstream.closed > 0, 1)
        metrics = (await client.get("/metrics")).text
    [line] = lines_of(log)
    assert line["status"] == 499 and line["stream"] is True and len(line["replicas"]) == 1
    assert line["ttft_ms"] is not None
    # the access metric says the same, not the 200 its first byte carried
    assert 'llm_usvc_requests_total{route="/v1/chat/completions",status="499"} 1.0' in metrics
    assert 'llm_usvc_requests_total{route="/v1/chat/completions",status="200"}' not in metrics


def test_a_file_rotates_by_size_and_keeps_its_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog.build(
        settings(llm_audit_log=str(path), llm_audit_log_max_bytes=1024, llm_audit_log_backups=2)
    )
    assert not path.exists()  # opened by its first line, in the writer's thread
    log.start()
    for n in range(100):
        log.write(record(f"r{n}"))
    log.stop()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    newest = [line["request_id"] for line in lines_of(path)]
    assert newest[-1] == "r99" and all(p.stat().st_size <= 1024 for p in tmp_path.iterdir())
    older = lines_of(tmp_path / "audit.log.1")
    assert int(str(older[-1]["request_id"])[1:]) + 1 == int(str(newest[0])[1:])


def test_stdout_lines_are_marked_and_off_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    AuditLog.build(settings()).write(record())
    AuditLog.build(settings(llm_audit_log="Off")).write(record())
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["log"] == "audit"


def test_the_line_format() -> None:
    kept = record()
    close = audit.open_record(kept)
    try:
        audit.caller("team-a")
        audit.asked("alias", "openai")
        audit.answering("chat-small", "openai", stream=True)
        audit.fallback("chat-large")
        audit.served_by("http://vllm-0:8008")
        kept.resumed("http://vllm-1:8008")
    finally:
        close()
    audit.caller("nobody")  # outside a request: nothing to write to
    assert audit.current() is None and kept.key == "team-a"
    line = json.loads(kept.line())
    assert line["ts"] == "2023-11-14T22:13:20.250Z"
    assert line["model"] == "chat-small" and line["requested_model"] == "alias"
    assert line["fallback_from"] == "chat-large" and line["resumes"] == 1
    assert line["replicas"] == ["http://vllm-0:8008", "http://vllm-1:8008"]


def test_several_workers_write_a_file_each(tmp_path: Path) -> None:
    log = AuditLog.build(settings(llm_audit_log=str(tmp_path / "a.log"), llm_usvc_workers=2))
    log.start()
    log.write(record())
    log.stop()
    assert [p.name for p in tmp_path.iterdir()] == [f"a.log.{os.getpid()}"]


def test_a_file_that_cannot_be_written_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_AUDIT_LOG", str(tmp_path / "missing" / "audit.log"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: LLM_AUDIT_LOG=")
    assert "missing" in message and "does not exist" in message and "\n" not in message
    monkeypatch.setenv("LLM_AUDIT_LOG", str(tmp_path))
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_LOG", " STDOUT ")
    assert load_settings().llm_audit_log == "stdout"


def test_a_write_that_fails_never_fails_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)
    folder = tmp_path / "gone"
    folder.mkdir()
    log = AuditLog.build(settings(llm_audit_log=str(folder / "x.log")))
    folder.rmdir()
    log.start()
    log.write(record())  # its folder is gone: the writer's thread reports it, nothing raises
    log.stop()
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    kept = Records()
    logging.getLogger("microservice").addHandler(kept)
    try:
        stdout = AuditLog.build(settings())
        stdout.write(record())
        stdout.write(record())
    finally:
        logging.getLogger("microservice").removeHandler(kept)
    assert [r.getMessage() for r in kept.records] == ["audit line not written"]
