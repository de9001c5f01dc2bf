"""Fair sharing and priority between API keys, in front of the real tiny vLLM: one key keeps the
waiting room full while another sends at a steady pace. One slot on the replica makes the room
fill; first come first served would give both keys about the same latency. The flooding key's
client runs in its own process, so that its work does not delay the steady one's."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from pathlib import Path

import httpx

from harness.processes import Server, wait_until_healthy
from tests.integration.microservice.helpers import metric, microservice
from tests.integration.microservice.second_vllm import SecondVllm

CHAT = {
    "messages": [{"role": "user", "content": "Say something."}],
    "max_tokens": 24,
    "ignore_eos": True,
}
FLOODERS = 64  # requests the flooding key keeps in flight, against one slot
# The steady key asks every STEADY_EVERY_S, or when its last answer came if that is later: it
# then stays within its fair share (half the slots) however slow the shared host makes the
# replica. A pace fixed in time alone asks more than its share on a loaded host, and the steady
# key then rightly waits behind its own requests.
STEADY_EVERY_S = 0.15
STEADY_ASKS = 36


def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        "  - {name: flood, key: flood-key-0001}\n"
        "  - {name: steady, key: steady-key-0001}\n"
        "  - {name: jobs, key: jobs-key-0001, priority: batch}\n"
    )
    return path


async def room_holds(base_url: str, key: str, at_least: int) -> None:
    """Waits until the service's own gauge shows ``at_least`` of ``key``'s requests waiting: the
    flood's client may start slowly on a loaded host, and a half-empty room proves nothing."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for _ in range(300):
            depth = metric((await client.get("/metrics")).text, "llm_usvc_queue_depth_by_key",
                           f'key="{key}"')  # fmt: skip
            if depth >= at_least:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{key} never had {at_least} requests waiting")


async def flood_and_steady(base_url: str, flood_name: str) -> None:
    """The flooding key (its own process) beside the steady key; every answer 200 but those the
    flood hangs up on when it is stopped."""
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.microservice.flood_client",
        base_url, f"{flood_name}-key-0001", str(FLOODERS), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    async def one(client: httpx.AsyncClient) -> None:
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer steady-key-0001"}
        )
        assert reply.status_code == 200, reply.text

    try:
        await room_holds(base_url, flood_name, FLOODERS // 2)
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            for _ in range(STEADY_ASKS):
                await asyncio.gather(one(client), asyncio.sleep(STEADY_EVERY_S))
    finally:
        flood.terminate()
    assert await flood.wait() == 0


def latencies(audit: Path, seen: int) -> tuple[dict[str, list[float]], int]:
    """Seconds per key of the answers after the first ``seen`` audit lines: every one 200, but
    for a flood's requests under way when its client hung up (499)."""
    lines = audit.read_text().splitlines()
    by_key: dict[str, list[float]] = {}
    for line in lines[seen:]:
        record = json.loads(line)
        if record["key"] != "steady" and record["status"] == 499:
            continue
        assert record["status"] == 200, record
        by_key.setdefault(record["key"], []).append(record["latency_ms"] / 1000)
    return by_key, len(lines)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def test_a_flooding_key_delays_a_steady_key_by_at_most_a_quarter_of_its_own_wait(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    """The flood is an interactive key, then a batch key; the steady key is interactive. The
    latencies are the service's own, from its audit trail: the clients' host, two cores under
    vLLM, delays a client's own reading by up to a second now and then."""
    audit = tmp_path / "audit.log"
    settings = {
        "LLM_API_KEYS_FILE": str(keys_file(tmp_path)),
        "LLM_MAX_INFLIGHT_PER_REPLICA": "1",
        "LLM_AUDIT_LOG": str(audit),
    }
    seen = 0
    with microservice("tenancy", vllm_server.base_url, str(tiny_model), **settings) as usvc:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=60)
        for flood_key in ("flood", "jobs"):
            await flood_and_steady(usvc.base_url, flood_key)
            await asyncio.sleep(0.5)  # the last lines are written by a thread
            by_key, seen = latencies(audit, seen)
            flood, steady = by_key[flood_key], by_key["steady"]
            median = statistics.median(flood)
            print(
                f"{flood_key}: flood median {median:.2f} s ({len(flood)} answers), steady p95 "
                f"{p95(steady):.2f} s ({len(steady)} answers)"
            )
            assert len(steady) == STEADY_ASKS
            assert p95(steady) <= median / 4, (flood_key, median, sorted(steady)[-3:])
        metrics = (await asyncio.to_thread(httpx.get, usvc.base_url + "/metrics")).text
    assert metric(metrics, "llm_usvc_queue_wait_seconds_count", 'class="batch",key="jobs"') > 0


async def test_vllms_priority_scheduler_takes_the_class(
    vllm_b: SecondVllm, tiny_model: Path, tmp_path: Path
) -> None:
    """vLLM B runs the priority scheduler: the batch key's request goes to it as `priority` 1
    (the unit tests show the body), the interactive key's as 0, and both are answered."""
    settings = {
        "LLM_API_KEYS_FILE": str(keys_file(tmp_path)),
        "LLM_PRIORITY_SCHEDULING": "true",
    }
    with microservice("priority", vllm_b.base_url, str(tiny_model), **settings) as usvc:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=60)

        def ask(key: str) -> httpx.Response:
            return httpx.post(
                usvc.base_url + "/v1/chat/completions", json={**CHAT, "max_tokens": 4},
                headers={"Authorization": f"Bearer {key}"}, timeout=60,
            )  # fmt: skip

        replies = [await asyncio.to_thread(ask, k) for k in ("jobs-key-0001", "steady-key-0001")]
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]


async def test_a_stopped_models_requests_are_served_by_its_fallback(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path, tmp_path: Path
) -> None:
    """Model `main` is vLLM B, its fallback `spare` the session server. 4 clients ask `main`;
    B is SIGKILLed: not one request fails, and `spare` answers them (B restarted afterwards)."""
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        f"  - {{name: main, endpoints: {vllm_b.base_url}, served_model_name: {tiny_model},"
        " fallbacks: [spare]}\n"
        f"  - {{name: spare, endpoints: {vllm_server.base_url}, served_model_name: {tiny_model}}}\n"
    )
    body = {**CHAT, "model": "main", "max_tokens": 8}
    codes: list[int] = []
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            codes.append((await client.post("/v1/chat/completions", json=body)).status_code)

    settings = {"LLM_MODELS_FILE": str(models)}
    with microservice("fallback", vllm_server.base_url, str(tiny_model), **settings) as usvc:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=60)
        try:
            async with httpx.AsyncClient(base_url=usvc.base_url, timeout=60) as client:
                loops = [asyncio.create_task(client_loop(client)) for _ in range(4)]
                await asyncio.sleep(1.5)
                await asyncio.to_thread(vllm_b.kill)
                served_before = len(codes)
                await asyncio.sleep(3)
                stop.set()
                await asyncio.gather(*loops)
            metrics = (await asyncio.to_thread(httpx.get, usvc.base_url + "/metrics")).text
        finally:
            await asyncio.to_thread(vllm_b.start)  # the later tests need B
    assert set(codes) == {200}, codes
    assert len(codes) - served_before >= 10
    assert metric(metrics, "llm_usvc_fallbacks_total", 'from="main"') >= 10
